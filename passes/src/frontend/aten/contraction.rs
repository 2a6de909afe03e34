//! Matmuls and reductions: `mm` and `bmm` as `linalg.matmul` / `linalg.batch_matmul`
//! accumulating half floats in f32 (rounded once at the end, as torch's CPU kernels do), and
//! `sum.dim_IntList` / `mean.dim` as `linalg.reduce`, and `softmax` (max, exp, sum, divide).

use super::{Lowered, Snippet, Static, compute_elem, is_float, normalize_dim, result_type, tensor_operand};
use crate::frontend::torch_values::TorchValue;
use melior::ir::{OperationRef, operation::OperationLike};

/// Lowers `op` if it is a matmul or a reduction.
pub fn lower<'c: 'a, 'a>(name: &str, op: OperationRef<'c, 'a>) -> Result<Option<Lowered<'c, 'a>>, String> {
    Ok(Some(match name {
        "torch.aten.mm" => matmul(op, "linalg.matmul", 2)?,
        "torch.aten.bmm" => matmul(op, "linalg.batch_matmul", 3)?,
        "torch.aten.sum.dim_IntList" => reduce(op, false)?,
        "torch.aten.mean.dim" => reduce(op, true)?,
        "torch.aten._softmax" | "torch.aten.softmax.int" => softmax(op)?,
        _ => return Ok(None),
    }))
}

fn matmul<'c: 'a, 'a>(op: OperationRef<'c, 'a>, linalg: &str, rank: usize) -> Result<Lowered<'c, 'a>, String> {
    let (a, ta) = tensor_operand(op, 0)?;
    let (b, tb) = tensor_operand(op, 1)?;
    let out = result_type(op)?;
    if ta.rank() != rank || tb.rank() != rank || out.rank() != rank {
        return Err(format!("expects rank-{rank} operands, has {} and {}", ta.r#type(), tb.r#type()));
    }
    let (m, k) = (ta.dims[rank - 2], ta.dims[rank - 1]);
    let (k2, n) = (tb.dims[rank - 2], tb.dims[rank - 1]);
    if k != k2 || out.dims[rank - 2] != m || out.dims[rank - 1] != n || (rank == 3 && (ta.dims[0] != tb.dims[0] || ta.dims[0] != out.dims[0])) {
        return Err(format!("{} x {} does not give {}", ta.r#type(), tb.r#type(), out.r#type()));
    }
    if ta.elem != tb.elem || ta.elem != out.elem {
        return Err(format!("mixed element types {}, {} -> {}", ta.elem, tb.elem, out.elem));
    }
    let acc_elem = compute_elem(&out.elem).to_string();
    let mut snippet = Snippet::new();
    let a_name = snippet.arg(a);
    let b_name = snippet.arg(b);
    let a_wide = snippet.convert_tensor(&a_name, &ta, &acc_elem);
    let b_wide = snippet.convert_tensor(&b_name, &tb, &acc_elem);
    let acc = out.with_elem(&acc_elem);
    let zeros = snippet.zeros(&acc);
    let product = snippet.fresh("mm");
    snippet.line(&format!(
        "{product} = {linalg} ins({a_wide}, {b_wide} : {}, {}) outs({zeros} : {}) -> {}",
        ta.with_elem(&acc_elem).r#type(),
        tb.with_elem(&acc_elem).r#type(),
        acc.r#type(),
        acc.r#type()
    ));
    let result = snippet.convert_tensor(&product, &acc, &out.elem);
    Lowered::single(op, snippet, result, &out)
}

/// Sum (or mean) over a list of dims, `keepdim` as the op says; integers sum in i64, floats in
/// f32 (or f64), then the result is converted to the op's result type.
fn reduce<'c: 'a, 'a>(op: OperationRef<'c, 'a>, mean: bool) -> Result<Lowered<'c, 'a>, String> {
    let (x, t) = tensor_operand(op, 0)?;
    let out = result_type(op)?;
    let dims_value = op.operand(1).map_err(|_| "operand 1 is missing")?;
    let mut dims: Vec<usize> = match TorchValue::of(dims_value) {
        TorchValue::None => (0..t.rank()).collect(),
        other => other
            .ints()
            .ok_or("the dims are not constant integers")?
            .iter()
            .map(|d| normalize_dim(*d, t.rank()))
            .collect::<Result<_, _>>()?,
    };
    if dims.is_empty() {
        dims = (0..t.rank()).collect();
    }
    dims.sort_unstable();
    dims.dedup();
    let acc_elem = if is_float(&out.elem) { compute_elem(&out.elem).to_string() } else { "i64".to_string() };
    if mean && !is_float(&acc_elem) {
        return Err("mean of integers is not supported".into());
    }
    let kept: Vec<u64> = (0..t.rank()).filter(|d| !dims.contains(d)).map(|d| t.dims[d]).collect();
    let reduced = Static {
        dims: kept,
        elem: acc_elem.clone(),
    };
    let count: u64 = dims.iter().map(|d| t.dims[*d]).product();
    let mut snippet = Snippet::new();
    let input = snippet.arg(x);
    let wide = snippet.convert_tensor(&input, &t, &acc_elem);
    let zeros = snippet.zeros(&reduced);
    let sum = snippet.fresh("sum");
    let add = if is_float(&acc_elem) { "arith.addf" } else { "arith.addi" };
    snippet.line(&format!(
        "{sum} = linalg.reduce ins({wide} : {}) outs({zeros} : {}) dimensions = [{}]\n    (%in: {acc_elem}, %acc: {acc_elem}) {{\n      %s = {add} %in, %acc : {acc_elem}\n      linalg.yield %s : {acc_elem}\n    }}",
        t.with_elem(&acc_elem).r#type(),
        reduced.r#type(),
        dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
    ));
    let mut current = sum;
    if mean {
        let divided = snippet.fresh("mean");
        let empty = snippet.empty(&reduced);
        let map = super::identity_map(reduced.rank());
        snippet.line(&format!(
            "{divided} = linalg.generic {{indexing_maps = [{map}, {map}], iterator_types = [{}]}} ins({current} : {}) outs({empty} : {}) {{\n    ^bb0(%in: {acc_elem}, %out: {acc_elem}):\n      %n = arith.constant {count}.0 : {acc_elem}\n      %q = arith.divf %in, %n : {acc_elem}\n      linalg.yield %q : {acc_elem}\n    }} -> {}",
            super::parallel(reduced.rank()),
            reduced.r#type(),
            reduced.r#type(),
            reduced.r#type()
        ));
        current = divided;
    }
    let converted = snippet.convert_tensor(&current, &reduced, &out.elem);
    let shaped = reduced.with_elem(&out.elem);
    if shaped.dims == out.dims {
        return Lowered::single(op, snippet, converted, &out);
    }
    // keepdim: the reduced dims come back as ones.
    if shaped.dims.iter().product::<u64>() != out.dims.iter().product::<u64>() {
        return Err(format!("the reduction gives {} elements, the result {} holds a different number", shaped.r#type(), out.r#type()));
    }
    let reassociation = keepdim_reassociation(t.rank(), &dims);
    let name = snippet.fresh("kd");
    snippet.line(&format!(
        "{name} = tensor.expand_shape {converted} {reassociation} output_shape [{}] : {} into {}",
        out.dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
        shaped.r#type(),
        out.r#type()
    ));
    Lowered::single(op, snippet, name, &out)
}

/// `softmax(x, dim)`: `exp(x - max) / sum(exp(x - max))` along `dim`, computed in f32 (f64 for
/// f64) and rounded once to the result type.
fn softmax<'c: 'a, 'a>(op: OperationRef<'c, 'a>) -> Result<Lowered<'c, 'a>, String> {
    let (x, t) = tensor_operand(op, 0)?;
    let out = result_type(op)?;
    let dim = normalize_dim(super::int_operand(op, 1)?, t.rank())?;
    if t.rank() == 0 || out.dims != t.dims || !is_float(&t.elem) || !is_float(&out.elem) {
        return Err(format!("softmax of {} to {}", t.r#type(), out.r#type()));
    }
    let acc = compute_elem(&out.elem).to_string();
    let full = t.with_elem(&acc);
    let reduced = Static {
        dims: (0..t.rank()).filter(|d| *d != dim).map(|d| t.dims[d]).collect(),
        elem: acc.clone(),
    };
    let map = super::identity_map(t.rank());
    let kept: Vec<String> = (0..t.rank()).filter(|d| *d != dim).map(|d| format!("d{d}")).collect();
    let bcast = format!("affine_map<({}) -> ({})>", super::loop_dims(t.rank()), kept.join(", "));
    let par = super::parallel(t.rank());
    let (ft, rt) = (full.r#type(), reduced.r#type());
    let mut snippet = Snippet::new();
    let input = snippet.arg(x);
    let wide = snippet.convert_tensor(&input, &t, &acc);
    let init = snippet.empty(&reduced);
    let lowest = snippet.fresh("lowest");
    snippet.line(&format!("{lowest} = arith.constant 0xFF800000 : f32"));
    let lowest = if acc == "f32" {
        lowest
    } else {
        let wide_lowest = snippet.fresh("lowest");
        snippet.line(&format!("{wide_lowest} = arith.extf {lowest} : f32 to {acc}"));
        wide_lowest
    };
    let filled = snippet.fresh("fill");
    snippet.line(&format!("{filled} = linalg.fill ins({lowest} : {acc}) outs({init} : {rt}) -> {rt}"));
    let max = snippet.fresh("max");
    snippet.line(&format!(
        "{max} = linalg.reduce ins({wide} : {ft}) outs({filled} : {rt}) dimensions = [{dim}]\n    (%in: {acc}, %m: {acc}) {{\n      %x = arith.maximumf %in, %m : {acc}\n      linalg.yield %x : {acc}\n    }}"
    ));
    let e_init = snippet.empty(&full);
    let exps = snippet.fresh("exp");
    snippet.line(&format!(
        "{exps} = linalg.generic {{indexing_maps = [{map}, {bcast}, {map}], iterator_types = [{par}]}} ins({wide}, {max} : {ft}, {rt}) outs({e_init} : {ft}) {{\n    ^bb0(%v: {acc}, %m: {acc}, %o: {acc}):\n      %d = arith.subf %v, %m : {acc}\n      %e = math.exp %d : {acc}\n      linalg.yield %e : {acc}\n    }} -> {ft}"
    ));
    let zeros = snippet.zeros(&reduced);
    let sum = snippet.fresh("sum");
    snippet.line(&format!(
        "{sum} = linalg.reduce ins({exps} : {ft}) outs({zeros} : {rt}) dimensions = [{dim}]\n    (%in: {acc}, %s: {acc}) {{\n      %x = arith.addf %in, %s : {acc}\n      linalg.yield %x : {acc}\n    }}"
    ));
    let q_init = snippet.empty(&full);
    let quotient = snippet.fresh("softmax");
    snippet.line(&format!(
        "{quotient} = linalg.generic {{indexing_maps = [{map}, {bcast}, {map}], iterator_types = [{par}]}} ins({exps}, {sum} : {ft}, {rt}) outs({q_init} : {ft}) {{\n    ^bb0(%e: {acc}, %s: {acc}, %o: {acc}):\n      %q = arith.divf %e, %s : {acc}\n      linalg.yield %q : {acc}\n    }} -> {ft}"
    ));
    let result = snippet.convert_tensor(&quotient, &full, &out.elem);
    Lowered::single(op, snippet, result, &out)
}

/// The reassociation expanding a reduced shape back to rank `rank` with ones at `reduced`: each
/// kept dim groups with the ones after it (the leading ones join the first kept dim).
pub fn keepdim_reassociation(rank: usize, reduced: &[usize]) -> String {
    let kept: Vec<usize> = (0..rank).filter(|d| !reduced.contains(d)).collect();
    if kept.is_empty() {
        return "[]".into();
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut leading = Vec::new();
    for d in 0..rank {
        if kept.contains(&d) {
            leading.push(d);
            groups.push(std::mem::take(&mut leading));
        } else if let Some(last) = groups.last_mut() {
            last.push(d);
        } else {
            leading.push(d);
        }
    }
    format!(
        "[{}]",
        groups
            .iter()
            .map(|g| format!("[{}]", g.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::keepdim_reassociation;

    #[test]
    fn keepdim_groups_ones_with_their_neighbour() {
        assert_eq!(keepdim_reassociation(3, &[1]), "[[0, 1], [2]]");
        assert_eq!(keepdim_reassociation(3, &[0]), "[[0, 1], [2]]");
        assert_eq!(keepdim_reassociation(3, &[2]), "[[0], [1, 2]]");
        assert_eq!(keepdim_reassociation(2, &[0, 1]), "[]");
    }
}

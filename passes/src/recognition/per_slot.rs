//! The per-slot spelling of a MoE layer (transformers' `batched_mm` experts): every (token, slot)
//! row `r = t*K + j` is multiplied by its own expert's weight, either `squeeze(bmm(W[ids_flat],
//! unsqueeze(rows, -1)))` with W (e, out, in) or `squeeze(bmm(unsqueeze(rows, 1), W[ids_flat]))`
//! with W (e, in, out); the rows are token rows repeated K times, row-local ops (split, slice,
//! silu, clamp, multiplies, per-expert parameters gathered by the same ids such as biases)
//! connect the matmuls, and the slots are weighted and summed back per token.
//!
//! Rule `per-slot-bmm-is-grouped-matmul`: a per-row matmul by `W[ids[r]]` equals, row for row, a
//! grouped matmul over the rows sorted (stably) by expert with `W` transposed to (e, in, out),
//! gathered back by the inverse permutation; row-local ops commute with any row permutation; so
//! the whole chain can run on the routing's sorted rows, and the weighted slot sum of the
//! unsorted rows is `npu.moe_finalize_routing` (drop_pad_mode 2) of the sorted ones. Checks, each
//! a reason code when it fails: `token-rows-repeated` (the first matmul reads each token's row K
//! times), `same-expert-ids` (every matmul gathers its weights by the same flattened ids),
//! `row-local-chain` (only row-local ops between the matmuls), `weights-not-per-slot`.

use super::SPELLING_ATTRIBUTE;
use super::materialize::{Unmaterializable, block_order, gather_1d_lines, init_routing_line};
use crate::frontend::aten::tensor_type;
use crate::frontend::splice::{splice, string_literal};
use crate::frontend::torch_values::{TorchValue, torch_op_name};
use gmmfr_dialect::graph::producer;
use gmmfr_dialect::types::TensorInfo;
use melior::Context;
use melior::ir::{OperationRef, Value, ValueLike, operation::OperationLike};

fn refuse(code: &'static str, message: impl Into<String>) -> Unmaterializable {
    Unmaterializable {
        code,
        message: message.into(),
    }
}

fn dims(value: Value<'_, '_>) -> Option<(Vec<u64>, String)> {
    let info = TensorInfo::of(value.r#type())?;
    let dims: Option<Vec<u64>> = info.dims.iter().copied().collect();
    Some((dims?, info.elem.to_string()))
}

fn producer_named<'c: 'a, 'a>(value: Value<'c, 'a>, names: &[&str]) -> Option<OperationRef<'c, 'a>> {
    let (op, _) = producer(value)?;
    names.contains(&torch_op_name(&op).as_str()).then_some(op)
}

/// Skips views that only add or drop unit dims or flatten (`view`, `unsqueeze`, `squeeze`).
fn through_views<'c: 'a, 'a>(mut value: Value<'c, 'a>) -> Value<'c, 'a> {
    for _ in 0..4 {
        match producer_named(
            value,
            &["torch.aten.view", "torch.aten.reshape", "torch.aten.unsqueeze", "torch.prims.squeeze", "torch.aten.squeeze.dim", "torch.aten.clone"],
        ) {
            Some(op) => match op.operand(0) {
                Ok(v) => value = v,
                Err(_) => break,
            },
            None => break,
        }
    }
    value
}

/// One per-slot matmul: `out = squeeze(bmm(W[ids_flat], unsqueeze(input, -1)))` (W is (e, out,
/// in): `transposed`) or `out = squeeze(bmm(unsqueeze(input, 1), W[ids_flat]))` (W is (e, in, out)).
#[derive(Clone, Copy)]
struct Stage<'c, 'a> {
    weight: Value<'c, 'a>,
    ids: Value<'c, 'a>,
    input: Value<'c, 'a>,
    output: Value<'c, 'a>,
    transposed: bool,
}

/// `index.Tensor(table, [ids])` with one index tensor: the table and the ids.
fn gathered_by_ids<'c: 'a, 'a>(value: Value<'c, 'a>) -> Option<(Value<'c, 'a>, Value<'c, 'a>)> {
    let gather = producer_named(value, &["torch.aten.index.Tensor"])?;
    let TorchValue::List(indices) = TorchValue::of(gather.operand(1).ok()?) else { return None };
    let [ids] = indices.as_slice() else { return None };
    Some((gather.operand(0).ok()?, *ids))
}

fn stage<'c: 'a, 'a>(output: Value<'c, 'a>) -> Option<Stage<'c, 'a>> {
    let squeeze = producer_named(output, &["torch.prims.squeeze", "torch.aten.squeeze.dim"])?;
    let bmm = producer_named(squeeze.operand(0).ok()?, &["torch.aten.bmm"])?;
    let (a, b) = (bmm.operand(0).ok()?, bmm.operand(1).ok()?);
    let unsqueezed = |v: Value<'c, 'a>, dims: &[i64]| {
        let op = producer_named(v, &["torch.aten.unsqueeze"])?;
        let d = TorchValue::of(op.operand(1).ok()?).int()?;
        dims.contains(&d).then(|| op.operand(0).ok()).flatten()
    };
    if let (Some((weight, ids)), Some(input)) = (gathered_by_ids(a), unsqueezed(b, &[-1, 2])) {
        return Some(Stage { weight, ids, input, output, transposed: true });
    }
    if let (Some(input), Some((weight, ids))) = (unsqueezed(a, &[1, -2]), gathered_by_ids(b)) {
        return Some(Stage { weight, ids, input, output, transposed: false });
    }
    None
}

/// Ops that compute each row from the same row of their row-aligned operands.
fn is_row_local(name: &str) -> bool {
    matches!(
        name,
        "torch.aten.sigmoid"
            | "torch.aten.silu"
            | "torch.aten.gelu"
            | "torch.aten.relu"
            | "torch.aten.tanh"
            | "torch.aten.neg"
            | "torch.aten.exp"
            | "torch.aten.mul.Tensor"
            | "torch.aten.add.Tensor"
            | "torch.aten.sub.Tensor"
            | "torch.aten.div.Tensor"
            | "torch.aten.mul.Scalar"
            | "torch.aten.add.Scalar"
            | "torch.aten.clamp"
            | "torch.aten.minimum"
            | "torch.aten.maximum"
            | "torch.prims.convert_element_type"
            | "torch.prim.ListUnpack"
            | "torch.aten.split_with_sizes"
            | "torch.aten.split.Tensor"
            | "torch.aten.chunk"
            | "torch.aten.slice.Tensor"
            | "torch.aten.unsqueeze"
            | "torch.aten.squeeze.dim"
            | "torch.prims.squeeze"
            | "torch.aten.sub.Scalar"
            | "torch.aten.rsub.Scalar"
            | "torch.aten.div.Scalar"
    )
}

/// Whether a shape op (split, slice, unsqueeze, squeeze) leaves dim 0, the rows, alone.
fn keeps_rows(op: OperationRef<'_, '_>, name: &str) -> bool {
    let int = |i: usize| op.operand(i).ok().and_then(|v| TorchValue::of(v).int());
    let rank = op.operand(0).ok().and_then(dims).map_or(0, |(d, _)| d.len() as i64);
    let not_rows = |d: i64, rank: i64| d != 0 && d != -rank;
    match name {
        "torch.aten.split_with_sizes" | "torch.aten.split.Tensor" | "torch.aten.chunk" => int(2).is_some_and(|d| not_rows(d, rank)),
        "torch.aten.slice.Tensor" => int(1).is_some_and(|d| not_rows(d, rank)),
        "torch.aten.unsqueeze" => int(1).is_some_and(|d| not_rows(d, rank + 1)),
        "torch.aten.squeeze.dim" => int(1).is_some_and(|d| not_rows(d, rank)),
        "torch.prims.squeeze" => op
            .operand(1)
            .ok()
            .and_then(|v| TorchValue::of(v).ints())
            .is_some_and(|ds| ds.iter().all(|d| not_rows(*d, rank))),
        _ => true,
    }
}

/// The per-slot layer found from the combining sum.
struct Layer<'c, 'a> {
    tokens: u64,
    top_k: u64,
    x: Value<'c, 'a>,
    x_rows: Value<'c, 'a>,
    ids: Value<'c, 'a>,
    weights: Value<'c, 'a>,
    rows: Value<'c, 'a>,
    stages: Vec<Stage<'c, 'a>>,
    /// Row-local ops between the matmuls, in block order.
    chain: Vec<OperationRef<'c, 'a>>,
    /// Per-expert parameters gathered per row by the same ids: (gathered value, table).
    params: Vec<(Value<'c, 'a>, Value<'c, 'a>)>,
    /// The flattened ids the weights are gathered by, (tokens * topK).
    flat_ids: Value<'c, 'a>,
}

/// Walks back from `value` through row-local ops to stage outputs and the repeated token rows.
fn collect<'c: 'a, 'a>(
    value: Value<'c, 'a>,
    rows: u64,
    x_rows: &mut Option<Value<'c, 'a>>,
    stages: &mut Vec<Stage<'c, 'a>>,
    chain: &mut Vec<OperationRef<'c, 'a>>,
    params: &mut Vec<(Value<'c, 'a>, Value<'c, 'a>, Value<'c, 'a>)>,
    depth: usize,
) -> Result<(), Unmaterializable> {
    if depth > 64 {
        return Err(refuse("row-local-chain", "the chain between the matmuls is deeper than 64 ops"));
    }
    if stages.iter().any(|s| s.output == value) || *x_rows == Some(value) || params.iter().any(|p| p.0 == value) {
        return Ok(());
    }
    if let Some(found) = stage(value) {
        stages.push(found);
        return collect(found.input, rows, x_rows, stages, chain, params, depth + 1);
    }
    if let Some((table, ids)) = gathered_by_ids(value) {
        // A per-expert parameter (a bias) read for each row by its expert id.
        params.push((value, table, ids));
        return Ok(());
    }
    let Some((op, _)) = producer(value) else {
        // A function argument of rows: only the first matmul's input may be token rows.
        return Err(refuse("token-rows-repeated", "a matmul reads rows that are a function argument, not token rows repeated per slot"));
    };
    let name = torch_op_name(&op);
    if name == "torch.aten.view" || name == "torch.aten.clone" || name == "torch.aten.reshape" {
        // The token rows repeated K times: view(clone(expand(unsqueeze(x, 1), [T, K, h])), [T*K, h]).
        if x_rows.is_none() {
            *x_rows = Some(value);
            return Ok(());
        }
        return Err(refuse("row-local-chain", format!("{name} between the matmuls")));
    }
    if !is_row_local(&name) || !keeps_rows(op, &name) {
        return Err(refuse("row-local-chain", format!("{name} between the per-slot matmuls is not row-local")));
    }
    if let Some((d, _)) = (0..op.result_count())
        .filter_map(|i| op.result(i).ok())
        .filter_map(|r| dims(r.into()))
        .find(|(d, _)| d.first() != Some(&rows))
    {
        if !name.starts_with("torch.prim.ListUnpack") {
            return Err(refuse("row-local-chain", format!("{name} gives {d:?}, not {rows} rows")));
        }
    }
    if !chain.contains(&op) {
        chain.push(op);
    }
    for index in 0..op.operand_count() {
        let Ok(operand) = op.operand(index) else { continue };
        // Constants and lists of constants are not rows.
        let is_tensor = dims(operand).is_some() || operand.r#type().to_string().starts_with("!torch.list<vtensor>");
        if !is_tensor {
            continue;
        }
        let row_aligned = dims(operand).is_none_or(|(d, _)| d.first() == Some(&rows));
        if !row_aligned {
            // Broadcast over the rows (a bias, a scalar tensor): the same for every row.
            continue;
        }
        collect(operand, rows, x_rows, stages, chain, params, depth + 1)?;
    }
    Ok(())
}

/// `x_rows` is token rows repeated K times: returns x (T, h).
fn token_rows<'c: 'a, 'a>(x_rows: Value<'c, 'a>, tokens: u64, top_k: u64) -> Result<Value<'c, 'a>, Unmaterializable> {
    let wrong = || refuse("token-rows-repeated", "the first matmul's rows are not each token's row repeated topK times");
    let mut value = x_rows;
    if let Some(op) = producer_named(value, &["torch.aten.view", "torch.aten.reshape"]) {
        value = op.operand(0).map_err(|_| wrong())?;
    }
    if let Some(op) = producer_named(value, &["torch.aten.clone"]) {
        value = op.operand(0).map_err(|_| wrong())?;
    }
    let expand = producer_named(value, &["torch.aten.expand"]).ok_or_else(wrong)?;
    let (expanded, _) = dims(value).ok_or_else(wrong)?;
    let unsqueeze = producer_named(expand.operand(0).map_err(|_| wrong())?, &["torch.aten.unsqueeze"]).ok_or_else(wrong)?;
    if TorchValue::of(unsqueeze.operand(1).map_err(|_| wrong())?).int() != Some(1) || expanded.len() != 3 || expanded[..2] != [tokens, top_k] {
        return Err(wrong());
    }
    let x = unsqueeze.operand(0).map_err(|_| wrong())?;
    match dims(x) {
        Some((d, _)) if d.len() == 2 && d[0] == tokens => Ok(x),
        _ => Err(wrong()),
    }
}

fn find<'c: 'a, 'a>(sum: OperationRef<'c, 'a>) -> Result<Layer<'c, 'a>, Unmaterializable> {
    let viewed = sum.operand(0).map_err(|_| refuse("internal", "sum operand"))?;
    let (view_dims, _) = dims(viewed).ok_or_else(|| refuse("dynamic-shapes", "combined rows"))?;
    let [tokens, top_k, _] = view_dims[..] else {
        return Err(refuse("no-rule-applies", "the summed view is not (tokens, topK, n)"));
    };
    let view = producer_named(viewed, &["torch.aten.view", "torch.aten.reshape", "torch.aten._unsafe_view"])
        .ok_or_else(|| refuse("no-rule-applies", "the sum does not read a view"))?;
    let weighted = view.operand(0).map_err(|_| refuse("internal", "view operand"))?;
    let mul = producer_named(weighted, &["torch.aten.mul.Tensor"]).ok_or_else(|| {
        refuse("weights-not-per-slot", "the slots are summed without a router weight per slot")
    })?;
    let rows = tokens * top_k;
    let (a, b) = (mul.operand(0).map_err(|_| refuse("internal", "mul"))?, mul.operand(1).map_err(|_| refuse("internal", "mul"))?);
    // The weights: (T*K, 1) from the (T, K) router weights.
    let weight_source = |v: Value<'c, 'a>| {
        let source = through_views(v);
        matches!(dims(source), Some((d, _)) if d == [tokens, top_k]).then_some(source)
    };
    let (rows_value, weights) = match (weight_source(a), weight_source(b)) {
        (None, Some(w)) => (a, w),
        (Some(w), None) => (b, w),
        _ => return Err(refuse("weights-not-per-slot", "no operand of the multiply is the (tokens, topK) router weights")),
    };
    let (mut x_rows, mut stages, mut chain, mut params) = (None, Vec::new(), Vec::new(), Vec::new());
    collect(rows_value, rows, &mut x_rows, &mut stages, &mut chain, &mut params, 0)?;
    if stages.is_empty() {
        return Err(refuse("row-local-chain", "no per-slot matmul computes the weighted rows"));
    }
    let x_rows = x_rows.ok_or_else(|| refuse("token-rows-repeated", "no matmul reads the token rows"))?;
    let x = token_rows(x_rows, tokens, top_k)?;
    // Every stage gathers by the same flattened ids (T, K) -> (T*K).
    let ids = through_views(stages[0].ids);
    for s in &stages {
        if through_views(s.ids) != ids {
            return Err(refuse("same-expert-ids", "the per-slot matmuls gather their weights by different ids"));
        }
    }
    for (_, table, param_ids) in &params {
        if through_views(*param_ids) != ids || dims(*param_ids).map(|d| d.0) != Some(vec![rows]) {
            return Err(refuse("same-expert-ids", "a per-row parameter is gathered by other ids than the matmuls' weights"));
        }
        if dims(*table).map(|d| d.0.len()) != Some(2) {
            return Err(refuse("row-local-chain", "a per-row parameter table is not (experts, n)"));
        }
    }
    match dims(ids) {
        Some((d, e)) if d == [tokens, top_k] && matches!(e.as_str(), "i64" | "i32") => {}
        _ => return Err(refuse("same-expert-ids", "the expert ids are not a (tokens, topK) integer tensor")),
    }
    let flat_ids = stages[0].ids;
    if dims(flat_ids).map(|d| d.0) != Some(vec![rows]) {
        return Err(refuse("same-expert-ids", "the weights are not gathered by the flattened (tokens * topK) ids"));
    }
    Ok(Layer {
        tokens,
        top_k,
        x,
        x_rows,
        ids,
        weights,
        rows: rows_value,
        stages,
        chain,
        params: params.into_iter().map(|(v, t, _)| (v, t)).collect(),
        flat_ids,
    })
}

/// Clones `op` in front of `before` with every operand in `map` replaced; returns the clone.
fn clone_before<'c: 'a, 'a>(op: OperationRef<'c, 'a>, before: OperationRef<'c, 'a>, map: &[(Value<'c, 'a>, Value<'c, 'a>)]) -> Result<OperationRef<'c, 'a>, Unmaterializable> {
    let block = before.block().ok_or_else(|| refuse("internal", "root has no block"))?;
    // SAFETY: the clone is a new detached op we own until the block takes it; its operands are
    // rewired to values that dominate `before` (sorted values created in front of it, or the
    // original operands, which dominate the original op and hence the root after it).
    unsafe {
        let clone = mlir_sys::mlirOperationClone(op.to_raw());
        for index in 0..op.operand_count() {
            let Ok(operand) = op.operand(index) else { continue };
            if let Some((_, to)) = map.iter().find(|(from, _)| *from == operand) {
                mlir_sys::mlirOperationSetOperand(clone, index as isize, to.to_raw());
            }
        }
        mlir_sys::mlirBlockInsertOwnedOperationBefore(block.to_raw(), before.to_raw(), clone);
        Ok(OperationRef::from_raw(clone))
    }
}

/// One stage as a grouped matmul on the sorted rows `input`: the weight transposed to (e, in, out)
/// when the stage read it as (e, out, in), the routing's counts as the group list, and `bias`
/// (an (e, n) table folded from `out + bias[ids]`) when given.
#[allow(clippy::too_many_arguments)]
fn stage_gmm<'c: 'a, 'a>(
    context: &'c Context,
    before: OperationRef<'c, 'a>,
    s: &Stage<'c, 'a>,
    input: Value<'c, 'a>,
    counts: Value<'c, 'a>,
    experts: u64,
    rows: u64,
    bias: Option<Value<'c, 'a>>,
) -> Result<Value<'c, 'a>, Unmaterializable> {
    let counts_type = counts.r#type().to_string();
    let (w_dims, w_elem) = dims(s.weight).ok_or_else(|| refuse("dynamic-shapes", "weight"))?;
    let (out_dims, out_elem) = dims(s.output).ok_or_else(|| refuse("dynamic-shapes", "matmul rows"))?;
    let (in_dims, in_elem) = dims(input).ok_or_else(|| refuse("dynamic-shapes", "matmul input"))?;
    if w_dims.len() != 3 {
        return Err(refuse("row-local-chain", "a per-slot matmul's weight is not (experts, a, b)"));
    }
    let (k_in, n_out) = if s.transposed { (w_dims[2], w_dims[1]) } else { (w_dims[1], w_dims[2]) };
    if w_dims[0] != experts || in_dims != [rows, k_in] || out_dims != [rows, n_out] || in_elem != w_elem || out_elem != w_elem {
        return Err(refuse("row-local-chain", "a per-slot matmul's shapes do not match its weight"));
    }
    let (w_type, in_type, out_type) = (tensor_type(&w_dims, &w_elem), tensor_type(&in_dims, &in_elem), tensor_type(&out_dims, &out_elem));
    let kn = tensor_type(&[experts, k_in, n_out], &w_elem);
    let mut body = String::new();
    let mut weight = "%w";
    if s.transposed {
        body.push_str(&format!(
            "  %e = tensor.empty() : {kn}\n  %wt = linalg.transpose ins(%w : {w_type}) outs(%e : {kn}) permutation = [0, 2, 1]\n"
        ));
        weight = "%wt";
    }
    let mut params = format!("%x: {in_type}, %w: {w_type}, %gl: {counts_type}");
    let mut args = vec![input, s.weight, counts];
    let (bias_operand, bias_type, bias_segment) = match bias {
        Some(table) => {
            params.push_str(&format!(", %b: {}", table.r#type()));
            args.push(table);
            (", %b".to_string(), format!(", {}", table.r#type()), 1)
        }
        None => (String::new(), String::new(), 0),
    };
    body.push_str(&format!(
        "  %y = \"npu.grouped_matmul\"(%x, {weight}, %gl{bias_operand}) {{group_list_type = 1 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, {bias_segment}>}} : ({in_type}, {kn}, {counts_type}{bias_type}) -> {out_type}\n"
    ));
    let text = format!("func.func @gmm({params}) -> {out_type} {{\n{body}  return %y : {out_type}\n}}");
    Ok(splice(context, before, &text, &args).map_err(|e| refuse("internal", e.to_string()))?[0])
}

/// Rewrites the per-slot layer combined by `sum` as routing + grouped matmuls on sorted rows +
/// finalize, replacing the sum's result. The old per-slot ops are left for dead-code removal.
pub fn rewrite<'c: 'a, 'a>(context: &'c Context, sum: OperationRef<'c, 'a>, spelling: &str) -> Result<(), Unmaterializable> {
    let layer = find(sum)?;
    let (t, k) = (layer.tokens, layer.top_k);
    let (x_dims, x_elem) = dims(layer.x).ok_or_else(|| refuse("dynamic-shapes", "x"))?;
    let (ids_dims, ids_elem) = dims(layer.ids).ok_or_else(|| refuse("dynamic-shapes", "ids"))?;
    let (w0_dims, _) = dims(layer.stages[0].weight).ok_or_else(|| refuse("dynamic-shapes", "weight"))?;
    let experts = w0_dims[0];
    let flat_i32 = tensor_type(&[t * k], "i32");
    let ex_type = tensor_type(&[t * k, x_dims[1]], &x_elem);
    let counts_type = tensor_type(&[experts], "i64");
    let ids32 = tensor_type(&ids_dims, "i32");
    let cast = if ids_elem == "i64" { format!("  %ids32 = arith.trunci %ids : {} to {ids32}\n", tensor_type(&ids_dims, &ids_elem)) } else { String::new() };
    let ids_name = if ids_elem == "i64" { "%ids32" } else { "%ids" };
    let x_type = tensor_type(&x_dims, &x_elem);
    let types = [x_type.as_str(), ids32.as_str(), ex_type.as_str(), flat_i32.as_str(), counts_type.as_str()];
    let routing_text = format!(
        "func.func @routing(%x: {x_type}, %ids: {}) -> ({ex_type}, {flat_i32}, {counts_type}) {{\n{cast}{}  return %ex, %inv, %counts : {ex_type}, {flat_i32}, {counts_type}\n}}",
        tensor_type(&ids_dims, &ids_elem),
        init_routing_line("%ex, %inv, %counts", ids_name, 0, experts, types)
    );
    let routing = splice(context, sum, &routing_text, &[layer.x, layer.ids]).map_err(|e| refuse("internal", e.to_string()))?;
    let (ex, inv, counts) = (routing[0], routing[1], routing[2]);
    if ex.r#type() != layer.x_rows.r#type() {
        return Err(refuse("token-rows-repeated", "the routed rows do not have the repeated rows' type"));
    }

    // The sorted world: each row value of the layer -> its counterpart on the sorted rows.
    let mut map: Vec<(Value<'c, 'a>, Value<'c, 'a>)> = vec![(layer.x_rows, ex)];
    let lookup = |map: &[(Value<'c, 'a>, Value<'c, 'a>)], v: Value<'c, 'a>| map.iter().find(|(from, _)| *from == v).map(|(_, to)| *to);

    // A bias added to the last matmul's rows (`add(out, bias[ids])`, alpha 1, the matmul's only
    // use) becomes its grouped matmul's bias, when it is f32 (what the fused op takes). Other
    // biases stay separate adds, rounded as the model rounds them.
    let stage_op = |i: usize| producer(layer.stages[i].output).map(|(op, _)| op);
    let last_stage = (0..layer.stages.len()).max_by(|a, b| match (stage_op(*a), stage_op(*b)) {
        (Some(x), Some(y)) => block_order(x, y),
        _ => std::cmp::Ordering::Equal,
    });
    let param_table = |v: Value<'c, 'a>| layer.params.iter().find(|(g, _)| *g == v).map(|(_, t)| *t);
    let mut folds: Vec<(OperationRef<'c, 'a>, usize, Value<'c, 'a>)> = Vec::new();
    for op in &layer.chain {
        if torch_op_name(op) != "torch.aten.add.Tensor" || op.operand(2).ok().and_then(|a| TorchValue::of(a).int()) != Some(1) {
            continue;
        }
        let (Ok(a), Ok(b)) = (op.operand(0), op.operand(1)) else { continue };
        for (out, param) in [(a, b), (b, a)] {
            let Some(index) = layer.stages.iter().position(|s| s.output == out) else { continue };
            let Some(table) = param_table(param) else { continue };
            let fits = match (dims(table), dims(out)) {
                (Some((td, te)), Some((od, oe))) => {
                    td.len() == 2 && td[0] == experts && td[1] == od[1] && te == oe && te == "f32" && Some(index) == last_stage
                }
                _ => false,
            };
            if fits && gmmfr_dialect::graph::users(out).len() == 1 && !folds.iter().any(|f| f.1 == index) {
                folds.push((*op, index, table));
                break;
            }
        }
    }

    // Parameters read per row elsewhere: gathered again by the sorted ids `ids[gidx]`.
    let unfolded: Vec<(Value<'c, 'a>, Value<'c, 'a>)> = layer
        .params
        .iter()
        .copied()
        .filter(|(g, _)| !folds.iter().any(|(add, _, _)| add.operand(0).ok() == Some(*g) || add.operand(1).ok() == Some(*g)))
        .collect();
    if !unfolded.is_empty() {
        let (flat_dims, flat_elem) = dims(layer.flat_ids).ok_or_else(|| refuse("dynamic-shapes", "ids"))?;
        let flat_type = tensor_type(&flat_dims, &flat_elem);
        let text = format!(
            "func.func @sorted_ids(%x: {x_type}, %ids: {}, %flat: {flat_type}) -> {flat_type} {{\n{cast}{}{}  return %r : {flat_type}\n}}",
            tensor_type(&ids_dims, &ids_elem),
            init_routing_line("%ex, %gidx, %counts", ids_name, 1, experts, types),
            gather_1d_lines("%r", "%flat", &flat_type, &flat_elem, "%gidx", &flat_i32, "i32", t * k)
        );
        let sorted_ids = splice(context, sum, &text, &[layer.x, layer.ids, layer.flat_ids]).map_err(|e| refuse("internal", e.to_string()))?[0];
        for (gathered, table) in unfolded {
            let (table_dims, table_elem) = dims(table).ok_or_else(|| refuse("dynamic-shapes", "parameter"))?;
            let out_type = tensor_type(&[t * k, table_dims[1]], &table_elem);
            let last = table_dims[0].max(1) - 1;
            let text = format!(
                "func.func @param(%table: {}, %ids: {flat_type}) -> {out_type} {{\n  %e = tensor.empty() : {out_type}\n  %r = linalg.generic {{indexing_maps = [affine_map<(d0, d1) -> (d0)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = [\"parallel\", \"parallel\"]}} ins(%ids : {flat_type}) outs(%e : {out_type}) {{\n  ^bb0(%id: {flat_elem}, %o: {table_elem}):\n    %zero = arith.constant 0 : {flat_elem}\n    %last = arith.constant {last} : {flat_elem}\n    %lo = arith.maxsi %id, %zero : {flat_elem}\n    %c = arith.minsi %lo, %last : {flat_elem}\n    %i = arith.index_cast %c : {flat_elem} to index\n    %j = linalg.index 1 : index\n    %v = tensor.extract %table[%i, %j] : {}\n    linalg.yield %v : {table_elem}\n  }} -> {out_type}\n  return %r : {out_type}\n}}",
                tensor_type(&table_dims, &table_elem),
                tensor_type(&table_dims, &table_elem)
            );
            if gathered.r#type().to_string() != out_type {
                return Err(refuse("row-local-chain", "a per-row parameter is not (rows, n)"));
            }
            let value = splice(context, sum, &text, &[table, sorted_ids]).map_err(|e| refuse("internal", e.to_string()))?[0];
            map.push((gathered, value));
        }
    }

    // Stages and row-local ops in block order.
    enum Step<'c, 'a> {
        Stage(usize),
        Op(OperationRef<'c, 'a>),
    }
    let mut steps: Vec<(OperationRef<'c, 'a>, Step<'c, 'a>)> = Vec::new();
    for index in 0..layer.stages.len() {
        let op = stage_op(index).ok_or_else(|| refuse("internal", "a stage has no defining op"))?;
        steps.push((op, Step::Stage(index)));
    }
    for op in &layer.chain {
        steps.push((*op, Step::Op(*op)));
    }
    steps.sort_by(|(a, _), (b, _)| block_order(*a, *b));
    for (_, step) in steps {
        let op = match step {
            Step::Op(op) => op,
            Step::Stage(index) => {
                let s = layer.stages[index];
                let input = lookup(&map, s.input).ok_or_else(|| refuse("row-local-chain", "a matmul reads rows computed outside the layer"))?;
                let fold = folds.iter().find(|f| f.1 == index);
                let y = stage_gmm(context, sum, &s, input, counts, experts, t * k, fold.map(|f| f.2))?;
                map.push((s.output, y));
                if let Some((add, _, _)) = fold {
                    let added: Value = add.result(0).map_err(|_| refuse("internal", "add result"))?.into();
                    map.push((added, y));
                }
                continue;
            }
        };
        if folds.iter().any(|(add, _, _)| *add == op) {
            continue;
        }
        // squeeze(unsqueeze(v)) back to v's type is v.
        let name = torch_op_name(&op);
        if matches!(name.as_str(), "torch.prims.squeeze" | "torch.aten.squeeze.dim") {
            let restored = op
                .operand(0)
                .ok()
                .and_then(|v| producer_named(v, &["torch.aten.unsqueeze"]))
                .and_then(|u| u.operand(0).ok())
                .filter(|v| op.result(0).is_ok_and(|r| r.r#type() == v.r#type()))
                .and_then(|v| lookup(&map, v));
            if let (Some(value), Ok(result)) = (restored, op.result(0)) {
                map.push((result.into(), value));
                continue;
            }
        }
        let clone = clone_before(op, sum, &map)?;
        for index in 0..op.result_count() {
            if let (Ok(old), Ok(new)) = (op.result(index), clone.result(index)) {
                map.push((old.into(), new.into()));
            }
        }
    }
    let rows = map
        .iter()
        .find(|(from, _)| *from == layer.rows)
        .map(|(_, to)| *to)
        .ok_or_else(|| refuse("internal", "the weighted rows have no sorted counterpart"))?;

    // Finalize: the router weights as (T, K) f32 scales, the inverse permutation (mode 2).
    let (rows_dims, rows_elem) = dims(rows).ok_or_else(|| refuse("dynamic-shapes", "rows"))?;
    let (w_dims, w_elem) = dims(layer.weights).ok_or_else(|| refuse("dynamic-shapes", "weights"))?;
    let out: Value = sum.result(0).map_err(|_| refuse("internal", "sum result"))?.into();
    let (out_dims, out_elem) = dims(out).ok_or_else(|| refuse("dynamic-shapes", "combine"))?;
    if out_dims != [t, rows_dims[1]] || out_elem != rows_elem {
        return Err(refuse("row-local-chain", "the combine's type is not (tokens, n) of the rows' type"));
    }
    let scales_type = tensor_type(&[t, k], "f32");
    let widen = if w_elem == "f32" { String::new() } else { format!("  %s = arith.extf %w : {} to {scales_type}\n", tensor_type(&w_dims, &w_elem)) };
    let scales = if w_elem == "f32" { "%w" } else { "%s" };
    let out_type = tensor_type(&out_dims, &out_elem);
    let text = format!(
        "func.func @finalize(%y: {}, %w: {}, %inv: {flat_i32}) -> {out_type} {{\n{widen}  %out = \"npu.moe_finalize_routing\"(%y, {scales}, %inv) {{drop_pad_mode = 2 : i64, operandSegmentSizes = array<i32: 1, 0, 0, 0, 1, 1, 0>, {SPELLING_ATTRIBUTE} = {}}} : ({}, {scales_type}, {flat_i32}) -> {out_type}\n  return %out : {out_type}\n}}",
        tensor_type(&rows_dims, &rows_elem),
        tensor_type(&w_dims, &w_elem),
        string_literal(&format!("{spelling} (recognized: per-slot bmm)")),
        tensor_type(&rows_dims, &rows_elem)
    );
    let finalized = splice(context, sum, &text, &[rows, layer.weights, inv]).map_err(|e| refuse("internal", e.to_string()))?;
    // SAFETY: both values are live in the same block and of the same type (checked above).
    unsafe { mlir_sys::mlirValueReplaceAllUsesOfWith(out.to_raw(), finalized[0].to_raw()) }
    Ok(())
}

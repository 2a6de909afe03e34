//! Gathers by an index tensor: `index.Tensor` with one index tensor on the first dim,
//! `embedding` (rows of its weight) and `index_select` on any dim, as a `linalg.generic` that extracts each element. Negative indices
//! wrap as in torch; an index still outside the dim is clamped into it, so generated code never
//! reads out of bounds (torch raises an error there instead).

use super::{Lowered, Snippet, Static, identity_map, int_operand, loop_dims, normalize_dim, parallel, result_type, tensor_operand};
use crate::frontend::torch_values::TorchValue;
use melior::ir::{OperationRef, Value, operation::OperationLike};

/// Lowers `op` if it is a gather by an index tensor.
pub fn lower<'c: 'a, 'a>(name: &str, op: OperationRef<'c, 'a>) -> Result<Option<Lowered<'c, 'a>>, String> {
    Ok(Some(match name {
        "torch.aten.index.Tensor" | "torch.aten._unsafe_index.Tensor" => {
            let list = op.operand(1).map_err(|_| "operand 1 is missing")?;
            let TorchValue::List(items) = TorchValue::of(list) else {
                return Err("the indices are not a list construct".into());
            };
            let index = match items.as_slice() {
                [only] => *only,
                _ => return Err(format!("{} index tensors (only one, on the first dim, is supported)", items.len())),
            };
            gather(op, index, 0, true)?
        }
        "torch.aten.embedding" => {
            // embedding(weight, indices, padding_idx, scale_grad, sparse): rows of weight.
            let index = op.operand(1).map_err(|_| "operand 1 is missing")?;
            gather(op, index, 0, true)?
        }
        "torch.aten.index_select" => {
            let (_, x) = tensor_operand(op, 0)?;
            let dim = normalize_dim(int_operand(op, 1)?, x.rank())?;
            let index = op.operand(2).map_err(|_| "operand 2 is missing")?;
            gather(op, index, dim, false)?
        }
        _ => return Ok(None),
    }))
}

/// `out[..., i..., ...] = x[..., index[i...], ...]` at `dim`; with `spread`, the index tensor's
/// dims replace `dim` (index.Tensor), otherwise the index is 1-D (index_select).
fn gather<'c: 'a, 'a>(op: OperationRef<'c, 'a>, index: Value<'c, 'a>, dim: usize, spread: bool) -> Result<Lowered<'c, 'a>, String> {
    let (x, t) = tensor_operand(op, 0)?;
    let it = Static::of(index)?;
    if !matches!(it.elem.as_str(), "i64" | "i32") {
        return Err(format!("index of element type {} (i64 or i32 expected)", it.elem));
    }
    if t.rank() == 0 {
        return Err("gather from a rank-0 tensor".into());
    }
    if !spread && it.rank() != 1 {
        return Err(format!("index_select takes a 1-D index, has {}", it.r#type()));
    }
    let out = result_type(op)?;
    let index_rank = it.rank();
    let mut expected: Vec<u64> = t.dims[..dim].to_vec();
    expected.extend(&it.dims);
    expected.extend(&t.dims[dim + 1..]);
    if expected != out.dims || out.elem != t.elem {
        return Err(format!("gathering {} by {} does not give {}", t.r#type(), it.r#type(), out.r#type()));
    }
    let size = t.dims[dim];
    if size == 0 {
        return Err("gather from an empty dim".into());
    }
    let mut snippet = Snippet::new();
    let x_name = snippet.arg(x);
    let i_name = snippet.arg(index);
    let empty = snippet.empty(&out);
    // Loop dims: dim positions before `dim`, then the index's, then the rest.
    let index_dims: Vec<String> = (dim..dim + index_rank).map(|d| format!("d{d}")).collect();
    let index_map = format!("affine_map<({}) -> ({})>", loop_dims(out.rank()), index_dims.join(", "));
    let mut body = String::new();
    let e = &it.elem;
    body.push_str(&format!("      %size = arith.constant {size} : {e}\n      %zero = arith.constant 0 : {e}\n      %last = arith.constant {} : {e}\n", size - 1));
    body.push_str(&format!("      %neg = arith.cmpi slt, %idx, %zero : {e}\n      %wrapped = arith.addi %idx, %size : {e}\n      %w = arith.select %neg, %wrapped, %idx : {e}\n"));
    body.push_str(&format!("      %lo = arith.maxsi %w, %zero : {e}\n      %c = arith.minsi %lo, %last : {e}\n      %at = arith.index_cast %c : {e} to index\n"));
    let mut coordinates = Vec::new();
    for d in 0..t.rank() {
        if d == dim {
            coordinates.push("%at".to_string());
            continue;
        }
        let loop_dim = if d < dim { d } else { d - 1 + index_rank };
        body.push_str(&format!("      %j{d} = linalg.index {loop_dim} : index\n"));
        coordinates.push(format!("%j{d}"));
    }
    let name = snippet.fresh("gather");
    snippet.line(&format!(
        "{name} = linalg.generic {{indexing_maps = [{index_map}, {}], iterator_types = [{}]}} ins({i_name} : {}) outs({empty} : {}) {{\n    ^bb0(%idx: {e}, %out: {}):\n{body}      %v = tensor.extract {x_name}[{}] : {}\n      linalg.yield %v : {}\n    }} -> {}",
        identity_map(out.rank()),
        parallel(out.rank()),
        it.r#type(),
        out.r#type(),
        out.elem,
        coordinates.join(", "),
        t.r#type(),
        out.elem,
        out.r#type()
    ));
    Lowered::single(op, snippet, name, &out)
}

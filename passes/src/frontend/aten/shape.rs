//! Ops that move data without computing: reshapes (view, reshape, unsqueeze, squeeze, flatten),
//! permutes and transposes, copies, expand, split, slice and cat.

use super::{Lowered, Snippet, Static, broadcast_map, identity_map, int_operand, ints_operand, normalize_dim, parallel, result_type, tensor_operand};
use crate::frontend::torch_values::TorchValue;
use gmmfr_dialect::graph::users;
use melior::ir::{OperationRef, Value, operation::OperationLike};

/// Lowers `op` if it is a data-movement op.
pub fn lower<'c: 'a, 'a>(name: &str, op: OperationRef<'c, 'a>) -> Result<Option<Lowered<'c, 'a>>, String> {
    Ok(Some(match name {
        "torch.aten.view" | "torch.aten.reshape" | "torch.aten._unsafe_view" | "torch.aten.flatten.using_ints"
        | "torch.aten.unsqueeze" | "torch.aten.squeeze.dim" | "torch.aten.squeeze" | "torch.prims.squeeze"
        | "torch.aten.unflatten.int" => reshape(op)?,
        "torch.aten.permute" => {
            let (_, x) = tensor_operand(op, 0)?;
            let dims = ints_operand(op, 1)?;
            let perm = dims.iter().map(|d| normalize_dim(*d, x.rank())).collect::<Result<Vec<_>, _>>()?;
            transpose(op, perm)?
        }
        "torch.aten.transpose.int" => {
            let (_, x) = tensor_operand(op, 0)?;
            let a = normalize_dim(int_operand(op, 1)?, x.rank())?;
            let b = normalize_dim(int_operand(op, 2)?, x.rank())?;
            let mut perm: Vec<usize> = (0..x.rank()).collect();
            perm.swap(a, b);
            transpose(op, perm)?
        }
        "torch.aten.t" | "torch.aten.numpy_T" => {
            let (_, x) = tensor_operand(op, 0)?;
            transpose(op, (0..x.rank()).rev().collect())?
        }
        "torch.aten.clone" | "torch.aten.alias" | "torch.aten.contiguous" | "torch.aten.detach" | "torch.aten.lift_fresh_copy" => {
            let (x, t) = tensor_operand(op, 0)?;
            let mut snippet = Snippet::new();
            let name = snippet.arg(x);
            Lowered::single(op, snippet, name, &t)?
        }
        "torch.aten.expand" | "torch.aten.broadcast_to" | "torch.aten.expand_as" => expand(op)?,
        "torch.aten.split_with_sizes" | "torch.aten.split.Tensor" | "torch.aten.chunk" => split(name, op)?,
        "torch.aten.slice.Tensor" => slice(op)?,
        "torch.aten.cat" => cat(op)?,
        _ => return Ok(None),
    }))
}

/// Any reshape between two static shapes of equal size: collapse to one dim (when the input has
/// more than one), then expand to the result (when it has more than one). Rank 0 collapses from
/// or expands to all-ones shapes with an empty reassociation.
fn reshape<'c: 'a, 'a>(op: OperationRef<'c, 'a>) -> Result<Lowered<'c, 'a>, String> {
    let (x, t) = tensor_operand(op, 0)?;
    let out = result_type(op)?;
    let size = |dims: &[u64]| dims.iter().product::<u64>();
    if size(&t.dims) != size(&out.dims) || t.elem != out.elem {
        return Err(format!("cannot reshape {} to {}", t.r#type(), out.r#type()));
    }
    let mut snippet = Snippet::new();
    let input = snippet.arg(x);
    let all = |rank: usize| format!("[[{}]]", (0..rank).map(|i| i.to_string()).collect::<Vec<_>>().join(", "));
    let shape = |dims: &[u64]| dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
    let mut current = input;
    let mut current_type = t.clone();
    if current_type.dims != out.dims && (t.rank() > 1 || out.rank() == 0) && t.rank() > 0 {
        let target = if out.rank() == 0 {
            out.clone()
        } else {
            Static {
                dims: vec![size(&t.dims)],
                elem: t.elem.clone(),
            }
        };
        let reassociation = if target.rank() == 0 { "[]".to_string() } else { all(t.rank()) };
        let name = snippet.fresh("r");
        snippet.line(&format!(
            "{name} = tensor.collapse_shape {current} {reassociation} : {} into {}",
            t.r#type(),
            target.r#type()
        ));
        current = name;
        current_type = target;
    }
    if current_type.dims != out.dims {
        let reassociation = if current_type.rank() == 0 { "[]".to_string() } else { all(out.rank()) };
        let name = snippet.fresh("r");
        snippet.line(&format!(
            "{name} = tensor.expand_shape {current} {reassociation} output_shape [{}] : {} into {}",
            shape(&out.dims),
            current_type.r#type(),
            out.r#type()
        ));
        current = name;
    }
    Lowered::single(op, snippet, current, &out)
}

fn transpose<'c: 'a, 'a>(op: OperationRef<'c, 'a>, perm: Vec<usize>) -> Result<Lowered<'c, 'a>, String> {
    let (x, t) = tensor_operand(op, 0)?;
    let mut sorted = perm.clone();
    sorted.sort_unstable();
    if sorted != (0..t.rank()).collect::<Vec<_>>() {
        return Err(format!("{perm:?} is not a permutation of the {} dims", t.rank()));
    }
    let out = Static {
        dims: perm.iter().map(|p| t.dims[*p]).collect(),
        elem: t.elem.clone(),
    };
    let mut snippet = Snippet::new();
    let input = snippet.arg(x);
    if perm.iter().enumerate().all(|(i, p)| i == *p) {
        return Lowered::single(op, snippet, input, &out);
    }
    let empty = snippet.empty(&out);
    let name = snippet.fresh("t");
    snippet.line(&format!(
        "{name} = linalg.transpose ins({input} : {}) outs({empty} : {}) permutation = [{}]",
        t.r#type(),
        out.r#type(),
        perm.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
    ));
    Lowered::single(op, snippet, name, &out)
}

/// A copy of `name` (of type `t`) broadcast to `out` (numpy rules).
pub fn broadcast<'c: 'a, 'a>(snippet: &mut Snippet<'c, 'a>, name: &str, t: &Static, out: &Static) -> Result<String, String> {
    if t.dims == out.dims {
        return Ok(name.to_string());
    }
    let empty = snippet.empty(out);
    let result = snippet.fresh("b");
    snippet.line(&format!(
        "{result} = linalg.generic {{indexing_maps = [{}, {}], iterator_types = [{}]}} ins({name} : {}) outs({empty} : {}) {{\n    ^bb0(%in: {}, %out: {}):\n      linalg.yield %in : {}\n    }} -> {}",
        broadcast_map(&out.dims, &t.dims)?,
        identity_map(out.rank()),
        parallel(out.rank()),
        t.r#type(),
        out.r#type(),
        t.elem,
        out.elem,
        t.elem,
        out.r#type()
    ));
    Ok(result)
}

fn expand<'c: 'a, 'a>(op: OperationRef<'c, 'a>) -> Result<Lowered<'c, 'a>, String> {
    let (x, t) = tensor_operand(op, 0)?;
    let out = result_type(op)?;
    let mut snippet = Snippet::new();
    let input = snippet.arg(x);
    let name = broadcast(&mut snippet, &input, &t, &out)?;
    Lowered::single(op, snippet, name, &out)
}

/// `tensor.extract_slice` of `input` (type `t`) along `dim`: `[start, start + size)` by `step`.
pub fn extract(snippet: &mut Snippet<'_, '_>, input: &str, t: &Static, dim: usize, start: u64, size: u64, step: u64) -> (String, Static) {
    let mut dims = t.dims.clone();
    dims[dim] = size;
    let out = Static {
        dims,
        elem: t.elem.clone(),
    };
    let offsets: Vec<String> = (0..t.rank()).map(|i| if i == dim { start.to_string() } else { "0".into() }).collect();
    let sizes: Vec<String> = out.dims.iter().map(|d| d.to_string()).collect();
    let strides: Vec<String> = (0..t.rank()).map(|i| if i == dim { step.to_string() } else { "1".into() }).collect();
    let name = snippet.fresh("s");
    snippet.line(&format!(
        "{name} = tensor.extract_slice {input}[{}] [{}] [{}] : {} to {}",
        offsets.join(", "),
        sizes.join(", "),
        strides.join(", "),
        t.r#type(),
        out.r#type()
    ));
    (name, out)
}

/// split_with_sizes / split / chunk, whose list result a single `torch.prim.ListUnpack` reads.
fn split<'c: 'a, 'a>(name: &str, op: OperationRef<'c, 'a>) -> Result<Lowered<'c, 'a>, String> {
    let (x, t) = tensor_operand(op, 0)?;
    let dim = normalize_dim(int_operand(op, 2)?, t.rank())?;
    let extent = t.dims[dim];
    let sizes: Vec<u64> = match name {
        "torch.aten.split_with_sizes" => ints_operand(op, 1)?
            .iter()
            .map(|s| u64::try_from(*s).map_err(|_| format!("negative split size {s}")))
            .collect::<Result<_, _>>()?,
        "torch.aten.split.Tensor" => {
            let size = u64::try_from(int_operand(op, 1)?).ok().filter(|s| *s > 0).ok_or("split size must be positive")?;
            (0..extent.div_ceil(size)).map(|i| size.min(extent - i * size)).collect()
        }
        _ => {
            let chunks = u64::try_from(int_operand(op, 1)?).ok().filter(|c| *c > 0).ok_or("chunks must be positive")?;
            let size = extent.div_ceil(chunks).max(1);
            (0..extent.div_ceil(size)).map(|i| size.min(extent - i * size)).collect()
        }
    };
    if sizes.iter().sum::<u64>() != extent {
        return Err(format!("split sizes {sizes:?} do not add up to {extent}"));
    }
    let list: Value = op.result(0).map_err(|_| "no result")?.into();
    let unpack = match users(list).as_slice() {
        [only] if only.name().as_string_ref().as_str() == Ok("torch.prim.ListUnpack") => *only,
        _ => return Err("its list is not read by exactly one torch.prim.ListUnpack".into()),
    };
    if unpack.result_count() != sizes.len() {
        return Err(format!("ListUnpack takes {} pieces of {}", unpack.result_count(), sizes.len()));
    }
    let mut snippet = Snippet::new();
    let input = snippet.arg(x);
    let mut results = Vec::new();
    let mut start = 0;
    for size in &sizes {
        let (piece, piece_type) = extract(&mut snippet, &input, &t, dim, start, *size, 1);
        results.push((piece, piece_type.r#type()));
        start += size;
    }
    let replaces = (0..unpack.result_count())
        .filter_map(|i| unpack.result(i).ok().map(Value::from))
        .collect();
    Ok(Lowered {
        snippet,
        results,
        replaces,
        also_erase: vec![unpack],
    })
}

fn slice<'c: 'a, 'a>(op: OperationRef<'c, 'a>) -> Result<Lowered<'c, 'a>, String> {
    let (x, t) = tensor_operand(op, 0)?;
    let dim = normalize_dim(int_operand(op, 1)?, t.rank())?;
    let extent = t.dims[dim] as i64;
    let bound = |index: usize, default: i64| -> Result<i64, String> {
        let value = op.operand(index).map_err(|_| format!("operand {index} is missing"))?;
        let v = match TorchValue::of(value) {
            TorchValue::None => default,
            other => other.int().ok_or_else(|| format!("operand {index} is not a constant integer"))?,
        };
        let v = if v < 0 { v + extent } else { v };
        Ok(v.clamp(0, extent))
    };
    let start = bound(2, 0)?;
    let end = bound(3, extent)?.max(start);
    let step = int_operand(op, 4)?;
    if step <= 0 {
        return Err(format!("slice step {step} must be positive"));
    }
    let size = ((end - start) + step - 1) / step;
    let out = result_type(op)?;
    if out.dims[dim] != size as u64 {
        return Err(format!("slice of {size} elements does not match the result {}", out.r#type()));
    }
    let mut snippet = Snippet::new();
    let input = snippet.arg(x);
    let (name, _) = extract(&mut snippet, &input, &t, dim, start as u64, size as u64, step as u64);
    Lowered::single(op, snippet, name, &out)
}

fn cat<'c: 'a, 'a>(op: OperationRef<'c, 'a>) -> Result<Lowered<'c, 'a>, String> {
    let list = op.operand(0).map_err(|_| "operand 0 is missing")?;
    let TorchValue::List(items) = TorchValue::of(list) else {
        return Err("its tensors are not a list construct".into());
    };
    let out = result_type(op)?;
    let dim = normalize_dim(int_operand(op, 1)?, out.rank())?;
    let mut snippet = Snippet::new();
    let mut current = snippet.empty(&out);
    let mut offset = 0u64;
    for item in items {
        let t = Static::of(item)?;
        if t.rank() != out.rank() || t.elem != out.elem {
            return Err(format!("cannot concatenate {} into {}", t.r#type(), out.r#type()));
        }
        let input = snippet.arg(item);
        let offsets: Vec<String> = (0..out.rank()).map(|i| if i == dim { offset.to_string() } else { "0".into() }).collect();
        let sizes: Vec<String> = t.dims.iter().map(|d| d.to_string()).collect();
        let strides = vec!["1"; out.rank()].join(", ");
        let name = snippet.fresh("i");
        snippet.line(&format!(
            "{name} = tensor.insert_slice {input} into {current}[{}] [{}] [{strides}] : {} into {}",
            offsets.join(", "),
            sizes.join(", "),
            t.r#type(),
            out.r#type()
        ));
        current = name;
        offset += t.dims[dim];
    }
    if offset != out.dims[dim] {
        return Err(format!("the pieces cover {offset} of {} along dim {dim}", out.dims[dim]));
    }
    Lowered::single(op, snippet, current, &out)
}

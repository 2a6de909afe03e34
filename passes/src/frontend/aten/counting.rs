//! The ops a MoE router uses to pick and group tokens by expert, as loops: `topk` (rows of a 1-D
//! or 2-D tensor), `sort` (1-D, stable or not: a stable sort is one valid result, ascending or
//! descending), `cumsum`, `bincount` and `histc`, and `index_put` (with or without accumulate) along the first dim. They are what an
//! unrecognized combine leaves behind; lowering them lets such a module run unfused. Index values
//! outside their range are skipped (torch raises there), so no generated access is out of bounds.

use super::{Lowered, Snippet, Static, int_operand, is_float, result_type, tensor_operand, tensor_type};
use crate::frontend::torch_values::TorchValue;
use melior::ir::{OperationRef, Value, ValueLike, operation::OperationLike};

/// Lowers `op` if it is one of the grouping ops.
pub fn lower<'c: 'a, 'a>(name: &str, op: OperationRef<'c, 'a>) -> Result<Option<Lowered<'c, 'a>>, String> {
    Ok(Some(match name {
        "torch.aten.sort" | "torch.aten.sort.stable" => sort(name, op)?,
        "torch.aten.cumsum" => cumsum(op)?,
        "torch.aten.topk" => topk(op)?,
        "torch.aten.bincount" => bincount(op)?,
        "torch.aten.histc" => histc(op)?,
        "torch.aten.index_put" | "torch.aten._index_put_impl" => index_put(op)?,
        _ => return Ok(None),
    }))
}

/// A 1-D tensor operand, made static with the `fallback` size when its type is `tensor<?x...>`
/// (bincount's result): the snippet casts it.
fn vector_operand<'c: 'a, 'a>(snippet: &mut Snippet<'c, 'a>, value: Value<'c, 'a>, fallback: u64) -> Result<(String, Static), String> {
    let name = snippet.arg(value);
    if let Ok(t) = Static::of(value) {
        if t.rank() != 1 {
            return Err(format!("{} is not 1-D", t.r#type()));
        }
        return Ok((name, t));
    }
    let text = value.r#type().to_string();
    let elem = text
        .strip_prefix("tensor<?x")
        .and_then(|r| r.strip_suffix('>'))
        .ok_or_else(|| format!("{text} is not a 1-D tensor"))?;
    let t = Static {
        dims: vec![fallback],
        elem: elem.to_string(),
    };
    let cast = snippet.fresh("cast");
    snippet.line(&format!("{cast} = tensor.cast {name} : {text} to {}", t.r#type()));
    Ok((cast, t))
}

/// `%place`: how many elements `%j` of `[0, %n)` come before element `%i` (value `%vi`) in the
/// order `before` (an `arith.cmp*` predicate), ties broken by position: a stable rank. `read_j`
/// reads element `%j` (as `%vj`); `%c0`, `%c1` and `%n` are in scope.
fn rank_loop(read_j: &str, before: &str, same: &str, e: &str) -> String {
    format!(
        "    %place = scf.for %j = %c0 to %n step %c1 iter_args(%p = %c0) -> (index) {{
      %vj = {read_j}
      %first = {before}, %vj, %vi : {e}
      %eq = {same}, %vj, %vi : {e}
      %earlier = arith.cmpi ult, %j, %i : index
      %tie = arith.andi %eq, %earlier : i1
      %counts = arith.ori %first, %tie : i1
      %one = arith.select %counts, %c1, %c0 : index
      %p2 = arith.addi %p, %one : index
      scf.yield %p2 : index
    }}"
    )
}

/// Stable sort of a 1-D tensor: the rank of element i is the number of elements before it in the
/// order (smaller, or equal and earlier); values and indices are written at their ranks.
fn sort<'c: 'a, 'a>(name: &str, op: OperationRef<'c, 'a>) -> Result<Lowered<'c, 'a>, String> {
    let (x, t) = tensor_operand(op, 0)?;
    if t.rank() != 1 {
        return Err(format!("sort of a rank-{} tensor (only 1-D is lowered)", t.rank()));
    }
    // sort(self, dim, descending) / sort.stable(self, stable, dim, descending)
    let (dim_index, descending_index) = if name.ends_with(".stable") { (2, 3) } else { (1, 2) };
    let dim = int_operand(op, dim_index)?;
    if dim != 0 && dim != -1 {
        return Err(format!("sort along dim {dim} of a 1-D tensor"));
    }
    let descending = matches!(TorchValue::of(op.operand(descending_index).map_err(|_| "descending")?), TorchValue::Bool(true));
    let values_type = result_type(op)?;
    let indices: Value = op.result(1).map_err(|_| "no indices result")?.into();
    let indices_type = Static::of(indices)?;
    if values_type != t || indices_type.dims != t.dims || indices_type.elem != "i64" {
        return Err(format!("sort results {} and {}", values_type.r#type(), indices_type.r#type()));
    }
    let n = t.dims[0];
    let e = &t.elem;
    let (less, greater) = if is_float(e) { ("arith.cmpf olt", "arith.cmpf ogt") } else { ("arith.cmpi slt", "arith.cmpi sgt") };
    let before = if descending { greater } else { less };
    let mut snippet = Snippet::new();
    let input = snippet.arg(x);
    let vals0 = snippet.empty(&t);
    let idx0 = snippet.empty(&indices_type);
    let (vt, it) = (t.r#type(), indices_type.r#type());
    let result = snippet.fresh("sorted");
    snippet.line(&format!(
        "%c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = arith.constant {n} : index
  {result}:2 = scf.for %i = %c0 to %n step %c1 iter_args(%vals = {vals0}, %idx = {idx0}) -> ({vt}, {it}) {{
    %vi = tensor.extract {input}[%i] : {vt}
{}
    %v2 = tensor.insert %vi into %vals[%place] : {vt}
    %i64 = arith.index_cast %i : index to i64
    %x2 = tensor.insert %i64 into %idx[%place] : {it}
    scf.yield %v2, %x2 : {vt}, {it}
  }}",
        rank_loop(&format!("tensor.extract {input}[%j] : {vt}"), before, if is_float(e) { "arith.cmpf oeq" } else { "arith.cmpi eq" }, e)
    ));
    let values: Value = op.result(0).map_err(|_| "no values result")?.into();
    Ok(Lowered {
        snippet,
        results: vec![(format!("{result}#0"), vt.clone()), (format!("{result}#1"), it.clone())],
        replaces: vec![values, indices],
        also_erase: Vec::new(),
    })
}

/// `topk(x, k, dim=-1, largest, sorted)` along the last dim of a 1-D or 2-D tensor: the rank of
/// element i in its row is the number of elements before it in the order (larger (smaller), or
/// equal and earlier); the first k ranks are written, so the result is sorted.
fn topk<'c: 'a, 'a>(op: OperationRef<'c, 'a>) -> Result<Lowered<'c, 'a>, String> {
    let (x, t) = tensor_operand(op, 0)?;
    let k = u64::try_from(int_operand(op, 1)?).map_err(|_| "k is negative")?;
    let dim = int_operand(op, 2)?;
    let rank = t.rank();
    if !(rank == 1 || rank == 2) || (dim != -1 && dim != rank as i64 - 1) {
        return Err(format!("topk along dim {dim} of {} (the last dim of a 1-D or 2-D tensor is lowered)", t.r#type()));
    }
    let largest = !matches!(TorchValue::of(op.operand(3).map_err(|_| "largest")?), TorchValue::Bool(false));
    let values_type = result_type(op)?;
    let indices: Value = op.result(1).map_err(|_| "no indices result")?.into();
    let indices_type = Static::of(indices)?;
    let n = t.dims[rank - 1];
    let rows = if rank == 2 { t.dims[0] } else { 1 };
    let mut expected = t.dims.clone();
    expected[rank - 1] = k;
    if k > n || values_type.dims != expected || values_type.elem != t.elem || indices_type.dims != expected || indices_type.elem != "i64" {
        return Err(format!("topk {k} of {} to {} and {}", t.r#type(), values_type.r#type(), indices_type.r#type()));
    }
    let e = &t.elem;
    let (better, same) = match (is_float(e), largest) {
        (true, true) => ("arith.cmpf ogt", "arith.cmpf oeq"),
        (true, false) => ("arith.cmpf olt", "arith.cmpf oeq"),
        (false, true) => ("arith.cmpi sgt", "arith.cmpi eq"),
        (false, false) => ("arith.cmpi slt", "arith.cmpi eq"),
    };
    // Work on (rows, n); reshape 1-D in and out.
    let mut snippet = Snippet::new();
    let input = snippet.arg(x);
    let matrix = Static { dims: vec![rows, n], elem: e.clone() };
    let out_matrix = Static { dims: vec![rows, k], elem: e.clone() };
    let idx_matrix = Static { dims: vec![rows, k], elem: "i64".into() };
    let source = if rank == 1 {
        let r = snippet.fresh("row");
        snippet.line(&format!("{r} = tensor.expand_shape {input} [[0, 1]] output_shape [1, {n}] : {} into {}", t.r#type(), matrix.r#type()));
        r
    } else {
        input
    };
    let vals0 = snippet.empty(&out_matrix);
    let idx0 = snippet.empty(&idx_matrix);
    let (mt, vt, it) = (matrix.r#type(), out_matrix.r#type(), idx_matrix.r#type());
    let result = snippet.fresh("topk");
    snippet.line(&format!(
        "%c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %rows = arith.constant {rows} : index
  %n = arith.constant {n} : index
  %k = arith.constant {k} : index
  {result}:2 = scf.for %r = %c0 to %rows step %c1 iter_args(%vals = {vals0}, %idx = {idx0}) -> ({vt}, {it}) {{
    %row:2 = scf.for %i = %c0 to %n step %c1 iter_args(%v1 = %vals, %x1 = %idx) -> ({vt}, {it}) {{
      %vi = tensor.extract {source}[%r, %i] : {mt}
{}
      %kept = arith.cmpi ult, %place, %k : index
      %next:2 = scf.if %kept -> ({vt}, {it}) {{
        %v2 = tensor.insert %vi into %v1[%r, %place] : {vt}
        %i64 = arith.index_cast %i : index to i64
        %x2 = tensor.insert %i64 into %x1[%r, %place] : {it}
        scf.yield %v2, %x2 : {vt}, {it}
      }} else {{
        scf.yield %v1, %x1 : {vt}, {it}
      }}
      scf.yield %next#0, %next#1 : {vt}, {it}
    }}
    scf.yield %row#0, %row#1 : {vt}, {it}
  }}",
        rank_loop(&format!("tensor.extract {source}[%r, %j] : {mt}"), better, same, e)
    ));
    let (mut values_name, mut indices_name) = (format!("{result}#0"), format!("{result}#1"));
    if rank == 1 {
        let v = snippet.fresh("vals");
        snippet.line(&format!("{v} = tensor.collapse_shape {values_name} [[0, 1]] : {vt} into {}", values_type.r#type()));
        let i = snippet.fresh("idx");
        snippet.line(&format!("{i} = tensor.collapse_shape {indices_name} [[0, 1]] : {it} into {}", indices_type.r#type()));
        values_name = v;
        indices_name = i;
    }
    let values: Value = op.result(0).map_err(|_| "no values result")?.into();
    Ok(Lowered {
        snippet,
        results: vec![(values_name, values_type.r#type()), (indices_name, indices_type.r#type())],
        replaces: vec![values, indices],
        also_erase: Vec::new(),
    })
}

/// Inclusive prefix sum of a 1-D tensor (in the result's type).
fn cumsum<'c: 'a, 'a>(op: OperationRef<'c, 'a>) -> Result<Lowered<'c, 'a>, String> {
    let out = result_type(op)?;
    if out.rank() != 1 {
        return Err(format!("cumsum to {} (only 1-D is lowered)", out.r#type()));
    }
    let mut snippet = Snippet::new();
    let x = op.operand(0).map_err(|_| "operand 0 is missing")?;
    let (input, t) = vector_operand(&mut snippet, x, out.dims[0])?;
    if t.dims != out.dims {
        return Err(format!("cumsum of {} to {}", t.r#type(), out.r#type()));
    }
    let wide = snippet.convert_tensor(&input, &t, &out.elem);
    let (ot, e) = (out.r#type(), &out.elem);
    let zero = if is_float(e) { "0.0" } else { "0" };
    let add = if is_float(e) { "arith.addf" } else { "arith.addi" };
    let init = snippet.empty(&out);
    let result = snippet.fresh("cumsum");
    snippet.line(&format!(
        "%c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = arith.constant {} : index
  %zero = arith.constant {zero} : {e}
  {result}:2 = scf.for %i = %c0 to %n step %c1 iter_args(%acc = {init}, %sum = %zero) -> ({ot}, {e}) {{
    %v = tensor.extract {wide}[%i] : {ot}
    %s = {add} %sum, %v : {e}
    %a = tensor.insert %s into %acc[%i] : {ot}
    scf.yield %a, %s : {ot}, {e}
  }}",
        out.dims[0]
    ));
    Lowered::single(op, snippet, format!("{result}#0"), &out)
}

/// Counts of each value in `[0, minlength)` (values outside are skipped; the output has
/// `minlength` elements, cast to the op's `tensor<?xi64>`).
fn bincount<'c: 'a, 'a>(op: OperationRef<'c, 'a>) -> Result<Lowered<'c, 'a>, String> {
    let (x, t) = tensor_operand(op, 0)?;
    if t.rank() != 1 || is_float(&t.elem) {
        return Err(format!("bincount of {}", t.r#type()));
    }
    if !TorchValue::of(op.operand(1).map_err(|_| "weights")?).is_none() {
        return Err("bincount with weights".into());
    }
    let bins = u64::try_from(int_operand(op, 2)?).ok().filter(|b| *b > 0).ok_or("minlength must be positive")?;
    let out: Value = op.result(0).map_err(|_| "no result")?.into();
    let out_text = out.r#type().to_string();
    let counted = Static {
        dims: vec![bins],
        elem: "i64".into(),
    };
    if out_text != counted.r#type() && out_text != "tensor<?xi64>" {
        return Err(format!("bincount result {out_text}"));
    }
    let mut snippet = Snippet::new();
    let input = snippet.arg(x);
    let zeros = snippet.zeros(&counted);
    let (ct, e) = (counted.r#type(), &t.elem);
    let result = snippet.fresh("counts");
    snippet.line(&format!(
        "%c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = arith.constant {} : index
  %bins = arith.constant {bins} : index
  %one = arith.constant 1 : i64
  {result} = scf.for %i = %c0 to %n step %c1 iter_args(%acc = {zeros}) -> ({ct}) {{
    %v = tensor.extract {input}[%i] : {}
    %b = arith.index_cast %v : {e} to index
    %inside = arith.cmpi ult, %b, %bins : index
    %next = scf.if %inside -> ({ct}) {{
      %old = tensor.extract %acc[%b] : {ct}
      %new = arith.addi %old, %one : i64
      %w = tensor.insert %new into %acc[%b] : {ct}
      scf.yield %w : {ct}
    }} else {{
      scf.yield %acc : {ct}
    }}
    scf.yield %next : {ct}
  }}",
        t.dims[0],
        t.r#type()
    ));
    let mut name = result;
    if out_text != ct {
        let cast = snippet.fresh("dyn");
        snippet.line(&format!("{cast} = tensor.cast {name} : {ct} to {out_text}"));
        name = cast;
    }
    Ok(Lowered {
        snippet,
        results: vec![(name, out_text)],
        replaces: vec![out],
        also_erase: Vec::new(),
    })
}

/// `histc(x, bins, min, max)`: counts of x in `bins` equal bins over [min, max] (max in the last
/// bin; values outside are skipped), as the result's float type.
fn histc<'c: 'a, 'a>(op: OperationRef<'c, 'a>) -> Result<Lowered<'c, 'a>, String> {
    let (x, t) = tensor_operand(op, 0)?;
    let out = result_type(op)?;
    let number = |i: usize| -> Result<f64, String> {
        match TorchValue::of(op.operand(i).map_err(|_| format!("operand {i} is missing"))?) {
            TorchValue::Int(v) => Ok(v as f64),
            TorchValue::Float(v) => Ok(v),
            _ => Err(format!("operand {i} is not a constant number")),
        }
    };
    let bins = int_operand(op, 1)?;
    let (lo, hi) = (number(2)?, number(3)?);
    if t.rank() != 1 || !is_float(&t.elem) || out.dims != [bins as u64] || !(hi > lo) || bins <= 0 {
        return Err(format!("histc of {} into {} over [{lo}, {hi}]", t.r#type(), out.r#type()));
    }
    let mut snippet = Snippet::new();
    let input = snippet.arg(x);
    let wide = snippet.convert_tensor(&input, &t, "f64");
    let zeros = snippet.zeros(&out);
    let (ot, e) = (out.r#type(), &out.elem);
    let result = snippet.fresh("hist");
    snippet.line(&format!(
        "%c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = arith.constant {} : index
  %lo = arith.constant {lo:.17e} : f64
  %hi = arith.constant {hi:.17e} : f64
  %scale = arith.constant {:.17e} : f64
  %last = arith.constant {} : i64
  %one = arith.constant 1.0 : {e}
  {result} = scf.for %i = %c0 to %n step %c1 iter_args(%acc = {zeros}) -> ({ot}) {{
    %v = tensor.extract {wide}[%i] : {}
    %ge = arith.cmpf oge, %v, %lo : f64
    %le = arith.cmpf ole, %v, %hi : f64
    %inside = arith.andi %ge, %le : i1
    %next = scf.if %inside -> ({ot}) {{
      %off = arith.subf %v, %lo : f64
      %pos = arith.mulf %off, %scale : f64
      %raw = arith.fptosi %pos : f64 to i64
      %bin = arith.minsi %raw, %last : i64
      %b = arith.index_cast %bin : i64 to index
      %old = tensor.extract %acc[%b] : {ot}
      %new = arith.addf %old, %one : {e}
      %w = tensor.insert %new into %acc[%b] : {ot}
      scf.yield %w : {ot}
    }} else {{
      scf.yield %acc : {ot}
    }}
    scf.yield %next : {ot}
  }}",
        t.dims[0],
        bins as f64 / (hi - lo),
        bins - 1,
        tensor_type(&t.dims, "f64")
    ));
    Lowered::single(op, snippet, result, &out)
}

/// `index_put(base, [idx], values, accumulate)` with one index tensor on the first dim: each
/// row `i` of values goes to (or is added to) row `idx[i]` of a copy of base, in order.
fn index_put<'c: 'a, 'a>(op: OperationRef<'c, 'a>) -> Result<Lowered<'c, 'a>, String> {
    let (base, bt) = tensor_operand(op, 0)?;
    let list = op.operand(1).map_err(|_| "operand 1 is missing")?;
    let TorchValue::List(indices) = TorchValue::of(list) else {
        return Err("the indices are not a list construct".into());
    };
    let [index] = indices.as_slice() else {
        return Err(format!("{} index tensors (only one, on the first dim, is lowered)", indices.len()));
    };
    let it = Static::of(*index)?;
    let (values, vt) = tensor_operand(op, 2)?;
    let accumulate = matches!(TorchValue::of(op.operand(3).map_err(|_| "accumulate")?), TorchValue::Bool(true));
    let out = result_type(op)?;
    if it.rank() != 1 || !matches!(it.elem.as_str(), "i64" | "i32") || bt.rank() == 0 || out != bt {
        return Err(format!("index_put into {} by {}", bt.r#type(), it.r#type()));
    }
    let row: Vec<u64> = bt.dims[1..].to_vec();
    // values: one row per index (broadcast of a single row or scalar is not lowered).
    let mut expected = vec![it.dims[0]];
    expected.extend(&row);
    if vt.dims != expected || vt.elem != bt.elem {
        return Err(format!("index_put of {} rows into {}", vt.r#type(), bt.r#type()));
    }
    let mut snippet = Snippet::new();
    let base_name = snippet.arg(base);
    let index_name = snippet.arg(*index);
    let values_name = snippet.arg(values);
    let (ot, e, ie) = (out.r#type(), &bt.elem, &it.elem);
    let width: u64 = row.iter().product();
    // Rows as flat vectors: collapse to (rows, width) when the row has several dims.
    let flat = Static {
        dims: vec![bt.dims[0], width],
        elem: e.clone(),
    };
    let flat_values = Static {
        dims: vec![it.dims[0], width],
        elem: e.clone(),
    };
    let reshape = |snippet: &mut Snippet<'c, 'a>, name: &str, from: &Static, to: &Static| -> String {
        if from.dims == to.dims {
            return name.to_string();
        }
        let r = snippet.fresh("flat");
        let group = (1..from.rank()).map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
        let reassociation = if from.rank() == 1 { "[[0, 1]]".to_string() } else { format!("[[0], [{group}]]") };
        if from.rank() == 1 {
            snippet.line(&format!("{r} = tensor.expand_shape {name} {reassociation} output_shape [{}, 1] : {} into {}", from.dims[0], from.r#type(), to.r#type()));
        } else {
            snippet.line(&format!("{r} = tensor.collapse_shape {name} {reassociation} : {} into {}", from.r#type(), to.r#type()));
        }
        r
    };
    let base_flat = reshape(&mut snippet, &base_name, &bt, &flat);
    let values_flat = reshape(&mut snippet, &values_name, &vt, &flat_values);
    let (ft, vft) = (flat.r#type(), flat_values.r#type());
    let combine = if accumulate {
        format!("%old = tensor.extract %acc2[%r, %k] : {ft}\n        %new = {} %old, %v : {e}\n", if is_float(e) { "arith.addf" } else { "arith.addi" })
    } else {
        String::new()
    };
    let written = if accumulate { "%new" } else { "%v" };
    let result = snippet.fresh("put");
    snippet.line(&format!(
        "%izero = arith.constant 0 : {ie}
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = arith.constant {} : index
  %width = arith.constant {width} : index
  %rows = arith.constant {} : index
  {result} = scf.for %i = %c0 to %n step %c1 iter_args(%acc = {base_flat}) -> ({ft}) {{
    %raw = tensor.extract {index_name}[%i] : {}
    %ri = arith.index_cast %raw : {ie} to index
    %neg = arith.cmpi slt, %raw, %izero : {ie}
    %wrapped = arith.addi %ri, %rows : index
    %r = arith.select %neg, %wrapped, %ri : index
    %inside = arith.cmpi ult, %r, %rows : index
    %next = scf.if %inside -> ({ft}) {{
      %row = scf.for %k = %c0 to %width step %c1 iter_args(%acc2 = %acc) -> ({ft}) {{
        %v = tensor.extract {values_flat}[%i, %k] : {vft}
        {combine}        %w = tensor.insert {written} into %acc2[%r, %k] : {ft}
        scf.yield %w : {ft}
      }}
      scf.yield %row : {ft}
    }} else {{
      scf.yield %acc : {ft}
    }}
    scf.yield %next : {ft}
  }}",
        it.dims[0],
        bt.dims[0],
        it.r#type()
    ));
    let mut name = result;
    if flat.dims != bt.dims {
        let back = snippet.fresh("rows");
        if bt.rank() == 1 {
            snippet.line(&format!("{back} = tensor.collapse_shape {name} [[0, 1]] : {ft} into {ot}"));
        } else {
            let group = (1..bt.rank()).map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
            snippet.line(&format!(
                "{back} = tensor.expand_shape {name} [[0], [{group}]] output_shape [{}] : {ft} into {ot}",
                bt.dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
            ));
        }
        name = back;
    }
    Lowered::single(op, snippet, name, &out)
}

//! Elementwise ops with numpy broadcasting and torch's type promotion (the result type torch-mlir
//! recorded): arithmetic with tensors and scalars, activations, dtype conversions. Half-float
//! results are computed in f32 and rounded once, as torch's CPU kernels do.

use super::{Lowered, Snippet, Static, broadcast_map, compute_elem, convert, identity_map, is_float, parallel, result_type};
use crate::frontend::torch_values::TorchValue;
use melior::ir::{OperationRef, Value, operation::OperationLike};

/// One input of an elementwise op.
enum Input<'c, 'a> {
    /// A tensor, broadcast to the result.
    Tensor(Value<'c, 'a>, Static),
    /// A number known at compile time.
    Scalar(f64),
}

fn input<'c: 'a, 'a>(op: OperationRef<'c, 'a>, index: usize) -> Result<Input<'c, 'a>, String> {
    let value = op.operand(index).map_err(|_| format!("operand {index} is missing"))?;
    match TorchValue::of(value) {
        TorchValue::Int(v) => Ok(Input::Scalar(v as f64)),
        TorchValue::Float(v) => Ok(Input::Scalar(v)),
        TorchValue::Bool(v) => Ok(Input::Scalar(if v { 1.0 } else { 0.0 })),
        _ => Ok(Input::Tensor(value, Static::of(value)?)),
    }
}

fn scalar<'c: 'a, 'a>(op: OperationRef<'c, 'a>, index: usize) -> Result<f64, String> {
    match input(op, index)? {
        Input::Scalar(v) => Ok(v),
        Input::Tensor(..) => Err(format!("operand {index} is not a constant number")),
    }
}

/// The body of a `linalg.generic` computing in one element type.
struct Body {
    text: String,
    fresh: usize,
    elem: String,
}

impl Body {
    fn value(&mut self, line: impl FnOnce(&str) -> String) -> String {
        self.fresh += 1;
        let name = format!("%v{}", self.fresh);
        let text = line(&name);
        self.text.push_str(&format!("      {name} = {text}\n"));
        name
    }

    fn float(&self) -> bool {
        is_float(&self.elem)
    }

    fn constant(&mut self, v: f64) -> String {
        let elem = self.elem.clone();
        let literal = if is_float(&elem) {
            format!("{v:.17e}")
        } else if elem == "i1" {
            (if v != 0.0 { "true" } else { "false" }).to_string()
        } else {
            format!("{}", v as i64)
        };
        if elem == "i1" {
            return self.value(|_| format!("arith.constant {literal}"));
        }
        self.value(|_| format!("arith.constant {literal} : {elem}"))
    }

    fn binary(&mut self, float_op: &str, int_op: &str, a: &str, b: &str) -> String {
        let op = if self.float() { float_op } else { int_op };
        let elem = self.elem.clone();
        self.value(|_| format!("{op} {a}, {b} : {elem}"))
    }

    fn unary(&mut self, op: &str, a: &str) -> String {
        let elem = self.elem.clone();
        self.value(|_| format!("{op} {a} : {elem}"))
    }

    /// `a * alpha` unless alpha is 1.
    fn scaled(&mut self, a: &str, alpha: f64) -> String {
        if alpha == 1.0 {
            return a.to_string();
        }
        let c = self.constant(alpha);
        self.binary("arith.mulf", "arith.muli", a, &c)
    }

    fn sigmoid(&mut self, x: &str) -> String {
        let n = self.unary("arith.negf", x);
        let e = self.unary("math.exp", &n);
        let one = self.constant(1.0);
        let d = self.binary("arith.addf", "arith.addi", &one, &e);
        self.binary("arith.divf", "arith.divsi", &one, &d)
    }
}

/// Lowers `op` if it is an elementwise op.
pub fn lower<'c: 'a, 'a>(name: &str, op: OperationRef<'c, 'a>) -> Result<Option<Lowered<'c, 'a>>, String> {
    let short = name.trim_start_matches("torch.aten.").trim_start_matches("torch.prims.");
    let floats_only = |body: &Body| -> Result<(), String> {
        if body.float() { Ok(()) } else { Err(format!("{short} on integers is not supported")) }
    };
    let lowered = match short {
        "add.Tensor" | "sub.Tensor" | "add.Scalar" | "sub.Scalar" | "rsub.Scalar" => {
            let alpha = if op.operand_count() > 2 { scalar(op, 2)? } else { 1.0 };
            let kind = short.split('.').next().unwrap_or("").to_string();
            build(op, vec![input(op, 0)?, input(op, 1)?], move |b, v| {
                Ok(match kind.as_str() {
                    "add" => {
                        let s = b.scaled(&v[1], alpha);
                        b.binary("arith.addf", "arith.addi", &v[0], &s)
                    }
                    "sub" => {
                        let s = b.scaled(&v[1], alpha);
                        b.binary("arith.subf", "arith.subi", &v[0], &s)
                    }
                    _ => {
                        let s = b.scaled(&v[0], alpha);
                        b.binary("arith.subf", "arith.subi", &v[1], &s)
                    }
                })
            })?
        }
        "mul.Tensor" | "mul.Scalar" => build(op, vec![input(op, 0)?, input(op, 1)?], |b, v| {
            Ok(b.binary("arith.mulf", "arith.muli", &v[0], &v[1]))
        })?,
        "div.Tensor" | "div.Scalar" => build(op, vec![input(op, 0)?, input(op, 1)?], |b, v| {
            floats_only(b)?;
            Ok(b.binary("arith.divf", "arith.divf", &v[0], &v[1]))
        })?,
        "div.Tensor_mode" | "div.Scalar_mode" => {
            let mode = match TorchValue::of(op.operand(2).map_err(|_| "operand 2 is missing")?) {
                TorchValue::Str(mode) => mode,
                TorchValue::None => "true".to_string(),
                _ => return Err("the rounding mode is not a constant".into()),
            };
            build(op, vec![input(op, 0)?, input(op, 1)?], move |b, v| {
                Ok(match (mode.as_str(), b.float()) {
                    ("floor", false) => b.binary("", "arith.floordivsi", &v[0], &v[1]),
                    ("trunc", false) => b.binary("", "arith.divsi", &v[0], &v[1]),
                    ("floor", true) => {
                        let q = b.binary("arith.divf", "", &v[0], &v[1]);
                        b.unary("math.floor", &q)
                    }
                    ("trunc", true) => {
                        let q = b.binary("arith.divf", "", &v[0], &v[1]);
                        b.unary("math.trunc", &q)
                    }
                    ("true", true) => b.binary("arith.divf", "", &v[0], &v[1]),
                    (other, _) => return Err(format!("rounding mode '{other}' on this type is not supported")),
                })
            })?
        }
        "maximum" | "minimum" => {
            let max = short == "maximum";
            build(op, vec![input(op, 0)?, input(op, 1)?], move |b, v| {
                Ok(if max {
                    b.binary("arith.maximumf", "arith.maxsi", &v[0], &v[1])
                } else {
                    b.binary("arith.minimumf", "arith.minsi", &v[0], &v[1])
                })
            })?
        }
        "clamp" | "clamp_min" | "clamp_max" => {
            let bound = |index: usize| -> Result<Option<f64>, String> {
                if index >= op.operand_count() {
                    return Ok(None);
                }
                match TorchValue::of(op.operand(index).map_err(|_| format!("operand {index} is missing"))?) {
                    TorchValue::None => Ok(None),
                    TorchValue::Int(v) => Ok(Some(v as f64)),
                    TorchValue::Float(v) => Ok(Some(v)),
                    _ => Err(format!("clamp bound {index} is not a constant number")),
                }
            };
            let (lo, hi) = match short {
                "clamp_min" => (bound(1)?, None),
                "clamp_max" => (None, bound(1)?),
                _ => (bound(1)?, bound(2)?),
            };
            build(op, vec![input(op, 0)?], move |b, v| {
                let mut x = v[0].clone();
                if let Some(lo) = lo {
                    let c = b.constant(lo);
                    x = b.binary("arith.maximumf", "arith.maxsi", &x, &c);
                }
                if let Some(hi) = hi {
                    let c = b.constant(hi);
                    x = b.binary("arith.minimumf", "arith.minsi", &x, &c);
                }
                Ok(x)
            })?
        }
        "pow.Tensor_Scalar" => {
            let exponent = scalar(op, 1)?;
            build(op, vec![input(op, 0)?], move |b, v| {
                if exponent == 2.0 {
                    return Ok(b.binary("arith.mulf", "arith.muli", &v[0], &v[0]));
                }
                floats_only(b)?;
                let e = b.constant(exponent);
                Ok(b.binary("math.powf", "", &v[0], &e))
            })?
        }
        "neg" => build(op, vec![input(op, 0)?], |b, v| {
            Ok(if b.float() {
                b.unary("arith.negf", &v[0])
            } else {
                let zero = b.constant(0.0);
                b.binary("", "arith.subi", &zero, &v[0])
            })
        })?,
        "relu" => build(op, vec![input(op, 0)?], |b, v| {
            let zero = b.constant(0.0);
            Ok(b.binary("arith.maximumf", "arith.maxsi", &v[0], &zero))
        })?,
        "sigmoid" => build(op, vec![input(op, 0)?], |b, v| {
            floats_only(b)?;
            Ok(b.sigmoid(&v[0]))
        })?,
        "silu" => build(op, vec![input(op, 0)?], |b, v| {
            floats_only(b)?;
            let s = b.sigmoid(&v[0]);
            Ok(b.binary("arith.mulf", "", &v[0], &s))
        })?,
        "reciprocal" => build(op, vec![input(op, 0)?], |b, v| {
            floats_only(b)?;
            let one = b.constant(1.0);
            Ok(b.binary("arith.divf", "", &one, &v[0]))
        })?,
        "exp" | "rsqrt" | "sqrt" | "tanh" | "sin" | "cos" | "log" | "abs" => {
            let math = format!("math.{}", if short == "abs" { "absf" } else { short });
            build(op, vec![input(op, 0)?], move |b, v| {
                floats_only(b)?;
                Ok(b.unary(&math, &v[0]))
            })?
        }
        // Conversions: the result type says the target dtype.
        "convert_element_type" | "to.dtype" | "_to_copy" | "type_as" => build(op, vec![input(op, 0)?], |_, v| Ok(v[0].clone()))?,
        _ => return number_to_tensor(name, op),
    };
    Ok(Some(lowered))
}

/// torch_npu's `npu_swiglu(x, dim=-1)`: `silu(a) * b` for the halves `[a, b]` of the last dim,
/// computed in f32 for half types (one linalg.generic reading both halves of x).
fn swiglu<'c: 'a, 'a>(op: OperationRef<'c, 'a>) -> Result<Lowered<'c, 'a>, String> {
    let (x, t) = super::tensor_operand(op, 0)?;
    let out = result_type(op)?;
    let rank = t.rank();
    let dim = if op.operand_count() > 1 { super::int_operand(op, 1)? } else { -1 };
    if rank == 0 || super::normalize_dim(dim, rank)? != rank - 1 {
        return Err(format!("npu_swiglu along dim {dim} of {} (only the last dim is lowered)", t.r#type()));
    }
    let half = t.dims[rank - 1] / 2;
    let mut expected = t.dims.clone();
    expected[rank - 1] = half;
    if t.dims[rank - 1] % 2 != 0 || out.dims != expected || out.elem != t.elem || !is_float(&t.elem) {
        return Err(format!("npu_swiglu of {} to {}", t.r#type(), out.r#type()));
    }
    let compute = compute_elem(&out.elem).to_string();
    let mut body = String::new();
    let mut fresh = 0;
    let a = convert(&mut body, &mut fresh, "%a", &t.elem, &compute);
    let b = convert(&mut body, &mut fresh, "%b", &t.elem, &compute);
    let mut result = format!("%r{fresh}");
    body.push_str(&format!(
        "      %n = arith.negf {a} : {compute}\n      %e = math.exp %n : {compute}\n      %one = arith.constant 1.0 : {compute}\n      %d = arith.addf %one, %e : {compute}\n      %s = arith.divf {a}, %d : {compute}\n      {result} = arith.mulf %s, {b} : {compute}\n"
    ));
    result = convert(&mut body, &mut fresh, &result, &compute, &out.elem);
    let mut snippet = Snippet::new();
    let input = snippet.arg(x);
    // The two halves as slices of the last dim.
    let halves: Vec<String> =
        [0, half].iter().map(|start| super::shape::extract(&mut snippet, &input, &t, rank - 1, *start, half, 1).0).collect();
    let empty = snippet.empty(&out);
    let name = snippet.fresh("swiglu");
    let map = identity_map(rank);
    snippet.line(&format!(
        "{name} = linalg.generic {{indexing_maps = [{map}, {map}, {map}], iterator_types = [{}]}} ins({}, {} : {}, {}) outs({empty} : {}) {{\n    ^bb0(%a: {}, %b: {}, %out: {}):\n{body}      linalg.yield {result} : {}\n    }} -> {}",
        parallel(rank),
        halves[0],
        halves[1],
        out.r#type(),
        out.r#type(),
        out.r#type(),
        t.elem,
        t.elem,
        out.elem,
        out.elem,
        out.r#type()
    ));
    Lowered::single(op, snippet, name, &out)
}

/// `arange.start_step(start, end, step, ...)` (and `arange.start`, `arange`): `start + i * step`
/// over the static result.
fn arange<'c: 'a, 'a>(name: &str, op: OperationRef<'c, 'a>) -> Result<Lowered<'c, 'a>, String> {
    let (start, step) = match name {
        "torch.aten.arange" => (0.0, 1.0),
        "torch.aten.arange.start" => (scalar(op, 0)?, 1.0),
        _ => (scalar(op, 0)?, scalar(op, 2)?),
    };
    let out = result_type(op)?;
    if out.rank() != 1 {
        return Err(format!("arange of type {}", out.r#type()));
    }
    let mut snippet = Snippet::new();
    let empty = snippet.empty(&out);
    let e = &out.elem;
    let (start_text, step_text, mul, add, from_index) = if is_float(e) {
        (format!("{start:.17e}"), format!("{step:.17e}"), "arith.mulf", "arith.addf", format!("%i64 = arith.index_cast %i : index to i64
      %iv = arith.sitofp %i64 : i64 to {e}"))
    } else {
        (format!("{}", start as i64), format!("{}", step as i64), "arith.muli", "arith.addi", format!("%iv = arith.index_cast %i : index to {e}"))
    };
    let name = snippet.fresh("ar");
    snippet.line(&format!(
        "{name} = linalg.generic {{indexing_maps = [{}], iterator_types = [\"parallel\"]}} outs({empty} : {}) {{\n    ^bb0(%out: {e}):\n      %i = linalg.index 0 : index\n      {from_index}\n      %start = arith.constant {start_text} : {e}\n      %step = arith.constant {step_text} : {e}\n      %m = {mul} %iv, %step : {e}\n      %v = {add} %start, %m : {e}\n      linalg.yield %v : {e}\n    }} -> {}",
        identity_map(1),
        out.r#type(),
        out.r#type()
    ));
    Lowered::single(op, snippet, name, &out)
}

/// `prim.NumToTensor.Scalar(n)`, `aten.scalar_tensor(n, dtype, ...)`, `aten.full(size, n, ...)`,
/// `full_like`, `zeros`/`ones` (and `_like`, `new_`) and `empty*`: a constant tensor of the result
/// type.
fn number_to_tensor<'c: 'a, 'a>(name: &str, op: OperationRef<'c, 'a>) -> Result<Option<Lowered<'c, 'a>>, String> {
    if matches!(name, "torch.aten.arange.start_step" | "torch.aten.arange.start" | "torch.aten.arange") {
        return arange(name, op).map(Some);
    }
    if name == "torch.npu.npu_swiglu" {
        return swiglu(op).map(Some);
    }
    let v = match name {
        "torch.prim.NumToTensor.Scalar" | "torch.aten.scalar_tensor" => scalar(op, 0)?,
        "torch.aten.full" | "torch.aten.full_like" | "torch.aten.new_full" => scalar(op, 1)?,
        // Uninitialized memory in torch; zeros here (one valid content, and deterministic).
        "torch.aten.empty_strided" | "torch.aten.empty.memory_format" | "torch.aten.empty_like" | "torch.aten.new_empty"
        | "torch.aten.zeros" | "torch.aten.zeros_like" | "torch.aten.new_zeros" => 0.0,
        "torch.aten.ones" | "torch.aten.ones_like" | "torch.aten.new_ones" => 1.0,
        _ => return Ok(None),
    };
    let out = result_type(op)?;
    let mut snippet = Snippet::new();
    let literal = if is_float(&out.elem) {
        format!("{v:.17e}")
    } else if out.elem == "i1" {
        (if v != 0.0 { "true" } else { "false" }).to_string()
    } else {
        format!("{}", v as i64)
    };
    let result = snippet.fresh("k");
    snippet.line(&format!("{result} = arith.constant dense<{literal}> : {}", out.r#type()));
    Lowered::single(op, snippet, result, &out).map(Some)
}

/// A `linalg.generic` over the result's dims: every tensor input broadcast and converted to the
/// compute type, `f` building the value, the result converted to the result type.
fn build<'c: 'a, 'a>(
    op: OperationRef<'c, 'a>,
    inputs: Vec<Input<'c, 'a>>,
    f: impl FnOnce(&mut Body, &[String]) -> Result<String, String>,
) -> Result<Lowered<'c, 'a>, String> {
    let out = result_type(op)?;
    // Dtype conversions keep their operand's values: no opmath widening of the result type.
    let compute = compute_elem(&out.elem).to_string();
    let mut snippet = Snippet::new();
    let mut body = Body {
        text: String::new(),
        fresh: 0,
        elem: compute.clone(),
    };
    let mut maps = Vec::new();
    let mut ins = Vec::new();
    let mut block_args = Vec::new();
    let mut values = Vec::new();
    for (index, item) in inputs.iter().enumerate() {
        match item {
            Input::Tensor(value, t) => {
                let name = snippet.arg(*value);
                maps.push(broadcast_map(&out.dims, &t.dims)?);
                ins.push((name, t.r#type()));
                let arg = format!("%i{index}");
                block_args.push(format!("{arg}: {}", t.elem));
                let mut fresh = body.fresh;
                let converted = convert(&mut body.text, &mut fresh, &arg, &t.elem, &compute);
                body.fresh = fresh;
                values.push(converted);
            }
            Input::Scalar(v) => {
                let c = body.constant(*v);
                values.push(c);
            }
        }
    }
    let result = f(&mut body, &values)?;
    let mut fresh = body.fresh;
    let result = convert(&mut body.text, &mut fresh, &result, &compute, &out.elem);
    maps.push(identity_map(out.rank()));
    let empty = snippet.empty(&out);
    let name = snippet.fresh("g");
    let ins_text = if ins.is_empty() {
        String::new()
    } else {
        format!(
            "ins({} : {}) ",
            ins.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "),
            ins.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join(", ")
        )
    };
    block_args.push(format!("%out: {}", out.elem));
    snippet.line(&format!(
        "{name} = linalg.generic {{indexing_maps = [{}], iterator_types = [{}]}} {ins_text}outs({empty} : {}) {{\n    ^bb0({}):\n{}      linalg.yield {result} : {}\n    }} -> {}",
        maps.join(", "),
        parallel(out.rank()),
        out.r#type(),
        block_args.join(", "),
        body.text,
        out.elem,
        out.r#type()
    ));
    Lowered::single(op, snippet, name, &out)
}

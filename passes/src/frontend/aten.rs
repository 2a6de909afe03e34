//! Lowering the aten ops a model leaves around its MoE combine (reshapes, permutes, splits,
//! elementwise math, matmuls, reductions, gathers) to upstream tensor, linalg, arith and math ops,
//! so that an imported module runs on the CPU target. Each op is written as a `func.func` snippet
//! (`Snippet`) and spliced in front of it; ops with dynamic shapes or operands that are not known
//! at compile time are refused with the reason, and stay as they are.

pub mod contraction;
pub mod counting;
pub mod elementwise;
pub mod indexing;
pub mod shape;

use crate::frontend::torch_values::{TorchValue, torch_op_name};
use melior::ir::{OperationRef, Value, ValueLike, operation::OperationLike};

/// A tensor with static dims, as the snippets need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Static {
    /// Dims, outermost first.
    pub dims: Vec<u64>,
    /// The element type as MLIR spells it (`f32`, `bf16`, `i64`, `i1`, ...).
    pub elem: String,
}

impl Static {
    /// The builtin tensor type of `value`, if it is a ranked tensor with static dims.
    pub fn of(value: Value<'_, '_>) -> Result<Self, String> {
        let text = value.r#type().to_string();
        Self::parse(&text).ok_or_else(|| format!("{text} is not a tensor of static shape"))
    }

    /// Parses `tensor<2x3xf32>` (or `tensor<f32>`).
    pub fn parse(text: &str) -> Option<Self> {
        let inner = text.strip_prefix("tensor<")?.strip_suffix('>')?;
        let mut parts: Vec<&str> = inner.split('x').collect();
        let elem = parts.pop()?.to_string();
        if elem.is_empty() || elem.contains(['<', ',', '?']) {
            return None;
        }
        let dims = parts.iter().map(|d| d.parse::<u64>().ok()).collect::<Option<Vec<_>>>()?;
        Some(Self { dims, elem })
    }

    /// The type as MLIR text.
    pub fn r#type(&self) -> String {
        tensor_type(&self.dims, &self.elem)
    }

    /// The same dims with another element type.
    pub fn with_elem(&self, elem: &str) -> Self {
        Self {
            dims: self.dims.clone(),
            elem: elem.to_string(),
        }
    }

    /// Rank.
    pub fn rank(&self) -> usize {
        self.dims.len()
    }
}

/// `tensor<d0xd1x...xelem>`.
pub fn tensor_type<D: std::fmt::Display>(dims: &[D], elem: &str) -> String {
    let mut text = String::from("tensor<");
    for d in dims {
        text.push_str(&format!("{d}x"));
    }
    text.push_str(elem);
    text.push('>');
    text
}

/// Whether `elem` is a float type.
pub fn is_float(elem: &str) -> bool {
    matches!(elem, "f16" | "bf16" | "f32" | "f64")
}

/// Bits of an integer or float element type.
pub fn bits(elem: &str) -> u32 {
    match elem {
        "bf16" | "f16" => 16,
        "f32" => 32,
        "f64" => 64,
        other => other.trim_start_matches(['i', 'u', 's']).parse().unwrap_or(0),
    }
}

/// The type torch computes an op of result type `elem` in: half floats in f32 ("opmath").
pub fn compute_elem(elem: &str) -> &str {
    match elem {
        "bf16" | "f16" => "f32",
        other => other,
    }
}

/// The builtin element type of a torch ScalarType code (`dtype=` arguments).
pub fn scalar_type(code: i64) -> Option<&'static str> {
    Some(match code {
        0 | 1 => "i8",
        2 => "i16",
        3 => "i32",
        4 => "i64",
        5 => "f16",
        6 => "f32",
        7 => "f64",
        11 => "i1",
        15 => "bf16",
        _ => return None,
    })
}

/// A dim argument normalized into `[0, rank)` (torch allows negative dims).
pub fn normalize_dim(dim: i64, rank: usize) -> Result<usize, String> {
    let rank = rank as i64;
    let d = if dim < 0 { dim + rank } else { dim };
    if (0..rank.max(1)).contains(&d) {
        Ok(d as usize)
    } else {
        Err(format!("dim {dim} is out of range for rank {rank}"))
    }
}

/// A scalar conversion inside a linalg body: appends the ops to `body` and returns the value name.
pub fn convert(body: &mut String, fresh: &mut usize, name: &str, from: &str, to: &str) -> String {
    if from == to {
        return name.to_string();
    }
    *fresh += 1;
    let out = format!("%cv{fresh}");
    let line = match (is_float(from), is_float(to)) {
        (true, true) if (from == "bf16" && to == "f16") || (from == "f16" && to == "bf16") => {
            let wide = convert(body, fresh, name, from, "f32");
            return convert(body, fresh, &wide, "f32", to);
        }
        (true, true) if bits(to) > bits(from) => format!("{out} = arith.extf {name} : {from} to {to}"),
        (true, true) => format!("{out} = arith.truncf {name} : {from} to {to}"),
        (false, true) if from == "i1" => format!("{out} = arith.uitofp {name} : {from} to {to}"),
        (false, true) => format!("{out} = arith.sitofp {name} : {from} to {to}"),
        (true, false) if to == "i1" => {
            let zero = format!("%cz{fresh}");
            body.push_str(&format!("      {zero} = arith.constant 0.0 : {from}\n"));
            format!("{out} = arith.cmpf une, {name}, {zero} : {from}")
        }
        (true, false) => format!("{out} = arith.fptosi {name} : {from} to {to}"),
        (false, false) if to == "i1" => {
            let zero = format!("%cz{fresh}");
            body.push_str(&format!("      {zero} = arith.constant 0 : {from}\n"));
            format!("{out} = arith.cmpi ne, {name}, {zero} : {from}")
        }
        (false, false) if from == "i1" => format!("{out} = arith.extui {name} : {from} to {to}"),
        (false, false) if bits(to) > bits(from) => format!("{out} = arith.extsi {name} : {from} to {to}"),
        (false, false) => format!("{out} = arith.trunci {name} : {from} to {to}"),
    };
    body.push_str(&format!("      {line}\n"));
    out
}

/// An affine map from the `rank` loop dims of a result to an operand of dims `dims`, aligned on
/// the right (numpy broadcasting): an operand dim of size 1 under a larger result dim reads 0.
pub fn broadcast_map(out: &[u64], dims: &[u64]) -> Result<String, String> {
    if dims.len() > out.len() {
        return Err(format!("operand of rank {} is broadcast to rank {}", dims.len(), out.len()));
    }
    let offset = out.len() - dims.len();
    let mut exprs = Vec::new();
    for (i, d) in dims.iter().enumerate() {
        let o = out[offset + i];
        if *d == o {
            exprs.push(format!("d{}", offset + i));
        } else if *d == 1 {
            exprs.push("0".to_string());
        } else {
            return Err(format!("dim of size {d} does not broadcast to {o}"));
        }
    }
    Ok(format!("affine_map<({}) -> ({})>", loop_dims(out.len()), exprs.join(", ")))
}

/// `d0, d1, ...` for `rank` dims.
pub fn loop_dims(rank: usize) -> String {
    (0..rank).map(|i| format!("d{i}")).collect::<Vec<_>>().join(", ")
}

/// The identity map of `rank` dims.
pub fn identity_map(rank: usize) -> String {
    format!("affine_map<({0}) -> ({0})>", loop_dims(rank))
}

/// `"parallel", ...` for `rank` dims.
pub fn parallel(rank: usize) -> String {
    vec!["\"parallel\""; rank].join(", ")
}

/// IR written as one function over the op's operands: what a lowering produces.
pub struct Snippet<'c, 'a> {
    /// The values the function's parameters bind to.
    pub args: Vec<Value<'c, 'a>>,
    params: Vec<String>,
    /// The body lines.
    pub body: String,
    fresh: usize,
}

impl<'c, 'a> Snippet<'c, 'a> {
    /// An empty snippet.
    pub fn new() -> Self {
        Self {
            args: Vec::new(),
            params: Vec::new(),
            body: String::new(),
            fresh: 0,
        }
    }

    /// Binds `value` to a new parameter and returns its name.
    pub fn arg(&mut self, value: Value<'c, 'a>) -> String {
        if let Some(index) = self.args.iter().position(|v| *v == value) {
            return format!("%a{index}");
        }
        let name = format!("%a{}", self.args.len());
        self.params.push(format!("{name}: {}", value.r#type()));
        self.args.push(value);
        name
    }

    /// A new value name.
    pub fn fresh(&mut self, prefix: &str) -> String {
        self.fresh += 1;
        format!("%{prefix}{}", self.fresh)
    }

    /// Appends one op line.
    pub fn line(&mut self, text: &str) {
        self.body.push_str("  ");
        self.body.push_str(text);
        self.body.push('\n');
    }

    /// `%name = tensor.empty() : type` and the name.
    pub fn empty(&mut self, t: &Static) -> String {
        let name = self.fresh("e");
        self.line(&format!("{name} = tensor.empty() : {}", t.r#type()));
        name
    }

    /// A tensor of `t` filled with zero.
    pub fn zeros(&mut self, t: &Static) -> String {
        let empty = self.empty(t);
        let zero = self.fresh("z");
        let literal = if is_float(&t.elem) { "0.0" } else { "0" };
        self.line(&format!("{zero} = arith.constant {literal} : {}", t.elem));
        let filled = self.fresh("f");
        self.line(&format!("{filled} = linalg.fill ins({zero} : {}) outs({empty} : {}) -> {}", t.elem, t.r#type(), t.r#type()));
        filled
    }

    /// An elementwise conversion of a whole tensor (`name` of type `from`) to element `to`.
    pub fn convert_tensor(&mut self, name: &str, from: &Static, to: &str) -> String {
        if from.elem == to {
            return name.to_string();
        }
        let out = from.with_elem(to);
        let empty = self.empty(&out);
        let mut body = String::new();
        let mut fresh = self.fresh;
        let converted = convert(&mut body, &mut fresh, "%in", &from.elem, to);
        self.fresh = fresh;
        let result = self.fresh("c");
        let map = identity_map(from.rank());
        self.line(&format!(
            "{result} = linalg.generic {{indexing_maps = [{map}, {map}], iterator_types = [{}]}} ins({name} : {}) outs({empty} : {}) {{\n    ^bb0(%in: {}, %out: {to}):\n{body}      linalg.yield {converted} : {to}\n    }} -> {}",
            parallel(from.rank()),
            from.r#type(),
            out.r#type(),
            from.elem,
            out.r#type()
        ));
        result
    }

    /// The function text returning `results` (name, type).
    pub fn function(&self, results: &[(String, String)]) -> String {
        let names: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
        let types: Vec<&str> = results.iter().map(|(_, t)| t.as_str()).collect();
        format!(
            "func.func @lowered({}) -> ({}) {{\n{}  return {} : {}\n}}",
            self.params.join(", "),
            types.join(", "),
            self.body,
            names.join(", "),
            types.join(", ")
        )
    }
}

impl Default for Snippet<'_, '_> {
    fn default() -> Self {
        Self::new()
    }
}

/// What lowering one op produced.
pub struct Lowered<'c, 'a> {
    /// The snippet.
    pub snippet: Snippet<'c, 'a>,
    /// Its returned values, by name and type.
    pub results: Vec<(String, String)>,
    /// The values the results replace (the op's results, or a `ListUnpack`'s).
    pub replaces: Vec<Value<'c, 'a>>,
    /// Ops to erase with the lowered op (a `ListUnpack` of its list result).
    pub also_erase: Vec<OperationRef<'c, 'a>>,
}

impl<'c, 'a> Lowered<'c, 'a> {
    /// One result replacing the op's first result.
    pub fn single(op: OperationRef<'c, 'a>, snippet: Snippet<'c, 'a>, name: String, t: &Static) -> Result<Self, String> {
        let out: Value = op.result(0).map_err(|_| "no result")?.into();
        Ok(Self {
            snippet,
            results: vec![(name, t.r#type())],
            replaces: vec![out],
            also_erase: Vec::new(),
        })
    }
}

/// A tensor operand of `op`.
pub fn tensor_operand<'c: 'a, 'a>(op: OperationRef<'c, 'a>, index: usize) -> Result<(Value<'c, 'a>, Static), String> {
    let value = op.operand(index).map_err(|_| format!("operand {index} is missing"))?;
    let t = Static::of(value)?;
    Ok((value, t))
}

/// A compile-time integer operand of `op`.
pub fn int_operand(op: OperationRef<'_, '_>, index: usize) -> Result<i64, String> {
    let value = op.operand(index).map_err(|_| format!("operand {index} is missing"))?;
    TorchValue::of(value)
        .int()
        .ok_or_else(|| format!("operand {index} is not a constant integer"))
}

/// A compile-time list of integers operand of `op`.
pub fn ints_operand(op: OperationRef<'_, '_>, index: usize) -> Result<Vec<i64>, String> {
    let value = op.operand(index).map_err(|_| format!("operand {index} is missing"))?;
    TorchValue::of(value)
        .ints()
        .ok_or_else(|| format!("operand {index} is not a list of constant integers"))
}

/// The op's first result type, static.
pub fn result_type(op: OperationRef<'_, '_>) -> Result<Static, String> {
    let value: Value = op.result(0).map_err(|_| "no result")?.into();
    Static::of(value)
}

/// Lowers `op` if it is an aten op this module knows; `Ok(None)` for any other op.
pub fn lower<'c: 'a, 'a>(op: OperationRef<'c, 'a>) -> Result<Option<Lowered<'c, 'a>>, String> {
    let name = torch_op_name(&op);
    if let Some(lowered) = shape::lower(&name, op)? {
        return Ok(Some(lowered));
    }
    if let Some(lowered) = elementwise::lower(&name, op)? {
        return Ok(Some(lowered));
    }
    if let Some(lowered) = contraction::lower(&name, op)? {
        return Ok(Some(lowered));
    }
    if let Some(lowered) = counting::lower(&name, op)? {
        return Ok(Some(lowered));
    }
    indexing::lower(&name, op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_types_parse_and_print() {
        let t = Static::parse("tensor<2x3xbf16>").unwrap();
        assert_eq!(t.dims, vec![2, 3]);
        assert_eq!(t.elem, "bf16");
        assert_eq!(t.r#type(), "tensor<2x3xbf16>");
        assert_eq!(Static::parse("tensor<i64>").unwrap().dims, Vec::<u64>::new());
        assert_eq!(Static::parse("tensor<?x3xf32>"), None);
        assert_eq!(Static::parse("!torch.int"), None);
    }

    #[test]
    fn broadcast_maps_align_on_the_right() {
        assert_eq!(broadcast_map(&[4, 3, 5], &[3, 1]).unwrap(), "affine_map<(d0, d1, d2) -> (d1, 0)>");
        assert_eq!(broadcast_map(&[4, 3], &[]).unwrap(), "affine_map<(d0, d1) -> ()>");
        assert!(broadcast_map(&[4, 3], &[2]).is_err());
        assert!(broadcast_map(&[4], &[1, 4]).is_err());
    }

    #[test]
    fn dims_normalize_and_refuse_out_of_range() {
        assert_eq!(normalize_dim(-1, 3), Ok(2));
        assert_eq!(normalize_dim(0, 0), Ok(0));
        assert!(normalize_dim(3, 3).is_err());
        assert!(normalize_dim(-4, 3).is_err());
    }

    #[test]
    fn conversions_pick_the_arith_op() {
        let mut body = String::new();
        let mut fresh = 0;
        convert(&mut body, &mut fresh, "%x", "bf16", "f16");
        assert!(body.contains("arith.extf %x : bf16 to f32") && body.contains("arith.truncf %cv") && body.contains(": f32 to f16"), "{body}");
        let mut body = String::new();
        convert(&mut body, &mut fresh, "%x", "i64", "f32");
        assert!(body.contains("arith.sitofp"), "{body}");
        let mut body = String::new();
        assert_eq!(convert(&mut body, &mut fresh, "%x", "i32", "i32"), "%x");
        assert!(body.is_empty());
    }
}

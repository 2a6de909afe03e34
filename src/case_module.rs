//! A SPEC section 7 case as IR: a function whose one op is the fused op, with argument types
//! taken from the case's tensors. Running a case means verifying this module (so a case is held
//! to exactly the rules of hand-written IR) and then evaluating or compiling it.

use gmmfr_dialect::reference::{GmmfrAttrs, GmmfrOperands};
use gmmfr_dialect::tensor::Tensor;
use std::fmt::Write;

/// The entry function's name.
pub const ENTRY: &str = "gmmfr_case";

fn tensor_type(tensor: &Tensor) -> String {
    let mut text = String::from("tensor<");
    for dim in tensor.shape() {
        let _ = write!(text, "{dim}x");
    }
    text.push_str(tensor.dtype().mlir_name());
    text.push('>');
    text
}

/// The number of output columns n, read from the scale ((e, n) or (e, 1, n)) or, without a
/// scale, from the ND weight (e, k, n).
fn output_columns(operands: &GmmfrOperands<'_>) -> Option<usize> {
    match operands.scale {
        Some(scale) => scale.shape().last().copied(),
        None => operands.w.shape().last().copied(),
    }
}

/// MLIR source of a module with one function `@gmmfr_case` taking every present operand as an
/// argument (in declaration order) and returning the fused op's result.
pub fn case_source(operands: &GmmfrOperands<'_>, attrs: &GmmfrAttrs) -> String {
    let named: [(&str, Option<&Tensor>); 10] = [
        ("x", Some(operands.x)),
        ("w", Some(operands.w)),
        ("group_list", Some(operands.group_list)),
        ("scale", operands.scale),
        ("bias", operands.bias),
        ("offset", operands.offset),
        ("pertoken_scale", operands.pertoken_scale),
        ("shared_input", operands.shared_input),
        ("logit", operands.logit),
        ("row_index", Some(operands.row_index)),
    ];
    let present: Vec<(&str, &Tensor)> = named.iter().filter_map(|(n, t)| t.map(|t| (*n, t))).collect();
    let segments: Vec<&str> = named.iter().map(|(_, t)| if t.is_some() { "1" } else { "0" }).collect();
    let m = operands.x.shape().first().copied().unwrap_or(0);
    let rows = if attrs.output_bs > 0 {
        attrs.output_bs as usize
    } else {
        m
    };
    let n = output_columns(operands).unwrap_or(0);
    let out_type = format!("tensor<{rows}x{n}xf32>");

    let arguments: Vec<String> = present
        .iter()
        .map(|(name, t)| format!("%{name}: {}", tensor_type(t)))
        .collect();
    let values: Vec<String> = present.iter().map(|(name, _)| format!("%{name}")).collect();
    let types: Vec<String> = present.iter().map(|(_, t)| tensor_type(t)).collect();
    let mut attributes = format!(
        "dtype = {} : i64, shared_input_weight = 0x{:08X} : f32, shared_input_offset = {} : i64, output_bs = {} : i64, group_list_type = {} : i64",
        attrs.dtype,
        attrs.shared_input_weight.to_bits(),
        attrs.shared_input_offset,
        attrs.output_bs,
        attrs.group_list_type
    );
    if let Some(config) = &attrs.tuning_config {
        let values: Vec<String> = config.iter().map(|v| v.to_string()).collect();
        let _ = write!(attributes, ", tuning_config = array<i64: {}>", values.join(", "));
    }
    let _ = write!(
        attributes,
        ", operandSegmentSizes = array<i32: {}>",
        segments.join(", ")
    );
    format!(
        "module {{\n  func.func @{ENTRY}({}) -> {out_type} attributes {{llvm.emit_c_interface}} {{\n    %out = \"npu.grouped_matmul_finalize_routing\"({}) {{{attributes}}} : ({}) -> {out_type}\n    return %out : {out_type}\n  }}\n}}\n",
        arguments.join(", "),
        values.join(", "),
        types.join(", "),
    )
}

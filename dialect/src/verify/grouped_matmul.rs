//! Verifier of `npu.grouped_matmul` (SPEC 2.1).

use super::checker::Checker;
use super::gmmfr::check_nz_blocks;
use super::violation::{Subject, Violation};
use crate::types::Elem;

/// Checks x (m, k), weight ND (e, k, n) or NZ (e, n1, k1, 16, 32), group_list by its type,
/// the optional quantization operands and the result type (m, n).
pub fn verify(c: &mut Checker<'_, '_, '_>) {
    let (Some(x), Some(weight)) = (c.op.operand_info("x"), c.op.operand_info("weight")) else {
        return;
    };
    let quantized = x.elem == Elem::I8;
    if !quantized && !x.elem.is_float() {
        c.report(Violation::ElementType {
            subject: Subject::Operand("x"),
            expected: "i8, f32, bf16 or f16".to_string(),
            actual: x.text.clone(),
        });
        return;
    }
    c.operand("x", std::slice::from_ref(&x.elem), &["m", "k"]);
    let group_list_type = c.int_attr_in("group_list_type", &[0, 1, 2]);
    match group_list_type {
        Some(2) => {
            c.operand("group_list", &[Elem::I64], &["groups", "2"]);
        }
        Some(_) => {
            c.operand("group_list", &[Elem::I64], &["e"]);
        }
        None => {}
    }
    if quantized && weight.rank() == 5 {
        c.operand("weight", &[Elem::I8], &["e", "n1", "k1", "16", "32"]);
    } else if quantized && weight.rank() != 3 {
        c.report(Violation::Rank {
            subject: Subject::Operand("weight"),
            expected: 3,
            layout: "(e, k, n), or 5 for FRACTAL_NZ (e, n1, k1, 16, 32)".to_string(),
            actual: weight.text.clone(),
        });
    } else {
        c.operand("weight", std::slice::from_ref(&x.elem), &["e", "k", "n"]);
    }

    // The weight (with its NZ block counts as votes) and the result fix n before the scale and
    // bias, so that on a tie the operand that repeats n is blamed.
    if quantized && weight.rank() == 5 {
        if let Some(n1) = weight.dim(1) {
            c.hint("n", move |n| n.div_ceil(32) == n1);
        }
        if let Some(k1) = weight.dim(2) {
            c.hint("k", move |k| k.div_ceil(16) == k1);
        }
    }
    let has_scale = c.has("scale");
    let result_types: &[Elem] = match (quantized, has_scale) {
        // SPEC 2.1: the per-token int8 grouped matmul returns bf16 or f16, never f32; without a
        // scale it returns the int32 accumulators.
        (true, true) => &[Elem::BF16, Elem::F16],
        (true, false) => &[Elem::I32],
        (false, _) => &[x.elem.clone(), Elem::F32],
    };
    c.result(0, result_types, &["m", "n"]);
    if quantized {
        c.operand("scale", &[Elem::F32, Elem::BF16], &["e", "n"]);
        c.operand("per_token_scale", &[Elem::F32], &["m"]);
        c.operand("bias", &[Elem::I32], &["e", "n"]);
        if !has_scale {
            c.forbid(
                "per_token_scale",
                "without scale (the int8 matmul then returns int32 accumulators)",
            );
        }
    } else {
        c.forbid("scale", "for a float grouped matmul");
        c.forbid("per_token_scale", "for a float grouped matmul");
        c.operand("bias", &[Elem::F32, x.elem.clone()], &["e", "n"]);
    }
    if quantized && weight.rank() == 5 {
        check_nz_blocks(c, "weight", 32);
    }
}

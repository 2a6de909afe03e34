//! Verifier of `npu.grouped_matmul` (SPEC 2.1).

use super::checker::Checker;
use super::gmmfr::check_nz_blocks;
use super::violation::{Subject, Violation};
use crate::types::Elem;

/// Checks x (m, k), weight ND (e, k, n) or NZ (e, n1, k1, 16, 32), group_list by its type,
/// the optional quantization operands and the result type (m, n).
pub fn verify(c: &mut Checker<'_, '_, '_>) {
    let (Some(x), Some(weight)) = (c.op.operand_info("x"), c.op.operand_info("weight")) else { return };
    let quantized = x.elem == Elem::I8;
    if !quantized && !x.elem.is_float() {
        c.report(Violation::ElementType {
            subject: Subject::Operand("x"),
            expected: "i8, f32, bf16 or f16".to_string(),
            actual: x.text.clone(),
        });
        return;
    }
    c.operand("x", &[x.elem.clone()], &["m", "k"]);
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
    } else {
        c.operand("weight", &[x.elem.clone()], &["e", "k", "n"]);
    }

    let has_scale = c.has("scale");
    if quantized {
        c.operand("scale", &[Elem::F32, Elem::BF16], &["e", "n"]);
        c.operand("per_token_scale", &[Elem::F32], &["m"]);
        c.operand("bias", &[Elem::I32], &["e", "n"]);
        if !has_scale {
            c.forbid("per_token_scale", "without scale (the int8 matmul then returns int32 accumulators)");
        }
        let result_types: &[Elem] = if has_scale { &[Elem::BF16, Elem::F16, Elem::F32] } else { &[Elem::I32] };
        c.result(0, result_types, &["m", "n"]);
    } else {
        c.forbid("scale", "for a float grouped matmul");
        c.forbid("per_token_scale", "for a float grouped matmul");
        c.operand("bias", &[Elem::F32, x.elem.clone()], &["e", "n"]);
        c.result(0, &[x.elem.clone(), Elem::F32], &["m", "n"]);
    }
    if weight.rank() == 5 {
        check_nz_blocks(c, "weight", 32);
    }
}

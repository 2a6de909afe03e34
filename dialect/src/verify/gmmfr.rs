//! Verifier of `npu.grouped_matmul_finalize_routing` (SPEC section 1).

use super::checker::Checker;
use super::violation::{Subject, Violation};
use crate::scenario::Scenario;
use crate::types::Elem;

/// Checks every relation of SPEC section 1 that IRDL cannot express.
pub fn verify(c: &mut Checker<'_, '_, '_>) {
    let (Some(x), Some(w)) = (c.op.operand_info("x"), c.op.operand_info("w")) else {
        return;
    };
    let Some(scenario) = Scenario::classify(&x, &w) else {
        if !(x.elem == Elem::I8 || x.elem.is_float()) {
            c.report(Violation::ElementType {
                subject: Subject::Operand("x"),
                expected: "i8 (A8W8, A8W4), or f32, bf16 or f16 (non-quantized)".to_string(),
                actual: x.text.clone(),
            });
            return;
        }
        c.report(Violation::ElementType {
            subject: Subject::Operand("w"),
            expected: format!(
                "i8 (A8W8) or i4 (A8W4) for i8 x, or the float type of x for a non-quantized op (x is {})",
                x.text
            ),
            actual: w.text.clone(),
        });
        return;
    };

    let x_types: &[Elem] = match &scenario {
        Scenario::NonQuantized(elem) => std::slice::from_ref(elem),
        _ => &[Elem::I8],
    };
    c.operand("x", x_types, &["m", "k"]);
    c.operand("group_list", &[Elem::I64], &["e"]);

    // Attributes.
    c.int_attr_in("dtype", &[0, 1, 2]);
    c.int_attr_in("group_list_type", &[0, 1]);
    let offset = c.int_attr_non_negative("shared_input_offset");
    let output_bs = c.int_attr_non_negative("output_bs");

    match &scenario {
        Scenario::A8W8 => {
            if w.rank() == 5 {
                c.operand("w", &[Elem::I8], &["e", "n1", "k1", "16", "32"]);
            } else {
                c.report(Violation::Rank {
                    subject: Subject::Operand("w"),
                    expected: 5,
                    layout: "(e, n1, k1, 16, 32): the A8W8 weight is FRACTAL_NZ storage; convert an ND weight with npu.format_cast"
                        .to_string(),
                    actual: w.text.clone(),
                });
            }
        }
        Scenario::A8W4 { .. } => match w.rank() {
            5 => {
                c.operand("w", &[Elem::I4], &["e", "n1", "k1", "16", "64"]);
            }
            3 => {
                c.operand("w", &[Elem::I4], &["e", "k", "n"]);
            }
            _ => c.report(Violation::Rank {
                subject: Subject::Operand("w"),
                expected: 3,
                layout: "(e, k, n), or 5 for FRACTAL_NZ (e, n1, k1, 16, 64)".to_string(),
                actual: w.text.clone(),
            }),
        },
        Scenario::NonQuantized(elem) => {
            c.operand("w", std::slice::from_ref(elem), &["e", "k", "n"]);
        }
    }
    if w.rank() == 5 {
        let n0 = scenario.nz_block_n();
        if let Some(n1) = w.dim(1) {
            c.hint("n", move |n| n.div_ceil(n0) == n1);
        }
        if let Some(k1) = w.dim(2) {
            c.hint("k", move |k| k.div_ceil(16) == k1);
        }
    }

    // The weight, then the result, fix n before the operands that repeat it, so on a tie a
    // disagreeing scale or bias (not the weight or result) is blamed; the NZ block count n1
    // votes too.
    // Output rows: output_bs, or m when output_bs is 0.
    if let (Some(output_bs), Some(m)) = (output_bs, c.get("m"))
        && output_bs as u64 > m
    {
        c.report(Violation::Relation {
            relation: "output_bs <= m".to_string(),
            detail: format!("output_bs = {output_bs} and m = {m}"),
        });
    }
    match output_bs {
        Some(bs) if bs > 0 => c.observe(
            "output rows",
            Subject::Attribute("output_bs"),
            0,
            bs as u64,
            "attribute output_bs".to_string(),
        ),
        Some(_) => {
            if let Some(m) = c.get("m") {
                c.observe(
                    "output rows",
                    Subject::Operand("x"),
                    0,
                    m,
                    "m, since output_bs = 0".to_string(),
                );
            }
        }
        None => {}
    }
    c.result(0, &[Elem::F32], &["output rows", "n"]);

    match &scenario {
        Scenario::A8W8 => {
            c.require("scale", "for an A8W8 op");
            c.operand("scale", &[Elem::F32, Elem::BF16], &["e", "n"]);
            c.operand("bias", &[Elem::BF16], &["e", "n"]);
            c.forbid("offset", "for an A8W8 op (offset is an A8W4 operand)");
        }
        Scenario::A8W4 { .. } => {
            for required in ["scale", "bias", "pertoken_scale", "shared_input", "logit"] {
                c.require(required, "for an A8W4 op");
            }
            c.operand("scale", &[Elem::I64], &["e", "1", "n"]);
            c.operand("bias", &[Elem::F32], &["e", "n"]);
            c.operand("offset", &[Elem::F32], &["e", "1", "n"]);
        }
        Scenario::NonQuantized(_) => {
            c.forbid("scale", "for a non-quantized op");
            c.forbid("offset", "for a non-quantized op");
            c.forbid("pertoken_scale", "for a non-quantized op");
            c.operand("bias", &[Elem::F32], &["e", "n"]);
        }
    }

    c.operand("pertoken_scale", &[Elem::F32], &["m"]);
    c.operand("shared_input", &[Elem::BF16], &["bsdp", "n"]);
    c.operand("logit", &[Elem::F32], &["m"]);
    let row_index_types: &[Elem] = match scenario {
        Scenario::A8W4 { .. } => &[Elem::I64],
        _ => &[Elem::I64, Elem::I32],
    };
    c.operand("row_index", row_index_types, &["m"]);

    check_weight_attribute(c);
    if let Some(values) = c.i64_array_attr("tuning_config")
        && let Some(bad) = values.iter().find(|v| **v < 0)
    {
        c.report(Violation::Range {
            subject: Subject::Attribute("tuning_config"),
            allowed: "a list of expected rows per expert, each >= 0".to_string(),
            actual: bad.to_string(),
        });
    }

    if let (Some(offset), Some(bsdp), Some(batch)) = (offset, c.get("bsdp"), c.get("output rows"))
        && offset as u64 + bsdp > batch
    {
        c.report(Violation::Relation {
            relation: "shared_input_offset + bsdp <= output rows".to_string(),
            detail: format!("shared_input_offset = {offset}, bsdp = {bsdp} and the output has {batch} rows"),
        });
    }

    // The NZ block counts follow from k and n.
    if scenario == Scenario::A8W8 || scenario == (Scenario::A8W4 { nz: true }) {
        check_nz_blocks(c, "w", scenario.nz_block_n());
    }
}

fn check_weight_attribute(c: &mut Checker<'_, '_, '_>) {
    use crate::op_view::AttrValue;
    match c.op.attribute("shared_input_weight").map(AttrValue::of) {
        Some(AttrValue::Float { value, r#type }) if r#type == "f32" => {
            if !value.is_finite() {
                c.report(Violation::Range {
                    subject: Subject::Attribute("shared_input_weight"),
                    allowed: "finite".to_string(),
                    actual: value.to_string(),
                });
            }
        }
        Some(other) => c.report(Violation::AttributeKind {
            subject: Subject::Attribute("shared_input_weight"),
            expected: "an f32 float attribute".to_string(),
            actual: super::checker::render(&other),
        }),
        None => c.report(Violation::Missing {
            subject: Subject::Attribute("shared_input_weight"),
            why: "on this op".to_string(),
        }),
    }
}

/// Checks that an NZ weight's n1 and k1 dims are ceil(n/n0) and ceil(k/16).
pub fn check_nz_blocks(c: &mut Checker<'_, '_, '_>, operand: &'static str, n0: u64) {
    let Some(w) = c.op.operand_info(operand) else { return };
    if w.rank() != 5 {
        return;
    }
    if let Some(n) = c.get("n") {
        c.expect_dim(
            Subject::Operand(operand),
            &w,
            1,
            "n1",
            n.div_ceil(n0),
            format!("ceil(n / {n0}) with n = {n}"),
        );
    }
    if let Some(k) = c.get("k") {
        c.expect_dim(
            Subject::Operand(operand),
            &w,
            2,
            "k1",
            k.div_ceil(16),
            format!("ceil(k / 16) with k = {k}"),
        );
    }
}

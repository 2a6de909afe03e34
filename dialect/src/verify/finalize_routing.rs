//! Verifier of `npu.moe_finalize_routing` (SPEC 2.2).

use super::checker::Checker;
use super::violation::{Subject, Violation};
use crate::types::Elem;

/// Checks the expert output (rows, H) or padded (E, C, H) by drop_pad_mode, the (R, H) skips
/// and result, (R, K) scales and expert ids, and expanded_src_to_dst_row of R*K entries.
pub fn verify(c: &mut Checker<'_, '_, '_>) {
    let Some(rows) = c.op.operand_info("expanded_permuted_rows") else {
        return;
    };
    let floats = [Elem::F32, Elem::BF16, Elem::F16];
    if !floats.contains(&rows.elem) {
        c.report(Violation::ElementType {
            subject: Subject::Operand("expanded_permuted_rows"),
            expected: "f32, bf16 or f16".to_string(),
            actual: rows.text.clone(),
        });
        return;
    }
    let elem = rows.elem.clone();
    let mode = c.int_attr_in("drop_pad_mode", &[0, 1, 2, 3]);
    match mode {
        Some(1) | Some(3) => {
            c.operand(
                "expanded_permuted_rows",
                std::slice::from_ref(&elem),
                &["experts", "capacity", "H"],
            );
        }
        Some(_) => {
            c.operand("expanded_permuted_rows", std::slice::from_ref(&elem), &["rows", "H"]);
        }
        None => {}
    }
    c.result(0, std::slice::from_ref(&elem), &["R", "H"]);
    c.operand("skip1", std::slice::from_ref(&elem), &["R", "H"]);
    c.operand("skip2", std::slice::from_ref(&elem), &["R", "H"]);
    c.operand("bias", std::slice::from_ref(&elem), &["E", "H"]);
    c.operand("scales", &[Elem::F32, elem.clone()], &["R", "K"]);
    c.operand("expert_for_source_row", &[Elem::I32], &["R", "K"]);
    if c.has("bias") {
        c.require(
            "expert_for_source_row",
            "when bias is present (it selects the bias row)",
        );
    }
    c.operand("expanded_src_to_dst_row", &[Elem::I32], &["R * K"]);

    let (r, rk) = (c.get("R"), c.get("R * K"));
    match (r, c.get("K"), rk) {
        (Some(r), Some(k), Some(rk)) if r * k != rk => c.report(Violation::Relation {
            relation: "len(expanded_src_to_dst_row) == R * K".to_string(),
            detail: format!("it has {rk} entries and R = {r}, K = {k}"),
        }),
        (Some(r), None, Some(rk)) if (r == 0 && rk != 0) || (r != 0 && rk % r != 0) => c.report(Violation::Relation {
            relation: "len(expanded_src_to_dst_row) is a multiple of R".to_string(),
            detail: format!("it has {rk} entries and R = {r}"),
        }),
        _ => {}
    }
}

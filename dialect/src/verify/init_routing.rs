//! Verifier of `npu.moe_init_routing` (SPEC 2.3).

use super::checker::Checker;
use super::violation::{Subject, Violation};
use crate::types::Elem;

/// Checks x (T, h), expert_idx (T, K), the attribute ranges and the three results.
pub fn verify(c: &mut Checker<'_, '_, '_>) {
    let Some(x) = c.op.operand_info("x") else { return };
    let elem = x.elem.clone();
    c.operand("x", &[Elem::F32, Elem::BF16, Elem::F16, Elem::I8], &["T", "h"]);
    c.operand("expert_idx", &[Elem::I32], &["T", "K"]);
    let expert_num = c.int_attr("expert_num", true);
    if let Some(n) = expert_num
        && n < 1
    {
        c.report(Violation::Range {
            subject: Subject::Attribute("expert_num"),
            allowed: ">= 1".to_string(),
            actual: n.to_string(),
        });
    }
    let active_num = c.int_attr_non_negative("active_num");
    c.int_attr_in("row_idx_type", &[0, 1]);
    c.int_attr_in("expert_tokens_num_type", &[0, 1]);
    let range = c.i64_array_attr("active_expert_range");
    let local_experts = match (&range, expert_num) {
        (Some(range), Some(n)) => match range.as_slice() {
            [start, end] if 0 <= *start && start < end && *end <= n => Some((end - start) as u64),
            _ => {
                c.report(Violation::Range {
                    subject: Subject::Attribute("active_expert_range"),
                    allowed: format!("[start, end] with 0 <= start < end <= expert_num = {n}"),
                    actual: format!(
                        "array<i64: {}>",
                        range.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
                    ),
                });
                None
            }
        },
        (None, Some(n)) if n >= 1 => Some(n as u64),
        _ => None,
    };

    let tk = match (c.get("T"), c.get("K")) {
        (Some(t), Some(k)) => Some(t * k),
        _ => None,
    };
    if let Some(tk) = tk {
        c.observe("T * K", Subject::Op, 0, tk, "T * K of x and expert_idx".to_string());
    }
    match active_num {
        Some(a) if a > 0 => {
            if let Some(tk) = tk
                && a as u64 > tk
            {
                c.report(Violation::Relation {
                    relation: "active_num <= T * K".to_string(),
                    detail: format!("active_num = {a} and T * K = {tk}"),
                });
            }
            c.observe(
                "expanded rows",
                Subject::Attribute("active_num"),
                0,
                a as u64,
                "attribute active_num".to_string(),
            );
        }
        Some(_) => {
            if let Some(tk) = tk {
                c.observe(
                    "expanded rows",
                    Subject::Op,
                    0,
                    tk,
                    "T * K, since active_num = 0".to_string(),
                );
            }
        }
        None => {}
    }
    c.result(0, &[elem], &["expanded rows", "h"]);
    c.result(1, &[Elem::I32], &["T * K"]);
    if let Some(local) = local_experts {
        let source = if range.is_some() {
            "attribute active_expert_range (end - start)"
        } else {
            "attribute expert_num"
        };
        c.observe(
            "local experts",
            Subject::Attribute("active_expert_range"),
            0,
            local,
            source.to_string(),
        );
    }
    c.result(2, &[Elem::I64], &["local experts"]);
}

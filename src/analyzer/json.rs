//! The report as JSON, schema [`SCHEMA_VERSION`] (documented in the README, "Analyzer").
//!
//! ```text
//! {
//!   "schema": "gmmfr-analyze/1",
//!   "source": "<input name>",
//!   "options": {"target": "loops"|"ascend", "cann_version": "older"|"newer", "precision": "refine"|"exact"},
//!   "roofline": {"name", "basis", "memory_bytes_per_s", "int8_ops_per_s", "half_flops_per_s", "f32_flops_per_s"},
//!   "candidates": [{
//!     "id": 0, "function": "f", "location": "file:line:col", "gmm_location": "file:line:col",
//!     "spelling": "npu.grouped_matmul + npu.moe_finalize_routing", "scenario": "A8W8"|null,
//!     "shapes": {"m", "k", "n", "e", "batch", "top_k"},                  (integers or null)
//!     "operands": [{"operand": "grouped_matmul.x", "dtype": "i8", "type": "tensor<...>"}],
//!     "decision": "fused"|"blocked",
//!     "reasons": [{"code", "message", "profile": null|{"constraint", "subject", "actual", "allowed"}}],
//!     "notes": ["..."],
//!     "graph_facts": [{"kind": "other-user", "op", "location", "operand", "reaches_finalize"}
//!                   | {"kind": "would-be-cycle", "path": [{"op", "location"}]}
//!                   | {"kind": "different-regions", "gmm_enclosing": [{"op", "location"}],
//!                      "finalize_enclosing": [...], "common": {"op", "location"}|null}],
//!     "bytes_saved": integer|null,
//!     "worth": {"bytes_added", "net_bytes_saved", "flops", "time_unfused_us", "time_fused_us",
//!               "time_saved_us", "gmm_bound": "memory"|"compute"}      (null when dynamic)
//!   }],
//!   "summary": {"functions", "candidates", "fused", "blocked", "blocked_by_reason": {"code": count},
//!               "bytes_saved", "net_bytes_saved", "time_saved_us", "blocked_bytes_saved",
//!               "existing_fused_ops"}
//! }
//! ```
//!
//! Object keys print in sorted order. Times are microseconds rounded to 0.001.

use super::{Candidate, GraphFact, OpDesc, Report};
use serde_json::{Value, json};

/// The schema's name and version; bumped on any incompatible change.
pub const SCHEMA_VERSION: &str = "gmmfr-analyze/1";

fn round(value: f64) -> f64 {
    // `+ 0.0` turns a rounded -0.0 into 0.0.
    (value * 1000.0).round() / 1000.0 + 0.0
}

fn op(desc: &OpDesc) -> Value {
    json!({"op": desc.name, "location": desc.location.to_string()})
}

fn fact(fact: &GraphFact) -> Value {
    match fact {
        GraphFact::OtherUser {
            user,
            operand,
            reaches_finalize,
        } => json!({
            "kind": fact.kind(),
            "op": user.name,
            "location": user.location.to_string(),
            "operand": operand,
            "reaches_finalize": reaches_finalize,
        }),
        GraphFact::WouldBeCycle { path } => json!({
            "kind": fact.kind(),
            "path": path.iter().map(op).collect::<Vec<_>>(),
        }),
        GraphFact::DifferentRegions {
            gmm_enclosing,
            finalize_enclosing,
            common,
        } => json!({
            "kind": fact.kind(),
            "gmm_enclosing": gmm_enclosing.iter().map(op).collect::<Vec<_>>(),
            "finalize_enclosing": finalize_enclosing.iter().map(op).collect::<Vec<_>>(),
            "common": common.as_ref().map(op),
        }),
    }
}

/// One candidate as a JSON object.
pub fn candidate(c: &Candidate) -> Value {
    let w = &c.worth;
    json!({
        "id": c.id,
        "function": c.function,
        "location": c.location.to_string(),
        "gmm_location": c.gmm_location.to_string(),
        "spelling": c.spelling,
        "scenario": c.scenario,
        "shapes": {
            "m": c.shapes.m, "k": c.shapes.k, "n": c.shapes.n,
            "e": c.shapes.e, "batch": c.shapes.batch, "top_k": c.shapes.top_k,
        },
        "operands": c.operands.iter().map(|o| json!({
            "operand": o.operand, "dtype": o.dtype, "type": o.r#type,
        })).collect::<Vec<_>>(),
        "decision": c.verdict.as_str(),
        "reasons": c.reasons.iter().map(|r| json!({
            "code": r.code,
            "message": r.message,
            "profile": r.profile.as_ref().map(|p| json!({
                "constraint": p.constraint, "subject": p.subject, "actual": p.actual, "allowed": p.allowed,
            })),
        })).collect::<Vec<_>>(),
        "notes": c.notes,
        "graph_facts": c.graph_facts.iter().map(fact).collect::<Vec<_>>(),
        "bytes_saved": w.bytes_saved,
        "worth": {
            "bytes_added": w.bytes_added,
            "net_bytes_saved": w.net_bytes_saved,
            "flops": w.flops,
            "time_unfused_us": w.time_unfused_us.map(round),
            "time_fused_us": w.time_fused_us.map(round),
            "time_saved_us": w.time_saved_us.map(round),
            "gmm_bound": w.gmm_bound.map(|b| b.as_str()),
        },
    })
}

/// The whole report as a JSON value.
pub fn to_value(report: &Report) -> Value {
    let s = report.summary();
    let r = report.options.roofline();
    json!({
        "schema": SCHEMA_VERSION,
        "source": report.source,
        "options": {
            "target": report.options.target_name(),
            "cann_version": report.options.cann_version.to_string(),
            "precision": report.options.precision_name(),
        },
        "roofline": {
            "name": r.name,
            "basis": r.basis,
            "memory_bytes_per_s": r.memory_bytes_per_s,
            "int8_ops_per_s": r.int8_ops_per_s,
            "half_flops_per_s": r.half_flops_per_s,
            "f32_flops_per_s": r.f32_flops_per_s,
        },
        "candidates": report.candidates.iter().map(candidate).collect::<Vec<_>>(),
        "summary": {
            "functions": s.functions,
            "candidates": s.candidates,
            "fused": s.fused,
            "blocked": s.blocked,
            "blocked_by_reason": s.blocked_by_reason,
            "bytes_saved": s.bytes_saved,
            "net_bytes_saved": s.net_bytes_saved,
            "time_saved_us": round(s.time_saved_us),
            "blocked_bytes_saved": s.blocked_bytes_saved,
            "existing_fused_ops": s.existing_fused_ops,
        },
    })
}

/// The report as pretty-printed JSON text (with a final newline).
pub fn render(report: &Report) -> String {
    let mut text = serde_json::to_string_pretty(&to_value(report)).unwrap_or_else(|_| "{}".to_string());
    text.push('\n');
    text
}

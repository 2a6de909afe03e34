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
//!     "call_stack": ["file:line:col"],     (the finalize op's stack, innermost first)
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
//!   "front_end": true|false,              (the input was torch-mlir output, run through the front end)
//!   "unrecognized": [{"function", "location", "call_stack": ["file:line:col"], "spelling", "reasons": ["code"], "message"}],
//!   "summary": {"functions", "candidates", "fused", "blocked", "blocked_by_reason": {"code": count},
//!               "bytes_saved", "net_bytes_saved", "time_saved_us", "blocked_bytes_saved",
//!               "unknown_worth", "existing_fused_ops", "unrecognized",
//!               "unrecognized_by_reason": {"code": count}}
//! }
//! ```
//!
//! Keys print in the order above, two-space indented. Times are microseconds rounded to 0.001.
//! The text is written directly (no intermediate JSON tree), so that a 600-layer report costs
//! its size and nothing more.

use super::{Candidate, GraphFact, OpDesc, Report};
use std::fmt::Write as _;

/// The schema's name and version; bumped on any incompatible change (version 1 gained
/// `front_end`, `unrecognized` and the two `summary.unrecognized*` keys, which readers of the
/// older keys can ignore).
pub const SCHEMA_VERSION: &str = "gmmfr-analyze/1";

fn round(value: f64) -> f64 {
    // `+ 0.0` turns a rounded -0.0 into 0.0.
    (value * 1000.0).round() / 1000.0 + 0.0
}

/// A pretty-printing JSON writer: objects and arrays open and close, keys and array items
/// separate themselves.
struct Writer {
    out: String,
    depth: usize,
    /// Nothing written yet in the innermost open object or array.
    empty: bool,
}

impl Writer {
    fn newline(&mut self) {
        self.out.push('\n');
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    /// Starts the next member of the innermost object or array.
    fn next(&mut self) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.newline();
    }

    fn open(&mut self, bracket: char) {
        self.out.push(bracket);
        self.depth += 1;
        self.empty = true;
    }

    fn close(&mut self, bracket: char) {
        self.depth -= 1;
        if !self.empty {
            self.newline();
        }
        self.out.push(bracket);
        self.empty = false;
    }

    fn key(&mut self, key: &str) -> &mut Self {
        self.next();
        self.string(key);
        self.out.push_str(": ");
        self
    }

    fn item(&mut self) -> &mut Self {
        self.next();
        self
    }

    fn string(&mut self, text: &str) {
        self.out.push('"');
        for c in text.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.out, "\\u{:04x}", c as u32);
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    fn display(&mut self, value: impl std::fmt::Display) {
        let _ = write!(self.out, "{value}");
    }

    fn float(&mut self, value: f64) {
        if value.is_finite() {
            let _ = write!(self.out, "{value:?}");
        } else {
            self.out.push_str("null");
        }
    }

    fn null(&mut self) {
        self.out.push_str("null");
    }

    fn opt_u64(&mut self, value: Option<u64>) {
        match value {
            Some(v) => self.display(v),
            None => self.null(),
        }
    }

    fn opt_i64(&mut self, value: Option<i64>) {
        match value {
            Some(v) => self.display(v),
            None => self.null(),
        }
    }

    fn opt_f64(&mut self, value: Option<f64>) {
        match value {
            Some(v) => self.float(round(v)),
            None => self.null(),
        }
    }

    fn opt_str(&mut self, value: Option<&str>) {
        match value {
            Some(v) => self.string(v),
            None => self.null(),
        }
    }

    fn locations(&mut self, items: &[gmmfr_dialect::location::SourceLoc]) {
        self.open('[');
        for item in items {
            self.item().string(&item.to_string());
        }
        self.close(']');
    }

    fn strings(&mut self, items: &[String]) {
        self.open('[');
        for item in items {
            self.item().string(item);
        }
        self.close(']');
    }

    fn op(&mut self, desc: &OpDesc) {
        self.open('{');
        self.key("op").string(&desc.name);
        self.key("location").string(&desc.location.to_string());
        self.close('}');
    }

    fn ops(&mut self, ops: &[OpDesc]) {
        self.open('[');
        for op in ops {
            self.item().op(op);
        }
        self.close(']');
    }

    fn fact(&mut self, fact: &GraphFact) {
        self.open('{');
        self.key("kind").string(fact.kind());
        match fact {
            GraphFact::OtherUser {
                user,
                operand,
                reaches_finalize,
            } => {
                self.key("op").string(&user.name);
                self.key("location").string(&user.location.to_string());
                self.key("operand").display(operand);
                self.key("reaches_finalize").display(reaches_finalize);
            }
            GraphFact::WouldBeCycle { path } => self.key("path").ops(path),
            GraphFact::DifferentRegions {
                gmm_enclosing,
                finalize_enclosing,
                common,
            } => {
                self.key("gmm_enclosing").ops(gmm_enclosing);
                self.key("finalize_enclosing").ops(finalize_enclosing);
                match common {
                    Some(common) => self.key("common").op(common),
                    None => self.key("common").null(),
                }
            }
        }
        self.close('}');
    }

    fn candidate(&mut self, c: &Candidate) {
        self.open('{');
        self.key("id").display(c.id);
        self.key("function").string(&c.function);
        self.key("location").string(&c.location.to_string());
        self.key("gmm_location").string(&c.gmm_location.to_string());
        self.key("call_stack").locations(&c.call_stack);
        self.key("spelling").string(&c.spelling);
        self.key("scenario").opt_str(c.scenario.as_deref());
        self.key("shapes").open('{');
        let s = &c.shapes;
        for (name, value) in [
            ("m", s.m),
            ("k", s.k),
            ("n", s.n),
            ("e", s.e),
            ("batch", s.batch),
            ("top_k", s.top_k),
        ] {
            self.key(name).opt_u64(value);
        }
        self.close('}');
        self.key("operands").open('[');
        for operand in &c.operands {
            self.item().open('{');
            self.key("operand").string(&operand.operand);
            self.key("dtype").string(&operand.dtype);
            self.key("type").string(&operand.r#type);
            self.close('}');
        }
        self.close(']');
        self.key("decision").string(c.verdict.as_str());
        self.key("reasons").open('[');
        for reason in &c.reasons {
            self.item().open('{');
            self.key("code").string(&reason.code);
            self.key("message").string(&reason.message);
            match &reason.profile {
                Some(p) => {
                    self.key("profile").open('{');
                    self.key("constraint").string(p.constraint);
                    self.key("subject").string(&p.subject);
                    self.key("actual").string(&p.actual);
                    self.key("allowed").string(&p.allowed);
                    self.close('}');
                }
                None => self.key("profile").null(),
            }
            self.close('}');
        }
        self.close(']');
        self.key("notes").strings(&c.notes);
        self.key("graph_facts").open('[');
        for fact in &c.graph_facts {
            self.item().fact(fact);
        }
        self.close(']');
        let w = &c.worth;
        self.key("bytes_saved").opt_u64(w.bytes_saved);
        self.key("worth").open('{');
        self.key("bytes_added").opt_i64(w.bytes_added);
        self.key("net_bytes_saved").opt_i64(w.net_bytes_saved);
        self.key("flops").opt_u64(w.flops);
        self.key("time_unfused_us").opt_f64(w.time_unfused_us);
        self.key("time_fused_us").opt_f64(w.time_fused_us);
        self.key("time_saved_us").opt_f64(w.time_saved_us);
        self.key("gmm_bound").opt_str(w.gmm_bound.map(|b| b.as_str()));
        self.close('}');
        self.close('}');
    }
}

/// The report as pretty-printed JSON text (with a final newline).
pub fn render(report: &Report) -> String {
    let s = report.summary();
    let r = report.options.roofline();
    // About 3 KiB per candidate.
    let mut w = Writer {
        out: String::with_capacity(2048 + 3072 * report.candidates.len()),
        depth: 0,
        empty: true,
    };
    w.open('{');
    w.key("schema").string(SCHEMA_VERSION);
    w.key("source").string(&report.source);
    w.key("options").open('{');
    w.key("target").string(report.options.target_name());
    w.key("cann_version").string(&report.options.cann_version.to_string());
    w.key("precision").string(report.options.precision_name());
    w.close('}');
    w.key("roofline").open('{');
    w.key("name").string(r.name);
    w.key("basis").string(r.basis);
    w.key("memory_bytes_per_s").float(r.memory_bytes_per_s);
    w.key("int8_ops_per_s").float(r.int8_ops_per_s);
    w.key("half_flops_per_s").float(r.half_flops_per_s);
    w.key("f32_flops_per_s").float(r.f32_flops_per_s);
    w.close('}');
    w.key("candidates").open('[');
    for candidate in &report.candidates {
        w.item().candidate(candidate);
    }
    w.close(']');
    w.key("front_end").display(report.front_end);
    w.key("unrecognized").open('[');
    for entry in &report.unrecognized {
        w.item().open('{');
        w.key("function").string(&entry.function);
        w.key("location").string(&entry.location.to_string());
        w.key("call_stack").locations(&entry.call_stack);
        w.key("spelling").string(&entry.spelling);
        w.key("reasons").strings(&entry.codes);
        w.key("message").string(&entry.message);
        w.close('}');
    }
    w.close(']');
    w.key("summary").open('{');
    w.key("functions").display(s.functions);
    w.key("candidates").display(s.candidates);
    w.key("fused").display(s.fused);
    w.key("blocked").display(s.blocked);
    w.key("blocked_by_reason").open('{');
    for (code, count) in &s.blocked_by_reason {
        w.key(code).display(count);
    }
    w.close('}');
    w.key("bytes_saved").display(s.bytes_saved);
    w.key("net_bytes_saved").display(s.net_bytes_saved);
    w.key("time_saved_us").float(round(s.time_saved_us));
    w.key("blocked_bytes_saved").display(s.blocked_bytes_saved);
    w.key("unknown_worth").display(s.unknown_worth);
    w.key("existing_fused_ops").display(s.existing_fused_ops);
    w.key("unrecognized").display(s.unrecognized);
    w.key("unrecognized_by_reason").open('{');
    for (code, count) in &s.unrecognized_by_reason {
        w.key(code).display(count);
    }
    w.close('}');
    w.close('}');
    w.close('}');
    w.out.push('\n');
    w.out
}

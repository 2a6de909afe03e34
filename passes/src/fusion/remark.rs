//! One remark per candidate pair, at the finalize op's location: fused, or not fused with
//! every reason that applies.

use super::reason::Reason;
use gmmfr_dialect::location::SourceLoc;
use std::fmt::Write;

/// The decision a remark reports.
#[derive(Clone, Debug, PartialEq)]
pub enum RemarkDecision {
    /// Fused; the notes say how (index materialization, precision refinement, ...).
    Fused(Vec<String>),
    /// Not fused, with every reason.
    NotFused(Vec<Reason>),
}

/// A fusion remark.
#[derive(Clone, Debug, PartialEq)]
pub struct Remark {
    /// The finalize op's location.
    pub location: SourceLoc,
    /// Enclosing function.
    pub function: String,
    /// What was decided.
    pub decision: RemarkDecision,
}

impl Remark {
    /// `[npu-fuse-gmm-finalize] fused (notes)` or `[npu-fuse-gmm-finalize] not-fused: code: ...; code: ...`.
    pub fn message(&self) -> String {
        match &self.decision {
            RemarkDecision::Fused(notes) => {
                let notes = if notes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", notes.join("; "))
                };
                format!("[npu-fuse-gmm-finalize] fused{notes}")
            }
            RemarkDecision::NotFused(reasons) => {
                let reasons: Vec<String> = reasons.iter().map(|r| r.to_string()).collect();
                format!("[npu-fuse-gmm-finalize] not-fused: {}", reasons.join("; "))
            }
        }
    }

    /// `file:line:col: remark: ` and the message.
    pub fn to_text(&self) -> String {
        format!("{}: remark: {}", self.location, self.message())
    }

    /// One JSON object: location, function, decision, reasons (codes and messages), notes.
    pub fn to_json(&self) -> String {
        let mut text = String::from("{");
        let _ = write!(
            text,
            "\"location\": {}, \"function\": {}, ",
            json_string(&self.location.to_string()),
            json_string(&self.function)
        );
        match &self.decision {
            RemarkDecision::Fused(notes) => {
                let notes: Vec<String> = notes.iter().map(|n| json_string(n)).collect();
                let _ = write!(
                    text,
                    "\"decision\": \"fused\", \"reasons\": [], \"notes\": [{}]",
                    notes.join(", ")
                );
            }
            RemarkDecision::NotFused(reasons) => {
                let reasons: Vec<String> = reasons
                    .iter()
                    .map(|r| {
                        format!(
                            "{{\"code\": {}, \"message\": {}}}",
                            json_string(&r.code()),
                            json_string(&r.to_string())
                        )
                    })
                    .collect();
                let _ = write!(
                    text,
                    "\"decision\": \"not-fused\", \"reasons\": [{}], \"notes\": []",
                    reasons.join(", ")
                );
            }
        }
        text.push('}');
        text
    }
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

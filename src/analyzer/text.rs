//! The report for people: a header naming the target and the roofline assumptions, one table
//! row per candidate, the reasons and graph facts of each blocked candidate, and the summary.

use super::{GraphFact, OpDesc, Report, Summary, Verdict};
use std::fmt::Write;

fn opt(value: Option<u64>) -> String {
    value.map_or("?".to_string(), |v| v.to_string())
}

/// Bytes with a binary unit, e.g. `3.50 MiB`.
pub fn human_bytes(bytes: i64) -> String {
    let magnitude = bytes.unsigned_abs() as f64;
    let sign = if bytes < 0 { "-" } else { "" };
    let units = [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in units {
        if magnitude >= size as f64 {
            return format!("{sign}{:.2} {unit}", magnitude / size as f64);
        }
    }
    format!("{bytes} B")
}

/// Microseconds to 0.001 (never `-0.000`).
fn microseconds(value: f64) -> String {
    format!("{:.3}", (value * 1000.0).round() / 1000.0 + 0.0)
}

fn at(op: &OpDesc) -> String {
    format!("{} ({})", op.name, op.location)
}

fn fact_line(fact: &GraphFact) -> String {
    match fact {
        GraphFact::OtherUser {
            user,
            operand,
            reaches_finalize,
        } => format!(
            "other user of the grouped_matmul result: {} as operand #{operand}{}",
            at(user),
            if *reaches_finalize {
                ", and it feeds the finalize op"
            } else {
                ""
            }
        ),
        GraphFact::WouldBeCycle { path } => format!(
            "would-be cycle: fusing would merge both ends of {}",
            path.iter().map(at).collect::<Vec<_>>().join(" -> ")
        ),
        GraphFact::DifferentRegions {
            gmm_enclosing,
            finalize_enclosing,
            common,
        } => {
            let side = |chain: &[OpDesc]| {
                if chain.is_empty() {
                    "directly".to_string()
                } else {
                    format!("inside {}", chain.iter().map(at).collect::<Vec<_>>().join(" inside "))
                }
            };
            format!(
                "different regions: grouped_matmul {}, moe_finalize_routing {}, in {}",
                side(gmm_enclosing),
                side(finalize_enclosing),
                common.as_ref().map_or("<top level>".to_string(), |c| c.name.clone())
            )
        }
    }
}

/// ", called from a <- b <- ..." for the outer frames of a call stack (nothing for one frame).
fn called_from(stack: &[gmmfr_dialect::location::SourceLoc]) -> String {
    if stack.len() < 2 {
        return String::new();
    }
    let callers: Vec<String> = stack[1..].iter().map(|l| l.to_string()).collect();
    format!(", called from {}", callers.join(" <- "))
}

fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| format!("{cell:<width$}", width = widths[c]))
            .collect();
        let _ = writeln!(text, "  {}", cells.join("  ").trim_end());
    }
    text
}

/// The summary block (also printed on its own by `examples/run.sh`).
pub fn render_summary(summary: &Summary) -> String {
    let mut text = format!(
        "summary: {} candidate(s) in {} function(s): {} fused, {} blocked\n",
        summary.candidates, summary.functions, summary.fused, summary.blocked
    );
    let _ = writeln!(
        text,
        "  fused: {} of intermediate traffic removed ({} net), estimated {} us saved",
        human_bytes(summary.bytes_saved as i64),
        human_bytes(summary.net_bytes_saved),
        microseconds(summary.time_saved_us)
    );
    if summary.blocked > 0 {
        let _ = writeln!(
            text,
            "  blocked: {} of intermediate traffic left in place",
            human_bytes(summary.blocked_bytes_saved as i64)
        );
        for (code, count) in &summary.blocked_by_reason {
            let _ = writeln!(text, "    {code}: {count}");
        }
    }
    if summary.unknown_worth > 0 {
        let _ = writeln!(
            text,
            "  not in the totals: {} candidate(s) with a dynamic size",
            summary.unknown_worth
        );
    }
    if summary.unrecognized > 0 {
        let _ = writeln!(
            text,
            "  not recognized by the front end: {} combine(s)",
            summary.unrecognized
        );
        for (code, count) in &summary.unrecognized_by_reason {
            let _ = writeln!(text, "    {code}: {count}");
        }
    }
    if summary.existing_fused_ops > 0 {
        let _ = writeln!(
            text,
            "  already fused: {} npu.grouped_matmul_finalize_routing op(s)",
            summary.existing_fused_ops
        );
    }
    text
}

/// The whole report as text.
pub fn render(report: &Report) -> String {
    let options = &report.options;
    let roofline = options.roofline();
    let mut text = format!(
        "{}: MoE combine candidates, target {}{}, precision {}\nroofline {}: {}\n",
        report.source,
        options.target_name(),
        match options.target {
            gmmfr_passes::fusion::Target::Ascend => format!(" (CANN {})", options.cann_version),
            gmmfr_passes::fusion::Target::Loops => String::new(),
        },
        options.precision_name(),
        roofline.name,
        roofline.basis
    );
    if !report.candidates.is_empty() {
        let mut rows = vec![
            [
                "#",
                "function",
                "location",
                "m",
                "k",
                "n",
                "e",
                "batch",
                "topK",
                "scenario",
                "decision",
                "bytes saved",
                "net saved",
                "time saved (us)",
                "reasons",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for c in &report.candidates {
            let s = &c.shapes;
            let codes = c.codes();
            rows.push(vec![
                c.id.to_string(),
                c.function.clone(),
                c.location.to_string(),
                opt(s.m),
                opt(s.k),
                opt(s.n),
                opt(s.e),
                opt(s.batch),
                opt(s.top_k),
                c.scenario.clone().unwrap_or_else(|| "?".to_string()),
                c.verdict.as_str().to_string(),
                c.worth.bytes_saved.map_or("?".to_string(), |b| human_bytes(b as i64)),
                c.worth.net_bytes_saved.map_or("?".to_string(), human_bytes),
                c.worth.time_saved_us.map_or("?".to_string(), microseconds),
                if codes.is_empty() {
                    "-".to_string()
                } else {
                    codes.join(", ")
                },
            ]);
        }
        text.push_str(&table(&rows));
    }
    for c in report.candidates.iter().filter(|c| c.verdict == Verdict::Blocked) {
        let _ = writeln!(
            text,
            "#{} blocked: {} in @{} (grouped_matmul at {})",
            c.id, c.location, c.function, c.gmm_location
        );
        for reason in &c.reasons {
            match &reason.profile {
                Some(p) => {
                    let _ = writeln!(
                        text,
                        "  {}: {} is {}, allowed {}",
                        reason.code, p.subject, p.actual, p.allowed
                    );
                }
                None => {
                    let _ = writeln!(text, "  {}: {}", reason.code, reason.message);
                }
            }
        }
        for fact in &c.graph_facts {
            let _ = writeln!(text, "  graph: {}", fact_line(fact));
        }
    }
    if report.front_end {
        for c in &report.candidates {
            let _ = writeln!(text, "#{} spelled as {}{}", c.id, c.spelling, called_from(&c.call_stack));
        }
    }
    for entry in &report.unrecognized {
        let _ = writeln!(
            text,
            "not recognized: {} at {} in @{}{}: {}",
            entry.spelling,
            entry.location,
            entry.function,
            called_from(&entry.call_stack),
            entry.codes.join(", ")
        );
    }
    text.push_str(&render_summary(&report.summary()));
    text
}

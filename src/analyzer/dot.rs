//! The report as Graphviz DOT: one digraph per module, one cluster per candidate holding its MoE
//! subgraph. Fused candidates are green (cluster border and the pair's fill), blocked ones red
//! with their reason codes in the cluster label; other users of the intermediate and ops on a
//! would-be cycle are orange, enclosing ops of another region grey. Value edges are solid,
//! region edges (nested op -> enclosing op) dashed.

use super::{Candidate, NodeRole, Report, Verdict};
use std::fmt::Write;

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn node_style(role: NodeRole, verdict: Verdict) -> &'static str {
    match (role, verdict) {
        (NodeRole::Gmm | NodeRole::Finalize | NodeRole::Reshape, Verdict::Fused) => {
            "style=filled, fillcolor=\"palegreen\""
        }
        (NodeRole::Gmm | NodeRole::Finalize | NodeRole::Reshape, Verdict::Blocked) => {
            "style=filled, fillcolor=\"lightpink\""
        }
        (NodeRole::Obstacle, _) => "style=filled, fillcolor=\"orange\"",
        (NodeRole::Enclosing, _) => "style=\"filled,dashed\", fillcolor=\"lightgrey\"",
        (NodeRole::Context, _) => "style=solid",
    }
}

fn cluster(text: &mut String, c: &Candidate) {
    let (color, verdict) = match c.verdict {
        Verdict::Fused => ("forestgreen", "fused".to_string()),
        Verdict::Blocked => {
            let codes = c.codes();
            ("firebrick", format!("blocked: {}", codes.join(", ")))
        }
    };
    let label = format!("#{} @{} {}\n{verdict}", c.id, c.function, c.location);
    let _ = writeln!(text, "  subgraph cluster_{} {{", c.id);
    let _ = writeln!(
        text,
        "    label=\"{}\"; color=\"{color}\"; fontcolor=\"{color}\"; penwidth=2;",
        escape(&label)
    );
    for node in &c.subgraph.nodes {
        let label = format!("{}\n{}", node.op.name, node.op.location);
        let _ = writeln!(
            text,
            "    c{}_n{} [label=\"{}\", {}];",
            c.id,
            node.key,
            escape(&label),
            node_style(node.role, c.verdict)
        );
    }
    for (from, to, region) in &c.subgraph.edges {
        let style = if *region { " [style=dashed]" } else { "" };
        let _ = writeln!(text, "    c{0}_n{from} -> c{0}_n{to}{style};", c.id);
    }
    let _ = writeln!(text, "  }}");
}

/// The whole report as one DOT digraph.
pub fn render(report: &Report) -> String {
    let mut text = format!(
        "// gmmfr analyze {}: target {}, one cluster per MoE combine candidate\ndigraph moe {{\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n",
        report.source,
        report.options.target_name()
    );
    for c in &report.candidates {
        cluster(&mut text, c);
    }
    text.push_str("}\n");
    text
}

//! A short human summary of a module: its functions and the npu ops in each, with the facts
//! that matter for fusion (scenario and m, k, n, e).

use gmmfr_dialect::location::SourceLoc;
use gmmfr_dialect::op_view::NpuOp;
use gmmfr_dialect::scenario::Scenario;
use gmmfr_dialect::schema;
use gmmfr_dialect::types::TensorInfo;
use melior::ir::{
    Module,
    attribute::StringAttribute,
    operation::{OperationLike, WalkOrder, WalkResult},
};
use std::fmt::Write;

/// One npu op as summarized.
#[derive(Clone, Debug)]
pub struct OpSummary {
    /// Enclosing function symbol, if any.
    pub function: String,
    /// Where.
    pub location: SourceLoc,
    /// Op name.
    pub name: String,
    /// Shapes and scenario, in words.
    pub facts: String,
}

/// Collects the npu ops of a module.
pub fn summarize(module: &Module<'_>) -> Vec<OpSummary> {
    let mut ops = Vec::new();
    let mut function = String::new();
    module.as_operation().walk(WalkOrder::PreOrder, |operation| {
        if operation.name().as_string_ref().as_str() == Ok("func.func") {
            function = operation
                .attribute("sym_name")
                .ok()
                .and_then(|a| StringAttribute::try_from(a).ok())
                .map(|s| s.value().to_string())
                .unwrap_or_default();
        }
        if let Ok(Some(op)) = NpuOp::new(operation) {
            ops.push(OpSummary {
                function: function.clone(),
                location: SourceLoc::from_location(operation.location()),
                name: op.name().to_string(),
                facts: facts(&op),
            });
        }
        WalkResult::Advance
    });
    ops
}

fn dim(info: &Option<TensorInfo>, index: usize) -> String {
    info.as_ref()
        .and_then(|i| i.dims.get(index).copied())
        .flatten()
        .map_or("?".to_string(), |d| d.to_string())
}

fn facts(op: &NpuOp<'_, '_>) -> String {
    let name = op.schema.name;
    if name == schema::GMMFR.name || name == schema::GROUPED_MATMUL.name {
        let weight = if name == schema::GMMFR.name { "w" } else { "weight" };
        let x = op.operand_info("x");
        let w = op.operand_info(weight);
        let out = op.result_info(0);
        let scenario = match (&x, &w) {
            (Some(x), Some(w)) => Scenario::classify(x, w).map_or("unclassified".to_string(), |s| s.to_string()),
            _ => "unclassified".to_string(),
        };
        let e = dim(&op.operand_info("group_list"), 0);
        let mut text = format!("{scenario}, m={} k={} n={} e={e}", dim(&x, 0), dim(&x, 1), dim(&out, 1));
        if name == schema::GMMFR.name {
            let _ = write!(text, ", output rows={}", dim(&out, 0));
            let present: Vec<&str> = ["pertoken_scale", "shared_input", "logit", "bias", "offset"]
                .into_iter()
                .filter(|o| op.operand(o).is_some())
                .collect();
            if !present.is_empty() {
                let _ = write!(text, ", with {}", present.join(", "));
            }
        }
        text
    } else {
        let results: Vec<String> = (0..op.schema.results.len())
            .filter_map(|i| op.result_info(i).map(|info| info.text))
            .collect();
        format!("-> {}", results.join(", "))
    }
}

/// The summary as text, one line per op.
pub fn render(source: &str, ops: &[OpSummary]) -> String {
    let functions = {
        let mut names: Vec<&str> = ops.iter().map(|o| o.function.as_str()).collect();
        names.dedup();
        names.len()
    };
    let mut text = format!(
        "{source}: valid npu IR, {} npu op(s) in {functions} function(s)\n",
        ops.len()
    );
    for op in ops {
        let _ = writeln!(text, "  {}  @{}  {}: {}", op.location, op.function, op.name, op.facts);
    }
    text
}

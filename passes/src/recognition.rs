//! Recognizing a MoE combine however a model spells it: an e-graph of a block's dataflow is
//! saturated with named rules (within an explicit budget), and every combine-looking op whose
//! e-class then holds a canonical weighted combine is a recognized candidate.

pub mod cost;
pub mod dataflow;
pub mod language;
pub mod materialize;
pub mod per_slot;
pub mod rules;

use dataflow::Dataflow;
use egg::{Extractor, Id, Runner, StopReason};
use language::{FailedCheck, Moe};
use std::collections::BTreeMap;
use std::time::Duration;

/// The attribute the recognizer (and the torch front end) puts on the `npu.moe_finalize_routing`
/// it writes: the spelling the combine was found in, for reports (`gmmfr analyze`).
pub const SPELLING_ATTRIBUTE: &str = "gmmfr.spelling";

/// What became of one combine-looking op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CombineOutcome {
    /// The enclosing function's symbol.
    pub function: String,
    /// The combine op's location (torch-mlir keeps the model's Python file:line).
    pub location: gmmfr_dialect::location::SourceLoc,
    /// The op's call stack, innermost frame first.
    pub call_stack: Vec<gmmfr_dialect::location::SourceLoc>,
    /// The op the combine was spelled with, e.g. `torch.aten.index_add`.
    pub spelling: String,
    /// Whether it was rewritten as routing + grouped matmul + finalize.
    pub recognized: bool,
    /// When not: every reason code (README, "Front end"), e.g. `weights-not-per-slot`.
    pub codes: Vec<String>,
    /// The remark, in words.
    pub message: String,
}

/// The limits of one saturation, per combine candidate: a function with N candidates (a model
/// with N MoE layers) may grow its e-graph to N times the nodes and take N times the time, since
/// every layer brings its own dataflow. Iterations do not scale: the layers saturate side by side.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Most e-nodes, per candidate.
    pub nodes: usize,
    /// Most iterations (rounds of applying every rule).
    pub iterations: usize,
    /// Most wall time, per candidate.
    pub time: Duration,
}

impl Budget {
    /// The limits for a function with `candidates` combine candidates.
    pub fn for_candidates(self, candidates: usize) -> Budget {
        let n = candidates.max(1);
        Budget {
            nodes: self.nodes.saturating_mul(n),
            iterations: self.iterations,
            time: self.time.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX)),
        }
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            nodes: 20_000,
            iterations: 16,
            time: Duration::from_millis(2_000),
        }
    }
}

/// What one saturation did.
#[derive(Clone, Debug)]
pub struct Saturation {
    /// Why it stopped: `saturated`, or the budget limit it hit.
    pub stop_reason: String,
    /// Whether the stop reason is saturation (every equality the rules can find was found).
    pub saturated: bool,
    /// Iterations run.
    pub iterations: usize,
    /// E-nodes at the end.
    pub nodes: usize,
    /// E-classes at the end.
    pub classes: usize,
    /// Wall time.
    pub time: Duration,
    /// How often each rule fired.
    pub applied: BTreeMap<String, usize>,
}

/// A canonical combine the extraction chose for a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Combine {
    /// The permutation that sorted the (token, slot) pairs.
    pub perm: Id,
    /// The expert rows, in permuted order.
    pub rows: Id,
    /// The flat router weights (tokens * topK).
    pub weights: Id,
    /// The shared-expert rows absorbed into the combine.
    pub shared: Option<Id>,
}

/// Saturates the e-graph of `dataflow` within `budget`.
pub fn saturate(dataflow: &mut Dataflow<'_, '_>, budget: Budget) -> Saturation {
    let graph = std::mem::take(&mut dataflow.graph);
    let runner = Runner::default()
        .with_egraph(graph)
        .with_node_limit(budget.nodes)
        .with_iter_limit(budget.iterations)
        .with_time_limit(budget.time)
        .run(&rules::rules());
    let mut applied = BTreeMap::new();
    let mut time = Duration::ZERO;
    for iteration in &runner.iterations {
        time += Duration::from_secs_f64(iteration.total_time);
        for (rule, count) in &iteration.applied {
            *applied.entry(rule.to_string()).or_insert(0) += count;
        }
    }
    let (stop_reason, saturated) = match &runner.stop_reason {
        Some(StopReason::Saturated) => ("saturated".to_string(), true),
        Some(StopReason::IterationLimit(n)) => (format!("iteration limit ({n})"), false),
        Some(StopReason::NodeLimit(n)) => (format!("node limit ({n})"), false),
        Some(StopReason::TimeLimit(t)) => (format!("time limit ({t:.3} s)"), false),
        Some(StopReason::Other(other)) => (other.clone(), false),
        None => ("not run".to_string(), false),
    };
    let mut graph = runner.egraph;
    graph.rebuild();
    let saturation = Saturation {
        stop_reason,
        saturated,
        iterations: runner.iterations.len(),
        nodes: graph.total_number_of_nodes(),
        classes: graph.number_of_classes(),
        time,
        applied,
    };
    dataflow.graph = graph;
    saturation
}

/// The extraction of one saturated e-graph (costs computed once, for every root).
pub type CombineExtractor<'g> = Extractor<'g, cost::BytesAndFlops<'g>, Moe, language::MoeFacts>;

/// The extractor for `dataflow`'s saturated e-graph.
pub fn extractor<'g>(dataflow: &'g Dataflow<'_, '_>) -> CombineExtractor<'g> {
    Extractor::new(&dataflow.graph, cost::BytesAndFlops::new(&dataflow.graph))
}

/// The cheapest form of `class`, if it is a canonical weighted combine.
pub fn extracted_combine(extractor: &CombineExtractor<'_>, class: Id) -> Option<Combine> {
    match extractor.find_best_node(class) {
        Moe::WCombine([perm, rows, weights]) => Some(Combine {
            perm: *perm,
            rows: *rows,
            weights: *weights,
            shared: None,
        }),
        Moe::WCombineShared([perm, rows, weights, shared]) => Some(Combine {
            perm: *perm,
            rows: *rows,
            weights: *weights,
            shared: Some(*shared),
        }),
        _ => None,
    }
}

/// Whether `class` holds an unweighted combine (a permutation's rows summed back per token with
/// no router weight per slot).
pub fn holds_unweighted_combine(dataflow: &Dataflow<'_, '_>, class: Id) -> bool {
    dataflow.graph[class].nodes.iter().any(|n| matches!(n, Moe::Combine(_)))
}

/// The failed checks recorded for `class` or for any class below it.
pub fn failures_under(dataflow: &Dataflow<'_, '_>, class: Id) -> Vec<FailedCheck> {
    let graph = &dataflow.graph;
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![graph.find(class)];
    let mut classes = std::collections::HashSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) || seen.len() > 4096 {
            continue;
        }
        classes.insert(id);
        for node in &graph[id].nodes {
            for child in egg::Language::children(node) {
                stack.push(graph.find(*child));
            }
        }
    }
    graph
        .analysis
        .failures
        .iter()
        .filter(|f| classes.contains(&graph.find(f.class)))
        .cloned()
        .collect()
}

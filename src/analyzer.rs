//! The fusion-opportunity analyzer (`gmmfr analyze`): reports every MoE combine candidate of a
//! module without changing it.
//!
//! For every function it builds a petgraph dataflow graph ([`dataflow`]), finds the candidates
//! the fusion's legality finds (every `npu.moe_finalize_routing` fed by an
//! `npu.grouped_matmul`, decided by [`gmmfr_passes::fusion::decide`], the one place the rules of
//! SPEC 2.4 live), and reports for each: where it is, what it is (spelling, shapes, scenario,
//! operand types), the decision with every reason (and, under the Ascend target, each failed
//! profile constraint with its actual and allowed value), the graph facts behind a block, and
//! what the fusion is worth under a stated roofline model ([`roofline`]). Renderings: a text
//! table ([`text`]), versioned JSON ([`json`]) and Graphviz DOT ([`dot`]).
//!
//! Input is `npu` IR, or torch-mlir output: [`analyze_file`] then first runs the front end
//! ([`FRONT_END_PIPELINE`]: `torch-to-npu` and the e-graph recognizer) on it, so that every MoE
//! combine the recognizer finds becomes the npu pair, with the spelling it was found in
//! ([`Candidate::spelling`]); combines it could not recognize are reported as
//! [`Report::unrecognized`] with their reason codes. The analysis itself never changes the module
//! it is given.

mod candidate;
pub mod dataflow;
pub mod dot;
pub mod json;
pub mod roofline;
pub mod text;

use crate::{Compiler, Error};
use gmmfr_dialect::location::SourceLoc;
use gmmfr_dialect::profile::{CannVersion, ProfileViolation};
use gmmfr_dialect::schema;
use gmmfr_passes::fusion::{FusionOptions, Precision, Target};
use melior::ir::Module;
use melior::ir::operation::OperationLike;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub use roofline::{Roofline, Worth};

/// The spelling of a candidate found directly in npu IR (no front end involved).
pub const NPU_PAIR_SPELLING: &str = "npu.grouped_matmul + npu.moe_finalize_routing";

/// The passes that turn torch-mlir output into npu IR before the analysis: the same front end the
/// fusion pipeline runs (the aten lowering lets the fusion legality follow index maps through
/// tensor-dialect reshapes, as in drop_pad_mode 0).
pub const FRONT_END_PIPELINE: &str = "torch-to-npu,npu-recognize-moe-combine,torch-lower-aten";

/// A combine-looking op of torch-mlir input the recognizer did not turn into the npu pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unrecognized {
    /// The enclosing function.
    pub function: String,
    /// The op's location (the model's Python file:line).
    pub location: SourceLoc,
    /// The op it is spelled with, e.g. `torch.aten.index_add`.
    pub spelling: String,
    /// The op's call stack, innermost frame first.
    pub call_stack: Vec<SourceLoc>,
    /// Every reason code (README, "Front end"), e.g. `weights-not-per-slot`.
    pub codes: Vec<String>,
    /// The recognizer's remark.
    pub message: String,
}

/// What the analyzer decides against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnalyzeOptions {
    /// The target whose legality decides `fused` (loops: any valid IR; ascend: also the profile).
    pub target: Target,
    /// The CANN release, with the Ascend target.
    pub cann_version: CannVersion,
    /// The fusion's precision policy (refine by default, as the pass).
    pub precision: Precision,
}

impl AnalyzeOptions {
    /// The fusion options the legality runs with.
    pub fn fusion(&self) -> FusionOptions {
        FusionOptions {
            precision: self.precision,
            target: self.target,
            cann_version: self.cann_version,
        }
    }

    /// The target's name as the command line spells it.
    pub fn target_name(&self) -> &'static str {
        match self.target {
            Target::Loops => "loops",
            Target::Ascend => "ascend",
        }
    }

    /// The precision policy's name as the command line spells it.
    pub fn precision_name(&self) -> &'static str {
        match self.precision {
            Precision::Refine => "refine",
            Precision::Exact => "exact",
        }
    }

    /// The roofline model of the target.
    pub fn roofline(&self) -> &'static Roofline {
        roofline::for_target(self.target)
    }
}

/// Why an analysis could not run.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// The input did not load (parse or verification error, located), or MLIR did not set up.
    #[error(transparent)]
    Load(#[from] Error),
    /// The report could not be written.
    #[error("{path}: error: cannot write: {source}")]
    Write {
        /// The output path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl From<AnalyzeError> for Error {
    fn from(error: AnalyzeError) -> Self {
        match error {
            AnalyzeError::Load(error) => error,
            AnalyzeError::Write { path, source } => Error::Write {
                path,
                message: source.to_string(),
            },
        }
    }
}

/// The decision for one candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The fusion would rewrite this pair under the chosen target.
    Fused,
    /// The fusion would leave it; [`Candidate::reasons`] says why.
    Blocked,
}

impl Verdict {
    /// `fused` or `blocked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Fused => "fused",
            Verdict::Blocked => "blocked",
        }
    }
}

/// One reason a candidate is blocked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReasonEntry {
    /// The stable reason code (README, "Fusion"), e.g. `skip2-present` or
    /// `ascend-profile:older-k-whitelist`.
    pub code: String,
    /// The reason in words.
    pub message: String,
    /// For `ascend-profile:*`: the failed profile constraint with its actual and allowed value.
    pub profile: Option<ProfileViolation>,
}

/// The sizes of a candidate (`None`: dynamic or not determinable).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shapes {
    /// Rows of the grouped matmul's x (permuted rows, T * K when drop-less).
    pub m: Option<u64>,
    /// Contraction size (columns of x).
    pub k: Option<u64>,
    /// Output columns (hidden size).
    pub n: Option<u64>,
    /// Experts in the group list (local experts under expert parallelism).
    pub e: Option<u64>,
    /// Rows of the combined output (tokens).
    pub batch: Option<u64>,
    /// Experts per token.
    pub top_k: Option<u64>,
}

/// The type of one operand of the pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperandType {
    /// `grouped_matmul.<name>` or `moe_finalize_routing.<name>` (torch_npu names).
    pub operand: String,
    /// The element type, e.g. `i8`.
    pub dtype: String,
    /// The type as MLIR prints it.
    pub r#type: String,
}

/// An op as the report names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpDesc {
    /// The op name, with the symbol for functions (`func.func @f`).
    pub name: String,
    /// Where it is.
    pub location: SourceLoc,
}

/// A dataflow fact behind a block, read from the function's graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GraphFact {
    /// The grouped matmul's result has a use besides the candidate's own.
    OtherUser {
        /// The using op.
        user: OpDesc,
        /// Which of its operands the result is.
        operand: usize,
        /// Whether the user (transitively) feeds the finalize op: then fusing would need a cycle.
        reaches_finalize: bool,
    },
    /// A dependence path grouped_matmul -> ... -> finalize through other ops: merging the two
    /// ends into one op would turn it into a cycle.
    WouldBeCycle {
        /// The ops on the path, grouped matmul first, finalize last.
        path: Vec<OpDesc>,
    },
    /// The two ops are in different blocks or regions.
    DifferentRegions {
        /// The ops enclosing the grouped matmul, innermost first, below the common ancestor.
        gmm_enclosing: Vec<OpDesc>,
        /// The ops enclosing the finalize op, innermost first, below the common ancestor.
        finalize_enclosing: Vec<OpDesc>,
        /// The innermost op enclosing both (usually the function).
        common: Option<OpDesc>,
    },
}

impl GraphFact {
    /// `other-user`, `would-be-cycle` or `different-regions`.
    pub fn kind(&self) -> &'static str {
        match self {
            GraphFact::OtherUser { .. } => "other-user",
            GraphFact::WouldBeCycle { .. } => "would-be-cycle",
            GraphFact::DifferentRegions { .. } => "different-regions",
        }
    }
}

/// What a node of a candidate's subgraph is, for the DOT rendering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeRole {
    /// The grouped matmul.
    Gmm,
    /// The finalize op.
    Finalize,
    /// The reshape between them (padded modes).
    Reshape,
    /// Another user of the grouped matmul result, or an op on a would-be cycle.
    Obstacle,
    /// An op enclosing one of the pair in another region.
    Enclosing,
    /// A producer of the pair's operands (routing, quantization, router, shared expert, ...).
    Context,
}

/// One node of a candidate's MoE subgraph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubgraphNode {
    /// A key unique within the function (the graph's node index).
    pub key: usize,
    /// The op.
    pub op: OpDesc,
    /// Its role.
    pub role: NodeRole,
}

/// The MoE subgraph around a candidate: the pair, the producers of its operands, the other users
/// of the intermediate and the ops enclosing either end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subgraph {
    /// The nodes.
    pub nodes: Vec<SubgraphNode>,
    /// Edges between node keys: (from, to, is a region edge (nested op -> enclosing op)).
    pub edges: Vec<(usize, usize, bool)>,
}

/// One MoE combine candidate.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Its index in the report.
    pub id: usize,
    /// The enclosing function.
    pub function: String,
    /// The finalize op's location (for torch-mlir input, the model's Python file:line).
    pub location: SourceLoc,
    /// The grouped matmul's location.
    pub gmm_location: SourceLoc,
    /// The finalize op's call stack, innermost frame first (torch-mlir records the model's
    /// Python stack: the MoE helper, then the model's own file:line that called it).
    pub call_stack: Vec<SourceLoc>,
    /// The spelling the candidate was found in.
    pub spelling: String,
    /// A8W8, A8W4 or non-quantized (from the grouped matmul's x and weight).
    pub scenario: Option<String>,
    /// m, k, n, e, batch, topK.
    pub shapes: Shapes,
    /// The type of every operand of both ops.
    pub operands: Vec<OperandType>,
    /// Fused or blocked.
    pub verdict: Verdict,
    /// Every reason it is blocked (empty when fused).
    pub reasons: Vec<ReasonEntry>,
    /// How it would be fused (empty when blocked).
    pub notes: Vec<String>,
    /// The dataflow facts behind a block.
    pub graph_facts: Vec<GraphFact>,
    /// What the fusion is worth under the target's roofline model.
    pub worth: Worth,
    /// The MoE subgraph around the pair.
    pub subgraph: Subgraph,
}

impl Candidate {
    /// The distinct reason codes, in the order the legality reported them.
    pub fn codes(&self) -> Vec<&str> {
        let mut codes: Vec<&str> = Vec::new();
        for reason in &self.reasons {
            if !codes.contains(&reason.code.as_str()) {
                codes.push(&reason.code);
            }
        }
        codes
    }
}

/// The analysis of one module.
#[derive(Clone, Debug)]
pub struct Report {
    /// The input's name.
    pub source: String,
    /// The options it ran with.
    pub options: AnalyzeOptions,
    /// Every function (graph) of the module, in order.
    pub functions: Vec<String>,
    /// Every candidate, in IR order.
    pub candidates: Vec<Candidate>,
    /// `npu.grouped_matmul_finalize_routing` ops already in the module.
    pub existing_fused_ops: usize,
    /// Whether the input was torch-mlir output that went through [`FRONT_END_PIPELINE`].
    pub front_end: bool,
    /// Combines the front end found but could not recognize (torch-mlir input only).
    pub unrecognized: Vec<Unrecognized>,
}

/// The per-model summary.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Functions analyzed.
    pub functions: usize,
    /// Candidates found.
    pub candidates: usize,
    /// Candidates that would fuse.
    pub fused: usize,
    /// Candidates that would not.
    pub blocked: usize,
    /// Blocked candidates per reason code (a candidate counts once under each of its codes).
    pub blocked_by_reason: BTreeMap<String, usize>,
    /// Intermediate traffic the fused candidates remove, bytes.
    pub bytes_saved: u64,
    /// Net traffic the fused candidates remove (after what the rewrite adds), bytes.
    pub net_bytes_saved: i64,
    /// Estimated time the fused candidates save, microseconds.
    pub time_saved_us: f64,
    /// Intermediate traffic the blocked candidates would remove if they fused, bytes.
    pub blocked_bytes_saved: u64,
    /// Candidates whose worth is unknown (a dynamic size), left out of the byte and time totals.
    pub unknown_worth: usize,
    /// Fused ops already in the module.
    pub existing_fused_ops: usize,
    /// Combines of torch-mlir input the front end could not recognize.
    pub unrecognized: usize,
    /// Unrecognized combines per reason code.
    pub unrecognized_by_reason: BTreeMap<String, usize>,
}

impl Report {
    /// Counts and totals over the candidates.
    pub fn summary(&self) -> Summary {
        let mut summary = Summary {
            functions: self.functions.len(),
            candidates: self.candidates.len(),
            existing_fused_ops: self.existing_fused_ops,
            unrecognized: self.unrecognized.len(),
            ..Summary::default()
        };
        for entry in &self.unrecognized {
            let codes: BTreeSet<&str> = entry.codes.iter().map(String::as_str).collect();
            for code in codes {
                *summary.unrecognized_by_reason.entry(code.to_string()).or_default() += 1;
            }
        }
        for candidate in &self.candidates {
            if candidate.worth.bytes_saved.is_none() {
                summary.unknown_worth += 1;
            }
            match candidate.verdict {
                Verdict::Fused => {
                    summary.fused += 1;
                    summary.bytes_saved += candidate.worth.bytes_saved.unwrap_or(0);
                    summary.net_bytes_saved += candidate.worth.net_bytes_saved.unwrap_or(0);
                    summary.time_saved_us += candidate.worth.time_saved_us.unwrap_or(0.0);
                }
                Verdict::Blocked => {
                    summary.blocked += 1;
                    summary.blocked_bytes_saved += candidate.worth.bytes_saved.unwrap_or(0);
                    let codes: BTreeSet<&str> = candidate.reasons.iter().map(|r| r.code.as_str()).collect();
                    for code in codes {
                        *summary.blocked_by_reason.entry(code.to_string()).or_default() += 1;
                    }
                }
            }
        }
        summary
    }
}

/// Analyzes a verified module without changing it. `source` names the input in the report.
pub fn analyze(module: &Module<'_>, source: &str, options: &AnalyzeOptions) -> Report {
    let graphs = dataflow::build(module);
    let fusion = options.fusion();
    let mut candidates = Vec::new();
    let mut existing_fused_ops = 0;
    for graph in &graphs {
        for node in graph.graph.node_indices() {
            let op = graph.graph[node];
            let name = op.name();
            let name = name.as_string_ref().as_str().unwrap_or("");
            if name == schema::GMMFR.name {
                existing_fused_ops += 1;
            } else if name == schema::MOE_FINALIZE_ROUTING.name
                && let Some(found) = candidate::build(graph, node, &fusion, options.roofline(), candidates.len())
            {
                candidates.push(found);
            }
        }
    }
    Report {
        source: source.to_string(),
        options: *options,
        functions: graphs.iter().map(|g| g.name.clone()).collect(),
        candidates,
        existing_fused_ops,
        front_end: false,
        unrecognized: Vec::new(),
    }
}

/// Whether any op of the module belongs to the torch dialect (torch-mlir output).
pub fn has_torch_ops(module: &Module<'_>) -> bool {
    let mut found = false;
    let _ = module.as_operation().walk(melior::ir::operation::WalkOrder::PreOrder, |op| {
        if op.name().as_string_ref().as_str().is_ok_and(|n| n.starts_with("torch.")) {
            found = true;
            return melior::ir::operation::WalkResult::Interrupt;
        }
        melior::ir::operation::WalkResult::Advance
    });
    found
}

/// Loads a file (parse, MLIR's verifier, the Rust verifier) in a compiler that accepts the
/// opaque ops of other dialects around the MoE layers, runs the front end on torch-mlir output
/// (the file itself is not changed), and analyzes it.
pub fn analyze_file(compiler: &Compiler, path: &Path, options: &AnalyzeOptions) -> Result<Report, AnalyzeError> {
    let module = compiler.load_file(path)?;
    analyze_loaded(compiler, module, &path.display().to_string(), options)
}

/// Like [`analyze_file`], for MLIR text whose locations and report name `source`.
pub fn analyze_source(
    compiler: &Compiler,
    text: &str,
    source: &str,
    options: &AnalyzeOptions,
) -> Result<Report, AnalyzeError> {
    let module = compiler.load_source(text, source)?;
    analyze_loaded(compiler, module, source, options)
}

fn analyze_loaded(
    compiler: &Compiler,
    mut module: Module<'_>,
    source: &str,
    options: &AnalyzeOptions,
) -> Result<Report, AnalyzeError> {
    if !has_torch_ops(&module) {
        return Ok(analyze(&module, source, options));
    }
    let front_end = compiler.run_pipeline(&mut module, FRONT_END_PIPELINE, &crate::RunOptions::default())?;
    let mut report = analyze(&module, source, options);
    report.front_end = true;
    report.unrecognized = front_end
        .combines
        .into_iter()
        .filter(|c| !c.recognized)
        .map(|c| Unrecognized {
            function: c.function,
            location: c.location,
            call_stack: c.call_stack,
            spelling: c.spelling,
            codes: c.codes,
            message: c.message,
        })
        .collect();
    Ok(report)
}

/// Output formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// A table and the summary, for people.
    #[default]
    Text,
    /// The versioned JSON schema of [`json`].
    Json,
    /// Graphviz DOT of each candidate's MoE subgraph.
    Dot,
}

/// Renders a report.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Text => text::render(report),
        Format::Json => json::render(report),
        Format::Dot => dot::render(report),
    }
}

//! `npu-fuse-gmm-finalize`: rewrite npu.grouped_matmul + npu.moe_finalize_routing into
//! npu.grouped_matmul_finalize_routing exactly where SPEC 2.4 holds.

use crate::fusion::materialize::materialize;
use crate::fusion::{Decision, FusionOptions, Precision, Remark, RemarkDecision, Target, decide};
use crate::pass::{Pass, PassError, PassInfo, PassOption, PassOptions, PassOutcome, check_option_names};
use gmmfr_dialect::context::NpuContext;
use gmmfr_dialect::diagnostics::{Diagnostic, Severity};
use gmmfr_dialect::location::SourceLoc;
use gmmfr_dialect::schema;
use melior::ir::{
    Module, OperationRef,
    attribute::StringAttribute,
    operation::{OperationLike, WalkOrder, WalkResult},
    r#type::TypeId,
};
use melior::pass::{ExternalPass, PassManager, create_external};
use melior::{
    GreedyRewriteDriverConfig, GreedySimplifyRegionLevel, PatternRewriter, RewritePatternSet,
    apply_patterns_and_fold_greedily_with_op, create_op_rewrite_pattern,
};
use std::sync::{Arc, Mutex};

/// The pass's description.
pub const INFO: PassInfo = PassInfo {
    name: "npu-fuse-gmm-finalize",
    summary: "Fuse npu.grouped_matmul + npu.moe_finalize_routing into npu.grouped_matmul_finalize_routing where SPEC 2.4 holds",
    description: "For every npu.moe_finalize_routing fed by an npu.grouped_matmul, decides whether the pair \
                  equals the fused op (index correspondence proven from the routing, drop-less routing, no skip2, \
                  bias or padded mode, skip1 a bf16 slice, precision policy, single use, same block, and with \
                  target=ascend the Ascend profile) and rewrites it with an MLIR rewrite pattern under the greedy \
                  driver: gidx from the routing, row_index = gidx // K and logit = scales.flatten()[gidx] as one \
                  linalg.generic, the NZ weight and counts group list when needed. Every candidate yields one \
                  remark at the finalize op: fused, or not-fused with every reason code that applies.",
    options: &[
        PassOption {
            name: "precision",
            help: "refine (default: allow the fused op to skip the GMM's bf16/f16 rounding) or exact",
        },
        PassOption {
            name: "target",
            help: "loops (default: any valid IR) or ascend (also the Ascend profile)",
        },
        PassOption {
            name: "cann-version",
            help: "older or newer (default), with target=ascend",
        },
    ],
};

/// The fusion pass.
pub struct FuseGmmFinalizePass {
    options: FusionOptions,
}

impl FuseGmmFinalizePass {
    /// Creates the pass from pipeline options.
    pub fn create(options: &PassOptions) -> Result<Self, PassError> {
        check_option_names(&INFO, options)?;
        let invalid = |message: String| PassError::Option {
            pass: INFO.name,
            message,
        };
        let precision = match options.get("precision").map(String::as_str) {
            None | Some("refine") => Precision::Refine,
            Some("exact") => Precision::Exact,
            Some(other) => {
                return Err(invalid(format!(
                    "option 'precision' expects refine or exact, got '{other}'"
                )));
            }
        };
        let target = match options.get("target").map(String::as_str) {
            None | Some("loops") => Target::Loops,
            Some("ascend") => Target::Ascend,
            Some(other) => {
                return Err(invalid(format!(
                    "option 'target' expects loops or ascend, got '{other}'"
                )));
            }
        };
        let cann_version = match options.get("cann-version") {
            None => Default::default(),
            Some(text) => text.parse().map_err(invalid)?,
        };
        Ok(Self::new(FusionOptions {
            precision,
            target,
            cann_version,
        }))
    }

    /// Creates the pass directly.
    pub fn new(options: FusionOptions) -> Self {
        Self { options }
    }
}

/// Decides every candidate of the module, in IR order.
pub fn analyze(module: &Module<'_>, options: &FusionOptions) -> Vec<Remark> {
    let mut remarks = Vec::new();
    let mut function = String::new();
    module.as_operation().walk(WalkOrder::PreOrder, |operation| {
        let name = operation.name();
        let name = name.as_string_ref().as_str().unwrap_or("");
        if name == "func.func" {
            function = operation
                .attribute("sym_name")
                .ok()
                .and_then(|a| StringAttribute::try_from(a).ok())
                .map(|s| s.value().to_string())
                .unwrap_or_default();
        } else if name == schema::MOE_FINALIZE_ROUTING.name {
            let decision = match decide(operation, options) {
                Decision::NotCandidate => None,
                Decision::Fuse(plan) => Some(RemarkDecision::Fused(plan.notes.clone())),
                Decision::Block(reasons) => Some(RemarkDecision::NotFused(reasons)),
            };
            if let Some(decision) = decision {
                remarks.push(Remark {
                    location: SourceLoc::from_location(operation.location()),
                    function: function.clone(),
                    decision,
                });
            }
        }
        WalkResult::Advance
    });
    remarks
}

#[repr(align(8))]
struct PassId;
static PASS_ID: PassId = PassId;

impl Pass for FuseGmmFinalizePass {
    fn info(&self) -> &'static PassInfo {
        &INFO
    }

    fn run(&self, context: &NpuContext, module: &mut Module<'_>) -> Result<PassOutcome, PassError> {
        let remarks = analyze(module, &self.options);
        let planned = remarks
            .iter()
            .filter(|r| matches!(r.decision, RemarkDecision::Fused(_)))
            .count();

        if planned > 0 {
            let errors: Arc<Mutex<Vec<String>>> = Arc::default();
            let options = self.options;
            let pattern_errors = errors.clone();
            let manager = PassManager::new(context.mlir());
            manager.add_pass(create_external(
                move |operation: OperationRef<'_, '_>, pass: ExternalPass<'_>| {
                    if rewrite(operation, options, pattern_errors.clone()).is_err() {
                        pass.signal_failure();
                    }
                },
                TypeId::create(&PASS_ID),
                INFO.name,
                INFO.name,
                INFO.summary,
                "",
                &[],
            ));
            context.diagnostics().take();
            let run = manager.run(module);
            let errors = errors.lock().map(|e| e.clone()).unwrap_or_default();
            if run.is_err() || !errors.is_empty() {
                let mut diagnostics = context.diagnostics().take();
                diagnostics.extend(errors.into_iter().map(|e| Diagnostic::error(SourceLoc::Unknown, e)));
                if diagnostics.is_empty() {
                    diagnostics.push(Diagnostic::error(SourceLoc::Unknown, "the fusion rewrite failed"));
                }
                return Err(PassError::Failed(diagnostics));
            }
        }

        // Every planned fusion must have happened: the pattern re-decides on the same IR.
        let fused_now = count_ops(module, schema::GMMFR.name);
        let mut outcome = PassOutcome::default();
        outcome.statistics.insert("candidates".into(), remarks.len() as u64);
        outcome.statistics.insert("fused".into(), planned as u64);
        for remark in &remarks {
            if let RemarkDecision::NotFused(reasons) = &remark.decision {
                for reason in reasons {
                    *outcome
                        .statistics
                        .entry(format!("not-fused:{}", reason.code()))
                        .or_default() += 1;
                }
            }
            outcome.diagnostics.push(Diagnostic {
                location: remark.location.clone(),
                severity: Severity::Remark,
                message: remark.message(),
                notes: Vec::new(),
            });
        }
        outcome
            .statistics
            .insert("fused-ops-in-module".into(), fused_now as u64);
        outcome.remarks = remarks;
        Ok(outcome)
    }
}

/// Runs the fusion pattern with the greedy driver on `operation` (the module).
fn rewrite(operation: OperationRef<'_, '_>, options: FusionOptions, errors: Arc<Mutex<Vec<String>>>) -> Result<(), ()> {
    // `to_ref` reinterprets the ContextRef itself as a Context, so the ContextRef must stay
    // alive (a temporary here would leave a dangling reference).
    let context_ref = operation.context();
    // SAFETY: `context_ref` lives until the end of this function, which outlives the pattern set.
    let context = unsafe { context_ref.to_ref() };
    let pattern = create_op_rewrite_pattern(
        schema::MOE_FINALIZE_ROUTING.name,
        1,
        context,
        move |_pattern, raw_operation, raw_rewriter| {
            // SAFETY: MLIR hands the pattern a live op and rewriter for the duration of the call.
            let root = unsafe { OperationRef::from_raw(raw_operation) };
            let rewriter = unsafe { PatternRewriter::from_raw(raw_rewriter) };
            // Stateless: the decision is recomputed from the IR (the same function the analysis
            // used), so the pattern needs nothing from outside but the options.
            let Decision::Fuse(plan) = decide(root, &options) else {
                return false;
            };
            let context_ref = root.context();
            // SAFETY: `context_ref` lives until the end of the callback (see `rewrite`).
            let context = unsafe { context_ref.to_ref() };
            match materialize(&plan, &rewriter.as_rewriter_base(), context) {
                Ok(()) => true,
                Err(error) => {
                    if let Ok(mut list) = errors.lock() {
                        list.push(error.to_string());
                    }
                    false
                }
            }
        },
        &[
            schema::GMMFR.name,
            schema::MOE_INIT_ROUTING.name,
            schema::FORMAT_CAST.name,
            "linalg.generic",
            "tensor.collapse_shape",
            "tensor.empty",
            "tensor.dim",
            "arith.constant",
            "arith.truncf",
        ],
    );
    let set = RewritePatternSet::new(context);
    set.add(pattern);
    let config = GreedyRewriteDriverConfig::new();
    // Fuse and nothing else: no folding, constant CSE or region simplification of unrelated IR.
    config.enable_folding(false);
    config.enable_constant_cse(false);
    config.set_region_simplification_level(GreedySimplifyRegionLevel::Disabled);
    apply_patterns_and_fold_greedily_with_op(operation, set.freeze(), &config).map_err(|_| ())
}

fn count_ops(module: &Module<'_>, name: &str) -> usize {
    let mut count = 0;
    module.as_operation().walk(WalkOrder::PreOrder, |operation| {
        if operation.name().as_string_ref().as_str() == Ok(name) {
            count += 1;
        }
        WalkResult::Advance
    });
    count
}

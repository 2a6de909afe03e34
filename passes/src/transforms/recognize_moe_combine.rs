//! `npu-recognize-moe-combine`: find MoE combines however they are spelled and write them back
//! as the canonical routing + grouped matmul + finalize that `npu-fuse-gmm-finalize` decides on.

use crate::pass::{Pass, PassError, PassInfo, PassOption, PassOptions, PassOutcome, check_option_names};
use crate::recognition::dataflow::Dataflow;
use crate::recognition::language::Moe;
use crate::recognition::materialize::{block_order, erase_dead, materialize};
use crate::recognition::per_slot;
use crate::recognition::{Budget, Combine, CombineOutcome, extracted_combine, extractor, failures_under, holds_unweighted_combine, saturate};
use gmmfr_dialect::context::NpuContext;
use gmmfr_dialect::diagnostics::Diagnostic;
use gmmfr_dialect::graph::producer;
use gmmfr_dialect::location::SourceLoc;
use melior::ir::{Module, OperationRef, Value, operation::OperationLike};
use std::time::Duration;

/// The pass's description.
pub const INFO: PassInfo = PassInfo {
    name: "npu-recognize-moe-combine",
    summary: "Recognize MoE combines in any spelling with an e-graph and rewrite them as routing + grouped matmul + finalize",
    description: "Builds an e-graph of each function's dataflow (torch ops by meaning, npu ops), saturates it with \
                  named rules (gather by the inverse permutation + view + sum over topK == scatter-add by perm // K; \
                  index_add == index_put(accumulate) == scatter_add into zeros; the router-weight multiply commutes \
                  with the scatter; dequant multiplies reassociate; cumsum and count group lists; \
                  argsort(argsort(p)) == p; a bf16 shared-expert add becomes the finalize's skip1) within a budget, \
                  extracts the cheapest form by bytes moved plus flops, and writes every recognized combine back as \
                  npu.moe_init_routing + the grouped matmul + npu.moe_finalize_routing (drop_pad_mode 2) for \
                  npu-fuse-gmm-finalize to decide on. One remark per combine-looking op: recognized, or why not.",
    options: &[
        PassOption {
            name: "max-nodes",
            help: "e-graph node budget per combine candidate in a function (default 20000)",
        },
        PassOption {
            name: "max-iterations",
            help: "saturation iterations per function (default 16)",
        },
        PassOption {
            name: "max-ms",
            help: "saturation time per combine candidate in a function, in milliseconds (default 2000)",
        },
    ],
};

/// The recognition pass.
pub struct RecognizeMoeCombinePass {
    budget: Budget,
}

impl RecognizeMoeCombinePass {
    /// Creates the pass from pipeline options.
    pub fn create(options: &PassOptions) -> Result<Self, PassError> {
        check_option_names(&INFO, options)?;
        let number = |name: &str, default: u64| -> Result<u64, PassError> {
            match options.get(name) {
                None => Ok(default),
                Some(text) => text.parse::<u64>().ok().filter(|v| *v > 0).ok_or_else(|| PassError::Option {
                    pass: INFO.name,
                    message: format!("option '{name}' expects a positive integer, got '{text}'"),
                }),
            }
        };
        let default = Budget::default();
        Ok(Self {
            budget: Budget {
                nodes: number("max-nodes", default.nodes as u64)? as usize,
                iterations: number("max-iterations", default.iterations as u64)? as usize,
                time: Duration::from_millis(number("max-ms", default.time.as_millis() as u64)?),
            },
        })
    }
}

fn remark(op: &OperationRef<'_, '_>, message: String) -> Diagnostic {
    crate::frontend::remark(SourceLoc::from_location(op.location()), message)
}

fn describe_rules(applied: &std::collections::BTreeMap<String, usize>) -> String {
    let names: Vec<&str> = applied
        .iter()
        .filter(|(name, _)| !name.ends_with("-commutes") && !name.starts_with("mul-associates"))
        .map(|(name, _)| name.as_str())
        .collect();
    if names.is_empty() { "none".into() } else { names.join(", ") }
}

impl Pass for RecognizeMoeCombinePass {
    fn info(&self) -> &'static PassInfo {
        &INFO
    }

    fn run(&self, context: &NpuContext, module: &mut Module<'_>) -> Result<PassOutcome, PassError> {
        let mut outcome = PassOutcome::default();
        let (mut recognized, mut unrecognized, mut nodes, mut iterations) = (0u64, 0u64, 0u64, 0u64);
        let mut time = Duration::ZERO;
        for (function, block) in crate::frontend::function_bodies(module) {
            let function_name = function
                .attribute("sym_name")
                .ok()
                .and_then(|a| melior::ir::attribute::StringAttribute::try_from(a).ok())
                .map(|a| a.value().to_string())
                .unwrap_or_default();
            let mut report = |op: &OperationRef<'_, '_>, spelling: &str, codes: Vec<String>, message: String| {
                outcome.combines.push(CombineOutcome {
                    function: function_name.clone(),
                    location: SourceLoc::from_location(op.location()),
                    call_stack: SourceLoc::call_stack(op.location()),
                    spelling: spelling.to_string(),
                    recognized: codes.is_empty(),
                    codes,
                    message: message.clone(),
                });
                outcome.diagnostics.push(remark(op, message));
            };
            let mut dataflow = Dataflow::build(block);
            if dataflow.candidates.is_empty() {
                continue;
            }
            let budget = self.budget.for_candidates(dataflow.candidates.len());
            let saturation = saturate(&mut dataflow, budget);
            nodes += saturation.nodes as u64;
            iterations += saturation.iterations as u64;
            time += saturation.time;
            let budget_note = format!(
                "e-graph {} nodes, {} classes, {} iterations, {:.1} ms, stopped: {}",
                saturation.nodes,
                saturation.classes,
                saturation.iterations,
                saturation.time.as_secs_f64() * 1e3,
                saturation.stop_reason
            );
            // Roots: every candidate, and every add whose class absorbed a shared-expert input.
            let mut roots: Vec<(OperationRef<'_, '_>, Value<'_, '_>, String)> = Vec::new();
            // Per-slot (batched_mm) layers: rewritten structurally after the e-graph's combines.
            let mut per_slot_roots: Vec<(OperationRef<'_, '_>, String)> = Vec::new();
            for candidate in &dataflow.candidates {
                if candidate.per_slot {
                    per_slot_roots.push((candidate.op, candidate.spelling.clone()));
                    continue;
                }
                if let Ok(result) = candidate.op.result(0) {
                    roots.push((candidate.op, result.into(), candidate.spelling.clone()));
                }
            }
            for (value, class) in dataflow.values.clone() {
                let class = dataflow.graph.find(class);
                if dataflow.graph[class].nodes.iter().any(|n| matches!(n, Moe::WCombineShared(_))) {
                    if let Some((op, _)) = producer(value) {
                        if !roots.iter().any(|(o, _, _)| *o == op) {
                            roots.push((op, value, "torch.aten.add.Tensor".into()));
                        }
                    }
                }
            }
            // Outermost first: a root covered by another root's combine is not rewritten twice.
            roots.sort_by(|(a, _, _), (b, _, _)| block_order(*b, *a));
            let extractor = extractor(&dataflow);
            let mut chosen: Vec<(OperationRef<'_, '_>, Value<'_, '_>, String, Combine)> = Vec::new();
            let mut covered = Vec::new();
            for (op, value, spelling) in roots {
                let Some(class) = dataflow.class_lookup(value) else { continue };
                if covered.contains(&class) {
                    continue;
                }
                match extracted_combine(&extractor, class) {
                    Some(combine) => {
                        if combine.shared.is_some() {
                            if let Some(inner) = dataflow.graph.lookup(Moe::WCombine([combine.perm, combine.rows, combine.weights])) {
                                covered.push(dataflow.graph.find(inner));
                            }
                        }
                        chosen.push((op, value, spelling, combine));
                    }
                    None => {
                        unrecognized += 1;
                        let failures = failures_under(&dataflow, class);
                        let mut message = format!("MoE combine not recognized ({spelling})");
                        let mut codes = Vec::new();
                        if holds_unweighted_combine(&dataflow, class) {
                            codes.push("weights-not-per-slot".to_string());
                            message.push_str(
                                ": [weights-not-per-slot] the rows are combined back per token, but no router weight \
                                 multiplies each slot before the sum (weights applied after the sum are not the \
                                 per-slot weighting of a MoE combine)",
                            );
                        } else if failures.is_empty() {
                            codes.push("no-rule-applies".to_string());
                            message.push_str(": [no-rule-applies] its operands are not a permutation's rows gathered back, scattered by token, or weighted per slot");
                        } else {
                            for failure in &failures {
                                if !codes.contains(&failure.check.to_string()) {
                                    codes.push(failure.check.to_string());
                                }
                                message.push_str(&format!(
                                    "; [{}] rule {}: {}",
                                    failure.check, failure.rule, failure.detail
                                ));
                            }
                        }
                        message.push_str(&format!(" ({budget_note})"));
                        report(&op, &spelling, codes, message);
                    }
                }
            }
            for (op, value, spelling, combine) in chosen {
                let location_op = op;
                match materialize(context.mlir(), block, &dataflow, op, value, combine, &spelling) {
                    Ok(()) => {
                        recognized += 1;
                        report(
                            &location_op,
                            &spelling,
                            Vec::new(),
                            format!(
                                "recognized MoE combine ({spelling}{}; rules: {}) as npu.moe_init_routing + \
                                 grouped matmul + npu.moe_finalize_routing ({budget_note})",
                                if combine.shared.is_some() { " with shared-expert input" } else { "" },
                                describe_rules(&saturation.applied)
                            ),
                        );
                    }
                    Err(why) => {
                        unrecognized += 1;
                        report(
                            &location_op,
                            &spelling,
                            vec![why.code.to_string()],
                            format!("MoE combine not recognized ({spelling}): [{}] {} ({budget_note})", why.code, why.message),
                        );
                    }
                }
            }
            for (op, spelling) in per_slot_roots {
                match per_slot::rewrite(context.mlir(), op, &spelling) {
                    Ok(()) => {
                        recognized += 1;
                        report(
                            &op,
                            &spelling,
                            Vec::new(),
                            format!(
                                "recognized MoE combine ({spelling}; rule: per-slot-bmm-is-grouped-matmul) as npu.moe_init_routing + \
                                 grouped matmuls on the sorted rows + npu.moe_finalize_routing"
                            ),
                        );
                    }
                    Err(why) => {
                        unrecognized += 1;
                        report(
                            &op,
                            &spelling,
                            vec![why.code.to_string()],
                            format!(
                                "MoE combine not recognized ({spelling}): [{}] {} (per-slot bmm layer: rule per-slot-bmm-is-grouped-matmul)",
                                why.code, why.message
                            ),
                        );
                    }
                }
            }
            erase_dead(&block);
        }
        outcome.statistics.insert("combines-recognized".into(), recognized);
        outcome.statistics.insert("combines-not-recognized".into(), unrecognized);
        outcome.statistics.insert("egraph-nodes".into(), nodes);
        outcome.statistics.insert("egraph-iterations".into(), iterations);
        outcome.statistics.insert("egraph-microseconds".into(), time.as_micros() as u64);
        Ok(outcome)
    }
}

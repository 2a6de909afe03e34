//! Runs a parsed pipeline over a module: our passes directly, upstream segments through MLIR's
//! pass manager. Between steps the Rust verifier re-checks the IR, so every step hands the next
//! one valid IR.

use crate::error::Error;
use crate::pipeline::{Step, parse_pipeline};
use gmmfr_dialect::context::NpuContext;
use gmmfr_dialect::diagnostics::Diagnostic;
use gmmfr_dialect::verify::verify_module;
use melior::ir::Module;
use melior::pass::PassManager;
use melior::utility::parse_pass_pipeline;
use std::collections::BTreeMap;

/// How to run a pipeline.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Print the IR after each step to the `ir_log`.
    pub print_ir_after_all: bool,
}

/// What a pipeline run reports.
#[derive(Debug, Default)]
pub struct PipelineReport {
    /// Warnings and remarks from every pass, in order.
    pub diagnostics: Vec<Diagnostic>,
    /// Statistics per pass name.
    pub statistics: BTreeMap<String, BTreeMap<String, u64>>,
    /// IR printed after each step, when requested: (step name, IR).
    pub ir_after: Vec<(String, String)>,
    /// Fusion remarks of every pass, in order.
    pub remarks: Vec<gmmfr_passes::fusion::Remark>,
    /// What the recognition did with every MoE combine candidate, in order.
    pub combines: Vec<gmmfr_passes::recognition::CombineOutcome>,
}

/// Parses `pipeline` and runs it over `module`.
pub fn run_pipeline(
    context: &NpuContext,
    module: &mut Module<'_>,
    pipeline: &str,
    options: &RunOptions,
) -> Result<PipelineReport, Error> {
    let steps = parse_pipeline(pipeline).map_err(|e| Error::Pipeline(e.to_string()))?;
    // Create every pass before running any, so that a bad option is reported before work starts.
    let mut prepared = Vec::new();
    for step in &steps {
        match step {
            Step::Npu { name, options } => {
                let pass = gmmfr_passes::create(name, options).map_err(|e| Error::Pipeline(e.to_string()))?;
                prepared.push(Prepared::Npu(pass));
            }
            Step::Upstream(text) => {
                let manager = PassManager::new(context.mlir());
                context.diagnostics().take();
                parse_pass_pipeline(manager.as_operation_pass_manager(), &format!("builtin.module({text})")).map_err(
                    |e| {
                        let details: Vec<String> =
                            context.diagnostics().take().iter().map(|d| d.message.clone()).collect();
                        let details = if details.is_empty() {
                            e.to_string()
                        } else {
                            details.join("; ")
                        };
                        Error::Pipeline(format!("invalid pass pipeline '{text}': {details}"))
                    },
                )?;
                prepared.push(Prepared::Upstream(text.clone(), manager));
            }
        }
    }

    let mut report = PipelineReport::default();
    for step in prepared {
        let name = match step {
            Prepared::Npu(pass) => {
                let outcome = pass.run(context, module).map_err(|e| match e {
                    gmmfr_passes::PassError::Failed(diagnostics) => Error::Invalid(diagnostics),
                    other => Error::Pipeline(other.to_string()),
                })?;
                report.diagnostics.extend(outcome.diagnostics);
                report.remarks.extend(outcome.remarks);
                report.combines.extend(outcome.combines);
                report
                    .statistics
                    .entry(pass.info().name.to_string())
                    .or_default()
                    .extend(outcome.statistics);
                pass.info().name.to_string()
            }
            Prepared::Upstream(text, manager) => {
                context.diagnostics().take();
                if manager.run(module).is_err() {
                    let mut diagnostics = context.diagnostics().take();
                    if diagnostics.is_empty() {
                        diagnostics.push(Diagnostic::error(
                            gmmfr_dialect::location::SourceLoc::Unknown,
                            format!("upstream pipeline '{text}' failed"),
                        ));
                    }
                    return Err(Error::Invalid(diagnostics));
                }
                report.diagnostics.extend(context.diagnostics().take());
                text
            }
        };
        let violations = verify_module(module);
        if !violations.is_empty() {
            return Err(Error::Invalid(violations));
        }
        if options.print_ir_after_all {
            report.ir_after.push((name, module.as_operation().to_string()));
        }
    }
    Ok(report)
}

enum Prepared<'c> {
    Npu(Box<dyn gmmfr_passes::Pass>),
    Upstream(String, PassManager<'c>),
}

//! `npu-verify`: check every npu op against the Rust verifier.

use crate::pass::{Pass, PassError, PassInfo, PassOptions, PassOutcome, check_option_names};
use gmmfr_dialect::context::NpuContext;
use gmmfr_dialect::verify::verify_module;
use melior::ir::Module;

/// The pass's description.
pub const INFO: PassInfo = PassInfo {
    name: "npu-verify",
    summary: "Check every npu op against the relations IRDL cannot express (SPEC sections 1-3)",
    description: "Runs the Rust verifier on every npu op: ranks, element types, shape relations \
                  between operands (m, k, n, e, NZ blocks, shared_input width), attribute ranges and \
                  statically knowable facts such as output_bs <= m. Fails with one located error per \
                  violation. The driver runs it on every input before any other pass; naming it in a \
                  pipeline re-checks IR that earlier passes produced.",
    options: &[],
};

/// Checks every npu op.
pub struct VerifyPass;

impl VerifyPass {
    /// Creates the pass from pipeline options (it has none).
    pub fn create(options: &PassOptions) -> Result<Self, PassError> {
        check_option_names(&INFO, options)?;
        Ok(Self)
    }
}

impl Pass for VerifyPass {
    fn info(&self) -> &'static PassInfo {
        &INFO
    }

    fn run(&self, _context: &NpuContext, module: &mut Module<'_>) -> Result<PassOutcome, PassError> {
        let diagnostics = verify_module(module);
        if diagnostics.is_empty() {
            Ok(PassOutcome::default())
        } else {
            Err(PassError::Failed(diagnostics))
        }
    }
}

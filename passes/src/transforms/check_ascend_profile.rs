//! `npu-check-ascend-profile`: report what the Ascend kernel would refuse.

use crate::pass::{Pass, PassError, PassInfo, PassOption, PassOptions, PassOutcome, bool_option, check_option_names};
use gmmfr_dialect::context::NpuContext;
use gmmfr_dialect::diagnostics::Severity;
use gmmfr_dialect::profile::{CannVersion, check_module};
use gmmfr_dialect::schema;
use melior::ir::{
    Module,
    operation::{OperationLike, WalkOrder, WalkResult},
};

/// The pass's description.
pub const INFO: PassInfo = PassInfo {
    name: "npu-check-ascend-profile",
    summary: "Report every Ascend profile constraint (SPEC section 4) a fused op fails",
    description: "Checks each npu.grouped_matmul_finalize_routing against the legality profile of the \
                  aclnn kernel for the selected CANN release and reports every failed constraint with the \
                  actual and the allowed value. Valid IR is broader than the profile: by default the \
                  failures are warnings (the op stays for the loop target); with strict=true they are errors.",
    options: &[
        PassOption {
            name: "cann-version",
            help: "older or newer (default newer)",
        },
        PassOption {
            name: "strict",
            help: "true to make failures errors (default false)",
        },
    ],
};

/// Checks the Ascend profile.
pub struct CheckAscendProfilePass {
    version: CannVersion,
    strict: bool,
}

impl CheckAscendProfilePass {
    /// Creates the pass from pipeline options.
    pub fn create(options: &PassOptions) -> Result<Self, PassError> {
        check_option_names(&INFO, options)?;
        let version = match options.get("cann-version") {
            None => CannVersion::default(),
            Some(text) => text.parse().map_err(|message| PassError::Option {
                pass: INFO.name,
                message,
            })?,
        };
        Ok(Self {
            version,
            strict: bool_option(&INFO, options, "strict", false)?,
        })
    }

    /// Creates the pass directly.
    pub fn new(version: CannVersion, strict: bool) -> Self {
        Self { version, strict }
    }
}

impl Pass for CheckAscendProfilePass {
    fn info(&self) -> &'static PassInfo {
        &INFO
    }

    fn run(&self, _context: &NpuContext, module: &mut Module<'_>) -> Result<PassOutcome, PassError> {
        let mut found = check_module(module, self.version);
        let checked = count_fused_ops(module);
        if !self.strict {
            for diagnostic in &mut found {
                diagnostic.severity = Severity::Warning;
            }
        }
        if self.strict && !found.is_empty() {
            return Err(PassError::Failed(found));
        }
        let mut outcome = PassOutcome {
            diagnostics: found,
            ..Default::default()
        };
        outcome.statistics.insert("checked".into(), checked);
        outcome
            .statistics
            .insert("violations".into(), outcome.diagnostics.len() as u64);
        Ok(outcome)
    }
}

fn count_fused_ops(module: &Module<'_>) -> u64 {
    let mut count = 0;
    module.as_operation().walk(WalkOrder::PreOrder, |operation| {
        if operation.name().as_string_ref().as_str() == Ok(schema::GMMFR.name) {
            count += 1;
        }
        WalkResult::Advance
    });
    count
}

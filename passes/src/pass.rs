//! What a pass is: a name, a summary, options, and a run over a module.

use gmmfr_dialect::context::NpuContext;
use gmmfr_dialect::diagnostics::Diagnostic;
use melior::ir::Module;
use std::collections::BTreeMap;

/// One option a pass accepts, as `name=value` inside `pass-name{...}`.
#[derive(Clone, Copy, Debug)]
pub struct PassOption {
    /// Option name.
    pub name: &'static str,
    /// Accepted values and default, in words.
    pub help: &'static str,
}

/// The static description of a pass.
#[derive(Clone, Copy, Debug)]
pub struct PassInfo {
    /// Command-line name, e.g. `npu-verify`.
    pub name: &'static str,
    /// One line.
    pub summary: &'static str,
    /// A paragraph.
    pub description: &'static str,
    /// Accepted options.
    pub options: &'static [PassOption],
}

/// Options as written in a pipeline, by name.
pub type PassOptions = BTreeMap<String, String>;

/// Why a pass could not be created or failed.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// No pass has this name.
    #[error("unknown pass '{0}'")]
    Unknown(String),
    /// An option is not accepted by the pass or its value is invalid.
    #[error("pass '{pass}': {message}")]
    Option {
        /// The pass.
        pass: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The pass found errors in the IR; they are located diagnostics.
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Failed(Vec<Diagnostic>),
}

/// What a successful run reports besides the rewritten module.
#[derive(Debug, Default)]
pub struct PassOutcome {
    /// Warnings and remarks, located.
    pub diagnostics: Vec<Diagnostic>,
    /// Named counters (`--pass-statistics`).
    pub statistics: BTreeMap<String, u64>,
    /// Fusion remarks, one per candidate (fusion passes only).
    pub remarks: Vec<crate::fusion::Remark>,
    /// What became of every MoE combine candidate (recognition passes only).
    pub combines: Vec<crate::recognition::CombineOutcome>,
}

/// A configured pass, ready to run.
pub trait Pass {
    /// The pass's static description.
    fn info(&self) -> &'static PassInfo;
    /// Runs the pass over a module.
    fn run(&self, context: &NpuContext, module: &mut Module<'_>) -> Result<PassOutcome, PassError>;
}

/// Reads a boolean option (`true`/`false`, or `1`/`0`).
pub fn bool_option(
    info: &'static PassInfo,
    options: &PassOptions,
    name: &str,
    default: bool,
) -> Result<bool, PassError> {
    match options.get(name).map(String::as_str) {
        None => Ok(default),
        Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(other) => Err(PassError::Option {
            pass: info.name,
            message: format!("option '{name}' expects true or false, got '{other}'"),
        }),
    }
}

/// Rejects options the pass does not declare.
pub fn check_option_names(info: &'static PassInfo, options: &PassOptions) -> Result<(), PassError> {
    for name in options.keys() {
        if !info.options.iter().any(|o| o.name == name) {
            let known = info.options.iter().map(|o| o.name).collect::<Vec<_>>().join(", ");
            let known = if known.is_empty() { "none".to_string() } else { known };
            return Err(PassError::Option {
                pass: info.name,
                message: format!("unknown option '{name}' (accepted: {known})"),
            });
        }
    }
    Ok(())
}

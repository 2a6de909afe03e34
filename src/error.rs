//! The errors the public API returns. Each carries located diagnostics or names the offending
//! file, flag or value.

use gmmfr_dialect::diagnostics::Diagnostic;

/// Anything that stops a compilation or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The MLIR context could not be set up.
    #[error("error: cannot set up MLIR: {0}")]
    Setup(String),
    /// The input did not parse or failed MLIR's own verifier (IRDL).
    #[error(transparent)]
    Parse(#[from] gmmfr_dialect::parse::ParseError),
    /// The input parsed but violates the npu dialect's rules (or a pass found errors).
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
    /// The pass pipeline string is malformed or names an unknown option.
    #[error("error: {0}")]
    Pipeline(String),
    /// A case directory is unusable.
    #[error("error: {0}")]
    Case(#[from] gmmfr_dialect::case::CaseError),
    /// The reference semantics refused the inputs (a runtime precondition failed).
    #[error("{context}: error: {source}")]
    Eval {
        /// What was being evaluated (a case directory or an op location).
        context: String,
        /// Why.
        source: gmmfr_dialect::reference::EvalError,
    },
    /// An input file or argument is unusable.
    #[error("{path}: error: {message}")]
    Input {
        /// The file (or module) concerned.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An output could not be written.
    #[error("{path}: error: cannot write: {message}")]
    Write {
        /// The path.
        path: String,
        /// Why.
        message: String,
    },
}

impl Error {
    /// Whether the error is a usage error (exit 2) rather than an input error (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Pipeline(_))
    }
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")
}

//! Reading torch-mlir's output: its types and constants, and inserting IR written as text.

pub mod aten;
pub mod splice;
pub mod torch_types;
pub mod torch_values;

use gmmfr_dialect::diagnostics::{Diagnostic, Severity};
use gmmfr_dialect::location::SourceLoc;

/// A located remark.
pub fn remark(location: SourceLoc, message: String) -> Diagnostic {
    Diagnostic {
        location,
        severity: Severity::Remark,
        message,
        notes: Vec::new(),
    }
}

//! Reading torch-mlir's output: its types and constants, and inserting IR written as text.

pub mod aten;
pub mod splice;
pub mod torch_types;
pub mod torch_values;

use gmmfr_dialect::diagnostics::{Diagnostic, Severity};
use gmmfr_dialect::location::SourceLoc;
use melior::ir::{BlockLike, BlockRef, Module, OperationRef, RegionLike, operation::OperationLike};

/// The body blocks of the module's top-level `func.func`s, with their functions, in order.
pub fn function_bodies<'c, 'a>(module: &'a Module<'c>) -> Vec<(OperationRef<'c, 'a>, BlockRef<'c, 'a>)> {
    let mut found = Vec::new();
    let mut next = module.body().first_operation();
    while let Some(op) = next {
        next = op.next_in_block();
        if op.name().as_string_ref().as_str() != Ok("func.func") {
            continue;
        }
        if let Some(block) = op.region(0).ok().and_then(|r| r.first_block()) {
            found.push((op, block));
        }
    }
    found
}

/// A located remark.
pub fn remark(location: SourceLoc, message: String) -> Diagnostic {
    Diagnostic {
        location,
        severity: Severity::Remark,
        message,
        notes: Vec::new(),
    }
}

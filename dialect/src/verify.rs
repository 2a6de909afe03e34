//! The Rust verifier: every relation of SPEC sections 1-3 that IRDL cannot express.
//!
//! MLIR's own verifier (with the IRDL declaration) runs first, at parse time; this one runs on
//! IR that passed it, so operand segments are well formed. Each failure is a [`Violation`]
//! located at its op.

mod checker;
mod finalize_routing;
mod format_cast;
mod gmmfr;
mod grouped_matmul;
mod init_routing;
mod violation;

pub use checker::one_of;
pub use format_cast::{ACL_FORMAT_FRACTAL_NZ, ACL_FORMAT_ND, nz_block_n};
pub use violation::{Subject, Violation};

use crate::diagnostics::Diagnostic;
use crate::location::SourceLoc;
use crate::op_view::NpuOp;
use crate::schema;
use checker::Checker;
use melior::ir::{
    Module,
    operation::{OperationLike, WalkOrder, WalkResult},
};

/// Checks one `npu` op and returns everything wrong with it (empty when valid).
pub fn verify_op(op: &NpuOp<'_, '_>) -> Vec<Violation> {
    let mut checker = Checker::new(op);
    match op.schema.name {
        name if name == schema::GMMFR.name => gmmfr::verify(&mut checker),
        name if name == schema::GROUPED_MATMUL.name => grouped_matmul::verify(&mut checker),
        name if name == schema::MOE_FINALIZE_ROUTING.name => finalize_routing::verify(&mut checker),
        name if name == schema::MOE_INIT_ROUTING.name => init_routing::verify(&mut checker),
        name if name == schema::FORMAT_CAST.name => format_cast::verify(&mut checker),
        _ => {}
    }
    checker.finish();
    checker.violations
}

/// Checks every `npu` op in a module; one diagnostic per violation, in IR order.
pub fn verify_module(module: &Module<'_>) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    module.as_operation().walk(WalkOrder::PreOrder, |operation| {
        let location = SourceLoc::from_location(operation.location());
        match NpuOp::new(operation) {
            Ok(Some(op)) => {
                for violation in verify_op(&op) {
                    diagnostics.push(Diagnostic::error(
                        location.clone(),
                        format!("'{}' op {violation}", op.name()),
                    ));
                }
            }
            Ok(None) => {}
            Err(error) => {
                let name = operation.name().as_string_ref().as_str().unwrap_or("?").to_string();
                diagnostics.push(Diagnostic::error(location, format!("'{name}' op {error}")));
            }
        }
        WalkResult::Advance
    });
    diagnostics
}

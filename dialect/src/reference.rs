//! Reference semantics: evaluators of every op on concrete tensors, exactly as SPEC defines
//! them. This is the numerical oracle the lowerings and the fusion are tested against.
//!
//! Every evaluator validates dtypes, shapes, attributes and runtime preconditions before it
//! computes, returns an [`EvalError`] naming the operand, index and value at fault, and never
//! panics. Results are deterministic: contributions to an output row are added in increasing
//! row order, in f32 arithmetic as each evaluator documents.

pub mod compare;
pub mod error;
pub mod finalize_routing;
pub mod format_cast;
pub mod gmmfr;
pub mod grouped_matmul;
pub mod groups;
pub mod init_routing;
mod operand;
mod weight;

#[cfg(test)]
mod equivalence_tests;
#[cfg(test)]
mod gmmfr_tests;
#[cfg(test)]
mod test_rng;

pub use compare::{Comparison, compare};
pub use error::EvalError;
pub use finalize_routing::{MoeFinalizeRoutingAttrs, MoeFinalizeRoutingOperands, moe_finalize_routing};
pub use format_cast::{NzLayout, nd_to_nz, nz_block_cols, nz_to_nd};
pub use gmmfr::{GmmfrAttrs, GmmfrOperands, GmmfrScenario, gmmfr_scenario, grouped_matmul_finalize_routing};
pub use grouped_matmul::{GroupedMatmulAttrs, GroupedMatmulOperands, grouped_matmul};
pub use groups::{GroupRange, GroupRows, group_rows};
pub use init_routing::{MoeInitRouting, MoeInitRoutingAttrs, moe_init_routing};

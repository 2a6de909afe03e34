//! Fusing `npu.grouped_matmul` + `npu.moe_finalize_routing` into
//! `npu.grouped_matmul_finalize_routing`: the one place that owns the legality rules of SPEC
//! section 2.4 ([`legality`]), the IR the rewrite creates ([`materialize`]), the reasons a pair
//! does not fuse ([`reason`]) and the remarks reported for every candidate ([`remark`]).

pub mod legality;
pub mod materialize;
pub mod reason;
pub mod remark;

pub use legality::{Decision, FusionOptions, Plan, Precision, Target, decide};
pub use reason::Reason;
pub use remark::{Remark, RemarkDecision};

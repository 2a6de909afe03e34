//! Lowerings from the `npu` dialect to other dialects, one pass per file, named
//! `<from>_to_<to>` after the dialects they connect.

pub mod aclnn_abi;
pub mod gmmfr_loop_kernel;
pub mod moe_loop_kernels;
pub mod npu_to_aclnn;
pub mod npu_to_loops;
pub mod vnni;

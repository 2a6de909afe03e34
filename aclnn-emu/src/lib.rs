//! An ABI-faithful EMULATOR, on the CPU, of the subset of CANN's ACL / aclnn C API that the
//! aclnn lowering of `npu.grouped_matmul_finalize_routing` calls (SPEC 4.1). It is not a
//! driver: there is no Ascend hardware; "device memory" is host memory and streams are ignored.
//!
//! The C functions are exported under their CANN names with the exact signatures of
//! `include/gmmfr_aclnn.h`, so JIT-compiled code calls them as it would call libascendcl /
//! libopapi ([`symbols`] lists them for registration):
//!
//! - `aclCreateTensor` / `aclDestroyTensor`, `aclCreateIntArray` / `aclDestroyIntArray`;
//! - `aclrtMalloc` / `aclrtFree` (tracked; freeing an unknown pointer is an error code) and
//!   `aclrtSynchronizeStream` (always 0: launches are synchronous);
//! - `aclnnGroupedMatmulFinalizeRouting{WeightNz,WeightNzV2,V3}GetWorkspaceSize` and their
//!   launch functions. GetWorkspaceSize applies SPEC 4's documented validation for the selected
//!   [`Release`] and returns `4 * m * n` bytes of workspace; the launch evaluates SPEC 1's
//!   newer semantics with the reference evaluator of `gmmfr-dialect` and writes the f32 output.
//!
//! Emulator conventions (where it must choose, and where it is stricter than hardware):
//!
//! - `ACL_INT4` data holds one int4 value per byte (an int8 in [-8, 7]), not CANN's two per
//!   byte; the NZ int4 weight has block (16, 64).
//! - Handles are lookup keys: a null, foreign, destroyed or reused handle is an error code
//!   (`ACLNN_ERR_PARAM_INVALID`), never undefined behaviour. The launch's workspace must lie in
//!   a live `aclrtMalloc` allocation.
//! - Runtime preconditions the real kernel leaves unchecked (an active row_index outside the
//!   output, sum(group_list) > m, a negative count, a decreasing cumsum, an int4 byte outside
//!   [-8, 7], non-zero high bits of an A8W4 scale) make the launch return
//!   [`GMMFR_EMU_ERR_RUNTIME_PRECONDITION`] without writing anything.
//! - Only rows p < sum(group_list) of x1, pertokenScale, logit and rowIndex are read.
//!
//! Every exported function catches panics at the boundary (none are expected) and returns an
//! error code or null; [`last_error`] explains the last failure on the calling thread. All
//! state (handles, allocations, the release) is process-wide and thread-safe.

#![warn(missing_docs)]

mod abi;
mod boundary;
mod device;
mod entry;
mod executor;
mod launch;
mod raw;
mod registry;
mod release;
mod status;
mod tensor;
mod validate;

#[cfg(test)]
mod tests;

pub use abi::{
    ACL_BF16, ACL_FLOAT, ACL_FLOAT16, ACL_FORMAT_FRACTAL_NZ, ACL_FORMAT_ND, ACL_INT4, ACL_INT8, ACL_INT32, ACL_INT64,
    ACL_MEM_MALLOC_HUGE_FIRST, aclIntArray, aclOpExecutor, aclTensor, aclrtStream, data_type_code, element_size,
    element_type,
};
pub use boundary::last_error;
pub use device::{DEVICE_ALIGNMENT, aclrtFree, aclrtMalloc, aclrtSynchronizeStream};
pub use entry::{
    aclnnGroupedMatmulFinalizeRoutingV3, aclnnGroupedMatmulFinalizeRoutingV3GetWorkspaceSize,
    aclnnGroupedMatmulFinalizeRoutingWeightNz, aclnnGroupedMatmulFinalizeRoutingWeightNzGetWorkspaceSize,
    aclnnGroupedMatmulFinalizeRoutingWeightNzV2, aclnnGroupedMatmulFinalizeRoutingWeightNzV2GetWorkspaceSize,
};
pub use executor::{Entry, workspace_size};
pub use registry::{LiveCounts, live_objects};
pub use release::{Release, release, set_release};
pub use status::{
    ACL_ERROR_INTERNAL_ERROR, ACL_ERROR_INVALID_PARAM, ACL_ERROR_RT_MEMORY_ALLOCATION, ACL_ERROR_RT_PARAM_INVALID,
    ACLNN_ERR_INNER, ACLNN_ERR_PARAM_INVALID, ACLNN_ERR_PARAM_NULLPTR, ACLNN_SUCCESS, AclnnError,
    GMMFR_EMU_ERR_RUNTIME_PRECONDITION, status_meaning,
};
pub use tensor::{
    MAX_DIMS, MAX_INT_ARRAY_LEN, aclCreateIntArray, aclCreateTensor, aclDestroyIntArray, aclDestroyTensor,
};

/// Every exported C function with its address, for a JIT to register under the C name. The
/// list is exactly the functions `include/gmmfr_aclnn.h` declares.
pub fn symbols() -> Vec<(&'static str, *mut ())> {
    vec![
        ("aclCreateTensor", aclCreateTensor as *mut ()),
        ("aclDestroyTensor", aclDestroyTensor as *mut ()),
        ("aclCreateIntArray", aclCreateIntArray as *mut ()),
        ("aclDestroyIntArray", aclDestroyIntArray as *mut ()),
        ("aclrtMalloc", aclrtMalloc as *mut ()),
        ("aclrtFree", aclrtFree as *mut ()),
        ("aclrtSynchronizeStream", aclrtSynchronizeStream as *mut ()),
        (
            "aclnnGroupedMatmulFinalizeRoutingWeightNzGetWorkspaceSize",
            aclnnGroupedMatmulFinalizeRoutingWeightNzGetWorkspaceSize as *mut (),
        ),
        (
            "aclnnGroupedMatmulFinalizeRoutingWeightNz",
            aclnnGroupedMatmulFinalizeRoutingWeightNz as *mut (),
        ),
        (
            "aclnnGroupedMatmulFinalizeRoutingWeightNzV2GetWorkspaceSize",
            aclnnGroupedMatmulFinalizeRoutingWeightNzV2GetWorkspaceSize as *mut (),
        ),
        (
            "aclnnGroupedMatmulFinalizeRoutingWeightNzV2",
            aclnnGroupedMatmulFinalizeRoutingWeightNzV2 as *mut (),
        ),
        (
            "aclnnGroupedMatmulFinalizeRoutingV3GetWorkspaceSize",
            aclnnGroupedMatmulFinalizeRoutingV3GetWorkspaceSize as *mut (),
        ),
        (
            "aclnnGroupedMatmulFinalizeRoutingV3",
            aclnnGroupedMatmulFinalizeRoutingV3 as *mut (),
        ),
    ]
}

//! The six exported aclnnGroupedMatmulFinalizeRouting functions: GetWorkspaceSize and launch of
//! the WeightNz, WeightNzV2 and V3 entry points, with the parameter lists of SPEC 4.1.
//!
//! C `bool` parameters are received as `u8` (the same one-byte, zero-extended ABI); any non-zero
//! byte means true, so no caller can hand Rust an invalid `bool`. C enums arrive as `i32`.

#![allow(non_snake_case)]
#![allow(clippy::too_many_arguments)]

use std::ffi::c_void;

use crate::abi::{aclIntArray, aclOpExecutor, aclTensor, aclrtStream};
use crate::boundary;
use crate::executor::Entry;
use crate::launch;
use crate::raw;
use crate::registry::{self, Registry};
use crate::release::release;
use crate::status::AclnnError;
use crate::tensor::AclTensor;
use crate::validate::{self, Call};

/// The handles of a GetWorkspaceSize call, as addresses (0 = null). They are looked up in the
/// registry, never dereferenced.
struct Handles {
    x1: usize,
    x2: usize,
    scale: usize,
    bias: usize,
    offset: usize,
    antiquant_scale: usize,
    antiquant_offset: usize,
    pertoken_scale: usize,
    group_list: usize,
    shared_input: usize,
    logit: usize,
    row_index: usize,
    tuning_config: usize,
    out: usize,
}

/// The scalar parameters of a GetWorkspaceSize call.
struct Scalars {
    dtype: i64,
    shared_input_weight: f32,
    shared_input_offset: i64,
    transpose_x1: u8,
    transpose_x2: u8,
    group_list_type: i64,
}

fn tensor(registry: &Registry, name: &str, handle: usize) -> Result<Option<AclTensor>, AclnnError> {
    if handle == 0 {
        return Ok(None);
    }
    registry.tensors.get(handle).cloned().map(Some).ok_or_else(|| {
        AclnnError::invalid(
            name,
            "a live aclTensor from aclCreateTensor",
            format!("{handle:#x} (unknown or destroyed)"),
        )
    })
}

/// The first phase: validate, store the plan in a new executor, report the workspace size.
///
/// # Safety
///
/// Non-null `workspace_size` and `executor` must be writable for one value each.
unsafe fn get_workspace_size(
    entry: Entry,
    h: Handles,
    s: Scalars,
    workspace_size: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> i32 {
    boundary::aclnn(entry.workspace_name(), || {
        for (name, address) in [
            ("x1", h.x1),
            ("x2", h.x2),
            ("scale", h.scale),
            ("groupList", h.group_list),
            ("rowIndex", h.row_index),
            ("out", h.out),
            ("workspaceSize", workspace_size.addr()),
            ("executor", executor.addr()),
        ] {
            if address == 0 {
                return Err(AclnnError::null(name, "a required parameter"));
            }
        }
        let call = {
            let r = registry::lock();
            let tuning_config = match h.tuning_config {
                0 => None,
                handle => Some(r.int_arrays.get(handle).map(|a| a.values.clone()).ok_or_else(|| {
                    AclnnError::invalid(
                        "tuningConfigOptional",
                        "a live aclIntArray from aclCreateIntArray",
                        format!("{handle:#x} (unknown or destroyed)"),
                    )
                })?),
            };
            Call {
                entry,
                x1: tensor(&r, "x1", h.x1)?,
                x2: tensor(&r, "x2", h.x2)?,
                scale: tensor(&r, "scale", h.scale)?,
                bias: tensor(&r, "bias", h.bias)?,
                offset: tensor(&r, "offsetOptional", h.offset)?,
                antiquant_scale: tensor(&r, "antiquantScaleOptional", h.antiquant_scale)?,
                antiquant_offset: tensor(&r, "antiquantOffsetOptional", h.antiquant_offset)?,
                pertoken_scale: tensor(&r, "pertokenScaleOptional", h.pertoken_scale)?,
                group_list: tensor(&r, "groupList", h.group_list)?,
                shared_input: tensor(&r, "sharedInput", h.shared_input)?,
                logit: tensor(&r, "logit", h.logit)?,
                row_index: tensor(&r, "rowIndex", h.row_index)?,
                dtype: s.dtype,
                shared_input_weight: s.shared_input_weight,
                shared_input_offset: s.shared_input_offset,
                transpose_x1: s.transpose_x1 != 0,
                transpose_x2: s.transpose_x2 != 0,
                group_list_type: s.group_list_type,
                tuning_config,
                out: tensor(&r, "out", h.out)?,
            }
        };
        let plan = validate::plan(&call, release())?;
        let size = plan.workspace_size;
        let handle = registry::lock().executors.insert(plan);
        // SAFETY: `workspace_size` is non-null (checked above) and writable by this function's contract.
        unsafe { raw::write_value(workspace_size, size) };
        // SAFETY: as above for `executor`. The handle is a lookup key, never dereferenced.
        unsafe { raw::write_value(executor, std::ptr::without_provenance_mut(handle)) };
        Ok(())
    })
}

fn run(entry: Entry, workspace: *mut c_void, workspace_size: u64, executor: *mut aclOpExecutor) -> i32 {
    boundary::aclnn(entry.name(), || {
        launch::launch(entry, workspace, workspace_size, executor)
    })
}

/// First phase of the A8W8 FRACTAL_NZ entry point: validates the call (SPEC 4), stores it in a
/// new single-use executor and reports the workspace size (`4 * m * n` bytes).
///
/// # Safety
///
/// Tensor handles must be null or come from `aclCreateTensor` (others are refused with 161002,
/// but only pointer values are compared); non-null `workspaceSize` and `executor` must be
/// writable. The tensors' data must stay valid until the launch.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnGroupedMatmulFinalizeRoutingWeightNzGetWorkspaceSize(
    x1: *const aclTensor,
    x2: *const aclTensor,
    scale: *const aclTensor,
    bias: *const aclTensor,
    pertokenScaleOptional: *const aclTensor,
    groupList: *const aclTensor,
    sharedInput: *const aclTensor,
    logit: *const aclTensor,
    rowIndex: *const aclTensor,
    dtype: i64,
    sharedInputWeight: f32,
    sharedInputOffset: i64,
    transposeX1: u8,
    transposeX2: u8,
    groupListType: i64,
    out: *mut aclTensor,
    workspaceSize: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> i32 {
    let handles = Handles {
        x1: x1.addr(),
        x2: x2.addr(),
        scale: scale.addr(),
        bias: bias.addr(),
        offset: 0,
        antiquant_scale: 0,
        antiquant_offset: 0,
        pertoken_scale: pertokenScaleOptional.addr(),
        group_list: groupList.addr(),
        shared_input: sharedInput.addr(),
        logit: logit.addr(),
        row_index: rowIndex.addr(),
        tuning_config: 0,
        out: out.addr(),
    };
    let scalars = Scalars {
        dtype,
        shared_input_weight: sharedInputWeight,
        shared_input_offset: sharedInputOffset,
        transpose_x1: transposeX1,
        transpose_x2: transposeX2,
        group_list_type: groupListType,
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { get_workspace_size(Entry::WeightNz, handles, scalars, workspaceSize, executor) }
}

/// Launch of the A8W8 FRACTAL_NZ entry point: consumes the executor (on every path), checks the
/// workspace, evaluates the op and writes `out`. The stream is ignored (the launch is
/// synchronous).
///
/// # Safety
///
/// `workspace` must be null or point into memory from `aclrtMalloc` (checked); the tensors'
/// data recorded at GetWorkspaceSize must be valid: inputs readable, `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnGroupedMatmulFinalizeRoutingWeightNz(
    workspace: *mut c_void,
    workspaceSize: u64,
    executor: *mut aclOpExecutor,
    stream: aclrtStream,
) -> i32 {
    let _ = stream;
    run(Entry::WeightNz, workspace, workspaceSize, executor)
}

/// The V2 parameter list shared by WeightNzV2 and V3.
///
/// # Safety
///
/// As [`aclnnGroupedMatmulFinalizeRoutingWeightNzGetWorkspaceSize`].
unsafe fn v2_get_workspace_size(
    entry: Entry,
    tensors: [*const aclTensor; 12],
    scalars: Scalars,
    tuning_config: *const aclIntArray,
    out: *mut aclTensor,
    workspace_size: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> i32 {
    let [
        x1,
        x2,
        scale,
        bias,
        offset,
        aq_scale,
        aq_offset,
        pts,
        group_list,
        shared_input,
        logit,
        row_index,
    ] = tensors.map(|t| t.addr());
    let handles = Handles {
        x1,
        x2,
        scale,
        bias,
        offset,
        antiquant_scale: aq_scale,
        antiquant_offset: aq_offset,
        pertoken_scale: pts,
        group_list,
        shared_input,
        logit,
        row_index,
        tuning_config: tuning_config.addr(),
        out: out.addr(),
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { get_workspace_size(entry, handles, scalars, workspace_size, executor) }
}

/// First phase of the FRACTAL_NZ V2 entry point (A8W8, or A8W4 with an int4 NZ weight of block
/// (16, 64)); `offsetOptional` is A8W4 only, the antiquant tensors must be null, and
/// `tuningConfigOptional` (values >= 0) has no semantic effect.
///
/// # Safety
///
/// As [`aclnnGroupedMatmulFinalizeRoutingWeightNzGetWorkspaceSize`]; a non-null
/// `tuningConfigOptional` must come from `aclCreateIntArray` (others are refused).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnGroupedMatmulFinalizeRoutingWeightNzV2GetWorkspaceSize(
    x1: *const aclTensor,
    x2: *const aclTensor,
    scale: *const aclTensor,
    bias: *const aclTensor,
    offsetOptional: *const aclTensor,
    antiquantScaleOptional: *const aclTensor,
    antiquantOffsetOptional: *const aclTensor,
    pertokenScaleOptional: *const aclTensor,
    groupList: *const aclTensor,
    sharedInput: *const aclTensor,
    logit: *const aclTensor,
    rowIndex: *const aclTensor,
    dtype: i64,
    sharedInputWeight: f32,
    sharedInputOffset: i64,
    transposeX1: u8,
    transposeX2: u8,
    groupListType: i64,
    tuningConfigOptional: *const aclIntArray,
    out: *mut aclTensor,
    workspaceSize: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> i32 {
    let tensors = [
        x1,
        x2,
        scale,
        bias,
        offsetOptional,
        antiquantScaleOptional,
        antiquantOffsetOptional,
        pertokenScaleOptional,
        groupList,
        sharedInput,
        logit,
        rowIndex,
    ];
    let scalars = Scalars {
        dtype,
        shared_input_weight: sharedInputWeight,
        shared_input_offset: sharedInputOffset,
        transpose_x1: transposeX1,
        transpose_x2: transposeX2,
        group_list_type: groupListType,
    };
    // SAFETY: forwarded from this function's contract.
    unsafe {
        v2_get_workspace_size(
            Entry::WeightNzV2,
            tensors,
            scalars,
            tuningConfigOptional,
            out,
            workspaceSize,
            executor,
        )
    }
}

/// Launch of the FRACTAL_NZ V2 entry point (see [`aclnnGroupedMatmulFinalizeRoutingWeightNz`]).
///
/// # Safety
///
/// As [`aclnnGroupedMatmulFinalizeRoutingWeightNz`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnGroupedMatmulFinalizeRoutingWeightNzV2(
    workspace: *mut c_void,
    workspaceSize: u64,
    executor: *mut aclOpExecutor,
    stream: aclrtStream,
) -> i32 {
    let _ = stream;
    run(Entry::WeightNzV2, workspace, workspaceSize, executor)
}

/// First phase of the V3 entry point: A8W4 with an ND int4 weight (e, k, n), same parameter
/// list as WeightNzV2.
///
/// # Safety
///
/// As [`aclnnGroupedMatmulFinalizeRoutingWeightNzV2GetWorkspaceSize`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnGroupedMatmulFinalizeRoutingV3GetWorkspaceSize(
    x1: *const aclTensor,
    x2: *const aclTensor,
    scale: *const aclTensor,
    bias: *const aclTensor,
    offsetOptional: *const aclTensor,
    antiquantScaleOptional: *const aclTensor,
    antiquantOffsetOptional: *const aclTensor,
    pertokenScaleOptional: *const aclTensor,
    groupList: *const aclTensor,
    sharedInput: *const aclTensor,
    logit: *const aclTensor,
    rowIndex: *const aclTensor,
    dtype: i64,
    sharedInputWeight: f32,
    sharedInputOffset: i64,
    transposeX1: u8,
    transposeX2: u8,
    groupListType: i64,
    tuningConfigOptional: *const aclIntArray,
    out: *mut aclTensor,
    workspaceSize: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> i32 {
    let tensors = [
        x1,
        x2,
        scale,
        bias,
        offsetOptional,
        antiquantScaleOptional,
        antiquantOffsetOptional,
        pertokenScaleOptional,
        groupList,
        sharedInput,
        logit,
        rowIndex,
    ];
    let scalars = Scalars {
        dtype,
        shared_input_weight: sharedInputWeight,
        shared_input_offset: sharedInputOffset,
        transpose_x1: transposeX1,
        transpose_x2: transposeX2,
        group_list_type: groupListType,
    };
    // SAFETY: forwarded from this function's contract.
    unsafe {
        v2_get_workspace_size(
            Entry::V3,
            tensors,
            scalars,
            tuningConfigOptional,
            out,
            workspaceSize,
            executor,
        )
    }
}

/// Launch of the V3 entry point (see [`aclnnGroupedMatmulFinalizeRoutingWeightNz`]).
///
/// # Safety
///
/// As [`aclnnGroupedMatmulFinalizeRoutingWeightNz`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnGroupedMatmulFinalizeRoutingV3(
    workspace: *mut c_void,
    workspaceSize: u64,
    executor: *mut aclOpExecutor,
    stream: aclrtStream,
) -> i32 {
    let _ = stream;
    run(Entry::V3, workspace, workspaceSize, executor)
}

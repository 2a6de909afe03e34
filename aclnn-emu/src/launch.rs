//! The launch: consume the executor, check the workspace, read the operands out of (emulated)
//! device memory, evaluate the reference semantics, and write the f32 output.
//!
//! Only the active rows p < sum(group_list) of x1, pertokenScale, logit and rowIndex are read
//! (SPEC 1.1: the rest may be garbage, or not even initialised); the inactive rows are given to
//! the reference as zeros, which it never reads either. Every runtime precondition is checked
//! before anything is written, so a refused launch leaves `out` untouched.

use std::ffi::c_void;

use gmmfr_dialect::reference::{EvalError, GmmfrOperands, group_rows, grouped_matmul_finalize_routing};
use gmmfr_dialect::tensor::{Buffer, DType, Tensor, TensorError, checked_num_elements};
use half::{bf16, f16};

use crate::abi::{aclOpExecutor, element_size};
use crate::device;
use crate::executor::{Entry, Operand, Plan};
use crate::raw;
use crate::registry;
use crate::status::AclnnError;

/// Runs the launch function of `entry` (the second phase of the two-phase call).
pub(crate) fn launch(
    entry: Entry,
    workspace: *mut c_void,
    workspace_size: u64,
    executor: *mut aclOpExecutor,
) -> Result<(), AclnnError> {
    if executor.is_null() {
        return Err(AclnnError::null("executor", "the executor from GetWorkspaceSize"));
    }
    // Removing it first makes every path, failing or not, release the executor exactly once.
    let plan = registry::lock().executors.remove(executor.addr()).ok_or_else(|| {
        AclnnError::invalid(
            "executor",
            "a live executor from GetWorkspaceSize (each is used by one launch)",
            format!("{executor:p} (unknown or already used)"),
        )
    })?;
    if plan.entry != entry {
        return Err(AclnnError::invalid(
            "executor",
            format!("one prepared by {}", entry.workspace_name()),
            format!("one prepared by {}", plan.entry.workspace_name()),
        ));
    }
    let required = plan.workspace_size;
    if workspace_size < required {
        return Err(AclnnError::invalid(
            "workspaceSize",
            format!(">= {required}"),
            workspace_size,
        ));
    }
    if required > 0 && workspace.is_null() {
        return Err(AclnnError::invalid(
            "workspace",
            format!("non-null ({required} bytes required)"),
            "null",
        ));
    }
    let staging = usize::try_from(required).map_err(|_| AclnnError::Internal("workspace size exceeds usize".into()))?;
    check_workspace(&registry::lock(), workspace, staging)?;

    let result = evaluate(&plan)?;
    let bytes = f32_bytes(&result)?;
    if bytes.len() > staging {
        return Err(AclnnError::Internal(format!(
            "output of {} bytes does not fit the {staging}-byte workspace",
            bytes.len()
        )));
    }
    // Held while the workspace is used, so a concurrent aclrtFree cannot release it meanwhile.
    let registry = registry::lock();
    check_workspace(&registry, workspace, staging)?;
    // SAFETY: `workspace` lies inside a live aclrtMalloc allocation of at least `staging >=
    // bytes.len()` bytes (checked under the lock we hold) and `bytes` is our own vector.
    unsafe { raw::write_bytes(workspace.cast::<u8>(), &bytes) };
    // SAFETY: the same `bytes.len()` bytes of the same live allocation were just written.
    let staged = unsafe { raw::read_bytes(workspace.cast::<u8>().cast_const(), bytes.len()) }?;
    drop(registry);
    let dst = std::ptr::with_exposed_provenance_mut::<u8>(plan.out.data).wrapping_add(plan.out.byte_offset);
    // SAFETY: by aclCreateTensor's contract `out`'s data is writable for the elements its
    // descriptor describes; validation checked it is f32 (batch, n), contiguous, with offset +
    // batch * n within its storage dims, and `staged` is exactly batch * n * 4 bytes of our own.
    unsafe { raw::write_bytes(dst, &staged) };
    Ok(())
}

fn check_workspace(registry: &registry::Registry, workspace: *mut c_void, len: usize) -> Result<(), AclnnError> {
    if len == 0 || device::covers(registry, workspace.addr(), len) {
        Ok(())
    } else {
        Err(AclnnError::invalid(
            "workspace",
            format!("inside a live aclrtMalloc allocation with at least {len} bytes from it"),
            format!("{workspace:p}"),
        ))
    }
}

/// A runtime precondition (data-dependent, the kernel does not check it) or an internal error.
fn classify(error: EvalError) -> AclnnError {
    match error {
        EvalError::NegativeCount { .. }
        | EvalError::CumsumDecreasing { .. }
        | EvalError::GroupSumExceedsM { .. }
        | EvalError::RowIndexOutOfRange { .. }
        | EvalError::ScaleHighBits { .. }
        | EvalError::Tensor(TensorError::I4OutOfRange { .. }) => AclnnError::Precondition(error),
        other => AclnnError::Internal(format!("validated call refused by the reference semantics: {other}")),
    }
}

/// Reads the operands and evaluates the fused op.
fn evaluate(plan: &Plan) -> Result<Tensor, AclnnError> {
    let group_list = read(&plan.group_list, None)?;
    let groups = group_rows(&group_list, plan.e, plan.attrs.group_list_type, plan.m, false).map_err(classify)?;
    let active = Some(groups.active);
    let x = read(&plan.x, active)?;
    let w = read(&plan.w, None)?;
    let scale = read(&plan.scale, None)?;
    let bias = plan.bias.as_ref().map(|o| read(o, None)).transpose()?;
    let offset = plan.offset.as_ref().map(|o| read(o, None)).transpose()?;
    let pertoken_scale = plan.pertoken_scale.as_ref().map(|o| read(o, active)).transpose()?;
    let shared_input = plan.shared_input.as_ref().map(|o| read(o, None)).transpose()?;
    let logit = plan.logit.as_ref().map(|o| read(o, active)).transpose()?;
    let row_index = read(&plan.row_index, active)?;
    let operands = GmmfrOperands {
        x: &x,
        w: &w,
        group_list: &group_list,
        scale: Some(&scale),
        bias: bias.as_ref(),
        offset: offset.as_ref(),
        pertoken_scale: pertoken_scale.as_ref(),
        shared_input: shared_input.as_ref(),
        logit: logit.as_ref(),
        row_index: &row_index,
    };
    let out = grouped_matmul_finalize_routing(&operands, &plan.attrs).map_err(classify)?;
    if out.shape() != plan.out.shape.as_slice() {
        return Err(AclnnError::Internal(format!(
            "reference result {:?} differs from out {:?}",
            out.shape(),
            plan.out.shape
        )));
    }
    Ok(out)
}

fn vec_with_capacity<T>(len: usize) -> Result<Vec<T>, AclnnError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| AclnnError::Internal(format!("cannot allocate {len} elements on the host")))?;
    Ok(v)
}

/// Decodes native-endian elements of `N` bytes, then zero-pads to `len` elements.
fn decode<T: Clone, const N: usize>(
    bytes: &[u8],
    len: usize,
    zero: T,
    from: impl Fn([u8; N]) -> T,
) -> Result<Vec<T>, AclnnError> {
    let mut v = vec_with_capacity(len)?;
    v.extend(bytes.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        from(a)
    }));
    v.resize(len, zero);
    Ok(v)
}

/// Reads an operand as a tensor of its planned shape. With `rows = Some(r)` only the first `r`
/// rows (outermost dim) are read from device memory and the rest are zeros.
fn read(op: &Operand, rows: Option<usize>) -> Result<Tensor, AclnnError> {
    let overflow = || AclnnError::Internal(format!("size of {:?} overflows", op.shape));
    let total = checked_num_elements(&op.shape).ok_or_else(overflow)?;
    let count = match (rows, op.shape.split_first()) {
        (Some(r), Some((&outer, inner))) => r
            .min(outer)
            .checked_mul(checked_num_elements(inner).ok_or_else(overflow)?)
            .ok_or_else(overflow)?,
        _ => total,
    };
    let len = count.checked_mul(element_size(op.dtype)).ok_or_else(overflow)?;
    let src = std::ptr::with_exposed_provenance::<u8>(op.data).wrapping_add(op.byte_offset);
    // SAFETY: by aclCreateTensor's contract the tensor's data is readable for the elements its
    // descriptor describes; validation checked offset + (product of the planned shape) fits in
    // its storage dims (the NZ weight: exactly its 5-D storage), and `count <= total`.
    let bytes = unsafe { raw::read_bytes(src, len) }?;
    let buffer = match op.dtype {
        DType::I4 | DType::I8 => Buffer::I8(decode(&bytes, total, 0, i8::from_ne_bytes)?),
        DType::I32 => Buffer::I32(decode(&bytes, total, 0, i32::from_ne_bytes)?),
        DType::I64 => Buffer::I64(decode(&bytes, total, 0, i64::from_ne_bytes)?),
        DType::F16 => Buffer::F16(decode(&bytes, total, f16::ZERO, |b| {
            f16::from_bits(u16::from_ne_bytes(b))
        })?),
        DType::BF16 => Buffer::BF16(decode(&bytes, total, bf16::ZERO, |b| {
            bf16::from_bits(u16::from_ne_bytes(b))
        })?),
        DType::F32 => Buffer::F32(decode(&bytes, total, 0.0, f32::from_ne_bytes)?),
    };
    Tensor::new(op.dtype, op.shape.clone(), buffer).map_err(|e| classify(EvalError::Tensor(e)))
}

fn f32_bytes(t: &Tensor) -> Result<Vec<u8>, AclnnError> {
    let values = t
        .as_f32()
        .ok_or_else(|| AclnnError::Internal(format!("reference result has dtype {}", t.dtype())))?;
    let mut bytes = vec_with_capacity(values.len().saturating_mul(4))?;
    for v in values {
        bytes.extend_from_slice(&v.to_ne_bytes());
    }
    Ok(bytes)
}

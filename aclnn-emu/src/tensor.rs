//! `aclTensor` and `aclIntArray`: descriptors copied out of the caller's arrays at creation, and
//! the four C functions that create and release them.
//!
//! A tensor records what `aclCreateTensor` was given (view dims, dtype code, strides, offset,
//! format, storage dims, data address) without judging it beyond what makes the descriptor
//! well-formed; the entry points decide what they accept.

use std::ffi::c_void;

use crate::abi::{aclIntArray, aclTensor};
use crate::boundary;
use crate::raw;
use crate::registry;
use crate::status::AclnnError;

/// The most dimensions a descriptor may have (CANN's limit).
pub const MAX_DIMS: u64 = 8;

/// The most values an int array may hold in the emulator (a tuning config has a handful).
pub const MAX_INT_ARRAY_LEN: u64 = 1 << 16;

/// What `aclCreateTensor` was given. Dims are non-negative and `offset >= 0` (checked at creation).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AclTensor {
    /// Logical dims, outermost first.
    pub(crate) view_dims: Vec<i64>,
    /// `aclDataType` code.
    pub(crate) data_type: i32,
    /// Element strides of the view, one per view dim.
    pub(crate) strides: Vec<i64>,
    /// Element offset of the view's first element from `data`.
    pub(crate) offset: i64,
    /// `aclFormat` code.
    pub(crate) format: i32,
    /// Dims of the underlying storage (the 5-D NZ shape for an NZ weight).
    pub(crate) storage_dims: Vec<i64>,
    /// The data pointer (device memory is host memory in the emulator), with its provenance
    /// exposed so the launch can read and write through it.
    pub(crate) data: usize,
}

/// What `aclCreateIntArray` was given.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AclIntArray {
    /// The copied values.
    pub(crate) values: Vec<i64>,
}

/// Copies a dims-like array of `count` i64 values; null is allowed only with `count == 0`.
///
/// # Safety
///
/// A non-null `ptr` must be readable for `count` i64 values.
unsafe fn dims(what: &str, ptr: *const i64, count: u64, max: u64) -> Result<Vec<i64>, String> {
    if count > max {
        return Err(format!("{what}: {count} entries, at most {max} supported"));
    }
    if count == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(format!("{what} is null with {count} entries"));
    }
    let count = usize::try_from(count).map_err(|_| format!("{what}: count {count} does not fit in usize"))?;
    // SAFETY: non-null, and the caller guarantees `count` readable values.
    unsafe { raw::read_i64s(ptr, count) }.ok_or_else(|| format!("{what}: cannot copy {count} entries"))
}

/// Creates a tensor descriptor (`aclCreateTensor`). Returns null (and records why, see
/// [`crate::last_error`]) when `viewDims`, `stride` or `storageDims` is null with a non-zero
/// count, a count exceeds 8, a dim is negative, or `offset` is negative. The dtype and format
/// codes are recorded as given and judged by the entry points.
///
/// # Safety
///
/// `viewDims` and `stride` must be readable for `viewDimsNum` values, `storageDims` for
/// `storageDimsNum` values (when non-null). `tensorData` is only stored here; the launch reads
/// (or, for `out`, writes) the bytes its dims and dtype describe, and they must be valid then.
#[unsafe(no_mangle)]
#[allow(non_snake_case)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn aclCreateTensor(
    viewDims: *const i64,
    viewDimsNum: u64,
    dataType: i32,
    stride: *const i64,
    offset: i64,
    format: i32,
    storageDims: *const i64,
    storageDimsNum: u64,
    tensorData: *mut c_void,
) -> *mut aclTensor {
    boundary::handle("aclCreateTensor", || {
        // SAFETY: forwarded from this function's contract on each array and its count.
        let view_dims = unsafe { dims("viewDims", viewDims, viewDimsNum, MAX_DIMS) }?;
        // SAFETY: as above; `stride` has one entry per view dim.
        let strides = unsafe { dims("stride", stride, viewDimsNum, MAX_DIMS) }?;
        // SAFETY: as above.
        let storage_dims = unsafe { dims("storageDims", storageDims, storageDimsNum, MAX_DIMS) }?;
        if let Some(d) = view_dims.iter().chain(&storage_dims).find(|&&d| d < 0) {
            return Err(format!("negative dimension {d}"));
        }
        if offset < 0 {
            return Err(format!("negative offset {offset}"));
        }
        let tensor = AclTensor {
            view_dims,
            data_type: dataType,
            strides,
            offset,
            format,
            storage_dims,
            data: tensorData.expose_provenance(),
        };
        Ok(registry::lock().tensors.insert(tensor))
    })
}

/// Releases a tensor descriptor (`aclDestroyTensor`); the data is the caller's. Null is a no-op
/// (`ACLNN_SUCCESS`); a handle that is not live returns `ACLNN_ERR_PARAM_INVALID`.
///
/// # Safety
///
/// None beyond the C signature: the handle is looked up, never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclDestroyTensor(tensor: *const aclTensor) -> i32 {
    release("aclDestroyTensor", tensor.addr(), |r, h| r.tensors.remove(h).is_some())
}

/// Creates an int array holding a copy of `size` values (`aclCreateIntArray`). Null `value`
/// with `size > 0`, or `size` above 65536, returns null.
///
/// # Safety
///
/// A non-null `value` must be readable for `size` values.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclCreateIntArray(value: *const i64, size: u64) -> *mut aclIntArray {
    boundary::handle("aclCreateIntArray", || {
        // SAFETY: forwarded from this function's contract.
        let values = unsafe { dims("value", value, size, MAX_INT_ARRAY_LEN) }?;
        Ok(registry::lock().int_arrays.insert(AclIntArray { values }))
    })
}

/// Releases an int array (`aclDestroyIntArray`). Null is a no-op; a handle that is not live
/// returns `ACLNN_ERR_PARAM_INVALID`.
///
/// # Safety
///
/// None beyond the C signature: the handle is looked up, never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclDestroyIntArray(array: *const aclIntArray) -> i32 {
    release("aclDestroyIntArray", array.addr(), |r, h| {
        r.int_arrays.remove(h).is_some()
    })
}

fn release(function: &'static str, handle: usize, remove: impl FnOnce(&mut registry::Registry, usize) -> bool) -> i32 {
    boundary::aclnn(function, || {
        if handle == 0 || remove(&mut registry::lock(), handle) {
            Ok(())
        } else {
            Err(AclnnError::invalid(
                "handle",
                "a live handle made by this library",
                format!("{handle:#x} (unknown or already released)"),
            ))
        }
    })
}

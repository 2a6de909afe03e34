//! Emulated device memory and streams: `aclrtMalloc`, `aclrtFree`, `aclrtSynchronizeStream`.
//!
//! Device memory is host memory from the global allocator, zero-filled and 64-byte aligned.
//! Every allocation is tracked, so freeing a pointer this runtime did not return (or freeing
//! twice) is an error code, not undefined behaviour, and a launch can check that its workspace
//! lies inside a live allocation.

use std::alloc::Layout;
use std::ffi::c_void;

use crate::abi::aclrtStream;
use crate::boundary;
use crate::raw;
use crate::registry::{self, Registry};
use crate::status::{ACL_ERROR_INVALID_PARAM, ACL_ERROR_RT_MEMORY_ALLOCATION, ACL_ERROR_RT_PARAM_INVALID};

/// Alignment of every emulated device allocation.
pub const DEVICE_ALIGNMENT: usize = 64;

/// The policies `aclrtMalloc` accepts: HUGE_FIRST (0), HUGE_ONLY (1), NORMAL_ONLY (2). The
/// emulator treats them alike.
const KNOWN_POLICIES: std::ops::RangeInclusive<i32> = 0..=2;

/// A live allocation: its layout (for `dealloc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Allocation {
    layout: Layout,
}

impl Allocation {
    /// Size in bytes.
    pub(crate) fn size(&self) -> usize {
        self.layout.size()
    }
}

/// True when `[start, start + len)` lies inside one live allocation.
pub(crate) fn covers(registry: &Registry, start: usize, len: usize) -> bool {
    let Some(end) = start.checked_add(len) else {
        return false;
    };
    registry
        .allocations
        .iter()
        .any(|(&base, a)| base <= start && base.checked_add(a.size()).is_some_and(|limit| end <= limit))
}

/// Allocates `size` bytes of (emulated) device memory (`aclrtMalloc`) and stores the pointer in
/// `*devPtr`. Errors: `ACL_ERROR_INVALID_PARAM` for a null `devPtr`, `size == 0` or a policy
/// outside 0..=2; `ACL_ERROR_RT_MEMORY_ALLOCATION` when the host allocation fails.
///
/// # Safety
///
/// A non-null `devPtr` must be writable for one pointer.
#[unsafe(no_mangle)]
#[allow(non_snake_case)]
pub unsafe extern "C" fn aclrtMalloc(devPtr: *mut *mut c_void, size: usize, policy: i32) -> i32 {
    boundary::acl("aclrtMalloc", || {
        if devPtr.is_null() {
            return Err((ACL_ERROR_INVALID_PARAM, "devPtr is null".into()));
        }
        if size == 0 {
            return Err((ACL_ERROR_INVALID_PARAM, "size is 0".into()));
        }
        if !KNOWN_POLICIES.contains(&policy) {
            return Err((
                ACL_ERROR_INVALID_PARAM,
                format!("unknown aclrtMemMallocPolicy {policy}"),
            ));
        }
        let layout = Layout::from_size_align(size, DEVICE_ALIGNMENT).map_err(|_| {
            (
                ACL_ERROR_RT_MEMORY_ALLOCATION,
                format!("{size} bytes exceed the address space"),
            )
        })?;
        // SAFETY: `layout` has a non-zero size (checked above).
        let memory = unsafe { std::alloc::alloc_zeroed(layout) };
        if memory.is_null() {
            return Err((ACL_ERROR_RT_MEMORY_ALLOCATION, format!("cannot allocate {size} bytes")));
        }
        registry::lock()
            .allocations
            .insert(memory.addr(), Allocation { layout });
        // SAFETY: `devPtr` is non-null and, by this function's contract, writable for a pointer.
        unsafe { raw::write_value(devPtr, memory.cast::<c_void>()) };
        Ok(())
    })
}

/// Frees memory returned by `aclrtMalloc` (`aclrtFree`). Errors: `ACL_ERROR_INVALID_PARAM` for
/// null; `ACL_ERROR_RT_PARAM_INVALID` for a pointer that is not the start of a live allocation.
///
/// # Safety
///
/// None beyond the C signature: the pointer is looked up before it is released.
#[unsafe(no_mangle)]
#[allow(non_snake_case)]
pub unsafe extern "C" fn aclrtFree(devPtr: *mut c_void) -> i32 {
    boundary::acl("aclrtFree", || {
        if devPtr.is_null() {
            return Err((ACL_ERROR_INVALID_PARAM, "devPtr is null".into()));
        }
        let Some(allocation) = registry::lock().allocations.remove(&devPtr.addr()) else {
            return Err((
                ACL_ERROR_RT_PARAM_INVALID,
                format!("{devPtr:p} was not returned by aclrtMalloc (or was already freed)"),
            ));
        };
        // SAFETY: `devPtr` is the start of a live allocation made by `alloc_zeroed` with exactly
        // this layout (it was in the table, and removing it makes this the only release).
        unsafe { std::alloc::dealloc(devPtr.cast::<u8>(), allocation.layout) };
        Ok(())
    })
}

/// Waits for a stream (`aclrtSynchronizeStream`). Every emulated launch has completed when it
/// returns, so this returns 0 for any stream, including null (the default stream).
///
/// # Safety
///
/// None: the stream is not dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtSynchronizeStream(stream: aclrtStream) -> i32 {
    let _ = stream;
    boundary::acl("aclrtSynchronizeStream", || Ok(()))
}

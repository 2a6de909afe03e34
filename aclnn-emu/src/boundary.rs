//! The FFI boundary: every exported function runs its body through one of these wrappers, so a
//! panic (none is expected: the code is written panic-free) becomes an error code or a null
//! handle instead of unwinding into C, and the reason of the last failure on this thread is kept
//! for [`last_error`].

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::status::{ACL_ERROR_INTERNAL_ERROR, ACLNN_ERR_INNER, ACLNN_SUCCESS, AclnnError};

thread_local! {
    static LAST_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn record(message: String) {
    LAST_ERROR.with(|slot| *slot.borrow_mut() = Some(message));
}

/// The message of the last failed C call made on this thread (`None` if none failed), e.g.
/// `aclnnGroupedMatmulFinalizeRoutingWeightNzGetWorkspaceSize: x2 format must be ...`.
/// The C API reports only codes; this is the emulator's explanation of the last one.
pub fn last_error() -> Option<String> {
    LAST_ERROR.with(|slot| slot.borrow().clone())
}

/// Runs an aclnn call: `Ok` is `ACLNN_SUCCESS`, an error is its code (and its message is
/// recorded), a panic is `ACLNN_ERR_INNER`.
pub(crate) fn aclnn(function: &'static str, body: impl FnOnce() -> Result<(), AclnnError>) -> i32 {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => ACLNN_SUCCESS,
        Ok(Err(error)) => {
            let code = error.code();
            record(format!("{function}: {error}"));
            code
        }
        Err(_) => {
            record(format!("{function}: internal error (panic caught at the FFI boundary)"));
            ACLNN_ERR_INNER
        }
    }
}

/// Runs an aclrt call returning an aclError: `Err((code, message))` records the message, a panic
/// is `ACL_ERROR_INTERNAL_ERROR`.
pub(crate) fn acl(function: &'static str, body: impl FnOnce() -> Result<(), (i32, String)>) -> i32 {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => ACLNN_SUCCESS,
        Ok(Err((code, message))) => {
            record(format!("{function}: {message}"));
            code
        }
        Err(_) => {
            record(format!("{function}: internal error (panic caught at the FFI boundary)"));
            ACL_ERROR_INTERNAL_ERROR
        }
    }
}

/// Runs a creator returning a handle: `Err(message)` and a panic both become a null handle.
pub(crate) fn handle<T>(function: &'static str, body: impl FnOnce() -> Result<usize, String>) -> *mut T {
    match catch_unwind(AssertUnwindSafe(body)) {
        // The handle is a lookup key the C side never dereferences, so it carries no provenance.
        Ok(Ok(handle)) => std::ptr::without_provenance_mut(handle),
        Ok(Err(message)) => {
            record(format!("{function}: {message}"));
            std::ptr::null_mut()
        }
        Err(_) => {
            record(format!("{function}: internal error (panic caught at the FFI boundary)"));
            std::ptr::null_mut()
        }
    }
}

//! Status codes (the values `include/gmmfr_aclnn.h` defines), the error type every failing call
//! is reduced to, and the one-line meaning of each code for the CLI.

use gmmfr_dialect::reference::EvalError;
use thiserror::Error;

/// `ACLNN_SUCCESS` (also `ACL_SUCCESS`).
pub const ACLNN_SUCCESS: i32 = 0;
/// `ACLNN_ERR_PARAM_NULLPTR`: a required pointer is null, or an unsupported combination of
/// absent optional tensors.
pub const ACLNN_ERR_PARAM_NULLPTR: i32 = 161_001;
/// `ACLNN_ERR_PARAM_INVALID`: a dtype, format, shape, stride or attribute is out of range, or a
/// handle was not made by this library (or was already released).
pub const ACLNN_ERR_PARAM_INVALID: i32 = 161_002;
/// `ACLNN_ERR_INNER`: an internal error (a host allocation failed, or an emulator bug was caught).
pub const ACLNN_ERR_INNER: i32 = 561_000;
/// `GMMFR_EMU_ERR_RUNTIME_PRECONDITION`: emulator only. A launch found a runtime precondition
/// violated that the real kernel does not check (it would write out of bounds or compute
/// garbage) and refused, writing nothing. The number is CANN's inner-error class; it coincides
/// with `ACLNN_ERR_INNER_TILING_ERROR`.
pub const GMMFR_EMU_ERR_RUNTIME_PRECONDITION: i32 = 561_002;

/// `ACL_ERROR_INVALID_PARAM` (aclError): null out-pointer, zero size or unknown policy.
pub const ACL_ERROR_INVALID_PARAM: i32 = 100_000;
/// `ACL_ERROR_RT_PARAM_INVALID` (aclError): `aclrtFree` of a pointer `aclrtMalloc` did not return.
pub const ACL_ERROR_RT_PARAM_INVALID: i32 = 107_000;
/// `ACL_ERROR_RT_MEMORY_ALLOCATION` (aclError): the allocation failed.
pub const ACL_ERROR_RT_MEMORY_ALLOCATION: i32 = 207_001;
/// `ACL_ERROR_INTERNAL_ERROR` (aclError): an internal error of the runtime (a caught panic).
pub const ACL_ERROR_INTERNAL_ERROR: i32 = 500_000;

/// The one-line meaning of an aclnn or aclrt status code (for messages and the CLI).
pub fn status_meaning(code: i32) -> &'static str {
    match code {
        ACLNN_SUCCESS => "ACLNN_SUCCESS: the call succeeded",
        ACLNN_ERR_PARAM_NULLPTR => {
            "ACLNN_ERR_PARAM_NULLPTR: a required pointer is null, or an unsupported combination of absent optional tensors"
        }
        ACLNN_ERR_PARAM_INVALID => "ACLNN_ERR_PARAM_INVALID: a dtype, format, shape or attribute is out of range",
        ACLNN_ERR_INNER => "ACLNN_ERR_INNER: internal error of the aclnn implementation",
        GMMFR_EMU_ERR_RUNTIME_PRECONDITION => {
            "GMMFR_EMU_ERR_RUNTIME_PRECONDITION (emulator): a runtime precondition failed at launch (e.g. an active row_index outside the output, sum(group_list) > m); the emulator refused the out-of-bounds write the real kernel would not check and wrote nothing"
        }
        ACL_ERROR_INVALID_PARAM => "ACL_ERROR_INVALID_PARAM: an argument of an aclrt call is invalid",
        ACL_ERROR_RT_PARAM_INVALID => {
            "ACL_ERROR_RT_PARAM_INVALID: the runtime rejected an argument (e.g. freeing memory it did not allocate)"
        }
        ACL_ERROR_RT_MEMORY_ALLOCATION => "ACL_ERROR_RT_MEMORY_ALLOCATION: device memory could not be allocated",
        ACL_ERROR_INTERNAL_ERROR => "ACL_ERROR_INTERNAL_ERROR: internal error of the runtime",
        _ => "unknown status code",
    }
}

/// Why an aclnn call failed. Each variant maps to one status code ([`AclnnError::code`]); the
/// message names the operand or attribute at fault and is kept for [`crate::last_error`].
#[derive(Debug, Error, Clone, PartialEq)]
pub enum AclnnError {
    /// A required pointer is null (`ACLNN_ERR_PARAM_NULLPTR`).
    #[error("{subject} is null: {why}")]
    Null {
        /// The parameter, e.g. `x1` or `x1 data`.
        subject: String,
        /// Why it is required.
        why: &'static str,
    },
    /// A dtype, format, shape, stride, attribute or handle is invalid (`ACLNN_ERR_PARAM_INVALID`).
    #[error("{subject} must be {expected}, is {actual}")]
    Invalid {
        /// What is constrained, e.g. `x2 format` or `n`.
        subject: String,
        /// The allowed values.
        expected: String,
        /// The value found.
        actual: String,
    },
    /// A runtime precondition failed at launch (`GMMFR_EMU_ERR_RUNTIME_PRECONDITION`).
    #[error("runtime precondition failed at launch, nothing written: {0}")]
    Precondition(EvalError),
    /// An internal failure (`ACLNN_ERR_INNER`).
    #[error("internal error: {0}")]
    Internal(String),
}

impl AclnnError {
    /// The aclnn status code of this error.
    pub fn code(&self) -> i32 {
        match self {
            AclnnError::Null { .. } => ACLNN_ERR_PARAM_NULLPTR,
            AclnnError::Invalid { .. } => ACLNN_ERR_PARAM_INVALID,
            AclnnError::Precondition(_) => GMMFR_EMU_ERR_RUNTIME_PRECONDITION,
            AclnnError::Internal(_) => ACLNN_ERR_INNER,
        }
    }

    /// An [`AclnnError::Invalid`] from anything printable.
    pub(crate) fn invalid(subject: impl Into<String>, expected: impl Into<String>, actual: impl ToString) -> Self {
        AclnnError::Invalid {
            subject: subject.into(),
            expected: expected.into(),
            actual: actual.to_string(),
        }
    }

    /// An [`AclnnError::Null`].
    pub(crate) fn null(subject: impl Into<String>, why: &'static str) -> Self {
        AclnnError::Null {
            subject: subject.into(),
            why,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every defined code has a meaning naming its macro; unknown codes say so.
    #[test]
    fn meanings() {
        assert_eq!(
            status_meaning(161_002),
            "ACLNN_ERR_PARAM_INVALID: a dtype, format, shape or attribute is out of range"
        );
        for code in [
            ACLNN_SUCCESS,
            ACLNN_ERR_PARAM_NULLPTR,
            ACLNN_ERR_INNER,
            GMMFR_EMU_ERR_RUNTIME_PRECONDITION,
            ACL_ERROR_INVALID_PARAM,
            ACL_ERROR_RT_PARAM_INVALID,
            ACL_ERROR_RT_MEMORY_ALLOCATION,
            ACL_ERROR_INTERNAL_ERROR,
        ] {
            assert_ne!(status_meaning(code), "unknown status code", "{code}");
        }
        assert_eq!(status_meaning(42), "unknown status code");
    }
}

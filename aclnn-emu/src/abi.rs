//! The C types of `include/gmmfr_aclnn.h` as Rust sees them: opaque handle types and the
//! `aclDataType` / `aclFormat` / `aclrtMemMallocPolicy` codes.
//!
//! C enums are passed as `int`, so the exported functions take `i32` and check the value: an
//! unknown code is an error code, never an invalid Rust enum.

#![allow(non_camel_case_types)]

use std::marker::{PhantomData, PhantomPinned};

use gmmfr_dialect::tensor::DType;

/// Opaque `aclTensor` (only ever used behind a pointer).
#[repr(C)]
pub struct aclTensor {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// Opaque `aclIntArray`.
#[repr(C)]
pub struct aclIntArray {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// Opaque `aclOpExecutor`.
#[repr(C)]
pub struct aclOpExecutor {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `aclrtStream`.
pub type aclrtStream = *mut std::ffi::c_void;

/// `ACL_FLOAT`.
pub const ACL_FLOAT: i32 = 0;
/// `ACL_FLOAT16`.
pub const ACL_FLOAT16: i32 = 1;
/// `ACL_INT8`.
pub const ACL_INT8: i32 = 2;
/// `ACL_INT32`.
pub const ACL_INT32: i32 = 3;
/// `ACL_INT64`.
pub const ACL_INT64: i32 = 9;
/// `ACL_BF16`.
pub const ACL_BF16: i32 = 27;
/// `ACL_INT4` (in the emulator one value per byte; see the crate documentation).
pub const ACL_INT4: i32 = 29;

/// `ACL_FORMAT_ND`.
pub const ACL_FORMAT_ND: i32 = 2;
/// `ACL_FORMAT_FRACTAL_NZ`.
pub const ACL_FORMAT_FRACTAL_NZ: i32 = 29;

/// `ACL_MEM_MALLOC_HUGE_FIRST`.
pub const ACL_MEM_MALLOC_HUGE_FIRST: i32 = 0;

/// The element type of an `aclDataType` code, `None` for codes the emulator does not model.
pub fn element_type(code: i32) -> Option<DType> {
    Some(match code {
        ACL_FLOAT => DType::F32,
        ACL_FLOAT16 => DType::F16,
        ACL_INT8 => DType::I8,
        ACL_INT32 => DType::I32,
        ACL_INT64 => DType::I64,
        ACL_BF16 => DType::BF16,
        ACL_INT4 => DType::I4,
        _ => return None,
    })
}

/// The `aclDataType` code of an element type.
pub fn data_type_code(dtype: DType) -> i32 {
    match dtype {
        DType::F32 => ACL_FLOAT,
        DType::F16 => ACL_FLOAT16,
        DType::I8 => ACL_INT8,
        DType::I32 => ACL_INT32,
        DType::I64 => ACL_INT64,
        DType::BF16 => ACL_BF16,
        DType::I4 => ACL_INT4,
    }
}

/// Bytes per element in emulated device memory. `i4` takes one byte (one value per int8).
pub fn element_size(dtype: DType) -> usize {
    match dtype {
        DType::I4 | DType::I8 => 1,
        DType::F16 | DType::BF16 => 2,
        DType::I32 | DType::F32 => 4,
        DType::I64 => 8,
    }
}

/// The header spelling of an `aclDataType` code (for messages).
pub fn data_type_name(code: i32) -> String {
    match code {
        ACL_FLOAT => "ACL_FLOAT".into(),
        ACL_FLOAT16 => "ACL_FLOAT16".into(),
        ACL_INT8 => "ACL_INT8".into(),
        ACL_INT32 => "ACL_INT32".into(),
        ACL_INT64 => "ACL_INT64".into(),
        ACL_BF16 => "ACL_BF16".into(),
        ACL_INT4 => "ACL_INT4".into(),
        other => format!("aclDataType {other}"),
    }
}

/// The header spelling of an `aclFormat` code (for messages).
pub fn format_name(code: i32) -> String {
    match code {
        ACL_FORMAT_ND => "ACL_FORMAT_ND".into(),
        ACL_FORMAT_FRACTAL_NZ => "ACL_FORMAT_FRACTAL_NZ".into(),
        other => format!("aclFormat {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Code <-> dtype round-trips for every modelled code; other codes are unknown.
    #[test]
    fn data_type_codes() {
        for code in [0, 1, 2, 3, 9, 27, 29] {
            let dtype = element_type(code).unwrap();
            assert_eq!(data_type_code(dtype), code);
        }
        assert_eq!(element_type(4), None);
        assert_eq!(element_size(DType::I4), 1);
        assert_eq!(data_type_name(29), "ACL_INT4");
        assert_eq!(format_name(0), "aclFormat 0");
    }
}

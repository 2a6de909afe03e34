//! The only places caller memory is touched: copying bytes out of a caller pointer, copying
//! bytes into one, and storing one out-parameter. None needs alignment; typed values are decoded
//! from native-endian bytes in safe code.

use crate::status::AclnnError;

/// Copies `len` bytes starting at `src` into a new vector. `len == 0` reads nothing (and `src`
/// may then be null). A vector that cannot be allocated is an error, not an abort.
///
/// # Safety
///
/// When `len > 0`, `src` must be valid for reads of `len` bytes (the C contract of the pointer
/// it came from: a dims array of the stated count, or a tensor's data of the size its dims and
/// dtype describe).
pub(crate) unsafe fn read_bytes(src: *const u8, len: usize) -> Result<Vec<u8>, AclnnError> {
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(len)
        .map_err(|_| AclnnError::Internal(format!("cannot allocate {len} bytes to copy caller memory")))?;
    if len > 0 {
        // SAFETY: the caller guarantees `src` is readable for `len` bytes; `bytes` has capacity
        // `len` and is freshly allocated, so the two ranges do not overlap; a byte copy has no
        // alignment requirement; every byte is initialised before `set_len`.
        unsafe {
            std::ptr::copy_nonoverlapping(src, bytes.as_mut_ptr(), len);
            bytes.set_len(len);
        }
    }
    Ok(bytes)
}

/// Copies `bytes` to `dst`. An empty slice writes nothing.
///
/// # Safety
///
/// When `bytes` is non-empty, `dst` must be valid for writes of `bytes.len()` bytes and must
/// not overlap `bytes` (an out-parameter of the stated C type, a tensor's data of the size its
/// dims and dtype describe, or a live aclrtMalloc allocation).
pub(crate) unsafe fn write_bytes(dst: *mut u8, bytes: &[u8]) {
    if !bytes.is_empty() {
        // SAFETY: the caller guarantees `dst` is writable for `bytes.len()` bytes and disjoint
        // from `bytes`; a byte copy has no alignment requirement.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
    }
}

/// Reads `count` native-endian `i64` values from `src`; `None` when `count` is so large that the
/// byte count overflows or cannot be allocated.
///
/// # Safety
///
/// As [`read_bytes`] with `len = count * 8`.
pub(crate) unsafe fn read_i64s(src: *const i64, count: usize) -> Option<Vec<i64>> {
    let len = count.checked_mul(8)?;
    // SAFETY: forwarded from this function's contract.
    let bytes = unsafe { read_bytes(src.cast::<u8>(), len) }.ok()?;
    Some(
        bytes
            .chunks_exact(8)
            .map(|c| i64::from_ne_bytes(c.try_into().unwrap_or([0; 8])))
            .collect(),
    )
}

/// Stores `value` at `dst` (an out-parameter such as `uint64_t *workspaceSize` or
/// `aclOpExecutor **executor`). A null `dst` writes nothing.
///
/// # Safety
///
/// A non-null `dst` must be valid for a write of one `T` (alignment is not required).
pub(crate) unsafe fn write_value<T: Copy>(dst: *mut T, value: T) {
    if !dst.is_null() {
        // SAFETY: the caller guarantees a non-null `dst` is writable for one `T`;
        // `write_unaligned` has no alignment requirement and `T: Copy` has no drop to skip.
        unsafe { dst.write_unaligned(value) };
    }
}

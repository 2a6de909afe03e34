//! Dtype and shape checks on operands, shared by the evaluators. Each returns the precise
//! [`EvalError`] naming the operand.

use super::error::EvalError;
use crate::tensor::{DType, Tensor};

/// Requires `t.dtype()` to be one of `allowed`; `expected` describes them in words.
pub(crate) fn dtype(
    operand: &'static str,
    t: &Tensor,
    allowed: &[DType],
    expected: &'static str,
) -> Result<(), EvalError> {
    if allowed.contains(&t.dtype()) {
        Ok(())
    } else {
        Err(EvalError::DType {
            operand,
            expected,
            actual: t.dtype(),
        })
    }
}

/// Requires `t` to have `rank` dimensions and returns them.
pub(crate) fn rank<'t>(
    operand: &'static str,
    t: &'t Tensor,
    rank: usize,
    dims: &'static str,
) -> Result<&'t [usize], EvalError> {
    if t.rank() == rank {
        Ok(t.shape())
    } else {
        Err(EvalError::Rank {
            operand,
            dims,
            rank,
            actual: t.shape().to_vec(),
        })
    }
}

/// Requires `t` to have exactly `expected` as its shape.
pub(crate) fn shape(
    operand: &'static str,
    t: &Tensor,
    expected: &[usize],
    dims: &'static str,
) -> Result<(), EvalError> {
    if t.shape() == expected {
        Ok(())
    } else {
        Err(EvalError::Shape {
            operand,
            dims,
            expected: expected.to_vec(),
            actual: t.shape().to_vec(),
        })
    }
}

/// Requires `t` to have dtype f32 and shape `expected`, and returns its values.
pub(crate) fn f32_values<'t>(
    operand: &'static str,
    t: &'t Tensor,
    expected: &[usize],
    dims: &'static str,
) -> Result<&'t [f32], EvalError> {
    shape(operand, t, expected, dims)?;
    t.as_f32().ok_or(EvalError::DType {
        operand,
        expected: "f32",
        actual: t.dtype(),
    })
}

/// The first `len` elements of an `i32` or `i64` index tensor widened to i64 (the elements
/// past `len` are not read). `len` larger than the tensor yields all its elements.
pub(crate) fn index_prefix(operand: &'static str, t: &Tensor, len: usize) -> Result<Vec<i64>, EvalError> {
    if let Some(v) = t.as_i64() {
        Ok(v.iter().take(len).copied().collect())
    } else if let Some(v) = t.as_i32() {
        Ok(v.iter().take(len).map(|&x| i64::from(x)).collect())
    } else {
        Err(EvalError::DType {
            operand,
            expected: "i32 or i64",
            actual: t.dtype(),
        })
    }
}

/// An empty vector with room for `len` elements, or an error instead of an abort when `len` is
/// beyond what can be allocated (shapes with a zero dimension can name huge sizes without data).
pub(crate) fn with_capacity<T>(len: usize, what: &'static str) -> Result<Vec<T>, EvalError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| EvalError::Allocation { what, elements: len })?;
    Ok(v)
}

/// A vector of `len` copies of `zero`, allocated as [`with_capacity`] does.
pub(crate) fn zeroed<T: Clone>(len: usize, zero: T, what: &'static str) -> Result<Vec<T>, EvalError> {
    let mut v = with_capacity(len, what)?;
    v.resize(len, zero);
    Ok(v)
}

/// Product of dimensions, as an error naming `what` on overflow.
pub(crate) fn product(dims: &[usize], what: &'static str) -> Result<usize, EvalError> {
    crate::tensor::checked_num_elements(dims).ok_or(EvalError::SizeOverflow { what })
}

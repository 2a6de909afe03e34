//! Concrete tensors: the values the reference semantics, the `.npy` reader and the case loader
//! exchange.
//!
//! A [`Tensor`] is a dense, row-major (C order) array. Its invariants are checked by every
//! constructor: the buffer's storage kind matches the dtype, the element count equals the product
//! of the shape, and `i4` values lie in `[-8, 7]`. Nothing in this module panics on bad input.

use std::fmt;

use half::{bf16, f16};
use thiserror::Error;

/// Element type of a [`Tensor`]. `Display` prints the MLIR element type name (`i4`, `bf16`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// Signed 4-bit integer, stored one value per `i8` in `[-8, 7]`.
    I4,
    /// Signed 8-bit integer.
    I8,
    /// Signed 32-bit integer.
    I32,
    /// Signed 64-bit integer.
    I64,
    /// IEEE half precision.
    F16,
    /// bfloat16 (the upper half of an f32).
    BF16,
    /// IEEE single precision.
    F32,
}

impl DType {
    /// The MLIR element type name of this dtype.
    pub fn mlir_name(self) -> &'static str {
        match self {
            DType::I4 => "i4",
            DType::I8 => "i8",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F32 => "f32",
        }
    }

    /// True for `f16`, `bf16` and `f32`.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::BF16 | DType::F32)
    }

    /// The storage kind a buffer of this dtype must have.
    pub fn storage(self) -> StorageKind {
        match self {
            DType::I4 | DType::I8 => StorageKind::I8,
            DType::I32 => StorageKind::I32,
            DType::I64 => StorageKind::I64,
            DType::F16 => StorageKind::F16,
            DType::BF16 => StorageKind::BF16,
            DType::F32 => StorageKind::F32,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mlir_name())
    }
}

/// The Rust element type a [`Buffer`] holds (`I4` and `I8` share `i8` storage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StorageKind {
    /// `Vec<i8>`.
    I8,
    /// `Vec<i32>`.
    I32,
    /// `Vec<i64>`.
    I64,
    /// `Vec<half::f16>`.
    F16,
    /// `Vec<half::bf16>`.
    BF16,
    /// `Vec<f32>`.
    F32,
}

impl fmt::Display for StorageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StorageKind::I8 => "i8",
            StorageKind::I32 => "i32",
            StorageKind::I64 => "i64",
            StorageKind::F16 => "f16",
            StorageKind::BF16 => "bf16",
            StorageKind::F32 => "f32",
        })
    }
}

/// The element storage of a [`Tensor`], one variant per storage kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Buffer {
    /// Storage of `i8` and `i4` tensors.
    I8(Vec<i8>),
    /// Storage of `i32` tensors.
    I32(Vec<i32>),
    /// Storage of `i64` tensors.
    I64(Vec<i64>),
    /// Storage of `f16` tensors.
    F16(Vec<f16>),
    /// Storage of `bf16` tensors.
    BF16(Vec<bf16>),
    /// Storage of `f32` tensors.
    F32(Vec<f32>),
}

impl Buffer {
    /// Number of stored elements.
    pub fn len(&self) -> usize {
        match self {
            Buffer::I8(v) => v.len(),
            Buffer::I32(v) => v.len(),
            Buffer::I64(v) => v.len(),
            Buffer::F16(v) => v.len(),
            Buffer::BF16(v) => v.len(),
            Buffer::F32(v) => v.len(),
        }
    }

    /// True when the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The storage kind of this buffer.
    pub fn kind(&self) -> StorageKind {
        match self {
            Buffer::I8(_) => StorageKind::I8,
            Buffer::I32(_) => StorageKind::I32,
            Buffer::I64(_) => StorageKind::I64,
            Buffer::F16(_) => StorageKind::F16,
            Buffer::BF16(_) => StorageKind::BF16,
            Buffer::F32(_) => StorageKind::F32,
        }
    }

    /// A zero-filled buffer of `len` elements of the given kind.
    pub fn zeros(kind: StorageKind, len: usize) -> Buffer {
        match kind {
            StorageKind::I8 => Buffer::I8(vec![0; len]),
            StorageKind::I32 => Buffer::I32(vec![0; len]),
            StorageKind::I64 => Buffer::I64(vec![0; len]),
            StorageKind::F16 => Buffer::F16(vec![f16::ZERO; len]),
            StorageKind::BF16 => Buffer::BF16(vec![bf16::ZERO; len]),
            StorageKind::F32 => Buffer::F32(vec![0.0; len]),
        }
    }

    /// A new buffer whose element `i` is `self[indices[i]]`, or zero where `indices[i]` is `None`.
    ///
    /// Every index is checked; an index past the end is an error, not a panic.
    pub fn gather(&self, indices: &[Option<usize>]) -> Result<Buffer, TensorError> {
        fn pick<T: Copy>(src: &[T], indices: &[Option<usize>], zero: T) -> Result<Vec<T>, TensorError> {
            indices
                .iter()
                .map(|ix| match ix {
                    None => Ok(zero),
                    Some(i) => src.get(*i).copied().ok_or(TensorError::GatherOutOfRange {
                        index: *i,
                        len: src.len(),
                    }),
                })
                .collect()
        }
        Ok(match self {
            Buffer::I8(v) => Buffer::I8(pick(v, indices, 0)?),
            Buffer::I32(v) => Buffer::I32(pick(v, indices, 0)?),
            Buffer::I64(v) => Buffer::I64(pick(v, indices, 0)?),
            Buffer::F16(v) => Buffer::F16(pick(v, indices, f16::ZERO)?),
            Buffer::BF16(v) => Buffer::BF16(pick(v, indices, bf16::ZERO)?),
            Buffer::F32(v) => Buffer::F32(pick(v, indices, 0.0)?),
        })
    }
}

/// Why a [`Tensor`] could not be built.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum TensorError {
    /// The product of the shape overflows `usize`.
    #[error("shape {shape:?} has more elements than fit in usize")]
    ShapeOverflow {
        /// The offending shape.
        shape: Vec<usize>,
    },
    /// The buffer's element count differs from the product of the shape.
    #[error("shape {shape:?} needs {expected} elements but the buffer holds {actual}")]
    ElementCount {
        /// The requested shape.
        shape: Vec<usize>,
        /// Product of the shape.
        expected: usize,
        /// Length of the buffer.
        actual: usize,
    },
    /// The buffer's storage kind cannot hold the dtype.
    #[error("dtype {dtype} needs {expected} storage but the buffer holds {actual}")]
    StorageMismatch {
        /// The requested dtype.
        dtype: DType,
        /// The storage kind the dtype needs.
        expected: StorageKind,
        /// The storage kind supplied.
        actual: StorageKind,
    },
    /// An `i4` element is outside `[-8, 7]`.
    #[error("i4 element {index} is {value}, outside [-8, 7]")]
    I4OutOfRange {
        /// Flat index of the element.
        index: usize,
        /// Its value.
        value: i8,
    },
    /// A gather index is past the end of the source buffer.
    #[error("gather index {index} is outside a buffer of {len} elements")]
    GatherOutOfRange {
        /// The offending index.
        index: usize,
        /// Length of the source buffer.
        len: usize,
    },
}

/// Product of `shape`, or `None` on overflow.
pub fn checked_num_elements(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// A dense row-major tensor. Fields are private so that every value satisfies the invariants
/// listed in the module documentation.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    data: Buffer,
}

impl Tensor {
    /// Builds a tensor, checking storage kind, element count and (for `i4`) the value range.
    pub fn new(dtype: DType, shape: Vec<usize>, data: Buffer) -> Result<Tensor, TensorError> {
        if dtype.storage() != data.kind() {
            return Err(TensorError::StorageMismatch {
                dtype,
                expected: dtype.storage(),
                actual: data.kind(),
            });
        }
        let expected =
            checked_num_elements(&shape).ok_or_else(|| TensorError::ShapeOverflow { shape: shape.clone() })?;
        if expected != data.len() {
            return Err(TensorError::ElementCount {
                shape,
                expected,
                actual: data.len(),
            });
        }
        if let (DType::I4, Buffer::I8(v)) = (dtype, &data)
            && let Some((index, &value)) = v.iter().enumerate().find(|(_, x)| !(-8..=7).contains(*x))
        {
            return Err(TensorError::I4OutOfRange { index, value });
        }
        Ok(Tensor { dtype, shape, data })
    }

    /// A zero-filled tensor.
    pub fn zeros(dtype: DType, shape: Vec<usize>) -> Result<Tensor, TensorError> {
        let len = checked_num_elements(&shape).ok_or_else(|| TensorError::ShapeOverflow { shape: shape.clone() })?;
        Tensor::new(dtype, shape, Buffer::zeros(dtype.storage(), len))
    }

    /// An `i4` tensor from values that must lie in `[-8, 7]`.
    pub fn from_i4(shape: Vec<usize>, data: Vec<i8>) -> Result<Tensor, TensorError> {
        Tensor::new(DType::I4, shape, Buffer::I8(data))
    }

    /// An `i8` tensor.
    pub fn from_i8(shape: Vec<usize>, data: Vec<i8>) -> Result<Tensor, TensorError> {
        Tensor::new(DType::I8, shape, Buffer::I8(data))
    }

    /// An `i32` tensor.
    pub fn from_i32(shape: Vec<usize>, data: Vec<i32>) -> Result<Tensor, TensorError> {
        Tensor::new(DType::I32, shape, Buffer::I32(data))
    }

    /// An `i64` tensor.
    pub fn from_i64(shape: Vec<usize>, data: Vec<i64>) -> Result<Tensor, TensorError> {
        Tensor::new(DType::I64, shape, Buffer::I64(data))
    }

    /// An `f16` tensor.
    pub fn from_f16(shape: Vec<usize>, data: Vec<f16>) -> Result<Tensor, TensorError> {
        Tensor::new(DType::F16, shape, Buffer::F16(data))
    }

    /// A `bf16` tensor.
    pub fn from_bf16(shape: Vec<usize>, data: Vec<bf16>) -> Result<Tensor, TensorError> {
        Tensor::new(DType::BF16, shape, Buffer::BF16(data))
    }

    /// An `f32` tensor.
    pub fn from_f32(shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor, TensorError> {
        Tensor::new(DType::F32, shape, Buffer::F32(data))
    }

    /// A float tensor of `dtype` (`f32`, `f16` or `bf16`) from f32 values, rounding each to
    /// nearest-even once. Integer dtypes are rejected with [`TensorError::StorageMismatch`].
    pub fn from_f32_rounded(dtype: DType, shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor, TensorError> {
        let buffer = match dtype {
            DType::F32 => Buffer::F32(data),
            DType::F16 => Buffer::F16(data.into_iter().map(f16::from_f32).collect()),
            DType::BF16 => Buffer::BF16(data.into_iter().map(bf16::from_f32).collect()),
            _ => {
                return Err(TensorError::StorageMismatch {
                    dtype,
                    expected: dtype.storage(),
                    actual: StorageKind::F32,
                });
            }
        };
        Tensor::new(dtype, shape, buffer)
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The element storage.
    pub fn buffer(&self) -> &Buffer {
        &self.data
    }

    /// Splits the tensor into dtype, shape and storage.
    pub fn into_parts(self) -> (DType, Vec<usize>, Buffer) {
        (self.dtype, self.shape, self.data)
    }

    /// Number of elements (product of the shape).
    pub fn num_elements(&self) -> usize {
        self.data.len()
    }

    /// The `i8` storage of an `i8` or `i4` tensor.
    pub fn as_i8(&self) -> Option<&[i8]> {
        match &self.data {
            Buffer::I8(v) => Some(v),
            _ => None,
        }
    }

    /// The `i32` storage of an `i32` tensor.
    pub fn as_i32(&self) -> Option<&[i32]> {
        match &self.data {
            Buffer::I32(v) => Some(v),
            _ => None,
        }
    }

    /// The `i64` storage of an `i64` tensor.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            Buffer::I64(v) => Some(v),
            _ => None,
        }
    }

    /// The storage of an `f16` tensor.
    pub fn as_f16(&self) -> Option<&[f16]> {
        match &self.data {
            Buffer::F16(v) => Some(v),
            _ => None,
        }
    }

    /// The storage of a `bf16` tensor.
    pub fn as_bf16(&self) -> Option<&[bf16]> {
        match &self.data {
            Buffer::BF16(v) => Some(v),
            _ => None,
        }
    }

    /// The storage of an `f32` tensor.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            Buffer::F32(v) => Some(v),
            _ => None,
        }
    }

    /// Every element converted to f32 (exact for floats and small integers; `i32`/`i64`
    /// values beyond 2^24 round to nearest, as an `as f32` cast does).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match &self.data {
            Buffer::I8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            Buffer::I32(v) => v.iter().map(|&x| x as f32).collect(),
            Buffer::I64(v) => v.iter().map(|&x| x as f32).collect(),
            Buffer::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            Buffer::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
            Buffer::F32(v) => v.clone(),
        }
    }

    /// Every element converted to f64 (exact except `i64` values beyond 2^53).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match &self.data {
            Buffer::I8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Buffer::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Buffer::I64(v) => v.iter().map(|&x| x as f64).collect(),
            Buffer::F16(v) => v.iter().map(|x| x.to_f64()).collect(),
            Buffer::BF16(v) => v.iter().map(|x| x.to_f64()).collect(),
            Buffer::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        }
    }

    /// The same elements under another shape with the same element count.
    pub fn reshape(self, shape: Vec<usize>) -> Result<Tensor, TensorError> {
        Tensor::new(self.dtype, shape, self.data)
    }
}

/// Formats a shape the way MLIR prints a tensor type's dimensions: `8x256`.
pub fn format_shape(shape: &[usize]) -> String {
    shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")
}

impl fmt::Display for Tensor {
    /// Prints the MLIR tensor type of this value, e.g. `tensor<8x256xf32>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.shape.is_empty() {
            write!(f, "tensor<{}>", self.dtype)
        } else {
            write!(f, "tensor<{}x{}>", format_shape(&self.shape), self.dtype)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Display uses the MLIR element type names.
    #[test]
    fn dtype_display_is_mlir_name() {
        let names: Vec<String> = [
            DType::I4,
            DType::I8,
            DType::I32,
            DType::I64,
            DType::F16,
            DType::BF16,
            DType::F32,
        ]
        .iter()
        .map(|d| d.to_string())
        .collect();
        assert_eq!(names, ["i4", "i8", "i32", "i64", "f16", "bf16", "f32"]);
    }

    // Constructors reject a wrong element count, a wrong storage kind and out-of-range i4.
    #[test]
    fn constructors_check_invariants() {
        assert!(matches!(
            Tensor::from_f32(vec![2, 3], vec![0.0; 5]),
            Err(TensorError::ElementCount {
                expected: 6,
                actual: 5,
                ..
            })
        ));
        assert!(matches!(
            Tensor::new(DType::I32, vec![1], Buffer::I64(vec![1])),
            Err(TensorError::StorageMismatch { .. })
        ));
        assert_eq!(
            Tensor::from_i4(vec![3], vec![-8, 7, 8]),
            Err(TensorError::I4OutOfRange { index: 2, value: 8 })
        );
        assert!(matches!(
            Tensor::zeros(DType::F32, vec![usize::MAX, 2]),
            Err(TensorError::ShapeOverflow { .. })
        ));
        let t = Tensor::from_i4(vec![2], vec![-8, 7]).unwrap();
        assert_eq!(t.as_i8(), Some(&[-8i8, 7][..]));
        assert_eq!(t.as_f32(), None);
        assert_eq!(t.to_string(), "tensor<2xi4>");
    }

    // gather copies selected elements, writes zero for None, and rejects out-of-range indices.
    #[test]
    fn gather_selects_and_checks() {
        let b = Buffer::I32(vec![10, 20, 30]);
        assert_eq!(b.gather(&[Some(2), None, Some(0)]), Ok(Buffer::I32(vec![30, 0, 10])));
        assert_eq!(
            b.gather(&[Some(3)]),
            Err(TensorError::GatherOutOfRange { index: 3, len: 3 })
        );
    }

    // from_f32_rounded rounds once to the target float type and rejects integer dtypes.
    #[test]
    fn rounded_constructor() {
        let t = Tensor::from_f32_rounded(DType::BF16, vec![1], vec![1.0 + 1.0 / 512.0]).unwrap();
        assert_eq!(t.to_f32_vec(), vec![1.0]);
        assert!(Tensor::from_f32_rounded(DType::I8, vec![1], vec![1.0]).is_err());
    }
}

//! Runtime values: scalars of every element type the interpreter knows, and dense row-major
//! tensors of them.
//!
//! Integers are kept as `i64` in canonical form: the value wrapped to the type's width and
//! sign-extended (so `i1` true is -1, as MLIR's signed view of it). `index` is 64 bits wide, the
//! width MLIR's own constant folding uses. Elements of a `tensor.empty` that were never written
//! are [`Scalar::Uninit`]; reading one into arithmetic, an `npu` op or a function result is an
//! error, because MLIR leaves their contents unspecified.

use super::error::Fault;
use crate::tensor::{Buffer, DType, Tensor, checked_num_elements};
use half::{bf16, f16};
use std::fmt;
use std::rc::Rc;

/// The largest number of elements the interpreter allocates for one tensor (1 GiB of scalars).
/// Larger sizes, which only a pathological dynamic size produces, are refused.
pub const MAX_ELEMENTS: usize = 1 << 26;

/// A signless integer type, or `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntType {
    /// `i1`.
    I1,
    /// `i4`.
    I4,
    /// `i8`.
    I8,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `index`, 64 bits wide here.
    Index,
}

impl IntType {
    /// Width in bits.
    pub fn bits(self) -> u32 {
        match self {
            IntType::I1 => 1,
            IntType::I4 => 4,
            IntType::I8 => 8,
            IntType::I32 => 32,
            IntType::I64 | IntType::Index => 64,
        }
    }

    /// `value` wrapped to this width (two's complement) and sign-extended.
    pub fn wrap(self, value: i128) -> i64 {
        let shift = 128 - self.bits();
        // Truncation to i64 is exact: the shifted value fits in `bits` <= 64 signed bits.
        ((value << shift) >> shift) as i64
    }

    /// Whether `value` is representable as a signed integer of this width.
    pub fn fits_signed(self, value: i128) -> bool {
        i128::from(self.wrap(value)) == value
    }

    /// The unsigned reading of a canonical value.
    pub fn unsigned(self, value: i64) -> u64 {
        match self.bits() {
            64 => value as u64,
            bits => (value as u64) & ((1u64 << bits) - 1),
        }
    }

    /// Whether `value` is representable as an unsigned integer of this width.
    pub fn fits_unsigned(self, value: i128) -> bool {
        value >= 0 && value < (1i128 << self.bits())
    }
}

/// An element (or scalar) type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElemType {
    /// A signless integer or `index`.
    Int(IntType),
    /// `f16`.
    F16,
    /// `bf16`.
    BF16,
    /// `f32`.
    F32,
}

impl ElemType {
    /// Reads an MLIR type as printed (`i32`, `index`, `bf16`, ...); `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "i1" => ElemType::Int(IntType::I1),
            "i4" => ElemType::Int(IntType::I4),
            "i8" => ElemType::Int(IntType::I8),
            "i32" => ElemType::Int(IntType::I32),
            "i64" => ElemType::Int(IntType::I64),
            "index" => ElemType::Int(IntType::Index),
            "f16" => ElemType::F16,
            "bf16" => ElemType::BF16,
            "f32" => ElemType::F32,
            _ => return None,
        })
    }

    /// The element type of a [`Tensor`] dtype.
    pub fn of_dtype(dtype: DType) -> Self {
        match dtype {
            DType::I4 => ElemType::Int(IntType::I4),
            DType::I8 => ElemType::Int(IntType::I8),
            DType::I32 => ElemType::Int(IntType::I32),
            DType::I64 => ElemType::Int(IntType::I64),
            DType::F16 => ElemType::F16,
            DType::BF16 => ElemType::BF16,
            DType::F32 => ElemType::F32,
        }
    }

    /// The [`Tensor`] dtype of this element type; `None` for `i1` and `index`.
    pub fn dtype(self) -> Option<DType> {
        match self {
            ElemType::Int(IntType::I4) => Some(DType::I4),
            ElemType::Int(IntType::I8) => Some(DType::I8),
            ElemType::Int(IntType::I32) => Some(DType::I32),
            ElemType::Int(IntType::I64) => Some(DType::I64),
            ElemType::Int(IntType::I1 | IntType::Index) => None,
            ElemType::F16 => Some(DType::F16),
            ElemType::BF16 => Some(DType::BF16),
            ElemType::F32 => Some(DType::F32),
        }
    }

    /// The MLIR spelling.
    pub fn name(self) -> &'static str {
        match self {
            ElemType::Int(IntType::I1) => "i1",
            ElemType::Int(IntType::I4) => "i4",
            ElemType::Int(IntType::I8) => "i8",
            ElemType::Int(IntType::I32) => "i32",
            ElemType::Int(IntType::I64) => "i64",
            ElemType::Int(IntType::Index) => "index",
            ElemType::F16 => "f16",
            ElemType::BF16 => "bf16",
            ElemType::F32 => "f32",
        }
    }
}

impl fmt::Display for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One element: a typed value, or an element of `tensor.empty` never written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    /// An integer in canonical form (wrapped to the width and sign-extended).
    Int(IntType, i64),
    /// An `f16`.
    F16(f16),
    /// A `bf16`.
    BF16(bf16),
    /// An `f32`.
    F32(f32),
    /// An unspecified element of the given type.
    Uninit(ElemType),
}

impl Scalar {
    /// An integer of type `ty`, wrapped to its width.
    pub fn int(ty: IntType, value: i128) -> Self {
        Scalar::Int(ty, ty.wrap(value))
    }

    /// An `i1`.
    pub fn bool(value: bool) -> Self {
        Scalar::Int(IntType::I1, if value { -1 } else { 0 })
    }

    /// An `index`.
    pub fn index(value: i64) -> Self {
        Scalar::Int(IntType::Index, value)
    }

    /// The type of this element.
    pub fn elem(&self) -> ElemType {
        match self {
            Scalar::Int(ty, _) => ElemType::Int(*ty),
            Scalar::F16(_) => ElemType::F16,
            Scalar::BF16(_) => ElemType::BF16,
            Scalar::F32(_) => ElemType::F32,
            Scalar::Uninit(elem) => *elem,
        }
    }

    /// Fails on an unspecified element.
    pub fn defined(self) -> Result<Self, Fault> {
        match self {
            Scalar::Uninit(elem) => Err(Fault::Uninitialized { elem }),
            other => Ok(other),
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Int(IntType::I1, v) => write!(f, "{} : i1", *v != 0),
            Scalar::Int(ty, v) => write!(f, "{v} : {}", ElemType::Int(*ty)),
            Scalar::F16(v) => write!(f, "{v} : f16"),
            Scalar::BF16(v) => write!(f, "{v} : bf16"),
            Scalar::F32(v) => write!(f, "{v} : f32"),
            Scalar::Uninit(elem) => write!(f, "<uninitialized> : {elem}"),
        }
    }
}

/// Row-major strides of a shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        // Saturates only for shapes with a zero dim (no element is ever addressed then).
        strides[i] = strides[i + 1].saturating_mul(shape[i + 1]);
    }
    strides
}

/// The element count of `shape`, refused above [`MAX_ELEMENTS`].
pub fn element_count(shape: &[usize]) -> Result<usize, Fault> {
    match checked_num_elements(shape) {
        Some(n) if n <= MAX_ELEMENTS => Ok(n),
        _ => Err(Fault::TooLarge {
            shape: shape.to_vec(),
            limit: MAX_ELEMENTS,
        }),
    }
}

/// Formats a tensor type, `tensor<2x3xf32>`.
pub fn tensor_type_name(elem: ElemType, shape: &[usize]) -> String {
    let dims: String = shape.iter().map(|d| format!("{d}x")).collect();
    format!("tensor<{dims}{elem}>")
}

/// A dense row-major tensor. Invariant: `data.len()` is the product of `shape` and every
/// element has type `elem`.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorValue {
    elem: ElemType,
    shape: Vec<usize>,
    data: Vec<Scalar>,
}

impl TensorValue {
    /// Builds a tensor, checking the invariant.
    pub fn new(elem: ElemType, shape: Vec<usize>, data: Vec<Scalar>) -> Result<Self, Fault> {
        let count = element_count(&shape)?;
        if count != data.len() {
            return Err(Fault::Internal(format!(
                "{} needs {count} elements, got {}",
                tensor_type_name(elem, &shape),
                data.len()
            )));
        }
        if let Some(bad) = data.iter().find(|s| s.elem() != elem) {
            return Err(Fault::Internal(format!("element {bad} in a tensor of {elem}")));
        }
        Ok(Self { elem, shape, data })
    }

    /// A tensor with every element equal to `value`.
    pub fn filled(shape: Vec<usize>, value: Scalar) -> Result<Self, Fault> {
        let count = element_count(&shape)?;
        Ok(Self {
            elem: value.elem(),
            shape,
            data: vec![value; count],
        })
    }

    /// The same elements under another shape with the same element count.
    pub fn reshaped(self, shape: Vec<usize>) -> Result<Self, Fault> {
        if checked_num_elements(&shape) != Some(self.data.len()) {
            return Err(Fault::Shape {
                what: "reshaped result".into(),
                expected: format!("{} elements", self.data.len()),
                actual: format!("{shape:?}"),
            });
        }
        Ok(Self {
            elem: self.elem,
            shape,
            data: self.data,
        })
    }

    /// Element type.
    pub fn elem(&self) -> ElemType {
        self.elem
    }

    /// Dims, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Elements in row-major order.
    pub fn data(&self) -> &[Scalar] {
        &self.data
    }

    /// Mutable elements in row-major order (the type invariant is the caller's to keep).
    pub fn data_mut(&mut self) -> &mut [Scalar] {
        &mut self.data
    }

    /// The MLIR type of this value.
    pub fn type_name(&self) -> String {
        tensor_type_name(self.elem, &self.shape)
    }

    /// The flat offset of a multi-index, or `None` when it is out of range.
    pub fn offset_of(&self, index: &[usize]) -> Option<usize> {
        if index.len() != self.shape.len() || index.iter().zip(&self.shape).any(|(&i, &d)| i >= d) {
            return None;
        }
        // In range everywhere: every dim is >= 1, so the offset is below the element count.
        Some(index.iter().zip(&self.shape).fold(0, |offset, (&i, &d)| offset * d + i))
    }

    /// Converts a [`Tensor`]; every dtype has an element type.
    pub fn from_tensor(tensor: &Tensor) -> Self {
        let data: Vec<Scalar> = match tensor.buffer() {
            Buffer::I8(v) => {
                let ty = if tensor.dtype() == DType::I4 {
                    IntType::I4
                } else {
                    IntType::I8
                };
                v.iter().map(|&x| Scalar::Int(ty, i64::from(x))).collect()
            }
            Buffer::I32(v) => v.iter().map(|&x| Scalar::Int(IntType::I32, i64::from(x))).collect(),
            Buffer::I64(v) => v.iter().map(|&x| Scalar::Int(IntType::I64, x)).collect(),
            Buffer::F16(v) => v.iter().map(|&x| Scalar::F16(x)).collect(),
            Buffer::BF16(v) => v.iter().map(|&x| Scalar::BF16(x)).collect(),
            Buffer::F32(v) => v.iter().map(|&x| Scalar::F32(x)).collect(),
        };
        Self {
            elem: ElemType::of_dtype(tensor.dtype()),
            shape: tensor.shape().to_vec(),
            data,
        }
    }

    /// Converts to a [`Tensor`]. Fails for `i1` and `index` elements (no dtype) and for
    /// unspecified elements.
    pub fn to_tensor(&self) -> Result<Tensor, Fault> {
        let dtype = self.elem.dtype().ok_or(Fault::NoDType { elem: self.elem })?;
        if let Some(position) = self.data.iter().position(|s| matches!(s, Scalar::Uninit(_))) {
            return Err(Fault::UninitializedElement {
                index: unravel(position, &self.shape),
                r#type: self.type_name(),
            });
        }
        let ints = || -> Vec<i64> {
            self.data
                .iter()
                .map(|s| match s {
                    Scalar::Int(_, v) => *v,
                    _ => 0,
                })
                .collect()
        };
        // Canonical values of an n-bit type fit in the n-bit storage, so the casts are exact.
        let buffer = match dtype {
            DType::I4 | DType::I8 => Buffer::I8(ints().into_iter().map(|v| v as i8).collect()),
            DType::I32 => Buffer::I32(ints().into_iter().map(|v| v as i32).collect()),
            DType::I64 => Buffer::I64(ints()),
            DType::F16 => Buffer::F16(
                self.data
                    .iter()
                    .map(|s| match s {
                        Scalar::F16(v) => *v,
                        _ => f16::ZERO,
                    })
                    .collect(),
            ),
            DType::BF16 => Buffer::BF16(
                self.data
                    .iter()
                    .map(|s| match s {
                        Scalar::BF16(v) => *v,
                        _ => bf16::ZERO,
                    })
                    .collect(),
            ),
            DType::F32 => Buffer::F32(
                self.data
                    .iter()
                    .map(|s| match s {
                        Scalar::F32(v) => *v,
                        _ => 0.0,
                    })
                    .collect(),
            ),
        };
        Tensor::new(dtype, self.shape.clone(), buffer).map_err(|e| Fault::Internal(e.to_string()))
    }
}

/// The multi-index of a flat row-major offset.
pub fn unravel(mut offset: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (i, &d) in shape.iter().enumerate().rev() {
        if d > 0 {
            index[i] = offset % d;
            offset /= d;
        }
    }
    index
}

/// A value of the interpreter: a scalar (inside `linalg.generic` bodies, or an `index`) or a
/// tensor.
/// Cloning is cheap: tensors are shared.
#[derive(Clone, Debug, PartialEq)]
pub enum RtValue {
    /// A scalar.
    Scalar(Scalar),
    /// A tensor.
    Tensor(Rc<TensorValue>),
}

impl RtValue {
    /// Wraps a tensor.
    pub fn tensor(tensor: TensorValue) -> Self {
        RtValue::Tensor(Rc::new(tensor))
    }

    /// The MLIR type, for messages.
    pub fn type_name(&self) -> String {
        match self {
            RtValue::Scalar(s) => s.elem().to_string(),
            RtValue::Tensor(t) => t.type_name(),
        }
    }
}

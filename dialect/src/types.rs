//! Reading builtin tensor types into plain Rust facts (element type and dims).

use melior::ir::{
    Type,
    r#type::{DimSize, RankedTensorType, ShapedTypeLike},
};
use std::fmt;

/// Element types the `npu` ops use. Anything else is kept by name for messages.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Elem {
    /// `i4` (signless), the A8W4 weight.
    I4,
    /// `i8` (signless).
    I8,
    /// `i32` (signless).
    I32,
    /// `i64` (signless).
    I64,
    /// `f16`.
    F16,
    /// `bf16`.
    BF16,
    /// `f32`.
    F32,
    /// Any other type, as MLIR prints it.
    Other(String),
}

impl Elem {
    /// Classifies an MLIR element type.
    pub fn of(element: Type<'_>) -> Self {
        match element.to_string().as_str() {
            "i4" => Elem::I4,
            "i8" => Elem::I8,
            "i32" => Elem::I32,
            "i64" => Elem::I64,
            "f16" => Elem::F16,
            "bf16" => Elem::BF16,
            "f32" => Elem::F32,
            other => Elem::Other(other.to_string()),
        }
    }

    /// Whether this is one of the float types a non-quantized op computes in.
    pub fn is_float(&self) -> bool {
        matches!(self, Elem::F16 | Elem::BF16 | Elem::F32)
    }
}

impl fmt::Display for Elem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Elem::I4 => "i4",
            Elem::I8 => "i8",
            Elem::I32 => "i32",
            Elem::I64 => "i64",
            Elem::F16 => "f16",
            Elem::BF16 => "bf16",
            Elem::F32 => "f32",
            Elem::Other(name) => name,
        })
    }
}

/// A ranked tensor type: element type and dims (`None` for a dynamic dim).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Element type.
    pub elem: Elem,
    /// Dims, outermost first; `None` is `?`.
    pub dims: Vec<Option<u64>>,
    /// The type as MLIR prints it, for messages.
    pub text: String,
}

impl TensorInfo {
    /// Reads a type; `None` unless it is a ranked tensor.
    pub fn of(r#type: Type<'_>) -> Option<Self> {
        let tensor = RankedTensorType::try_from(r#type).ok()?;
        let dims = (0..tensor.rank())
            .map(|index| match tensor.dim_size(index) {
                Ok(DimSize::Static(size)) => Some(size),
                _ => None,
            })
            .collect();
        Some(Self {
            elem: Elem::of(tensor.element()),
            dims,
            text: r#type.to_string(),
        })
    }

    /// The rank.
    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    /// A static dim, if the index exists and the dim is static.
    pub fn dim(&self, index: usize) -> Option<u64> {
        self.dims.get(index).copied().flatten()
    }

    /// Whether some static dim is zero.
    pub fn is_empty(&self) -> bool {
        self.dims.contains(&Some(0))
    }
}

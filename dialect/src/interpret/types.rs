//! MLIR types as the interpreter sees them: a scalar element type, a ranked tensor of one, or
//! something it does not handle.

use super::error::Fault;
use super::exec::PtrMap;
use super::value::{ElemType, RtValue};
use melior::ir::{
    Type, TypeLike,
    r#type::{DimSize, RankedTensorType, ShapedTypeLike},
};

/// A decoded MLIR type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeDesc {
    /// A scalar of a known element type.
    Scalar(ElemType),
    /// A ranked tensor without encoding; `None` dims are dynamic.
    Tensor {
        /// Element type.
        elem: ElemType,
        /// Dims, outermost first.
        dims: Vec<Option<usize>>,
    },
    /// Any other type, as MLIR prints it.
    Other(String),
}

impl TypeDesc {
    /// Decodes a type.
    pub fn of(r#type: Type<'_>) -> Self {
        if let Ok(tensor) = RankedTensorType::try_from(r#type) {
            let elem = ElemType::parse(&tensor.element().to_string());
            let dims: Option<Vec<Option<usize>>> = (0..tensor.rank())
                .map(|i| match tensor.dim_size(i) {
                    Ok(DimSize::Static(d)) => usize::try_from(d).ok().map(Some),
                    Ok(DimSize::Dynamic) => Some(None),
                    Err(_) => None,
                })
                .collect();
            return match (elem, dims, tensor.encoding()) {
                (Some(elem), Some(dims), None) => TypeDesc::Tensor { elem, dims },
                _ => TypeDesc::Other(r#type.to_string()),
            };
        }
        match ElemType::parse(&r#type.to_string()) {
            Some(elem) => TypeDesc::Scalar(elem),
            None => TypeDesc::Other(r#type.to_string()),
        }
    }

    /// The type as MLIR prints it.
    pub fn name(&self) -> String {
        match self {
            TypeDesc::Scalar(elem) => elem.to_string(),
            TypeDesc::Tensor { elem, dims } => {
                let dims: String = dims
                    .iter()
                    .map(|d| match d {
                        Some(d) => format!("{d}x"),
                        None => "?x".to_string(),
                    })
                    .collect();
                format!("tensor<{dims}{elem}>")
            }
            TypeDesc::Other(text) => text.clone(),
        }
    }

    /// Whether `shape` matches the static dims of `dims` (dynamic dims match anything).
    pub fn dims_match(dims: &[Option<usize>], shape: &[usize]) -> bool {
        dims.len() == shape.len() && dims.iter().zip(shape).all(|(d, s)| d.is_none_or(|d| d == *s))
    }

    /// Checks that a runtime value has this type.
    pub fn check(&self, value: &RtValue, what: impl FnOnce() -> String) -> Result<(), Fault> {
        let ok = match (self, value) {
            (TypeDesc::Scalar(elem), RtValue::Scalar(s)) => s.elem() == *elem,
            (TypeDesc::Tensor { elem, dims }, RtValue::Tensor(t)) => {
                t.elem() == *elem && Self::dims_match(dims, t.shape())
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Fault::Type {
                what: what(),
                expected: self.name(),
                actual: value.type_name(),
            })
        }
    }
}

/// Decoded types by their (uniqued) MLIR pointer, so that a type met at every point of a
/// `linalg.generic` is decoded once.
#[derive(Default)]
pub struct TypeCache {
    types: PtrMap<TypeDesc>,
}

impl TypeCache {
    /// The decoded form of `r#type`.
    pub fn get(&mut self, r#type: Type<'_>) -> TypeDesc {
        // Types are uniqued in their context: one pointer is one type for the whole run.
        self.types
            .entry(r#type.to_raw().ptr)
            .or_insert_with(|| TypeDesc::of(r#type))
            .clone()
    }
}

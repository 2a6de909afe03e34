//! Named access to the operands and attributes of an `npu` op.

use crate::schema::{self, Arity, OpSchema};
use crate::types::TensorInfo;
use melior::ir::attribute::AttributeLike;
use melior::ir::{
    Attribute, OperationRef, Value, ValueLike,
    attribute::{DenseI32ArrayAttribute, DenseI64ArrayAttribute, FloatAttribute, IntegerAttribute},
    operation::OperationLike,
};

/// An `npu` op with its operands resolved to their declared names.
pub struct NpuOp<'c, 'a> {
    /// The op's schema.
    pub schema: &'static OpSchema,
    /// The op itself.
    pub operation: OperationRef<'c, 'a>,
    operands: Vec<Option<Value<'c, 'a>>>,
}

/// Why an op's operands could not be matched to its declaration. MLIR's own verifier (IRDL)
/// reports these first; this only guards code that runs on unverified IR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    /// `operandSegmentSizes` is missing, malformed, or does not add up.
    #[error("malformed operandSegmentSizes: {0}")]
    Segments(String),
}

impl<'c, 'a> NpuOp<'c, 'a> {
    /// Resolves an op; `Ok(None)` if it is not an `npu` op.
    pub fn new(operation: OperationRef<'c, 'a>) -> Result<Option<Self>, ViewError> {
        let name = operation.name();
        let Some(schema) = name.as_string_ref().as_str().ok().and_then(schema::lookup) else {
            return Ok(None);
        };
        let count = operation.operand_count();
        let sizes: Vec<i32> = if schema.has_segments() {
            let attribute = operation
                .attribute("operandSegmentSizes")
                .map_err(|_| ViewError::Segments("attribute is missing".into()))?;
            let array = DenseI32ArrayAttribute::try_from(attribute)
                .map_err(|_| ViewError::Segments("not a dense i32 array".into()))?;
            (0..array.len()).map(|i| array.element(i).unwrap_or(-1)).collect()
        } else {
            vec![1; schema.operands.len()]
        };
        if sizes.len() != schema.operands.len() {
            return Err(ViewError::Segments(format!(
                "{} segments for {} declared operands",
                sizes.len(),
                schema.operands.len()
            )));
        }
        let mut operands = Vec::with_capacity(sizes.len());
        let mut next = 0usize;
        for (decl, size) in schema.operands.iter().zip(&sizes) {
            let allowed = match decl.arity {
                Arity::Single => *size == 1,
                Arity::Optional => *size == 0 || *size == 1,
            };
            if !allowed {
                return Err(ViewError::Segments(format!(
                    "operand '{}' has segment size {size}",
                    decl.name
                )));
            }
            if *size == 1 {
                let value = operation
                    .operand(next)
                    .map_err(|_| ViewError::Segments(format!("segments cover more than the {count} operands")))?;
                operands.push(Some(value));
                next += 1;
            } else {
                operands.push(None);
            }
        }
        if next != count {
            return Err(ViewError::Segments(format!(
                "segments cover {next} of {count} operands"
            )));
        }
        Ok(Some(Self {
            schema,
            operation,
            operands,
        }))
    }

    /// The op name, `npu.<name>`.
    pub fn name(&self) -> &'static str {
        self.schema.name
    }

    /// An operand by its declared name; `None` if absent (or not declared).
    pub fn operand(&self, name: &str) -> Option<Value<'c, 'a>> {
        self.schema.operand_index(name).and_then(|i| self.operands[i])
    }

    /// The tensor type of an operand, if present and a ranked tensor.
    pub fn operand_info(&self, name: &str) -> Option<TensorInfo> {
        self.operand(name).and_then(|v| TensorInfo::of(v.r#type()))
    }

    /// The tensor type of a result by index.
    pub fn result_info(&self, index: usize) -> Option<TensorInfo> {
        self.operation
            .result(index)
            .ok()
            .and_then(|r| TensorInfo::of(r.r#type()))
    }

    /// A raw attribute.
    pub fn attribute(&self, name: &str) -> Option<Attribute<'c>> {
        self.operation.attribute(name).ok()
    }
}

/// What an attribute holds, for the verifier to check.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    /// An integer attribute with its type, e.g. `2 : i64`.
    Int { value: i64, r#type: String },
    /// A float attribute with its type.
    Float { value: f64, r#type: String },
    /// A dense i64 array.
    I64Array(Vec<i64>),
    /// Anything else, as printed.
    Other(String),
}

impl AttrValue {
    /// Classifies an attribute.
    pub fn of(attribute: Attribute<'_>) -> Self {
        if let Ok(int) = IntegerAttribute::try_from(attribute) {
            return AttrValue::Int {
                value: int.value(),
                r#type: attribute.r#type().to_string(),
            };
        }
        if let Ok(float) = FloatAttribute::try_from(attribute) {
            return AttrValue::Float {
                value: float.value(),
                r#type: attribute.r#type().to_string(),
            };
        }
        if let Ok(array) = DenseI64ArrayAttribute::try_from(attribute) {
            return AttrValue::I64Array((0..array.len()).filter_map(|i| array.element(i).ok()).collect());
        }
        AttrValue::Other(attribute.to_string())
    }
}

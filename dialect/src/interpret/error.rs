//! Why an interpretation stopped: the op, its location and the reason.

use super::value::ElemType;
use crate::location::SourceLoc;
use crate::reference::EvalError;
use thiserror::Error;

/// What went wrong while evaluating an op on concrete values (as opposed to an op or form the
/// interpreter does not support).
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Fault {
    /// Integer division or remainder by zero (undefined behaviour in MLIR).
    #[error("integer division of {lhs} by zero")]
    DivisionByZero {
        /// The dividend.
        lhs: i64,
    },
    /// Signed division whose quotient does not fit (minimum value divided by -1).
    #[error("{lhs} / {rhs} overflows {elem}")]
    DivisionOverflow {
        /// The dividend.
        lhs: i64,
        /// The divisor.
        rhs: i64,
        /// The operand type.
        elem: ElemType,
    },
    /// An op with an `nsw`/`nuw` overflow flag overflowed: MLIR makes the result poison.
    #[error("operands {operands:?} overflow {elem} under the '{flag}' flag (the result is poison)")]
    FlagOverflow {
        /// `nsw` or `nuw`.
        flag: &'static str,
        /// The operand values.
        operands: Vec<i64>,
        /// The result type.
        elem: ElemType,
    },
    /// An unspecified element (from `tensor.empty`) was read.
    #[error("reads an unspecified {elem} element (tensor.empty contents are undefined)")]
    Uninitialized {
        /// Its type.
        elem: ElemType,
    },
    /// A tensor holding unspecified elements left the interpreter.
    #[error("element {index:?} of the {type} value is unspecified (never written after tensor.empty)")]
    UninitializedElement {
        /// Position of the first unspecified element.
        index: Vec<usize>,
        /// The tensor type.
        r#type: String,
    },
    /// An index is outside a tensor.
    #[error("{what}: index {index:?} is out of range for shape {shape:?}")]
    IndexOutOfRange {
        /// What was indexed.
        what: String,
        /// The index.
        index: Vec<i64>,
        /// The shape.
        shape: Vec<usize>,
    },
    /// A slice does not fit in its tensor.
    #[error("slice dim {dim}: offset {offset}, size {size}, stride {stride} do not fit in extent {extent}")]
    SliceOutOfBounds {
        /// The dim.
        dim: usize,
        /// Offset.
        offset: i64,
        /// Size.
        size: i64,
        /// Stride.
        stride: i64,
        /// The tensor's extent along `dim`.
        extent: usize,
    },
    /// A runtime shape disagrees with what the op or a type requires.
    #[error("{what}: expected {expected}, got {actual}")]
    Shape {
        /// Which value.
        what: String,
        /// What was required.
        expected: String,
        /// What was found.
        actual: String,
    },
    /// A value's type disagrees with what the op requires.
    #[error("{what}: expected {expected}, got {actual}")]
    Type {
        /// Which value.
        what: String,
        /// What was required.
        expected: String,
        /// What was found.
        actual: String,
    },
    /// A size is negative.
    #[error("{what} is {value}, a negative size")]
    NegativeSize {
        /// Which size.
        what: String,
        /// Its value.
        value: i64,
    },
    /// A tensor would exceed the interpreter's allocation limit.
    #[error("a tensor of shape {shape:?} exceeds the interpreter's limit of {limit} elements")]
    TooLarge {
        /// The requested shape.
        shape: Vec<usize>,
        /// The limit.
        limit: usize,
    },
    /// A tensor of `i1` or `index` cannot become a [`crate::tensor::Tensor`].
    #[error("a tensor of {elem} has no Tensor dtype")]
    NoDType {
        /// The element type.
        elem: ElemType,
    },
    /// A fault at one element of an elementwise op or one point of a `linalg.generic`.
    #[error("at {index:?}: {source}")]
    At {
        /// The element or iteration point.
        index: Vec<usize>,
        /// What went wrong there.
        #[source]
        source: Box<Fault>,
    },
    /// A fault about one operand of an op (or one returned value).
    #[error("{operand}: {source}")]
    Operand {
        /// Which operand, e.g. `operand 'x'`.
        operand: String,
        /// What is wrong with it.
        #[source]
        source: Box<Fault>,
    },
    /// An inconsistency inside the interpreter (a bug, reported instead of a panic).
    #[error("internal interpreter error: {0}")]
    Internal(String),
}

/// Why [`super::run_function`] failed. Every variant after [`InterpretError::FunctionNotFound`]
/// names the op and its location; messages print as `file:line:col: error: 'op' op ...`.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum InterpretError {
    /// The module has no `func.func` of that name.
    #[error("error: no func.func @{name} in the module")]
    FunctionNotFound {
        /// The requested name.
        name: String,
    },
    /// The number of arguments differs from the function's.
    #[error("{location}: error: 'func.func' op @{function} takes {expected} arguments, got {actual}")]
    ArgumentCount {
        /// The function.
        function: String,
        /// Where it is defined.
        location: SourceLoc,
        /// Its argument count.
        expected: usize,
        /// The count given.
        actual: usize,
    },
    /// An argument's dtype or shape differs from the function's argument type.
    #[error("{location}: error: 'func.func' op @{function} argument #{index} must be {expected}, got {actual}")]
    ArgumentType {
        /// The function.
        function: String,
        /// Where it is defined.
        location: SourceLoc,
        /// The argument position.
        index: usize,
        /// The declared type.
        expected: String,
        /// The type of the tensor given.
        actual: String,
    },
    /// The interpreter does not support this op, or this form of it.
    #[error("{location}: error: '{op}' op is not supported by the interpreter: {reason}")]
    Unsupported {
        /// The op name.
        op: String,
        /// Where it is.
        location: SourceLoc,
        /// What is not supported.
        reason: String,
    },
    /// Evaluating the op on the concrete values failed.
    #[error("{location}: error: '{op}' op {fault}")]
    Fault {
        /// The op name.
        op: String,
        /// Where it is.
        location: SourceLoc,
        /// What went wrong.
        #[source]
        fault: Box<Fault>,
    },
    /// The reference evaluator of an `npu` op refused its operands.
    #[error("{location}: error: '{op}' op {source}")]
    Reference {
        /// The op name.
        op: String,
        /// Where it is.
        location: SourceLoc,
        /// The evaluator's error.
        #[source]
        source: Box<EvalError>,
    },
}

impl InterpretError {
    /// The name of the op at fault (`func.func` for argument errors); `None` when no function
    /// was found.
    pub fn op_name(&self) -> Option<&str> {
        match self {
            InterpretError::FunctionNotFound { .. } => None,
            InterpretError::ArgumentCount { .. } | InterpretError::ArgumentType { .. } => Some("func.func"),
            InterpretError::Unsupported { op, .. }
            | InterpretError::Fault { op, .. }
            | InterpretError::Reference { op, .. } => Some(op),
        }
    }

    /// The evaluation fault, for [`InterpretError::Fault`].
    pub fn fault(&self) -> Option<&Fault> {
        match self {
            InterpretError::Fault { fault, .. } => Some(fault),
            _ => None,
        }
    }

    /// The reference evaluator's error, for [`InterpretError::Reference`].
    pub fn reference_error(&self) -> Option<&EvalError> {
        match self {
            InterpretError::Reference { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The location of the op at fault.
    pub fn location(&self) -> Option<&SourceLoc> {
        match self {
            InterpretError::FunctionNotFound { .. } => None,
            InterpretError::ArgumentCount { location, .. }
            | InterpretError::ArgumentType { location, .. }
            | InterpretError::Unsupported { location, .. }
            | InterpretError::Fault { location, .. }
            | InterpretError::Reference { location, .. } => Some(location),
        }
    }
}

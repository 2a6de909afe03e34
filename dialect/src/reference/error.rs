//! Why a reference evaluation was refused. Every variant names the operand, index or attribute
//! at fault and the offending value.

use thiserror::Error;

use crate::tensor::{DType, TensorError};

/// An error of a reference evaluator: a static mismatch (dtype, shape, missing operand) or a
/// violated runtime precondition (index out of range, bad group list). Evaluators check all of
/// them before computing anything, so an error never comes with a partial result.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EvalError {
    /// An operand has a dtype the op does not accept here.
    #[error("{operand} has dtype {actual}, expected {expected}")]
    DType {
        /// Operand name.
        operand: &'static str,
        /// The accepted dtypes, in words.
        expected: &'static str,
        /// The dtype found.
        actual: DType,
    },
    /// An operand has the wrong number of dimensions.
    #[error("{operand} must have rank {rank} {dims}, got shape {actual:?}")]
    Rank {
        /// Operand name.
        operand: &'static str,
        /// Symbolic dimensions, e.g. `(e, n)`.
        dims: &'static str,
        /// Required rank.
        rank: usize,
        /// The shape found.
        actual: Vec<usize>,
    },
    /// An operand's shape disagrees with the sizes fixed by the other operands.
    #[error("{operand} must have shape {dims} = {expected:?}, got {actual:?}")]
    Shape {
        /// Operand name.
        operand: &'static str,
        /// Symbolic dimensions, e.g. `(e, n)`.
        dims: &'static str,
        /// The required shape.
        expected: Vec<usize>,
        /// The shape found.
        actual: Vec<usize>,
    },
    /// A required operand is absent.
    #[error("{operand} is required {context}")]
    MissingOperand {
        /// Operand name.
        operand: &'static str,
        /// Why it is required.
        context: &'static str,
    },
    /// An operand is present where the op gives it no meaning.
    #[error("{operand} must be absent {context}")]
    UnexpectedOperand {
        /// Operand name.
        operand: &'static str,
        /// Why it must be absent.
        context: &'static str,
    },
    /// The dtype combination of x and the weight selects no defined scenario.
    #[error(
        "no semantics for x of dtype {x} with weight of dtype {w} (defined: i8 x i8 (A8W8), i8 x i4 (A8W4), float x same float)"
    )]
    UnsupportedScenario {
        /// Dtype of x.
        x: DType,
        /// Dtype of the weight.
        w: DType,
    },
    /// An integer attribute is out of its allowed range.
    #[error("attribute {name} = {value} is invalid: expected {expected}")]
    Attribute {
        /// Attribute name.
        name: &'static str,
        /// Its value.
        value: i64,
        /// The allowed values, in words.
        expected: &'static str,
    },
    /// A counts group list holds a negative count.
    #[error("group_list[{index}] = {value} is a negative row count")]
    NegativeCount {
        /// Position in group_list.
        index: usize,
        /// The count.
        value: i64,
    },
    /// A cumsum group list decreases.
    #[error(
        "group_list[{index}] = {value} is below the previous prefix sum {previous}; a cumsum group_list must be non-decreasing from 0"
    )]
    CumsumDecreasing {
        /// Position in group_list.
        index: usize,
        /// The prefix sum at that position.
        value: i64,
        /// The prefix sum before it (0 for the first entry).
        previous: i64,
    },
    /// A (group index, size) pair names a group that does not exist.
    #[error("group_list[{pair}, 0] = {value} names a group outside [0, {groups})")]
    GroupIndexOutOfRange {
        /// Pair position.
        pair: usize,
        /// The group index.
        value: i64,
        /// Number of groups.
        groups: usize,
    },
    /// The group list covers more rows than x has.
    #[error("sum(group_list) = {sum} exceeds m = {m}")]
    GroupSumExceedsM {
        /// Total rows covered.
        sum: i128,
        /// Rows of x.
        m: usize,
    },
    /// An active row's destination is outside the output.
    #[error("row_index[{p}] = {value} is outside [0, {bound}) for active row {p} (sum(group_list) = {active})")]
    RowIndexOutOfRange {
        /// The row of x.
        p: usize,
        /// Its row_index.
        value: i64,
        /// Output rows.
        bound: usize,
        /// Number of active rows.
        active: usize,
    },
    /// The shared_input slice does not fit in the output.
    #[error(
        "shared_input rows [{offset}, {offset} + {rows}) do not fit in the {bound} output rows (shared_input_offset = {offset})"
    )]
    SharedInputRange {
        /// shared_input_offset.
        offset: i64,
        /// Rows of shared_input.
        rows: usize,
        /// Output rows.
        bound: usize,
    },
    /// An A8W4 int64 scale uses its undocumented high 32 bits.
    #[error(
        "scale[{group}, 0, {col}] = {value:#018x} has non-zero high 32 bits; only the low 32 bits (an f32 bit pattern) have a documented meaning"
    )]
    ScaleHighBits {
        /// Group.
        group: usize,
        /// Output column.
        col: usize,
        /// The raw int64.
        value: i64,
    },
    /// An index operand's element is out of range.
    #[error("{operand}[{}] = {value} is outside [{low}, {high})", join_index(.index))]
    IndexOutOfRange {
        /// Operand name.
        operand: &'static str,
        /// Multi-dimensional position of the element.
        index: Vec<usize>,
        /// The element.
        value: i64,
        /// Smallest allowed value.
        low: i64,
        /// One past the largest allowed value.
        high: i64,
    },
    /// A -1 (dropped) entry of expanded_src_to_dst_row in a mode without padding.
    #[error("expanded_src_to_dst_row[{pos}] = -1 (dropped row) is only allowed in drop_pad_mode 1 or 3, not {mode}")]
    DroppedRowNotAllowed {
        /// Position in expanded_src_to_dst_row.
        pos: usize,
        /// drop_pad_mode.
        mode: i64,
    },
    /// An exact integer result does not fit in the i32 output.
    #[error("i32 output [{row}, {col}] = {value} overflows int32")]
    AccumulatorOverflow {
        /// Output row.
        row: usize,
        /// Output column.
        col: usize,
        /// The exact value.
        value: i64,
    },
    /// A size computed from the operands overflows `usize`.
    #[error("size of {what} overflows usize")]
    SizeOverflow {
        /// What was being sized.
        what: &'static str,
    },
    /// A result or scratch buffer is too large to allocate.
    #[error("cannot allocate {elements} elements for {what}")]
    Allocation {
        /// What was being allocated.
        what: &'static str,
        /// Requested elements.
        elements: usize,
    },
    /// Tensors compared elementwise have different shapes.
    #[error("cannot compare shape {actual:?} with expected shape {expected:?}")]
    CompareShape {
        /// Shape of the actual tensor.
        actual: Vec<usize>,
        /// Shape of the expected tensor.
        expected: Vec<usize>,
    },
    /// A result tensor could not be built.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

fn join_index(index: &[usize]) -> String {
    index.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

//! What the verifier reports: one broken rule, naming the operand, the expected and the actual.

use std::fmt;

/// The part of an op a violation is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// An operand, by its torch_npu name.
    Operand(&'static str),
    /// A result, by name.
    Result(&'static str),
    /// An attribute, by name.
    Attribute(&'static str),
    /// The op as a whole (relations between several operands or attributes).
    Op,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Operand(name) => write!(f, "operand '{name}'"),
            Subject::Result(name) => write!(f, "result '{name}'"),
            Subject::Attribute(name) => write!(f, "attribute '{name}'"),
            Subject::Op => f.write_str("op"),
        }
    }
}

/// One broken rule of the IR contract (SPEC sections 1-3).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// The element type is not one of those allowed here.
    #[error("{subject}: expected element type {expected}, got {actual}")]
    ElementType {
        /// Which operand or result.
        subject: Subject,
        /// The allowed element types, e.g. `f32 or bf16`.
        expected: String,
        /// The type as written.
        actual: String,
    },
    /// The rank is wrong.
    #[error("{subject}: expected rank {expected} {layout}, got {actual}")]
    Rank {
        /// Which operand or result.
        subject: Subject,
        /// The rank required.
        expected: usize,
        /// The shape it should have, e.g. `(e, n)`.
        layout: String,
        /// The type as written.
        actual: String,
    },
    /// A dim disagrees with the value another operand fixes.
    #[error("{subject}: dim {dim} ({symbol}) must be {expected} (from {source_of}), got {actual}")]
    Dim {
        /// Which operand or result.
        subject: Subject,
        /// Dim index.
        dim: usize,
        /// The symbol of SPEC the dim stands for (m, k, n, e, ...).
        symbol: String,
        /// The value it must have.
        expected: u64,
        /// Where that value comes from.
        source_of: String,
        /// The value written.
        actual: u64,
    },
    /// A required operand is absent.
    #[error("{subject} is required {why}")]
    Missing {
        /// Which operand.
        subject: Subject,
        /// In which scenario or under which condition.
        why: String,
    },
    /// An operand is present where it has no meaning.
    #[error("{subject} is not allowed {why}")]
    Unexpected {
        /// Which operand.
        subject: Subject,
        /// In which scenario or under which condition.
        why: String,
    },
    /// An attribute has the wrong kind or type.
    #[error("{subject}: expected {expected}, got {actual}")]
    AttributeKind {
        /// Which attribute.
        subject: Subject,
        /// What kind of attribute is required.
        expected: String,
        /// The attribute as written.
        actual: String,
    },
    /// A value is outside its allowed range.
    #[error("{subject}: must be {allowed}, got {actual}")]
    Range {
        /// Which attribute (or op for derived values).
        subject: Subject,
        /// The allowed set, e.g. `0 or 1`.
        allowed: String,
        /// The value.
        actual: String,
    },
    /// A relation between several values does not hold.
    #[error("{relation} must hold, but {detail}")]
    Relation {
        /// The relation, as in SPEC, e.g. `shared_input_offset + bsdp <= output_bs`.
        relation: String,
        /// The values involved.
        detail: String,
    },
    /// The operand layout itself is broken (only reachable on IR that skipped MLIR's verifier).
    #[error("{0}")]
    Malformed(String),
}

impl Violation {
    /// A stable code for the rule, for tests and tools.
    pub fn code(&self) -> &'static str {
        match self {
            Violation::ElementType { .. } => "element-type",
            Violation::Rank { .. } => "rank",
            Violation::Dim { .. } => "dim",
            Violation::Missing { .. } => "missing-operand",
            Violation::Unexpected { .. } => "unexpected-operand",
            Violation::AttributeKind { .. } => "attribute-kind",
            Violation::Range { .. } => "range",
            Violation::Relation { .. } => "relation",
            Violation::Malformed(_) => "malformed",
        }
    }
}

//! The evaluation state (SSA value -> runtime value), op dispatch and the helpers every op
//! evaluator shares: operand access, result type checks and located errors.

use super::error::{Fault, InterpretError};
use super::types::{TypeCache, TypeDesc};
use super::value::{IntType, RtValue, Scalar, TensorValue};
use super::{arith, linalg, npu, shaped};
use crate::location::SourceLoc;
use crate::reference::EvalError;
use melior::ir::{OperationRef, ValueLike, operation::OperationLike};
use std::collections::HashMap;
use std::ffi::c_void;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

/// Every op the interpreter evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// `func.return`.
    Return,
    /// `arith.constant`.
    Constant,
    /// An elementwise `arith` op.
    Arith(arith::ArithOp),
    /// `tensor.empty`.
    Empty,
    /// `tensor.dim`.
    Dim,
    /// `tensor.extract`.
    Extract,
    /// `tensor.collapse_shape`.
    CollapseShape,
    /// `tensor.expand_shape`.
    ExpandShape,
    /// `tensor.insert_slice`.
    InsertSlice,
    /// `tensor.extract_slice`.
    ExtractSlice,
    /// `linalg.fill`.
    Fill,
    /// `linalg.transpose`.
    Transpose,
    /// `linalg.generic`.
    Generic,
    /// `linalg.index`.
    Index,
    /// `linalg.yield`.
    Yield,
    /// An `npu` op.
    Npu,
    /// `scf.execute_region` with one block.
    ExecuteRegion,
    /// `scf.yield` (only as the terminator of an `scf.execute_region`).
    ScfYield,
}

impl OpKind {
    /// The kind of an op name; `None` when the interpreter does not evaluate it.
    pub fn of(name: &str) -> Option<Self> {
        if let Some(op) = arith::ArithOp::of(name) {
            return Some(OpKind::Arith(op));
        }
        Some(match name {
            "func.return" => OpKind::Return,
            "arith.constant" => OpKind::Constant,
            "tensor.empty" => OpKind::Empty,
            "tensor.dim" => OpKind::Dim,
            "tensor.extract" => OpKind::Extract,
            "tensor.collapse_shape" => OpKind::CollapseShape,
            "tensor.expand_shape" => OpKind::ExpandShape,
            "tensor.insert_slice" => OpKind::InsertSlice,
            "tensor.extract_slice" => OpKind::ExtractSlice,
            "linalg.fill" => OpKind::Fill,
            "linalg.transpose" => OpKind::Transpose,
            "linalg.generic" => OpKind::Generic,
            "linalg.index" => OpKind::Index,
            "linalg.yield" => OpKind::Yield,
            "scf.execute_region" => OpKind::ExecuteRegion,
            "scf.yield" => OpKind::ScfYield,
            _ if crate::schema::lookup(name).is_some() => OpKind::Npu,
            _ => return None,
        })
    }

    /// Whether the op may appear in a `linalg.generic` (or `linalg.fill`) body.
    pub fn allowed_in_body(self) -> bool {
        matches!(
            self,
            OpKind::Constant | OpKind::Arith(_) | OpKind::Extract | OpKind::Index | OpKind::Yield
        )
    }
}

/// The name of an op, for messages.
pub fn op_name(op: OperationRef<'_, '_>) -> String {
    op.name()
        .as_string_ref()
        .as_str()
        .unwrap_or("<invalid utf-8>")
        .to_string()
}

/// The kind of an op, or an Unsupported error naming it.
pub fn kind_of(op: OperationRef<'_, '_>) -> Result<OpKind, InterpretError> {
    let name = op.name();
    let kind = name.as_string_ref().as_str().ok().and_then(OpKind::of);
    kind.ok_or_else(|| unsupported(op, "the interpreter has no semantics for this op"))
}

/// An Unsupported error at `op`.
pub fn unsupported(op: OperationRef<'_, '_>, reason: impl Into<String>) -> InterpretError {
    InterpretError::Unsupported {
        op: op_name(op),
        location: SourceLoc::from_location(op.location()),
        reason: reason.into(),
    }
}

/// A Fault error at `op`.
pub fn fault(op: OperationRef<'_, '_>, fault: Fault) -> InterpretError {
    InterpretError::Fault {
        op: op_name(op),
        location: SourceLoc::from_location(op.location()),
        fault: Box::new(fault),
    }
}

/// A reference evaluator error at `op`.
pub fn reference(op: OperationRef<'_, '_>, source: EvalError) -> InterpretError {
    InterpretError::Reference {
        op: op_name(op),
        location: SourceLoc::from_location(op.location()),
        source: Box::new(source),
    }
}

/// The key of an SSA value: its pointer, unique while the module lives.
pub fn key<'c>(value: impl ValueLike<'c>) -> *const c_void {
    value.to_raw().ptr
}

/// A hasher for pointer keys (FxHash's mixing step): the keys are already well spread, and
/// SipHash dominated the cost of `linalg.generic` bodies.
#[derive(Default, Clone, Copy)]
pub struct PtrHasher(u64);

impl Hasher for PtrHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by MLIR object pointers (values, ops, types), unique while the module lives.
pub type PtrMap<V> = HashMap<*const c_void, V, BuildHasherDefault<PtrHasher>>;

/// SSA values and their runtime values.
#[derive(Default)]
pub struct Exec {
    values: PtrMap<RtValue>,
    /// Decoded types.
    pub types: TypeCache,
    /// Decoded attributes of the `arith` ops met so far, by op pointer (an op in a
    /// `linalg.generic` body runs once per point).
    pub arith_attrs: PtrMap<arith::ArithAttrs>,
}

impl Exec {
    /// Binds an SSA value.
    pub fn bind<'c>(&mut self, value: impl ValueLike<'c>, runtime: RtValue) {
        self.values.insert(key(value), runtime);
    }

    /// The runtime value of `value`, an operand of `op` described as `what` in messages.
    pub fn value<'c>(
        &self,
        op: OperationRef<'_, '_>,
        value: impl ValueLike<'c>,
        what: impl FnOnce() -> String,
    ) -> Result<RtValue, InterpretError> {
        self.values.get(&key(value)).cloned().ok_or_else(|| {
            unsupported(
                op,
                format!(
                    "{} is not a value the interpreter computed (defined outside the function, or by an op it skipped)",
                    what()
                ),
            )
        })
    }

    /// The runtime value of operand `index` of `op`.
    pub fn operand(&self, op: OperationRef<'_, '_>, index: usize) -> Result<RtValue, InterpretError> {
        let value = op
            .operand(index)
            .map_err(|_| unsupported(op, format!("operand #{index} is missing")))?;
        self.value(op, value, || format!("operand #{index}"))
    }

    /// All operands of `op`.
    pub fn operands(&self, op: OperationRef<'_, '_>) -> Result<Vec<RtValue>, InterpretError> {
        (0..op.operand_count()).map(|i| self.operand(op, i)).collect()
    }

    /// Operand `index` of `op`, which must be a tensor.
    pub fn tensor_operand(&self, op: OperationRef<'_, '_>, index: usize) -> Result<Rc<TensorValue>, InterpretError> {
        match self.operand(op, index)? {
            RtValue::Tensor(t) => Ok(t),
            RtValue::Scalar(s) => Err(unsupported(
                op,
                format!("operand #{index} must be a tensor, got {}", s.elem()),
            )),
        }
    }

    /// Operand `index` of `op`, which must be a defined `index` scalar.
    pub fn index_operand(&self, op: OperationRef<'_, '_>, index: usize) -> Result<i64, InterpretError> {
        match self.operand(op, index)? {
            RtValue::Scalar(s) => match s.defined().map_err(|f| fault(op, f))? {
                Scalar::Int(IntType::Index, v) => Ok(v),
                other => Err(unsupported(
                    op,
                    format!("operand #{index} must be an index, got {}", other.elem()),
                )),
            },
            RtValue::Tensor(t) => Err(unsupported(
                op,
                format!("operand #{index} must be an index, got {}", t.type_name()),
            )),
        }
    }

    /// The decoded type of result `index` of `op`.
    pub fn result_type(&mut self, op: OperationRef<'_, '_>, index: usize) -> Result<TypeDesc, InterpretError> {
        let result = op
            .result(index)
            .map_err(|_| unsupported(op, format!("result #{index} is missing")))?;
        Ok(self.types.get(result.r#type()))
    }

    /// The decoded type of result `index`, which must be a tensor type.
    pub fn result_tensor_type(
        &mut self,
        op: OperationRef<'_, '_>,
        index: usize,
    ) -> Result<(super::value::ElemType, Vec<Option<usize>>), InterpretError> {
        match self.result_type(op, index)? {
            TypeDesc::Tensor { elem, dims } => Ok((elem, dims)),
            other => Err(unsupported(
                op,
                format!(
                    "result #{index} has type {}, not a supported ranked tensor type",
                    other.name()
                ),
            )),
        }
    }

    /// Evaluates one op (not a terminator) and binds its results, checking each against its
    /// declared type.
    /// Runs the single block of an `scf.execute_region`; its results are what `scf.yield` yields.
    fn execute_region(&mut self, op: OperationRef<'_, '_>) -> Result<Vec<RtValue>, InterpretError> {
        use melior::ir::{BlockLike, RegionLike};
        let region = op.region(0).map_err(|_| unsupported(op, "no region"))?;
        let block = region.first_block().ok_or_else(|| unsupported(op, "an empty region"))?;
        if block.next_in_region().is_some() {
            return Err(unsupported(op, "a region of more than one block"));
        }
        let mut next = block.first_operation();
        while let Some(inner) = next {
            let kind = kind_of(inner)?;
            if kind == OpKind::ScfYield {
                return (0..inner.operand_count())
                    .map(|index| self.operand(inner, index))
                    .collect();
            }
            self.run_op(inner, kind)?;
            next = inner.next_in_block();
        }
        Err(unsupported(op, "the region does not end in scf.yield"))
    }

    pub fn run_op(&mut self, op: OperationRef<'_, '_>, kind: OpKind) -> Result<(), InterpretError> {
        let results = match kind {
            OpKind::Constant => vec![arith::constant(self, op)?],
            OpKind::Arith(arith_op) => vec![arith::elementwise(self, op, arith_op)?],
            OpKind::Empty => vec![shaped::empty(self, op)?],
            OpKind::Dim => vec![shaped::dim(self, op)?],
            OpKind::Extract => vec![shaped::extract(self, op)?],
            OpKind::CollapseShape => vec![shaped::collapse_shape(self, op)?],
            OpKind::ExpandShape => vec![shaped::expand_shape(self, op)?],
            OpKind::InsertSlice => vec![shaped::insert_slice(self, op)?],
            OpKind::ExtractSlice => vec![shaped::extract_slice(self, op)?],
            OpKind::Fill => vec![linalg::fill(self, op)?],
            OpKind::Transpose => vec![linalg::transpose(self, op)?],
            OpKind::Generic => linalg::generic(self, op)?,
            OpKind::Npu => npu::eval(self, op)?,
            OpKind::ExecuteRegion => self.execute_region(op)?,
            OpKind::Index | OpKind::Yield | OpKind::Return | OpKind::ScfYield => {
                return Err(unsupported(
                    op,
                    "it may only appear as the terminator or inside a linalg body",
                ));
            }
        };
        if results.len() != op.result_count() {
            return Err(fault(
                op,
                Fault::Internal(format!(
                    "computed {} results for {} declared",
                    results.len(),
                    op.result_count()
                )),
            ));
        }
        for (index, value) in results.into_iter().enumerate() {
            let declared = self.result_type(op, index)?;
            declared
                .check(&value, || format!("result #{index}"))
                .map_err(|f| fault(op, f))?;
            let result = op
                .result(index)
                .map_err(|_| unsupported(op, format!("result #{index} is missing")))?;
            self.bind(result, value);
        }
        Ok(())
    }

    /// Evaluates a linalg body op for the index of the current iteration point.
    pub fn run_index(&mut self, op: OperationRef<'_, '_>, point: &[usize]) -> Result<(), InterpretError> {
        let dim = super::attrs::int(op, "dim")
            .ok_or_else(|| unsupported(op, "attribute 'dim' is missing or not an integer"))?;
        let position = usize::try_from(dim).ok().and_then(|d| point.get(d)).ok_or_else(|| {
            unsupported(
                op,
                format!("dim {dim} is not a loop of the enclosing op ({} loops)", point.len()),
            )
        })?;
        let value = i64::try_from(*position).map_err(|_| fault(op, Fault::Internal("index overflows i64".into())))?;
        let result = op.result(0).map_err(|_| unsupported(op, "result #0 is missing"))?;
        self.bind(result, RtValue::Scalar(Scalar::index(value)));
        Ok(())
    }
}

//! An interpreter that evaluates one function of a parsed, verified module on concrete tensors.
//!
//! It is the oracle of differential tests: run a module before and after a rewrite (e.g. the
//! fusion pass) on the same inputs and compare. So it is exact about the semantics of every op
//! it accepts, and refuses, with an error naming the op and its location, every op or form of
//! an op it does not support; it never guesses.
//!
//! Supported:
//!
//! - `func.func` (a single-block body) and `func.return`;
//! - the five `npu` ops, through the reference evaluators of [`crate::reference`];
//! - `arith.constant` (scalar integers, indices and floats; dense tensors of i1, i8, i32, i64,
//!   index, f16, bf16 and f32), and elementwise on tensors or scalars: `addi`, `subi`, `muli`,
//!   `divsi`, `remsi`, `maxsi`, `minsi`, `addf`, `subf`, `mulf`, `divf`, `extf`, `truncf`,
//!   `extsi`, `trunci`, `index_cast`, `sitofp`, `cmpi`, `select`;
//! - `tensor.empty`, `tensor.dim`, `tensor.extract`, `tensor.collapse_shape`,
//!   `tensor.expand_shape`, and `tensor.insert_slice` / `tensor.extract_slice` with static
//!   offsets, sizes and strides;
//! - `linalg.fill`, `linalg.transpose`, and `linalg.generic` with all-parallel iterators,
//!   projected-permutation input maps and permutation output maps, on tensors, whose body holds
//!   only the scalar `arith` ops above, `tensor.extract`, `linalg.index` and `linalg.yield`.
//!
//! Semantics: integers wrap at their exact width (`index` is 64 bits); division by zero,
//! signed division overflow and overflow under `nsw`/`nuw` are errors (MLIR makes them
//! undefined or poison); float ops round once to nearest-even in their type (see
//! `scalar.rs`); fast-math flags and rounding modes other than the defaults are refused.
//! The contents of `tensor.empty` are unspecified: reading such an element into arithmetic, an
//! `npu` op or a result is an error rather than a silent zero.

mod arith;
mod attrs;
mod error;
mod exec;
mod linalg;
mod npu;
mod scalar;
mod shaped;
mod types;
mod value;

pub use error::{Fault, InterpretError};
pub use value::{ElemType, IntType, MAX_ELEMENTS};

use crate::location::SourceLoc;
use crate::tensor::Tensor;
use exec::{Exec, OpKind, fault, kind_of, unsupported};
use melior::ir::{Module, OperationRef, RegionLike, ValueLike, block::BlockLike, operation::OperationLike};
use types::TypeDesc;
use value::{RtValue, TensorValue};

/// The `func.func` named `name` at the top level of `module`.
fn find_function<'c, 'a>(module: &'a Module<'c>, name: &str) -> Result<OperationRef<'c, 'a>, InterpretError> {
    let mut next = module.body().first_operation();
    while let Some(op) = next {
        if op.name().as_string_ref().as_str() == Ok("func.func") && attrs::string(op, "sym_name") == Some(name) {
            return Ok(op);
        }
        next = op.next_in_block();
    }
    Err(InterpretError::FunctionNotFound { name: name.to_string() })
}

/// Evaluates the function `name` of `module` on `args` and returns its results.
///
/// The module should be verified (as [`crate::parse::parse_source`] does). The arguments must
/// match the function's argument types: same count, dtype and shape (dynamic dims take any
/// size). Every op of the body must be supported (see the module documentation); the first
/// one that is not, or whose evaluation fails, is reported with its name and location.
pub fn run_function(module: &Module<'_>, name: &str, args: &[Tensor]) -> Result<Vec<Tensor>, InterpretError> {
    let function = find_function(module, name)?;
    let region = function
        .region(0)
        .map_err(|_| unsupported(function, "the function has no body region"))?;
    let block = region
        .first_block()
        .ok_or_else(|| unsupported(function, "an external declaration has no body to run"))?;
    if block.next_in_region().is_some() {
        return Err(unsupported(function, "a function body with more than one block"));
    }
    if block.argument_count() != args.len() {
        return Err(InterpretError::ArgumentCount {
            function: name.to_string(),
            location: SourceLoc::from_location(function.location()),
            expected: block.argument_count(),
            actual: args.len(),
        });
    }
    let mut exec = Exec::default();
    for (index, arg) in args.iter().enumerate() {
        let argument = block
            .argument(index)
            .map_err(|_| unsupported(function, format!("argument #{index} is missing")))?;
        let declared = exec.types.get(argument.r#type());
        let matches = match &declared {
            TypeDesc::Tensor { elem, dims } => {
                *elem == ElemType::of_dtype(arg.dtype()) && TypeDesc::dims_match(dims, arg.shape())
            }
            _ => false,
        };
        if !matches {
            return Err(InterpretError::ArgumentType {
                function: name.to_string(),
                location: SourceLoc::from_location(function.location()),
                index,
                expected: declared.name(),
                actual: arg.to_string(),
            });
        }
        exec.bind(argument, RtValue::tensor(TensorValue::from_tensor(arg)));
    }
    let mut next = block.first_operation();
    while let Some(op) = next {
        let kind = kind_of(op)?;
        if kind == OpKind::Return {
            return returned(&exec, op);
        }
        exec.run_op(op, kind)?;
        next = op.next_in_block();
    }
    Err(unsupported(function, "the body does not end in func.return"))
}

/// The operands of `func.return` as tensors.
fn returned(exec: &Exec, op: OperationRef<'_, '_>) -> Result<Vec<Tensor>, InterpretError> {
    let mut results = Vec::with_capacity(op.operand_count());
    for index in 0..op.operand_count() {
        let tensor = match exec.operand(op, index)? {
            RtValue::Tensor(t) => t,
            RtValue::Scalar(s) => {
                return Err(unsupported(
                    op,
                    format!(
                        "returned value #{index} is a scalar of {}; run_function returns tensors",
                        s.elem()
                    ),
                ));
            }
        };
        let tensor = tensor.to_tensor().map_err(|f| {
            fault(
                op,
                error::Fault::Operand {
                    operand: format!("returned value #{index}"),
                    source: Box::new(f),
                },
            )
        })?;
        results.push(tensor);
    }
    Ok(results)
}

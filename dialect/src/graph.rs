//! Dataflow queries MLIR's C API offers but melior does not wrap: the users of a value and the
//! op (and result number) that defines it.

use melior::ir::{
    OperationRef, Value, ValueLike,
    operation::{OperationLike, OperationResult},
};

/// Every op that uses `value`, once per use, in MLIR's use-list order.
pub fn users<'c, 'a>(value: Value<'c, 'a>) -> Vec<OperationRef<'c, 'a>> {
    let mut found = Vec::new();
    // SAFETY: `value` is a live value of a live module (lifetimes 'c, 'a); walking its use list
    // only reads it, and each owner is an op of the same module, valid for 'a.
    unsafe {
        let mut operand = mlir_sys::mlirValueGetFirstUse(value.to_raw());
        while !mlir_sys::mlirOpOperandIsNull(operand) {
            found.push(OperationRef::from_raw(mlir_sys::mlirOpOperandGetOwner(operand)));
            operand = mlir_sys::mlirOpOperandGetNextUse(operand);
        }
    }
    found
}

/// The op that defines `value` and the result number, or `None` for a block argument.
pub fn producer<'c, 'a>(value: Value<'c, 'a>) -> Option<(OperationRef<'c, 'a>, usize)> {
    let result = OperationResult::try_from(value).ok()?;
    Some((result.owner(), result.result_number()))
}

/// The name of the op that defines `value`, if any.
pub fn producer_name(value: Value<'_, '_>) -> Option<String> {
    producer(value).map(|(op, _)| op.name().as_string_ref().as_str().unwrap_or("").to_string())
}

/// Removes `op` from its block and destroys it. The op must have no remaining uses.
pub fn erase(op: OperationRef<'_, '_>) {
    // SAFETY: `op` is live and owned by its block; removing it transfers ownership to us, and
    // destroying it ends its life. Callers guarantee nothing uses its results any more.
    unsafe {
        mlir_sys::mlirOperationRemoveFromParent(op.to_raw());
        mlir_sys::mlirOperationDestroy(op.to_raw());
    }
}

//! Inserting IR written as text: a snippet is a `func.func` whose arguments stand for existing
//! values; its body is cloned in front of an op with the arguments replaced by those values, and
//! the values it returns come back. Snippets keep the lowerings readable (they are the MLIR a
//! reader would write) and give ops with regions (linalg) without hand-building blocks.

use melior::Context;
use melior::ir::{BlockLike, Module, OperationRef, RegionLike, Value, ValueLike, operation::OperationLike};
use mlir_sys::{MlirOperation, MlirValue};

/// A snippet that does not parse or is not one function: always a bug in the snippet's author.
#[derive(Debug, thiserror::Error)]
#[error("internal error: generated IR does not parse: {message}\n{text}")]
pub struct SpliceError {
    /// What went wrong.
    pub message: String,
    /// The snippet.
    pub text: String,
}

/// Clones the body of the single function in `function_text` in front of `before`, with its
/// arguments bound to `arguments`, and returns the values its `func.return` returns. Every
/// cloned op takes `before`'s location.
pub fn splice<'c, 'a>(
    context: &'c Context,
    before: OperationRef<'c, 'a>,
    function_text: &str,
    arguments: &[Value<'c, 'a>],
) -> Result<Vec<Value<'c, 'a>>, SpliceError> {
    let error = |message: &str| SpliceError {
        message: message.to_string(),
        text: function_text.to_string(),
    };
    let module = Module::parse(context, function_text).ok_or_else(|| error("MLIR rejected it"))?;
    let function = module.body().first_operation().ok_or_else(|| error("no function"))?;
    let block = function
        .region(0)
        .ok()
        .and_then(|r| r.first_block())
        .ok_or_else(|| error("function has no body"))?;
    if block.argument_count() != arguments.len() {
        return Err(error(&format!(
            "takes {} arguments, {} given",
            block.argument_count(),
            arguments.len()
        )));
    }
    let mut map: Vec<(MlirValue, MlirValue)> = Vec::new();
    for (index, argument) in arguments.iter().enumerate() {
        let parameter = block.argument(index).map_err(|_| error("argument"))?;
        map.push((parameter.to_raw(), argument.to_raw()));
    }
    let target = before.block().ok_or_else(|| error("insertion point has no block"))?;
    let location = before.location();
    let mut returned = Vec::new();
    let mut next = block.first_operation();
    while let Some(op) = next {
        next = op.next_in_block();
        if op.name().as_string_ref().as_str() == Ok("func.return") {
            for index in 0..op.operand_count() {
                let value = op.operand(index).map_err(|_| error("return operand"))?;
                let mapped = lookup(&map, value.to_raw()).ok_or_else(|| error("returns an unknown value"))?;
                // SAFETY: `mapped` is a value of the target module (an argument or a clone's result).
                returned.push(unsafe { Value::from_raw(mapped) });
            }
            break;
        }
        // SAFETY: cloning a live op gives a new detached op that we own until the block takes it;
        // operands are rewired to values of the target block before insertion, so no clone
        // refers to the temporary module once it is dropped.
        unsafe {
            let clone = mlir_sys::mlirOperationClone(op.to_raw());
            remap_operands(clone, &map);
            mlir_sys::mlirOperationSetLocation(clone, location.to_raw());
            mlir_sys::mlirBlockInsertOwnedOperationBefore(target.to_raw(), before.to_raw(), clone);
            for index in 0..op.result_count() {
                let original = op.result(index).map_err(|_| error("result"))?;
                map.push((original.to_raw(), mlir_sys::mlirOperationGetResult(clone, index as isize)));
            }
        }
    }
    Ok(returned)
}

fn lookup(map: &[(MlirValue, MlirValue)], value: MlirValue) -> Option<MlirValue> {
    // SAFETY: comparing two value handles only reads them.
    map.iter()
        .rev()
        .find(|(from, _)| unsafe { mlir_sys::mlirValueEqual(*from, value) })
        .map(|(_, to)| *to)
}

/// Rewires the operands of `op` and of every op nested in it that refer to snippet values.
unsafe fn remap_operands(op: MlirOperation, map: &[(MlirValue, MlirValue)]) {
    unsafe {
        let count = mlir_sys::mlirOperationGetNumOperands(op);
        for index in 0..count {
            let operand = mlir_sys::mlirOperationGetOperand(op, index);
            if let Some(mapped) = lookup(map, operand) {
                mlir_sys::mlirOperationSetOperand(op, index, mapped);
            }
        }
        let regions = mlir_sys::mlirOperationGetNumRegions(op);
        for r in 0..regions {
            let region = mlir_sys::mlirOperationGetRegion(op, r);
            let mut block = mlir_sys::mlirRegionGetFirstBlock(region);
            while !block.ptr.is_null() {
                let mut nested = mlir_sys::mlirBlockGetFirstOperation(block);
                while !nested.ptr.is_null() {
                    remap_operands(nested, map);
                    nested = mlir_sys::mlirOperationGetNextInBlock(nested);
                }
                block = mlir_sys::mlirBlockGetNextInRegion(block);
            }
        }
    }
}

/// The MLIR spelling of a value's type.
pub fn type_text(value: Value<'_, '_>) -> String {
    value.r#type().to_string()
}

/// `text` as an MLIR string literal: quoted, with `"`, `\` and non-printable bytes escaped as
/// `\XX` (MLIR's hex escape), so any text round-trips through the parser.
pub fn string_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for byte in text.bytes() {
        match byte {
            b'"' | b'\\' => out.push_str(&format!("\\{byte:02X}")),
            0x20..=0x7e => out.push(byte as char),
            _ => out.push_str(&format!("\\{byte:02X}")),
        }
    }
    out.push('"');
    out
}

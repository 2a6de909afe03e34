//! JIT execution of fully lowered modules with MLIR's ExecutionEngine.
//!
//! `ExecutionEngine::new` reports no failure, and a module that is not fully lowered to the LLVM
//! dialect crashes on its first call, so [`Jit::new`] refuses such modules first and names every
//! op that is left.

use crate::error::Error;
use gmmfr_dialect::diagnostics::Diagnostic;
use gmmfr_dialect::location::SourceLoc;
use melior::ExecutionEngine;
use melior::ir::{
    Module,
    operation::{OperationLike, WalkOrder, WalkResult},
};

/// Every op that is not in the LLVM (or OpenMP) dialect (the module op aside), as located errors.
pub fn unlowered_ops(module: &Module<'_>) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    module.as_operation().walk(WalkOrder::PreOrder, |op| {
        let name = op.name();
        let name = name.as_string_ref().as_str().unwrap_or("?");
        // OpenMP ops are translated to LLVM IR directly (after convert-openmp-to-llvm).
        if name != "builtin.module" && !name.starts_with("llvm.") && !name.starts_with("omp.") {
            found.push(Diagnostic::error(
                SourceLoc::from_location(op.location()),
                format!("'{name}' op is not lowered to the LLVM dialect"),
            ));
        }
        WalkResult::Advance
    });
    found
}

/// A JIT-compiled module.
pub struct Jit {
    engine: ExecutionEngine,
}

impl Jit {
    /// Compiles a fully lowered module and registers `symbols` (C name, address) for the external
    /// functions it calls.
    pub fn new(module: &Module<'_>, symbols: &[(&str, *mut ())]) -> Result<Self, Error> {
        Self::with_libraries(module, symbols, &[])
    }

    /// Like [`Jit::new`], also loading shared libraries (paths) the module calls into.
    pub fn with_libraries(module: &Module<'_>, symbols: &[(&str, *mut ())], libraries: &[&str]) -> Result<Self, Error> {
        let left = unlowered_ops(module);
        if !left.is_empty() {
            return Err(Error::Invalid(left));
        }
        for library in libraries {
            if !std::path::Path::new(library).exists() {
                return Err(Error::Setup(format!("{library} is missing; run ./setup.sh")));
            }
        }
        // The engine wants NUL-terminated paths.
        let terminated: Vec<String> = libraries.iter().map(|l| format!("{l}\0")).collect();
        let paths: Vec<&str> = terminated.iter().map(String::as_str).collect();
        let engine = ExecutionEngine::new(module, 2, &paths, false, false);
        for (name, address) in symbols {
            // SAFETY: each address is a function with the C signature the module declares for
            // `name` (the emulator's exports are declared from the same ABI table).
            unsafe { engine.register_symbol(name, *address) };
        }
        Ok(Self { engine })
    }

    /// The address of a symbol (null if absent).
    pub fn lookup(&self, name: &str) -> *mut () {
        self.engine.lookup(name)
    }

    /// Calls `name` through MLIR's packed interface: `arguments` point at each argument value, and
    /// the last one at storage for the result.
    ///
    /// # Safety
    ///
    /// Each pointer must point at a value of the type the function's signature has at that
    /// position, alive for the call, and every pointer argument must point at memory as large as
    /// the function will access.
    pub unsafe fn invoke_packed(&self, name: &str, arguments: &mut [*mut ()]) -> Result<(), Error> {
        if self.engine.lookup(name).is_null() {
            return Err(Error::Invalid(vec![Diagnostic::error(SourceLoc::Unknown, format!("no function @{name} in the JIT-compiled module"))]));
        }
        // SAFETY: forwarded from the caller's contract.
        unsafe { self.engine.invoke_packed(name, arguments) }
            .map_err(|e| Error::Invalid(vec![Diagnostic::error(SourceLoc::Unknown, format!("calling @{name} failed: {e}"))]))
    }
}

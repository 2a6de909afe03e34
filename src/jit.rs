//! JIT execution of fully lowered modules with MLIR's ExecutionEngine.
//!
//! `ExecutionEngine::new` reports no failure, and a module that is not fully lowered to the LLVM
//! dialect crashes on its first call, so [`Jit::new`] refuses such modules first and names every
//! op that is left.

use crate::error::Error;
use gmmfr_dialect::diagnostics::Diagnostic;
use gmmfr_dialect::location::SourceLoc;
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
        // OpenMP ops are translated to LLVM IR directly (after convert-openmp-to-llvm); the
        // structural func ops are reported through the ops they contain.
        let structural = matches!(name, "builtin.module" | "func.func" | "func.return");
        if !structural && !name.starts_with("llvm.") && !name.starts_with("omp.") {
            found.push(Diagnostic::error(
                SourceLoc::from_location(op.location()),
                format!("'{name}' op is not lowered to the LLVM dialect"),
            ));
        }
        WalkResult::Advance
    });
    found
}

/// A JIT-compiled module. MLIR's ExecutionEngine is wrapped here directly (not through melior)
/// because melior's constructor hides a failed creation, after which the first lookup crashes.
pub struct Jit {
    raw: mlir_sys::MlirExecutionEngine,
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
        // The engine reads the paths as C strings: keep NUL-terminated copies alive for the call.
        let terminated: Vec<String> = libraries.iter().map(|l| format!("{l}\0")).collect();
        let paths: Vec<mlir_sys::MlirStringRef> = terminated
            .iter()
            .map(|l| melior::StringRef::new(&l[..l.len() - 1]).to_raw())
            .collect();
        // SAFETY: the module is live and fully in the LLVM dialect (checked above); `paths`
        // points at `paths.len()` string refs into `terminated`, both alive for the call.
        let raw = unsafe {
            mlir_sys::mlirExecutionEngineCreate(module.to_raw(), 2, paths.len() as i32, paths.as_ptr(), false, false)
        };
        if raw.ptr.is_null() {
            return Err(Error::Invalid(vec![Diagnostic::error(
                SourceLoc::Unknown,
                "MLIR's ExecutionEngine could not compile the module (its translation to LLVM IR or code generation failed)",
            )]));
        }
        let jit = Self { raw };
        for (name, address) in symbols {
            // SAFETY: the engine is live; each address is a function with the C signature the
            // module declares for `name` (the emulator's exports follow the same ABI table).
            unsafe {
                mlir_sys::mlirExecutionEngineRegisterSymbol(
                    jit.raw,
                    melior::StringRef::new(name).to_raw(),
                    *address as *mut _,
                )
            };
        }
        Ok(jit)
    }

    /// The address of a symbol (null if absent).
    pub fn lookup(&self, name: &str) -> *mut () {
        // SAFETY: the engine is live; lookup only reads it.
        unsafe { mlir_sys::mlirExecutionEngineLookup(self.raw, melior::StringRef::new(name).to_raw()) as *mut () }
    }

    /// Calls `name` through MLIR's packed C interface (`_mlir_ciface_<name>`): `arguments` point
    /// at each argument value (for a result, the first one points at its storage).
    ///
    /// # Safety
    ///
    /// Each pointer must point at a value of the type the function's C interface has at that
    /// position, alive for the call, and every pointer argument must point at memory as large as
    /// the function will access.
    pub unsafe fn invoke_packed(&self, name: &str, arguments: &mut [*mut ()]) -> Result<(), Error> {
        if self.lookup(&format!("_mlir_ciface_{name}")).is_null() {
            return Err(Error::Invalid(vec![Diagnostic::error(
                SourceLoc::Unknown,
                format!("no function @{name} with a C interface in the JIT-compiled module (or an external symbol it calls was not found: see the JIT session error above)"),
            )]));
        }
        // SAFETY: forwarded from the caller's contract; the engine is live.
        let result = unsafe {
            mlir_sys::mlirExecutionEngineInvokePacked(
                self.raw,
                melior::StringRef::new(name).to_raw(),
                arguments.as_mut_ptr() as *mut *mut _,
            )
        };
        if result.value == 0 {
            return Err(Error::Invalid(vec![Diagnostic::error(
                SourceLoc::Unknown,
                format!("calling @{name} failed"),
            )]));
        }
        Ok(())
    }
}

impl Drop for Jit {
    fn drop(&mut self) {
        // SAFETY: the engine was created by mlirExecutionEngineCreate and is destroyed once.
        unsafe { mlir_sys::mlirExecutionEngineDestroy(self.raw) }
    }
}

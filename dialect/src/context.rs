//! An MLIR context with every upstream dialect, the `npu` dialect and diagnostic capture.

use crate::diagnostics::DiagnosticSink;
use melior::{
    Context,
    dialect::DialectRegistry,
    ir::Module,
    utility::{load_irdl_dialects, register_all_dialects, register_all_llvm_translations, register_all_passes},
};
use std::sync::Once;

/// The IRDL declaration of the dialect.
pub const NPU_IRDL: &str = include_str!("../irdl/npu.irdl.mlir");

/// A context ready for `npu` IR: upstream dialects loaded, the `npu` dialect loaded from IRDL
/// exactly once, and every diagnostic captured into [`NpuContext::diagnostics`].
pub struct NpuContext {
    context: Context,
    diagnostics: DiagnosticSink,
}

impl NpuContext {
    /// Creates the context. Fails only if MLIR rejects the built-in IRDL text, which a test
    /// rules out.
    pub fn new() -> Result<Self, String> {
        static REGISTER_PASSES: Once = Once::new();
        REGISTER_PASSES.call_once(register_all_passes);

        let registry = DialectRegistry::new();
        register_all_dialects(&registry);
        let context = Context::new();
        context.append_dialect_registry(&registry);
        context.load_all_available_dialects();
        register_all_llvm_translations(&context);
        let diagnostics = DiagnosticSink::default();
        diagnostics.attach(&context);
        let this = Self { context, diagnostics };
        this.load_npu_dialect()?;
        Ok(this)
    }

    // Loading an IRDL dialect twice into one context crashes MLIR, so this runs once, from
    // `new`, and only if the ops are not registered yet.
    fn load_npu_dialect(&self) -> Result<(), String> {
        if self.context.is_registered_operation(crate::schema::GMMFR.name) {
            return Ok(());
        }
        let module = Module::parse(&self.context, NPU_IRDL).ok_or_else(|| {
            let messages: Vec<String> = self.diagnostics.take().iter().map(|d| d.to_string()).collect();
            format!("the npu IRDL declaration does not parse: {}", messages.join("; "))
        })?;
        if !load_irdl_dialects(&module) {
            return Err("MLIR refused to load the npu IRDL dialect".to_string());
        }
        Ok(())
    }

    /// The MLIR context.
    pub fn mlir(&self) -> &Context {
        &self.context
    }

    /// Where MLIR's and our own diagnostics are collected.
    pub fn diagnostics(&self) -> &DiagnosticSink {
        &self.diagnostics
    }
}

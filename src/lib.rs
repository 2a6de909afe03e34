//! gmmfr: compiler support for the fused MoE op `npu.grouped_matmul_finalize_routing`.
//!
//! The library API a model compiler embeds: load (parse + verify) `npu` IR, run pass pipelines
//! that mix our passes with upstream MLIR ones, check the Ascend profile, and evaluate a case
//! with the reference semantics.
//!
//! ```no_run
//! let compiler = gmmfr::Compiler::new()?;
//! let mut module = compiler.load_file(std::path::Path::new("examples/moe_layer.mlir"))?;
//! compiler.run_pipeline(&mut module, "npu-verify,canonicalize", &gmmfr::RunOptions::default())?;
//! println!("{}", gmmfr::print_module(&module));
//! # Ok::<(), gmmfr::Error>(())
//! ```

pub mod aclnn_run;
pub mod analyzer;
pub mod case_module;
pub mod driver;
pub mod error;
pub mod inputs;
pub mod jit;
pub mod loops_run;
pub mod models;
pub mod object;
pub mod pipeline;
pub mod runner;
pub mod summary;

pub use driver::{PipelineReport, RunOptions};
pub use error::Error;
pub use gmmfr_dialect as dialect;
pub use gmmfr_passes as passes;

use gmmfr_dialect::context::NpuContext;
use gmmfr_dialect::diagnostics::Diagnostic;
use gmmfr_dialect::profile::CannVersion;
use melior::ir::Module;
use std::path::Path;

/// One compiler instance: an MLIR context with the `npu` dialect loaded. Modules borrow it.
pub struct Compiler {
    context: NpuContext,
}

impl Compiler {
    /// Sets up MLIR and the `npu` dialect.
    pub fn new() -> Result<Self, Error> {
        Ok(Self {
            context: NpuContext::new().map_err(Error::Setup)?,
        })
    }

    /// Like [`Compiler::new`], also accepting ops of dialects MLIR does not know (as
    /// `mlir-opt --allow-unregistered-dialect` does): the opaque parts of a model around its MoE
    /// layers, or torch-mlir output. Unknown `npu` ops are still errors.
    pub fn with_unregistered_dialects() -> Result<Self, Error> {
        let compiler = Self::new()?;
        compiler.context.mlir().set_allow_unregistered_dialects(true);
        Ok(compiler)
    }

    /// The underlying context.
    pub fn context(&self) -> &NpuContext {
        &self.context
    }

    /// Parses a file and verifies it (MLIR's verifier with the IRDL declaration, then the Rust
    /// verifier). Every error is located.
    pub fn load_file(&self, path: &Path) -> Result<Module<'_>, Error> {
        let module = gmmfr_dialect::parse::parse_file(&self.context, path)?;
        self.verified(module)
    }

    /// Parses text (locations name `source_name`) and verifies it.
    pub fn load_source(&self, text: &str, source_name: &str) -> Result<Module<'_>, Error> {
        let module = gmmfr_dialect::parse::parse_source(&self.context, text, source_name)?;
        self.verified(module)
    }

    fn verified<'c>(&'c self, module: Module<'c>) -> Result<Module<'c>, Error> {
        let diagnostics = gmmfr_dialect::verify::verify_module(&module);
        if diagnostics.is_empty() {
            Ok(module)
        } else {
            Err(Error::Invalid(diagnostics))
        }
    }

    /// Runs a pass pipeline (see [`pipeline`] for the syntax).
    pub fn run_pipeline(
        &self,
        module: &mut Module<'_>,
        pipeline: &str,
        options: &RunOptions,
    ) -> Result<PipelineReport, Error> {
        driver::run_pipeline(&self.context, module, pipeline, options)
    }

    /// Every Ascend profile violation of every fused op, as located errors.
    pub fn check_ascend(&self, module: &Module<'_>, version: CannVersion) -> Vec<Diagnostic> {
        gmmfr_dialect::profile::check_module(module, version)
    }
}

/// The module as MLIR text.
pub fn print_module(module: &Module<'_>) -> String {
    module.as_operation().to_string()
}

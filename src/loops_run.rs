//! Running a case on the CPU loop target: the fused op is lowered to its loop nest
//! (`npu-lower-to-loops`), the module through MLIR's standard pipeline to LLVM, JIT-compiled and
//! called through its C interface with the case's buffers as memref descriptors.

use crate::error::Error;
use crate::{Compiler, case_module, runner};
use gmmfr_dialect::location::SourceLoc;
use gmmfr_dialect::reference::{GmmfrAttrs, GmmfrOperands};
use gmmfr_dialect::tensor::Tensor;

/// Where the OpenMP runtime that multi-threaded kernels call lives (Debian's libomp-22-dev).
pub const OPENMP_RUNTIME: &str = "/usr/lib/llvm-22/lib/libomp.so";

/// MLIR's C runner utilities (libmlir-22-dev): `memrefCopy`, which bufferized code calls to copy a
/// strided view (a slice with a step) into a fresh buffer.
pub const C_RUNNER_UTILS: &str = "/usr/lib/llvm-22/lib/libmlir_c_runner_utils.so";

/// The upstream pipeline from bufferizable tensor IR to the LLVM dialect. With more than one
/// thread, the kernels' parallel loops over output-column blocks become OpenMP work-sharing loops.
pub fn to_llvm(threads: usize) -> String {
    let openmp = if threads > 1 {
        format!("convert-scf-to-openmp{{num-threads={threads}}},canonicalize,")
    } else {
        String::new()
    };
    format!(
        "func.func(convert-elementwise-to-linalg),one-shot-bufferize{{bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map}},\
         func.func(convert-linalg-to-loops),convert-vector-to-scf,{openmp}convert-scf-to-cf,lower-affine,\
         expand-strided-metadata,finalize-memref-to-llvm,convert-vector-to-llvm,convert-math-to-llvm,convert-math-to-libm,convert-arith-to-llvm,\
         convert-func-to-llvm,convert-cf-to-llvm,convert-index-to-llvm,{}reconcile-unrealized-casts",
        if threads > 1 { "convert-openmp-to-llvm," } else { "" }
    )
}

/// Lowers the fused op of a case to loops, JIT-compiles and runs it.
pub fn run_case(
    compiler: &Compiler,
    operands: &GmmfrOperands<'_>,
    attrs: &GmmfrAttrs,
    source_name: &str,
    threads: usize,
) -> Result<Tensor, Error> {
    let source = case_module::case_source(operands, attrs);
    let module = compiler.load_source(&source, source_name)?;
    let arguments: Vec<Tensor> = operands.present().into_iter().cloned().collect();
    let mut results = runner::compile(compiler, module, case_module::ENTRY, None, threads)?
        .call(&arguments)
        .map_err(|error| relocate(error, source_name))?;
    results.pop().ok_or_else(|| Error::Write {
        path: source_name.to_string(),
        message: "the case function returned nothing".into(),
    })
}

/// Errors the generated code reports are about the case, not about its generated module.
fn relocate(error: Error, source_name: &str) -> Error {
    match error {
        Error::Invalid(diagnostics) => Error::Invalid(
            diagnostics
                .into_iter()
                .map(|mut d| {
                    d.location = SourceLoc::Path(source_name.to_string());
                    d
                })
                .collect(),
        ),
        other => other,
    }
}

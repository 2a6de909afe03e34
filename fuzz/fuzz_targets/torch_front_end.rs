//! The torch front end on arbitrary text accepted as MLIR with unregistered dialects: import,
//! e-graph recognition, aten lowering and fusion, then the analyzer. Any input must end in a
//! module or in located diagnostics: never a panic or a crash. Seed it with
//! `tests/fixtures/torch/*.mlir`.
#![no_main]

#[path = "recycled_compiler.rs"]
mod recycled_compiler;

use gmmfr::Compiler;
use libfuzzer_sys::fuzz_target;

const PIPELINE: &str =
    "torch-to-npu,npu-recognize-moe-combine{max-nodes=5000,max-ms=200},torch-lower-aten,npu-fuse-gmm-finalize";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    recycled_compiler::with_compiler(|| Compiler::with_unregistered_dialects().expect("MLIR set-up"), 500, |compiler| {
        if let Ok(mut module) = compiler.load_source(text, "fuzz.mlir") {
            if compiler.run_pipeline(&mut module, PIPELINE, &gmmfr::RunOptions::default()).is_ok() {
                let _ = gmmfr::analyzer::analyze(&module, "fuzz.mlir", &gmmfr::analyzer::AnalyzeOptions::default());
            }
        }
    });
});

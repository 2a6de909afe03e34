//! Parse + verify (MLIR/IRDL, Rust verifier, Ascend profile for both releases) on arbitrary
//! text, then the analyzer and the fusion pass (which must leave valid IR) on what verifies.
//! Any input must end in a module or in located diagnostics: never a panic or a crash.
#![no_main]

#[path = "recycled_compiler.rs"]
mod recycled_compiler;

use gmmfr::Compiler;
use gmmfr_dialect::profile::CannVersion;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    recycled_compiler::with_compiler(|| Compiler::new().expect("MLIR set-up"), 2000, |compiler| {
        if let Ok(mut module) = compiler.load_source(text, "fuzz.mlir") {
            let _ = compiler.check_ascend(&module, CannVersion::Newer);
            let _ = compiler.check_ascend(&module, CannVersion::Older);
            let _ = gmmfr::summary::summarize(&module);
            let _ = gmmfr::analyzer::analyze(&module, "fuzz.mlir", &gmmfr::analyzer::AnalyzeOptions::default());
            // The driver re-verifies after the pass: an Err here is a located diagnostic, fine;
            // a panic or crash is a bug.
            let _ = compiler.run_pipeline(&mut module, "npu-fuse-gmm-finalize", &gmmfr::RunOptions::default());
        }
    });
});

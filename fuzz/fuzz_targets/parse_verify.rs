//! Parse + verify (MLIR/IRDL, Rust verifier, Ascend profile for both releases) on arbitrary
//! text, then the analyzer and the fusion pass (which must leave valid IR) on what verifies.
//! Any input must end in a module or in located diagnostics: never a panic or a crash.
#![no_main]

use gmmfr::Compiler;
use gmmfr_dialect::profile::CannVersion;
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;

/// MLIR uniques every type and attribute it sees in its context and never frees them, so a
/// context that parses millions of inputs grows without bound; start a fresh one this often.
const INPUTS_PER_CONTEXT: u32 = 2000;

thread_local! {
    static COMPILER: RefCell<(Option<Compiler>, u32)> = const { RefCell::new((None, 0)) };
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    COMPILER.with(|cell| {
        let mut state = cell.borrow_mut();
        if state.0.is_none() || state.1 >= INPUTS_PER_CONTEXT {
            state.0 = None;
            state.0 = Some(Compiler::new().expect("MLIR set-up"));
            state.1 = 0;
        }
        state.1 += 1;
        let Some(compiler) = state.0.as_ref() else { return };
        if let Ok(mut module) = compiler.load_source(text, "fuzz.mlir") {
            let _ = compiler.check_ascend(&module, CannVersion::Newer);
            let _ = compiler.check_ascend(&module, CannVersion::Older);
            let _ = gmmfr::summary::summarize(&module);
            let _ = gmmfr::analyzer::analyze(&module, "fuzz.mlir", &gmmfr::analyzer::AnalyzeOptions::default());
            // The driver re-verifies after the pass: an Err here is a located diagnostic, fine;
            // a panic or crash is a bug.
            let _ = compiler.run_pipeline(&mut module, "npu-fuse-gmm-finalize", &gmmfr::RunOptions::default());
        }
        compiler.context().diagnostics().take();
    });
});

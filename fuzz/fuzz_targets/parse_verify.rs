//! Parse + verify (MLIR/IRDL, Rust verifier, Ascend profile for both releases) on arbitrary
//! text. Any input must end in a module or in located diagnostics: never a panic or a crash.
#![no_main]

use gmmfr::Compiler;
use gmmfr_dialect::profile::CannVersion;
use libfuzzer_sys::fuzz_target;

thread_local! {
    // One context per process: creating MLIR contexts per input would dominate the run, and
    // loading the IRDL dialect twice into one context is not allowed.
    static COMPILER: &'static Compiler = Box::leak(Box::new(Compiler::new().expect("MLIR set-up")));
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    COMPILER.with(|compiler| {
        if let Ok(module) = compiler.load_source(text, "fuzz.mlir") {
            let _ = compiler.check_ascend(&module, CannVersion::Newer);
            let _ = compiler.check_ascend(&module, CannVersion::Older);
            let _ = gmmfr::summary::summarize(&module);
        }
        compiler.context().diagnostics().take();
    });
});

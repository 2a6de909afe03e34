//! Replays every input the fuzzer once crashed on (`fuzz/regressions/parse_verify/`,
//! `fuzz/regressions/torch_front_end/`) through the
//! same library calls as the `parse_verify` fuzz target. Each input must end in a located error
//! or a clean result: a crash in MLIR would abort this test binary, a panic fails it. Inputs the
//! parser refuses must say where (file:line:col), not fail silently.

use gmmfr::Compiler;
use gmmfr_dialect::profile::CannVersion;
use std::path::Path;

#[test]
fn every_past_fuzz_crasher_ends_in_a_located_error_or_a_clean_result() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/parse_verify");
    let mut inputs: Vec<_> = std::fs::read_dir(&directory)
        .expect("fuzz regressions directory")
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 4, "expected the recorded crashers in {}", directory.display());
    let compiler = Compiler::new().expect("MLIR set-up");
    for input in &inputs {
        let Ok(text) = std::fs::read_to_string(input) else { continue };
        match compiler.load_source(&text, "fuzz.mlir") {
            Ok(mut module) => {
                let _ = compiler.check_ascend(&module, CannVersion::Newer);
                let _ = gmmfr::analyzer::analyze(&module, "fuzz.mlir", &gmmfr::analyzer::AnalyzeOptions::default());
                let _ = compiler.run_pipeline(&mut module, "npu-fuse-gmm-finalize", &gmmfr::RunOptions::default());
            }
            Err(error) => {
                let message = error.to_string();
                assert!(
                    message.contains("fuzz.mlir:"),
                    "{}: refusal without a location: {message}",
                    input.display()
                );
            }
        }
        compiler.context().diagnostics().take();
    }
}

// The same for the `torch_front_end` target (`fuzz/regressions/torch_front_end/`): torch-mlir
// input accepted with unregistered dialects, through the whole front-end pipeline.
#[test]
fn every_past_torch_front_end_crasher_ends_in_a_located_error_or_a_clean_result() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/torch_front_end");
    let mut inputs: Vec<_> = std::fs::read_dir(&directory)
        .expect("fuzz regressions directory")
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "expected the recorded crashers in {}", directory.display());
    let compiler = Compiler::with_unregistered_dialects().expect("MLIR set-up");
    for input in &inputs {
        let Ok(text) = std::fs::read_to_string(input) else { continue };
        match compiler.load_source(&text, "fuzz.mlir") {
            Ok(mut module) => {
                let _ = compiler.run_pipeline(
                    &mut module,
                    "torch-to-npu,npu-recognize-moe-combine,torch-lower-aten,npu-fuse-gmm-finalize",
                    &gmmfr::RunOptions::default(),
                );
            }
            Err(error) => {
                let message = error.to_string();
                assert!(message.contains("fuzz.mlir:"), "{}: refusal without a location: {message}", input.display());
            }
        }
        compiler.context().diagnostics().take();
    }
}

//! `gmmfr run-case --target reference` on every case of `../shared/cases`: a case with
//! `expected.npy` must reproduce it within 1e-5 of the output's max magnitude (exit 0), a case
//! with `expect_error` must be rejected with exit 1 and a message naming the failed precondition.

use std::path::{Path, PathBuf};
use std::process::Command;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/cases");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 8, "expected the public cases in {}", root.display());
    dirs
}

fn run_case_on(target: &str, dir: &Path, out: &Path) -> std::process::Output {
    let (target, threads) = target.split_once(':').unwrap_or((target, "1"));
    Command::new(env!("CARGO_BIN_EXE_gmmfr"))
        .args([
            "run-case",
            dir.to_str().unwrap(),
            "--target",
            target,
            "--threads",
            threads,
            "-o",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap()
}

fn run_case(dir: &Path, out: &Path) -> std::process::Output {
    run_case_on("reference", dir, out)
}

fn check_every_case(target: &str) {
    let scratch = tempfile::tempdir().unwrap();
    for dir in cases() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let out_path = scratch.path().join(format!("{name}.npy"));
        let output = run_case_on(target, &dir, &out_path);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if dir.join("expect_error").exists() || !dir.join("expected.npy").exists() {
            assert_eq!(
                output.status.code(),
                Some(1),
                "{name} must be rejected; stdout {stdout} stderr {stderr}"
            );
            assert!(stderr.contains(": error: "), "{name}: no located error in {stderr}");
            assert!(!stderr.contains("panicked"), "{name} panicked: {stderr}");
        } else {
            assert_eq!(
                output.status.code(),
                Some(0),
                "{name} must match expected.npy; stdout {stdout} stderr {stderr}"
            );
            assert!(stdout.contains(": ok: "), "{name}: {stdout}");
            let written = gmmfr_dialect::npy::read_npy(&out_path).unwrap();
            let expected = gmmfr_dialect::npy::read_npy(dir.join("expected.npy")).unwrap();
            assert_eq!(written.shape(), expected.shape(), "{name}: -o wrote another shape");
        }
    }
}

// Valid cases match expected.npy through the reference semantics and write the output; invalid
// ones exit 1 with a message.
#[test]
fn every_public_case_is_reproduced_or_rejected() {
    check_every_case("reference");
}

// The same through the JIT-compiled loop nest: valid cases match, and the generated code's own
// precondition checks turn the invalid ones into messages (no out-of-bounds write).
#[test]
fn every_public_case_runs_on_the_loop_target() {
    check_every_case("loops:1");
}

// Through the aclnn lowering and the ABI emulator: cases inside the Ascend profile run the
// two-phase call, the loops-only case falls back to the loop target, the invalid ones fail at
// launch with the emulator's code.
#[test]
fn every_public_case_runs_through_the_aclnn_emulator() {
    check_every_case("aclnn-emu");
}

// And with two threads (OpenMP work-sharing over output-column blocks).
#[test]
fn every_public_case_runs_on_the_loop_target_with_two_threads() {
    check_every_case("loops:2");
}

// The two invalid public cases name the exact precondition that fails.
#[test]
fn invalid_cases_name_the_failed_precondition() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/cases");
    let scratch = tempfile::tempdir().unwrap();
    let oob = run_case(&root.join("bad_rowidx_oob"), &scratch.path().join("a.npy"));
    assert!(String::from_utf8_lossy(&oob.stderr).contains("row_index[5] = 8 is outside [0, 8) for active row 5"));
    let sum = run_case(&root.join("bad_gl_sum_gt_m"), &scratch.path().join("b.npy"));
    assert!(String::from_utf8_lossy(&sum.stderr).contains("sum(group_list) = 19 exceeds m = 16"));
}

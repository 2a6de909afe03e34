//! The aclnn lowering: emitted IR per scenario (snapshots), the fallback of ops outside the
//! Ascend profile, strict mode, and the object file's undefined symbols.

use gmmfr::{Compiler, Error, RunOptions, print_module};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/aclnn")
        .join(name)
}

fn lower(name: &str, pipeline: &str) -> Result<(String, Vec<String>), Error> {
    let compiler = Compiler::new().unwrap();
    let mut module = compiler.load_file(&fixture(name))?;
    let report = compiler.run_pipeline(&mut module, pipeline, &RunOptions::default())?;
    Ok((
        print_module(&module),
        report.diagnostics.iter().map(|d| d.message.clone()).collect(),
    ))
}

fn snapshot(name: &str, entry: &str) {
    let (ir, remarks) = lower(name, "npu-lower-to-aclnn").unwrap();
    assert_eq!(
        remarks,
        vec![format!("[npu-lower-to-aclnn] lowered to {entry}")],
        "{name}"
    );
    assert!(!ir.contains("npu."), "{name}: an npu op is left");
    insta::assert_snapshot!(format!("aclnn_{}", name.trim_end_matches(".mlir")), ir);
}

// A8W8 with shared_input and an int64 row_index lowers to WeightNz with every tensor created.
#[test]
fn a8w8_shared() {
    snapshot("a8w8_shared.mlir", "aclnnGroupedMatmulFinalizeRoutingWeightNz");
}

// Absent optionals (shared_input, pertoken_scale) are passed as null; int32 row_index is ACL_INT32.
#[test]
fn a8w8_no_shared_i32() {
    snapshot("a8w8_no_shared_i32.mlir", "aclnnGroupedMatmulFinalizeRoutingWeightNz");
}

// A tuning config selects WeightNzV2 and is passed as an aclIntArray (destroyed on every path).
#[test]
fn a8w8_cumsum_tuning() {
    snapshot("a8w8_cumsum_tuning.mlir", "aclnnGroupedMatmulFinalizeRoutingWeightNzV2");
}

// A8W4 with an ND weight and an offset lowers to V3.
#[test]
fn a8w4_nd_offset() {
    snapshot("a8w4_nd_offset.mlir", "aclnnGroupedMatmulFinalizeRoutingV3");
}

// A8W4 with an NZ weight lowers to WeightNzV2 with null offset and antiquant tensors.
#[test]
fn a8w4_nz() {
    snapshot("a8w4_nz.mlir", "aclnnGroupedMatmulFinalizeRoutingWeightNzV2");
}

// Outside the older release's k/n whitelist the op stays, with a remark naming both constraints;
// with strict=true it is an error at the op.
#[test]
fn profile_violations_fall_back_or_fail_when_strict() {
    let (ir, remarks) = lower(
        "fallback_older_whitelist.mlir",
        "npu-lower-to-aclnn{cann-version=older}",
    )
    .unwrap();
    assert!(
        ir.contains("npu.grouped_matmul_finalize_routing"),
        "the op must stay for the loop target"
    );
    assert!(
        remarks[0].contains("[older-k-whitelist] k must be 2048 on the older release, is 1408"),
        "{remarks:?}"
    );
    assert!(
        remarks[0].contains("[older-n-whitelist] n must be 7168 on the older release, is 2048"),
        "{remarks:?}"
    );
    assert!(remarks[0].ends_with("left for the loop target"), "{remarks:?}");
    let error = lower(
        "fallback_older_whitelist.mlir",
        "npu-lower-to-aclnn{cann-version=older strict=true}",
    )
    .unwrap_err();
    assert!(
        error.to_string().contains(
            "fallback_older_whitelist.mlir:4:10: error: 'npu.grouped_matmul_finalize_routing' op not lowered"
        ),
        "{error}"
    );
}

// The object file's undefined symbols are exactly the CANN C functions the call uses.
#[test]
fn object_file_needs_exactly_the_cann_symbols() {
    let scratch = tempfile::tempdir().unwrap();
    for (name, entry, int_array) in [
        ("a8w8_shared.mlir", "aclnnGroupedMatmulFinalizeRoutingWeightNz", false),
        (
            "a8w8_cumsum_tuning.mlir",
            "aclnnGroupedMatmulFinalizeRoutingWeightNzV2",
            true,
        ),
        ("a8w4_nd_offset.mlir", "aclnnGroupedMatmulFinalizeRoutingV3", false),
    ] {
        let object = scratch.path().join(name.replace(".mlir", ".o"));
        let status = Command::new(env!("CARGO_BIN_EXE_gmmfr"))
            .args([
                "compile",
                fixture(name).to_str().unwrap(),
                "--target",
                "aclnn",
                "-o",
                object.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
        let nm = Command::new("/usr/lib/llvm-22/bin/llvm-nm")
            .args(["-u", object.to_str().unwrap()])
            .output()
            .unwrap();
        let mut undefined: Vec<String> = String::from_utf8_lossy(&nm.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().last().map(String::from))
            .collect();
        undefined.sort();
        let mut expected: Vec<String> = [
            "aclCreateTensor",
            "aclDestroyTensor",
            "aclrtFree",
            "aclrtMalloc",
            "aclrtSynchronizeStream",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([entry.to_string(), format!("{entry}GetWorkspaceSize")])
        .chain(if int_array {
            vec!["aclCreateIntArray".to_string(), "aclDestroyIntArray".to_string()]
        } else {
            vec![]
        })
        .collect();
        expected.sort();
        assert_eq!(undefined, expected, "{name}");
    }
}

fn run_case(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gmmfr"))
        .arg("run-case")
        .args(args)
        .output()
        .unwrap()
}

fn copy_case(name: &str, without: &[&str]) -> tempfile::TempDir {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/cases").join(name);
    let scratch = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        if !without.iter().any(|w| entry.file_name() == *w) {
            std::fs::copy(entry.path(), scratch.path().join(entry.file_name())).unwrap();
        }
    }
    scratch
}

// The runtime's validation reaches the user through the generated code: GetWorkspaceSize
// returns 161002 for a shape outside the kernel's range, the generated function returns it, and
// the CLI names the code and its meaning (exit 1).
#[test]
fn invalid_parameter_status_propagates_from_the_emulator() {
    let output = run_case(&[
        "../shared/cases/a8w8_loops_only",
        "--target",
        "aclnn-emu",
        "--aclnn-unchecked",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the aclnn call returned 161002 (ACLNN_ERR_PARAM_INVALID"),
        "{stderr}"
    );
    assert!(stderr.contains("n must be >= 256, is 96"), "{stderr}");
}

// 161001 for an unsupported combination of absent optionals (older release: shared_input
// without logit), through the generated code.
#[test]
fn null_pointer_status_propagates_from_the_emulator() {
    let case = copy_case("a8w8_doc_small", &["logit.npy"]);
    let dir = case.path().to_str().unwrap();
    let output = run_case(&[
        dir,
        "--target",
        "aclnn-emu",
        "--cann-version",
        "older",
        "--aclnn-unchecked",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the aclnn call returned 161001 (ACLNN_ERR_PARAM_NULLPTR"),
        "{stderr}"
    );
}

// Under the older release the cumsum case is outside the profile: without --aclnn-unchecked it
// falls back to the loop target with a note naming the constraint, and still matches.
#[test]
fn older_release_falls_back_to_loops_with_a_note() {
    let output = run_case(&[
        "../shared/cases/a8w8_cumsum",
        "--target",
        "aclnn-emu",
        "--cann-version",
        "older",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("falling back to the loop target") && stderr.contains("[older-group-list-counts]"),
        "{stderr}"
    );
}

//! The `gmmfr` binary on good and bad input: exit codes (0 ok, 1 input error, 2 usage error),
//! located messages, and never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn gmmfr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gmmfr")).args(args).output().unwrap()
}

fn gmmfr_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_gmmfr"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/moe_layer.mlir")
        .display()
        .to_string()
}

fn expect(output: &Output, code: i32, needle: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(needle), "expected '{needle}' in stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
}

/// A copy of a public case that a test may damage.
fn case_copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/cases").join(name);
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join(name);
    std::fs::create_dir(&dir).unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    (scratch, dir)
}

// The main job on the bundled example succeeds and summarizes every npu op.
#[test]
fn verify_summarizes_the_example() {
    let output = gmmfr(&["verify", &example()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("5 npu op(s) in 2 function(s)"), "{stdout}");
    assert!(
        stdout.contains("npu.grouped_matmul_finalize_routing: A8W8, m=16 k=256 n=256 e=4"),
        "{stdout}"
    );
}

// opt reads standard input, runs our passes mixed with upstream ones, prints the IR.
#[test]
fn opt_runs_mixed_pipelines_from_stdin() {
    let text = std::fs::read(example()).unwrap();
    let output = gmmfr_stdin(
        &[
            "opt",
            "-",
            "--pass-pipeline",
            "builtin.module(npu-verify,canonicalize,cse)",
            "--print-ir-after-all",
        ],
        &text,
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("npu.grouped_matmul_finalize_routing"));
    assert!(stderr(&output).contains("IR Dump After canonicalize,cse"));
}

// Missing, malformed and binary inputs are input errors with a location.
#[test]
fn bad_ir_inputs_are_located_input_errors() {
    expect(
        &gmmfr(&["verify", "/nonexistent/x.mlir"]),
        1,
        "/nonexistent/x.mlir: error: cannot read file",
    );
    let scratch = tempfile::tempdir().unwrap();
    let bad = scratch.path().join("bad.mlir");
    std::fs::write(&bad, "func.func @f( {").unwrap();
    expect(&gmmfr(&["verify", bad.to_str().unwrap()]), 1, "bad.mlir:1:14: error:");
    let binary = scratch.path().join("binary.mlir");
    std::fs::write(&binary, (0..=255u8).cycle().take(4096).collect::<Vec<u8>>()).unwrap();
    expect(&gmmfr(&["verify", binary.to_str().unwrap()]), 1, "binary.mlir:");
    let unknown = scratch.path().join("unknown.mlir");
    std::fs::write(
        &unknown,
        "func.func @f() {\n  \"npu.nonexistent\"() : () -> ()\n  return\n}\n",
    )
    .unwrap();
    expect(
        &gmmfr(&["verify", unknown.to_str().unwrap()]),
        1,
        "unknown.mlir:2:3: error:",
    );
}

// Unknown flags, malformed pipelines and unknown pass options are usage errors.
#[test]
fn usage_errors_exit_2() {
    expect(
        &gmmfr(&["verify", "--bogus", &example()]),
        2,
        "unexpected argument '--bogus'",
    );
    expect(
        &gmmfr(&["verify", &example(), "--cann-version", "ancient"]),
        2,
        "unknown CANN version 'ancient'",
    );
    expect(
        &gmmfr(&["opt", &example(), "--pass-pipeline", "npu-verify,no-such-pass"]),
        2,
        "'no-such-pass' does not refer to a registered pass",
    );
    expect(
        &gmmfr(&["opt", &example(), "--pass-pipeline", "npu-check-ascend-profile{foo=1}"]),
        2,
        "unknown option 'foo'",
    );
    expect(
        &gmmfr(&["opt", &example(), "--pass-pipeline", "npu-verify,("]),
        2,
        "invalid pass pipeline",
    );
    expect(&gmmfr(&["frobnicate"]), 2, "unrecognized subcommand");
}

// --target ascend reports every failed profile constraint of the older release, located.
#[test]
fn ascend_target_reports_profile_failures() {
    let output = gmmfr(&["verify", &example(), "--target", "ascend", "--cann-version", "older"]);
    expect(
        &output,
        1,
        "moe_layer.mlir:29:10: error: 'npu.grouped_matmul_finalize_routing' op is outside the Ascend profile (CANN older): [older-k-whitelist] k must be 2048 on the older release, is 256",
    );
    assert!(stderr(&output).contains("[older-n-whitelist] n must be 7168 on the older release, is 256"));
}

// Damaged case directories name the file and the problem.
#[test]
fn bad_case_directories_are_input_errors() {
    expect(&gmmfr(&["run-case", "/nonexistent/case"]), 1, "/nonexistent/case");

    let (_keep, dir) = case_copy("a8w8_doc_small");
    std::fs::remove_file(dir.join("x.npy")).unwrap();
    expect(&gmmfr(&["run-case", dir.to_str().unwrap()]), 1, "x.npy");

    let (_keep, dir) = case_copy("a8w8_doc_small");
    let bytes = std::fs::read(dir.join("w.npy")).unwrap();
    std::fs::write(dir.join("w.npy"), &bytes[..bytes.len() / 2]).unwrap();
    expect(&gmmfr(&["run-case", dir.to_str().unwrap()]), 1, "w.npy");

    let (_keep, dir) = case_copy("a8w8_doc_small");
    std::fs::write(dir.join("attrs.json"), "{\"output_bs\": \"eight\"}").unwrap();
    expect(&gmmfr(&["run-case", dir.to_str().unwrap()]), 1, "output_bs");

    // A row_index of floats is a dtype error found by the verifier, located at the case.
    let (_keep, dir) = case_copy("a8w8_doc_small");
    let logit = std::fs::read(dir.join("logit.npy")).unwrap();
    std::fs::write(dir.join("row_index.npy"), logit).unwrap();
    expect(&gmmfr(&["run-case", dir.to_str().unwrap()]), 1, "row_index");

    // A scale whose n disagrees with the weight's NZ blocks is a shape error.
    let (_keep, dir) = case_copy("a8w8_doc_small");
    let scale = gmmfr_dialect::tensor::Tensor::from_f32(vec![8, 128], vec![1.0; 8 * 128]).unwrap();
    gmmfr_dialect::npy::write_npy(dir.join("scale.npy"), &scale).unwrap();
    expect(
        &gmmfr(&["run-case", dir.to_str().unwrap()]),
        1,
        "operand 'w': dim 1 (n1) must be 4",
    );
}

// A wrong expected.npy makes run-case report the error and exit 1.
#[test]
fn mismatch_with_expected_exits_1() {
    let (_keep, dir) = case_copy("a8w8_noshared_nopts");
    let expected = gmmfr_dialect::npy::read_npy(dir.join("expected.npy")).unwrap();
    let mut values = expected.to_f32_vec();
    values[0] += 1.0;
    let damaged = gmmfr_dialect::tensor::Tensor::from_f32(expected.shape().to_vec(), values).unwrap();
    gmmfr_dialect::npy::write_npy(dir.join("expected.npy"), &damaged).unwrap();
    let output = gmmfr(&["run-case", dir.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("MISMATCH"));
}

// `gmmfr passes` lists every registered pass with its summary.
#[test]
fn passes_lists_the_registry() {
    let output = gmmfr(&["passes"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    for info in gmmfr_passes::registry() {
        assert!(stdout.contains(info.name) && stdout.contains(info.summary), "{stdout}");
    }
}

// `gmmfr run` and `gmmfr compile` on bad input: unknown entry, unreadable or mistyped arguments,
// a module the aclnn target cannot fully lower, a bad thread count; located messages, exit 1 or 2.
#[test]
fn run_and_compile_reject_bad_input() {
    let example = example();
    expect(
        &gmmfr(&["run", &example, "--entry", "nope", "--random-inputs", "1"]),
        1,
        "no function @nope in the module",
    );
    expect(
        &gmmfr(&[
            "run",
            &example,
            "--entry",
            "moe_layer_fused",
            "--arg",
            "/nonexistent.npy",
        ]),
        1,
        "/nonexistent.npy: error:",
    );
    let x = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/cases/a8w8_doc_small/x.npy");
    expect(
        &gmmfr(&[
            "run",
            &example,
            "--entry",
            "moe_layer_fused",
            "--arg",
            x.to_str().unwrap(),
        ]),
        1,
        "moe_layer.mlir:25:1: error: @moe_layer_fused takes 8 arguments, 1 given",
    );
    expect(
        &gmmfr(&[
            "run",
            &example,
            "--entry",
            "moe_layer_fused",
            "--random-inputs",
            "1",
            "--threads",
            "0",
        ]),
        2,
        "0 is not in 1..=256",
    );
    let scratch = tempfile::tempdir().unwrap();
    let object = scratch.path().join("x.o");
    expect(
        &gmmfr(&["compile", &example, "--target", "aclnn", "-o", object.to_str().unwrap()]),
        1,
        "'npu.grouped_matmul' op is not lowered to the LLVM dialect",
    );
}

// `gmmfr run --check` compiles the fused form and compares it with the reference interpreter.
#[test]
fn run_checks_against_the_reference() {
    let output = gmmfr(&[
        "run",
        &example(),
        "--entry",
        "moe_layer_unfused",
        "--pass-pipeline",
        "npu-fuse-gmm-finalize",
        "--random-inputs",
        "3",
        "--check",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("@moe_layer_unfused: ok: compiled vs reference interpreter")
    );
}

// `gmmfr run` on a raw torch-mlir export: the pipeline runs before the arguments are read (the
// export's signature is torch types until torch-to-npu), `--expect` compares with PyTorch's saved
// output, a tolerance below the actual error is a mismatch (exit 1), and a wrong number of
// --expect files is a located input error.
#[test]
fn run_a_torch_export_against_pytorchs_output() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch/hf_qwen3_grouped_f32");
    let module = dir.with_extension("mlir").display().to_string();
    let mut args: Vec<String> = [
        "run",
        "--allow-unregistered-dialect",
        module.as_str(),
        "--entry",
        "main",
        "--pass-pipeline",
        "torch-to-npu,npu-recognize-moe-combine,torch-lower-aten,npu-fuse-gmm-finalize",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let arguments = std::fs::read_dir(&dir).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("arg")).count();
    assert!(arguments >= 4);
    for i in 0..arguments {
        args.push("--arg".into());
        args.push(dir.join(format!("arg{i}.npy")).display().to_string());
    }
    let expected = dir.join("expected.npy").display().to_string();
    let with = |extra: &[&str]| {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend_from_slice(extra);
        gmmfr(&all)
    };
    let ok = with(&["--expect", &expected]);
    let out = String::from_utf8_lossy(&ok.stdout).to_string();
    assert_eq!(ok.status.code(), Some(0), "{}{out}", stderr(&ok));
    assert!(out.contains("ok: compiled vs expected"), "{out}");
    let strict = with(&["--expect", &expected, "--tolerance", "1e-30"]);
    assert_eq!(strict.status.code(), Some(1), "{}", stderr(&strict));
    assert!(String::from_utf8_lossy(&strict.stdout).contains("MISMATCH"));
    let twice = with(&["--expect", &expected, "--expect", &expected]);
    expect(&twice, 1, "returns 1 result(s), 2 --expect file(s) given");
}

//! The fusion pass on `tests/fixtures/fusion/`, one behaviour per fixture. Each fixture marks its
//! finalize op with `// expect-fusion@+1 {{fused}}` or `{{not-fused: code, code}}` (every reason
//! code, in order); a first line `// pipeline: P` sets the pipeline (default
//! `npu-fuse-gmm-finalize`). The test checks the remark of every candidate against its
//! annotation, that fused pairs are gone and blocked ones untouched, and pins the output IR as an
//! insta snapshot.

use gmmfr::{Compiler, RunOptions, print_module};
use gmmfr_dialect::location::SourceLoc;
use gmmfr_passes::fusion::RemarkDecision;
use std::path::{Path, PathBuf};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fusion");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "mlir"))
        .collect();
    files.sort();
    files
}

/// (line, expectation) for every `expect-fusion` annotation.
fn expectations(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(index, line)| {
            let rest = line.split("// expect-fusion@+").nth(1)?;
            let (offset, rest) = rest.split_once(' ')?;
            let body = rest.split("{{").nth(1)?.split("}}").next()?;
            Some((index + 1 + offset.parse::<usize>().ok()?, body.to_string()))
        })
        .collect()
}

/// The pipeline a fixture asks for.
pub fn pipeline_of(text: &str) -> String {
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("// pipeline: "))
        .unwrap_or("npu-fuse-gmm-finalize")
        .to_string()
}

// Every fixture's candidates are decided as annotated, and the IR after the pass is pinned.
#[test]
fn fusion_fixtures_decide_as_annotated() {
    let compiler = Compiler::new().unwrap();
    let mut failures = Vec::new();
    let files = fixtures();
    assert!(files.len() >= 20, "expected the fusion fixtures");
    for path in files {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut module = compiler.load_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let before = print_module(&module);
        let report = compiler
            .run_pipeline(&mut module, &pipeline_of(&text), &RunOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let after = print_module(&module);
        let expected = expectations(&text);
        assert!(!expected.is_empty(), "{name} has no expect-fusion annotation");
        let mut found: Vec<(usize, String)> = report
            .remarks
            .iter()
            .map(|remark| {
                let SourceLoc::File { line, .. } = remark.location else {
                    panic!("{name}: remark without a line")
                };
                let decision = match &remark.decision {
                    RemarkDecision::Fused(_) => "fused".to_string(),
                    RemarkDecision::NotFused(reasons) => {
                        format!(
                            "not-fused: {}",
                            reasons.iter().map(|r| r.code()).collect::<Vec<_>>().join(", ")
                        )
                    }
                };
                (line, decision)
            })
            .collect();
        found.sort();
        if found != expected {
            failures.push(format!("{name}: expected {expected:?}, got {found:?}"));
        }
        let fused = expected.iter().any(|(_, e)| e == "fused");
        if fused {
            assert!(
                after.contains("npu.grouped_matmul_finalize_routing"),
                "{name}: no fused op"
            );
            assert!(
                !after.contains("\"npu.moe_finalize_routing\""),
                "{name}: the finalize op survived"
            );
            assert!(
                !after.contains("\"npu.grouped_matmul\""),
                "{name}: the grouped matmul survived"
            );
        } else {
            assert_eq!(before, after, "{name}: a blocked pair must leave the IR unchanged");
        }
        insta::assert_snapshot!(format!("fusion_{name}"), after);
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

// The fused IR passes both verifiers again when re-parsed from its printed form.
#[test]
fn fused_ir_reparses_and_verifies() {
    let compiler = Compiler::new().unwrap();
    for path in fixtures() {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut module = compiler.load_file(&path).unwrap();
        compiler
            .run_pipeline(&mut module, &pipeline_of(&text), &RunOptions::default())
            .unwrap();
        let printed = print_module(&module);
        compiler
            .load_source(&printed, "fused.mlir")
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

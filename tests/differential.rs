//! Differential tests of the fusion pass: every function of every fusion fixture (and the
//! bundled example) is interpreted with the reference semantics on random inputs before and after
//! `npu-fuse-gmm-finalize`. Where the pass fused, the results agree within the refine tolerance
//! (the fused op skips the grouped matmul's bf16/f16 rounding: 1e-2 of the output's magnitude when
//! the grouped matmul rounded, 1e-5 otherwise); where nothing was fused they are bit-identical.
//! Inputs respect each argument's role (expert ids in range, group lists that partition at most m
//! rows, index maps that are permutations), found from the ops that use the argument.

use gmmfr::inputs::functions_with_inputs;
use gmmfr::runner;
use gmmfr::{Compiler, RunOptions};
use gmmfr_dialect::interpret::run_function;
use gmmfr_dialect::op_view::NpuOp;
use gmmfr_dialect::reference::compare;
use gmmfr_dialect::types::Elem;
use gmmfr_passes::fusion::RemarkDecision;
use melior::ir::{
    Module,
    operation::{OperationLike, WalkOrder, WalkResult},
};
use std::path::{Path, PathBuf};

/// Whether some grouped matmul of the module rounds its rows to bf16 or f16.
fn grouped_matmul_rounds(module: &Module<'_>) -> bool {
    let mut rounds = false;
    module.as_operation().walk(WalkOrder::PreOrder, |op| {
        if let Ok(Some(gmm)) = NpuOp::new(op)
            && gmm.name() == "npu.grouped_matmul"
            && gmm
                .result_info(0)
                .is_some_and(|y| matches!(y.elem, Elem::BF16 | Elem::F16))
        {
            rounds = true;
        }
        WalkResult::Advance
    });
    rounds
}

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("tests/fixtures/fusion"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "mlir"))
        .collect();
    files.sort();
    files.push(root.join("examples/moe_layer.mlir"));
    files
}

fn pipeline_of(text: &str) -> String {
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("// pipeline: "))
        .unwrap_or("npu-fuse-gmm-finalize")
        .to_string()
}

// Before and after the pass, every function computes the same result on random inputs (within
// the refine tolerance where it fused, bit for bit where it did not).
#[test]
fn fusion_preserves_semantics_on_random_inputs() {
    let compiler = Compiler::new().unwrap();
    let mut checked = 0;
    let mut fused_checked = 0;
    let mut worst: (f64, String) = (0.0, String::new());
    for path in cases() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let before = compiler.load_file(&path).unwrap();
        let mut after = compiler.load_file(&path).unwrap();
        let report = compiler
            .run_pipeline(&mut after, &pipeline_of(&text), &RunOptions::default())
            .unwrap();
        let fused = report
            .remarks
            .iter()
            .any(|r| matches!(r.decision, RemarkDecision::Fused(_)));
        let rounds = grouped_matmul_rounds(&before);
        for seed in [1u64, 2, 3] {
            for (function, args) in functions_with_inputs(&before, seed * 7919 + name.len() as u64).unwrap() {
                let expected = run_function(&before, &function, &args);
                let actual = run_function(&after, &function, &args);
                let (expected, actual) = match (expected, actual) {
                    (Ok(e), Ok(a)) => (e, a),
                    // A pair that fails at run time (e.g. -1 routing entries in mode 2) must stay
                    // unfused and fail the same way.
                    (Err(e), Err(a)) if !fused => {
                        assert_eq!(e.to_string(), a.to_string(), "{name} @{function}");
                        checked += 1;
                        continue;
                    }
                    (e, a) => panic!(
                        "{name} @{function} seed {seed}: before {:?}, after {:?}",
                        e.err().map(|x| x.to_string()),
                        a.err().map(|x| x.to_string())
                    ),
                };
                assert_eq!(expected.len(), actual.len());
                for (e, a) in expected.iter().zip(&actual) {
                    if fused {
                        let tolerance = if rounds { 1e-2 } else { 1e-5 };
                        let comparison = compare(a, e).unwrap();
                        if comparison.relative > worst.0 {
                            worst = (comparison.relative, format!("{name} @{function}"));
                        }
                        assert!(
                            comparison.within(tolerance),
                            "{name} @{function} seed {seed}: relative error {} exceeds {tolerance}",
                            comparison.relative
                        );
                    } else {
                        assert_eq!(
                            e, a,
                            "{name} @{function} seed {seed}: an unfused module must compute the same bits"
                        );
                    }
                }
                checked += 1;
                fused_checked += usize::from(fused);
            }
        }
    }
    eprintln!(
        "{checked} runs ({fused_checked} fused); largest fused relative error {:.3e} in {}",
        worst.0, worst.1
    );
    assert!(
        checked > 50 && fused_checked > 30,
        "checked {checked} runs, {fused_checked} fused"
    );
}

// The CPU loop target computes what the reference interpreter computes, for every function of
// every fusion fixture, before and after the fusion, at 1 and 2 threads.
#[test]
fn loop_target_matches_the_interpreter_before_and_after_fusion() {
    let compiler = Compiler::new().unwrap();
    let mut checked = 0;
    for path in cases() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let pipeline = pipeline_of(&text);
        let module = compiler.load_file(&path).unwrap();
        if name.contains("cumsum_to_counts_older") {
            // k = 2048, n = 7168 is slow to interpret: compare the compiled pair with the
            // compiled fusion directly.
            for (function, args) in functions_with_inputs(&module, 11).unwrap() {
                let unfused =
                    runner::run(&compiler, compiler.load_file(&path).unwrap(), &function, None, &args, 2).unwrap();
                let fused = runner::run(
                    &compiler,
                    compiler.load_file(&path).unwrap(),
                    &function,
                    Some(pipeline.as_str()),
                    &args,
                    2,
                )
                .unwrap();
                let comparison = compare(&fused[0], &unfused[0]).unwrap();
                assert!(
                    comparison.within(1e-2),
                    "{name} @{function}: relative {}",
                    comparison.relative
                );
                checked += 1;
            }
            continue;
        }
        for (function, args) in functions_with_inputs(&module, 11).unwrap() {
            let expected = match run_function(&module, &function, &args) {
                Ok(values) => values,
                Err(_) => continue, // inputs the pair itself rejects (e.g. -1 routing entries)
            };
            for (fuse, threads) in [(false, 1), (true, 1), (true, 2)] {
                let fresh = compiler.load_file(&path).unwrap();
                let pipeline = if fuse { Some(pipeline.as_str()) } else { None };
                let actual = runner::run(&compiler, fresh, &function, pipeline, &args, threads)
                    .unwrap_or_else(|e| panic!("{name} @{function} (fused: {fuse}, threads {threads}): {e}"));
                for (e, a) in expected.iter().zip(&actual) {
                    let tolerance = if fuse { 1e-2 } else { 1e-6 };
                    let comparison = compare(a, e).unwrap();
                    assert!(
                        comparison.within(tolerance),
                        "{name} @{function} (fused: {fuse}, threads {threads}): relative {}",
                        comparison.relative
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 40, "checked {checked}");
}

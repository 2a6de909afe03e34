//! Differential tests of the fusion pass: every function of every fusion fixture (and the
//! bundled example) is interpreted with the reference semantics on random inputs before and after
//! `npu-fuse-gmm-finalize`. Where the pass fused, the results agree within the refine tolerance
//! (the fused op skips the grouped matmul's bf16/f16 rounding: 1e-2 of the output's magnitude when
//! the grouped matmul rounded, 1e-5 otherwise); where nothing was fused they are bit-identical.
//! Inputs respect each argument's role (expert ids in range, group lists that partition at most m
//! rows, index maps that are permutations), found from the ops that use the argument.

use gmmfr::{Compiler, RunOptions};
use gmmfr_dialect::graph::users;
use gmmfr_dialect::interpret::run_function;
use gmmfr::runner;
use gmmfr_dialect::op_view::{AttrValue, NpuOp};
use gmmfr_dialect::reference::compare;
use gmmfr_dialect::tensor::Tensor;
use gmmfr_dialect::types::{Elem, TensorInfo};
use gmmfr_passes::fusion::RemarkDecision;
use melior::ir::{
    BlockLike, Module, RegionLike, Value, ValueLike,
    attribute::StringAttribute,
    operation::{OperationLike, WalkOrder, WalkResult},
};
use std::path::{Path, PathBuf};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            p.swap(i, self.below(i as u64 + 1) as usize);
        }
        p
    }
}

/// What an argument is used as, which decides how its random values must look.
enum Role {
    ExpertIds(u64),
    GroupList { groups: usize, rows: u64, list_type: i64 },
    Permutation,
    Plain,
}

fn int_attr(op: &NpuOp<'_, '_>, name: &str) -> i64 {
    match op.attribute(name).map(AttrValue::of) {
        Some(AttrValue::Int { value, .. }) => value,
        _ => 0,
    }
}

fn role(argument: Value<'_, '_>) -> Role {
    for user in users(argument) {
        let Ok(Some(op)) = NpuOp::new(user) else { continue };
        let is = |name: &str| op.operand(name).is_some_and(|v| v.to_raw().ptr == argument.to_raw().ptr);
        match op.name() {
            "npu.moe_init_routing" if is("expert_idx") => return Role::ExpertIds(int_attr(&op, "expert_num") as u64),
            "npu.grouped_matmul" if is("group_list") => {
                let groups = TensorInfo::of(argument.r#type()).and_then(|i| i.dim(0)).unwrap_or(0) as usize;
                let rows = op.operand_info("x").and_then(|x| x.dim(0)).unwrap_or(0);
                return Role::GroupList { groups, rows, list_type: int_attr(&op, "group_list_type") };
            }
            "npu.moe_finalize_routing" if is("expanded_src_to_dst_row") => return Role::Permutation,
            "npu.moe_finalize_routing" if is("expert_for_source_row") => {
                let experts = op.operand_info("bias").and_then(|b| b.dim(0)).unwrap_or(1);
                return Role::ExpertIds(experts);
            }
            _ => {}
        }
    }
    Role::Plain
}

fn random_tensor(info: &TensorInfo, role: &Role, rng: &mut Rng) -> Tensor {
    let shape: Vec<usize> = info.dims.iter().map(|d| d.expect("fixtures have static shapes") as usize).collect();
    let count: usize = shape.iter().product();
    match (role, &info.elem) {
        (Role::ExpertIds(n), Elem::I32) => Tensor::from_i32(shape, (0..count).map(|_| rng.below(*n) as i32).collect()).unwrap(),
        (Role::GroupList { groups, rows, list_type }, Elem::I64) => {
            // Active rows: all of m, or (one time in two) fewer, as on an expert-parallel shard.
            let active = if rng.below(2) == 0 { *rows } else { rng.below(*rows + 1) };
            let mut counts = vec![0i64; *groups];
            for _ in 0..active {
                counts[rng.below(*groups as u64) as usize] += 1;
            }
            match list_type {
                0 => {
                    let mut total = 0;
                    for c in counts.iter_mut() {
                        total += *c;
                        *c = total;
                    }
                }
                2 => {
                    // (group index, size) pairs: group g takes counts[g] rows.
                    counts = counts.iter().enumerate().flat_map(|(g, c)| [g as i64, *c]).collect();
                }
                _ => {}
            }
            Tensor::from_i64(shape, counts).unwrap()
        }
        (Role::Permutation, Elem::I32) => Tensor::from_i32(shape, rng.permutation(count).into_iter().map(|v| v as i32).collect()).unwrap(),
        (_, Elem::I8) => Tensor::from_i8(shape, (0..count).map(|_| rng.below(256) as i64 as i8).collect()).unwrap(),
        (_, Elem::I4) => Tensor::from_i4(shape, (0..count).map(|_| rng.below(16) as i8 - 8).collect()).unwrap(),
        (_, Elem::I32) => Tensor::from_i32(shape, (0..count).map(|_| rng.below(4) as i32).collect()).unwrap(),
        (_, Elem::I64) => Tensor::from_i64(shape, (0..count).map(|_| rng.below(4) as i64).collect()).unwrap(),
        (_, Elem::F32) => Tensor::from_f32(shape, (0..count).map(|_| rng.unit()).collect()).unwrap(),
        (_, Elem::BF16) => Tensor::from_bf16(shape, (0..count).map(|_| half::bf16::from_f32(rng.unit())).collect()).unwrap(),
        (_, Elem::F16) => Tensor::from_f16(shape, (0..count).map(|_| half::f16::from_f32(rng.unit())).collect()).unwrap(),
        (_, other) => panic!("no generator for {other}"),
    }
}

/// Every function of the module with random arguments for it.
fn functions_with_inputs(module: &Module<'_>, seed: u64) -> Vec<(String, Vec<Tensor>)> {
    // Collect inside the walk (a panic there would cross MLIR's C frames), generate outside.
    let mut signatures = Vec::new();
    module.as_operation().walk(WalkOrder::PreOrder, |op| {
        if op.name().as_string_ref().as_str() == Ok("func.func") {
            let name = op.attribute("sym_name").ok().and_then(|a| StringAttribute::try_from(a).ok()).map(|s| s.value().to_string());
            let arguments = op.region(0).ok().and_then(|r| r.first_block()).map(|block| {
                (0..block.argument_count())
                    .filter_map(|i| block.argument(i).ok())
                    .map(|a| {
                        let argument: Value = a.into();
                        (TensorInfo::of(argument.r#type()), role(argument))
                    })
                    .collect::<Vec<_>>()
            });
            signatures.push((name, arguments));
        }
        WalkResult::Advance
    });
    let mut rng = Rng(seed);
    signatures
        .into_iter()
        .map(|(name, arguments)| {
            let args = arguments
                .expect("a function body")
                .iter()
                .map(|(info, role)| random_tensor(info.as_ref().expect("tensor arguments"), role, &mut rng))
                .collect();
            (name.expect("a function name"), args)
        })
        .collect()
}

/// Whether some grouped matmul of the module rounds its rows to bf16 or f16.
fn grouped_matmul_rounds(module: &Module<'_>) -> bool {
    let mut rounds = false;
    module.as_operation().walk(WalkOrder::PreOrder, |op| {
        if let Ok(Some(gmm)) = NpuOp::new(op)
            && gmm.name() == "npu.grouped_matmul"
            && gmm.result_info(0).is_some_and(|y| matches!(y.elem, Elem::BF16 | Elem::F16))
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
    // The interpreter has no semantics for scf.execute_region (it refuses it), so the
    // different-blocks fixture is covered by tests/fusion.rs alone: it is not fused, the IR stays.
    files.retain(|p| !p.ends_with("block_different_blocks.mlir"));
    files.push(root.join("examples/moe_layer.mlir"));
    files
}

fn pipeline_of(text: &str) -> String {
    text.lines().next().and_then(|l| l.strip_prefix("// pipeline: ")).unwrap_or("npu-fuse-gmm-finalize").to_string()
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
        let report = compiler.run_pipeline(&mut after, &pipeline_of(&text), &RunOptions::default()).unwrap();
        let fused = report.remarks.iter().any(|r| matches!(r.decision, RemarkDecision::Fused(_)));
        let rounds = grouped_matmul_rounds(&before);
        for seed in [1u64, 2, 3] {
            for (function, args) in functions_with_inputs(&before, seed * 7919 + name.len() as u64) {
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
                    (e, a) => panic!("{name} @{function} seed {seed}: before {:?}, after {:?}", e.err().map(|x| x.to_string()), a.err().map(|x| x.to_string())),
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
                        assert_eq!(e, a, "{name} @{function} seed {seed}: an unfused module must compute the same bits");
                    }
                }
                checked += 1;
                fused_checked += usize::from(fused);
            }
        }
    }
    eprintln!("{checked} runs ({fused_checked} fused); largest fused relative error {:.3e} in {}", worst.0, worst.1);
    assert!(checked > 50 && fused_checked > 30, "checked {checked} runs, {fused_checked} fused");
}

// The CPU loop target computes what the reference interpreter computes, for every function of
// every fusion fixture, before and after the fusion, at 1 and 2 threads.
#[test]
fn loop_target_matches_the_interpreter_before_and_after_fusion() {
    let compiler = Compiler::new().unwrap();
    let mut checked = 0;
    for path in cases() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.contains("cumsum_to_counts_older") {
            continue; // k = 2048, n = 7168: covered by the benchmark, too slow to interpret here.
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let pipeline = pipeline_of(&text);
        let module = compiler.load_file(&path).unwrap();
        for (function, args) in functions_with_inputs(&module, 11) {
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
                    assert!(comparison.within(tolerance), "{name} @{function} (fused: {fuse}, threads {threads}): relative {}", comparison.relative);
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 40, "checked {checked}");
}

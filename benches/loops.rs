//! Benchmark of the CPU loop target (`npu-lower-to-loops`) on the shapes of issue 4: the
//! torch_npu doc example, a DeepSeek-V3 decode shard and a Qwen3-30B-A3B shard. For each shape
//! it reports the fused kernel's time and GOP/s at 1 and 2 threads, our own lowering of the
//! unfused pair (grouped matmul writing its (m, n) output, then finalize routing) on the same
//! data, onnxruntime's unfused graph (`bench/ort_baseline.py`, run as a subprocess on the same
//! shape and thread count), the JIT compile time, and the fraction of this machine's int8 peak
//! (measured by an AVX-512 VNNI microbenchmark in the same process).
//!
//! Run: `cargo bench --bench loops` (needs `pip install onnx onnxruntime numpy` for the
//! onnxruntime column; without it that column says so).

use gmmfr::Compiler;
use gmmfr::runner::{Compiled, compile};
use gmmfr_dialect::tensor::Tensor;
use std::process::Command;
use std::time::{Duration, Instant};

struct Shape {
    name: &'static str,
    tokens: usize,
    top_k: usize,
    experts: usize,
    k: usize,
    n: usize,
    shared: Option<(usize, usize)>,
}

/// xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Inputs of both forms for one routing: the fused op's (x, w, group_list, scale, pts, shared,
/// logit, row_index) and the pair's (x, w, group_list, scale, pts, skip1, weights, src2dst).
struct Data {
    fused: Vec<Tensor>,
    unfused: Vec<Tensor>,
    fused_source: String,
    unfused_source: String,
}

fn tensor_type(dims: &[usize], elem: &str) -> String {
    format!(
        "tensor<{}x{elem}>",
        dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")
    )
}

fn make(shape: &Shape, rng: &mut Rng) -> Data {
    let (t, kk, e, k, n) = (shape.tokens, shape.top_k, shape.experts, shape.k, shape.n);
    let m = t * kk;
    // Each token picks topK distinct experts; rows are the sources sorted by expert (stable).
    let mut ids = Vec::with_capacity(m);
    for _ in 0..t {
        let mut chosen: Vec<usize> = Vec::new();
        while chosen.len() < kk {
            let c = rng.below(e);
            if !chosen.contains(&c) {
                chosen.push(c);
            }
        }
        ids.extend(chosen);
    }
    let mut gidx: Vec<usize> = (0..m).collect();
    gidx.sort_by_key(|&f| ids[f]);
    let mut counts = vec![0i64; e];
    for &id in &ids {
        counts[id] += 1;
    }
    let mut inverse = vec![0i32; m];
    for (p, &src) in gidx.iter().enumerate() {
        inverse[src] = p as i32;
    }
    let x: Vec<i8> = (0..m * k).map(|_| rng.next() as i8).collect();
    let (n1, k1) = (n.div_ceil(32), k.div_ceil(16));
    let w: Vec<i8> = (0..e * n1 * k1 * 16 * 32).map(|_| rng.next() as i8).collect();
    let scale: Vec<f32> = (0..e * n).map(|_| rng.unit() * 0.01).collect();
    let pts: Vec<f32> = (0..m).map(|_| rng.unit() * 0.01).collect();
    let weights: Vec<f32> = (0..m).map(|_| rng.unit()).collect();
    let logit: Vec<f32> = gidx.iter().map(|&src| weights[src]).collect();
    let row_index: Vec<i64> = gidx.iter().map(|&src| (src / kk) as i64).collect();
    let (bsdp, offset) = shape.shared.unwrap_or((0, 0));
    let shared: Vec<half::bf16> = (0..bsdp * n).map(|_| half::bf16::from_f32(rng.unit() - 0.5)).collect();
    let mut skip1 = vec![half::bf16::ZERO; t * n];
    skip1[offset * n..(offset + bsdp) * n].copy_from_slice(&shared);

    let x_t = Tensor::from_i8(vec![m, k], x).unwrap();
    let w_t = Tensor::from_i8(vec![e, n1, k1, 16, 32], w).unwrap();
    let gl_t = Tensor::from_i64(vec![e], counts).unwrap();
    let scale_t = Tensor::from_f32(vec![e, n], scale).unwrap();
    let pts_t = Tensor::from_f32(vec![m], pts).unwrap();
    let mut fused = vec![x_t.clone(), w_t.clone(), gl_t.clone(), scale_t.clone(), pts_t.clone()];
    let mut fused_types = vec![
        tensor_type(&[m, k], "i8"),
        tensor_type(&[e, n1, k1, 16, 32], "i8"),
        tensor_type(&[e], "i64"),
        tensor_type(&[e, n], "f32"),
        tensor_type(&[m], "f32"),
    ];
    if bsdp > 0 {
        fused.push(Tensor::from_bf16(vec![bsdp, n], shared).unwrap());
        fused_types.push(tensor_type(&[bsdp, n], "bf16"));
    }
    fused.push(Tensor::from_f32(vec![m], logit).unwrap());
    fused.push(Tensor::from_i64(vec![m], row_index).unwrap());
    fused_types.extend([tensor_type(&[m], "f32"), tensor_type(&[m], "i64")]);
    let args: Vec<String> = fused_types
        .iter()
        .enumerate()
        .map(|(i, ty)| format!("%a{i}: {ty}"))
        .collect();
    let values: Vec<String> = (0..fused_types.len()).map(|i| format!("%a{i}")).collect();
    let shared_segment = if bsdp > 0 { 1 } else { 0 };
    let out = tensor_type(&[t, n], "f32");
    let fused_source = format!(
        "func.func @fused({}) -> {out} {{\n  %r = \"npu.grouped_matmul_finalize_routing\"({}) {{dtype = 0 : i64, shared_input_weight = 1.0 : f32, shared_input_offset = {offset} : i64, output_bs = {t} : i64, group_list_type = 1 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 1, 0, 0, 1, {shared_segment}, 1, 1>}} : ({}) -> {out}\n  return %r : {out}\n}}\n",
        args.join(", "),
        values.join(", "),
        fused_types.join(", ")
    );
    let unfused = vec![
        x_t,
        w_t,
        gl_t,
        scale_t,
        pts_t,
        Tensor::from_bf16(vec![t, n], skip1).unwrap(),
        Tensor::from_f32(vec![t, kk], weights).unwrap(),
        Tensor::from_i32(vec![m], inverse).unwrap(),
    ];
    let y = tensor_type(&[m, n], "bf16");
    let out_bf16 = tensor_type(&[t, n], "bf16");
    let unfused_source = format!(
        "func.func @unfused(%x: {}, %w: {}, %gl: {}, %scale: {}, %pts: {}, %skip1: {out_bf16}, %weights: {}, %src2dst: {}) -> {out_bf16} {{\n  %y = \"npu.grouped_matmul\"(%x, %w, %gl, %scale, %pts) {{group_list_type = 1 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0>}} : ({}, {}, {}, {}, {}) -> {y}\n  %o = \"npu.moe_finalize_routing\"(%y, %skip1, %weights, %src2dst) {{drop_pad_mode = 2 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 1, 0>}} : ({y}, {out_bf16}, {}, {}) -> {out_bf16}\n  return %o : {out_bf16}\n}}\n",
        fused_types[0],
        fused_types[1],
        fused_types[2],
        fused_types[3],
        fused_types[4],
        tensor_type(&[t, kk], "f32"),
        tensor_type(&[m], "i32"),
        fused_types[0],
        fused_types[1],
        fused_types[2],
        fused_types[3],
        fused_types[4],
        tensor_type(&[t, kk], "f32"),
        tensor_type(&[m], "i32")
    );
    Data {
        fused,
        unfused,
        fused_source,
        unfused_source,
    }
}

fn time(compiled: &Compiled, args: &[Tensor], runs: usize) -> Duration {
    for _ in 0..2 {
        compiled.call(args).expect("the kernel runs");
    }
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            compiled.call(args).expect("the kernel runs");
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn ort(shape: &Shape, threads: usize) -> Option<f64> {
    let spec = format!(
        "{},{},{},{},{},{}",
        shape.tokens * shape.top_k,
        shape.k,
        shape.n,
        shape.experts,
        shape.tokens,
        shape.top_k
    );
    let mut command = Command::new("python3");
    command.args([
        concat!(env!("CARGO_MANIFEST_DIR"), "/bench/ort_baseline.py"),
        "--shape",
        &spec,
        "--threads",
        &threads.to_string(),
        "--repeat",
        "10",
    ]);
    if shape.shared.is_none() {
        command.arg("--no-shared");
    }
    let output = command.output().ok()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ort_ms_min="))
        .and_then(|v| v.parse().ok())
}

/// int8 multiply-accumulates per second of one core, from a loop of independent AVX-512 VNNI
/// dot products held in registers (the instruction an int8 GEMM at peak executes).
fn int8_peak_gmacs() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if !std::arch::is_x86_feature_detected!("avx512vnni") {
            return None;
        }
        // SAFETY: the feature is present (checked above).
        return Some(unsafe { vnni_peak() });
    }
    #[allow(unreachable_code)]
    None
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn vnni_peak() -> f64 {
    use std::arch::x86_64::*;
    let a = _mm512_set1_epi8(3);
    let b = _mm512_set1_epi8(5);
    let mut acc = [_mm512_setzero_si512(); 8];
    let iterations = 20_000_000u64;
    let start = Instant::now();
    for _ in 0..iterations {
        for slot in acc.iter_mut() {
            *slot = _mm512_dpbusd_epi32(*slot, a, b);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let sink: i32 = acc
        .iter()
        .map(|v| _mm512_reduce_add_epi32(*v))
        .fold(0, i32::wrapping_add);
    std::hint::black_box(sink);
    // Each dpbusd does 64 int8 multiply-accumulates.
    (iterations * 8 * 64) as f64 / seconds / 1e9
}

fn main() {
    let shapes = [
        Shape {
            name: "torch_npu doc example",
            tokens: 72,
            top_k: 8,
            experts: 8,
            k: 2048,
            n: 7168,
            shared: Some((18, 36)),
        },
        Shape {
            name: "DeepSeek-V3 decode shard",
            tokens: 16,
            top_k: 8,
            experts: 32,
            k: 2048,
            n: 7168,
            shared: None,
        },
        Shape {
            name: "Qwen3-30B-A3B shard",
            tokens: 64,
            top_k: 8,
            experts: 32,
            k: 768,
            n: 2048,
            shared: None,
        },
    ];
    let peak = int8_peak_gmacs();
    match peak {
        Some(p) => println!("int8 peak (AVX-512 VNNI, 1 core): {p:.1} GMAC/s = {:.1} GOP/s", 2.0 * p),
        None => println!("int8 peak: no AVX-512 VNNI on this CPU"),
    }
    let compiler = Compiler::new().expect("MLIR set-up");
    let mut rng = Rng(0x5eed);
    // GMMFR_BENCH_SHAPE=<substring of a shape name> runs only the matching shapes.
    let only = std::env::var("GMMFR_BENCH_SHAPE").ok();
    for shape in shapes
        .iter()
        .filter(|s| only.as_deref().is_none_or(|o| s.name.contains(o)))
    {
        let data = make(shape, &mut rng);
        let m = shape.tokens * shape.top_k;
        let gop = 2.0 * (m * shape.k * shape.n) as f64 / 1e9;
        println!(
            "\n{} (m={m} k={} n={} e={} batch={} topK={})",
            shape.name, shape.k, shape.n, shape.experts, shape.tokens, shape.top_k
        );
        let mut fused_times = Vec::new();
        for threads in [1usize, 2] {
            let start = Instant::now();
            let module = compiler
                .load_source(&data.fused_source, "fused.mlir")
                .expect("valid fused module");
            let fused = compile(&compiler, module, "fused", None, threads).expect("fused compiles");
            let jit = start.elapsed();
            let module = compiler
                .load_source(&data.unfused_source, "unfused.mlir")
                .expect("valid unfused module");
            let unfused = compile(&compiler, module, "unfused", None, threads).expect("unfused compiles");
            let t_fused = time(&fused, &data.fused, 10);
            let t_unfused = time(&unfused, &data.unfused, 5);
            let ort = ort(shape, threads);
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            let gops = gop / t_fused.as_secs_f64();
            let peak_fraction = peak.map(|p| gops / (2.0 * p * threads as f64));
            println!(
                "  {threads} thread(s): fused {:.2} ms ({gops:.1} GOP/s{}), unfused lowering {:.2} ms (fused {:.2}x faster), onnxruntime {} , JIT compile {:.0} ms",
                ms(t_fused),
                peak_fraction.map_or(String::new(), |f| format!(", {:.1}% of int8 peak", 100.0 * f)),
                ms(t_unfused),
                t_unfused.as_secs_f64() / t_fused.as_secs_f64(),
                ort.map_or("unavailable".to_string(), |o| format!(
                    "{o:.2} ms (fused {:.2}x faster)",
                    o / ms(t_fused)
                )),
                ms(jit)
            );
            fused_times.push(t_fused);
        }
        println!(
            "  2 threads vs 1: {:.2}x",
            fused_times[0].as_secs_f64() / fused_times[1].as_secs_f64()
        );
    }
}

//! Benchmark of `npu-fuse-gmm-finalize` on generated DeepSeek-V3-shaped modules (61 layers, 58
//! MoE) and ten times as many layers. Prints, for each size: parse + verify time, the pass time
//! (median of several runs, each on a freshly parsed module), and the ratios 610/61 and pass/parse.
//! Run: `cargo bench --bench fusion`.

use gmmfr::models::{ModelConfig, generate};
use gmmfr::{Compiler, RunOptions};
use std::time::{Duration, Instant};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn measure(compiler: &Compiler, layers: usize, runs: usize) -> (Duration, Duration, u64) {
    let source = generate(&ModelConfig::deepseek_v3().with_layers(layers));
    let mut parse = Vec::new();
    let mut pass = Vec::new();
    let mut fused = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let mut module = compiler
            .load_source(&source, "deepseek_v3.mlir")
            .expect("generated module is valid");
        parse.push(start.elapsed());
        let start = Instant::now();
        let report = compiler
            .run_pipeline(&mut module, "npu-fuse-gmm-finalize", &RunOptions::default())
            .expect("fusion runs");
        pass.push(start.elapsed());
        fused = report
            .statistics
            .get("npu-fuse-gmm-finalize")
            .and_then(|s| s.get("fused"))
            .copied()
            .unwrap_or(0);
    }
    (median(parse), median(pass), fused)
}

fn main() {
    let compiler = Compiler::with_unregistered_dialects().expect("MLIR set-up");
    let (parse_61, pass_61, fused_61) = measure(&compiler, 61, 7);
    let (parse_610, pass_610, fused_610) = measure(&compiler, 610, 3);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("layers  moe-layers-fused  parse+verify (ms)  npu-fuse-gmm-finalize (ms)  pass/parse");
    println!(
        "{:>6}  {:>16}  {:>17.2}  {:>26.2}  {:>10.2}",
        61,
        fused_61,
        ms(parse_61),
        ms(pass_61),
        ms(pass_61) / ms(parse_61)
    );
    println!(
        "{:>6}  {:>16}  {:>17.2}  {:>26.2}  {:>10.2}",
        610,
        fused_610,
        ms(parse_610),
        ms(pass_610),
        ms(pass_610) / ms(parse_610)
    );
    println!(
        "scaling 610/61: pass {:.2}x (budget 12x), parse {:.2}x",
        ms(pass_610) / ms(pass_61),
        ms(parse_610) / ms(parse_61)
    );
}

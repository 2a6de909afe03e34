//! Benchmark of `npu-fuse-gmm-finalize` on generated DeepSeek-V3-shaped modules (61 layers, 58
//! MoE) and ten times as many layers. Prints, for each size: parse + verify time, the pass time
//! (the fastest of several runs, each on a freshly parsed module: the minimum is the figure least
//! disturbed by other load on the machine), and the ratios 610/61 and pass/parse.
//! Run: `cargo bench --bench fusion`.

use gmmfr::models::{ModelConfig, generate};
use gmmfr::{Compiler, RunOptions};
use std::time::{Duration, Instant};

fn fastest(samples: Vec<Duration>) -> Duration {
    samples.into_iter().min().unwrap_or_default()
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
    (fastest(parse), fastest(pass), fused)
}

fn main() {
    let compiler = Compiler::with_unregistered_dialects().expect("MLIR set-up");
    let (parse_61, pass_61, fused_61) = measure(&compiler, 61, 15);
    let (parse_610, pass_610, fused_610) = measure(&compiler, 610, 7);
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

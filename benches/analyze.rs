//! Benchmark of `gmmfr analyze` end to end, in process, on generated DeepSeek-V3-shaped modules
//! (61 layers, 58 MoE) and ten times as many layers: read + parse + verify the file, build the
//! dataflow graphs and analyze (`analyzer::analyze`), render the JSON report. Each figure is the
//! median of several runs (27 of 61 layers, 9 of 610, interleaved), each on a freshly parsed
//! module; the graph construction alone is also timed (it is part of the analysis). Prints both
//! sizes and the ratios 610/61.
//! Run: `cargo bench --bench analyze`.

use gmmfr::Compiler;
use gmmfr::analyzer::{self, AnalyzeOptions, Format};
use gmmfr::models::{ModelConfig, generate};
use std::path::Path;
use std::time::{Duration, Instant};

/// The samples of one size, in milliseconds: parse + verify, graph alone, analysis (graph
/// included), JSON report, and their total (parse + analysis + report).
#[derive(Default)]
struct Samples {
    parse: Vec<Duration>,
    graph: Vec<Duration>,
    analysis: Vec<Duration>,
    report: Vec<Duration>,
    total: Vec<Duration>,
    candidates: usize,
    fused: usize,
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn fastest(samples: &[Duration]) -> Duration {
    samples.iter().min().copied().unwrap_or_default()
}

/// One end-to-end run on the module at `path`.
fn run(compiler: &Compiler, path: &Path, samples: &mut Samples) {
    let options = AnalyzeOptions::default();
    let start = Instant::now();
    let module = compiler.load_file(path).expect("generated module is valid");
    let parsed = start.elapsed();
    let analysis_start = Instant::now();
    let result = analyzer::analyze(&module, "deepseek_v3.mlir", &options);
    let analyzed = analysis_start.elapsed();
    let report_start = Instant::now();
    let json = analyzer::render(&result, Format::Json);
    let reported = report_start.elapsed();
    samples.total.push(start.elapsed());
    samples.parse.push(parsed);
    samples.analysis.push(analyzed);
    samples.report.push(reported);
    std::hint::black_box(json);

    let graph_start = Instant::now();
    std::hint::black_box(analyzer::dataflow::build(&module).len());
    samples.graph.push(graph_start.elapsed());
    let summary = result.summary();
    (samples.candidates, samples.fused) = (summary.candidates, summary.fused);
}

fn main() {
    let compiler = Compiler::with_unregistered_dialects().expect("MLIR set-up");
    let scratch = tempfile::tempdir().expect("temporary directory");
    let write = |layers: usize| {
        let path = scratch.path().join(format!("deepseek_v3_{layers}.mlir"));
        std::fs::write(&path, generate(&ModelConfig::deepseek_v3().with_layers(layers))).expect("write the module");
        path
    };
    let (small_path, large_path) = (write(61), write(610));
    let (mut small, mut large) = (Samples::default(), Samples::default());
    // Warm-up, then rounds that interleave the two sizes, so that load from other jobs on the
    // machine disturbs both alike.
    run(&compiler, &small_path, &mut Samples::default());
    for _ in 0..9 {
        for _ in 0..3 {
            run(&compiler, &small_path, &mut small);
        }
        run(&compiler, &large_path, &mut large);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "medians of {} (61 layers) and {} (610 layers) runs; fastest total in brackets",
        small.total.len(),
        large.total.len()
    );
    println!(
        "layers  candidates  fused  parse+verify (ms)  graph (ms)  analysis incl. graph (ms)  JSON report (ms)  total (ms)"
    );
    for (layers, s) in [(61, &small), (610, &large)] {
        println!(
            "{:>6}  {:>10}  {:>5}  {:>17.2}  {:>10.2}  {:>25.2}  {:>16.2}  {:>10.2} [{:.2}]",
            layers,
            s.candidates,
            s.fused,
            ms(median(&s.parse)),
            ms(median(&s.graph)),
            ms(median(&s.analysis)),
            ms(median(&s.report)),
            ms(median(&s.total)),
            ms(fastest(&s.total))
        );
    }
    let ratio = |f: fn(&Samples) -> &Vec<Duration>| ms(median(f(&large))) / ms(median(f(&small)));
    println!(
        "scaling 610/61 (medians): total {:.2}x (budget 12x), parse+verify {:.2}x, analysis {:.2}x, report {:.2}x; fastest totals {:.2}x",
        ratio(|s| &s.total),
        ratio(|s| &s.parse),
        ratio(|s| &s.analysis),
        ratio(|s| &s.report),
        ms(fastest(&large.total)) / ms(fastest(&small.total))
    );
    println!("61-layer total {:.1} ms (budget 1000 ms)", ms(median(&small.total)));
}

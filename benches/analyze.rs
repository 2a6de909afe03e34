//! Benchmark of `gmmfr analyze` end to end, in process, on generated DeepSeek-V3-shaped modules
//! (61 layers, 58 MoE) and ten times as many layers: read + parse + verify the file, build the
//! dataflow graphs and analyze (`analyzer::analyze`), render the JSON report. Each figure is the
//! median of several runs, each on a freshly parsed module; the graph construction alone is also
//! timed (it is part of the analysis). Prints both sizes and the ratios 610/61.
//! Run: `cargo bench --bench analyze`.

use gmmfr::Compiler;
use gmmfr::analyzer::{self, AnalyzeOptions, Format};
use gmmfr::models::{ModelConfig, generate};
use std::time::{Duration, Instant};

/// Medians of one size: parse + verify, graph alone, analysis (graph included), report, total.
struct Figures {
    parse: Duration,
    graph: Duration,
    analysis: Duration,
    report: Duration,
    total: Duration,
    candidates: usize,
    fused: usize,
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn measure(compiler: &Compiler, layers: usize, runs: usize) -> Figures {
    let scratch = tempfile::tempdir().expect("temporary directory");
    let path = scratch.path().join("deepseek_v3.mlir");
    std::fs::write(&path, generate(&ModelConfig::deepseek_v3().with_layers(layers))).expect("write the module");
    let options = AnalyzeOptions::default();
    let (mut parse, mut graph, mut analysis, mut report, mut total) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut candidates, mut fused) = (0, 0);
    for _ in 0..runs {
        let start = Instant::now();
        let module = compiler.load_file(&path).expect("generated module is valid");
        let parsed = start.elapsed();
        let analysis_start = Instant::now();
        let result = analyzer::analyze(&module, "deepseek_v3.mlir", &options);
        let analyzed = analysis_start.elapsed();
        let report_start = Instant::now();
        let json = analyzer::render(&result, Format::Json);
        let reported = report_start.elapsed();
        total.push(start.elapsed());
        parse.push(parsed);
        analysis.push(analyzed);
        report.push(reported);
        std::hint::black_box(json);

        let graph_start = Instant::now();
        std::hint::black_box(analyzer::dataflow::build(&module).len());
        graph.push(graph_start.elapsed());
        let summary = result.summary();
        (candidates, fused) = (summary.candidates, summary.fused);
    }
    Figures {
        parse: median(parse),
        graph: median(graph),
        analysis: median(analysis),
        report: median(report),
        total: median(total),
        candidates,
        fused,
    }
}

fn main() {
    let compiler = Compiler::with_unregistered_dialects().expect("MLIR set-up");
    // A warm-up run so that the first measured size does not pay for lazy initialization.
    let _ = measure(&compiler, 61, 1);
    let small = measure(&compiler, 61, 15);
    let large = measure(&compiler, 610, 7);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "layers  candidates  fused  parse+verify (ms)  graph (ms)  analysis incl. graph (ms)  JSON report (ms)  total (ms)"
    );
    for (layers, f) in [(61, &small), (610, &large)] {
        println!(
            "{:>6}  {:>10}  {:>5}  {:>17.2}  {:>10.2}  {:>25.2}  {:>16.2}  {:>10.2}",
            layers,
            f.candidates,
            f.fused,
            ms(f.parse),
            ms(f.graph),
            ms(f.analysis),
            ms(f.report),
            ms(f.total)
        );
    }
    println!(
        "scaling 610/61: total {:.2}x (budget 12x), parse {:.2}x, analysis {:.2}x, report {:.2}x; 61-layer total {:.1} ms (budget 1000 ms)",
        ms(large.total) / ms(small.total),
        ms(large.parse) / ms(small.parse),
        ms(large.analysis) / ms(small.analysis),
        ms(large.report) / ms(small.report),
        ms(small.total)
    );
}

//! The fusion-opportunity analyzer (`gmmfr analyze`): its reports on the generated whole-model
//! modules (JSON snapshots of small versions, assertions on the full-size ones), the graph facts
//! on hand-written fixtures (`tests/fixtures/analyzer/`), every fusion reason code on the fusion
//! fixtures, the text and DOT renderings, and the command line.

use gmmfr::Compiler;
use gmmfr::analyzer::{self, AnalyzeOptions, Format, GraphFact, Report, Verdict};
use gmmfr::models::{ModelConfig, generate};
use gmmfr_dialect::location::SourceLoc;
use gmmfr_dialect::profile::CannVersion;
use gmmfr_passes::fusion::{Precision, Target};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn loops() -> AnalyzeOptions {
    AnalyzeOptions::default()
}

fn ascend(cann_version: CannVersion) -> AnalyzeOptions {
    AnalyzeOptions {
        target: Target::Ascend,
        cann_version,
        precision: Precision::Refine,
    }
}

/// Generates, loads and analyzes a model; locations name `<model>.mlir`.
fn model_report(config: &ModelConfig, options: &AnalyzeOptions) -> Report {
    let compiler = Compiler::with_unregistered_dialects().unwrap();
    let source = format!("{}.mlir", config.name);
    let module = compiler
        .load_source(&generate(config), &source)
        .unwrap_or_else(|e| panic!("{}: {e}", config.name));
    analyzer::analyze(&module, &source, options)
}

fn fixture(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
        .join(name)
}

/// Analyzes a fixture; locations name it relative to `tests/fixtures`, so snapshots do not
/// depend on where the repository is checked out.
fn fixture_report(dir: &str, name: &str, options: &AnalyzeOptions) -> Report {
    let compiler = Compiler::with_unregistered_dialects().unwrap();
    let text = std::fs::read_to_string(fixture(dir, name)).unwrap();
    let source = format!("{dir}/{name}");
    let module = compiler
        .load_source(&text, &source)
        .unwrap_or_else(|e| panic!("{source}: {e}"));
    analyzer::analyze(&module, &source, options)
}

fn moe_layers(config: &ModelConfig) -> usize {
    config.layers - config.dense_layers
}

/// Every model configuration, full size, with the target its snapshot is taken under.
fn snapshot_configs() -> Vec<(&'static str, ModelConfig, AnalyzeOptions)> {
    let older = ascend(CannVersion::Older);
    vec![
        ("deepseek_v3_a8w8_ascend_older", ModelConfig::deepseek_v3(), older),
        (
            "deepseek_v3_bf16_loops",
            ModelConfig::deepseek_v3().bf16().named("deepseek_v3_bf16"),
            loops(),
        ),
        (
            "deepseek_v3_ep8_rank1_loops",
            ModelConfig::deepseek_v3()
                .expert_parallel(8, 1)
                .named("deepseek_v3_ep8_rank1"),
            loops(),
        ),
        (
            "deepseek_v2_lite_a8w8_ascend_older",
            ModelConfig::deepseek_v2_lite(),
            older,
        ),
        (
            "deepseek_v2_lite_bf16_loops",
            ModelConfig::deepseek_v2_lite().bf16().named("deepseek_v2_lite_bf16"),
            loops(),
        ),
        ("qwen3_30b_a3b_a8w8_ascend_older", ModelConfig::qwen3_30b_a3b(), older),
        (
            "qwen3_30b_a3b_a8w8_ascend_newer",
            ModelConfig::qwen3_30b_a3b(),
            ascend(CannVersion::Newer),
        ),
        (
            "qwen3_30b_a3b_bf16_loops",
            ModelConfig::qwen3_30b_a3b().bf16().named("qwen3_30b_a3b_bf16"),
            loops(),
        ),
        ("mixtral_8x7b_a8w8_ascend_older", ModelConfig::mixtral_8x7b(), older),
        (
            "mixtral_8x7b_bf16_loops",
            ModelConfig::mixtral_8x7b().bf16().named("mixtral_8x7b_bf16"),
            loops(),
        ),
        (
            "mixtral_8x7b_bf16_ascend_newer",
            ModelConfig::mixtral_8x7b().bf16().named("mixtral_8x7b_bf16"),
            ascend(CannVersion::Newer),
        ),
    ]
}

// JSON snapshot of every model configuration (A8W8 and bf16, an EP shard), cut to its first MoE layer.
#[test]
fn model_reports_match_snapshots() {
    for (name, config, options) in snapshot_configs() {
        let small = config.clone().with_layers(config.dense_layers + 1);
        let report = model_report(&small, &options);
        assert_eq!(report.candidates.len(), 1, "{name}");
        insta::assert_snapshot!(format!("model_{name}"), analyzer::json::render(&report));
    }
}

// Full size: one candidate per MoE layer in every model, and every layer decided alike.
#[test]
fn full_size_models_report_every_moe_layer_alike() {
    for (name, config, options) in snapshot_configs() {
        let report = model_report(&config, &options);
        assert_eq!(report.candidates.len(), moe_layers(&config), "{name}");
        let first = &report.candidates[0];
        for candidate in &report.candidates {
            assert_eq!(candidate.verdict, first.verdict, "{name} #{}", candidate.id);
            assert_eq!(candidate.reasons, first.reasons, "{name} #{}", candidate.id);
            assert_eq!(candidate.shapes, first.shapes, "{name} #{}", candidate.id);
        }
        let summary = report.summary();
        assert_eq!(summary.fused + summary.blocked, moe_layers(&config), "{name}");
    }
}

// Full DeepSeek-V2-Lite, older release: every MoE layer fails exactly the k (1408) and n (2048) whitelist.
#[test]
fn deepseek_v2_lite_older_ascend_fails_the_whitelist_on_every_moe_layer() {
    let config = ModelConfig::deepseek_v2_lite();
    let report = model_report(&config, &ascend(CannVersion::Older));
    assert_eq!(report.candidates.len(), 26);
    for c in &report.candidates {
        assert_eq!(c.verdict, Verdict::Blocked, "#{}", c.id);
        let codes: Vec<&str> = c.reasons.iter().map(|r| r.code.as_str()).collect();
        assert_eq!(
            codes,
            ["ascend-profile:older-k-whitelist", "ascend-profile:older-n-whitelist"],
            "#{}",
            c.id
        );
        let k = c.reasons[0].profile.as_ref().expect("k violation");
        assert_eq!((k.subject.as_str(), k.actual.as_str()), ("k", "1408"));
        assert!(k.allowed.starts_with("2048"), "{}", k.allowed);
        let n = c.reasons[1].profile.as_ref().expect("n violation");
        assert_eq!((n.subject.as_str(), n.actual.as_str()), ("n", "2048"));
        assert!(n.allowed.starts_with("7168"), "{}", n.allowed);
        assert_eq!(
            (c.shapes.k, c.shapes.n, c.shapes.e, c.shapes.top_k),
            (Some(1408), Some(2048), Some(64), Some(6))
        );
    }
    let summary = report.summary();
    assert_eq!(
        summary.blocked_by_reason.get("ascend-profile:older-k-whitelist"),
        Some(&26)
    );
    assert_eq!(
        summary.blocked_by_reason.get("ascend-profile:older-n-whitelist"),
        Some(&26)
    );
    // The newer release accepts the same shapes.
    let newer = model_report(&config, &ascend(CannVersion::Newer));
    assert!(newer.candidates.iter().all(|c| c.verdict == Verdict::Fused));
}

// Full DeepSeek-V3 A8W8 fuses every MoE layer under loops and Ascend (both releases), saving its (128, 7168) bf16 rows.
#[test]
fn deepseek_v3_a8w8_fuses_every_moe_layer_under_both_targets() {
    let config = ModelConfig::deepseek_v3();
    for options in [loops(), ascend(CannVersion::Older), ascend(CannVersion::Newer)] {
        let report = model_report(&config, &options);
        assert_eq!(report.candidates.len(), 58, "{options:?}");
        for c in &report.candidates {
            assert_eq!(c.verdict, Verdict::Fused, "{options:?} #{}: {:?}", c.id, c.reasons);
            assert_eq!(c.scenario.as_deref(), Some("A8W8"));
            assert_eq!(c.worth.bytes_saved, Some(2 * 128 * 7168 * 2));
            assert_eq!(c.worth.flops, Some(2 * 128 * 2048 * 7168));
        }
        let summary = report.summary();
        assert_eq!((summary.fused, summary.blocked), (58, 0));
        assert_eq!(summary.bytes_saved, 58 * 2 * 128 * 7168 * 2);
        assert!(summary.time_saved_us > 0.0, "{summary:?}");
    }
}

// The analyzer only reads: the module prints the same before and after.
#[test]
fn analysis_leaves_the_module_unchanged() {
    let compiler = Compiler::with_unregistered_dialects().unwrap();
    let source = generate(&ModelConfig::deepseek_v3().with_layers(5));
    let module = compiler.load_source(&source, "deepseek_v3.mlir").unwrap();
    let before = gmmfr::print_module(&module);
    let report = analyzer::analyze(&module, "deepseek_v3.mlir", &ascend(CannVersion::Older));
    assert_eq!(report.candidates.len(), 2);
    assert_eq!(before, gmmfr::print_module(&module));
}

// The JSON has the documented, versioned schema: candidates (location, decision, reasons, shapes, ...), summary.
#[test]
fn json_follows_the_documented_schema() {
    let report = model_report(
        &ModelConfig::deepseek_v2_lite().with_layers(3),
        &ascend(CannVersion::Older),
    );
    let value: serde_json::Value = serde_json::from_str(&analyzer::json::render(&report)).unwrap();
    assert_eq!(value["schema"], analyzer::json::SCHEMA_VERSION);
    let candidates = value["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2);
    for c in candidates {
        for key in [
            "location",
            "decision",
            "reasons",
            "shapes",
            "bytes_saved",
            "spelling",
            "operands",
        ] {
            assert!(c.get(key).is_some(), "missing {key}: {c}");
        }
        assert_eq!(c["decision"], "blocked");
        assert_eq!(c["reasons"][0]["profile"]["actual"], "1408");
    }
    assert_eq!(value["summary"]["candidates"], 2);
    assert_eq!(
        value["summary"]["blocked_by_reason"]["ascend-profile:older-k-whitelist"],
        2
    );
}

// Text and DOT snapshots of a small blocked model, DOT of a fused one, and the text report of the bundled example.
#[test]
fn text_and_dot_renderings() {
    let report = model_report(
        &ModelConfig::deepseek_v2_lite().with_layers(3),
        &ascend(CannVersion::Older),
    );
    insta::assert_snapshot!(
        "text_deepseek_v2_lite_ascend_older",
        analyzer::render(&report, Format::Text)
    );
    let dot = analyzer::render(&report, Format::Dot);
    assert!(dot.contains("color=\"firebrick\""), "{dot}");
    insta::assert_snapshot!("dot_deepseek_v2_lite_ascend_older", dot);

    let report = model_report(&ModelConfig::deepseek_v3().with_layers(4), &loops());
    let dot = analyzer::render(&report, Format::Dot);
    assert!(
        dot.contains("color=\"forestgreen\"") && !dot.contains("firebrick"),
        "{dot}"
    );
    insta::assert_snapshot!("dot_deepseek_v3_loops", dot);

    let compiler = Compiler::with_unregistered_dialects().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/moe_layer.mlir");
    let text = std::fs::read_to_string(&example).unwrap();
    let module = compiler.load_source(&text, "examples/moe_layer.mlir").unwrap();
    let report = analyzer::analyze(&module, "examples/moe_layer.mlir", &loops());
    insta::assert_snapshot!("text_example_moe_layer", analyzer::render(&report, Format::Text));
}

// Graph fact: the intermediate's other user, which does not reach finalize (no cycle).
#[test]
fn graph_fact_other_users() {
    let report = fixture_report("analyzer", "other_users.mlir", &loops());
    let [c] = report.candidates.as_slice() else {
        panic!("one candidate")
    };
    assert_eq!(c.codes(), ["intermediate-has-other-users"]);
    let [
        GraphFact::OtherUser {
            user,
            operand,
            reaches_finalize,
        },
    ] = c.graph_facts.as_slice()
    else {
        panic!("{:?}", c.graph_facts)
    };
    assert_eq!(
        (user.name.as_str(), *operand, *reaches_finalize),
        ("model.row_norms", 0, false)
    );
    assert!(
        matches!(user.location, SourceLoc::File { line: 10, .. }),
        "{:?}",
        user.location
    );
    insta::assert_snapshot!("fact_other_users", analyzer::json::render(&report));
}

// Graph fact: a would-be cycle grouped_matmul -> op -> finalize, directly (skip1) and through a nested region.
#[test]
fn graph_fact_would_be_cycle() {
    let report = fixture_report("analyzer", "would_be_cycle.mlir", &loops());
    assert_eq!(report.candidates.len(), 2);
    let paths: Vec<Vec<String>> = report
        .candidates
        .iter()
        .map(|c| {
            assert_eq!(c.codes(), ["intermediate-has-other-users"]);
            assert!(
                matches!(
                    c.graph_facts.first(),
                    Some(GraphFact::OtherUser {
                        reaches_finalize: true,
                        ..
                    })
                ),
                "{:?}",
                c.graph_facts
            );
            let Some(GraphFact::WouldBeCycle { path }) = c.graph_facts.get(1) else {
                panic!("{:?}", c.graph_facts)
            };
            path.iter().map(|op| op.name.clone()).collect()
        })
        .collect();
    assert_eq!(
        paths,
        [
            vec!["npu.grouped_matmul", "model.shared_gate", "npu.moe_finalize_routing"],
            vec![
                "npu.grouped_matmul",
                "model.rescore",
                "scf.execute_region",
                "npu.moe_finalize_routing"
            ],
        ]
    );
    insta::assert_snapshot!("fact_would_be_cycle", analyzer::json::render(&report));
}

// Graph fact: the two ops in different regions (finalize inside scf.if, the grouped matmul in the function body).
#[test]
fn graph_fact_different_regions() {
    let report = fixture_report("analyzer", "different_regions.mlir", &loops());
    let [c] = report.candidates.as_slice() else {
        panic!("one candidate")
    };
    assert_eq!(c.codes(), ["different-blocks"]);
    let [
        GraphFact::DifferentRegions {
            gmm_enclosing,
            finalize_enclosing,
            common,
        },
    ] = c.graph_facts.as_slice()
    else {
        panic!("{:?}", c.graph_facts)
    };
    assert!(gmm_enclosing.is_empty());
    let names: Vec<&str> = finalize_enclosing.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["scf.if"]);
    assert_eq!(
        common.as_ref().map(|c| c.name.as_str()),
        Some("func.func @different_regions")
    );
    insta::assert_snapshot!("fact_different_regions", analyzer::json::render(&report));
}

// A dynamic size: decision and flops reported, bytes and times null, counted as unknown worth, not in the totals.
#[test]
fn dynamic_sizes_leave_the_worth_unknown() {
    let report = fixture_report("analyzer", "dynamic_rows.mlir", &loops());
    let [c] = report.candidates.as_slice() else {
        panic!("one candidate")
    };
    assert_eq!(c.verdict, Verdict::Fused);
    assert_eq!(c.worth.flops, Some(2 * 16 * 64 * 64));
    assert_eq!((c.worth.bytes_saved, c.worth.time_saved_us), (None, None));
    let summary = report.summary();
    assert_eq!((summary.unknown_worth, summary.bytes_saved), (1, 0));
    let value: serde_json::Value = serde_json::from_str(&analyzer::json::render(&report)).unwrap();
    assert!(value["candidates"][0]["bytes_saved"].is_null());
    assert!(analyzer::render(&report, Format::Text).contains("not in the totals: 1 candidate(s) with a dynamic size"));
}

// Every loadable fixture of the repository is analyzed and rendered in all three formats without a panic.
#[test]
fn every_loadable_fixture_is_analyzed_and_rendered() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "mlir") {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 50, "{} fixtures", files.len());
    let compiler = Compiler::with_unregistered_dialects().unwrap();
    let mut analyzed = 0;
    for path in files {
        if compiler.load_file(&path).is_err() {
            continue;
        }
        for options in [loops(), ascend(CannVersion::Older)] {
            // torch-mlir exports go through the front end first.
            let report = analyzer::analyze_file(&compiler, &path, &options)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for format in [Format::Text, Format::Dot] {
                assert!(!analyzer::render(&report, format).is_empty());
            }
            let json = analyzer::json::render(&report);
            serde_json::from_str::<serde_json::Value>(&json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        analyzed += 1;
    }
    assert!(analyzed > 40, "{analyzed} fixtures loaded");
}

/// (line, expectation) for every `expect-fusion` annotation of a fusion fixture.
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

/// The analyzer options a fusion fixture's `// pipeline: npu-fuse-gmm-finalize{...}` asks for.
fn options_of(text: &str) -> AnalyzeOptions {
    let mut options = AnalyzeOptions::default();
    let first = text.lines().next().unwrap_or("");
    let Some(body) = first.split('{').nth(1).and_then(|b| b.split('}').next()) else {
        return options;
    };
    for pair in body.split_whitespace() {
        match pair.split_once('=') {
            Some(("target", "ascend")) => options.target = Target::Ascend,
            Some(("precision", "exact")) => options.precision = Precision::Exact,
            Some(("cann-version", version)) => options.cann_version = version.parse().unwrap(),
            other => panic!("unexpected pipeline option {other:?}"),
        }
    }
    options
}

// Every fusion reason code triggers in the analyzer on the fusion fixtures, exactly as their annotations expect.
#[test]
fn every_fusion_reason_code_triggers_on_the_fusion_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fusion");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".mlir"))
        .collect();
    names.sort();
    let mut seen = BTreeSet::new();
    let mut failures = Vec::new();
    for name in &names {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let report = fixture_report("fusion", name, &options_of(&text));
        let mut found: Vec<(usize, String)> = report
            .candidates
            .iter()
            .map(|c| {
                let SourceLoc::File { line, .. } = c.location else {
                    panic!("{name}: candidate without a line")
                };
                let decision = match c.verdict {
                    Verdict::Fused => "fused".to_string(),
                    Verdict::Blocked => format!(
                        "not-fused: {}",
                        c.reasons.iter().map(|r| r.code.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                };
                (line, decision)
            })
            .collect();
        found.sort();
        if found != expectations(&text) {
            failures.push(format!("{name}: expected {:?}, got {found:?}", expectations(&text)));
        }
        seen.extend(
            report
                .candidates
                .iter()
                .flat_map(|c| c.reasons.iter().map(|r| r.code.clone())),
        );
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    let codes = [
        "intermediate-has-other-users",
        "different-blocks",
        "operands-do-not-dominate",
        "skip2-present",
        "finalize-bias-present",
        "padded-drop-pad-mode",
        "group-list-pairs",
        "gmm-bias-unsupported",
        "precision-exact",
        "index-correspondence-unproven",
        "split-mapping",
        "routing-drops-tokens",
        "routing-shape-mismatch",
        "gidx-needs-extra-computation",
        "skip1-not-bf16",
        "ascend-profile:n-min-256",
    ];
    let missing: Vec<&str> = codes.iter().copied().filter(|c| !seen.contains(*c)).collect();
    assert!(missing.is_empty(), "codes never triggered: {missing:?}");
}

// A profile reason carries the structured violation (subject n, actual 64, allowed >= 256).
#[test]
fn profile_reasons_carry_actual_and_allowed() {
    let report = fixture_report("fusion", "block_ascend_profile.mlir", &ascend(CannVersion::Newer));
    let [c] = report.candidates.as_slice() else {
        panic!("one candidate")
    };
    let profile = c.reasons[0].profile.as_ref().expect("structured violation");
    assert_eq!(
        (
            profile.constraint,
            profile.subject.as_str(),
            profile.actual.as_str(),
            profile.allowed.as_str()
        ),
        ("n-min-256", "n", "64", ">= 256")
    );
}

fn gmmfr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gmmfr")).args(args).output().unwrap()
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

// CLI: unknown flags and bad flag values are usage errors (exit 2).
#[test]
fn cli_bad_flags_exit_2() {
    for (args, needle) in [
        (vec!["analyze", &example(), "--bogus"], "unexpected argument '--bogus'"),
        (vec!["analyze", &example(), "--format", "yaml"], "invalid value 'yaml'"),
        (vec!["analyze", &example(), "--target", "gpu"], "invalid value 'gpu'"),
        (
            vec!["analyze", &example(), "--cann-version", "ancient"],
            "unknown CANN version 'ancient'",
        ),
        (vec!["analyze"], "required"),
    ] {
        let output = gmmfr(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(needle), "{args:?}: {}", stderr(&output));
    }
}

// CLI: a missing file and malformed IR are input errors (exit 1) with a located message.
#[test]
fn cli_missing_or_bad_file_exits_1_located() {
    let output = gmmfr(&["analyze", "/nonexistent/model.mlir"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("/nonexistent/model.mlir: error: cannot read file"),
        "{}",
        stderr(&output)
    );
    let scratch = tempfile::tempdir().unwrap();
    let bad = scratch.path().join("bad.mlir");
    std::fs::write(&bad, "func.func @f( {").unwrap();
    let output = gmmfr(&["analyze", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("bad.mlir:1:14: error:"), "{}", stderr(&output));
    assert!(!stderr(&output).contains("panicked"));
}

// CLI: the three formats, -o writes the file, and opaque model ops are accepted.
#[test]
fn cli_formats_and_output_file() {
    let scratch = tempfile::tempdir().unwrap();
    let model = scratch.path().join("deepseek_v2_lite.mlir");
    std::fs::write(&model, generate(&ModelConfig::deepseek_v2_lite().with_layers(3))).unwrap();
    let model = model.to_str().unwrap();

    let output = gmmfr(&["analyze", model, "--target", "ascend", "--cann-version", "older"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("k is 1408, allowed 2048 on the older release"), "{text}");
    assert!(
        text.contains("summary: 2 candidate(s) in 1 function(s): 0 fused, 2 blocked"),
        "{text}"
    );

    let json = scratch.path().join("report.json");
    let output = gmmfr(&["analyze", model, "--format", "json", "-o", json.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(output.stdout.is_empty());
    let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(value["summary"]["fused"], 2);

    let output = gmmfr(&["analyze", model, "--format", "dot"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("// gmmfr analyze"));

    let output = gmmfr(&["analyze", &example(), "-o", "/nonexistent/dir/out.txt"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("/nonexistent/dir/out.txt: error: cannot write"),
        "{}",
        stderr(&output)
    );
}

/// Analyzes a torch-mlir export from `tests/fixtures/torch/` (front end included).
fn torch_report(name: &str, options: &AnalyzeOptions) -> Report {
    let compiler = Compiler::with_unregistered_dialects().unwrap();
    let source = format!("torch/{name}.mlir");
    let text = std::fs::read_to_string(fixture("torch", &format!("{name}.mlir"))).unwrap();
    analyzer::analyze_source(&compiler, &text, &source, options).unwrap_or_else(|e| panic!("{source}: {e}"))
}

// The transformers whole-model exports (front end + recognition first): one candidate per MoE
// layer (Qwen3-MoE: 3 of 3 layers; DeepSeek-V3: 2 MoE layers after 1 dense), every one
// recognized from the transformers spelling, located in the model's Python source, fused under
// the loop target; JSON snapshots under both targets.
#[test]
fn transformers_exports_report_every_moe_layer() {
    for (name, layers) in [("hf_qwen3_model_grouped", 3), ("hf_deepseek_v3_model_grouped", 2)] {
        for (target, options) in [("loops", loops()), ("ascend_newer", ascend(CannVersion::Newer))] {
            let report = torch_report(name, &options);
            assert!(report.front_end, "{name}: the front end ran");
            assert!(report.unrecognized.is_empty(), "{name}: {:?}", report.unrecognized);
            assert_eq!(report.candidates.len(), layers, "{name} {target}");
            for c in &report.candidates {
                assert_eq!(c.spelling, "torch.aten.sum.dim_IntList (recognized)", "{name}");
                assert!(
                    c.call_stack.iter().any(|l| l.to_string().contains("modeling_")),
                    "{name}: the stack reaches the model's file: {:?}",
                    c.call_stack
                );
                if target == "loops" {
                    assert_eq!(c.verdict, Verdict::Fused, "{name} #{}: {:?}", c.id, c.reasons);
                }
            }
            insta::assert_snapshot!(format!("torch_{name}_{target}"), analyzer::json::render(&report));
        }
    }
}

// Combines the front end finds but cannot recognize are reported with their reason codes (not
// as candidates), and count in the summary per code.
#[test]
fn unrecognized_torch_combines_are_reported_with_codes() {
    for (name, code) in [
        ("neg_weight_after_sum", "weights-not-per-slot"),
        ("neg_nonlinear_between", "rows-not-from-grouped-matmul"),
    ] {
        let report = torch_report(name, &loops());
        assert!(report.candidates.is_empty(), "{name}: no candidate");
        assert_eq!(report.unrecognized.len(), 1, "{name}");
        assert!(report.unrecognized[0].codes.iter().any(|c| c == code), "{name}: {:?}", report.unrecognized);
        let summary = report.summary();
        assert_eq!(summary.unrecognized_by_reason.get(code), Some(&1), "{name}");
        let text = analyzer::render(&report, Format::Text);
        assert!(text.contains(&format!("not recognized: ")) && text.contains(code), "{text}");
    }
    // torch_npu's own ops need no recognition: their spelling is kept.
    let report = torch_report("npu_a8w8_mode2", &loops());
    assert_eq!(report.candidates.len(), 1);
    assert_eq!(report.candidates[0].spelling, "torch_npu.npu_moe_finalize_routing");
}

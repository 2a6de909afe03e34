//! `gmmfr analyze`: report every MoE combine candidate of a module without changing it.

use gmmfr::analyzer::{self, AnalyzeError, AnalyzeOptions, Format};
use gmmfr::{Compiler, Error};
use gmmfr_dialect::profile::CannVersion;
use gmmfr_passes::fusion::{Precision, Target};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// The target whose legality decides `fused`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum TargetArg {
    /// Any valid IR (the CPU loop target).
    Loops,
    /// Also the Ascend profile (SPEC section 4).
    Ascend,
}

/// The fusion's precision policy.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PrecisionArg {
    /// Allow the fused op to skip the grouped matmul's bf16/f16 rounding (the default).
    Refine,
    /// Fuse only when nothing is rounded differently.
    Exact,
}

/// How the report prints.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    /// A table and the summary.
    Text,
    /// The versioned JSON schema (README, "Analyzer").
    Json,
    /// Graphviz DOT of each candidate's MoE subgraph.
    Dot,
}

/// The arguments of `gmmfr analyze`.
#[derive(clap::Args)]
pub struct Args {
    /// The module to analyze (npu IR; ops of other dialects around it are accepted).
    input: PathBuf,
    /// The target whose legality decides `fused`.
    #[arg(long, value_enum, default_value = "loops")]
    target: TargetArg,
    /// CANN release whose restrictions apply with --target ascend: older or newer.
    #[arg(long, default_value = "newer", value_parser = |s: &str| s.parse::<CannVersion>())]
    cann_version: CannVersion,
    /// The fusion's precision policy.
    #[arg(long, value_enum, default_value = "refine")]
    precision: PrecisionArg,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: FormatArg,
    /// Output file (default: standard output).
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
}

/// Loads, analyzes and prints (or writes) the report.
pub fn run(args: Args) -> Result<ExitCode, Error> {
    let options = AnalyzeOptions {
        target: match args.target {
            TargetArg::Loops => Target::Loops,
            TargetArg::Ascend => Target::Ascend,
        },
        cann_version: args.cann_version,
        precision: match args.precision {
            PrecisionArg::Refine => Precision::Refine,
            PrecisionArg::Exact => Precision::Exact,
        },
    };
    let format = match args.format {
        FormatArg::Text => Format::Text,
        FormatArg::Json => Format::Json,
        FormatArg::Dot => Format::Dot,
    };
    // Whole models carry opaque ops of other dialects around their MoE layers.
    let compiler = Compiler::with_unregistered_dialects()?;
    let report = analyzer::analyze_file(&compiler, &args.input, &options)?;
    let text = analyzer::render(&report, format);
    match &args.output {
        Some(path) => std::fs::write(path, text.as_bytes()).map_err(|source| AnalyzeError::Write {
            path: path.display().to_string(),
            source,
        })?,
        None => {
            let _ = std::io::stdout().write_all(text.as_bytes());
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `gmmfr opt`: parse, verify, run a pipeline, print.

use gmmfr::{Compiler, Error, RunOptions, print_module};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Input file, or - for standard input.
    #[arg(default_value = "-")]
    input: String,
    /// Accept ops of dialects MLIR does not know (opaque model ops, torch-mlir output).
    #[arg(long)]
    allow_unregistered_dialect: bool,
    /// Pass pipeline: our passes (see `gmmfr passes`) and upstream MLIR passes, comma-separated.
    #[arg(long)]
    pass_pipeline: Option<String>,
    /// Print the IR after every pipeline step to stderr.
    #[arg(long)]
    print_ir_after_all: bool,
    /// Print pass statistics to stderr.
    #[arg(long)]
    pass_statistics: bool,
    /// Print remarks to stderr: every pass's as text, or the fusion remarks (one per candidate
    /// pair) as a JSON array.
    #[arg(long, value_enum)]
    remarks: Option<RemarksFormat>,
    /// Output file (default: standard output).
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
}

/// How `--remarks` prints.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum RemarksFormat {
    /// `file:line:col: remark: ...` lines.
    Text,
    /// One JSON array of remark objects.
    Json,
}

pub fn run(args: Args) -> Result<ExitCode, Error> {
    let compiler = if args.allow_unregistered_dialect {
        Compiler::with_unregistered_dialects()?
    } else {
        Compiler::new()?
    };
    let mut module = if args.input == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| Error::Write {
            path: "<stdin>".into(),
            message: e.to_string(),
        })?;
        compiler.load_source(&text, "<stdin>")?
    } else {
        compiler.load_file(std::path::Path::new(&args.input))?
    };
    if let Some(pipeline) = &args.pass_pipeline {
        let options = RunOptions {
            print_ir_after_all: args.print_ir_after_all,
        };
        let report = compiler.run_pipeline(&mut module, pipeline, &options)?;
        // Remarks are printed only on request; warnings always.
        for diagnostic in report
            .diagnostics
            .iter()
            .filter(|d| d.severity != gmmfr_dialect::diagnostics::Severity::Remark)
        {
            eprintln!("{diagnostic}");
        }
        match args.remarks {
            Some(RemarksFormat::Text) => {
                for remark in report
                    .diagnostics
                    .iter()
                    .filter(|d| d.severity == gmmfr_dialect::diagnostics::Severity::Remark)
                {
                    eprintln!("{remark}");
                }
            }
            Some(RemarksFormat::Json) => {
                let items: Vec<String> = report.remarks.iter().map(|r| r.to_json()).collect();
                eprintln!("[{}]", items.join(",\n "));
            }
            None => {}
        }
        for (step, ir) in &report.ir_after {
            eprintln!("// -----// IR Dump After {step} //----- //\n{ir}");
        }
        if args.pass_statistics {
            for (pass, statistics) in report.statistics.iter().filter(|(_, s)| !s.is_empty()) {
                eprintln!("{pass}:");
                for (name, value) in statistics {
                    eprintln!("  {name}: {value}");
                }
            }
        }
    }
    let text = print_module(&module);
    match &args.output {
        Some(path) => std::fs::write(path, text.as_bytes()).map_err(|e| Error::Write {
            path: path.display().to_string(),
            message: e.to_string(),
        })?,
        None => {
            let _ = std::io::stdout().write_all(text.as_bytes());
        }
    }
    Ok(ExitCode::SUCCESS)
}

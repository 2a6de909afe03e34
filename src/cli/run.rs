//! `gmmfr run`: run any function of a module on the CPU with `.npy` arguments.

use gmmfr::{Compiler, Error};
use gmmfr_dialect::npy::{read_npy, write_npy};
use gmmfr_dialect::tensor::Tensor;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The module.
    input: PathBuf,
    /// The function to run.
    #[arg(long)]
    entry: String,
    /// A pipeline to run first (e.g. npu-fuse-gmm-finalize); the loop lowering always follows.
    #[arg(long)]
    pass_pipeline: Option<String>,
    /// Argument tensors in order, as .npy (bf16 arguments as f32 values exactly representable in bf16).
    #[arg(long = "arg", conflicts_with = "random_inputs")]
    args: Vec<PathBuf>,
    /// Instead of --arg: random arguments valid for their roles (expert ids, group lists,
    /// index maps), from this seed.
    #[arg(long)]
    random_inputs: Option<u64>,
    /// Also evaluate the function as written (before any pass) with the reference interpreter
    /// on the same arguments, print the error, and fail above the tolerance (1e-5 of the
    /// output's magnitude; 1e-2 with --pass-pipeline, since fusion may skip a bf16 rounding).
    #[arg(long)]
    check: bool,
    /// Expected results in order, as .npy (e.g. PyTorch's own output): each result is compared
    /// and the command fails above --tolerance.
    #[arg(long = "expect")]
    expected: Vec<PathBuf>,
    /// Relative tolerance for --expect: max |actual - expected| / max |expected|.
    #[arg(long, default_value_t = 1e-5)]
    tolerance: f64,
    /// Output files for the results in order, as .npy.
    #[arg(short = 'o', long = "output")]
    outputs: Vec<PathBuf>,
    /// Threads (parallel over output-column blocks).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Accept ops of dialects MLIR does not know.
    #[arg(long)]
    allow_unregistered_dialect: bool,
}

/// Compares each (actual, expected, source of expected) pair, prints the worst relative error
/// against `what`, and says whether it is within `tolerance`.
fn within(input: &str, entry: &str, what: &str, pairs: &[(&Tensor, &Tensor, String)], tolerance: f64) -> Result<bool, Error> {
    let mut worst = 0f64;
    for (actual, expected, source) in pairs {
        let comparison = gmmfr_dialect::reference::compare(actual, expected).map_err(|e| Error::Input {
            path: source.clone(),
            message: e.to_string(),
        })?;
        worst = worst.max(comparison.relative);
    }
    let verdict = if worst <= tolerance { "ok" } else { "MISMATCH" };
    println!("{input}: @{entry}: {verdict}: compiled vs {what}, relative error {worst:.3e} (tolerance {tolerance:.0e})");
    Ok(worst <= tolerance)
}

pub fn run(args: Args) -> Result<ExitCode, Error> {
    let compiler = if args.allow_unregistered_dialect {
        Compiler::with_unregistered_dialects()?
    } else {
        Compiler::new()?
    };
    let mut module = compiler.load_file(&args.input)?;
    let input = args.input.display().to_string();
    // The reference interpreter evaluates the function as written; the rest sees it after the
    // pipeline (which may change its signature, as torch-to-npu does).
    let as_written = if args.check { Some(compiler.load_file(&args.input)?) } else { None };
    if let Some(pipeline) = &args.pass_pipeline {
        let report = compiler.run_pipeline(&mut module, pipeline, &gmmfr::RunOptions::default())?;
        // Anything a pass refused to do is worth seeing when the run then fails or differs.
        for diagnostic in &report.diagnostics {
            if diagnostic.message.contains("not lowered") || diagnostic.message.contains("not recognized") {
                eprintln!("{diagnostic}");
            }
        }
    }
    let tensors = match args.random_inputs {
        Some(seed) => gmmfr::inputs::for_function(&module, &args.entry, seed).map_err(|message| Error::Input {
            path: input.clone(),
            message,
        })?,
        None => {
            let mut tensors = Vec::new();
            for path in &args.args {
                let tensor = read_npy(path).map_err(|e| Error::Input {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                tensors.push(tensor);
            }
            gmmfr::runner::adapt_arguments(&module, &args.entry, tensors)?
        }
    };
    let expected = if let Some(as_written) = &as_written {
        let reference =
            gmmfr_dialect::interpret::run_function(as_written, &args.entry, &tensors).map_err(|e| Error::Input {
                path: input.clone(),
                message: format!("the reference interpreter refused: {e}"),
            })?;
        Some(reference)
    } else {
        None
    };
    let results = gmmfr::runner::run(
        &compiler,
        module,
        &args.entry,
        None,
        &tensors,
        usize::from(args.threads),
    )?;
    if let Some(expected) = &expected {
        let tolerance = if args.pass_pipeline.is_some() { 1e-2 } else { 1e-5 };
        let pairs: Vec<(&Tensor, &Tensor, String)> = results.iter().zip(expected).map(|(a, e)| (a, e, input.clone())).collect();
        if !within(&input, &args.entry, "reference interpreter", &pairs, tolerance)? {
            return Ok(ExitCode::from(1));
        }
    }
    if !args.expected.is_empty() {
        if args.expected.len() != results.len() {
            return Err(Error::Input {
                path: input.clone(),
                message: format!("@{} returns {} result(s), {} --expect file(s) given", args.entry, results.len(), args.expected.len()),
            });
        }
        let mut saved = Vec::new();
        for path in &args.expected {
            saved.push(read_npy(path).map_err(|e| Error::Input {
                path: path.display().to_string(),
                message: e.to_string(),
            })?);
        }
        let pairs: Vec<(&Tensor, &Tensor, String)> = results
            .iter()
            .zip(&saved)
            .zip(&args.expected)
            .map(|((a, e), path)| (a, e, path.display().to_string()))
            .collect();
        if !within(&input, &args.entry, "expected", &pairs, args.tolerance)? {
            return Ok(ExitCode::from(1));
        }
    }
    for (index, result) in results.iter().enumerate() {
        let shape = result
            .shape()
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x");
        match args.outputs.get(index) {
            Some(path) => {
                write_npy(path, result).map_err(|e| Error::Write {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                println!("result #{index}: {shape} {} -> {}", result.dtype(), path.display());
            }
            None => println!("result #{index}: {shape} {}", result.dtype()),
        }
    }
    Ok(ExitCode::SUCCESS)
}

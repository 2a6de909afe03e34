//! `gmmfr run`: run any function of a module on the CPU with `.npy` arguments.

use gmmfr::{Compiler, Error};
use gmmfr_dialect::npy::{read_npy, write_npy};
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
    #[arg(long = "arg")]
    args: Vec<PathBuf>,
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

pub fn run(args: Args) -> Result<ExitCode, Error> {
    let compiler = if args.allow_unregistered_dialect { Compiler::with_unregistered_dialects()? } else { Compiler::new()? };
    let module = compiler.load_file(&args.input)?;
    let mut tensors = Vec::new();
    for path in &args.args {
        let tensor = read_npy(path).map_err(|e| Error::Write { path: path.display().to_string(), message: e.to_string() })?;
        tensors.push(tensor);
    }
    let tensors = gmmfr::runner::adapt_arguments(&module, &args.entry, tensors)?;
    let results = gmmfr::runner::run(&compiler, module, &args.entry, args.pass_pipeline.as_deref(), &tensors, usize::from(args.threads))?;
    for (index, result) in results.iter().enumerate() {
        let shape = result.shape().iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x");
        match args.outputs.get(index) {
            Some(path) => {
                write_npy(path, result).map_err(|e| Error::Write { path: path.display().to_string(), message: e.to_string() })?;
                println!("result #{index}: {shape} {} -> {}", result.dtype(), path.display());
            }
            None => println!("result #{index}: {shape} {}", result.dtype()),
        }
    }
    Ok(ExitCode::SUCCESS)
}

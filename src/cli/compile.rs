//! `gmmfr compile`: lower a module for a target and write an object file or LLVM IR.

use gmmfr::object::{Emit, write};
use gmmfr::{Compiler, Error, RunOptions};
use gmmfr_dialect::profile::CannVersion;
use std::path::PathBuf;
use std::process::ExitCode;

/// The compilation target.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Target {
    /// The two-phase aclnn call of CANN's C API (SPEC 4.1).
    Aclnn,
}

/// What to write.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum EmitKind {
    /// An object file.
    Obj,
    /// LLVM IR text.
    Llvm,
}

#[derive(clap::Args)]
pub struct Args {
    /// The module to compile.
    input: PathBuf,
    /// The target.
    #[arg(long, value_enum)]
    target: Target,
    /// CANN release whose Ascend profile applies.
    #[arg(long, default_value = "newer", value_parser = |s: &str| s.parse::<CannVersion>())]
    cann_version: CannVersion,
    /// Make an op that cannot be lowered an error instead of a remark.
    #[arg(long)]
    aclnn_strict: bool,
    /// What to write.
    #[arg(long, value_enum, default_value = "obj")]
    emit: EmitKind,
    /// The output file.
    #[arg(short = 'o', long)]
    output: PathBuf,
}

pub fn run(args: Args) -> Result<ExitCode, Error> {
    let compiler = Compiler::new()?;
    let mut module = compiler.load_file(&args.input)?;
    let Target::Aclnn = args.target;
    let pipeline = format!(
        "npu-lower-to-aclnn{{cann-version={} strict={}}}",
        args.cann_version, args.aclnn_strict
    );
    let report = compiler.run_pipeline(&mut module, &pipeline, &RunOptions::default())?;
    for diagnostic in &report.diagnostics {
        eprintln!("{diagnostic}");
    }
    let emit = match args.emit {
        EmitKind::Obj => Emit::Object,
        EmitKind::Llvm => Emit::LlvmIr,
    };
    write(&module, &args.output, emit)?;
    Ok(ExitCode::SUCCESS)
}

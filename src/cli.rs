//! Command-line interface: argument parsing and the subcommands. Exit codes: 0 success,
//! 1 input error, 2 usage error.

mod analyze;
mod compile;
mod opt;
mod passes;
mod run;
mod run_case;
mod verify;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Compiler support for the fused MoE op npu.grouped_matmul_finalize_routing.
#[derive(Parser)]
#[command(name = "gmmfr", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse, verify, run a pass pipeline and print the IR.
    Opt(opt::Args),
    /// Verify a module (optionally against the Ascend profile) and summarize its npu ops.
    Verify(verify::Args),
    /// Evaluate the fused op of a SPEC section 7 case directory and compare with expected.npy.
    RunCase(run_case::Args),
    /// List every registered pass with its summary.
    Passes(passes::Args),
    /// Lower a module for a target and write an object file or LLVM IR.
    Compile(compile::Args),
    /// Run a function of a module on the CPU (loop target) with .npy arguments.
    Run(run::Args),
    /// Report every MoE combine candidate: where, what, fused or blocked (with every reason), and its worth.
    Analyze(analyze::Args),
}

/// Parses arguments and runs the subcommand.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return match error.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(2),
            };
        }
    };
    let result = match cli.command {
        Command::Opt(args) => opt::run(args),
        Command::Verify(args) => verify::run(args),
        Command::RunCase(args) => run_case::run(args),
        Command::Passes(args) => passes::run(args),
        Command::Compile(args) => compile::run(args),
        Command::Run(args) => run::run(args),
        Command::Analyze(args) => analyze::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("{error}");
            if error.is_usage() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

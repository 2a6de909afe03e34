//! `gmmfr verify`: parse and verify, optionally against the Ascend profile, and summarize.

use gmmfr::{Compiler, Error, summary};
use gmmfr_dialect::profile::CannVersion;
use std::path::PathBuf;
use std::process::ExitCode;

/// Which backend's legality to check.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Target {
    /// Any valid IR (the CPU loop target).
    Loops,
    /// Valid IR that the Ascend aclnn kernel also accepts (SPEC section 4).
    Ascend,
}

#[derive(clap::Args)]
pub struct Args {
    /// The module to verify.
    input: PathBuf,
    /// Accept ops of dialects MLIR does not know (opaque model ops, torch-mlir output).
    #[arg(long)]
    allow_unregistered_dialect: bool,
    /// Check the Ascend profile as well.
    #[arg(long, value_enum, default_value = "loops")]
    target: Target,
    /// CANN release whose restrictions apply with --target ascend: older or newer.
    #[arg(long, default_value = "newer", value_parser = parse_version)]
    cann_version: CannVersion,
    /// Print the verified IR before the summary.
    #[arg(long)]
    print: bool,
}

fn parse_version(text: &str) -> Result<CannVersion, String> {
    text.parse()
}

pub fn run(args: Args) -> Result<ExitCode, Error> {
    let compiler = if args.allow_unregistered_dialect {
        Compiler::with_unregistered_dialects()?
    } else {
        Compiler::new()?
    };
    let module = compiler.load_file(&args.input)?;
    if let Target::Ascend = args.target {
        let violations = compiler.check_ascend(&module, args.cann_version);
        if !violations.is_empty() {
            return Err(Error::Invalid(violations));
        }
    }
    if args.print {
        println!("{}", gmmfr::print_module(&module));
    }
    print!(
        "{}",
        summary::render(&args.input.display().to_string(), &summary::summarize(&module))
    );
    Ok(ExitCode::SUCCESS)
}

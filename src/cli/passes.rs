//! `gmmfr passes`: the registered passes.

use gmmfr::Error;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Also print each pass's description and options.
    #[arg(long)]
    verbose: bool,
}

pub fn run(args: Args) -> Result<ExitCode, Error> {
    for info in gmmfr_passes::registry() {
        println!("{:<28} {}", info.name, info.summary);
        if args.verbose {
            println!("{:<28} {}", "", info.description);
            for option in info.options {
                println!("{:<28}   {}: {}", "", option.name, option.help);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

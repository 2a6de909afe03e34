//! `gmmfr run-case`: evaluate the fused op of a case directory.

use gmmfr::aclnn_run::AclnnOutcome;
use gmmfr::{Compiler, Error, case_module};
use gmmfr_dialect::case::Case;
use gmmfr_dialect::location::SourceLoc;
use gmmfr_dialect::reference;
use std::path::PathBuf;
use std::process::ExitCode;

/// Where the case runs.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Target {
    /// The reference semantics (dialect/src/reference).
    Reference,
    /// The CPU loop nest (npu-lower-to-loops), JIT-compiled.
    Loops,
    /// The two-phase aclnn call (npu-lower-to-aclnn), JIT-compiled against the ABI emulator.
    AclnnEmu,
}

/// Relative tolerance (to the output's max magnitude) for the comparison with expected.npy.
pub const TOLERANCE: f64 = 1e-5;

#[derive(clap::Args)]
pub struct Args {
    /// The case directory (SPEC section 7).
    dir: PathBuf,
    /// Where to run it.
    #[arg(long, value_enum, default_value = "reference")]
    target: Target,
    /// Threads for the loop target (parallel over output-column blocks).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// CANN release whose Ascend profile and restrictions apply with --target aclnn-emu.
    #[arg(long, default_value = "newer", value_parser = |s: &str| s.parse::<gmmfr_dialect::profile::CannVersion>())]
    cann_version: gmmfr_dialect::profile::CannVersion,
    /// With --target aclnn-emu: emit the call even outside the Ascend profile, so that the
    /// runtime's validation (GetWorkspaceSize) reports the violation.
    #[arg(long)]
    aclnn_unchecked: bool,
    /// Write the output here as .npy.
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<ExitCode, Error> {
    let dir = args.dir.display().to_string();
    let case = Case::load(&args.dir)?;
    let operands = case.operands();

    // The case is held to the same rules as hand-written IR: build its module and verify it.
    let compiler = Compiler::new()?;
    let source = case_module::case_source(&operands, &case.attrs);
    compiler
        .load_source(&source, &dir)
        .map_err(|error| relocate(error, &dir))?;

    let out = match args.target {
        Target::Reference => {
            reference::grouped_matmul_finalize_routing(&operands, &case.attrs).map_err(|source| Error::Eval {
                context: dir.clone(),
                source,
            })?
        }
        Target::Loops => {
            gmmfr::loops_run::run_case(&compiler, &operands, &case.attrs, &dir, usize::from(args.threads))?
        }
        Target::AclnnEmu => match gmmfr::aclnn_run::run_case(
            &compiler,
            &operands,
            &case.attrs,
            &dir,
            args.cann_version,
            !args.aclnn_unchecked,
        )? {
            AclnnOutcome::Ran(out) => out,
            AclnnOutcome::Status(code) => {
                let detail = gmmfr_aclnn_emu::last_error()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                eprintln!(
                    "{dir}: error: the aclnn call returned {code} ({}){detail}",
                    gmmfr_aclnn_emu::status_meaning(code)
                );
                return Ok(ExitCode::from(1));
            }
            AclnnOutcome::NotLowered(reasons) => {
                eprintln!(
                    "{dir}: note: not lowered to aclnn, falling back to the loop target: {}",
                    reasons.join("; ")
                );
                gmmfr::loops_run::run_case(&compiler, &operands, &case.attrs, &dir, usize::from(args.threads))?
            }
        },
    };
    if let Some(path) = &args.output {
        gmmfr_dialect::npy::write_npy(path, &out).map_err(|e| Error::Write {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    }
    if let Some(reason) = &case.expect_error {
        eprintln!(
            "{dir}: error: the case says it must be rejected ({}), but it ran",
            reason.trim()
        );
        return Ok(ExitCode::from(1));
    }
    let shape = out.shape().iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x");
    match &case.expected {
        Some(expected) => {
            let comparison = reference::compare(&out, expected).map_err(|source| Error::Eval {
                context: format!("{dir}/expected.npy"),
                source,
            })?;
            let verdict = if comparison.within(TOLERANCE) { "ok" } else { "MISMATCH" };
            println!(
                "{dir}: {verdict}: out {shape} f32, max abs error {:.3e}, relative {:.3e} (tolerance {TOLERANCE:.0e} of max |expected| = {:.4e})",
                comparison.max_abs_error, comparison.relative, comparison.max_abs_expected
            );
            Ok(if comparison.within(TOLERANCE) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        None => {
            println!("{dir}: ran: out {shape} f32 (no expected.npy to compare with)");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Errors in the generated module are about the case's files, not about generated text.
fn relocate(error: Error, dir: &str) -> Error {
    match error {
        Error::Invalid(diagnostics) => Error::Invalid(
            diagnostics
                .into_iter()
                .map(|mut d| {
                    d.location = SourceLoc::Path(dir.to_string());
                    d
                })
                .collect(),
        ),
        Error::Parse(gmmfr_dialect::parse::ParseError::Invalid { diagnostics }) => Error::Invalid(
            diagnostics
                .into_iter()
                .map(|mut d| {
                    d.location = SourceLoc::Path(dir.to_string());
                    d
                })
                .collect(),
        ),
        other => other,
    }
}

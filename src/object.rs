//! Turning a module lowered to the LLVM dialect into LLVM IR or an object file, with the LLVM 22
//! tools the set-up installs (`mlir-translate`, `llc`).

use crate::error::Error;
use crate::jit::unlowered_ops;
use melior::ir::Module;
use std::path::Path;
use std::process::Command;

/// Where the LLVM 22 tools live (Debian's llvm-22 / mlir-22-tools packages).
pub const LLVM_BIN: &str = "/usr/lib/llvm-22/bin";

/// What to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    /// An ELF relocatable object (position independent).
    Object,
    /// Textual LLVM IR.
    LlvmIr,
}

fn tool_error(what: &str, detail: String) -> Error {
    Error::Write {
        path: what.to_string(),
        message: detail,
    }
}

fn run(tool: &str, args: &[&str]) -> Result<(), Error> {
    let path = Path::new(LLVM_BIN).join(tool);
    let output = Command::new(&path)
        .args(args)
        .output()
        .map_err(|e| tool_error(&path.display().to_string(), format!("cannot run ({e}); run ./setup.sh")))?;
    if !output.status.success() {
        return Err(tool_error(
            &path.display().to_string(),
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// Writes `module` (which must be fully in the LLVM dialect) to `output`.
pub fn write(module: &Module<'_>, output: &Path, emit: Emit) -> Result<(), Error> {
    let left = unlowered_ops(module);
    if !left.is_empty() {
        return Err(Error::Invalid(left));
    }
    let scratch = std::env::temp_dir().join(format!(
        "gmmfr-{}-{}",
        std::process::id(),
        output.file_name().and_then(|n| n.to_str()).unwrap_or("out")
    ));
    std::fs::create_dir_all(&scratch).map_err(|e| tool_error(&scratch.display().to_string(), e.to_string()))?;
    let mlir = scratch.join("module.mlir");
    let ll = scratch.join("module.ll");
    std::fs::write(&mlir, crate::print_module(module))
        .map_err(|e| tool_error(&mlir.display().to_string(), e.to_string()))?;
    let result = (|| {
        let (mlir, ll) = (mlir.to_string_lossy().to_string(), ll.to_string_lossy().to_string());
        let out = output.to_string_lossy().to_string();
        match emit {
            Emit::LlvmIr => run("mlir-translate", &["--mlir-to-llvmir", &mlir, "-o", &out]),
            Emit::Object => {
                run("mlir-translate", &["--mlir-to-llvmir", &mlir, "-o", &ll])?;
                run(
                    "llc",
                    &["-O2", "-filetype=obj", "-relocation-model=pic", &ll, "-o", &out],
                )
            }
        }
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

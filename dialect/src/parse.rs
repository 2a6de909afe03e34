//! Parsing MLIR text (or bytecode) into a module, with located errors.

use crate::context::NpuContext;
use crate::diagnostics::Diagnostic;
use crate::location::SourceLoc;
use melior::StringRef;
use melior::ir::{Location, Module, Operation, block::BlockLike, operation::OperationLike};
use std::path::Path;

/// Why a source did not become a module.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The file could not be read.
    #[error("{path}: error: cannot read file: {source}")]
    Io {
        /// The path as given.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// MLIR rejected the text; the diagnostics say where and why.
    #[error("{}", render(.diagnostics))]
    Invalid {
        /// Every diagnostic MLIR emitted.
        diagnostics: Vec<Diagnostic>,
    },
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")
}

/// Reads and parses a file; the file name is recorded in every location.
pub fn parse_file<'c>(context: &'c NpuContext, path: &Path) -> Result<Module<'c>, ParseError> {
    let text = std::fs::read(path).map_err(|source| ParseError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let text = String::from_utf8_lossy(&text);
    parse_source(context, &text, &path.display().to_string())
}

/// Parses `text`, recording `source_name` as the file of every location. A single top-level
/// `builtin.module` is the module itself; any other top-level ops are wrapped in one.
pub fn parse_source<'c>(context: &'c NpuContext, text: &str, source_name: &str) -> Result<Module<'c>, ParseError> {
    context.diagnostics().take();
    if let Some(diagnostic) = crate::parser_guards::find_known_crasher(text, source_name) {
        return Err(ParseError::Invalid {
            diagnostics: vec![diagnostic],
        });
    }
    match create_parse(context, text, source_name) {
        Some(operation) => Ok(into_module(context, operation)),
        None => {
            let diagnostics = context.diagnostics().take();
            // MLIR's generic parse entry point accepts exactly one top-level op. Several
            // top-level ops (e.g. two funcs without `module {}`) are valid input for mlir-opt,
            // so parse them again inside an explicit module; only line 1 columns shift, and
            // they are corrected below.
            if diagnostics
                .iter()
                .any(|d| d.message.contains("source must contain a single top-level operation"))
            {
                const PREFIX: &str = "module {";
                let wrapped = format!("{PREFIX}{text}\n}}");
                return match create_parse(context, &wrapped, source_name) {
                    Some(operation) => Ok(into_module(context, operation)),
                    None => Err(ParseError::Invalid {
                        diagnostics: context
                            .diagnostics()
                            .take()
                            .into_iter()
                            .map(|d| unshift_first_line(d, PREFIX.len()))
                            .collect(),
                    }),
                };
            }
            let diagnostics = if diagnostics.is_empty() {
                vec![Diagnostic::error(
                    SourceLoc::File {
                        file: source_name.to_string(),
                        line: 1,
                        col: 1,
                    },
                    "the input is not valid MLIR",
                )]
            } else {
                diagnostics
            };
            Err(ParseError::Invalid { diagnostics })
        }
    }
}

fn create_parse<'c>(context: &'c NpuContext, text: &str, source_name: &str) -> Option<Operation<'c>> {
    // MLIR's lexer reads one byte past the end of its buffer, expecting a NUL terminator there
    // (LLVM memory buffers guarantee one; a Rust &str does not). Found by the fuzzer as a heap
    // read overflow: keep a NUL right after the text, outside the length MLIR is given.
    let mut terminated = String::with_capacity(text.len() + 1);
    terminated.push_str(text);
    terminated.push('\0');
    let source = StringRef::new(&terminated[..text.len()]);
    let name = StringRef::new(source_name);
    // SAFETY: the context outlives the returned operation (lifetime 'c); the parser copies what
    // it needs from `terminated` and `source_name`, which outlive the call, and `terminated`
    // holds the NUL the lexer reads past the end.
    unsafe {
        Operation::from_option_raw(mlir_sys::mlirOperationCreateParse(
            context.mlir().to_raw(),
            source.to_raw(),
            name.to_raw(),
        ))
    }
}

fn into_module<'c>(context: &'c NpuContext, operation: Operation<'c>) -> Module<'c> {
    if operation.name().as_string_ref().as_str() == Ok("builtin.module") {
        if let Some(module) = Module::from_operation(operation) {
            return module;
        }
        // from_operation only fails for non-module ops, which the check above excludes.
        unreachable_module(context)
    } else {
        let module = Module::new(Location::unknown(context.mlir()));
        module.body().append_operation(operation);
        module
    }
}

fn unreachable_module(context: &NpuContext) -> Module<'_> {
    Module::new(Location::unknown(context.mlir()))
}

fn unshift_first_line(mut diagnostic: Diagnostic, shift: usize) -> Diagnostic {
    if let SourceLoc::File { line: 1, col, .. } = &mut diagnostic.location {
        *col = col.saturating_sub(shift).max(1);
    }
    diagnostic.notes = diagnostic
        .notes
        .into_iter()
        .map(|n| unshift_first_line(n, shift))
        .collect();
    diagnostic
}

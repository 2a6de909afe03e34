//! Negative tests in the style of MLIR's `-verify-diagnostics`: each fixture marks the line of
//! every error it must produce with `// expected-error@+N {{exact message}}` (`@+N` / `@-N`
//! relative to the comment's line, or no offset for the comment's own line). A fixture passes
//! when the produced errors are exactly the annotated ones, message for message and line for
//! line: a missing error, an extra error, or a changed message fails.
//!
//! - `tests/fixtures/invalid/*.mlir`: parse + MLIR/IRDL verifier + Rust verifier.
//! - `tests/fixtures/ascend/*.mlir`: valid IR checked against the Ascend profile; a first line
//!   `// cann-version: older` selects the older release.

use gmmfr::{Compiler, Error};
use gmmfr_dialect::diagnostics::Diagnostic;
use gmmfr_dialect::location::SourceLoc;
use gmmfr_dialect::profile::CannVersion;
use std::path::{Path, PathBuf};

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Expected {
    line: usize,
    message: String,
}

fn annotations(text: &str) -> Vec<Expected> {
    let mut expected = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let Some(start) = line.find("// expected-error") else {
            continue;
        };
        let rest = &line[start + "// expected-error".len()..];
        let (offset, rest) = match rest.strip_prefix('@') {
            Some(after) => {
                let end = after
                    .find(|c: char| c.is_whitespace() || c == '{')
                    .unwrap_or(after.len());
                let offset: i64 = after[..end]
                    .trim_start_matches('+')
                    .parse()
                    .expect("bad @offset in annotation");
                (offset, &after[end..])
            }
            None => (0, rest),
        };
        let open = rest.find("{{").expect("annotation without {{");
        let close = rest.rfind("}}").expect("annotation without }}");
        expected.push(Expected {
            line: (index as i64 + 1 + offset) as usize,
            message: rest[open + 2..close].to_string(),
        });
    }
    expected.sort();
    expected
}

fn produced(diagnostics: Vec<Diagnostic>, path: &Path) -> Vec<Expected> {
    let mut found: Vec<Expected> = diagnostics
        .into_iter()
        .map(|d| match d.location {
            SourceLoc::File { file, line, .. } => {
                assert_eq!(
                    Path::new(&file),
                    path,
                    "diagnostic located in another file: {}",
                    d.message
                );
                Expected {
                    line,
                    message: d.message,
                }
            }
            other => panic!("diagnostic without a file position ({other}): {}", d.message),
        })
        .collect();
    found.sort();
    found
}

fn fixtures(folder: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "mlir"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

fn compare(path: &Path, expected: Vec<Expected>, found: Vec<Expected>) -> Option<String> {
    if expected == found {
        return None;
    }
    let missing: Vec<String> = expected
        .iter()
        .filter(|e| !found.contains(e))
        .map(|e| format!("  missing  line {}: {}", e.line, e.message))
        .collect();
    let extra: Vec<String> = found
        .iter()
        .filter(|f| !expected.contains(f))
        .map(|f| format!("  produced line {}: {}", f.line, f.message))
        .collect();
    Some(format!(
        "{}:\n{}\n{}",
        path.display(),
        missing.join("\n"),
        extra.join("\n")
    ))
}

// Every invalid fixture produces exactly its annotated errors from parsing and verification.
#[test]
fn invalid_ir_is_rejected_with_the_annotated_errors() {
    let compiler = Compiler::new().unwrap();
    let mut failures = Vec::new();
    for path in fixtures("invalid") {
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = annotations(&text);
        assert!(
            !expected.is_empty(),
            "{} has no expected-error annotation",
            path.display()
        );
        let diagnostics = match compiler.load_file(&path) {
            Ok(_) => Vec::new(),
            Err(Error::Invalid(diagnostics)) => diagnostics,
            Err(Error::Parse(gmmfr_dialect::parse::ParseError::Invalid { diagnostics })) => diagnostics,
            Err(other) => panic!("{}: unexpected error kind: {other}", path.display()),
        };
        let errors = diagnostics
            .into_iter()
            .filter(|d| d.severity == gmmfr_dialect::diagnostics::Severity::Error)
            .collect();
        failures.extend(compare(&path, expected, produced(errors, &path)));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

// Every Ascend fixture is valid IR and fails exactly the annotated profile constraints.
#[test]
fn ascend_profile_reports_the_annotated_constraints() {
    let compiler = Compiler::new().unwrap();
    let mut failures = Vec::new();
    for path in fixtures("ascend") {
        let text = std::fs::read_to_string(&path).unwrap();
        let version = if text.lines().next().is_some_and(|l| l.contains("cann-version: older")) {
            CannVersion::Older
        } else {
            CannVersion::Newer
        };
        let module = compiler
            .load_file(&path)
            .unwrap_or_else(|e| panic!("{} must be valid IR:\n{e}", path.display()));
        let found = produced(compiler.check_ascend(&module, version), &path);
        failures.extend(compare(&path, annotations(&text), found));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

//! Inputs known to crash MLIR 22's parser, refused before the text reaches it.
//!
//! MLIR's parser is not hardened against every malformed input: a few constructs end in a null
//! dereference instead of a diagnostic (our fuzzer found them; each has a regression input in
//! `fuzz/regressions/`). Each guard here recognizes one such construct and turns it into a
//! located error. Guards are deliberately narrow: they may refuse a construct that is also
//! refused by MLIR, never one that MLIR would accept.

use crate::diagnostics::Diagnostic;
use crate::location::SourceLoc;

/// The first known crasher in `text`, as a located error.
pub fn find_known_crasher(text: &str, source_name: &str) -> Option<Diagnostic> {
    dense_index_array(text).map(|offset| {
        Diagnostic::error(
            position(text, offset, source_name),
            "dense arrays of 'index' elements (array<index: ...>) are not supported: MLIR 22's parser crashes on them; use array<i64: ...>",
        )
    })
}

/// `array<index` (with optional blanks after `<`): MLIR's dense array parser asks an index
/// type for its bit width, which dereferences null in release builds. MLIR rejects such arrays
/// anyway (DenseArrayAttr has no index element type), so refusing them first loses nothing.
fn dense_index_array(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = text[from..].find("array<") {
        let start = from + found;
        let rest = text[start + "array<".len()..].trim_start();
        if let Some(after) = rest.strip_prefix("index")
            && !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$')
        {
            return Some(start);
        }
        from = start + 1;
    }
    None
}

fn position(text: &str, offset: usize, source_name: &str) -> SourceLoc {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    SourceLoc::File {
        file: source_name.to_string(),
        line,
        col,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The crasher the fuzzer found is refused at its position; i64 arrays and names that merely
    // start with "index" are not.
    #[test]
    fn refuses_dense_index_arrays_only() {
        let found = find_known_crasher(
            "func.func @f() {\n  \"x.y\"() {a = array<index: 1>} : () -> ()\n}",
            "t.mlir",
        )
        .unwrap();
        assert_eq!(
            found.location,
            SourceLoc::File {
                file: "t.mlir".into(),
                line: 2,
                col: 16
            }
        );
        assert!(find_known_crasher("{a = array< index:1>}", "t").is_some());
        assert!(find_known_crasher("{a = array<i64: 1, 2>}", "t").is_none());
        assert!(find_known_crasher("{a = array<indexed_thing>}", "t").is_none());
    }
}

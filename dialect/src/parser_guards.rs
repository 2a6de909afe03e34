//! Inputs known to crash MLIR 22's parser (or melior's printing of what it parsed), refused before
//! the text reaches MLIR.
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
    if let Some(offset) = dense_index_array(text) {
        return Some(Diagnostic::error(
            position(text, offset, source_name),
            "dense arrays of 'index' elements (array<index: ...>) are not supported: MLIR 22's parser crashes on them; use array<i64: ...>",
        ));
    }
    if let Some(offset) = non_utf8_string_literal(text) {
        return Some(Diagnostic::error(
            position(text, offset, source_name),
            "string literal whose escapes decode to bytes that are not valid UTF-8: MLIR accepts it, but its names and messages could not be printed; write the characters themselves or valid UTF-8 escapes",
        ));
    }
    if let Some(offset) = unterminated_file_metadata(text) {
        return Some(Diagnostic::error(
            position(text, offset, source_name),
            "unterminated file metadata ('{-#' ... '#-}', e.g. dialect_resources): a string or the section is not closed before the end of the input (MLIR 22's resource parser reads past the end of its buffer on this input instead of reporting it)",
        ));
    }
    malformed_linalg_dims_list(text).map(|(offset, keyword)| {
        Diagnostic::error(
            position(text, offset, source_name),
            format!(
                "malformed '{keyword}' list: expected '{keyword} = [' integers separated by ',' ']' (MLIR 22's linalg parser crashes on this input instead of reporting it)"
            ),
        )
    })
}

/// The offset of a file metadata section (`{-#` ... `#-}`, where `dialect_resources` live) that
/// the input ends inside of: at an unterminated string (its opening quote) or without `#-}` (the
/// `{-#`). MLIR's resource parser keeps lexing after its "expected '\"'" error at the end of
/// the buffer and reads past it (found by the `torch_front_end` fuzz target).
fn unterminated_file_metadata(text: &str) -> Option<usize> {
    let start = text.find("{-#")?;
    let bytes = text.as_bytes();
    let mut index = start + 3;
    while index < bytes.len() {
        match bytes[index] {
            b'"' => {
                let opening = index;
                index += 1;
                loop {
                    match bytes.get(index) {
                        None => return Some(opening),
                        Some(b'\\') => index += 2,
                        Some(b'"') => break,
                        Some(_) => index += 1,
                    }
                }
                index += 1;
            }
            b'#' if bytes.get(index + 1) == Some(&b'-') && bytes.get(index + 2) == Some(&b'}') => return None,
            _ => index += 1,
        }
    }
    Some(start)
}

/// The offset of the first string literal whose `\XX` escapes decode to invalid UTF-8. MLIR
/// accepts such bytes in op names, symbol names and locations; every later print of them through
/// melior (diagnostics, IR text) then fails, so they are refused here. `//` comments are skipped.
fn non_utf8_string_literal(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'/' if bytes.get(index + 1) == Some(&b'/') => {
                index = text[index..].find('\n').map_or(bytes.len(), |end| index + end);
            }
            b'"' => {
                let start = index;
                let mut decoded = Vec::new();
                index += 1;
                while index < bytes.len() && bytes[index] != b'"' && bytes[index] != b'\n' {
                    if bytes[index] == b'\\' && index + 1 < bytes.len() {
                        let escaped = bytes[index + 1];
                        let hex = bytes.get(index + 1..index + 3).and_then(|pair| {
                            std::str::from_utf8(pair).ok().and_then(|pair| u8::from_str_radix(pair, 16).ok())
                        });
                        match hex {
                            Some(byte) => {
                                decoded.push(byte);
                                index += 3;
                            }
                            None => {
                                decoded.push(escaped);
                                index += 2;
                            }
                        }
                    } else {
                        decoded.push(bytes[index]);
                        index += 1;
                    }
                }
                if std::str::from_utf8(&decoded).is_err() {
                    return Some(start);
                }
                index += 1;
            }
            _ => index += 1,
        }
    }
    None
}

/// The keywords whose `= [i, j, ...]` list linalg's custom parsers (transpose, broadcast,
/// reduce) read with a helper that stores a null attribute when the list does not parse, which
/// then crashes MLIR. In that custom syntax the keyword follows the `outs(...)` group, so only
/// occurrences right after a `)` are checked; in attribute dictionaries (after `{` or `,`) they
/// go to MLIR's ordinary, safe attribute parser.
const LINALG_DIMS_KEYWORDS: [&str; 2] = ["permutation", "dimensions"];

/// The offset of the first `) permutation = <not an integer list>` (or `dimensions`).
fn malformed_linalg_dims_list(text: &str) -> Option<(usize, &'static str)> {
    for keyword in LINALG_DIMS_KEYWORDS {
        let mut from = 0;
        while let Some(found) = text[from..].find(keyword) {
            let start = from + found;
            from = start + keyword.len();
            let before = text[..start].trim_end();
            let after_keyword = &text[start + keyword.len()..];
            let is_whole_word = !after_keyword
                .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$');
            if !before.ends_with(')') || !is_whole_word {
                continue;
            }
            let rest = skip_blanks(after_keyword);
            // Without '=' the custom parser itself reports the error.
            let Some(rest) = rest.strip_prefix('=') else {
                continue;
            };
            if !is_integer_list(rest) {
                return Some((start, keyword));
            }
        }
    }
    None
}

/// Whether `text` starts with `[`, integers separated by commas, `]` (blanks and comments
/// allowed between tokens, as MLIR's lexer allows them).
fn is_integer_list(text: &str) -> bool {
    let Some(mut rest) = skip_blanks(text).strip_prefix('[') else {
        return false;
    };
    rest = skip_blanks(rest);
    if rest.starts_with(']') {
        return true;
    }
    loop {
        let Some(after_integer) = strip_integer(rest) else {
            return false;
        };
        rest = skip_blanks(after_integer);
        if rest.starts_with(']') {
            return true;
        }
        let Some(after_comma) = rest.strip_prefix(',') else {
            return false;
        };
        rest = skip_blanks(after_comma);
    }
}

/// `text` after a leading integer literal (optional '-', decimal or 0x hex), if it has one.
fn strip_integer(text: &str) -> Option<&str> {
    let unsigned = text.strip_prefix('-').map_or(text, str::trim_start);
    let (digits, is_digit): (&str, fn(&char) -> bool) = match unsigned.strip_prefix("0x") {
        Some(hex) => (hex, char::is_ascii_hexdigit),
        None => (unsigned, char::is_ascii_digit),
    };
    let length: usize = digits.chars().take_while(is_digit).map(char::len_utf8).sum();
    (length > 0).then(|| &digits[length..])
}

/// `text` without leading whitespace and `//` line comments.
fn skip_blanks(mut text: &str) -> &str {
    loop {
        text = text.trim_start();
        match text.strip_prefix("//") {
            Some(comment) => text = comment.find('\n').map_or("", |end| &comment[end..]),
            None => return text,
        }
    }
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

    // A metadata section cut inside a resource blob (what the fuzzer found) or before its `#-}`
    // is refused at the string or at the `{-#`; a complete one, with an escaped quote, is not.
    #[test]
    fn refuses_unterminated_file_metadata_only() {
        let cut = "module {}\n{-#\n  dialect_resources: {\n    builtin: {\n      blob: \"0x04000000AB";
        assert_eq!(unterminated_file_metadata(cut), cut.find("\"0x"));
        let unclosed = "module {}\n{-#\n  dialect_resources: {}\n";
        assert_eq!(unterminated_file_metadata(unclosed), unclosed.find("{-#"));
        let complete = "module {}\n{-#\n  dialect_resources: { builtin: { b: \"0x04\\\"00\" } }\n#-}\n";
        assert_eq!(unterminated_file_metadata(complete), None);
        assert_eq!(unterminated_file_metadata("module {}"), None);
        let found = find_known_crasher(cut, "t.mlir").unwrap();
        assert_eq!(found.location, SourceLoc::File { file: "t.mlir".into(), line: 5, col: 13 });
    }

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

    // A string whose escapes decode to invalid UTF-8 (the fuzzer's `"npu.format\cast"`, \ca =
    // 0xCA) is refused; valid UTF-8 escapes, plain escapes, and quotes inside comments are not.
    #[test]
    fn refuses_string_literals_that_decode_to_invalid_utf8_only() {
        let found = find_known_crasher("func.func @f() {\n  \"npu.format\\cast\"() : () -> ()\n}", "t.mlir");
        assert_eq!(
            found.map(|d| d.location),
            Some(SourceLoc::File { file: "t.mlir".into(), line: 2, col: 3 })
        );
        assert!(find_known_crasher("loc(\"\\ff\")", "t").is_some());
        for fine in [
            "\"x.y\"() {s = \"\\E4\\BD\\A0 \\n \\\" \\\\ \u{4f60}\"} : () -> ()",
            "// a comment with \\ca and \" quote\n\"x.y\"() : () -> ()",
            "\"x.y\"() {a = dense<\"0xCAFE\"> : tensor<2xi8>} : () -> ()",
        ] {
            assert!(find_known_crasher(fine, "t").is_none(), "{fine:?} is fine");
        }
    }

    // linalg's custom syntax with a list that is not `[integers]` is refused at the keyword;
    // well-formed lists (with blanks, comments, negatives, hex), the keyword in attribute
    // dictionaries, and a missing '=' (which MLIR reports itself) are left to MLIR.
    #[test]
    fn refuses_malformed_linalg_dimension_lists_only() {
        let transpose = |list: &str| {
            format!("%t = linalg.transpose ins(%a : tensor<2x3xf32>) outs(%e : tensor<3x2xf32>) permutation = {list}")
        };
        for bad in ["[,\n ]01", "[1, 0", "[a]", "5", "[1 0]", "[1,]", ""] {
            let found = find_known_crasher(&transpose(bad), "t.mlir");
            assert!(found.is_some(), "{bad:?} should be refused");
            assert!(found.unwrap().message.contains("'permutation'"));
        }
        for good in ["[1, 0]", "[]", "[ 1 ,\n 0 ]", "[1, // swap\n 0]", "[-1, 0x0]"] {
            assert!(find_known_crasher(&transpose(good), "t.mlir").is_none(), "{good:?} is valid");
        }
        assert!(find_known_crasher("linalg.broadcast ins(%a : t) outs(%b : t) dimensions = [1,", "t").is_some());
        // linalg.reduce with a non-integer list segfaults mlir-opt-22 itself.
        assert!(find_known_crasher("linalg.reduce ins(%a : t) outs(%b : t) dimensions = [x] (%i: f32)", "t").is_some());
        assert!(find_known_crasher("linalg.reduce ins(%a : t) outs(%b : t) dimensions = [1] (%i: f32)", "t").is_none());
        assert!(find_known_crasher("\"x.y\"() {dimensions = array<i64: 1>} : () -> ()", "t").is_none());
        assert!(find_known_crasher("\"x.y\"() {a = 1, permutation = \"s\"} : () -> ()", "t").is_none());
        assert!(find_known_crasher("outs(%e : t) permutation [1]", "t").is_none());
        assert!(find_known_crasher("outs(%e : t) permutations = x", "t").is_none());
    }
}

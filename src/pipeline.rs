//! Parsing pass-pipeline strings. Our passes are written in Rust and cannot be named inside
//! MLIR's own textual pipeline, so the driver splits the string itself: each top-level element
//! is either one of our passes (with `{name=value ...}` options) or an upstream segment that is
//! handed to MLIR's parser unchanged.

use gmmfr_passes::{PassOptions, registry::is_registered};

/// One step of a parsed pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// One of our passes with its options.
    Npu {
        /// Pass name.
        name: String,
        /// Options as written.
        options: PassOptions,
    },
    /// Consecutive upstream elements, to be run as `builtin.module(<text>)`.
    Upstream(String),
}

/// A malformed pipeline string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pass pipeline: {0}")]
pub struct PipelineError(pub String);

/// Parses a pipeline such as `npu-verify,canonicalize,npu-check-ascend-profile{strict=true}`
/// or the same wrapped in `builtin.module(...)`.
pub fn parse_pipeline(text: &str) -> Result<Vec<Step>, PipelineError> {
    let mut steps = Vec::new();
    collect(text.trim(), &mut steps)?;
    Ok(steps)
}

fn collect(text: &str, steps: &mut Vec<Step>) -> Result<(), PipelineError> {
    for element in split_top_level(text)? {
        let element = element.trim();
        if element.is_empty() {
            return Err(PipelineError(format!("empty element in '{text}'")));
        }
        if let Some(inner) = element
            .strip_prefix("builtin.module(")
            .and_then(|rest| rest.strip_suffix(')'))
        {
            collect(inner, steps)?;
            continue;
        }
        let name_end = element.find(['{', '(']).unwrap_or(element.len());
        let name = element[..name_end].trim();
        if is_registered(name) {
            let rest = element[name_end..].trim();
            let options = if rest.is_empty() {
                PassOptions::new()
            } else if let Some(body) = rest.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
                parse_options(name, body)?
            } else {
                return Err(PipelineError(format!(
                    "'{name}' takes options as {name}{{key=value ...}}, got '{rest}'"
                )));
            };
            steps.push(Step::Npu {
                name: name.to_string(),
                options,
            });
        } else {
            if contains_npu_pass(element) {
                return Err(PipelineError(format!(
                    "npu passes run on the whole module: name them at the top level, not inside '{name}(...)'"
                )));
            }
            match steps.last_mut() {
                Some(Step::Upstream(previous)) => {
                    previous.push(',');
                    previous.push_str(element);
                }
                _ => steps.push(Step::Upstream(element.to_string())),
            }
        }
    }
    Ok(())
}

fn contains_npu_pass(element: &str) -> bool {
    element
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .any(is_registered)
}

fn parse_options(pass: &str, body: &str) -> Result<PassOptions, PipelineError> {
    let mut options = PassOptions::new();
    for item in body.split_whitespace() {
        let Some((key, value)) = item.split_once('=') else {
            return Err(PipelineError(format!("option '{item}' of '{pass}' is not key=value")));
        };
        if key.is_empty() || value.is_empty() {
            return Err(PipelineError(format!("option '{item}' of '{pass}' is not key=value")));
        }
        if options.insert(key.to_string(), value.to_string()).is_some() {
            return Err(PipelineError(format!("option '{key}' of '{pass}' is given twice")));
        }
    }
    Ok(options)
}

/// Splits at commas that are not nested in (), {} or [].
fn split_top_level(text: &str) -> Result<Vec<&str>, PipelineError> {
    let mut parts = Vec::new();
    let mut stack = Vec::new();
    let mut start = 0;
    for (index, c) in text.char_indices() {
        match c {
            '(' | '{' | '[' => stack.push(c),
            ')' | '}' | ']' => {
                let open = match c {
                    ')' => '(',
                    '}' => '{',
                    _ => '[',
                };
                if stack.pop() != Some(open) {
                    return Err(PipelineError(format!("unbalanced '{c}' at byte {index} of '{text}'")));
                }
            }
            ',' if stack.is_empty() => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(PipelineError(format!("unclosed '{open}' in '{text}'")));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Our passes become Npu steps with options; upstream neighbours merge into one segment.
    #[test]
    fn splits_npu_and_upstream_steps() {
        let steps = parse_pipeline(
            "builtin.module(npu-verify,canonicalize,cse,npu-check-ascend-profile{strict=true cann-version=older})",
        )
        .unwrap();
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[1], Step::Upstream("canonicalize,cse".into()));
        let Step::Npu { name, options } = &steps[2] else {
            panic!("expected npu step")
        };
        assert_eq!(name, "npu-check-ascend-profile");
        assert_eq!(options.get("cann-version").map(String::as_str), Some("older"));
    }

    // Malformed strings are errors, never panics.
    #[test]
    fn rejects_malformed_pipelines() {
        for bad in [
            "npu-verify,",
            "canonicalize(",
            "npu-verify{x}",
            "func.func(npu-verify)",
            "a)",
            "npu-verify{a=1 a=2}",
        ] {
            assert!(parse_pipeline(bad).is_err(), "{bad} should be rejected");
        }
    }
}

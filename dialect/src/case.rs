//! Loading a case directory (SPEC section 7): the fused op's operands as `.npy` files, its
//! attributes as `attrs.json`, and either `expected.npy` or an `expect_error` file.
//!
//! The loader applies the case dtype conventions: with an int64 scale (A8W4) the int8 `w.npy`
//! holds int4 values and becomes an `i4` tensor; `shared_input.npy` is f32 holding bf16 values
//! and becomes `bf16`. Everything else is loaded as stored; the evaluator checks it.

use std::path::{Path, PathBuf};

use half::bf16;
use serde_json::Value;
use thiserror::Error;

use crate::npy::{NpyError, read_npy};
use crate::reference::{GmmfrAttrs, GmmfrOperands};
use crate::tensor::{DType, Tensor};

/// Why a case directory could not be loaded. Every variant names the file or directory.
#[derive(Debug, Error)]
pub enum CaseError {
    /// An `.npy` file is unreadable or malformed.
    #[error(transparent)]
    Npy(#[from] NpyError),
    /// A required file is absent.
    #[error("missing required file {file} in {}", dir.display())]
    MissingFile {
        /// File name.
        file: &'static str,
        /// The case directory.
        dir: PathBuf,
    },
    /// A text file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `attrs.json` is not valid JSON.
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// `attrs.json` is not a JSON object.
    #[error("{}: expected a JSON object of attributes", path.display())]
    AttrsNotObject {
        /// The file.
        path: PathBuf,
    },
    /// `attrs.json` has a key that is not an attribute of the op.
    #[error("{}: unknown attribute key \"{key}\" (known: dtype, shared_input_weight, shared_input_offset, output_bs, group_list_type, tuning_config)", path.display())]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// An attribute has the wrong JSON type.
    #[error("{}: attribute \"{key}\" must be {expected}, got {value}", path.display())]
    WrongType {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The expected JSON type.
        expected: &'static str,
        /// The value found, as JSON text.
        value: String,
    },
    /// An integer attribute holds a number that is not an i64 integer.
    #[error("{}: attribute \"{key}\" must be an integer, got {value}", path.display())]
    NonInteger {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The value found, as JSON text.
        value: String,
    },
    /// An operand file has a dtype the case format does not allow.
    #[error("{}: dtype {actual}, expected {expected}", path.display())]
    WrongDType {
        /// The file.
        path: PathBuf,
        /// The allowed dtype.
        expected: &'static str,
        /// The dtype found.
        actual: DType,
    },
    /// An A8W4 weight value is outside the int4 range.
    #[error("{}: element {index:?} = {value} is outside the int4 range [-8, 7]", path.display())]
    NotInt4 {
        /// The file.
        path: PathBuf,
        /// Position of the element.
        index: Vec<usize>,
        /// Its value.
        value: i8,
    },
    /// A shared_input value is not exactly representable in bf16.
    #[error("{}: element {index:?} = {value:e} is not exactly representable in bf16", path.display())]
    NotBf16 {
        /// The file.
        path: PathBuf,
        /// Position of the element.
        index: Vec<usize>,
        /// Its value.
        value: f32,
    },
}

/// A loaded case: owned operands, attributes and the expected outcome.
#[derive(Clone, Debug)]
pub struct Case {
    /// The case directory.
    pub dir: PathBuf,
    /// i8 (m, k).
    pub x: Tensor,
    /// i8 NZ (A8W8) or i4 (A8W4) weight.
    pub w: Tensor,
    /// i64 (e,).
    pub group_list: Tensor,
    /// f32 (e, n) or i64 (e, 1, n).
    pub scale: Tensor,
    /// Optional bias.
    pub bias: Option<Tensor>,
    /// Optional A8W4 offset.
    pub offset: Option<Tensor>,
    /// Optional per-token scale.
    pub pertoken_scale: Option<Tensor>,
    /// Optional router weights.
    pub logit: Option<Tensor>,
    /// Destination rows (required).
    pub row_index: Tensor,
    /// Optional bf16 shared-expert output.
    pub shared_input: Option<Tensor>,
    /// Attributes from attrs.json, defaults for missing keys.
    pub attrs: GmmfrAttrs,
    /// The expected f32 result, when the case is valid.
    pub expected: Option<Tensor>,
    /// The text of `expect_error` (trimmed), when the case must be rejected.
    pub expect_error: Option<String>,
}

impl Case {
    /// Loads the case in `dir`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Case, CaseError> {
        let dir = dir.as_ref();
        let required = |file: &'static str| -> Result<Tensor, CaseError> {
            let path = dir.join(file);
            if !path.is_file() {
                return Err(CaseError::MissingFile {
                    file,
                    dir: dir.to_path_buf(),
                });
            }
            Ok(read_npy(&path)?)
        };
        let optional = |file: &'static str| -> Result<Option<Tensor>, CaseError> {
            let path = dir.join(file);
            if path.is_file() {
                Ok(Some(read_npy(&path)?))
            } else {
                Ok(None)
            }
        };
        let x = required("x.npy")?;
        let scale = required("scale.npy")?;
        let mut w = required("w.npy")?;
        if scale.dtype() == DType::I64 {
            w = int4_weight(w, &dir.join("w.npy"))?;
        }
        let group_list = required("group_list.npy")?;
        let row_index = required("row_index.npy")?;
        let shared_input = optional("shared_input.npy")?
            .map(|t| bf16_shared_input(t, &dir.join("shared_input.npy")))
            .transpose()?;
        let attrs_path = dir.join("attrs.json");
        let attrs = if attrs_path.is_file() {
            let text = std::fs::read_to_string(&attrs_path).map_err(|source| CaseError::Io {
                path: attrs_path.clone(),
                source,
            })?;
            parse_attrs(&text, &attrs_path)?
        } else {
            GmmfrAttrs::default()
        };
        let error_path = dir.join("expect_error");
        let expect_error = if error_path.is_file() {
            let text = std::fs::read_to_string(&error_path).map_err(|source| CaseError::Io {
                path: error_path.clone(),
                source,
            })?;
            Some(text.trim().to_owned())
        } else {
            None
        };
        Ok(Case {
            dir: dir.to_path_buf(),
            x,
            w,
            group_list,
            scale,
            bias: optional("bias.npy")?,
            offset: optional("offset.npy")?,
            pertoken_scale: optional("pertoken_scale.npy")?,
            logit: optional("logit.npy")?,
            row_index,
            shared_input,
            attrs,
            expected: optional("expected.npy")?,
            expect_error,
        })
    }

    /// The case directory's last component, e.g. `a8w8_cumsum`.
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.dir.display().to_string())
    }

    /// The operands borrowed for [`crate::reference::grouped_matmul_finalize_routing`].
    pub fn operands(&self) -> GmmfrOperands<'_> {
        GmmfrOperands {
            x: &self.x,
            w: &self.w,
            group_list: &self.group_list,
            scale: Some(&self.scale),
            bias: self.bias.as_ref(),
            offset: self.offset.as_ref(),
            pertoken_scale: self.pertoken_scale.as_ref(),
            shared_input: self.shared_input.as_ref(),
            logit: self.logit.as_ref(),
            row_index: &self.row_index,
        }
    }
}

/// Row-major position of flat index `flat` in `shape`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (slot, &d) in index.iter_mut().zip(shape).rev() {
        if d > 0 {
            *slot = flat % d;
            flat /= d;
        }
    }
    index
}

/// The A8W4 convention: an int8 array of int4 values becomes an `i4` tensor.
fn int4_weight(w: Tensor, path: &Path) -> Result<Tensor, CaseError> {
    let Some(values) = w.as_i8().filter(|_| w.dtype() == DType::I8) else {
        return Err(CaseError::WrongDType {
            path: path.to_path_buf(),
            expected: "i8 holding int4 values (A8W4, because scale is int64)",
            actual: w.dtype(),
        });
    };
    if let Some((flat, &value)) = values.iter().enumerate().find(|(_, v)| !(-8..=7).contains(*v)) {
        return Err(CaseError::NotInt4 {
            path: path.to_path_buf(),
            index: unravel(flat, w.shape()),
            value,
        });
    }
    let (_, shape, buffer) = w.into_parts();
    Tensor::new(DType::I4, shape, buffer).map_err(|source| {
        CaseError::Npy(NpyError::Tensor {
            path: path.to_path_buf(),
            source,
        })
    })
}

/// The shared_input convention: f32 values that are exactly bf16 become a `bf16` tensor.
fn bf16_shared_input(t: Tensor, path: &Path) -> Result<Tensor, CaseError> {
    let Some(values) = t.as_f32() else {
        return Err(CaseError::WrongDType {
            path: path.to_path_buf(),
            expected: "f32 holding bf16-representable values",
            actual: t.dtype(),
        });
    };
    let mut out = Vec::with_capacity(values.len());
    for (flat, &value) in values.iter().enumerate() {
        let b = bf16::from_f32(value);
        // Bit equality: accepts -0.0 and NaNs whose low 16 bits are zero, rejects anything rounded.
        if b.to_f32().to_bits() != value.to_bits() {
            return Err(CaseError::NotBf16 {
                path: path.to_path_buf(),
                index: unravel(flat, t.shape()),
                value,
            });
        }
        out.push(b);
    }
    Tensor::from_bf16(t.shape().to_vec(), out).map_err(|source| {
        CaseError::Npy(NpyError::Tensor {
            path: path.to_path_buf(),
            source,
        })
    })
}

/// Parses `attrs.json` text; missing keys keep the SPEC defaults.
pub fn parse_attrs(text: &str, path: &Path) -> Result<GmmfrAttrs, CaseError> {
    let json: Value = serde_json::from_str(text).map_err(|source| CaseError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let Value::Object(map) = json else {
        return Err(CaseError::AttrsNotObject {
            path: path.to_path_buf(),
        });
    };
    let int = |key: &str, v: &Value| -> Result<i64, CaseError> {
        match v {
            Value::Number(num) => num.as_i64().ok_or_else(|| CaseError::NonInteger {
                path: path.to_path_buf(),
                key: key.to_owned(),
                value: v.to_string(),
            }),
            _ => Err(CaseError::WrongType {
                path: path.to_path_buf(),
                key: key.to_owned(),
                expected: "an integer",
                value: v.to_string(),
            }),
        }
    };
    let mut attrs = GmmfrAttrs::default();
    for (key, v) in &map {
        match key.as_str() {
            "dtype" => attrs.dtype = int(key, v)?,
            "shared_input_offset" => attrs.shared_input_offset = int(key, v)?,
            "output_bs" => attrs.output_bs = int(key, v)?,
            "group_list_type" => attrs.group_list_type = int(key, v)?,
            "shared_input_weight" => {
                attrs.shared_input_weight = match v.as_f64() {
                    Some(f) => f as f32,
                    None => {
                        return Err(CaseError::WrongType {
                            path: path.to_path_buf(),
                            key: key.clone(),
                            expected: "a number",
                            value: v.to_string(),
                        });
                    }
                }
            }
            "tuning_config" => {
                attrs.tuning_config = match v {
                    Value::Null => None,
                    Value::Array(items) => Some(items.iter().map(|item| int(key, item)).collect::<Result<_, _>>()?),
                    _ => {
                        return Err(CaseError::WrongType {
                            path: path.to_path_buf(),
                            key: key.clone(),
                            expected: "an array of integers or null",
                            value: v.to_string(),
                        });
                    }
                }
            }
            _ => {
                return Err(CaseError::UnknownKey {
                    path: path.to_path_buf(),
                    key: key.clone(),
                });
            }
        }
    }
    Ok(attrs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npy::write_npy;
    use crate::reference::{EvalError, compare, grouped_matmul_finalize_routing};

    fn cases_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/cases")
    }

    fn case_dirs() -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(cases_dir())
            .expect("shared/cases must sit beside the repository")
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        dirs
    }

    // Every public case with expected.npy is reproduced to a relative error of 1e-5.
    #[test]
    fn public_cases_match_expected() {
        let mut checked = Vec::new();
        for dir in case_dirs() {
            let case = Case::load(&dir).unwrap();
            let Some(expected) = &case.expected else {
                continue;
            };
            let out = grouped_matmul_finalize_routing(&case.operands(), &case.attrs)
                .unwrap_or_else(|e| panic!("{}: {e}", case.name()));
            let c = compare(&out, expected).unwrap();
            eprintln!("{}: relative error {:.2e}", case.name(), c.relative);
            assert!(c.within(1e-5), "{}: {c:?}", case.name());
            checked.push(case.name());
        }
        assert_eq!(
            checked,
            [
                "a8w4_offset",
                "a8w8_cumsum",
                "a8w8_doc_small",
                "a8w8_ep_garbage",
                "a8w8_loops_only",
                "a8w8_noshared_nopts"
            ]
        );
    }

    // The two invalid cases are rejected with the precise precondition error.
    #[test]
    fn public_bad_cases_are_rejected() {
        let run = |name: &str| {
            let case = Case::load(cases_dir().join(name)).unwrap();
            assert!(case.expect_error.is_some() && case.expected.is_none());
            grouped_matmul_finalize_routing(&case.operands(), &case.attrs).unwrap_err()
        };
        let e = run("bad_rowidx_oob");
        assert_eq!(
            e,
            EvalError::RowIndexOutOfRange {
                p: 5,
                value: 8,
                bound: 8,
                active: 16
            }
        );
        assert_eq!(
            e.to_string(),
            "row_index[5] = 8 is outside [0, 8) for active row 5 (sum(group_list) = 16)"
        );
        let e = run("bad_gl_sum_gt_m");
        assert_eq!(e, EvalError::GroupSumExceedsM { sum: 19, m: 16 });
        assert_eq!(e.to_string(), "sum(group_list) = 19 exceeds m = 16");
    }

    // The EP case really holds non-finite garbage past sum(group_list), so its match proves it is unread.
    #[test]
    fn ep_case_has_garbage_tail() {
        let case = Case::load(cases_dir().join("a8w8_ep_garbage")).unwrap();
        let active: i64 = case.group_list.as_i64().unwrap().iter().sum();
        let logit = case.logit.as_ref().unwrap().as_f32().unwrap();
        assert!(logit[active as usize..].iter().any(|v| !v.is_finite()));
        let bs = case.attrs.output_bs;
        let ri = case.row_index.as_i64().unwrap();
        assert!(ri[active as usize..].iter().any(|&r| r < 0 || r >= bs));
    }

    // The A8W4 case loads w as i4 and matches the kernel emulation to about 2e-4 (informative).
    #[test]
    fn a8w4_case_conventions() {
        let case = Case::load(cases_dir().join("a8w4_offset")).unwrap();
        assert_eq!(case.w.dtype(), DType::I4);
        assert_eq!(case.shared_input.as_ref().unwrap().dtype(), DType::BF16);
        let hw = read_npy(cases_dir().join("a8w4_offset/expected_hw.npy")).unwrap();
        let out = grouped_matmul_finalize_routing(&case.operands(), &case.attrs).unwrap();
        let c = compare(&out, &hw).unwrap();
        assert!(c.relative < 1e-3 && c.relative > 1e-6, "{c:?}");
    }

    /// A scratch directory holding a copy of a public case, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn copy_of(case: &str, tag: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("gmmfr-case-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            for entry in std::fs::read_dir(cases_dir().join(case)).unwrap() {
                let p = entry.unwrap().path();
                std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
            }
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    // Missing required files (x.npy, row_index.npy) are errors naming the file and directory.
    #[test]
    fn missing_files() {
        let s = Scratch::copy_of("a8w8_loops_only", "missing");
        std::fs::remove_file(s.0.join("row_index.npy")).unwrap();
        let e = Case::load(&s.0).unwrap_err();
        assert!(
            matches!(
                e,
                CaseError::MissingFile {
                    file: "row_index.npy",
                    ..
                }
            ),
            "{e}"
        );
        std::fs::remove_file(s.0.join("x.npy")).unwrap();
        let e = Case::load(&s.0).unwrap_err().to_string();
        assert!(e.starts_with("missing required file x.npy in "), "{e}");
        assert!(Case::load(Path::new("/nonexistent/case")).is_err());
    }

    // shared_input values that are not bf16 and A8W4 weights outside [-8, 7] are rejected.
    #[test]
    fn dtype_conventions_checked() {
        let s = Scratch::copy_of("a8w4_offset", "conv");
        let si = read_npy(s.0.join("shared_input.npy")).unwrap();
        let mut v = si.as_f32().unwrap().to_vec();
        v[129] = 1.0 + 1.0 / 1024.0;
        write_npy(
            s.0.join("shared_input.npy"),
            &Tensor::from_f32(si.shape().to_vec(), v).unwrap(),
        )
        .unwrap();
        let e = Case::load(&s.0).unwrap_err();
        assert!(
            matches!(&e, CaseError::NotBf16 { index, .. } if index == &[1, 1]),
            "{e}"
        );
        std::fs::remove_file(s.0.join("shared_input.npy")).unwrap();
        let w = read_npy(s.0.join("w.npy")).unwrap();
        let mut v = w.as_i8().unwrap().to_vec();
        v[3] = 8;
        write_npy(s.0.join("w.npy"), &Tensor::from_i8(w.shape().to_vec(), v).unwrap()).unwrap();
        let e = Case::load(&s.0).unwrap_err();
        assert!(
            matches!(&e, CaseError::NotInt4 { index, value: 8, .. } if index == &[0, 0, 3]),
            "{e}"
        );
    }

    // attrs.json: defaults for missing keys; unknown keys, wrong types and non-integers are errors.
    #[test]
    fn attrs_parsing() {
        let p = Path::new("attrs.json");
        let a = parse_attrs(r#"{"output_bs": 8, "tuning_config": [4]}"#, p).unwrap();
        assert_eq!(a.output_bs, 8);
        assert_eq!(a.group_list_type, 1);
        assert_eq!(a.shared_input_weight, 1.0);
        assert_eq!(a.tuning_config, Some(vec![4]));
        let err = |t: &str| parse_attrs(t, p).unwrap_err().to_string();
        assert!(err(r#"{"outputbs": 8}"#).contains("unknown attribute key \"outputbs\""));
        assert!(err(r#"{"output_bs": "8"}"#).contains("\"output_bs\" must be an integer, got \"8\""));
        assert!(err(r#"{"output_bs": 8.5}"#).contains("\"output_bs\" must be an integer, got 8.5"));
        assert!(err(r#"{"shared_input_weight": true}"#).contains("must be a number"));
        assert!(err(r#"{"tuning_config": [1.5]}"#).contains("must be an integer"));
        assert!(err("[1]").contains("expected a JSON object"));
        assert!(err("{").starts_with("attrs.json: invalid JSON"));
    }
}

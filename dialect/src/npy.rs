//! Reading and writing NumPy `.npy` files (format versions 1.0, 2.0 and 3.0).
//!
//! Only C-order little-endian arrays of the element types this project uses are accepted:
//! `<i1`/`|i1`, `<i4`, `<i8`, `<f2`, `<f4`, and `<f8` when every value is exactly an f32
//! (converted to f32; NaN counts as representable). The parser never panics and never
//! allocates more than the input's size justifies: the data length implied by the header is
//! checked against the bytes actually present before any element vector is built.
//!
//! Writing uses format 1.0 (2.0 when the header does not fit in 65535 bytes) with the header
//! padded so that the data starts at a multiple of 64 bytes, as NumPy does. `bf16` tensors are
//! written as `<f4` (an exact widening, since `.npy` has no bf16) and `i4` tensors as `|i1`.

use std::path::{Path, PathBuf};

use half::f16;
use thiserror::Error;

use crate::tensor::{Buffer, DType, Tensor, TensorError, checked_num_elements};

const MAGIC: &[u8] = b"\x93NUMPY";

/// What went wrong reading or writing an `.npy` file. Every variant names the file (or the name
/// given to [`parse_npy`]).
#[derive(Debug, Error)]
pub enum NpyError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The first six bytes are not `\x93NUMPY`.
    #[error("{}: bad magic: not an .npy file (expected the bytes \\x93NUMPY)", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
    },
    /// The format version is not 1.0, 2.0 or 3.0.
    #[error("{}: unsupported .npy format version {major}.{minor} (supported: 1.0, 2.0, 3.0)", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Major version byte.
        major: u8,
        /// Minor version byte.
        minor: u8,
    },
    /// The input ends before the named part is complete.
    #[error("{}: truncated {what}: needs {needed} bytes, only {available} present", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Which part is cut short (preamble, header, data).
        what: &'static str,
        /// Bytes required.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The header is not valid text for its format version.
    #[error("{}: header is not valid {encoding}", path.display())]
    HeaderEncoding {
        /// The file.
        path: PathBuf,
        /// `latin-1/ASCII` (versions 1, 2) or `UTF-8` (version 3).
        encoding: &'static str,
    },
    /// The header is not a Python dict literal of the expected form.
    #[error("{}: malformed header at byte {offset}: {problem}", path.display())]
    HeaderSyntax {
        /// The file.
        path: PathBuf,
        /// Byte offset inside the header text.
        offset: usize,
        /// What the parser expected.
        problem: &'static str,
    },
    /// A header key is missing.
    #[error("{}: header has no '{key}' key", path.display())]
    MissingKey {
        /// The file.
        path: PathBuf,
        /// The missing key.
        key: &'static str,
    },
    /// A header key is not one of `descr`, `fortran_order`, `shape`, or appears twice.
    #[error("{}: header key '{key}' is unknown or repeated", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// The offending key.
        key: String,
    },
    /// A header value has the wrong Python type.
    #[error("{}: header key '{key}' must be {expected}", path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// The element type is not one this project reads.
    #[error("{}: unsupported descr '{descr}' (supported: '<i1', '|i1', '<i4', '<i8', '<f2', '<f4', '<f8')", path.display())]
    UnsupportedDescr {
        /// The file.
        path: PathBuf,
        /// The descr string.
        descr: String,
    },
    /// `fortran_order` is True.
    #[error("{}: fortran_order is True; only C-order arrays are supported", path.display())]
    FortranOrder {
        /// The file.
        path: PathBuf,
    },
    /// The byte size of the shape overflows.
    #[error("{}: shape {shape:?} is too large to address", path.display())]
    ShapeOverflow {
        /// The file.
        path: PathBuf,
        /// The shape.
        shape: Vec<u64>,
    },
    /// The data section is longer than the shape needs.
    #[error("{}: shape {shape:?} of '{descr}' needs {expected} data bytes but {actual} are present", path.display())]
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// The shape.
        shape: Vec<usize>,
        /// The descr.
        descr: String,
        /// Bytes the shape needs.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// An `<f8` element is not exactly an f32.
    #[error("{}: '<f8' element {index} = {value:e} is not exactly representable as f32", path.display())]
    InexactF64 {
        /// The file.
        path: PathBuf,
        /// Flat index of the element.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// The decoded data does not form a valid tensor.
    #[error("{}: {source}", path.display())]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor invariant violated.
        source: TensorError,
    },
}

/// Reads an `.npy` file into a [`Tensor`].
pub fn read_npy(path: impl AsRef<Path>) -> Result<Tensor, NpyError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_npy(&bytes, path)
}

/// Writes a [`Tensor`] as an `.npy` file (see the module documentation for dtype mapping).
pub fn write_npy(path: impl AsRef<Path>, tensor: &Tensor) -> Result<(), NpyError> {
    let path = path.as_ref();
    std::fs::write(path, encode_npy(tensor)).map_err(|source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Element type named by a header's `descr`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Descr {
    I1,
    I4,
    I8,
    F2,
    F4,
    F8,
}

impl Descr {
    fn parse(s: &str) -> Option<Descr> {
        Some(match s {
            "<i1" | "|i1" => Descr::I1,
            "<i4" => Descr::I4,
            "<i8" => Descr::I8,
            "<f2" => Descr::F2,
            "<f4" => Descr::F4,
            "<f8" => Descr::F8,
            _ => return None,
        })
    }

    fn item_size(self) -> u64 {
        match self {
            Descr::I1 => 1,
            Descr::F2 => 2,
            Descr::I4 | Descr::F4 => 4,
            Descr::I8 | Descr::F8 => 8,
        }
    }
}

/// Parses `.npy` bytes held in memory. `name` is used in error messages in place of a path.
pub fn parse_npy(bytes: &[u8], name: impl AsRef<Path>) -> Result<Tensor, NpyError> {
    let path = name.as_ref();
    let pb = || path.to_path_buf();
    if bytes.len() < MAGIC.len() + 2 {
        if !MAGIC.starts_with(bytes) {
            return Err(NpyError::BadMagic { path: pb() });
        }
        return Err(NpyError::Truncated {
            path: pb(),
            what: "preamble",
            needed: (MAGIC.len() + 2) as u64,
            available: bytes.len() as u64,
        });
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(NpyError::BadMagic { path: pb() });
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let len_bytes: usize = match (major, minor) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        _ => {
            return Err(NpyError::UnsupportedVersion {
                path: pb(),
                major,
                minor,
            });
        }
    };
    let header_start = 8 + len_bytes;
    let len_field = bytes.get(8..header_start).ok_or(NpyError::Truncated {
        path: pb(),
        what: "header length",
        needed: header_start as u64,
        available: bytes.len() as u64,
    })?;
    let header_len = len_field.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let available = (bytes.len() - header_start) as u64;
    if header_len > available {
        return Err(NpyError::Truncated {
            path: pb(),
            what: "header",
            needed: header_start as u64 + header_len,
            available: bytes.len() as u64,
        });
    }
    // header_len <= available <= bytes.len(), so the conversion and slice are in range.
    let data_start = header_start + header_len as usize;
    let header_bytes = &bytes[header_start..data_start];
    let header_text: String = if major == 3 {
        std::str::from_utf8(header_bytes)
            .map_err(|_| NpyError::HeaderEncoding {
                path: pb(),
                encoding: "UTF-8",
            })?
            .to_owned()
    } else {
        if !header_bytes.is_ascii() {
            return Err(NpyError::HeaderEncoding {
                path: pb(),
                encoding: "latin-1/ASCII",
            });
        }
        header_bytes.iter().map(|&b| char::from(b)).collect()
    };
    let header = parse_header(&header_text).map_err(|e| e.into_npy(pb()))?;
    let descr = Descr::parse(&header.descr).ok_or_else(|| NpyError::UnsupportedDescr {
        path: pb(),
        descr: header.descr.clone(),
    })?;
    if header.fortran_order {
        return Err(NpyError::FortranOrder { path: pb() });
    }
    let overflow = || NpyError::ShapeOverflow {
        path: pb(),
        shape: header.shape.clone(),
    };
    let count = header
        .shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(overflow)?;
    let expected = count.checked_mul(descr.item_size()).ok_or_else(overflow)?;
    let data = &bytes[data_start..];
    let actual = data.len() as u64;
    if expected > actual {
        return Err(NpyError::Truncated {
            path: pb(),
            what: "data",
            needed: expected,
            available: actual,
        });
    }
    // Only now, with expected <= data.len(), are the dimensions known to fit in usize.
    let shape: Vec<usize> = header
        .shape
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| overflow()))
        .collect::<Result<_, _>>()?;
    if checked_num_elements(&shape).is_none() {
        return Err(overflow());
    }
    if expected != actual {
        return Err(NpyError::SizeMismatch {
            path: pb(),
            shape,
            descr: header.descr,
            expected,
            actual,
        });
    }
    let (dtype, buffer) = match descr {
        Descr::I1 => (
            DType::I8,
            Buffer::I8(data.iter().map(|&b| i8::from_le_bytes([b])).collect()),
        ),
        Descr::I4 => (
            DType::I32,
            Buffer::I32(
                data.chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
        ),
        Descr::I8 => (
            DType::I64,
            Buffer::I64(data.chunks_exact(8).map(le_u64).map(|v| v as i64).collect()),
        ),
        Descr::F2 => (
            DType::F16,
            Buffer::F16(data.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]])).collect()),
        ),
        Descr::F4 => (
            DType::F32,
            Buffer::F32(
                data.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
        ),
        Descr::F8 => {
            let mut out = Vec::with_capacity(shape.iter().product());
            for (index, chunk) in data.chunks_exact(8).enumerate() {
                let value = f64::from_bits(le_u64(chunk));
                let narrowed = value as f32;
                if !value.is_nan() && f64::from(narrowed) != value {
                    return Err(NpyError::InexactF64 {
                        path: pb(),
                        index,
                        value,
                    });
                }
                out.push(narrowed);
            }
            (DType::F32, Buffer::F32(out))
        }
    };
    Tensor::new(dtype, shape, buffer).map_err(|source| NpyError::Tensor { path: pb(), source })
}

/// Little-endian u64 from a chunk produced by `chunks_exact(8)`.
fn le_u64(c: &[u8]) -> u64 {
    c.iter().take(8).rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// Encodes a tensor as `.npy` bytes (see the module documentation for dtype mapping).
pub fn encode_npy(tensor: &Tensor) -> Vec<u8> {
    let descr = match tensor.dtype() {
        DType::I4 | DType::I8 => "|i1",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::F16 => "<f2",
        DType::BF16 | DType::F32 => "<f4",
    };
    let shape = match tensor.shape() {
        [] => "()".to_owned(),
        [d] => format!("({d},)"),
        dims => format!(
            "({})",
            dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad with spaces and a final newline so that the data starts on a 64-byte boundary.
    let v1_total = 10 + header.len() + 1;
    let (version, len_bytes) = if v1_total.div_ceil(64) * 64 - 10 <= usize::from(u16::MAX) {
        (1u8, 2usize)
    } else {
        (2u8, 4usize)
    };
    let unpadded = MAGIC.len() + 2 + len_bytes + header.len() + 1;
    header.extend(std::iter::repeat_n(' ', unpadded.div_ceil(64) * 64 - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(unpadded + tensor.num_elements() * 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if len_bytes == 2 {
        // The branch above guarantees the padded header fits in u16.
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    match tensor.buffer() {
        Buffer::I8(v) => out.extend(v.iter().map(|x| x.to_le_bytes()[0])),
        Buffer::I32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Buffer::I64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Buffer::F16(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Buffer::BF16(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_f32().to_le_bytes())),
        Buffer::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
    }
    out
}

/// The three keys of an `.npy` header.
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<u64>,
}

/// A header problem before the file path is attached.
enum HeaderError {
    Syntax { offset: usize, problem: &'static str },
    MissingKey(&'static str),
    BadKey(String),
    BadValue { key: &'static str, expected: &'static str },
}

impl HeaderError {
    fn into_npy(self, path: PathBuf) -> NpyError {
        match self {
            HeaderError::Syntax { offset, problem } => NpyError::HeaderSyntax { path, offset, problem },
            HeaderError::MissingKey(key) => NpyError::MissingKey { path, key },
            HeaderError::BadKey(key) => NpyError::BadKey { path, key },
            HeaderError::BadValue { key, expected } => NpyError::BadValue { path, key, expected },
        }
    }
}

/// A value in the header dict.
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<u64>),
}

/// A cursor over the header text, which is a Python dict literal such as
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (8, 128), }`.
struct Cursor<'a> {
    text: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, problem: &'static str) -> HeaderError {
        HeaderError::Syntax {
            offset: self.pos,
            problem,
        }
    }

    fn skip_ws(&mut self) {
        while self.text.get(self.pos).is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.text.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn string(&mut self) -> Result<String, HeaderError> {
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(self.err("expected a quoted string")),
        };
        let start = self.pos + 1;
        let len = self.text[start..]
            .iter()
            .position(|&b| b == quote)
            .ok_or_else(|| self.err("unterminated string"))?;
        let raw = &self.text[start..start + len];
        if raw.contains(&b'\\') {
            return Err(self.err("escape sequences are not supported in header strings"));
        }
        self.pos = start + len + 1;
        // The text came from a &str and quotes are ASCII, so the slice is valid UTF-8.
        Ok(String::from_utf8_lossy(raw).into_owned())
    }

    fn word(&mut self) -> &'a [u8] {
        self.skip_ws();
        let start = self.pos;
        while self
            .text
            .get(self.pos)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    fn value(&mut self) -> Result<Value, HeaderError> {
        match self.peek() {
            Some(b'\'' | b'"') => Ok(Value::Str(self.string()?)),
            Some(b'(') => {
                self.pos += 1;
                let mut dims = Vec::new();
                loop {
                    if self.eat(b')') {
                        break;
                    }
                    let at = self.pos;
                    let digits = self.word();
                    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                        self.pos = at;
                        return Err(self.err("expected a non-negative integer dimension"));
                    }
                    let dim = digits
                        .iter()
                        .try_fold(0u64, |acc, &d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')));
                    dims.push(dim.ok_or_else(|| self.err("dimension does not fit in 64 bits"))?);
                    if !self.eat(b',') {
                        if self.eat(b')') {
                            break;
                        }
                        return Err(self.err("expected ',' or ')' in shape tuple"));
                    }
                }
                Ok(Value::Tuple(dims))
            }
            _ => match self.word() {
                b"True" => Ok(Value::Bool(true)),
                b"False" => Ok(Value::Bool(false)),
                _ => Err(self.err("expected a string, a tuple, True or False")),
            },
        }
    }
}

fn parse_header(text: &str) -> Result<Header, HeaderError> {
    let mut c = Cursor {
        text: text.as_bytes(),
        pos: 0,
    };
    if !c.eat(b'{') {
        return Err(c.err("expected '{'"));
    }
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        if c.eat(b'}') {
            break;
        }
        let key = c.string()?;
        if !c.eat(b':') {
            return Err(c.err("expected ':' after key"));
        }
        let value = c.value()?;
        match (key.as_str(), value) {
            ("descr", Value::Str(s)) if descr.is_none() => descr = Some(s),
            ("fortran_order", Value::Bool(b)) if fortran.is_none() => fortran = Some(b),
            ("shape", Value::Tuple(t)) if shape.is_none() => shape = Some(t),
            ("descr", Value::Str(_)) | ("fortran_order", Value::Bool(_)) | ("shape", Value::Tuple(_)) => {
                return Err(HeaderError::BadKey(key));
            }
            ("descr", _) => {
                return Err(HeaderError::BadValue {
                    key: "descr",
                    expected: "a string such as '<f4'",
                });
            }
            ("fortran_order", _) => {
                return Err(HeaderError::BadValue {
                    key: "fortran_order",
                    expected: "True or False",
                });
            }
            ("shape", _) => {
                return Err(HeaderError::BadValue {
                    key: "shape",
                    expected: "a tuple of non-negative integers",
                });
            }
            _ => return Err(HeaderError::BadKey(key)),
        }
        if !c.eat(b',') {
            if c.eat(b'}') {
                break;
            }
            return Err(c.err("expected ',' or '}' in header dict"));
        }
    }
    if c.peek().is_some() {
        return Err(c.err("unexpected text after the header dict"));
    }
    Ok(Header {
        descr: descr.ok_or(HeaderError::MissingKey("descr"))?,
        fortran_order: fortran.ok_or(HeaderError::MissingKey("fortran_order"))?,
        shape: shape.ok_or(HeaderError::MissingKey("shape"))?,
    })
}

#[cfg(test)]
mod tests {
    use half::bf16;

    use super::*;

    /// Hand-made `.npy` bytes with the given version and header text.
    fn raw(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[version, 0]);
        if version == 1 {
            out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    // Every dtype survives encode -> parse; bf16 comes back as the same values in f32, i4 as i8.
    #[test]
    fn round_trip_every_dtype() {
        let cases = vec![
            Tensor::from_i8(vec![2, 3], vec![-128, -1, 0, 1, 2, 127]).unwrap(),
            Tensor::from_i32(vec![3], vec![i32::MIN, 0, i32::MAX]).unwrap(),
            Tensor::from_i64(vec![1, 2], vec![i64::MIN, i64::MAX]).unwrap(),
            Tensor::from_f16(vec![2], vec![f16::from_f32(1.5), f16::NEG_INFINITY]).unwrap(),
            Tensor::from_f32(vec![2, 1, 2], vec![0.1, -0.0, f32::MAX, f32::MIN_POSITIVE]).unwrap(),
            Tensor::from_f32(vec![], vec![3.0]).unwrap(),
            Tensor::from_f32(vec![0, 4], vec![]).unwrap(),
        ];
        for t in cases {
            let bytes = encode_npy(&t);
            assert_eq!((bytes.len() - t.num_elements() * item_bytes(&t)) % 64, 0);
            let back = parse_npy(&bytes, "mem").unwrap();
            assert_eq!(back, t);
        }
        let b = Tensor::from_bf16(vec![2], vec![bf16::from_f32(1.25), bf16::from_f32(-3.0)]).unwrap();
        let back = parse_npy(&encode_npy(&b), "mem").unwrap();
        assert_eq!(back.dtype(), DType::F32);
        assert_eq!(back.as_f32(), Some(&[1.25f32, -3.0][..]));
        let q = Tensor::from_i4(vec![3], vec![-8, 0, 7]).unwrap();
        let back = parse_npy(&encode_npy(&q), "mem").unwrap();
        assert_eq!(back.dtype(), DType::I8);
        assert_eq!(back.as_i8(), Some(&[-8i8, 0, 7][..]));
    }

    fn item_bytes(t: &Tensor) -> usize {
        match t.dtype() {
            DType::I4 | DType::I8 => 1,
            DType::F16 => 2,
            DType::I32 | DType::F32 | DType::BF16 => 4,
            DType::I64 => 8,
        }
    }

    // write_npy and read_npy agree through the filesystem.
    #[test]
    fn file_round_trip() {
        let dir = std::env::temp_dir().join(format!("gmmfr-npy-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.npy");
        let t = Tensor::from_i64(vec![2, 2], vec![1, -2, 3, -4]).unwrap();
        write_npy(&path, &t).unwrap();
        assert_eq!(read_npy(&path).unwrap(), t);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(read_npy(&path), Err(NpyError::Io { .. })));
    }

    // Versions 2.0 and 3.0, double quotes, no trailing comma and '<i1' are accepted.
    #[test]
    fn accepts_other_versions_and_spellings() {
        let h = "{\"descr\": \"<i1\", \"shape\": (2,), \"fortran_order\": False}\n";
        for v in [2, 3] {
            let t = parse_npy(&raw(v, h, &[0xff, 5]), "mem").unwrap();
            assert_eq!(t.as_i8(), Some(&[-1i8, 5][..]));
        }
    }

    // '<f8' converts to f32 when exact and names the first inexact element otherwise.
    #[test]
    fn f64_conversion() {
        let h = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }";
        let mut data = Vec::new();
        for v in [0.5f64, f64::NAN, -2.0] {
            data.extend_from_slice(&v.to_le_bytes());
        }
        let t = parse_npy(&raw(1, h, &data), "mem").unwrap();
        let v = t.as_f32().unwrap();
        assert_eq!((v[0], v[2]), (0.5, -2.0));
        assert!(v[1].is_nan());
        data[16..24].copy_from_slice(&0.1f64.to_le_bytes());
        let e = parse_npy(&raw(1, h, &data), "x.npy").unwrap_err();
        assert!(matches!(e, NpyError::InexactF64 { index: 2, .. }), "{e}");
        assert!(e.to_string().starts_with("x.npy: '<f8' element 2"), "{e}");
    }

    // Malformed inputs give the matching error variant, and the message names the file.
    #[test]
    fn malformed_inputs_are_errors() {
        let ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
        let data = [0u8; 8];
        let check = |bytes: Vec<u8>, want: &str| {
            let e = parse_npy(&bytes, "bad.npy").unwrap_err();
            let msg = e.to_string();
            assert!(msg.starts_with("bad.npy: "), "{msg}");
            assert!(msg.contains(want), "{msg} should contain {want}");
        };
        check(b"PK\x03\x04zipfile".to_vec(), "bad magic");
        check(b"".to_vec(), "truncated preamble");
        check(MAGIC.to_vec(), "truncated preamble");
        check(raw(4, ok, &data), "version 4.0");
        check(raw(1, ok, &data)[..12].to_vec(), "truncated header");
        check(raw(1, ok, &data[..7]), "truncated data: needs 8 bytes, only 7");
        check(raw(1, ok, &[0u8; 9]), "needs 8 data bytes but 9 are present");
        check(
            raw(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", &data),
            "unsupported descr '>f4'",
        );
        check(
            raw(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", &data),
            "unsupported descr '|b1'",
        );
        check(
            raw(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", &data),
            "fortran_order is True",
        );
        check(raw(1, "{'descr': '<f4', 'shape': (2,), }", &data), "no 'fortran_order'");
        check(
            raw(
                1,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}",
                &data,
            ),
            "malformed header",
        );
        check(
            raw(
                1,
                "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}",
                &data,
            ),
            "'descr' is unknown or repeated",
        );
        check(
            raw(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", &data),
            "non-negative integer",
        );
        check(
            raw(1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", &data),
            "malformed header",
        );
        check(
            raw(1, "{'descr': (2,), 'fortran_order': False, 'shape': (2,), }", &data),
            "'descr' must be",
        );
        check(
            raw(1, "{'descr': '<f4, 'fortran_order': False, 'shape': (2,)", &data),
            "malformed header",
        );
        check(raw(1, "{'descr': '\u{e9}'}", &data), "not valid latin-1/ASCII");
    }

    // Absurd shapes are rejected from the header alone, before any allocation.
    #[test]
    fn absurd_shapes_do_not_allocate() {
        let data = [0u8; 8];
        for shape in [
            "(18446744073709551615,)",
            "(4294967296, 4294967296)",
            "(99999999999999999999,)",
            "(1000000000000,)",
        ] {
            let h = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
            assert!(parse_npy(&raw(1, &h, &data), "big.npy").is_err(), "{shape}");
        }
    }

    // A header length field pointing past the end, and every prefix of a valid file, are errors.
    #[test]
    fn every_truncation_is_an_error() {
        let bytes = encode_npy(&Tensor::from_i32(vec![2, 2], vec![1, 2, 3, 4]).unwrap());
        for cut in 0..bytes.len() {
            assert!(parse_npy(&bytes[..cut], "cut.npy").is_err(), "prefix {cut}");
        }
        let mut huge = bytes.clone();
        huge[8] = 0xff;
        huge[9] = 0xff;
        assert!(matches!(
            parse_npy(&huge, "h.npy"),
            Err(NpyError::Truncated { what: "header", .. })
        ));
    }

    // Random byte flips of a valid file never panic (a tiny deterministic fuzz loop).
    #[test]
    fn byte_flips_never_panic() {
        let bytes = encode_npy(&Tensor::from_f32(vec![3, 2], vec![1.0; 6]).unwrap());
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..4000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut b = bytes.clone();
            let i = (state % b.len() as u64) as usize;
            b[i] = (state >> 32) as u8;
            let cut = ((state >> 40) as usize) % (b.len() + 1);
            let _ = parse_npy(&b[..cut], "fuzz.npy");
            let _ = parse_npy(&b, "fuzz.npy");
        }
    }
}

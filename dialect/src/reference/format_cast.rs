//! FRACTAL_NZ weight layout (SPEC section 3) and the pure-layout casts ND <-> NZ.
//!
//! A logical matrix W of shape (k, n) is stored as (n1, k1, 16, n0) with k1 = ceil(k/16),
//! n1 = ceil(n/n0), zero padding, and `W_nz[nn / n0, kk / 16, kk % 16, nn % n0] = W[kk, nn]`.
//! The inner block is always 512 bytes: n0 = 32 for i8 and 64 for i4 (both stated by SPEC);
//! 16 for f16/bf16 and 8 for f32 are inferred from that 512-byte fractal, not from a source.

use super::error::EvalError;
use super::operand;
use crate::tensor::{DType, Tensor};

/// Rows of one NZ fractal block.
pub const NZ_K0: usize = 16;

/// Columns of one NZ fractal block for `dtype`, or `None` for dtypes with no NZ layout (i32, i64).
pub fn nz_block_cols(dtype: DType) -> Option<usize> {
    match dtype {
        DType::I4 => Some(64),
        DType::I8 => Some(32),
        DType::F16 | DType::BF16 => Some(16),
        DType::F32 => Some(8),
        DType::I32 | DType::I64 => None,
    }
}

/// The NZ storage of one logical (k, n) matrix with inner block (16, n0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NzLayout {
    /// Logical rows (the contraction dimension).
    pub k: usize,
    /// Logical columns (the output channels).
    pub n: usize,
    /// Block columns (32 for i8, 64 for i4).
    pub n0: usize,
}

impl NzLayout {
    /// Number of row blocks, ceil(k / 16).
    pub fn k1(&self) -> usize {
        self.k.div_ceil(NZ_K0)
    }

    /// Number of column blocks, ceil(n / n0).
    pub fn n1(&self) -> usize {
        self.n.div_ceil(self.n0)
    }

    /// The trailing four storage dimensions `[n1, k1, 16, n0]`.
    pub fn storage_dims(&self) -> [usize; 4] {
        [self.n1(), self.k1(), NZ_K0, self.n0]
    }

    /// Elements of one stored matrix (with padding), or `None` on overflow.
    pub fn matrix_len(&self) -> Option<usize> {
        crate::tensor::checked_num_elements(&self.storage_dims())
    }

    /// Offset of logical element (kk, nn) inside one stored matrix; kk < k, nn < n.
    pub fn offset(&self, kk: usize, nn: usize) -> usize {
        (((nn / self.n0) * self.k1() + kk / NZ_K0) * NZ_K0 + kk % NZ_K0) * self.n0 + nn % self.n0
    }
}

fn layout_for(operand_name: &'static str, t: &Tensor, k: usize, n: usize) -> Result<NzLayout, EvalError> {
    let n0 = nz_block_cols(t.dtype()).ok_or(EvalError::DType {
        operand: operand_name,
        expected: "i4, i8, f16, bf16 or f32 (a dtype with an NZ layout)",
        actual: t.dtype(),
    })?;
    Ok(NzLayout { k, n, n0 })
}

/// ND (..., k, n) to NZ (..., n1, k1, 16, n0), zero padded.
pub fn nd_to_nz(nd: &Tensor) -> Result<Tensor, EvalError> {
    let shape = nd.shape();
    if shape.len() < 2 {
        return Err(EvalError::Rank {
            operand: "format_cast input",
            dims: "(..., k, n)",
            rank: 2,
            actual: shape.to_vec(),
        });
    }
    let (lead, kn) = shape.split_at(shape.len() - 2);
    let (k, n) = (kn[0], kn[1]);
    let layout = layout_for("format_cast input", nd, k, n)?;
    let batch = operand::product(lead, "format_cast batch")?;
    let block = layout
        .matrix_len()
        .ok_or(EvalError::SizeOverflow { what: "NZ matrix" })?;
    let total = batch
        .checked_mul(block)
        .ok_or(EvalError::SizeOverflow { what: "NZ tensor" })?;
    let mut indices = operand::zeroed(total, None, "NZ tensor")?;
    for b in 0..batch {
        for kk in 0..k {
            for nn in 0..n {
                // offset < block because kk < 16*k1 and nn < n0*n1.
                indices[b * block + layout.offset(kk, nn)] = Some((b * k + kk) * n + nn);
            }
        }
    }
    let mut out_shape = lead.to_vec();
    out_shape.extend_from_slice(&layout.storage_dims());
    Ok(Tensor::new(nd.dtype(), out_shape, nd.buffer().gather(&indices)?)?)
}

/// NZ (..., n1, k1, 16, n0) to ND (..., k, n) for the logical size (k, n); padding is dropped.
pub fn nz_to_nd(nz: &Tensor, k: usize, n: usize) -> Result<Tensor, EvalError> {
    let layout = layout_for("format_cast input", nz, k, n)?;
    let shape = nz.shape();
    if shape.len() < 4 {
        return Err(EvalError::Rank {
            operand: "format_cast input",
            dims: "(..., n1, k1, 16, n0)",
            rank: 4,
            actual: shape.to_vec(),
        });
    }
    let (lead, tail) = shape.split_at(shape.len() - 4);
    let mut expected = lead.to_vec();
    expected.extend_from_slice(&layout.storage_dims());
    operand::shape("format_cast input", nz, &expected, "(..., n1, k1, 16, n0)")?;
    let batch = operand::product(lead, "format_cast batch")?;
    let block = operand::product(tail, "NZ matrix")?;
    let total = operand::product(&[batch, k, n], "ND tensor")?;
    let mut indices = operand::with_capacity(total, "ND tensor")?;
    for b in 0..batch {
        for kk in 0..k {
            for nn in 0..n {
                indices.push(Some(b * block + layout.offset(kk, nn)));
            }
        }
    }
    let mut out_shape = lead.to_vec();
    out_shape.extend_from_slice(&[k, n]);
    Ok(Tensor::new(nz.dtype(), out_shape, nz.buffer().gather(&indices)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    // ND -> NZ follows SPEC 3's formula element by element, pads with zero, and NZ -> ND inverts it.
    #[test]
    fn round_trip_matches_spec_formula() {
        let (e, k, n) = (2usize, 20usize, 40usize);
        let vals: Vec<i8> = (0..e * k * n).map(|i| (i % 251) as i8).collect();
        let nd = Tensor::from_i8(vec![e, k, n], vals.clone()).unwrap();
        let nz = nd_to_nz(&nd).unwrap();
        let (n1, k1) = (n.div_ceil(32), k.div_ceil(16));
        assert_eq!(nz.shape(), &[e, n1, k1, 16, 32]);
        let s = nz.as_i8().unwrap();
        let at = |g: usize, a: usize, b: usize, c: usize, d: usize| s[(((g * n1 + a) * k1 + b) * 16 + c) * 32 + d];
        for g in 0..e {
            for kk in 0..k1 * 16 {
                for nn in 0..n1 * 32 {
                    let want = if kk < k && nn < n {
                        vals[(g * k + kk) * n + nn]
                    } else {
                        0
                    };
                    assert_eq!(at(g, nn / 32, kk / 16, kk % 16, nn % 32), want);
                }
            }
        }
        assert_eq!(nz_to_nd(&nz, k, n).unwrap(), nd);
    }

    // i4 uses 64-column blocks; f32 uses 8; i32 has no NZ layout.
    #[test]
    fn block_widths() {
        let nd = Tensor::from_i4(vec![16, 70], vec![-3; 16 * 70]).unwrap();
        let nz = nd_to_nz(&nd).unwrap();
        assert_eq!(nz.shape(), &[2, 1, 16, 64]);
        assert_eq!(nz_to_nd(&nz, 16, 70).unwrap(), nd);
        let f = Tensor::from_f32(vec![3, 9], (0..27).map(|i| i as f32).collect()).unwrap();
        assert_eq!(nd_to_nz(&f).unwrap().shape(), &[2, 1, 16, 8]);
        let i = Tensor::from_i32(vec![2, 2], vec![0; 4]).unwrap();
        assert!(matches!(nd_to_nz(&i), Err(EvalError::DType { .. })));
    }

    // NZ -> ND rejects a storage shape that does not match the target (k, n).
    #[test]
    fn nz_shape_checked() {
        let nz = Tensor::from_i8(vec![2, 1, 16, 32], vec![0; 1024]).unwrap();
        assert!(nz_to_nd(&nz, 16, 64).is_ok());
        assert!(matches!(nz_to_nd(&nz, 16, 65), Err(EvalError::Shape { .. })));
        assert!(matches!(nz_to_nd(&nz, 17, 64), Err(EvalError::Shape { .. })));
    }
}

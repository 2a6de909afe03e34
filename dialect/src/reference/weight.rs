//! The logical per-group weight matrix W[g] of shape (k, n), read from ND or NZ storage.

use super::error::EvalError;
use super::format_cast::NzLayout;
use super::operand;

/// How a weight tensor of `e` logical (k, n) matrices is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WeightLayout {
    /// (e, k, n), row-major.
    Nd,
    /// (e, n1, k1, 16, n0) with the given block width n0.
    Nz {
        /// Block columns (32 for i8, 64 for i4).
        n0: usize,
    },
}

/// A validated view of `e` logical (k, n) matrices over a flat storage slice.
///
/// Invariant (checked by [`WeightView::new`]): `data.len()` is `e` times the stored matrix
/// length of the layout, so every logical (g < e, kk < k, nn < n) maps inside `data`.
pub(crate) struct WeightView<'a, T> {
    data: &'a [T],
    k: usize,
    n: usize,
    matrix_len: usize,
    nz: Option<NzLayout>,
}

impl<'a, T: Copy> WeightView<'a, T> {
    /// Checks that `shape` (the weight operand's shape; `data` holds its elements) is
    /// `(e, k, n)` for ND or `(e, n1, k1, 16, n0)` for NZ.
    pub(crate) fn new(
        operand_name: &'static str,
        data: &'a [T],
        shape: &[usize],
        (e, k, n): (usize, usize, usize),
        layout: WeightLayout,
    ) -> Result<Self, EvalError> {
        let (expected, dims, nz) = match layout {
            WeightLayout::Nd => (vec![e, k, n], "(e, k, n)", None),
            WeightLayout::Nz { n0 } => {
                let l = NzLayout { k, n, n0 };
                let mut v = vec![e];
                v.extend_from_slice(&l.storage_dims());
                (v, "(e, ceil(n/n0), ceil(k/16), 16, n0)", Some(l))
            }
        };
        if shape != expected.as_slice() {
            return Err(EvalError::Shape {
                operand: operand_name,
                dims,
                expected,
                actual: shape.to_vec(),
            });
        }
        let total = operand::product(&expected, "weight")?;
        if data.len() != total {
            return Err(EvalError::SizeOverflow {
                what: "weight storage (its length disagrees with its shape)",
            });
        }
        let matrix_len = total.checked_div(e).unwrap_or(0);
        Ok(WeightView {
            data,
            k,
            n,
            matrix_len,
            nz,
        })
    }

    /// W[g] as a row-major (k, n) vector. `g` must be below `e` (callers take it from a
    /// validated group list); a larger `g` yields an empty vector rather than a panic.
    pub(crate) fn matrix(&self, g: usize) -> Vec<T> {
        let stored = g
            .checked_mul(self.matrix_len)
            .and_then(|base| self.data.get(base..base.checked_add(self.matrix_len)?));
        let Some(stored) = stored else {
            return Vec::new();
        };
        match self.nz {
            None => stored.to_vec(),
            Some(l) => {
                let mut out = Vec::with_capacity(stored.len());
                for kk in 0..self.k {
                    for nn in 0..self.n {
                        // In range by the invariant: offset < n1*k1*16*n0 = matrix_len.
                        out.push(stored[l.offset(kk, nn)]);
                    }
                }
                out
            }
        }
    }
}

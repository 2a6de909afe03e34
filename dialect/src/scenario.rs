//! Which of the fused op's scenarios an op is in, decided by the types of `x` and `w`.

use crate::types::{Elem, TensorInfo};
use std::fmt;

/// The fused op's scenarios (SPEC 1.1, 1.3, and the non-quantized loop-target variant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// int8 x, int8 weight in FRACTAL_NZ storage (e, n1, k1, 16, 32).
    A8W8,
    /// int8 x, int4 weight, ND (e, k, n) or NZ (e, n1, k1, 16, 64).
    A8W4 {
        /// Whether the weight is stored FRACTAL_NZ.
        nz: bool,
    },
    /// Float x and weight of the same type (f32, bf16 or f16), ND (e, k, n), no scales.
    NonQuantized(Elem),
}

impl Scenario {
    /// Classifies from the types of x and w; `None` if no scenario has these element types.
    pub fn classify(x: &TensorInfo, w: &TensorInfo) -> Option<Self> {
        match (&x.elem, &w.elem) {
            (Elem::I8, Elem::I8) => Some(Scenario::A8W8),
            (Elem::I8, Elem::I4) => Some(Scenario::A8W4 { nz: w.rank() == 5 }),
            (a, b) if a.is_float() && a == b => Some(Scenario::NonQuantized(a.clone())),
            _ => None,
        }
    }

    /// The inner block width n0 of the NZ weight layout: 32 bytes of elements.
    pub fn nz_block_n(&self) -> u64 {
        match self {
            Scenario::A8W4 { .. } => 64,
            _ => 32,
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scenario::A8W8 => f.write_str("A8W8"),
            Scenario::A8W4 { nz: false } => f.write_str("A8W4 (ND weight)"),
            Scenario::A8W4 { nz: true } => f.write_str("A8W4 (NZ weight)"),
            Scenario::NonQuantized(elem) => write!(f, "non-quantized {elem}"),
        }
    }
}

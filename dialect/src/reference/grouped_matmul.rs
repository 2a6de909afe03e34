//! Reference semantics of `grouped_matmul` (SPEC 2.1), the subset the fusion needs.
//!
//! Rows at or past sum(group_list) are written as zero. The real op leaves them unwritten and
//! callers zero them before MFR (SPEC 2.1, inferred from practice); zero is the deterministic
//! stand-in for "not written".

use super::error::EvalError;
use super::gmmfr::{float_dot, int_dot};
use super::groups::{GROUP_LIST_CUMSUM, group_rows};
use super::operand;
use super::weight::{WeightLayout, WeightView};
use crate::tensor::{Buffer, DType, Tensor};

/// The operands of grouped matmul.
#[derive(Clone, Copy, Debug)]
pub struct GroupedMatmulOperands<'a> {
    /// (m, k): i8, or f32/bf16/f16.
    pub x: &'a Tensor,
    /// ND (e, k, n) of x's dtype, or for i8 x also the A8W8 NZ (e, n1, k1, 16, 32).
    pub weight: &'a Tensor,
    /// i64: (e,) for types 0 and 1, (e, 2) for type 2.
    pub group_list: &'a Tensor,
    /// f32 or bf16 (e, n) dequant scale; i8 x only.
    pub scale: Option<&'a Tensor>,
    /// f32 (m,) per-row dequant scale; i8 x with scale only.
    pub per_token_scale: Option<&'a Tensor>,
    /// (e, n): i32 for i8 x; f32 or x's dtype for float x.
    pub bias: Option<&'a Tensor>,
}

/// The attributes of grouped matmul.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupedMatmulAttrs {
    /// Output columns (from the result type; required because NZ storage pads n).
    pub n: usize,
    /// 0 = cumsum (GMM's default), 1 = counts, 2 = (group index, size) pairs.
    pub group_list_type: i64,
    /// Element type of the (m, n) result.
    pub output_dtype: DType,
}

impl GroupedMatmulAttrs {
    /// Attributes with GMM's default cumsum group list.
    pub fn new(n: usize, output_dtype: DType) -> Self {
        GroupedMatmulAttrs {
            n,
            group_list_type: GROUP_LIST_CUMSUM,
            output_dtype,
        }
    }
}

const FLOAT: &str = "for float x";

/// Evaluates grouped matmul: an (m, n) result of `attrs.output_dtype`.
///
/// i8 x with scale: `y = f32(x[p] @ W[g] + bias[g]) * scale[g] * pts[p]`, rounded once to the
/// output dtype (bf16, f16 or f32). i8 x without scale: i32 `x[p] @ W[g] + bias[g]` (overflow is an
/// error). Float x: f32 accumulation in increasing k, `+ bias`, rounded to the output dtype.
/// Rows at or past sum(group_list) are zero.
pub fn grouped_matmul(ops: &GroupedMatmulOperands<'_>, attrs: &GroupedMatmulAttrs) -> Result<Tensor, EvalError> {
    let xs = operand::rank("x", ops.x, 2, "(m, k)")?;
    let (m, k, n) = (xs[0], xs[1], attrs.n);
    let ws = ops.weight.shape();
    let e = ws.first().copied().unwrap_or(0);
    let out_len = operand::product(&[m, n], "output")?;
    let quantized = match (ops.x.dtype(), ops.weight.dtype()) {
        (DType::I8, DType::I8) => true,
        (a, b) if a.is_float() && a == b => false,
        (a, b) => return Err(EvalError::UnsupportedScenario { x: a, w: b }),
    };
    if !quantized {
        for (operand, present) in [
            ("scale", ops.scale.is_some()),
            ("per_token_scale", ops.per_token_scale.is_some()),
        ] {
            if present {
                return Err(EvalError::UnexpectedOperand {
                    operand,
                    context: FLOAT,
                });
            }
        }
        operand::rank("weight", ops.weight, 3, "(e, k, n)")?;
        operand::shape("weight", ops.weight, &[e, k, n], "(e, k, n)")?;
        if !attrs.output_dtype.is_float() {
            return Err(EvalError::DType {
                operand: "output",
                expected: "f32, f16 or bf16 (float x)",
                actual: attrs.output_dtype,
            });
        }
        let bias = match ops.bias {
            Some(b) => {
                if b.dtype() != DType::F32 && b.dtype() != ops.x.dtype() {
                    return Err(EvalError::DType {
                        operand: "bias",
                        expected: "f32 or x's dtype",
                        actual: b.dtype(),
                    });
                }
                operand::shape("bias", b, &[e, n], "(e, n)")?;
                Some(b.to_f32_vec())
            }
            None => None,
        };
        let groups = group_rows(ops.group_list, e, attrs.group_list_type, m, true)?;
        let (x, w) = (ops.x.to_f32_vec(), ops.weight.to_f32_vec());
        let mut out = operand::zeroed(out_len, 0f32, "output")?;
        let mut y = operand::zeroed(n, 0f32, "one output row")?;
        for range in &groups.ranges {
            let g = range.group;
            let wm = w.get(g * k * n..(g + 1) * k * n).unwrap_or(&[]);
            let bg = bias.as_ref().and_then(|b| b.get(g * n..g * n + n));
            for p in range.start..range.start + range.count {
                float_dot(&x[p * k..p * k + k], wm, &mut y);
                if let Some(bg) = bg {
                    for (yv, &bv) in y.iter_mut().zip(bg) {
                        *yv += bv;
                    }
                }
                out[p * n..p * n + n].copy_from_slice(&y);
            }
        }
        return Ok(Tensor::from_f32_rounded(attrs.output_dtype, vec![m, n], out)?);
    }

    let layout = match ws.len() {
        3 => WeightLayout::Nd,
        5 => WeightLayout::Nz { n0: 32 },
        _ => {
            return Err(EvalError::Rank {
                operand: "weight",
                dims: "(e, k, n) or (e, n1, k1, 16, 32)",
                rank: 3,
                actual: ws.to_vec(),
            });
        }
    };
    let w = WeightView::new("weight", ops.weight.as_i8().unwrap_or(&[]), ws, (e, k, n), layout)?;
    let scale = match ops.scale {
        Some(s) => {
            operand::dtype("scale", s, &[DType::F32, DType::BF16], "f32 or bf16")?;
            operand::shape("scale", s, &[e, n], "(e, n)")?;
            if !attrs.output_dtype.is_float() {
                return Err(EvalError::DType {
                    operand: "output",
                    expected: "bf16, f16 or f32 (i8 x with scale)",
                    actual: attrs.output_dtype,
                });
            }
            Some(s.to_f32_vec())
        }
        None => {
            if attrs.output_dtype != DType::I32 {
                return Err(EvalError::DType {
                    operand: "output",
                    expected: "i32 (i8 x without scale)",
                    actual: attrs.output_dtype,
                });
            }
            None
        }
    };
    let pts = match ops.per_token_scale {
        Some(t) if scale.is_some() => Some(operand::f32_values("per_token_scale", t, &[m], "(m,)")?),
        Some(_) => {
            return Err(EvalError::UnexpectedOperand {
                operand: "per_token_scale",
                context: "without a scale",
            });
        }
        None => None,
    };
    let bias = match ops.bias {
        Some(b) => {
            operand::dtype("bias", b, &[DType::I32], "i32 (i8 x)")?;
            operand::shape("bias", b, &[e, n], "(e, n)")?;
            b.as_i32()
        }
        None => None,
    };
    let groups = group_rows(ops.group_list, e, attrs.group_list_type, m, true)?;
    let x = ops.x.as_i8().unwrap_or(&[]);
    let (f32_len, i32_len) = if scale.is_some() { (out_len, 0) } else { (0, out_len) };
    let mut out_f32 = operand::zeroed(f32_len, 0f32, "output")?;
    let mut out_i32 = operand::zeroed(i32_len, 0i32, "output")?;
    for range in &groups.ranges {
        let g = range.group;
        let wm = w.matrix(g);
        let bg = bias.and_then(|b| b.get(g * n..g * n + n));
        let sg = scale.as_ref().and_then(|s| s.get(g * n..g * n + n));
        for p in range.start..range.start + range.count {
            let mut acc = int_dot(&x[p * k..p * k + k], &wm, n, 0);
            if let Some(bg) = bg {
                for (a, &bv) in acc.iter_mut().zip(bg) {
                    *a += i64::from(bv);
                }
            }
            match sg {
                Some(sg) => {
                    let t = pts.map_or(1.0, |t| t[p]);
                    for ((o, &a), &s) in out_f32[p * n..p * n + n].iter_mut().zip(&acc).zip(sg) {
                        *o = (a as f32) * s * t;
                    }
                }
                None => {
                    for (col, (o, &a)) in out_i32[p * n..p * n + n].iter_mut().zip(&acc).enumerate() {
                        *o = i32::try_from(a).map_err(|_| EvalError::AccumulatorOverflow { row: p, col, value: a })?;
                    }
                }
            }
        }
    }
    if scale.is_some() {
        Ok(Tensor::from_f32_rounded(attrs.output_dtype, vec![m, n], out_f32)?)
    } else {
        Ok(Tensor::new(DType::I32, vec![m, n], Buffer::I32(out_i32))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::format_cast::nd_to_nz;

    /// x (4, 2), two weight groups (2, 2) as i8: W0 = [[1, 2], [3, 4]], W1 = -W0.
    fn int_operands() -> (Tensor, Tensor) {
        let x = Tensor::from_i8(vec![4, 2], vec![1, 1, 2, 0, 0, 3, 5, 5]).unwrap();
        let w = Tensor::from_i8(vec![2, 2, 2], vec![1, 2, 3, 4, -1, -2, -3, -4]).unwrap();
        (x, w)
    }

    fn run(
        x: &Tensor,
        weight: &Tensor,
        gl: Vec<i64>,
        gl_type: i64,
        scale: Option<&Tensor>,
        bias: Option<&Tensor>,
        out: DType,
    ) -> Result<Tensor, EvalError> {
        let shape = if gl_type == 2 {
            vec![gl.len() / 2, 2]
        } else {
            vec![gl.len()]
        };
        let group_list = Tensor::from_i64(shape, gl).unwrap();
        let ops = GroupedMatmulOperands {
            x,
            weight,
            group_list: &group_list,
            scale,
            per_token_scale: None,
            bias,
        };
        grouped_matmul(
            &ops,
            &GroupedMatmulAttrs {
                group_list_type: gl_type,
                ..GroupedMatmulAttrs::new(2, out)
            },
        )
    }

    // i8 without scale gives exact i32 (+ i32 bias); rows past the cumsum total are zero.
    #[test]
    fn int32_output_and_zero_tail() {
        let (x, w) = int_operands();
        let bias = Tensor::from_i32(vec![2, 2], vec![100, 200, 0, 0]).unwrap();
        let out = run(&x, &w, vec![1, 3], 0, None, Some(&bias), DType::I32).unwrap();
        // row0 g0: [1+3, 2+4] + bias0; rows 1, 2 g1: -[2, 4], -[9, 12]; row 3 inactive.
        assert_eq!(out.as_i32().unwrap(), &[104, 206, -2, -4, -9, -12, 0, 0]);
    }

    // Type 2 pairs consume rows in the listed order with the named group; NZ weight = ND weight.
    #[test]
    fn pairs_and_nz() {
        let (x, w) = int_operands();
        let a = run(&x, &w, vec![1, 2, 0, 2], 2, None, None, DType::I32).unwrap();
        assert_eq!(a.as_i32().unwrap(), &[-4, -6, -2, -4, 9, 12, 20, 30]);
        let nz = nd_to_nz(&w).unwrap();
        let b = run(&x, &nz, vec![1, 2, 0, 2], 2, None, None, DType::I32).unwrap();
        assert_eq!(a, b);
    }

    // With a scale the f32 product is rounded once to the bf16 output.
    #[test]
    fn scaled_bf16_output() {
        let (x, w) = int_operands();
        let scale = Tensor::from_f32(vec![2, 2], vec![1.0 / 3.0, 1.0, 1.0, 1.0]).unwrap();
        let out = run(&x, &w, vec![4, 0], 1, Some(&scale), None, DType::BF16).unwrap();
        assert_eq!(out.dtype(), DType::BF16);
        let want = half::bf16::from_f32(4.0f32 * (1.0 / 3.0));
        assert_eq!(out.as_bf16().unwrap()[0], want);
    }

    // Float x accumulates in f32 and adds an f32 bias.
    #[test]
    fn float_path() {
        let x = Tensor::from_f32(vec![2, 2], vec![0.5, 1.0, 2.0, -1.0]).unwrap();
        let w = Tensor::from_f32(vec![1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let bias = Tensor::from_f32(vec![1, 2], vec![0.25, 0.0]).unwrap();
        let out = run(&x, &w, vec![2], 1, None, Some(&bias), DType::F32).unwrap();
        assert_eq!(out.as_f32().unwrap(), &[3.75, 5.0, -0.75, 0.0]);
    }

    // Mismatched output dtype, per_token_scale without scale and a too-large group list are errors.
    #[test]
    fn errors() {
        let (x, w) = int_operands();
        assert!(matches!(
            run(&x, &w, vec![2, 2], 1, None, None, DType::F32),
            Err(EvalError::DType { operand: "output", .. })
        ));
        assert_eq!(
            run(&x, &w, vec![2, 5], 0, None, None, DType::I32),
            Err(EvalError::GroupSumExceedsM { sum: 5, m: 4 })
        );
        let pts = Tensor::from_f32(vec![4], vec![1.0; 4]).unwrap();
        let gl = Tensor::from_i64(vec![2], vec![2, 2]).unwrap();
        let ops = GroupedMatmulOperands {
            x: &x,
            weight: &w,
            group_list: &gl,
            scale: None,
            per_token_scale: Some(&pts),
            bias: None,
        };
        assert!(matches!(
            grouped_matmul(&ops, &GroupedMatmulAttrs::new(2, DType::I32)),
            Err(EvalError::UnexpectedOperand {
                operand: "per_token_scale",
                ..
            })
        ));
    }
}

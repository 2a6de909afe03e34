//! Reference semantics of the fused `grouped_matmul_finalize_routing` (SPEC section 1).
//!
//! The evaluator validates every dtype, shape, attribute and runtime precondition first, then
//! computes. It reads only the active rows p < sum(group_list) of x, logit, pertoken_scale and
//! row_index; the rest may hold garbage. Contributions are added to each output row in
//! increasing p, so the result is deterministic.

use super::error::EvalError;
use super::format_cast::nz_block_cols;
use super::groups::group_rows;
use super::operand;
use super::weight::{WeightLayout, WeightView};
use crate::tensor::{DType, Tensor};

/// The operands of the fused op, by their torch names. Which are required depends on the
/// scenario (see [`GmmfrScenario`]).
#[derive(Clone, Copy, Debug)]
pub struct GmmfrOperands<'a> {
    /// (m, k) rows in expert-sorted order: i8, or f32/bf16/f16 for the non-quantized form.
    pub x: &'a Tensor,
    /// Weights: i8 NZ (e, n1, k1, 16, 32); i4 ND (e, k, n) or NZ (e, n1, k1, 16, 64); or
    /// float ND (e, k, n) of x's dtype.
    pub w: &'a Tensor,
    /// i64 (e,): counts (type 1) or inclusive prefix sums (type 0).
    pub group_list: &'a Tensor,
    /// Dequant scale: f32/bf16 (e, n) for A8W8, i64 (e, 1, n) for A8W4, absent otherwise.
    pub scale: Option<&'a Tensor>,
    /// bf16 (e, n) for A8W8 (optional), f32 (e, n) for A8W4 (required) and float (optional).
    pub bias: Option<&'a Tensor>,
    /// f32 (e, 1, n), A8W4 only, optional.
    pub offset: Option<&'a Tensor>,
    /// f32 (m,), per-row dequant scale of x; quantized scenarios only.
    pub pertoken_scale: Option<&'a Tensor>,
    /// bf16 (bsdp, n), written into output rows [off, off + bsdp) before the scatter.
    pub shared_input: Option<&'a Tensor>,
    /// f32 (m,), router weight of each x row.
    pub logit: Option<&'a Tensor>,
    /// i32 or i64 (m,), destination output row of each x row.
    pub row_index: &'a Tensor,
}

impl<'a> GmmfrOperands<'a> {
    /// The present operands in declaration order (x, w, group_list, scale, bias, offset,
    /// pertoken_scale, shared_input, logit, row_index), as a function taking them lists them.
    pub fn present(&self) -> Vec<&'a Tensor> {
        [
            Some(self.x),
            Some(self.w),
            Some(self.group_list),
            self.scale,
            self.bias,
            self.offset,
            self.pertoken_scale,
            self.shared_input,
            self.logit,
            Some(self.row_index),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// The attributes of the fused op.
#[derive(Clone, Debug, PartialEq)]
pub struct GmmfrAttrs {
    /// Output type code; only 0 (f32) is defined.
    pub dtype: i64,
    /// Multiplier of shared_input.
    pub shared_input_weight: f32,
    /// First output row of the shared_input slice.
    pub shared_input_offset: i64,
    /// Output rows; 0 means m.
    pub output_bs: i64,
    /// 0 = cumsum group_list, 1 = counts.
    pub group_list_type: i64,
    /// Tiling hint (expected rows per expert); no semantic effect.
    pub tuning_config: Option<Vec<i64>>,
}

impl Default for GmmfrAttrs {
    /// The SPEC defaults: dtype 0, weight 1.0, offset 0, output_bs 0 (= m), counts, no hint.
    fn default() -> Self {
        GmmfrAttrs {
            dtype: 0,
            shared_input_weight: 1.0,
            shared_input_offset: 0,
            output_bs: 0,
            group_list_type: 1,
            tuning_config: None,
        }
    }
}

/// Which form of the op the operand dtypes select.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GmmfrScenario {
    /// i8 x, i8 NZ weight (SPEC 1.1, with the optional bf16 bias of 1.4).
    A8W8,
    /// i8 x, i4 weight (SPEC 1.3, general form with bias and optional offset).
    A8W4,
    /// Float x and weight of the same dtype: `logit * (x @ W + bias)`.
    Float(DType),
}

/// The scenario selected by the dtypes of x and w.
pub fn gmmfr_scenario(x: &Tensor, w: &Tensor) -> Result<GmmfrScenario, EvalError> {
    match (x.dtype(), w.dtype()) {
        (DType::I8, DType::I8) => Ok(GmmfrScenario::A8W8),
        (DType::I8, DType::I4) => Ok(GmmfrScenario::A8W4),
        (a, b) if a.is_float() && a == b => Ok(GmmfrScenario::Float(a)),
        (a, b) => Err(EvalError::UnsupportedScenario { x: a, w: b }),
    }
}

/// The validated scenario-specific operands.
enum Kernel<'a> {
    A8W8 {
        x: &'a [i8],
        w: WeightView<'a, i8>,
        /// (e, n) as f32.
        scale: Vec<f32>,
        /// (e, n) as f32, from bf16.
        bias: Option<Vec<f32>>,
    },
    A8W4 {
        x: &'a [i8],
        w: WeightView<'a, i8>,
        /// (e, n) f32 decoded from the low 32 bits.
        scale: Vec<f32>,
        bias: &'a [f32],
        /// (e, n), from (e, 1, n).
        offset: Option<&'a [f32]>,
    },
    Float {
        /// (m, k) as f32.
        x: Vec<f32>,
        /// (e, k, n) as f32.
        w: Vec<f32>,
        bias: Option<&'a [f32]>,
    },
}

/// Sizes fixed by x and the scenario operands.
struct Dims {
    m: usize,
    k: usize,
    n: usize,
    e: usize,
}

const A8W8: &str = "for A8W8 (i8 x, i8 w)";
const A8W4: &str = "for A8W4 (i8 x, i4 w)";
const FLOAT: &str = "for float x and w";

fn a8w8<'a>(ops: &GmmfrOperands<'a>, m: usize, k: usize) -> Result<(Kernel<'a>, Dims), EvalError> {
    let scale = ops.scale.ok_or(EvalError::MissingOperand {
        operand: "scale",
        context: A8W8,
    })?;
    operand::dtype("scale", scale, &[DType::F32, DType::BF16], "f32 or bf16")?;
    let ss = operand::rank("scale", scale, 2, "(e, n)")?;
    let n = ss[1];
    let ws = operand::rank("w", ops.w, 5, "(e, n1, k1, 16, 32)")?;
    let e = ws[0];
    operand::shape("scale", scale, &[e, n], "(e, n)")?;
    let x = ops.x.as_i8().unwrap_or(&[]);
    let wdata = ops.w.as_i8().unwrap_or(&[]);
    let w = WeightView::new("w", wdata, ws, (e, k, n), WeightLayout::Nz { n0: 32 })?;
    let bias = match ops.bias {
        Some(b) => {
            operand::dtype("bias", b, &[DType::BF16], "bf16 (A8W8 bias)")?;
            operand::shape("bias", b, &[e, n], "(e, n)")?;
            Some(b.to_f32_vec())
        }
        None => None,
    };
    if ops.offset.is_some() {
        return Err(EvalError::UnexpectedOperand {
            operand: "offset",
            context: A8W8,
        });
    }
    let kernel = Kernel::A8W8 {
        x,
        w,
        scale: scale.to_f32_vec(),
        bias,
    };
    Ok((kernel, Dims { m, k, n, e }))
}

fn a8w4<'a>(ops: &GmmfrOperands<'a>, m: usize, k: usize) -> Result<(Kernel<'a>, Dims), EvalError> {
    let scale = ops.scale.ok_or(EvalError::MissingOperand {
        operand: "scale",
        context: A8W4,
    })?;
    operand::dtype("scale", scale, &[DType::I64], "i64 (f32 bits in the low word)")?;
    let ss = operand::rank("scale", scale, 3, "(e, 1, n)")?;
    let n = ss[2];
    let ws = ops.w.shape();
    let layout = match ws.len() {
        3 => WeightLayout::Nd,
        5 => WeightLayout::Nz {
            n0: nz_block_cols(DType::I4).unwrap_or(64),
        },
        _ => {
            return Err(EvalError::Rank {
                operand: "w",
                dims: "(e, k, n) or (e, n1, k1, 16, 64)",
                rank: 3,
                actual: ws.to_vec(),
            });
        }
    };
    let e = ws[0];
    operand::shape("scale", scale, &[e, 1, n], "(e, 1, n)")?;
    let w = WeightView::new("w", ops.w.as_i8().unwrap_or(&[]), ws, (e, k, n), layout)?;
    let raw = scale.as_i64().unwrap_or(&[]);
    let mut scale_f32 = Vec::with_capacity(raw.len());
    for (i, &value) in raw.iter().enumerate() {
        let bits = value as u64;
        if bits >> 32 != 0 {
            return Err(EvalError::ScaleHighBits {
                group: i / n.max(1),
                col: i % n.max(1),
                value,
            });
        }
        scale_f32.push(f32::from_bits(bits as u32));
    }
    let bias = ops.bias.ok_or(EvalError::MissingOperand {
        operand: "bias",
        context: A8W4,
    })?;
    let bias = operand::f32_values("bias", bias, &[e, n], "(e, n)")?;
    let offset = ops
        .offset
        .map(|o| operand::f32_values("offset", o, &[e, 1, n], "(e, 1, n)"))
        .transpose()?;
    let kernel = Kernel::A8W4 {
        x: ops.x.as_i8().unwrap_or(&[]),
        w,
        scale: scale_f32,
        bias,
        offset,
    };
    Ok((kernel, Dims { m, k, n, e }))
}

fn float<'a>(ops: &GmmfrOperands<'a>, m: usize, k: usize) -> Result<(Kernel<'a>, Dims), EvalError> {
    for (operand, present) in [
        ("scale", ops.scale.is_some()),
        ("offset", ops.offset.is_some()),
        ("pertoken_scale", ops.pertoken_scale.is_some()),
    ] {
        if present {
            return Err(EvalError::UnexpectedOperand {
                operand,
                context: FLOAT,
            });
        }
    }
    let ws = operand::rank("w", ops.w, 3, "(e, k, n)")?;
    let (e, n) = (ws[0], ws[2]);
    operand::shape("w", ops.w, &[e, k, n], "(e, k, n)")?;
    let bias = ops
        .bias
        .map(|b| operand::f32_values("bias", b, &[e, n], "(e, n)"))
        .transpose()?;
    let kernel = Kernel::Float {
        x: ops.x.to_f32_vec(),
        w: ops.w.to_f32_vec(),
        bias,
    };
    Ok((kernel, Dims { m, k, n, e }))
}

/// Evaluates the fused op (SPEC 1): an f32 (B, n) result, B = output_bs or m.
///
/// With `f = pertoken_scale[p] * logit[p]` (formed first; an absent operand contributes 1):
///
/// - A8W8: `y = f32(x[p] @ W[g]) * scale[g] * f`, plus `logit[p] * bias[g]` when the bf16 bias
///   is present (not multiplied by pertoken_scale).
/// - A8W4: `y = f * (f32((x[p] - 8) @ W[g]) * scale[g] + bias[g] + f32(rowsum(x[p])) * offset[g])`,
///   the offset term only when present.
/// - Float: `y = logit[p] * (x[p] @ W[g] + bias[g])`, accumulated in f32 in increasing k.
///
/// The output starts at zero, rows [off, off + bsdp) are set to
/// `shared_input * shared_input_weight`, then `out[row_index[p]] += y` in increasing p.
pub fn grouped_matmul_finalize_routing(ops: &GmmfrOperands<'_>, attrs: &GmmfrAttrs) -> Result<Tensor, EvalError> {
    let xs = operand::rank("x", ops.x, 2, "(m, k)")?;
    let (m, k) = (xs[0], xs[1]);
    let (kernel, dims) = match gmmfr_scenario(ops.x, ops.w)? {
        GmmfrScenario::A8W8 => a8w8(ops, m, k)?,
        GmmfrScenario::A8W4 => a8w4(ops, m, k)?,
        GmmfrScenario::Float(_) => float(ops, m, k)?,
    };
    let Dims { m, k, n, e } = dims;
    let pts = ops
        .pertoken_scale
        .map(|t| operand::f32_values("pertoken_scale", t, &[m], "(m,)"))
        .transpose()?;
    let logit = ops
        .logit
        .map(|t| operand::f32_values("logit", t, &[m], "(m,)"))
        .transpose()?;
    operand::dtype("row_index", ops.row_index, &[DType::I32, DType::I64], "i32 or i64")?;
    operand::shape("row_index", ops.row_index, &[m], "(m,)")?;
    let shared = match ops.shared_input {
        Some(s) => {
            operand::dtype("shared_input", s, &[DType::BF16], "bf16")?;
            let bsdp = operand::rank("shared_input", s, 2, "(bsdp, n)")?[0];
            operand::shape("shared_input", s, &[bsdp, n], "(bsdp, n)")?;
            Some((bsdp, s.as_bf16().unwrap_or(&[])))
        }
        None => None,
    };
    if attrs.dtype != 0 {
        return Err(EvalError::Attribute {
            name: "dtype",
            value: attrs.dtype,
            expected: "0 (f32 output, the only type the kernel produces)",
        });
    }
    let b = match usize::try_from(attrs.output_bs) {
        Ok(0) => m,
        Ok(b) => b,
        Err(_) => {
            return Err(EvalError::Attribute {
                name: "output_bs",
                value: attrs.output_bs,
                expected: ">= 0 (0 means m)",
            });
        }
    };
    let groups = group_rows(ops.group_list, e, attrs.group_list_type, m, false)?;
    let shared_start = match shared {
        Some((bsdp, _)) => {
            let range_err = EvalError::SharedInputRange {
                offset: attrs.shared_input_offset,
                rows: bsdp,
                bound: b,
            };
            let off = usize::try_from(attrs.shared_input_offset).map_err(|_| range_err.clone())?;
            if off.checked_add(bsdp).is_none_or(|end| end > b) {
                return Err(range_err);
            }
            off
        }
        None => 0,
    };
    let row_index = operand::index_prefix("row_index", ops.row_index, groups.active)?;
    let mut dest = Vec::with_capacity(row_index.len());
    for (p, &value) in row_index.iter().enumerate() {
        match usize::try_from(value) {
            Ok(r) if r < b => dest.push(r),
            _ => {
                return Err(EvalError::RowIndexOutOfRange {
                    p,
                    value,
                    bound: b,
                    active: groups.active,
                });
            }
        }
    }

    let mut out = operand::zeroed(operand::product(&[b, n], "output")?, 0f32, "output")?;
    if let Some((_, values)) = shared {
        let start = shared_start * n;
        for (o, v) in out[start..].iter_mut().zip(values) {
            *o = v.to_f32() * attrs.shared_input_weight;
        }
    }
    let mut y = operand::zeroed(n, 0f32, "one output row")?;
    for range in &groups.ranges {
        let g = range.group;
        let row_range = |v: &[f32]| v.get(g * n..g * n + n).map(<[f32]>::to_vec);
        match &kernel {
            Kernel::A8W8 { x, w, scale, bias } => {
                let wm = w.matrix(g);
                let sg = row_range(scale).unwrap_or_default();
                let bg = bias.as_deref().and_then(row_range);
                for p in range.start..range.start + range.count {
                    let acc = int_dot(&x[p * k..p * k + k], &wm, n, 0);
                    let f = factor(pts, logit, p);
                    for ((yv, &a), &s) in y.iter_mut().zip(&acc).zip(&sg) {
                        *yv = (a as f32) * s * f;
                    }
                    if let Some(bg) = &bg {
                        let l = logit.map_or(1.0, |l| l[p]);
                        for (yv, &bv) in y.iter_mut().zip(bg) {
                            *yv += l * bv;
                        }
                    }
                    scatter_add(&mut out, dest[p], n, &y);
                }
            }
            Kernel::A8W4 {
                x,
                w,
                scale,
                bias,
                offset,
            } => {
                let wm = w.matrix(g);
                let sg = row_range(scale).unwrap_or_default();
                let bg = row_range(bias).unwrap_or_default();
                let og = offset.and_then(row_range);
                for p in range.start..range.start + range.count {
                    let xrow = &x[p * k..p * k + k];
                    let dot = int_dot(xrow, &wm, n, -8);
                    let rowsum = xrow.iter().map(|&v| i64::from(v)).sum::<i64>() as f32;
                    let f = factor(pts, logit, p);
                    for (j, (((yv, &d), &s), &bv)) in y.iter_mut().zip(&dot).zip(&sg).zip(&bg).enumerate() {
                        let mut v = (d as f32) * s + bv;
                        if let Some(o) = og.as_ref().and_then(|og| og.get(j)) {
                            v += rowsum * o;
                        }
                        *yv = f * v;
                    }
                    scatter_add(&mut out, dest[p], n, &y);
                }
            }
            Kernel::Float { x, w, bias } => {
                let wm = w.get(g * k * n..(g + 1) * k * n).unwrap_or(&[]);
                let bg = bias.and_then(row_range);
                for p in range.start..range.start + range.count {
                    float_dot(&x[p * k..p * k + k], wm, &mut y);
                    if let Some(bg) = &bg {
                        for (yv, &bv) in y.iter_mut().zip(bg) {
                            *yv += bv;
                        }
                    }
                    if let Some(l) = logit {
                        for yv in y.iter_mut() {
                            *yv *= l[p];
                        }
                    }
                    scatter_add(&mut out, dest[p], n, &y);
                }
            }
        }
    }
    Ok(Tensor::from_f32(vec![b, n], out)?)
}

/// `pertoken_scale[p] * logit[p]`, with an absent operand contributing 1.
fn factor(pts: Option<&[f32]>, logit: Option<&[f32]>, p: usize) -> f32 {
    match (pts, logit) {
        (Some(s), Some(l)) => s[p] * l[p],
        (Some(s), None) => s[p],
        (None, Some(l)) => l[p],
        (None, None) => 1.0,
    }
}

/// Exact `sum_kk (x[kk] + shift) * W[kk, :]` over a row-major (k, n) matrix, in i64.
pub(crate) fn int_dot(x: &[i8], w: &[i8], n: usize, shift: i64) -> Vec<i64> {
    let mut acc = vec![0i64; n];
    if n > 0 {
        for (&xv, wrow) in x.iter().zip(w.chunks_exact(n)) {
            let xv = i64::from(xv) + shift;
            for (a, &wv) in acc.iter_mut().zip(wrow) {
                *a += xv * i64::from(wv);
            }
        }
    }
    acc
}

/// `y = sum_kk x[kk] * W[kk, :]` in f32, each product rounded then added in increasing kk.
pub(crate) fn float_dot(x: &[f32], w: &[f32], y: &mut [f32]) {
    y.fill(0.0);
    let n = y.len();
    if n > 0 {
        for (&xv, wrow) in x.iter().zip(w.chunks_exact(n)) {
            for (a, &wv) in y.iter_mut().zip(wrow) {
                *a += xv * wv;
            }
        }
    }
}

/// `out[row, :] += y` over a row-major (B, n) output; `row < B` was validated.
fn scatter_add(out: &mut [f32], row: usize, n: usize, y: &[f32]) {
    if let Some(dst) = out.get_mut(row * n..row * n + n) {
        for (o, &v) in dst.iter_mut().zip(y) {
            *o += v;
        }
    }
}

//! Reference semantics of `moe_finalize_routing` (SPEC 2.2): the gather-and-combine of expert
//! outputs back into token order.

use super::error::EvalError;
use super::operand;
use crate::tensor::{DType, Tensor};

/// The operands of `moe_finalize_routing`.
#[derive(Clone, Copy, Debug)]
pub struct MoeFinalizeRoutingOperands<'a> {
    /// Float (rows, H) for drop_pad_mode 0/2, (E, C, H) for 1/3 (indexed as (E*C, H)).
    pub expanded_permuted_rows: &'a Tensor,
    /// Float (R, H), added first.
    pub skip1: Option<&'a Tensor>,
    /// Float (R, H), added first.
    pub skip2: Option<&'a Tensor>,
    /// Float (E_b, H), added to each gathered row before scaling.
    pub bias: Option<&'a Tensor>,
    /// Float (R, K) combine weights; absent means 1.0.
    pub scales: Option<&'a Tensor>,
    /// i32 (R*K,): for each (token, slot) source, the permuted row holding its expert output.
    pub expanded_src_to_dst_row: &'a Tensor,
    /// i32 (R, K) expert of each (token, slot); required when bias is present.
    pub expert_for_source_row: Option<&'a Tensor>,
}

/// The attributes of `moe_finalize_routing`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoeFinalizeRoutingAttrs {
    /// 0: (rows, H), slot-major src2dst; 1: padded (E, C, H), slot-major; 2: (rows, H),
    /// token-major; 3: padded, token-major.
    pub drop_pad_mode: i64,
    /// R, the number of tokens (output rows).
    pub num_rows: usize,
    /// K, the number of slots (top-k) per token.
    pub top_k: usize,
}

/// Evaluates `moe_finalize_routing` (SPEC 2.2) in f32:
/// `out[i] = skip1[i] + skip2[i] + sum_j scales[i, j] * (rows[src2dst[pos]] + bias[expert[i, j]])`
/// with `pos = j*R + i` (modes 0, 1) or `i*K + j` (modes 2, 3), slots added in increasing j.
/// A -1 entry (modes 1 and 3 only) gathers a zero row; its bias term is still added, as SPEC
/// 2.2 writes it. The result has the dtype of `expanded_permuted_rows`, rounded once at the end.
///
/// skip1, skip2, bias and scales may have any float dtype (the reference widens to f32).
pub fn moe_finalize_routing(
    ops: &MoeFinalizeRoutingOperands<'_>,
    attrs: &MoeFinalizeRoutingAttrs,
) -> Result<Tensor, EvalError> {
    const FLOATS: &[DType] = &[DType::F32, DType::BF16, DType::F16];
    const FLOAT_WORDS: &str = "f32, bf16 or f16";
    let (r, kk) = (attrs.num_rows, attrs.top_k);
    let mode = attrs.drop_pad_mode;
    let rows_t = ops.expanded_permuted_rows;
    operand::dtype("expanded_permuted_rows", rows_t, FLOATS, FLOAT_WORDS)?;
    let (num_rows, h) = match mode {
        0 | 2 => {
            let s = operand::rank("expanded_permuted_rows", rows_t, 2, "(rows, H)")?;
            (s[0], s[1])
        }
        1 | 3 => {
            let s = operand::rank("expanded_permuted_rows", rows_t, 3, "(E, C, H)")?;
            (operand::product(&s[..2], "E * C")?, s[2])
        }
        value => {
            return Err(EvalError::Attribute {
                name: "drop_pad_mode",
                value,
                expected: "0, 1, 2 or 3",
            });
        }
    };
    let rk = operand::product(&[r, kk], "R * K")?;
    let out_len = operand::product(&[r, h], "output")?;
    let float_operand = |name: &'static str, t: Option<&Tensor>, shape: &[usize], dims| {
        t.map(|t| {
            operand::dtype(name, t, FLOATS, FLOAT_WORDS)?;
            operand::shape(name, t, shape, dims)?;
            Ok::<_, EvalError>(t.to_f32_vec())
        })
        .transpose()
    };
    let skip1 = float_operand("skip1", ops.skip1, &[r, h], "(R, H)")?;
    let skip2 = float_operand("skip2", ops.skip2, &[r, h], "(R, H)")?;
    let scales = float_operand("scales", ops.scales, &[r, kk], "(R, K)")?;
    let bias = match ops.bias {
        Some(b) => {
            operand::dtype("bias", b, FLOATS, FLOAT_WORDS)?;
            let eb = operand::rank("bias", b, 2, "(E_b, H)")?[0];
            operand::shape("bias", b, &[eb, h], "(E_b, H)")?;
            Some((eb, b.to_f32_vec()))
        }
        None => None,
    };
    let s2d = ops.expanded_src_to_dst_row;
    operand::dtype("expanded_src_to_dst_row", s2d, &[DType::I32], "i32")?;
    operand::shape("expanded_src_to_dst_row", s2d, &[rk], "(R*K,)")?;
    let s2d = s2d.as_i32().unwrap_or(&[]);
    let expert = match ops.expert_for_source_row {
        Some(t) => {
            operand::dtype("expert_for_source_row", t, &[DType::I32], "i32")?;
            operand::shape("expert_for_source_row", t, &[r, kk], "(R, K)")?;
            t.as_i32()
        }
        None => None,
    };
    if bias.is_some() && expert.is_none() {
        return Err(EvalError::MissingOperand {
            operand: "expert_for_source_row",
            context: "when bias is present",
        });
    }
    let padded = matches!(mode, 1 | 3);
    let pos_of = |i: usize, j: usize| if mode <= 1 { j * r + i } else { i * kk + j };

    // Validate every index before computing.
    let mut sources: Vec<Option<usize>> = Vec::with_capacity(rk);
    for (pos, &v) in s2d.iter().enumerate() {
        sources.push(match usize::try_from(v) {
            Ok(row) if row < num_rows => Some(row),
            _ if v == -1 && padded => None,
            _ if v == -1 => return Err(EvalError::DroppedRowNotAllowed { pos, mode }),
            _ => {
                return Err(EvalError::IndexOutOfRange {
                    operand: "expanded_src_to_dst_row",
                    index: vec![pos],
                    value: i64::from(v),
                    low: if padded { -1 } else { 0 },
                    high: num_rows as i64,
                });
            }
        });
    }
    let mut experts: Vec<usize> = Vec::new();
    if let (Some((eb, _)), Some(ex)) = (&bias, expert) {
        experts.reserve(rk);
        for (flat, &v) in ex.iter().enumerate() {
            match usize::try_from(v) {
                Ok(x) if x < *eb => experts.push(x),
                _ => {
                    return Err(EvalError::IndexOutOfRange {
                        operand: "expert_for_source_row",
                        index: vec![flat / kk.max(1), flat % kk.max(1)],
                        value: i64::from(v),
                        low: 0,
                        high: *eb as i64,
                    });
                }
            }
        }
    }

    let rows = rows_t.to_f32_vec();
    let mut out = operand::zeroed(out_len, 0f32, "output")?;
    for (i, orow) in out.chunks_exact_mut(h.max(1)).enumerate().take(r) {
        let skip_a = skip1.as_deref().and_then(|v| v.get(i * h..i * h + h));
        let skip_b = skip2.as_deref().and_then(|v| v.get(i * h..i * h + h));
        match (skip_a, skip_b) {
            (Some(a), Some(b)) => {
                for ((o, &x), &y) in orow.iter_mut().zip(a).zip(b) {
                    *o = x + y;
                }
            }
            (Some(a), None) | (None, Some(a)) => orow.copy_from_slice(a),
            (None, None) => {}
        }
        for j in 0..kk {
            let pos = pos_of(i, j);
            let scale = scales.as_ref().map_or(1.0, |s| s[i * kk + j]);
            let src = sources[pos].and_then(|row| rows.get(row * h..row * h + h));
            let bias_row = match &bias {
                Some((_, b)) => experts.get(i * kk + j).and_then(|&x| b.get(x * h..x * h + h)),
                None => None,
            };
            for (c, o) in orow.iter_mut().enumerate() {
                let v = src.map_or(0.0, |s| s[c]) + bias_row.map_or(0.0, |b| b[c]);
                *o += scale * v;
            }
        }
    }
    Ok(Tensor::from_f32_rounded(rows_t.dtype(), vec![r, h], out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32t(shape: Vec<usize>, v: Vec<f32>) -> Tensor {
        Tensor::from_f32(shape, v).unwrap()
    }

    fn i32t(v: Vec<i32>) -> Tensor {
        let n = v.len();
        Tensor::from_i32(vec![n], v).unwrap()
    }

    // Modes 0 and 2 read src2dst slot-major vs token-major and give the same sum for matching maps.
    #[test]
    fn modes_0_and_2() {
        // R = 2 tokens, K = 2 slots, H = 1; rows[p] = 10^p.
        let rows = f32t(vec![4, 1], vec![1.0, 10.0, 100.0, 1000.0]);
        let scales = f32t(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let skip1 = f32t(vec![2, 1], vec![0.5, 0.25]);
        // token-major map: (i=0,j=0)->2, (0,1)->0, (1,0)->3, (1,1)->1
        let tm = i32t(vec![2, 0, 3, 1]);
        let sm = i32t(vec![2, 3, 0, 1]);
        let run = |s2d: &Tensor, mode| {
            let ops = MoeFinalizeRoutingOperands {
                expanded_permuted_rows: &rows,
                skip1: Some(&skip1),
                skip2: None,
                bias: None,
                scales: Some(&scales),
                expanded_src_to_dst_row: s2d,
                expert_for_source_row: None,
            };
            let attrs = MoeFinalizeRoutingAttrs {
                drop_pad_mode: mode,
                num_rows: 2,
                top_k: 2,
            };
            moe_finalize_routing(&ops, &attrs).unwrap()
        };
        let want = vec![0.5 + 1.0 * 100.0 + 2.0 * 1.0, 0.25 + 3.0 * 1000.0 + 4.0 * 10.0];
        assert_eq!(run(&tm, 2).as_f32().unwrap(), want.as_slice());
        assert_eq!(run(&sm, 0).as_f32().unwrap(), want.as_slice());
    }

    // Mode 1 (padded) gathers a zero row for -1 but still adds the bias; mode 0 rejects -1.
    #[test]
    fn dropped_rows_and_bias() {
        // E = 2, C = 1, H = 2; R = 1, K = 2.
        let rows = f32t(vec![2, 1, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let bias = f32t(vec![2, 2], vec![10.0, 20.0, 30.0, 40.0]);
        let expert = Tensor::from_i32(vec![1, 2], vec![1, 0]).unwrap();
        let s2d = i32t(vec![1, -1]);
        let mut ops = MoeFinalizeRoutingOperands {
            expanded_permuted_rows: &rows,
            skip1: None,
            skip2: None,
            bias: Some(&bias),
            scales: None,
            expanded_src_to_dst_row: &s2d,
            expert_for_source_row: Some(&expert),
        };
        let mut attrs = MoeFinalizeRoutingAttrs {
            drop_pad_mode: 1,
            num_rows: 1,
            top_k: 2,
        };
        let out = moe_finalize_routing(&ops, &attrs).unwrap();
        assert_eq!(out.as_f32().unwrap(), &[(3.0 + 30.0) + 10.0, (4.0 + 40.0) + 20.0]);
        attrs.drop_pad_mode = 3;
        assert!(moe_finalize_routing(&ops, &attrs).is_ok());
        let flat = f32t(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        ops.expanded_permuted_rows = &flat;
        attrs.drop_pad_mode = 0;
        assert_eq!(
            moe_finalize_routing(&ops, &attrs),
            Err(EvalError::DroppedRowNotAllowed { pos: 1, mode: 0 })
        );
        ops.expert_for_source_row = None;
        attrs.drop_pad_mode = 1;
        ops.expanded_permuted_rows = &rows;
        assert!(matches!(
            moe_finalize_routing(&ops, &attrs),
            Err(EvalError::MissingOperand {
                operand: "expert_for_source_row",
                ..
            })
        ));
    }

    // Out-of-range src2dst and expert indices are errors naming the position and value.
    #[test]
    fn index_errors() {
        let rows = f32t(vec![2, 1], vec![1.0, 2.0]);
        let s2d = i32t(vec![0, 2]);
        let ops = MoeFinalizeRoutingOperands {
            expanded_permuted_rows: &rows,
            skip1: None,
            skip2: None,
            bias: None,
            scales: None,
            expanded_src_to_dst_row: &s2d,
            expert_for_source_row: None,
        };
        let attrs = MoeFinalizeRoutingAttrs {
            drop_pad_mode: 2,
            num_rows: 1,
            top_k: 2,
        };
        let e = moe_finalize_routing(&ops, &attrs).unwrap_err();
        assert_eq!(e.to_string(), "expanded_src_to_dst_row[1] = 2 is outside [0, 2)");
        let bias = f32t(vec![1, 1], vec![0.0]);
        let expert = Tensor::from_i32(vec![1, 2], vec![0, 5]).unwrap();
        let s2d = i32t(vec![0, 1]);
        let ops = MoeFinalizeRoutingOperands {
            bias: Some(&bias),
            expert_for_source_row: Some(&expert),
            expanded_src_to_dst_row: &s2d,
            ..ops
        };
        let e = moe_finalize_routing(&ops, &attrs).unwrap_err();
        assert_eq!(e.to_string(), "expert_for_source_row[0, 1] = 5 is outside [0, 1)");
    }

    // A bf16 input yields a bf16 result rounded once from the f32 sum.
    #[test]
    fn bf16_result() {
        let rows = Tensor::from_f32_rounded(DType::BF16, vec![2, 1], vec![1.0, 1.0 / 256.0]).unwrap();
        let s2d = i32t(vec![0, 1]);
        let ops = MoeFinalizeRoutingOperands {
            expanded_permuted_rows: &rows,
            skip1: None,
            skip2: None,
            bias: None,
            scales: None,
            expanded_src_to_dst_row: &s2d,
            expert_for_source_row: None,
        };
        let attrs = MoeFinalizeRoutingAttrs {
            drop_pad_mode: 2,
            num_rows: 1,
            top_k: 2,
        };
        let out = moe_finalize_routing(&ops, &attrs).unwrap();
        assert_eq!(out.dtype(), DType::BF16);
        // 1 + 1/256 is not a bf16 (8 significant bits): it rounds to even, 1.0.
        assert_eq!(out.to_f32_vec(), vec![1.0]);
    }
}

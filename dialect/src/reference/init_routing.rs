//! Reference semantics of `moe_init_routing` (v2, SPEC 2.3): the stable sort of (token, slot)
//! sources by expert that produces the permuted rows, their source indices and the group sizes.

use super::error::EvalError;
use super::operand;
use crate::tensor::{DType, Tensor};

/// The attributes of `moe_init_routing`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoeInitRoutingAttrs {
    /// Number of experts; every expert id must lie in `[0, expert_num)`.
    pub expert_num: i64,
    /// Maximum number of permuted rows kept; 0 keeps all.
    pub active_num: i64,
    /// 1: `expanded_row_idx = gidx` (permuted row -> source); 0: its inverse (source -> row).
    pub row_idx_type: i64,
    /// 0: `expert_tokens` holds inclusive prefix sums; 1: counts.
    pub expert_tokens_num_type: i64,
    /// Experts `[start, end)` kept (local experts); `None` means `[0, expert_num)`.
    pub active_expert_range: Option<(i64, i64)>,
}

impl MoeInitRoutingAttrs {
    /// All experts active, no cap, `row_idx_type` 1 and count output.
    pub fn new(expert_num: i64) -> Self {
        MoeInitRoutingAttrs {
            expert_num,
            active_num: 0,
            row_idx_type: 1,
            expert_tokens_num_type: 1,
            active_expert_range: None,
        }
    }
}

/// The outputs of `moe_init_routing` that matter for the fusion.
#[derive(Clone, Debug, PartialEq)]
pub struct MoeInitRouting {
    /// (rows, h) of x's dtype: row p is `x[gidx[p] / K]` for p < A, zero past A.
    /// rows = T*K, or min(T*K, active_num) when active_num > 0.
    pub expanded_x: Tensor,
    /// i32 (T*K,): gidx (row_idx_type 1, -1 past A) or its inverse (row_idx_type 0, -1 for
    /// sources without a row).
    pub expanded_row_idx: Tensor,
    /// i64 (end - start,): rows per kept expert (counts or prefix sums), over the A rows kept.
    pub expert_tokens: Tensor,
    /// gidx itself: the flat source index `t*K + j` of each of the A kept rows.
    pub gidx: Vec<usize>,
}

/// Evaluates `moe_init_routing` on x (T, h) of any dtype and i32 `expert_idx` (T, K).
///
/// Sources whose expert lies outside the active range are dropped; the rest are sorted by expert,
/// ties by flat index (a stable sort). The first A of them (A = kept count, capped by
/// active_num when positive) become the permuted rows. Entries past A, which SPEC leaves
/// uninitialised, are made deterministic here: -1 in `expanded_row_idx`, zero rows in
/// `expanded_x`. `expert_tokens` counts only the A rows placed, so it is a valid group list for
/// `expanded_x`.
pub fn moe_init_routing(
    x: &Tensor,
    expert_idx: &Tensor,
    attrs: &MoeInitRoutingAttrs,
) -> Result<MoeInitRouting, EvalError> {
    let xs = operand::rank("x", x, 2, "(T, h)")?;
    let (t, h) = (xs[0], xs[1]);
    operand::dtype("expert_idx", expert_idx, &[DType::I32], "i32")?;
    let k = operand::rank("expert_idx", expert_idx, 2, "(T, K)")?[1];
    operand::shape("expert_idx", expert_idx, &[t, k], "(T, K)")?;
    let ids = expert_idx.as_i32().unwrap_or(&[]);
    if attrs.expert_num <= 0 {
        return Err(EvalError::Attribute {
            name: "expert_num",
            value: attrs.expert_num,
            expected: "> 0",
        });
    }
    let active_num = usize::try_from(attrs.active_num).map_err(|_| EvalError::Attribute {
        name: "active_num",
        value: attrs.active_num,
        expected: ">= 0 (0 keeps all rows)",
    })?;
    for (name, value) in [
        ("row_idx_type", attrs.row_idx_type),
        ("expert_tokens_num_type", attrs.expert_tokens_num_type),
    ] {
        if !(0..=1).contains(&value) {
            return Err(EvalError::Attribute {
                name,
                value,
                expected: "0 or 1",
            });
        }
    }
    let (start, end) = attrs.active_expert_range.unwrap_or((0, attrs.expert_num));
    if !(0 <= start && start <= end && end <= attrs.expert_num) {
        let bad = if start < 0 || start > end { start } else { end };
        return Err(EvalError::Attribute {
            name: "active_expert_range",
            value: bad,
            expected: "0 <= start <= end <= expert_num",
        });
    }
    for (flat, &id) in ids.iter().enumerate() {
        if !(0..attrs.expert_num).contains(&i64::from(id)) {
            return Err(EvalError::IndexOutOfRange {
                operand: "expert_idx",
                index: vec![flat / k.max(1), flat % k.max(1)],
                value: i64::from(id),
                low: 0,
                high: attrs.expert_num,
            });
        }
    }
    let tk = operand::product(&[t, k], "T * K")?;
    let mut kept: Vec<usize> = (0..tk).filter(|&f| (start..end).contains(&i64::from(ids[f]))).collect();
    kept.sort_by_key(|&f| ids[f]);
    let a = if active_num > 0 {
        kept.len().min(active_num)
    } else {
        kept.len()
    };
    kept.truncate(a);
    let gidx = kept;

    let out_rows = if active_num > 0 { tk.min(active_num) } else { tk };
    let mut indices = operand::with_capacity(operand::product(&[out_rows, h], "expanded_x")?, "expanded_x")?;
    for p in 0..out_rows {
        match gidx.get(p) {
            Some(&src) => indices.extend((0..h).map(|c| Some((src / k) * h + c))),
            None => indices.extend(std::iter::repeat_n(None, h)),
        }
    }
    let expanded_x = Tensor::new(x.dtype(), vec![out_rows, h], x.buffer().gather(&indices)?)?;

    let mut row_idx = vec![-1i32; tk];
    for (p, &src) in gidx.iter().enumerate() {
        // p and src are below T*K; past i32::MAX the i32 output cannot represent them.
        let (slot, value) = if attrs.row_idx_type == 1 { (p, src) } else { (src, p) };
        row_idx[slot] = i32::try_from(value).map_err(|_| EvalError::SizeOverflow {
            what: "expanded_row_idx (index beyond i32)",
        })?;
    }
    let expanded_row_idx = Tensor::from_i32(vec![tk], row_idx)?;

    // (end - start) fits: 0 <= start <= end <= expert_num.
    let num_experts = (end - start) as usize;
    let mut tokens = operand::zeroed(num_experts, 0i64, "expert_tokens")?;
    for &src in &gidx {
        tokens[(i64::from(ids[src]) - start) as usize] += 1;
    }
    if attrs.expert_tokens_num_type == 0 {
        let mut running = 0i64;
        for c in tokens.iter_mut() {
            running += *c;
            *c = running;
        }
    }
    let expert_tokens = Tensor::from_i64(vec![num_experts], tokens)?;
    Ok(MoeInitRouting {
        expanded_x,
        expanded_row_idx,
        expert_tokens,
        gidx,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(t: usize, k: usize, v: Vec<i32>) -> Tensor {
        Tensor::from_i32(vec![t, k], v).unwrap()
    }

    // gidx is a stable argsort by expert; row_idx_type 0 gives its inverse; counts and cumsum.
    #[test]
    fn gidx_and_inverse() {
        let x = Tensor::from_f32(vec![3, 1], vec![10.0, 20.0, 30.0]).unwrap();
        // flat ids: [2, 0, 1, 0, 2, 1]
        let e = ids(3, 2, vec![2, 0, 1, 0, 2, 1]);
        let attrs = MoeInitRoutingAttrs::new(3);
        let r = moe_init_routing(&x, &e, &attrs).unwrap();
        assert_eq!(r.gidx, vec![1, 3, 2, 5, 0, 4]);
        assert_eq!(r.expanded_row_idx.as_i32().unwrap(), &[1, 3, 2, 5, 0, 4]);
        assert_eq!(r.expanded_x.as_f32().unwrap(), &[10.0, 20.0, 20.0, 30.0, 10.0, 30.0]);
        assert_eq!(r.expert_tokens.as_i64().unwrap(), &[2, 2, 2]);
        let inv = moe_init_routing(
            &x,
            &e,
            &MoeInitRoutingAttrs {
                row_idx_type: 0,
                expert_tokens_num_type: 0,
                ..attrs
            },
        )
        .unwrap();
        let inv_idx = inv.expanded_row_idx.as_i32().unwrap();
        for (p, &src) in r.gidx.iter().enumerate() {
            assert_eq!(inv_idx[src], p as i32);
        }
        assert_eq!(inv.expert_tokens.as_i64().unwrap(), &[2, 4, 6]);
    }

    // An expert range drops sources outside it and active_num caps the rows; -1 / zero past A.
    #[test]
    fn range_and_cap() {
        let x = Tensor::from_i8(vec![3, 1], vec![1, 2, 3]).unwrap();
        let e = ids(3, 2, vec![2, 0, 1, 0, 2, 1]);
        let attrs = MoeInitRoutingAttrs {
            active_expert_range: Some((1, 3)),
            active_num: 3,
            ..MoeInitRoutingAttrs::new(3)
        };
        let r = moe_init_routing(&x, &e, &attrs).unwrap();
        assert_eq!(r.gidx, vec![2, 5, 0]);
        assert_eq!(r.expanded_x.shape(), &[3, 1]);
        assert_eq!(r.expanded_x.as_i8().unwrap(), &[2, 3, 1]);
        assert_eq!(r.expanded_row_idx.as_i32().unwrap(), &[2, 5, 0, -1, -1, -1]);
        assert_eq!(r.expert_tokens.as_i64().unwrap(), &[2, 1]);
        let r0 = moe_init_routing(
            &x,
            &e,
            &MoeInitRoutingAttrs {
                row_idx_type: 0,
                active_num: 0,
                ..attrs
            },
        )
        .unwrap();
        assert_eq!(r0.expanded_x.shape(), &[6, 1]);
        assert_eq!(r0.expanded_x.as_i8().unwrap(), &[2, 3, 1, 3, 0, 0]);
        assert_eq!(r0.expanded_row_idx.as_i32().unwrap(), &[2, -1, 0, -1, 3, 1]);
    }

    // Expert ids outside [0, expert_num) and a bad range are errors.
    #[test]
    fn errors() {
        let x = Tensor::from_f32(vec![1, 1], vec![1.0]).unwrap();
        let e = ids(1, 2, vec![0, 3]);
        let err = moe_init_routing(&x, &e, &MoeInitRoutingAttrs::new(3)).unwrap_err();
        assert_eq!(err.to_string(), "expert_idx[0, 1] = 3 is outside [0, 3)");
        let e = ids(1, 2, vec![0, 1]);
        let bad = MoeInitRoutingAttrs {
            active_expert_range: Some((2, 1)),
            ..MoeInitRoutingAttrs::new(3)
        };
        assert!(matches!(
            moe_init_routing(&x, &e, &bad),
            Err(EvalError::Attribute {
                name: "active_expert_range",
                ..
            })
        ));
    }
}

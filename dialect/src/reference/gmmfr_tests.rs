//! Edge-case tests of the fused op's reference against an independent f64 re-statement of
//! SPEC 1 written here over ND weights.

use half::{bf16, f16};

use super::compare;
use super::error::EvalError;
use super::format_cast::nd_to_nz;
use super::gmmfr::{GmmfrAttrs, GmmfrOperands, grouped_matmul_finalize_routing};
use super::test_rng::Rng;
use crate::tensor::Tensor;

/// One fused-op problem with owned operands and the ND weights the naive reference reads.
#[derive(Clone)]
struct Problem {
    m: usize,
    k: usize,
    n: usize,
    x: Tensor,
    w_nd: Vec<i8>,
    w: Tensor,
    group_list: Tensor,
    scale: Option<Tensor>,
    bias: Option<Tensor>,
    offset: Option<Tensor>,
    pts: Option<Tensor>,
    logit: Option<Tensor>,
    row_index: Tensor,
    shared: Option<Tensor>,
    attrs: GmmfrAttrs,
}

impl Problem {
    fn ops(&self) -> GmmfrOperands<'_> {
        GmmfrOperands {
            x: &self.x,
            w: &self.w,
            group_list: &self.group_list,
            scale: self.scale.as_ref(),
            bias: self.bias.as_ref(),
            offset: self.offset.as_ref(),
            pertoken_scale: self.pts.as_ref(),
            shared_input: self.shared.as_ref(),
            logit: self.logit.as_ref(),
            row_index: &self.row_index,
        }
    }

    fn eval(&self) -> Result<Tensor, EvalError> {
        grouped_matmul_finalize_routing(&self.ops(), &self.attrs)
    }

    fn b(&self) -> usize {
        if self.attrs.output_bs > 0 {
            self.attrs.output_bs as usize
        } else {
            self.m
        }
    }

    /// Rows covered by each group, from a counts group list.
    fn counts(&self) -> Vec<usize> {
        let g = self.group_list.as_i64().unwrap();
        if self.attrs.group_list_type == 1 {
            g.iter().map(|&c| c as usize).collect()
        } else {
            let mut prev = 0;
            g.iter()
                .map(|&c| {
                    let d = c - prev;
                    prev = c;
                    d as usize
                })
                .collect()
        }
    }

    /// SPEC 1.1 / 1.3 / 1.4 restated in f64; only active rows are read.
    fn naive(&self) -> Tensor {
        let (k, n, b) = (self.k, self.n, self.b());
        let mut out = vec![0f64; b * n];
        if let Some(s) = &self.shared {
            let off = self.attrs.shared_input_offset as usize;
            for (i, v) in s.to_f64_vec().iter().enumerate() {
                out[off * n + i] = v * f64::from(self.attrs.shared_input_weight);
            }
        }
        let x = self.x.as_i8().unwrap();
        let a8w4 = self.w.dtype() == crate::tensor::DType::I4;
        let scale: Vec<f64> = match &self.scale {
            Some(s) if a8w4 => s
                .as_i64()
                .unwrap()
                .iter()
                .map(|&v| f64::from(f32::from_bits(v as u32)))
                .collect(),
            Some(s) => s.to_f64_vec(),
            None => vec![],
        };
        let bias = self.bias.as_ref().map(Tensor::to_f64_vec);
        let offset = self.offset.as_ref().map(Tensor::to_f64_vec);
        let pts = self.pts.as_ref().map(Tensor::to_f64_vec);
        let logit = self.logit.as_ref().map(Tensor::to_f64_vec);
        let ri = self.row_index.to_f64_vec();
        let mut p = 0;
        for (g, count) in self.counts().into_iter().enumerate() {
            for _ in 0..count {
                let f = pts.as_ref().map_or(1.0, |v| v[p]) * logit.as_ref().map_or(1.0, |v| v[p]);
                let rowsum: f64 = (0..k).map(|kk| f64::from(x[p * k + kk])).sum();
                for nn in 0..n {
                    let shift = if a8w4 { -8.0 } else { 0.0 };
                    let acc: f64 = (0..k)
                        .map(|kk| (f64::from(x[p * k + kk]) + shift) * f64::from(self.w_nd[(g * k + kk) * n + nn]))
                        .sum();
                    let mut y = if a8w4 {
                        let mut v = acc * scale[g * n + nn] + bias.as_ref().unwrap()[g * n + nn];
                        if let Some(o) = &offset {
                            v += rowsum * o[g * n + nn];
                        }
                        f * v
                    } else {
                        acc * scale[g * n + nn] * f
                    };
                    if let (false, Some(bv)) = (a8w4, &bias) {
                        y += logit.as_ref().map_or(1.0, |v| v[p]) * bv[g * n + nn];
                    }
                    out[ri[p] as usize * n + nn] += y;
                }
                p += 1;
            }
        }
        Tensor::from_f32(vec![b, n], out.into_iter().map(|v| v as f32).collect()).unwrap()
    }
}

/// A random A8W8 problem: `counts` per group, `b` output rows, garbage past sum(counts).
fn a8w8(seed: u64, (m, k, n): (usize, usize, usize), counts: &[i64], b: usize) -> Problem {
    let mut rng = Rng::new(seed);
    let e = counts.len();
    let active: usize = counts.iter().map(|&c| c as usize).sum();
    let w_nd = rng.i8s(e * k * n, -128, 127);
    let w = nd_to_nz(&Tensor::from_i8(vec![e, k, n], w_nd.clone()).unwrap()).unwrap();
    let mut logit = rng.f32s(m, 0.0, 1.0);
    let mut pts = rng.f32s(m, 0.001, 0.01);
    let mut ri: Vec<i64> = (0..m).map(|_| rng.below(b) as i64).collect();
    for p in active..m {
        logit[p] = f32::NAN;
        pts[p] = f32::INFINITY;
        ri[p] = if p % 2 == 0 { 1 << 40 } else { -3 };
    }
    let si: Vec<bf16> = rng.f32s(n, -4.0, 4.0).into_iter().map(bf16::from_f32).collect();
    Problem {
        m,
        k,
        n,
        x: Tensor::from_i8(vec![m, k], rng.i8s(m * k, -128, 127)).unwrap(),
        w_nd,
        w,
        group_list: Tensor::from_i64(vec![e], counts.to_vec()).unwrap(),
        scale: Some(Tensor::from_f32(vec![e, n], rng.f32s(e * n, 0.001, 0.01)).unwrap()),
        bias: None,
        offset: None,
        pts: Some(Tensor::from_f32(vec![m], pts).unwrap()),
        logit: Some(Tensor::from_f32(vec![m], logit).unwrap()),
        row_index: Tensor::from_i64(vec![m], ri).unwrap(),
        shared: Some(Tensor::from_bf16(vec![1, n], si).unwrap()),
        attrs: GmmfrAttrs {
            output_bs: b as i64,
            shared_input_offset: (b - 1) as i64,
            ..GmmfrAttrs::default()
        },
    }
}

fn assert_close(actual: &Tensor, expected: &Tensor, tol: f64) {
    let c = compare(actual, expected).unwrap();
    assert!(c.within(tol), "{c:?}");
}

// A8W8 with an empty group, output_bs < m and a garbage tail matches the f64 restatement.
#[test]
fn a8w8_matches_naive() {
    let p = a8w8(1, (24, 40, 70), &[5, 0, 7, 3], 6);
    let out = p.eval().unwrap();
    assert_eq!(out.shape(), &[6, 70]);
    assert_close(&out, &p.naive(), 1e-6);
}

// A cumsum group list (type 0) gives the same result as the equivalent counts.
#[test]
fn cumsum_equals_counts() {
    let p = a8w8(2, (16, 32, 64), &[3, 0, 6, 2], 8);
    let mut q = p.clone();
    q.group_list = Tensor::from_i64(vec![4], vec![3, 3, 9, 11]).unwrap();
    q.attrs.group_list_type = 0;
    assert_eq!(p.eval().unwrap(), q.eval().unwrap());
}

// Rows past sum(group_list) are never read: NaN/inf/out-of-range garbage there changes nothing.
#[test]
fn garbage_rows_not_read() {
    let p = a8w8(3, (20, 32, 64), &[4, 6, 2], 5);
    let mut clean = p.clone();
    let active = 12;
    let mut logit = p.logit.as_ref().unwrap().as_f32().unwrap().to_vec();
    let mut pts = p.pts.as_ref().unwrap().as_f32().unwrap().to_vec();
    let mut ri = p.row_index.as_i64().unwrap().to_vec();
    let mut x = p.x.as_i8().unwrap().to_vec();
    assert!(logit[active..].iter().all(|v| v.is_nan()));
    logit[active..].fill(0.0);
    pts[active..].fill(0.0);
    ri[active..].fill(0);
    x[active * 32..].fill(0);
    clean.logit = Some(Tensor::from_f32(vec![20], logit).unwrap());
    clean.pts = Some(Tensor::from_f32(vec![20], pts).unwrap());
    clean.row_index = Tensor::from_i64(vec![20], ri).unwrap();
    clean.x = Tensor::from_i8(vec![20, 32], x).unwrap();
    let out = p.eval().unwrap();
    assert!(out.as_f32().unwrap().iter().all(|v| v.is_finite()));
    assert_eq!(out, clean.eval().unwrap());
}

// An i32 row_index gives the same result as the i64 one.
#[test]
fn int32_row_index() {
    let p = a8w8(4, (12, 16, 32), &[5, 4], 4);
    let mut q = p.clone();
    let ri: Vec<i32> = p.row_index.as_i64().unwrap()[..9]
        .iter()
        .map(|&v| v as i32)
        .chain([i32::MIN, 77, -1])
        .collect();
    q.row_index = Tensor::from_i32(vec![12], ri).unwrap();
    assert_eq!(p.eval().unwrap(), q.eval().unwrap());
}

// output_bs = 0 means m output rows.
#[test]
fn output_bs_zero_means_m() {
    let mut p = a8w8(5, (10, 16, 32), &[6, 4], 10);
    p.attrs.output_bs = 0;
    let out = p.eval().unwrap();
    assert_eq!(out.shape(), &[10, 32]);
    assert_close(&out, &p.naive(), 1e-6);
}

// shared_input * weight is written before the scatter-adds: the slice keeps both, exactly.
#[test]
fn shared_input_written_then_added() {
    let mut p = a8w8(6, (8, 16, 32), &[4, 4], 4);
    // Exact arithmetic: small integers, scale 1, pts 1, logit 1/2, weight 3/4.
    let mut rng = Rng::new(60);
    p.x = Tensor::from_i8(vec![8, 16], rng.i8s(128, -3, 3)).unwrap();
    p.scale = Some(Tensor::from_f32(vec![2, 32], vec![1.0; 64]).unwrap());
    p.pts = Some(Tensor::from_f32(vec![8], vec![1.0; 8]).unwrap());
    p.logit = Some(Tensor::from_f32(vec![8], vec![0.5; 8]).unwrap());
    // Every output row, including the two shared rows, receives two contributions.
    p.row_index = Tensor::from_i64(vec![8], vec![0, 1, 2, 3, 3, 2, 1, 0]).unwrap();
    let si: Vec<bf16> = (0..64).map(|i| bf16::from_f32(i as f32 - 20.0)).collect();
    p.shared = Some(Tensor::from_bf16(vec![2, 32], si).unwrap());
    p.attrs.shared_input_weight = 0.75;
    p.attrs.shared_input_offset = 1;
    let out = p.eval().unwrap();
    assert_eq!(out, p.naive());
    let mut no_shared = p.clone();
    no_shared.shared = None;
    let base = no_shared.eval().unwrap();
    let (o, b) = (out.as_f32().unwrap(), base.as_f32().unwrap());
    for i in 0..4 * 32 {
        let shared = if (32..96).contains(&i) {
            0.75 * (i as f32 - 32.0 - 20.0)
        } else {
            0.0
        };
        assert_eq!(o[i], b[i] + shared, "element {i}");
    }
}

// Neither pertoken_scale nor logit: the factor is 1; logit alone is the factor.
#[test]
fn missing_pts_and_logit() {
    let mut p = a8w8(7, (8, 16, 32), &[3, 5], 8);
    p.pts = None;
    assert_close(&p.eval().unwrap(), &p.naive(), 1e-6);
    p.logit = None;
    assert_close(&p.eval().unwrap(), &p.naive(), 1e-6);
}

// The A8W8 bf16 bias is added as logit * bias, not multiplied by pertoken_scale.
#[test]
fn a8w8_bias_not_scaled_by_pts() {
    let mut p = a8w8(8, (8, 16, 32), &[3, 5], 8);
    let mut rng = Rng::new(80);
    let bias: Vec<bf16> = rng.f32s(64, -2.0, 2.0).into_iter().map(bf16::from_f32).collect();
    p.bias = Some(Tensor::from_bf16(vec![2, 32], bias).unwrap());
    assert_close(&p.eval().unwrap(), &p.naive(), 1e-6);
}

/// A random A8W4 problem (ND i4 weight), with the given bias and optional offset.
fn a8w4(seed: u64, compensation_bias: bool, with_offset: bool) -> Problem {
    let (m, k, n, e, b) = (12usize, 64usize, 80usize, 3usize, 6usize);
    let mut p = a8w8(seed, (m, k, n), &[4, 0, 6], b);
    let mut rng = Rng::new(seed * 31);
    p.w_nd = rng.i8s(e * k * n, -8, 7);
    p.w = Tensor::from_i4(vec![e, k, n], p.w_nd.clone()).unwrap();
    let scale: Vec<f32> = rng
        .f32s(e * n, 0.001, 0.01)
        .into_iter()
        .map(|s| f16::from_f32(s).to_f32())
        .collect();
    let bias: Vec<f32> = if compensation_bias {
        (0..e * n)
            .map(|gi| {
                let (g, nn) = (gi / n, gi % n);
                let s: f64 = (0..k)
                    .map(|kk| f64::from(p.w_nd[(g * k + kk) * n + nn]) * f64::from(scale[gi]))
                    .sum();
                (8.0 * s) as f32
            })
            .collect()
    } else {
        rng.f32s(e * n, -3.0, 3.0)
    };
    p.scale = Some(Tensor::from_i64(vec![e, 1, n], scale.iter().map(|s| i64::from(s.to_bits())).collect()).unwrap());
    p.bias = Some(Tensor::from_f32(vec![e, n], bias).unwrap());
    p.offset = with_offset.then(|| Tensor::from_f32(vec![e, 1, n], rng.f32s(e * n, -0.01, 0.01)).unwrap());
    p
}

// A8W4 computes the general form for an arbitrary bias, with and without offset.
#[test]
fn a8w4_general_form_arbitrary_bias() {
    for with_offset in [true, false] {
        let p = a8w4(9, false, with_offset);
        assert_close(&p.eval().unwrap(), &p.naive(), 1e-5);
    }
}

// With the compensation bias 8*sum_k(W*scale) the general form equals the exact x@W form.
#[test]
fn a8w4_compensation_bias_gives_exact_form() {
    let p = a8w4(10, true, true);
    let out = p.eval().unwrap();
    // Exact form restated: f * ((x @ W) * scale + rowsum(x) * offset), in f64.
    let (k, n) = (p.k, p.n);
    let x = p.x.as_i8().unwrap();
    let scale: Vec<f64> = p
        .scale
        .as_ref()
        .unwrap()
        .as_i64()
        .unwrap()
        .iter()
        .map(|&v| f64::from(f32::from_bits(v as u32)))
        .collect();
    let off = p.offset.as_ref().unwrap().to_f64_vec();
    let (pts, logit) = (
        p.pts.as_ref().unwrap().to_f64_vec(),
        p.logit.as_ref().unwrap().to_f64_vec(),
    );
    let ri = p.row_index.as_i64().unwrap();
    let mut exact = vec![0f64; p.b() * n];
    for (i, v) in p.shared.as_ref().unwrap().to_f64_vec().iter().enumerate() {
        exact[p.attrs.shared_input_offset as usize * n + i] = *v;
    }
    let mut row = 0;
    for (g, c) in p.counts().into_iter().enumerate() {
        for _ in 0..c {
            let rowsum: f64 = (0..k).map(|kk| f64::from(x[row * k + kk])).sum();
            for nn in 0..n {
                let dot: f64 = (0..k)
                    .map(|kk| f64::from(x[row * k + kk]) * f64::from(p.w_nd[(g * k + kk) * n + nn]))
                    .sum();
                exact[ri[row] as usize * n + nn] +=
                    pts[row] * logit[row] * (dot * scale[g * n + nn] + rowsum * off[g * n + nn]);
            }
            row += 1;
        }
    }
    let exact = Tensor::from_f32(vec![p.b(), n], exact.into_iter().map(|v| v as f32).collect()).unwrap();
    assert_close(&out, &exact, 1e-5);
}

// An i4 weight in NZ storage (n0 = 64) gives the same result as ND.
#[test]
fn a8w4_nz_equals_nd() {
    let p = a8w4(11, false, true);
    let mut q = p.clone();
    q.w = nd_to_nz(&p.w).unwrap();
    assert_eq!(q.w.shape(), &[3, 2, 4, 16, 64]);
    assert_eq!(p.eval().unwrap(), q.eval().unwrap());
}

// Float x and w: logit * (x @ W + bias), accumulated in f32.
#[test]
fn float_scenario() {
    let mut rng = Rng::new(12);
    let (m, k, n, e) = (6, 5, 4, 2);
    let x = rng.f32s(m * k, -1.0, 1.0);
    let w = rng.f32s(e * k * n, -1.0, 1.0);
    let bias = rng.f32s(e * n, -1.0, 1.0);
    let logit = rng.f32s(m, 0.0, 1.0);
    let ri = vec![0i64, 2, 1, 0, 2, 1];
    let (xt, wt) = (
        Tensor::from_f32(vec![m, k], x.clone()).unwrap(),
        Tensor::from_f32(vec![e, k, n], w.clone()).unwrap(),
    );
    let (gl, bt) = (
        Tensor::from_i64(vec![e], vec![2, 3]).unwrap(),
        Tensor::from_f32(vec![e, n], bias.clone()).unwrap(),
    );
    let (lt, rt) = (
        Tensor::from_f32(vec![m], logit.clone()).unwrap(),
        Tensor::from_i64(vec![m], ri.clone()).unwrap(),
    );
    let ops = GmmfrOperands {
        x: &xt,
        w: &wt,
        group_list: &gl,
        scale: None,
        bias: Some(&bt),
        offset: None,
        pertoken_scale: None,
        shared_input: None,
        logit: Some(&lt),
        row_index: &rt,
    };
    let attrs = GmmfrAttrs {
        output_bs: 3,
        ..GmmfrAttrs::default()
    };
    let out = grouped_matmul_finalize_routing(&ops, &attrs).unwrap();
    let mut want = vec![0f64; 3 * n];
    for p in 0..5 {
        let g = usize::from(p >= 2);
        for nn in 0..n {
            let acc: f64 = (0..k)
                .map(|kk| f64::from(x[p * k + kk]) * f64::from(w[(g * k + kk) * n + nn]))
                .sum();
            want[ri[p] as usize * n + nn] += f64::from(logit[p]) * (acc + f64::from(bias[g * n + nn]));
        }
    }
    let want = Tensor::from_f32(vec![3, n], want.into_iter().map(|v| v as f32).collect()).unwrap();
    assert_close(&out, &want, 1e-6);
    let ops = GmmfrOperands {
        pertoken_scale: Some(&lt),
        ..ops
    };
    assert_eq!(
        grouped_matmul_finalize_routing(&ops, &attrs),
        Err(EvalError::UnexpectedOperand {
            operand: "pertoken_scale",
            context: "for float x and w"
        })
    );
}

// Every runtime precondition and static mismatch is an error naming the operand and value.
#[test]
fn precondition_errors() {
    let base = a8w8(13, (16, 32, 64), &[4, 6, 2], 8);
    let check = |f: &dyn Fn(&mut Problem), want: EvalError| {
        let mut p = base.clone();
        f(&mut p);
        assert_eq!(p.eval(), Err(want));
    };
    check(
        &|p| {
            let mut ri = p.row_index.as_i64().unwrap().to_vec();
            ri[11] = 8;
            p.row_index = Tensor::from_i64(vec![16], ri).unwrap();
        },
        EvalError::RowIndexOutOfRange {
            p: 11,
            value: 8,
            bound: 8,
            active: 12,
        },
    );
    check(
        &|p| p.row_index = Tensor::from_i32(vec![16], vec![-1; 16]).unwrap(),
        EvalError::RowIndexOutOfRange {
            p: 0,
            value: -1,
            bound: 8,
            active: 12,
        },
    );
    check(
        &|p| p.group_list = Tensor::from_i64(vec![3], vec![4, 6, 7]).unwrap(),
        EvalError::GroupSumExceedsM { sum: 17, m: 16 },
    );
    check(
        &|p| p.group_list = Tensor::from_i64(vec![2], vec![4, 6]).unwrap(),
        EvalError::Shape {
            operand: "group_list",
            dims: "(e,)",
            expected: vec![3],
            actual: vec![2],
        },
    );
    check(
        &|p| p.attrs.shared_input_offset = 8,
        EvalError::SharedInputRange {
            offset: 8,
            rows: 1,
            bound: 8,
        },
    );
    check(
        &|p| p.attrs.shared_input_offset = -1,
        EvalError::SharedInputRange {
            offset: -1,
            rows: 1,
            bound: 8,
        },
    );
    check(
        &|p| p.attrs.dtype = 2,
        EvalError::Attribute {
            name: "dtype",
            value: 2,
            expected: "0 (f32 output, the only type the kernel produces)",
        },
    );
    check(
        &|p| p.attrs.output_bs = -1,
        EvalError::Attribute {
            name: "output_bs",
            value: -1,
            expected: ">= 0 (0 means m)",
        },
    );
    check(
        &|p| p.attrs.group_list_type = 2,
        EvalError::Attribute {
            name: "group_list_type",
            value: 2,
            expected: "0 (cumsum) or 1 (counts)",
        },
    );
    check(
        &|p| p.offset = Some(Tensor::from_f32(vec![3, 1, 64], vec![0.0; 192]).unwrap()),
        EvalError::UnexpectedOperand {
            operand: "offset",
            context: "for A8W8 (i8 x, i8 w)",
        },
    );
    check(
        &|p| p.scale = None,
        EvalError::MissingOperand {
            operand: "scale",
            context: "for A8W8 (i8 x, i8 w)",
        },
    );
    check(
        &|p| p.scale = Some(Tensor::from_f32(vec![3, 96], vec![1.0; 288]).unwrap()),
        EvalError::Shape {
            operand: "w",
            dims: "(e, ceil(n/n0), ceil(k/16), 16, n0)",
            expected: vec![3, 3, 2, 16, 32],
            actual: vec![3, 2, 2, 16, 32],
        },
    );
    check(
        &|p| p.w = Tensor::from_i8(vec![3, 32, 64], p.w_nd.clone()).unwrap(),
        EvalError::Rank {
            operand: "w",
            dims: "(e, n1, k1, 16, 32)",
            rank: 5,
            actual: vec![3, 32, 64],
        },
    );
    check(
        &|p| p.x = Tensor::from_f32(vec![16, 32], vec![0.0; 512]).unwrap(),
        EvalError::UnsupportedScenario {
            x: crate::tensor::DType::F32,
            w: crate::tensor::DType::I8,
        },
    );
    check(
        &|p| p.logit = Some(Tensor::from_f32(vec![15], vec![0.0; 15]).unwrap()),
        EvalError::Shape {
            operand: "logit",
            dims: "(m,)",
            expected: vec![16],
            actual: vec![15],
        },
    );
    let a4 = a8w4(14, false, false);
    let mut p = a4.clone();
    p.bias = None;
    assert_eq!(
        p.eval(),
        Err(EvalError::MissingOperand {
            operand: "bias",
            context: "for A8W4 (i8 x, i4 w)"
        })
    );
    let mut p = a4.clone();
    let mut s = p.scale.as_ref().unwrap().as_i64().unwrap().to_vec();
    s[81] |= 1 << 40;
    let bad = s[81];
    p.scale = Some(Tensor::from_i64(vec![3, 1, 80], s).unwrap());
    let e = p.eval().unwrap_err();
    assert_eq!(
        e,
        EvalError::ScaleHighBits {
            group: 1,
            col: 1,
            value: bad
        }
    );
    assert!(e.to_string().starts_with("scale[1, 0, 1] = 0x0000010"), "{e}");
}

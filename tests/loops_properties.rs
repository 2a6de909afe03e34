//! Property tests of the CPU loop target against the reference semantics: random shapes (n and k
//! not multiples of the 32-column block or 16-row NZ block, empty groups, rows past
//! sum(group_list) holding garbage, output_bs < m, count and cumsum lists, int32 and int64
//! row_index, with and without shared_input / pertoken_scale / logit) in the A8W8, A8W4 and
//! non-quantized scenarios, at 1 and 2 threads. A8W8 and the non-quantized variant must match
//! the reference to 1e-5 of the output's magnitude, A8W4 likewise (same f32 order of operations).

use gmmfr::Compiler;
use gmmfr::loops_run::run_case;
use gmmfr_dialect::reference::{GmmfrAttrs, GmmfrOperands, compare, grouped_matmul_finalize_routing};
use gmmfr_dialect::tensor::Tensor;

/// xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    A8W8,
    A8W4,
    Float,
}

struct Random {
    x: Tensor,
    w: Tensor,
    group_list: Tensor,
    scale: Option<Tensor>,
    bias: Option<Tensor>,
    offset: Option<Tensor>,
    pts: Option<Tensor>,
    shared: Option<Tensor>,
    logit: Option<Tensor>,
    row_index: Tensor,
    attrs: GmmfrAttrs,
}

fn nz(logical: &[i8], e: usize, k: usize, n: usize, n0: usize) -> Vec<i8> {
    let (n1, k1) = (n.div_ceil(n0), k.div_ceil(16));
    let mut out = vec![0i8; e * n1 * k1 * 16 * n0];
    for g in 0..e {
        for kk in 0..k {
            for nn in 0..n {
                let index = (((g * n1 + nn / n0) * k1 + kk / 16) * 16 + kk % 16) * n0 + nn % n0;
                out[index] = logical[(g * k + kk) * n + nn];
            }
        }
    }
    out
}

fn random_case(kind: Kind, rng: &mut Rng) -> Random {
    let e = 1 + rng.below(5);
    let m = 1 + rng.below(40);
    let k = match kind {
        Kind::A8W4 => 16 * (1 + rng.below(6)) + rng.below(16),
        _ => 1 + rng.below(90),
    };
    let n = 1 + rng.below(100);
    // Active rows: all, or fewer (an expert-parallel shard), spread over the groups with some empty.
    let active = if rng.below(2) == 0 { m } else { rng.below(m + 1) };
    let mut counts = vec![0i64; e];
    for _ in 0..active {
        counts[rng.below(e)] += 1;
    }
    let cumsum = rng.below(2) == 0;
    let mut listed = counts.clone();
    if cumsum {
        let mut total = 0;
        for c in listed.iter_mut() {
            total += *c;
            *c = total;
        }
    }
    let output_bs = if rng.below(2) == 0 { 0 } else { 1 + rng.below(m) };
    let rows = if output_bs > 0 { output_bs } else { m };
    // Active rows get valid destinations; the tail holds garbage that must never be read.
    let mut row_index: Vec<i64> = (0..m)
        .map(|p| {
            if p < active {
                rng.below(rows) as i64
            } else {
                (rows + 1000 + p) as i64
            }
        })
        .collect();
    if !row_index.is_empty() && active < m {
        row_index[m - 1] = -7;
    }
    let logit: Vec<f32> = (0..m).map(|p| if p < active { rng.unit() } else { f32::NAN }).collect();
    let pts: Vec<f32> = (0..m)
        .map(|p| if p < active { rng.unit() * 0.1 } else { f32::INFINITY })
        .collect();
    let use_i32 = rng.below(2) == 0 && !matches!(kind, Kind::A8W4);
    let row_index_t = if use_i32 {
        Tensor::from_i32(vec![m], row_index.iter().map(|v| *v as i32).collect()).unwrap()
    } else {
        Tensor::from_i64(vec![m], row_index).unwrap()
    };
    let shared = if rng.below(2) == 0 || matches!(kind, Kind::A8W4) {
        let bsdp = 1 + rng.below(rows);
        let offset = rng.below(rows - bsdp + 1);
        Some((bsdp, offset))
    } else {
        None
    };
    let attrs = GmmfrAttrs {
        shared_input_weight: 0.5 + rng.unit().abs(),
        shared_input_offset: shared.map_or(0, |(_, o)| o as i64),
        output_bs: output_bs as i64,
        group_list_type: if cumsum { 0 } else { 1 },
        ..GmmfrAttrs::default()
    };
    let shared_t = shared.map(|(bsdp, _)| {
        Tensor::from_bf16(
            vec![bsdp, n],
            (0..bsdp * n).map(|_| half::bf16::from_f32(rng.unit())).collect(),
        )
        .unwrap()
    });
    let with_pts = rng.below(3) != 0 || matches!(kind, Kind::A8W4);
    let with_logit = rng.below(3) != 0 || matches!(kind, Kind::A8W4);
    let group_list = Tensor::from_i64(vec![e], listed).unwrap();
    match kind {
        Kind::A8W8 => {
            let logical: Vec<i8> = (0..e * k * n).map(|_| rng.next() as i8).collect();
            let w = Tensor::from_i8(
                vec![e, n.div_ceil(32), k.div_ceil(16), 16, 32],
                nz(&logical, e, k, n, 32),
            )
            .unwrap();
            Random {
                x: Tensor::from_i8(vec![m, k], (0..m * k).map(|_| rng.next() as i8).collect()).unwrap(),
                w,
                group_list,
                scale: Some(Tensor::from_f32(vec![e, n], (0..e * n).map(|_| rng.unit() * 0.01).collect()).unwrap()),
                bias: None,
                offset: None,
                pts: with_pts.then(|| Tensor::from_f32(vec![m], pts.clone()).unwrap()),
                shared: shared_t,
                logit: with_logit.then(|| Tensor::from_f32(vec![m], logit.clone()).unwrap()),
                row_index: row_index_t,
                attrs,
            }
        }
        Kind::A8W4 => {
            let logical: Vec<i8> = (0..e * k * n).map(|_| rng.below(16) as i8 - 8).collect();
            let scale: Vec<i64> = (0..e * n)
                .map(|_| half::f16::from_f32(rng.unit() * 0.01).to_f32().to_bits() as i64)
                .collect();
            Random {
                x: Tensor::from_i8(vec![m, k], (0..m * k).map(|_| rng.next() as i8).collect()).unwrap(),
                w: Tensor::from_i4(vec![e, k, n], logical).unwrap(),
                group_list,
                scale: Some(Tensor::from_i64(vec![e, 1, n], scale).unwrap()),
                bias: Some(Tensor::from_f32(vec![e, n], (0..e * n).map(|_| rng.unit()).collect()).unwrap()),
                offset: (rng.below(2) == 0)
                    .then(|| Tensor::from_f32(vec![e, 1, n], (0..e * n).map(|_| rng.unit() * 0.01).collect()).unwrap()),
                pts: Some(Tensor::from_f32(vec![m], pts).unwrap()),
                shared: shared_t,
                logit: Some(Tensor::from_f32(vec![m], logit).unwrap()),
                row_index: row_index_t,
                attrs,
            }
        }
        Kind::Float => Random {
            x: Tensor::from_f32(vec![m, k], (0..m * k).map(|_| rng.unit()).collect()).unwrap(),
            w: Tensor::from_f32(vec![e, k, n], (0..e * k * n).map(|_| rng.unit()).collect()).unwrap(),
            group_list,
            scale: None,
            bias: (rng.below(2) == 0)
                .then(|| Tensor::from_f32(vec![e, n], (0..e * n).map(|_| rng.unit()).collect()).unwrap()),
            offset: None,
            pts: None,
            shared: shared_t,
            logit: with_logit.then(|| Tensor::from_f32(vec![m], logit).unwrap()),
            row_index: row_index_t,
            attrs,
        },
    }
}

// Random shapes and routings in every scenario: the JIT-compiled loop nest equals the reference.
#[test]
fn loop_target_matches_the_reference_on_random_shapes() {
    let compiler = Compiler::new().unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut checked = 0;
    for round in 0..24 {
        let kind = [Kind::A8W8, Kind::A8W4, Kind::Float][round % 3];
        let case = random_case(kind, &mut rng);
        let operands = GmmfrOperands {
            x: &case.x,
            w: &case.w,
            group_list: &case.group_list,
            scale: case.scale.as_ref(),
            bias: case.bias.as_ref(),
            offset: case.offset.as_ref(),
            pertoken_scale: case.pts.as_ref(),
            shared_input: case.shared.as_ref(),
            logit: case.logit.as_ref(),
            row_index: &case.row_index,
        };
        let expected = grouped_matmul_finalize_routing(&operands, &case.attrs)
            .unwrap_or_else(|e| panic!("round {round} ({kind:?}): reference: {e}"));
        for threads in [1, 2] {
            let actual =
                run_case(&compiler, &operands, &case.attrs, &format!("round{round}"), threads).unwrap_or_else(|e| {
                    panic!(
                        "round {round} ({kind:?}, {:?} x {:?}): {e}",
                        case.x.shape(),
                        case.w.shape()
                    )
                });
            let comparison = compare(&actual, &expected).unwrap();
            assert!(
                comparison.within(1e-5),
                "round {round} ({kind:?}, threads {threads}): relative error {}",
                comparison.relative
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 48);
}

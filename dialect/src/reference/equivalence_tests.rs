//! The core equivalence of the project (SPEC 2.4): init_routing, then GMM (f32 output), then
//! MFR with the correct index correspondence, equals the fused op.

use half::bf16;

use super::compare;
use super::finalize_routing::{MoeFinalizeRoutingAttrs, MoeFinalizeRoutingOperands, moe_finalize_routing};
use super::format_cast::nd_to_nz;
use super::gmmfr::{GmmfrAttrs, GmmfrOperands, grouped_matmul_finalize_routing};
use super::grouped_matmul::{GroupedMatmulAttrs, GroupedMatmulOperands, grouped_matmul};
use super::init_routing::{MoeInitRoutingAttrs, moe_init_routing};
use super::test_rng::Rng;
use crate::tensor::{DType, Tensor};

/// A routed MoE layer on random data: tokens, their top-k experts and weights, expert weights.
struct Layer {
    t: usize,
    topk: usize,
    n: usize,
    x_tok: Tensor,
    expert_idx: Tensor,
    topk_weights: Vec<f32>,
    w_nz: Tensor,
    scale: Tensor,
    /// Shared-expert output rows [off, off + bsdp), bf16 values; zero elsewhere in skip1.
    shared: Tensor,
    off: usize,
    sw: f32,
}

fn layer(seed: u64) -> Layer {
    let mut rng = Rng::new(seed);
    let (t, topk, e, k, n) = (9usize, 3usize, 5usize, 48usize, 40usize);
    let mut ids = Vec::with_capacity(t * topk);
    for _ in 0..t {
        let mut experts: Vec<i32> = (0..e as i32).collect();
        rng.shuffle(&mut experts);
        ids.extend_from_slice(&experts[..topk]);
    }
    let w = Tensor::from_i8(vec![e, k, n], rng.i8s(e * k * n, -128, 127)).unwrap();
    let bsdp = 4;
    let shared: Vec<bf16> = rng.f32s(bsdp * n, -2.0, 2.0).into_iter().map(bf16::from_f32).collect();
    Layer {
        t,
        topk,
        n,
        x_tok: Tensor::from_i8(vec![t, k], rng.i8s(t * k, -128, 127)).unwrap(),
        expert_idx: Tensor::from_i32(vec![t, topk], ids).unwrap(),
        topk_weights: rng.f32s(t * topk, 0.0, 1.0),
        w_nz: nd_to_nz(&w).unwrap(),
        scale: Tensor::from_f32(vec![e, n], rng.f32s(e * n, 0.001, 0.01)).unwrap(),
        shared: Tensor::from_bf16(vec![bsdp, n], shared).unwrap(),
        off: 3,
        sw: 0.5,
    }
}

/// The unfused pipeline: GMM with `gmm_out` dtype, then MFR in `mode` (0 or 2). With
/// `published_split`, MFR gets the published split test's mapping instead: GMMFR's row_index as
/// src2dst and its logit reshaped to (R, K) as scales.
fn unfused(l: &Layer, mode: i64, gmm_out: DType, published_split: bool) -> Tensor {
    let routing = moe_init_routing(&l.x_tok, &l.expert_idx, &MoeInitRoutingAttrs::new(5)).unwrap();
    let rows = l.t * l.topk;
    let mut rng = Rng::new(99);
    let pts = Tensor::from_f32(vec![rows], rng.f32s(rows, 0.5, 1.5)).unwrap();
    let y = grouped_matmul(
        &GroupedMatmulOperands {
            x: &routing.expanded_x,
            weight: &l.w_nz,
            group_list: &routing.expert_tokens,
            scale: Some(&l.scale),
            per_token_scale: Some(&pts),
            bias: None,
        },
        &GroupedMatmulAttrs {
            group_list_type: 1,
            ..GroupedMatmulAttrs::new(l.n, gmm_out)
        },
    )
    .unwrap();
    // src2dst is the inverse of gidx (mode 2), transposed to slot-major for mode 0.
    let mut inv = vec![0i32; rows];
    for (p, &src) in routing.gidx.iter().enumerate() {
        inv[src] = p as i32;
    }
    let src2dst: Vec<i32> = if published_split {
        routing.gidx.iter().map(|&g| (g / l.topk) as i32).collect()
    } else if mode == 2 {
        inv
    } else {
        (0..rows).map(|pos| inv[(pos % l.t) * l.topk + pos / l.t]).collect()
    };
    let src2dst = Tensor::from_i32(vec![rows], src2dst).unwrap();
    let scales: Vec<f32> = if published_split {
        routing.gidx.iter().map(|&g| l.topk_weights[g]).collect()
    } else {
        l.topk_weights.clone()
    };
    let scales = Tensor::from_f32(vec![l.t, l.topk], scales).unwrap();
    let mut skip = vec![0f32; l.t * l.n];
    for (i, v) in l.shared.to_f32_vec().into_iter().enumerate() {
        skip[l.off * l.n + i] = v * l.sw;
    }
    let skip1 = Tensor::from_f32_rounded(gmm_out, vec![l.t, l.n], skip).unwrap();
    moe_finalize_routing(
        &MoeFinalizeRoutingOperands {
            expanded_permuted_rows: &y,
            skip1: Some(&skip1),
            skip2: None,
            bias: None,
            scales: Some(&scales),
            expanded_src_to_dst_row: &src2dst,
            expert_for_source_row: None,
        },
        &MoeFinalizeRoutingAttrs {
            drop_pad_mode: mode,
            num_rows: l.t,
            top_k: l.topk,
        },
    )
    .unwrap()
}

/// The fused op with `row_index = gidx / K` and `logit = topk_weights.flatten()[gidx]`.
fn fused(l: &Layer) -> Tensor {
    let routing = moe_init_routing(&l.x_tok, &l.expert_idx, &MoeInitRoutingAttrs::new(5)).unwrap();
    let rows = l.t * l.topk;
    let mut rng = Rng::new(99);
    let pts = Tensor::from_f32(vec![rows], rng.f32s(rows, 0.5, 1.5)).unwrap();
    let (row_index, logit): (Vec<i64>, Vec<f32>) = routing
        .gidx
        .iter()
        .map(|&g| ((g / l.topk) as i64, l.topk_weights[g]))
        .unzip();
    let row_index = Tensor::from_i64(vec![rows], row_index).unwrap();
    let logit = Tensor::from_f32(vec![rows], logit).unwrap();
    grouped_matmul_finalize_routing(
        &GmmfrOperands {
            x: &routing.expanded_x,
            w: &l.w_nz,
            group_list: &routing.expert_tokens,
            scale: Some(&l.scale),
            bias: None,
            offset: None,
            pertoken_scale: Some(&pts),
            shared_input: Some(&l.shared),
            logit: Some(&logit),
            row_index: &row_index,
        },
        &GmmfrAttrs {
            shared_input_weight: l.sw,
            shared_input_offset: l.off as i64,
            output_bs: l.t as i64,
            ..GmmfrAttrs::default()
        },
    )
    .unwrap()
}

// GMM (f32) + MFR with src2dst = inverse of gidx (mode 2) or its transpose (mode 0) equals the fused op.
#[test]
fn gmm_then_mfr_equals_fused() {
    for seed in 1..=4 {
        let l = layer(seed);
        let f = fused(&l);
        for mode in [0, 2] {
            let u = unfused(&l, mode, DType::F32, false);
            let c = compare(&u, &f).unwrap();
            // Same products, different f32 rounding order only.
            assert!(c.within(1e-6), "seed {seed} mode {mode}: {c:?}");
        }
    }
}

// The published split test's mapping (row_index as src2dst, logit reshaped as scales) is not equivalent.
#[test]
fn wrong_index_mapping_is_detected() {
    let l = layer(5);
    let c = compare(&unfused(&l, 2, DType::F32, true), &fused(&l)).unwrap();
    assert!(c.relative > 0.05, "{c:?}");
}

// With bf16 GMM output the unfused pair only approximates the fused op (SPEC 2.4.5: a refinement).
#[test]
fn bf16_gmm_output_is_coarser() {
    let l = layer(6);
    let f = fused(&l);
    let u = unfused(&l, 2, DType::BF16, false);
    assert_eq!(u.dtype(), DType::BF16);
    let c = compare(&u, &f).unwrap();
    assert!(c.relative > 1e-5 && c.relative < 2e-2, "{c:?}");
}

//! The interpreter (`gmmfr_dialect::interpret`) on small modules: the npu ops agree with the
//! reference evaluators called directly, the tensor/linalg/arith ops give hand-computed
//! values, and everything it cannot or must not evaluate is a located error, never a panic.

use gmmfr_dialect::context::NpuContext;
use gmmfr_dialect::interpret::{Fault, InterpretError, run_function};
use gmmfr_dialect::location::SourceLoc;
use gmmfr_dialect::parse::parse_source;
use gmmfr_dialect::reference::{
    self, GmmfrAttrs, GmmfrOperands, GroupedMatmulAttrs, GroupedMatmulOperands, MoeFinalizeRoutingAttrs,
    MoeFinalizeRoutingOperands, MoeInitRoutingAttrs,
};
use gmmfr_dialect::tensor::{DType, Tensor};
use gmmfr_dialect::verify::verify_module;
use half::bf16;
use melior::ir::Module;

/// SplitMix64: a small deterministic generator, so inputs are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }

    /// Uniform in [-1, 1), a multiple of 2^-10 (exact in every float type used here).
    fn float(&mut self) -> f32 {
        self.int(-1024, 1024) as f32 / 1024.0
    }

    fn i8s(&mut self, shape: Vec<usize>) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_i8(shape, (0..n).map(|_| self.int(-128, 128) as i8).collect()).unwrap()
    }

    fn f32s(&mut self, shape: Vec<usize>) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_f32(shape, (0..n).map(|_| self.float()).collect()).unwrap()
    }

    fn bf16s(&mut self, shape: Vec<usize>) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_bf16(shape, (0..n).map(|_| bf16::from_f32(self.float())).collect()).unwrap()
    }
}

/// Parses `text` as `test.mlir` and checks that both verifiers accept it.
fn parse<'c>(context: &'c NpuContext, text: &str) -> Module<'c> {
    let module = parse_source(context, text, "test.mlir").unwrap_or_else(|e| panic!("{e}"));
    let violations = verify_module(&module);
    assert!(violations.is_empty(), "{violations:?}");
    module
}

fn run(module: &Module<'_>, name: &str, args: &[Tensor]) -> Vec<Tensor> {
    run_function(module, name, args).unwrap_or_else(|e| panic!("{e}"))
}

/// The error of a run that must fail.
fn run_err(module: &Module<'_>, name: &str, args: &[Tensor]) -> InterpretError {
    match run_function(module, name, args) {
        Ok(results) => panic!("expected an error, got {results:?}"),
        Err(e) => e,
    }
}

/// The line of an error's location.
fn line(error: &InterpretError) -> usize {
    match error.location() {
        Some(SourceLoc::File { file, line, .. }) => {
            assert_eq!(file, "test.mlir");
            *line
        }
        other => panic!("no file location in {error}: {other:?}"),
    }
}

const FUSED: &str = r#"
func.func @fused(%x: tensor<8x32xi8>, %w: tensor<2x2x2x16x32xi8>, %gl: tensor<2xi64>, %scale: tensor<2x64xf32>,
                 %pts: tensor<8xf32>, %shared: tensor<2x64xbf16>, %logit: tensor<8xf32>, %ri: tensor<8xi64>) -> tensor<4x64xf32> {
  %out = "npu.grouped_matmul_finalize_routing"(%x, %w, %gl, %scale, %pts, %shared, %logit, %ri)
      {dtype = 0 : i64, shared_input_weight = 0.5 : f32, shared_input_offset = 1 : i64, output_bs = 4 : i64,
       group_list_type = 1 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 1, 0, 0, 1, 1, 1, 1>}
      : (tensor<8x32xi8>, tensor<2x2x2x16x32xi8>, tensor<2xi64>, tensor<2x64xf32>, tensor<8xf32>,
         tensor<2x64xbf16>, tensor<8xf32>, tensor<8xi64>) -> tensor<4x64xf32>
  return %out : tensor<4x64xf32>
}
"#;

// (1) One npu.grouped_matmul_finalize_routing equals reference::grouped_matmul_finalize_routing
// on the same random inputs, bit for bit (row 7 is inactive and holds an out-of-range index).
#[test]
fn fused_op_matches_reference() {
    let context = NpuContext::new().unwrap();
    let module = parse(&context, FUSED);
    let mut rng = Rng(1);
    for _ in 0..3 {
        let x = rng.i8s(vec![8, 32]);
        let w = rng.i8s(vec![2, 2, 2, 16, 32]);
        let group_list = Tensor::from_i64(vec![2], vec![3, 4]).unwrap();
        let scale = rng.f32s(vec![2, 64]);
        let pts = rng.f32s(vec![8]);
        let shared = rng.bf16s(vec![2, 64]);
        let logit = rng.f32s(vec![8]);
        let mut rows: Vec<i64> = (0..7).map(|_| rng.int(0, 4)).collect();
        rows.push(99);
        let row_index = Tensor::from_i64(vec![8], rows).unwrap();
        let args = [x, w, group_list, scale, pts, shared, logit, row_index];
        let got = run(&module, "fused", &args);
        let expected = reference::grouped_matmul_finalize_routing(
            &GmmfrOperands {
                x: &args[0],
                w: &args[1],
                group_list: &args[2],
                scale: Some(&args[3]),
                bias: None,
                offset: None,
                pertoken_scale: Some(&args[4]),
                shared_input: Some(&args[5]),
                logit: Some(&args[6]),
                row_index: &args[7],
            },
            &GmmfrAttrs {
                shared_input_weight: 0.5,
                shared_input_offset: 1,
                output_bs: 4,
                group_list_type: 1,
                ..GmmfrAttrs::default()
            },
        )
        .unwrap();
        assert_eq!(got, vec![expected]);
    }
}

const UNFUSED: &str = r#"
func.func @unfused(%x: tensor<4x32xf32>, %idx: tensor<4x2xi32>, %tw: tensor<4x2xf32>, %w: tensor<3x32x16xf32>)
    -> tensor<4x16xf32> {
  %ex, %ri, %tok = "npu.moe_init_routing"(%x, %idx)
      {expert_num = 3 : i64, active_num = 0 : i64, row_idx_type = 0 : i64, expert_tokens_num_type = 1 : i64}
      : (tensor<4x32xf32>, tensor<4x2xi32>) -> (tensor<8x32xf32>, tensor<8xi32>, tensor<3xi64>)
  %y = "npu.grouped_matmul"(%ex, %w, %tok)
      {group_list_type = 1 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0>}
      : (tensor<8x32xf32>, tensor<3x32x16xf32>, tensor<3xi64>) -> tensor<8x16xf32>
  %out = "npu.moe_finalize_routing"(%y, %tw, %ri)
      {drop_pad_mode = 2 : i64, operandSegmentSizes = array<i32: 1, 0, 0, 0, 1, 1, 0>}
      : (tensor<8x16xf32>, tensor<4x2xf32>, tensor<8xi32>) -> tensor<4x16xf32>
  return %out : tensor<4x16xf32>
}
func.func @unfused_a8w8(%x: tensor<4x32xi8>, %idx: tensor<4x2xi32>, %tw: tensor<4x2xf32>, %w: tensor<3x32x16xi8>,
                        %scale: tensor<3x16xf32>, %pts: tensor<8xf32>, %skip: tensor<4x16xbf16>) -> tensor<4x16xbf16> {
  %ex, %ri, %tok = "npu.moe_init_routing"(%x, %idx)
      {expert_num = 3 : i64, active_num = 0 : i64, row_idx_type = 0 : i64, expert_tokens_num_type = 1 : i64}
      : (tensor<4x32xi8>, tensor<4x2xi32>) -> (tensor<8x32xi8>, tensor<8xi32>, tensor<3xi64>)
  %w_nz = "npu.format_cast"(%w) {acl_format = 29 : i64} : (tensor<3x32x16xi8>) -> tensor<3x1x2x16x32xi8>
  %y = "npu.grouped_matmul"(%ex, %w_nz, %tok, %scale, %pts)
      {group_list_type = 1 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0>}
      : (tensor<8x32xi8>, tensor<3x1x2x16x32xi8>, tensor<3xi64>, tensor<3x16xf32>, tensor<8xf32>) -> tensor<8x16xbf16>
  %out = "npu.moe_finalize_routing"(%y, %skip, %tw, %ri)
      {drop_pad_mode = 2 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 1, 0>}
      : (tensor<8x16xbf16>, tensor<4x16xbf16>, tensor<4x2xf32>, tensor<8xi32>) -> tensor<4x16xbf16>
  return %out : tensor<4x16xbf16>
}
func.func @nz_round_trip(%w: tensor<3x32x16xi8>) -> tensor<3x32x16xi8> {
  %nz = "npu.format_cast"(%w) {acl_format = 29 : i64} : (tensor<3x32x16xi8>) -> tensor<3x1x2x16x32xi8>
  %nd = "npu.format_cast"(%nz) {acl_format = 2 : i64} : (tensor<3x1x2x16x32xi8>) -> tensor<3x32x16xi8>
  return %nd : tensor<3x32x16xi8>
}
"#;

/// Routing, grouped matmul and finalize routing by the reference functions, in sequence.
fn reference_chain(
    x: &Tensor,
    idx: &Tensor,
    tw: &Tensor,
    weight: &Tensor,
    quant: Option<(&Tensor, &Tensor)>,
    skip1: Option<&Tensor>,
    output_dtype: DType,
) -> Tensor {
    let routing = reference::moe_init_routing(
        x,
        idx,
        &MoeInitRoutingAttrs {
            row_idx_type: 0,
            ..MoeInitRoutingAttrs::new(3)
        },
    )
    .unwrap();
    let y = reference::grouped_matmul(
        &GroupedMatmulOperands {
            x: &routing.expanded_x,
            weight,
            group_list: &routing.expert_tokens,
            scale: quant.map(|q| q.0),
            per_token_scale: quant.map(|q| q.1),
            bias: None,
        },
        &GroupedMatmulAttrs {
            group_list_type: 1,
            ..GroupedMatmulAttrs::new(16, output_dtype)
        },
    )
    .unwrap();
    reference::moe_finalize_routing(
        &MoeFinalizeRoutingOperands {
            expanded_permuted_rows: &y,
            skip1,
            skip2: None,
            bias: None,
            scales: Some(tw),
            expanded_src_to_dst_row: &routing.expanded_row_idx,
            expert_for_source_row: None,
        },
        &MoeFinalizeRoutingAttrs {
            drop_pad_mode: 2,
            num_rows: 4,
            top_k: 2,
        },
    )
    .unwrap()
}

// (2) moe_init_routing (row_idx_type 0) -> grouped_matmul (f32 output) -> moe_finalize_routing
// (drop_pad_mode 2) equals the reference functions called in sequence.
#[test]
fn unfused_chain_matches_reference_sequence() {
    let context = NpuContext::new().unwrap();
    let module = parse(&context, UNFUSED);
    let mut rng = Rng(2);
    for _ in 0..3 {
        let x = rng.f32s(vec![4, 32]);
        let ids: Vec<i32> = (0..8).map(|_| rng.int(0, 3) as i32).collect();
        let idx = Tensor::from_i32(vec![4, 2], ids).unwrap();
        let tw = rng.f32s(vec![4, 2]);
        let w = rng.f32s(vec![3, 32, 16]);
        let got = run(&module, "unfused", &[x.clone(), idx.clone(), tw.clone(), w.clone()]);
        let expected = reference_chain(&x, &idx, &tw, &w, None, None, DType::F32);
        assert_eq!(got, vec![expected]);
    }
}

// The int8 spelling of the same chain (NZ weight through npu.format_cast, per-token scales,
// bf16 expert rows, a skip1) equals the reference sequence, and ND -> NZ -> ND is the identity.
#[test]
fn unfused_a8w8_chain_and_format_cast_round_trip() {
    let context = NpuContext::new().unwrap();
    let module = parse(&context, UNFUSED);
    let mut rng = Rng(3);
    let x = rng.i8s(vec![4, 32]);
    let ids: Vec<i32> = (0..8).map(|_| rng.int(0, 3) as i32).collect();
    let idx = Tensor::from_i32(vec![4, 2], ids).unwrap();
    let tw = rng.f32s(vec![4, 2]);
    let w = rng.i8s(vec![3, 32, 16]);
    let scale = rng.f32s(vec![3, 16]);
    let pts = rng.f32s(vec![8]);
    let skip = rng.bf16s(vec![4, 16]);
    let args = [x, idx, tw, w, scale, pts, skip];
    let got = run(&module, "unfused_a8w8", &args);
    let w_nz = reference::nd_to_nz(&args[3]).unwrap();
    let expected = reference_chain(
        &args[0],
        &args[1],
        &args[2],
        &w_nz,
        Some((&args[4], &args[5])),
        Some(&args[6]),
        DType::BF16,
    );
    assert_eq!(got, vec![expected]);
    assert_eq!(run(&module, "nz_round_trip", &args[3..4]), vec![args[3].clone()]);
}

const INDICES: &str = r#"
func.func @indices(%gidx: tensor<6xi32>, %scales: tensor<3x2xf32>) -> (tensor<6xi64>, tensor<6xf32>) {
  %flat = tensor.collapse_shape %scales [[0, 1]] : tensor<3x2xf32> into tensor<6xf32>
  %e0 = tensor.empty() : tensor<6xi64>
  %e1 = tensor.empty() : tensor<6xf32>
  %k = arith.constant 2 : i32
  %c0 = arith.constant 0 : index
  %n = arith.constant 6 : index
  %r:2 = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>],
                         iterator_types = ["parallel"]}
      ins(%gidx : tensor<6xi32>) outs(%e0, %e1 : tensor<6xi64>, tensor<6xf32>) {
  ^bb0(%g: i32, %o0: i64, %o1: f32):
    %row = arith.divsi %g, %k : i32
    %row64 = arith.extsi %row : i32 to i64
    %gi = arith.index_cast %g : i32 to index
    %inb = arith.cmpi ult, %gi, %n : index
    %safe = arith.select %inb, %gi, %c0 : index
    %l = tensor.extract %flat[%safe] : tensor<6xf32>
    linalg.yield %row64, %l : i64, f32
  } -> (tensor<6xi64>, tensor<6xf32>)
  return %r#0, %r#1 : tensor<6xi64>, tensor<6xf32>
}
"#;

// (3) A linalg.generic computing row_index = gidx / K and logit = scales_flat[clamp(gidx)]
// gives the hand-computed values; the -1 entry is clamped to 0 (unsigned compare) and its row
// is -1 / 2 = 0 (divsi rounds toward zero).
#[test]
fn generic_routing_indices() {
    let context = NpuContext::new().unwrap();
    let module = parse(&context, INDICES);
    let gidx = Tensor::from_i32(vec![6], vec![3, 0, 5, 1, -1, 4]).unwrap();
    let scales = Tensor::from_f32(vec![3, 2], vec![0.5, 1.5, 2.5, 3.5, 4.5, 5.5]).unwrap();
    let got = run(&module, "indices", &[gidx, scales]);
    assert_eq!(
        got,
        vec![
            Tensor::from_i64(vec![6], vec![1, 0, 2, 0, 0, 2]).unwrap(),
            Tensor::from_f32(vec![6], vec![3.5, 0.5, 5.5, 1.5, 0.5, 4.5]).unwrap(),
        ]
    );
}

const BROADCAST: &str = r#"
func.func @affine(%x: tensor<2x3xf32>, %b: tensor<3xf32>) -> tensor<2x3xbf16> {
  %e = tensor.empty() : tensor<2x3xbf16>
  %r = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d1)>,
                                        affine_map<(d0, d1) -> (d0, d1)>],
                       iterator_types = ["parallel", "parallel"]}
      ins(%x, %b : tensor<2x3xf32>, tensor<3xf32>) outs(%e : tensor<2x3xbf16>) {
  ^bb0(%xv: f32, %bv: f32, %o: bf16):
    %i = linalg.index 0 : index
    %i32 = arith.index_cast %i : index to i32
    %fi = arith.sitofp %i32 : i32 to f32
    %s = arith.addf %xv, %bv : f32
    %m = arith.mulf %s, %fi : f32
    %t = arith.truncf %m : f32 to bf16
    linalg.yield %t : bf16
  } -> tensor<2x3xbf16>
  return %r : tensor<2x3xbf16>
}
"#;

// A broadcasting (projected-permutation) map and linalg.index: out[i, j] = bf16((x + b[j]) * i).
#[test]
fn generic_broadcast_and_index() {
    let context = NpuContext::new().unwrap();
    let module = parse(&context, BROADCAST);
    let x = Tensor::from_f32(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let b = Tensor::from_f32(vec![3], vec![0.25, 0.5, 1.0 / 3.0]).unwrap();
    let got = run(&module, "affine", &[x, b]);
    let expected: Vec<f32> = vec![0.0, 0.0, 0.0, 4.25, 5.5, 6.0 + 1.0 / 3.0];
    assert_eq!(
        got,
        vec![Tensor::from_f32_rounded(DType::BF16, vec![2, 3], expected).unwrap()]
    );
}

const SLICES: &str = r#"
func.func @slices(%s: tensor<2x4xbf16>) -> (tensor<6x4xbf16>, tensor<2x4xbf16>, tensor<4xbf16>) {
  %z = arith.constant dense<0.0> : tensor<6x4xbf16>
  %ins = tensor.insert_slice %s into %z[3, 0] [2, 4] [1, 1] : tensor<2x4xbf16> into tensor<6x4xbf16>
  %back = tensor.extract_slice %ins[3, 0] [2, 4] [1, 1] : tensor<6x4xbf16> to tensor<2x4xbf16>
  %row = tensor.extract_slice %ins[4, 0] [1, 4] [1, 1] : tensor<6x4xbf16> to tensor<4xbf16>
  return %ins, %back, %row : tensor<6x4xbf16>, tensor<2x4xbf16>, tensor<4xbf16>
}
func.func @reshapes(%a: tensor<2x3x4xf32>) -> (tensor<3x4x2xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>) {
  %t0 = tensor.empty() : tensor<3x4x2xf32>
  %t = linalg.transpose ins(%a : tensor<2x3x4xf32>) outs(%t0 : tensor<3x4x2xf32>) permutation = [1, 2, 0]
  %u0 = tensor.empty() : tensor<2x3x4xf32>
  %u = linalg.transpose ins(%t : tensor<3x4x2xf32>) outs(%u0 : tensor<2x3x4xf32>) permutation = [2, 0, 1]
  %c = tensor.collapse_shape %a [[0, 1], [2]] : tensor<2x3x4xf32> into tensor<6x4xf32>
  %e = tensor.expand_shape %c [[0, 1], [2]] output_shape [2, 3, 4] : tensor<6x4xf32> into tensor<2x3x4xf32>
  return %t, %u, %e : tensor<3x4x2xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>
}
func.func @dynamic(%a: tensor<?x4xf32>) -> tensor<?x4xbf16> {
  %c0 = arith.constant 0 : index
  %d = tensor.dim %a, %c0 : tensor<?x4xf32>
  %e = tensor.empty(%d) : tensor<?x4xbf16>
  %v = arith.constant 1.5 : bf16
  %f = linalg.fill ins(%v : bf16) outs(%e : tensor<?x4xbf16>) -> tensor<?x4xbf16>
  return %f : tensor<?x4xbf16>
}
"#;

// (4) tensor.insert_slice of a (2, n) bf16 tensor into a zero constant at row offset 3 (and the
// slice extracted back, rank-reduced too), linalg.transpose and collapse/expand round trips,
// and a dynamic tensor.empty sized by tensor.dim and filled by linalg.fill.
#[test]
fn slices_transposes_and_reshapes() {
    let context = NpuContext::new().unwrap();
    let module = parse(&context, SLICES);
    let mut rng = Rng(4);
    let s = rng.bf16s(vec![2, 4]);
    let got = run(&module, "slices", std::slice::from_ref(&s));
    let mut expected = vec![0.0f32; 24];
    expected[12..20].copy_from_slice(&s.to_f32_vec());
    assert_eq!(
        got[0],
        Tensor::from_f32_rounded(DType::BF16, vec![6, 4], expected).unwrap()
    );
    assert_eq!(got[1], s);
    assert_eq!(got[2].to_f32_vec(), s.to_f32_vec()[4..8].to_vec());

    let a = rng.f32s(vec![2, 3, 4]);
    let got = run(&module, "reshapes", std::slice::from_ref(&a));
    let av = a.to_f32_vec();
    // t[i0, i1, i2] = a[i2, i0, i1].
    let mut t = Vec::new();
    for i0 in 0..3 {
        for i1 in 0..4 {
            for i2 in 0..2 {
                t.push(av[(i2 * 3 + i0) * 4 + i1]);
            }
        }
    }
    assert_eq!(got[0], Tensor::from_f32(vec![3, 4, 2], t).unwrap());
    assert_eq!(got[1], a);
    assert_eq!(got[2], a);

    let got = run(&module, "dynamic", &[rng.f32s(vec![3, 4])]);
    assert_eq!(
        got,
        vec![Tensor::from_f32_rounded(DType::BF16, vec![3, 4], vec![1.5; 12]).unwrap()]
    );
}

const ERRORS: &str = r#"
func.func @unsupported(%a: tensor<4xf32>) -> tensor<4xf32> {
  %n = arith.negf %a : tensor<4xf32>
  return %n : tensor<4xf32>
}
func.func @out_of_range(%a: tensor<4xf32>) -> tensor<2xf32> {
  %i = arith.constant 4 : index
  %v = tensor.extract %a[%i] : tensor<4xf32>
  %e = tensor.empty() : tensor<2xf32>
  %f = linalg.fill ins(%v : f32) outs(%e : tensor<2xf32>) -> tensor<2xf32>
  return %f : tensor<2xf32>
}
func.func @unclamped(%gidx: tensor<3xi32>, %scales: tensor<3xf32>) -> tensor<3xf32> {
  %e = tensor.empty() : tensor<3xf32>
  %r = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]}
      ins(%gidx : tensor<3xi32>) outs(%e : tensor<3xf32>) {
  ^bb0(%g: i32, %o: f32):
    %gi = arith.index_cast %g : i32 to index
    %l = tensor.extract %scales[%gi] : tensor<3xf32>
    linalg.yield %l : f32
  } -> tensor<3xf32>
  return %r : tensor<3xf32>
}
func.func @in_body(%a: tensor<3xi32>) -> tensor<3xi32> {
  %e = tensor.empty() : tensor<3xi32>
  %r = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]}
      ins(%a : tensor<3xi32>) outs(%e : tensor<3xi32>) {
  ^bb0(%x: i32, %o: i32):
    %y = arith.andi %x, %x : i32
    linalg.yield %y : i32
  } -> tensor<3xi32>
  return %r : tensor<3xi32>
}
func.func @divide(%a: tensor<3xi32>, %b: tensor<3xi32>) -> tensor<3xi32> {
  %q = arith.divsi %a, %b : tensor<3xi32>
  return %q : tensor<3xi32>
}
func.func @uninitialized() -> tensor<2xf32> {
  %e = tensor.empty() : tensor<2xf32>
  return %e : tensor<2xf32>
}
func.func @gmm_bad_row(%x: tensor<2x16xf32>, %w: tensor<1x16x8xf32>, %gl: tensor<1xi64>, %ri: tensor<2xi64>) -> tensor<2x8xf32> {
  %out = "npu.grouped_matmul_finalize_routing"(%x, %w, %gl, %ri)
      {dtype = 0 : i64, shared_input_weight = 1.0 : f32, shared_input_offset = 0 : i64, output_bs = 0 : i64,
       group_list_type = 1 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0, 0, 0, 0, 1>}
      : (tensor<2x16xf32>, tensor<1x16x8xf32>, tensor<1xi64>, tensor<2xi64>) -> tensor<2x8xf32>
  return %out : tensor<2x8xf32>
}
"#;

// (5) Unsupported ops (at top level and in a generic body), out-of-range tensor.extract (direct
// and at a generic point), division by zero, unspecified tensor.empty contents, a reference
// evaluator's refusal, a missing function and wrong argument count, dtype or shape are all
// errors naming the op and its location.
#[test]
fn errors_name_the_op_and_location() {
    let context = NpuContext::new().unwrap();
    let module = parse(&context, ERRORS);
    let f4 = Tensor::from_f32(vec![4], vec![1.0, 2.0, 3.0, 4.0]).unwrap();

    let e = run_err(&module, "unsupported", std::slice::from_ref(&f4));
    assert!(
        matches!(&e, InterpretError::Unsupported { op, .. } if op == "arith.negf"),
        "{e}"
    );
    assert_eq!(line(&e), 3);
    assert!(
        e.to_string()
            .starts_with("test.mlir:3:8: error: 'arith.negf' op is not supported"),
        "{e}"
    );

    let e = run_err(&module, "out_of_range", std::slice::from_ref(&f4));
    assert_eq!(e.op_name(), Some("tensor.extract"), "{e}");
    assert!(
        matches!(e.fault(), Some(Fault::IndexOutOfRange { index, .. }) if index == &[4]),
        "{e}"
    );
    assert_eq!(line(&e), 8);

    let gidx = Tensor::from_i32(vec![3], vec![2, -1, 0]).unwrap();
    let scales = Tensor::from_f32(vec![3], vec![1.0, 2.0, 3.0]).unwrap();
    let e = run_err(&module, "unclamped", &[gidx, scales]);
    assert_eq!(e.op_name(), Some("tensor.extract"), "{e}");
    match e.fault() {
        Some(Fault::At { index, source }) => {
            assert_eq!(index, &[1]);
            assert!(matches!(**source, Fault::IndexOutOfRange { .. }), "{e}");
        }
        _ => panic!("{e}"),
    }
    assert_eq!(line(&e), 19);

    let a = Tensor::from_i32(vec![3], vec![1, 2, 3]).unwrap();
    let e = run_err(&module, "in_body", std::slice::from_ref(&a));
    assert_eq!(e.op_name(), Some("arith.andi"), "{e}");
    assert_eq!(line(&e), 29);

    let b = Tensor::from_i32(vec![3], vec![1, 0, 3]).unwrap();
    let e = run_err(&module, "divide", &[a.clone(), b]);
    assert_eq!(e.op_name(), Some("arith.divsi"), "{e}");
    assert!(
        matches!(e.fault(), Some(Fault::At { index, source })
            if index == &[1] && **source == Fault::DivisionByZero { lhs: 2 }),
        "{e}"
    );
    assert_eq!(line(&e), 35);

    let e = run_err(&module, "uninitialized", &[]);
    assert!(
        matches!(&e, InterpretError::Fault { op, .. } if op == "func.return"),
        "{e}"
    );
    assert!(e.to_string().contains("unspecified"), "{e}");

    let x = Tensor::from_f32(vec![2, 16], vec![0.5; 32]).unwrap();
    let w = Tensor::from_f32(vec![1, 16, 8], vec![0.25; 128]).unwrap();
    let gl = Tensor::from_i64(vec![1], vec![2]).unwrap();
    let ri = Tensor::from_i64(vec![2], vec![0, 2]).unwrap();
    let e = run_err(&module, "gmm_bad_row", &[x, w, gl, ri]);
    assert_eq!(e.op_name(), Some("npu.grouped_matmul_finalize_routing"), "{e}");
    assert!(
        matches!(
            e.reference_error(),
            Some(reference::EvalError::RowIndexOutOfRange { p: 1, .. })
        ),
        "{e}"
    );
    assert_eq!(line(&e), 43);

    let e = run_err(&module, "missing", &[]);
    assert!(
        matches!(&e, InterpretError::FunctionNotFound { name } if name == "missing"),
        "{e}"
    );

    let e = run_err(&module, "divide", std::slice::from_ref(&a));
    assert!(
        matches!(
            &e,
            InterpretError::ArgumentCount {
                expected: 2,
                actual: 1,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!((e.op_name(), line(&e)), (Some("func.func"), 34));

    let i64s = Tensor::from_i64(vec![3], vec![1, 2, 3]).unwrap();
    let e = run_err(&module, "divide", &[a.clone(), i64s]);
    assert!(matches!(&e, InterpretError::ArgumentType { index: 1, .. }), "{e}");
    assert!(
        e.to_string().contains("must be tensor<3xi32>, got tensor<3xi64>"),
        "{e}"
    );

    let long = Tensor::from_i32(vec![4], vec![1, 2, 3, 4]).unwrap();
    let e = run_err(&module, "divide", &[long, a]);
    assert!(matches!(&e, InterpretError::ArgumentType { index: 0, .. }), "{e}");
}

const WRAP: &str = r#"
func.func @wrap(%a: tensor<2xi32>, %b: tensor<2xi64>) -> (tensor<2xi32>, tensor<2xi32>, tensor<2xi64>) {
  %s = arith.addi %a, %a : tensor<2xi32>
  %t = arith.trunci %b : tensor<2xi64> to tensor<2xi32>
  %x = arith.extsi %a : tensor<2xi32> to tensor<2xi64>
  %m = arith.maxsi %x, %b : tensor<2xi64>
  return %s, %t, %m : tensor<2xi32>, tensor<2xi32>, tensor<2xi64>
}
func.func @poison(%a: tensor<2xi32>) -> tensor<2xi32> {
  %s = arith.addi %a, %a overflow<nsw> : tensor<2xi32>
  return %s : tensor<2xi32>
}
"#;

// Elementwise integer ops on tensors wrap at the exact width (addi, trunci), extend exactly,
// and an nsw overflow (poison in MLIR) is an error.
#[test]
fn integer_tensor_ops_use_exact_widths() {
    let context = NpuContext::new().unwrap();
    let module = parse(&context, WRAP);
    let a = Tensor::from_i32(vec![2], vec![i32::MAX, -3]).unwrap();
    let b = Tensor::from_i64(vec![2], vec![(1 << 32) + 7, -1]).unwrap();
    let got = run(&module, "wrap", &[a.clone(), b]);
    assert_eq!(
        got,
        vec![
            Tensor::from_i32(vec![2], vec![-2, -6]).unwrap(),
            Tensor::from_i32(vec![2], vec![7, -1]).unwrap(),
            Tensor::from_i64(vec![2], vec![(1 << 32) + 7, -1]).unwrap(),
        ]
    );
    let e = run_err(&module, "poison", &[a]);
    assert!(e.to_string().contains("'nsw'"), "{e}");
}

const CONSTANTS: &str = r#"
func.func @constants() -> (tensor<3xbf16>, tensor<2x2xf16>, tensor<3xi8>, tensor<2xi64>, tensor<3xf32>, tensor<3xi32>,
                           tensor<3xf32>) {
  %a = arith.constant dense<[1.5, -2.0, 0.375]> : tensor<3xbf16>
  %b = arith.constant dense<[[1.0, 2.0], [3.0, 65504.0]]> : tensor<2x2xf16>
  %c = arith.constant dense<[-128, 0, 127]> : tensor<3xi8>
  %d = arith.constant dense<7> : tensor<2xi64>
  %m = arith.constant dense<[true, false, true]> : tensor<3xi1>
  %x = arith.constant dense<[1.0, 2.0, 3.0]> : tensor<3xf32>
  %y = arith.constant dense<-1.0> : tensor<3xf32>
  %s = arith.select %m, %x, %y : tensor<3xi1>, tensor<3xf32>
  %i = arith.constant dense<[5, 6, 7]> : tensor<3xindex>
  %j = arith.index_cast %i : tensor<3xindex> to tensor<3xi32>
  %t = arith.truncf %s : tensor<3xf32> to tensor<3xbf16>
  %u = arith.extf %a : tensor<3xbf16> to tensor<3xf32>
  %v = arith.subf %u, %x : tensor<3xf32>
  return %a, %b, %c, %d, %s, %j, %v : tensor<3xbf16>, tensor<2x2xf16>, tensor<3xi8>, tensor<2xi64>, tensor<3xf32>,
                                      tensor<3xi32>, tensor<3xf32>
}
"#;

// Dense constants of every supported element type (splat and not, i1 and index included) and
// elementwise select, index_cast, truncf, extf and subf on tensors.
#[test]
fn dense_constants_and_tensor_casts() {
    let context = NpuContext::new().unwrap();
    let module = parse(&context, CONSTANTS);
    let got = run(&module, "constants", &[]);
    let f16s = |v: &[f32]| v.iter().map(|&x| half::f16::from_f32(x)).collect::<Vec<_>>();
    assert_eq!(
        got,
        vec![
            Tensor::from_f32_rounded(DType::BF16, vec![3], vec![1.5, -2.0, 0.375]).unwrap(),
            Tensor::from_f16(vec![2, 2], f16s(&[1.0, 2.0, 3.0, 65504.0])).unwrap(),
            Tensor::from_i8(vec![3], vec![-128, 0, 127]).unwrap(),
            Tensor::from_i64(vec![2], vec![7, 7]).unwrap(),
            Tensor::from_f32(vec![3], vec![1.0, -1.0, 3.0]).unwrap(),
            Tensor::from_i32(vec![3], vec![5, 6, 7]).unwrap(),
            Tensor::from_f32(vec![3], vec![0.5, -4.0, -2.625]).unwrap(),
        ]
    );
}

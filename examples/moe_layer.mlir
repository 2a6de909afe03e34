// A small quantized MoE layer's combine, written as the unfused ops a torchair model runs
// (init routing, NZ weight cast, grouped int8 matmul, finalize routing), and the same layer with
// the fused op. T = 8 tokens, topK = 2, 4 experts, hidden 256, intermediate k = 256.

// The unfused spelling: GMM writes the (16, 256) expert outputs, MFR combines them.
func.func @moe_layer_unfused(%x: tensor<8x256xi8>, %expert_idx: tensor<8x2xi32>,
                             %topk_weights: tensor<8x2xf32>, %w: tensor<4x256x256xi8>,
                             %scale: tensor<4x256xf32>, %pertoken_scale: tensor<16xf32>,
                             %shared: tensor<8x256xbf16>) -> tensor<8x256xbf16> {
  %expanded_x, %expanded_row_idx, %expert_tokens = "npu.moe_init_routing"(%x, %expert_idx)
      {expert_num = 4 : i64, active_num = 0 : i64, row_idx_type = 0 : i64, expert_tokens_num_type = 1 : i64}
      : (tensor<8x256xi8>, tensor<8x2xi32>) -> (tensor<16x256xi8>, tensor<16xi32>, tensor<4xi64>)
  %w_nz = "npu.format_cast"(%w) {acl_format = 29 : i64} : (tensor<4x256x256xi8>) -> tensor<4x8x16x16x32xi8>
  %y = "npu.grouped_matmul"(%expanded_x, %w_nz, %expert_tokens, %scale, %pertoken_scale)
      {group_list_type = 1 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0>}
      : (tensor<16x256xi8>, tensor<4x8x16x16x32xi8>, tensor<4xi64>, tensor<4x256xf32>, tensor<16xf32>) -> tensor<16x256xbf16>
  %out = "npu.moe_finalize_routing"(%y, %shared, %topk_weights, %expanded_row_idx)
      {drop_pad_mode = 2 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 1, 0>}
      : (tensor<16x256xbf16>, tensor<8x256xbf16>, tensor<8x2xf32>, tensor<16xi32>) -> tensor<8x256xbf16>
  return %out : tensor<8x256xbf16>
}

// The fused op, as torch_npu.npu_grouped_matmul_finalize_routing is called: rows of x in expert
// order, logit and row_index per row, the shared expert's output written into rows [0, 8).
func.func @moe_layer_fused(%x: tensor<16x256xi8>, %w_nz: tensor<4x8x16x16x32xi8>,
                           %group_list: tensor<4xi64>, %scale: tensor<4x256xf32>,
                           %pertoken_scale: tensor<16xf32>, %shared: tensor<8x256xbf16>,
                           %logit: tensor<16xf32>, %row_index: tensor<16xi64>) -> tensor<8x256xf32> {
  %out = "npu.grouped_matmul_finalize_routing"(%x, %w_nz, %group_list, %scale, %pertoken_scale, %shared, %logit, %row_index)
      {dtype = 0 : i64, shared_input_weight = 1.0 : f32, shared_input_offset = 0 : i64, output_bs = 8 : i64,
       group_list_type = 1 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 1, 0, 0, 1, 1, 1, 1>}
      : (tensor<16x256xi8>, tensor<4x8x16x16x32xi8>, tensor<4xi64>, tensor<4x256xf32>, tensor<16xf32>,
         tensor<8x256xbf16>, tensor<16xf32>, tensor<16xi64>) -> tensor<8x256xf32>
  return %out : tensor<8x256xf32>
}

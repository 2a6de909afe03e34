// The `npu` dialect, declared in IRDL.
//
// IRDL checks what it can: op names, operand and result counts, which operands are optional
// (operandSegmentSizes) and that the always-present attributes exist with the right attribute
// kind. Everything else (ranks, element types, shape relations between operands, attribute
// ranges) is checked by the Rust verifier in `dialect/src/verify/`, because IRDL cannot express
// it. Every operand, result and attribute has its own constraint value: IRDL unifies a
// constraint value used twice, which would force those types or attributes to be equal.
// Operand names follow torch_npu; `src/schema.rs` mirrors this file and `tests/schema.rs`
// keeps the two in agreement.
irdl.dialect @npu {
  // torch_npu.npu_grouped_matmul_finalize_routing: grouped int8 (or int4, or float) matmul over
  // the experts fused with dequantization, router weighting and the scatter-add back to token
  // order, plus a shared-expert slice. Optional attribute (Rust-checked): tuning_config.
  irdl.operation @grouped_matmul_finalize_routing {
    %x = irdl.base "!builtin.tensor"
    %w = irdl.base "!builtin.tensor"
    %group_list = irdl.base "!builtin.tensor"
    %scale = irdl.base "!builtin.tensor"
    %bias = irdl.base "!builtin.tensor"
    %offset = irdl.base "!builtin.tensor"
    %pertoken_scale = irdl.base "!builtin.tensor"
    %shared_input = irdl.base "!builtin.tensor"
    %logit = irdl.base "!builtin.tensor"
    %row_index = irdl.base "!builtin.tensor"
    %out_type = irdl.base "!builtin.tensor"
    %dtype_attr = irdl.base "#builtin.integer"
    %shared_input_weight_attr = irdl.base "#builtin.float"
    %shared_input_offset_attr = irdl.base "#builtin.integer"
    %output_bs_attr = irdl.base "#builtin.integer"
    %group_list_type_attr = irdl.base "#builtin.integer"
    irdl.operands(x: %x, w: %w, group_list: %group_list, scale: optional %scale, bias: optional %bias, offset: optional %offset, pertoken_scale: optional %pertoken_scale, shared_input: optional %shared_input, logit: optional %logit, row_index: %row_index)
    irdl.results(out: %out_type)
    irdl.attributes {"dtype" = %dtype_attr, "shared_input_weight" = %shared_input_weight_attr, "shared_input_offset" = %shared_input_offset_attr, "output_bs" = %output_bs_attr, "group_list_type" = %group_list_type_attr}
  }

  // The MoE subset of torch_npu.npu_grouped_matmul: one x, one grouped weight.
  irdl.operation @grouped_matmul {
    %x = irdl.base "!builtin.tensor"
    %weight = irdl.base "!builtin.tensor"
    %group_list = irdl.base "!builtin.tensor"
    %scale = irdl.base "!builtin.tensor"
    %per_token_scale = irdl.base "!builtin.tensor"
    %bias = irdl.base "!builtin.tensor"
    %y_type = irdl.base "!builtin.tensor"
    %group_list_type_attr = irdl.base "#builtin.integer"
    irdl.operands(x: %x, weight: %weight, group_list: %group_list, scale: optional %scale, per_token_scale: optional %per_token_scale, bias: optional %bias)
    irdl.results(y: %y_type)
    irdl.attributes {"group_list_type" = %group_list_type_attr}
  }

  // torch_npu.npu_moe_finalize_routing.
  irdl.operation @moe_finalize_routing {
    %expanded_permuted_rows = irdl.base "!builtin.tensor"
    %skip1 = irdl.base "!builtin.tensor"
    %skip2 = irdl.base "!builtin.tensor"
    %bias = irdl.base "!builtin.tensor"
    %scales = irdl.base "!builtin.tensor"
    %expanded_src_to_dst_row = irdl.base "!builtin.tensor"
    %expert_for_source_row = irdl.base "!builtin.tensor"
    %out_type = irdl.base "!builtin.tensor"
    %drop_pad_mode_attr = irdl.base "#builtin.integer"
    irdl.operands(expanded_permuted_rows: %expanded_permuted_rows, skip1: optional %skip1, skip2: optional %skip2, bias: optional %bias, scales: optional %scales, expanded_src_to_dst_row: %expanded_src_to_dst_row, expert_for_source_row: optional %expert_for_source_row)
    irdl.results(out: %out_type)
    irdl.attributes {"drop_pad_mode" = %drop_pad_mode_attr}
  }

  // The outputs of torch_npu.npu_moe_init_routing_v2 that MoE combines depend on.
  // Optional attribute (Rust-checked): active_expert_range.
  irdl.operation @moe_init_routing {
    %x = irdl.base "!builtin.tensor"
    %expert_idx = irdl.base "!builtin.tensor"
    %expanded_x_type = irdl.base "!builtin.tensor"
    %expanded_row_idx_type = irdl.base "!builtin.tensor"
    %expert_tokens_type = irdl.base "!builtin.tensor"
    %expert_num_attr = irdl.base "#builtin.integer"
    %active_num_attr = irdl.base "#builtin.integer"
    %row_idx_type_attr = irdl.base "#builtin.integer"
    %expert_tokens_num_type_attr = irdl.base "#builtin.integer"
    irdl.operands(x: %x, expert_idx: %expert_idx)
    irdl.results(expanded_x: %expanded_x_type, expanded_row_idx: %expanded_row_idx_type, expert_tokens: %expert_tokens_type)
    irdl.attributes {"expert_num" = %expert_num_attr, "active_num" = %active_num_attr, "row_idx_type" = %row_idx_type_attr, "expert_tokens_num_type" = %expert_tokens_num_type_attr}
  }

  // torch_npu.npu_format_cast between ND (acl_format 2) and FRACTAL_NZ (acl_format 29).
  irdl.operation @format_cast {
    %input = irdl.base "!builtin.tensor"
    %out_type = irdl.base "!builtin.tensor"
    %acl_format_attr = irdl.base "#builtin.integer"
    irdl.operands(input: %input)
    irdl.results(out: %out_type)
    irdl.attributes {"acl_format" = %acl_format_attr}
  }
}

// The `npu` dialect, declared in IRDL.
//
// IRDL checks what it can: op names, operand and result counts, which operands are optional
// (operandSegmentSizes) and that the always-present attributes exist with the right attribute
// kind. Everything else (ranks, element types, shape relations between operands, attribute
// ranges) is checked by the Rust verifier in `dialect/src/verify/`, because IRDL cannot express
// it. Operand names follow torch_npu; `src/schema.rs` mirrors this file and a test keeps the two
// in agreement.
irdl.dialect @npu {
  // torch_npu.npu_grouped_matmul_finalize_routing: grouped int8 (or int4, or float) matmul over
  // the experts fused with dequantization, router weighting and the scatter-add back to token
  // order, plus a shared-expert slice. Optional attribute (Rust-checked): tuning_config.
  irdl.operation @grouped_matmul_finalize_routing {
    %tensor = irdl.base "!builtin.tensor"
    %int = irdl.base "#builtin.integer"
    %float = irdl.base "#builtin.float"
    irdl.operands(x: %tensor, w: %tensor, group_list: %tensor, scale: optional %tensor,
                  bias: optional %tensor, offset: optional %tensor,
                  pertoken_scale: optional %tensor, shared_input: optional %tensor,
                  logit: optional %tensor, row_index: %tensor)
    irdl.results(out: %tensor)
    irdl.attributes {"dtype" = %int, "shared_input_weight" = %float,
                     "shared_input_offset" = %int, "output_bs" = %int,
                     "group_list_type" = %int}
  }

  // The MoE subset of torch_npu.npu_grouped_matmul: one x, one grouped weight.
  irdl.operation @grouped_matmul {
    %tensor = irdl.base "!builtin.tensor"
    %int = irdl.base "#builtin.integer"
    irdl.operands(x: %tensor, weight: %tensor, group_list: %tensor, scale: optional %tensor,
                  per_token_scale: optional %tensor, bias: optional %tensor)
    irdl.results(y: %tensor)
    irdl.attributes {"group_list_type" = %int}
  }

  // torch_npu.npu_moe_finalize_routing.
  irdl.operation @moe_finalize_routing {
    %tensor = irdl.base "!builtin.tensor"
    %int = irdl.base "#builtin.integer"
    irdl.operands(expanded_permuted_rows: %tensor, skip1: optional %tensor,
                  skip2: optional %tensor, bias: optional %tensor, scales: optional %tensor,
                  expanded_src_to_dst_row: %tensor, expert_for_source_row: optional %tensor)
    irdl.results(out: %tensor)
    irdl.attributes {"drop_pad_mode" = %int}
  }

  // The outputs of torch_npu.npu_moe_init_routing_v2 that MoE combines depend on.
  // Optional attribute (Rust-checked): active_expert_range.
  irdl.operation @moe_init_routing {
    %tensor = irdl.base "!builtin.tensor"
    %int = irdl.base "#builtin.integer"
    irdl.operands(x: %tensor, expert_idx: %tensor)
    irdl.results(expanded_x: %tensor, expanded_row_idx: %tensor, expert_tokens: %tensor)
    irdl.attributes {"expert_num" = %int, "active_num" = %int, "row_idx_type" = %int,
                     "expert_tokens_num_type" = %int}
  }

  // torch_npu.npu_format_cast between ND (acl_format 2) and FRACTAL_NZ (acl_format 29).
  irdl.operation @format_cast {
    %tensor = irdl.base "!builtin.tensor"
    %int = irdl.base "#builtin.integer"
    irdl.operands(input: %tensor)
    irdl.results(out: %tensor)
    irdl.attributes {"acl_format" = %int}
  }
}

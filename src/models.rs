//! Synthetic whole-model modules in the `npu` dialect, shaped like real MoE models (SPEC 5):
//! every MoE layer is the unfused combine (routing, grouped matmuls, finalize with the shared
//! expert as skip1), and everything else (attention, norms, dense MLPs, the router, the SwiGLU)
//! is an opaque `model.*` op. Used by the fusion benchmark and the analyzer's model reports.

use std::fmt::Write;

/// The shape of a model.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// Name, used in function names.
    pub name: &'static str,
    /// Transformer layers.
    pub layers: usize,
    /// Leading dense (non-MoE) layers.
    pub dense_layers: usize,
    /// Hidden size (n of the down projection).
    pub hidden: u64,
    /// Expert intermediate size (k of the down projection).
    pub intermediate: u64,
    /// Experts on this device (all experts without expert parallelism).
    pub local_experts: u64,
    /// Experts in the model.
    pub experts: u64,
    /// Experts per token.
    pub top_k: u64,
    /// Tokens in the batch.
    pub tokens: u64,
    /// Whether the model has a shared expert (its output is finalize's skip1).
    pub shared_expert: bool,
    /// int8 weights and activations (A8W8) or bf16.
    pub quantized: bool,
    /// An expert-parallel shard: the routing keeps experts `[start, end)` of `experts`
    /// (`active_expert_range`), and `local_experts = end - start`. `None`: the routing routes
    /// over `local_experts` experts and keeps them all.
    pub expert_range: Option<(u64, u64)>,
}

impl ModelConfig {
    /// DeepSeek-V3: 61 layers, the first 3 dense, 256 experts (32 on this device), topK 8,
    /// hidden 7168, expert intermediate 2048, a shared expert.
    pub fn deepseek_v3() -> Self {
        Self {
            name: "deepseek_v3",
            layers: 61,
            dense_layers: 3,
            hidden: 7168,
            intermediate: 2048,
            local_experts: 32,
            experts: 256,
            top_k: 8,
            tokens: 16,
            shared_expert: true,
            quantized: true,
            expert_range: None,
        }
    }

    /// DeepSeek-V2-Lite (SPEC 5): 27 layers, the first dense, 64 experts, topK 6, hidden 2048,
    /// expert intermediate 1408, two shared experts (one `model.shared_expert` op: their summed
    /// output is finalize's skip1). A8W8; the older CANN release's k/n whitelist rejects it.
    pub fn deepseek_v2_lite() -> Self {
        Self {
            name: "deepseek_v2_lite",
            layers: 27,
            dense_layers: 1,
            hidden: 2048,
            intermediate: 1408,
            local_experts: 64,
            experts: 64,
            top_k: 6,
            tokens: 16,
            shared_expert: true,
            quantized: true,
            expert_range: None,
        }
    }

    /// Qwen3-30B-A3B (SPEC 5): 48 MoE layers, 128 experts, topK 8, hidden 2048, expert
    /// intermediate 768, no shared expert. A8W8.
    pub fn qwen3_30b_a3b() -> Self {
        Self {
            name: "qwen3_30b_a3b",
            layers: 48,
            dense_layers: 0,
            hidden: 2048,
            intermediate: 768,
            local_experts: 128,
            experts: 128,
            top_k: 8,
            tokens: 16,
            shared_expert: false,
            quantized: true,
            expert_range: None,
        }
    }

    /// Mixtral-8x7B (SPEC 5): 32 MoE layers, 8 experts, topK 2, hidden 4096, expert
    /// intermediate 14336, no shared expert. A8W8.
    pub fn mixtral_8x7b() -> Self {
        Self {
            name: "mixtral_8x7b",
            layers: 32,
            dense_layers: 0,
            hidden: 4096,
            intermediate: 14336,
            local_experts: 8,
            experts: 8,
            top_k: 2,
            tokens: 16,
            shared_expert: false,
            quantized: true,
            expert_range: None,
        }
    }

    /// The same model with `layers` layers (for scaling measurements).
    pub fn with_layers(mut self, layers: usize) -> Self {
        self.layers = layers;
        self
    }

    /// The same model under another name (the generated function's name).
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// The same model non-quantized: bf16 activations and weights, no scales.
    pub fn bf16(mut self) -> Self {
        self.quantized = false;
        self
    }

    /// Shard `rank` of `ranks` expert-parallel devices: the routing keeps that rank's
    /// `experts / ranks` experts of all `experts` (`active_expert_range`), and the grouped
    /// matmuls hold only those. `ranks` must divide `experts` and `rank < ranks`; otherwise the
    /// model is returned unchanged.
    pub fn expert_parallel(mut self, ranks: u64, rank: u64) -> Self {
        if ranks == 0 || rank >= ranks || !self.experts.is_multiple_of(ranks) {
            return self;
        }
        let local = self.experts / ranks;
        self.local_experts = local;
        self.expert_range = Some((rank * local, (rank + 1) * local));
        self
    }
}

fn t(dims: &[u64], elem: &str) -> String {
    let mut text = String::from("tensor<");
    for d in dims {
        let _ = write!(text, "{d}x");
    }
    text.push_str(elem);
    text.push('>');
    text
}

/// The module text: one function taking the hidden state and every layer's weights.
pub fn generate(config: &ModelConfig) -> String {
    let c = config;
    let (tk, h, k, e) = (c.tokens * c.top_k, c.hidden, c.intermediate, c.local_experts);
    let act = if c.quantized { "i8" } else { "bf16" };
    let (expert_num, range_attr) = match c.expert_range {
        Some((start, end)) => (c.experts, format!(", active_expert_range = array<i64: {start}, {end}>")),
        None => (e, String::new()),
    };
    let hidden_t = t(&[c.tokens, h], "bf16");
    let mut args = vec![format!("%h0: {hidden_t}")];
    let mut body = String::new();
    for layer in 0..c.layers {
        let l = layer;
        let _ = writeln!(
            body,
            "    %a{l} = \"model.attention\"(%h{l}) : ({hidden_t}) -> {hidden_t}"
        );
        if layer < c.dense_layers {
            let next = l + 1;
            let _ = writeln!(
                body,
                "    %h{next} = \"model.dense_mlp\"(%a{l}) : ({hidden_t}) -> {hidden_t}"
            );
            continue;
        }
        let (up_w, down_w) = if c.quantized {
            (
                t(&[e, (2 * k).div_ceil(32), h.div_ceil(16), 16, 32], "i8"),
                t(&[e, h.div_ceil(32), k.div_ceil(16), 16, 32], "i8"),
            )
        } else {
            (t(&[e, h, 2 * k], "bf16"), t(&[e, k, h], "bf16"))
        };
        args.push(format!("%up{l}: {up_w}"));
        args.push(format!("%down{l}: {down_w}"));
        if c.quantized {
            args.push(format!("%up_scale{l}: {}", t(&[e, 2 * k], "f32")));
            args.push(format!("%down_scale{l}: {}", t(&[e, h], "f32")));
        }
        let _ = writeln!(
            body,
            "    %idx{l}, %weights{l} = \"model.router\"(%a{l}) : ({hidden_t}) -> ({}, {})",
            t(&[c.tokens, c.top_k], "i32"),
            t(&[c.tokens, c.top_k], "f32")
        );
        let _ = writeln!(
            body,
            "    %ex{l}, %inv{l}, %count{l} = \"npu.moe_init_routing\"(%a{l}, %idx{l}) {{expert_num = {expert_num} : i64, active_num = 0 : i64, row_idx_type = 0 : i64, expert_tokens_num_type = 1 : i64{range_attr}}} : ({hidden_t}, {}) -> ({}, {}, {})",
            t(&[c.tokens, c.top_k], "i32"),
            t(&[tk, h], "bf16"),
            t(&[tk], "i32"),
            t(&[e], "i64")
        );
        if c.quantized {
            // Dynamic per-row quantization of the expanded rows, as npu_moe_init_routing_v2's
            // quant mode does: int8 rows and their per-token scales, in permuted order.
            let _ = writeln!(
                body,
                "    %x{l}, %pts{l} = \"model.dynamic_quant\"(%ex{l}) : ({}) -> ({}, {})",
                t(&[tk, h], "bf16"),
                t(&[tk, h], "i8"),
                t(&[tk], "f32")
            );
        }
        let routed = if c.quantized {
            format!("%x{l}")
        } else {
            format!("%ex{l}")
        };
        let up_out = t(&[tk, 2 * k], "bf16");
        let down_out = t(&[tk, h], "bf16");
        if c.quantized {
            let _ = writeln!(
                body,
                "    %up_y{l} = \"npu.grouped_matmul\"({routed}, %up{l}, %count{l}, %up_scale{l}, %pts{l}) {{group_list_type = 1 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0>}} : ({}, {up_w}, {}, {}, {}) -> {up_out}",
                t(&[tk, h], act),
                t(&[e], "i64"),
                t(&[e, 2 * k], "f32"),
                t(&[tk], "f32")
            );
            let _ = writeln!(
                body,
                "    %act{l}, %act_scale{l} = \"model.swiglu_quant\"(%up_y{l}) : ({up_out}) -> ({}, {})",
                t(&[tk, k], "i8"),
                t(&[tk], "f32")
            );
            let _ = writeln!(
                body,
                "    %y{l} = \"npu.grouped_matmul\"(%act{l}, %down{l}, %count{l}, %down_scale{l}, %act_scale{l}) {{group_list_type = 1 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0>}} : ({}, {down_w}, {}, {}, {}) -> {down_out}",
                t(&[tk, k], "i8"),
                t(&[e], "i64"),
                t(&[e, h], "f32"),
                t(&[tk], "f32")
            );
        } else {
            let _ = writeln!(
                body,
                "    %up_y{l} = \"npu.grouped_matmul\"({routed}, %up{l}, %count{l}) {{group_list_type = 1 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0>}} : ({}, {up_w}, {}) -> {up_out}",
                t(&[tk, h], act),
                t(&[e], "i64")
            );
            let _ = writeln!(
                body,
                "    %act{l} = \"model.swiglu\"(%up_y{l}) : ({up_out}) -> {}",
                t(&[tk, k], "bf16")
            );
            let _ = writeln!(
                body,
                "    %y{l} = \"npu.grouped_matmul\"(%act{l}, %down{l}, %count{l}) {{group_list_type = 1 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0>}} : ({}, {down_w}, {}) -> {down_out}",
                t(&[tk, k], "bf16"),
                t(&[e], "i64")
            );
        }
        let (skip_operand, skip_type, skip_segment) = if c.shared_expert {
            let _ = writeln!(
                body,
                "    %shared{l} = \"model.shared_expert\"(%a{l}) : ({hidden_t}) -> {hidden_t}"
            );
            (format!("%shared{l}, "), format!("{hidden_t}, "), 1)
        } else {
            (String::new(), String::new(), 0)
        };
        let _ = writeln!(
            body,
            "    %moe{l} = \"npu.moe_finalize_routing\"(%y{l}, {skip_operand}%weights{l}, %inv{l}) {{drop_pad_mode = 2 : i64, operandSegmentSizes = array<i32: 1, {skip_segment}, 0, 0, 1, 1, 0>}} : ({down_out}, {skip_type}{}, {}) -> {hidden_t}",
            t(&[c.tokens, c.top_k], "f32"),
            t(&[tk], "i32")
        );
        let next = l + 1;
        let _ = writeln!(
            body,
            "    %h{next} = \"model.residual_add\"(%a{l}, %moe{l}) : ({hidden_t}, {hidden_t}) -> {hidden_t}"
        );
    }
    format!(
        "module {{\n  func.func @{}({}) -> {hidden_t} {{\n{body}    return %h{} : {hidden_t}\n  }}\n}}\n",
        c.name,
        args.join(", "),
        c.layers
    )
}

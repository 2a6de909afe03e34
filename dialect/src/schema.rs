//! The operand and result layout of every `npu` op, mirroring `irdl/npu.irdl.mlir`.
//!
//! IRDL ops carry their optional operands as an `operandSegmentSizes` attribute; this table is
//! what lets Rust code ask for an operand by its torch_npu name. A test parses the IRDL file and
//! checks that the two agree, so they cannot drift apart.

/// Whether an operand must be present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    /// Exactly one value.
    Single,
    /// Zero or one value.
    Optional,
}

/// One declared operand.
#[derive(Clone, Copy, Debug)]
pub struct OperandDecl {
    /// The torch_npu name of the operand.
    pub name: &'static str,
    /// Whether it may be absent.
    pub arity: Arity,
}

/// One declared op.
#[derive(Clone, Copy, Debug)]
pub struct OpSchema {
    /// Full op name, `npu.<name>`.
    pub name: &'static str,
    /// Operands in declaration order.
    pub operands: &'static [OperandDecl],
    /// Result names in order.
    pub results: &'static [&'static str],
    /// Attributes IRDL requires.
    pub required_attributes: &'static [&'static str],
    /// Attributes the Rust verifier accepts when present.
    pub optional_attributes: &'static [&'static str],
}

impl OpSchema {
    /// Whether any operand is optional, in which case the op carries `operandSegmentSizes`.
    pub fn has_segments(&self) -> bool {
        self.operands.iter().any(|o| o.arity == Arity::Optional)
    }

    /// The index of a declared operand.
    pub fn operand_index(&self, name: &str) -> Option<usize> {
        self.operands.iter().position(|o| o.name == name)
    }
}

const fn single(name: &'static str) -> OperandDecl {
    OperandDecl {
        name,
        arity: Arity::Single,
    }
}

const fn optional(name: &'static str) -> OperandDecl {
    OperandDecl {
        name,
        arity: Arity::Optional,
    }
}

/// `npu.grouped_matmul_finalize_routing`, the fused op.
pub const GMMFR: OpSchema = OpSchema {
    name: "npu.grouped_matmul_finalize_routing",
    operands: &[
        single("x"),
        single("w"),
        single("group_list"),
        optional("scale"),
        optional("bias"),
        optional("offset"),
        optional("pertoken_scale"),
        optional("shared_input"),
        optional("logit"),
        single("row_index"),
    ],
    results: &["out"],
    required_attributes: &[
        "dtype",
        "shared_input_weight",
        "shared_input_offset",
        "output_bs",
        "group_list_type",
    ],
    optional_attributes: &["tuning_config"],
};

/// `npu.grouped_matmul`, the MoE subset of npu_grouped_matmul.
pub const GROUPED_MATMUL: OpSchema = OpSchema {
    name: "npu.grouped_matmul",
    operands: &[
        single("x"),
        single("weight"),
        single("group_list"),
        optional("scale"),
        optional("per_token_scale"),
        optional("bias"),
    ],
    results: &["y"],
    required_attributes: &["group_list_type"],
    optional_attributes: &[],
};

/// `npu.moe_finalize_routing`.
pub const MOE_FINALIZE_ROUTING: OpSchema = OpSchema {
    name: "npu.moe_finalize_routing",
    operands: &[
        single("expanded_permuted_rows"),
        optional("skip1"),
        optional("skip2"),
        optional("bias"),
        optional("scales"),
        single("expanded_src_to_dst_row"),
        optional("expert_for_source_row"),
    ],
    results: &["out"],
    required_attributes: &["drop_pad_mode"],
    optional_attributes: &[],
};

/// `npu.moe_init_routing` (the v2 op's outputs that matter here).
pub const MOE_INIT_ROUTING: OpSchema = OpSchema {
    name: "npu.moe_init_routing",
    operands: &[single("x"), single("expert_idx")],
    results: &["expanded_x", "expanded_row_idx", "expert_tokens"],
    required_attributes: &["expert_num", "active_num", "row_idx_type", "expert_tokens_num_type"],
    optional_attributes: &["active_expert_range"],
};

/// `npu.format_cast` between ND and FRACTAL_NZ.
pub const FORMAT_CAST: OpSchema = OpSchema {
    name: "npu.format_cast",
    operands: &[single("input")],
    results: &["out"],
    required_attributes: &["acl_format"],
    optional_attributes: &[],
};

/// Every op of the dialect.
pub const ALL: &[&OpSchema] = &[
    &GMMFR,
    &GROUPED_MATMUL,
    &MOE_FINALIZE_ROUTING,
    &MOE_INIT_ROUTING,
    &FORMAT_CAST,
];

/// The schema of an op name, if it is an `npu` op.
pub fn lookup(name: &str) -> Option<&'static OpSchema> {
    ALL.iter().copied().find(|s| s.name == name)
}

//! What an `aclOpExecutor` holds: the validated plan of one launch, built by GetWorkspaceSize
//! from the call's descriptors (SPEC 4 validation) and consumed by exactly one launch.

use gmmfr_dialect::reference::GmmfrAttrs;
use gmmfr_dialect::tensor::DType;

/// The aclnnGroupedMatmulFinalizeRouting entry points the emulator implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// `aclnnGroupedMatmulFinalizeRoutingWeightNz`: A8W8, int8 FRACTAL_NZ weight.
    WeightNz,
    /// `aclnnGroupedMatmulFinalizeRoutingWeightNzV2`: A8W8 or A8W4 with a FRACTAL_NZ weight.
    WeightNzV2,
    /// `aclnnGroupedMatmulFinalizeRoutingV3`: A8W4 with an ND int4 weight.
    V3,
}

impl Entry {
    /// The launch function's C name.
    pub fn name(self) -> &'static str {
        match self {
            Entry::WeightNz => "aclnnGroupedMatmulFinalizeRoutingWeightNz",
            Entry::WeightNzV2 => "aclnnGroupedMatmulFinalizeRoutingWeightNzV2",
            Entry::V3 => "aclnnGroupedMatmulFinalizeRoutingV3",
        }
    }

    /// The GetWorkspaceSize function's C name.
    pub fn workspace_name(self) -> &'static str {
        match self {
            Entry::WeightNz => "aclnnGroupedMatmulFinalizeRoutingWeightNzGetWorkspaceSize",
            Entry::WeightNzV2 => "aclnnGroupedMatmulFinalizeRoutingWeightNzV2GetWorkspaceSize",
            Entry::V3 => "aclnnGroupedMatmulFinalizeRoutingV3GetWorkspaceSize",
        }
    }

    /// True when the weight must be FRACTAL_NZ (false: ND).
    pub fn nz_weight(self) -> bool {
        !matches!(self, Entry::V3)
    }
}

/// The quantization scenario, decided by the weight's dtype.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// int8 x, int8 weight (SPEC 1.1).
    A8W8,
    /// int8 x, int4 weight (SPEC 1.3).
    A8W4,
}

/// One validated operand: where its elements start, their type and the shape the reference
/// semantics read them as (the 5-D storage shape for an NZ weight, the view dims otherwise).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Operand {
    /// The tensor's data address (provenance exposed at aclCreateTensor).
    pub(crate) data: usize,
    /// Bytes from `data` to the first element (the descriptor's offset times the element size).
    pub(crate) byte_offset: usize,
    /// Element type.
    pub(crate) dtype: DType,
    /// Dense row-major shape; its element count was checked against the storage dims.
    pub(crate) shape: Vec<usize>,
}

/// Everything a launch needs, validated.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plan {
    /// The entry point that prepared it (a launch of another entry point is refused).
    pub(crate) entry: Entry,
    /// Rows of x1.
    pub(crate) m: usize,
    /// Experts (weight groups).
    pub(crate) e: usize,
    /// x1 (m, k) int8.
    pub(crate) x: Operand,
    /// The weight (storage shape).
    pub(crate) w: Operand,
    /// Dequant scale.
    pub(crate) scale: Operand,
    /// Bias (A8W8 bf16 optional, A8W4 f32 required).
    pub(crate) bias: Option<Operand>,
    /// A8W4 offset.
    pub(crate) offset: Option<Operand>,
    /// Per-token scale.
    pub(crate) pertoken_scale: Option<Operand>,
    /// Group list (e,) int64.
    pub(crate) group_list: Operand,
    /// Shared-expert rows (bsdp, n) bf16.
    pub(crate) shared_input: Option<Operand>,
    /// Router weights (m,).
    pub(crate) logit: Option<Operand>,
    /// Destination rows (m,).
    pub(crate) row_index: Operand,
    /// The f32 (batch, n) output.
    pub(crate) out: Operand,
    /// Attributes in the reference semantics' terms (output_bs = rows of out).
    pub(crate) attrs: GmmfrAttrs,
    /// Bytes of workspace the launch needs (see [`workspace_size`]).
    pub(crate) workspace_size: u64,
}

/// The workspace rule: one f32 row of n per row of x1, `4 * m * n` bytes. It is never zero for
/// a valid call (m, n >= 1), so callers always exercise their aclrtMalloc path; the launch
/// stages the (batch <= m) output rows in it before copying them to `out`.
pub fn workspace_size(m: usize, n: usize) -> Option<u64> {
    let bytes = m.checked_mul(n)?.checked_mul(4)?;
    u64::try_from(bytes).ok()
}

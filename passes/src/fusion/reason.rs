//! Why a candidate pair does not fuse: stable codes, documented in the README.

use std::fmt;

/// One reason a GMM + finalize pair is not fused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The GMM result feeds other ops too; fusing would have to keep the GMM anyway.
    IntermediateHasOtherUsers {
        /// Number of uses of the GMM result.
        uses: usize,
    },
    /// The GMM and the finalize op are in different blocks.
    DifferentBlocks,
    /// A value the fused op needs is defined after the finalize op.
    OperandsDoNotDominate(String),
    /// `skip2` has no counterpart in the fused op.
    Skip2Present,
    /// A finalize `bias` has no counterpart in the fused op.
    FinalizeBiasPresent,
    /// drop_pad_mode 1 or 3 (padded expert capacity) has no counterpart in the fused op.
    PaddedDropMode(i64),
    /// GMM group_list_type 2 ((group, size) pairs) has no counterpart in the fused op.
    GroupListPairs,
    /// The GMM has a bias (int32 for int8 inputs) with no counterpart in the fused op.
    GmmBiasUnsupported(String),
    /// precision=exact and the GMM rounds its rows to bf16/f16, which the fused op does not.
    PrecisionExact(String),
    /// The index correspondence of SPEC 2.4 (1) cannot be proven from the IR.
    IndexCorrespondenceUnproven(String),
    /// expanded_src_to_dst_row is gidx (or gidx // K) instead of the inverse permutation: the
    /// wrong mapping of the published "split" test.
    SplitMapping(String),
    /// The routing drops (token, slot) pairs (active_num or active_expert_range), so the pair
    /// reads -1 entries the fused op has no counterpart for.
    RoutingDropsTokens(String),
    /// Routing, GMM and finalize disagree on T, K or m.
    RoutingShapeMismatch(String),
    /// gidx is not available without recomputing the routing (its inverse has other users).
    GidxNeedsExtraComputation,
    /// skip1 cannot be passed as the fused op's bf16 shared_input.
    Skip1NotBf16(String),
    /// target=ascend and the fused op would fail a constraint of the Ascend profile.
    AscendProfile(gmmfr_dialect::profile::ProfileViolation),
}

impl Reason {
    /// The stable code.
    pub fn code(&self) -> String {
        match self {
            Reason::IntermediateHasOtherUsers { .. } => "intermediate-has-other-users".into(),
            Reason::DifferentBlocks => "different-blocks".into(),
            Reason::OperandsDoNotDominate(_) => "operands-do-not-dominate".into(),
            Reason::Skip2Present => "skip2-present".into(),
            Reason::FinalizeBiasPresent => "finalize-bias-present".into(),
            Reason::PaddedDropMode(_) => "padded-drop-pad-mode".into(),
            Reason::GroupListPairs => "group-list-pairs".into(),
            Reason::GmmBiasUnsupported(_) => "gmm-bias-unsupported".into(),
            Reason::PrecisionExact(_) => "precision-exact".into(),
            Reason::IndexCorrespondenceUnproven(_) => "index-correspondence-unproven".into(),
            Reason::SplitMapping(_) => "split-mapping".into(),
            Reason::RoutingDropsTokens(_) => "routing-drops-tokens".into(),
            Reason::RoutingShapeMismatch(_) => "routing-shape-mismatch".into(),
            Reason::GidxNeedsExtraComputation => "gidx-needs-extra-computation".into(),
            Reason::Skip1NotBf16(_) => "skip1-not-bf16".into(),
            Reason::AscendProfile(violation) => format!("ascend-profile:{}", violation.constraint),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.code())?;
        match self {
            Reason::IntermediateHasOtherUsers { uses } => write!(f, "the grouped_matmul result has {uses} uses"),
            Reason::DifferentBlocks => write!(f, "grouped_matmul and moe_finalize_routing are in different blocks"),
            Reason::OperandsDoNotDominate(what) => write!(f, "{what} is defined after moe_finalize_routing"),
            Reason::Skip2Present => write!(f, "skip2 has no counterpart in the fused op"),
            Reason::FinalizeBiasPresent => write!(f, "the finalize bias has no counterpart in the fused op"),
            Reason::PaddedDropMode(mode) => write!(
                f,
                "drop_pad_mode {mode} (padded capacity) has no counterpart in the fused op"
            ),
            Reason::GroupListPairs => write!(
                f,
                "group_list_type 2 ((group, size) pairs) has no counterpart in the fused op"
            ),
            Reason::GmmBiasUnsupported(what) => write!(f, "{what}"),
            Reason::PrecisionExact(what) => write!(f, "{what}"),
            Reason::IndexCorrespondenceUnproven(what) => write!(f, "{what}"),
            Reason::SplitMapping(what) => write!(f, "{what}"),
            Reason::RoutingDropsTokens(what) => write!(f, "{what}"),
            Reason::RoutingShapeMismatch(what) => write!(f, "{what}"),
            Reason::GidxNeedsExtraComputation => write!(
                f,
                "the routing's inverse map has other users and no gidx (row_idx_type 1) routing is available; fusing would recompute the routing"
            ),
            Reason::Skip1NotBf16(what) => write!(f, "{what}"),
            Reason::AscendProfile(violation) => write!(f, "{violation}"),
        }
    }
}

//! The CANN C ABI the aclnn lowering emits calls to (SPEC 4.1), in one place: data type and
//! format codes, entry points and their parameter lists. `include/gmmfr_aclnn.h` declares the
//! same functions for C callers.

use gmmfr_dialect::scenario::Scenario;
use gmmfr_dialect::types::Elem;

/// `aclDataType` code of an element type.
pub fn data_type(elem: &Elem) -> Option<i32> {
    Some(match elem {
        Elem::F32 => 0,
        Elem::F16 => 1,
        Elem::I8 => 2,
        Elem::I32 => 3,
        Elem::I64 => 9,
        Elem::BF16 => 27,
        Elem::I4 => 29,
        Elem::Other(_) => return None,
    })
}

/// `ACL_FORMAT_ND`.
pub const FORMAT_ND: i32 = 2;
/// `ACL_FORMAT_FRACTAL_NZ`.
pub const FORMAT_FRACTAL_NZ: i32 = 29;
/// `ACL_MEM_MALLOC_HUGE_FIRST`.
pub const MALLOC_HUGE_FIRST: i32 = 0;

/// The aclnn entry point family a fused op is lowered to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryPoint {
    /// `aclnnGroupedMatmulFinalizeRoutingWeightNz`: A8W8 with an NZ weight.
    WeightNz,
    /// `aclnnGroupedMatmulFinalizeRoutingWeightNzV2`: NZ weight with offset, tuning config, or A8W4 NZ.
    WeightNzV2,
    /// `aclnnGroupedMatmulFinalizeRoutingV3`: A8W4 with an ND weight.
    V3,
}

impl EntryPoint {
    /// Chooses the entry point (SPEC 4.1); `None` for the non-quantized variant, which has no
    /// Ascend kernel.
    pub fn choose(scenario: &Scenario, has_offset: bool, has_tuning_config: bool) -> Option<Self> {
        match scenario {
            Scenario::A8W8 if has_offset || has_tuning_config => Some(EntryPoint::WeightNzV2),
            Scenario::A8W8 => Some(EntryPoint::WeightNz),
            Scenario::A8W4 { nz: true } => Some(EntryPoint::WeightNzV2),
            Scenario::A8W4 { nz: false } => Some(EntryPoint::V3),
            Scenario::NonQuantized(_) => None,
        }
    }

    /// The C name of the launch function.
    pub fn name(self) -> &'static str {
        match self {
            EntryPoint::WeightNz => "aclnnGroupedMatmulFinalizeRoutingWeightNz",
            EntryPoint::WeightNzV2 => "aclnnGroupedMatmulFinalizeRoutingWeightNzV2",
            EntryPoint::V3 => "aclnnGroupedMatmulFinalizeRoutingV3",
        }
    }

    /// Whether the parameter list has the V2 extras (offset, antiquant scale/offset after bias;
    /// tuning config after groupListType).
    pub fn has_v2_parameters(self) -> bool {
        !matches!(self, EntryPoint::WeightNz)
    }
}

/// Every CANN function the lowering may call, with its LLVM-dialect signature.
pub const RUNTIME_FUNCTIONS: &[(&str, &str)] = &[
    (
        "aclCreateTensor",
        "(!llvm.ptr, i64, i32, !llvm.ptr, i64, i32, !llvm.ptr, i64, !llvm.ptr) -> !llvm.ptr",
    ),
    ("aclDestroyTensor", "(!llvm.ptr) -> i32"),
    ("aclCreateIntArray", "(!llvm.ptr, i64) -> !llvm.ptr"),
    ("aclDestroyIntArray", "(!llvm.ptr) -> i32"),
    ("aclrtMalloc", "(!llvm.ptr, i64, i32) -> i32"),
    ("aclrtFree", "(!llvm.ptr) -> i32"),
    ("aclrtSynchronizeStream", "(!llvm.ptr) -> i32"),
];

/// The LLVM-dialect signature of `<entry>GetWorkspaceSize`.
pub fn workspace_signature(entry: EntryPoint) -> String {
    let tensors = if entry.has_v2_parameters() { 12 } else { 9 };
    let mut parameters = vec!["!llvm.ptr"; tensors];
    parameters.extend(["i64", "f32", "i64", "i1", "i1", "i64"]);
    if entry.has_v2_parameters() {
        parameters.push("!llvm.ptr");
    }
    parameters.extend(["!llvm.ptr", "!llvm.ptr", "!llvm.ptr"]);
    format!("({}) -> i32", parameters.join(", "))
}

/// The LLVM-dialect signature of the launch function.
pub const LAUNCH_SIGNATURE: &str = "(!llvm.ptr, i64, !llvm.ptr, !llvm.ptr) -> i32";

//! The Ascend legality profile (SPEC section 4): what the aclnn kernel accepts, which is
//! narrower than what is valid IR. Checked on verified IR only, on request (`--target ascend`).

use crate::op_view::AttrValue;
use crate::op_view::NpuOp;
use crate::scenario::Scenario;
use crate::types::TensorInfo;
use std::fmt;

/// Which CANN release's restrictions apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CannVersion {
    /// Late-2025 releases: counts-only group lists, shared_input and logit paired, and the
    /// A8W8 k/n whitelist (k = 2048, n = 7168).
    Older,
    /// Current releases.
    #[default]
    Newer,
}

impl std::str::FromStr for CannVersion {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "older" => Ok(CannVersion::Older),
            "newer" => Ok(CannVersion::Newer),
            other => Err(format!("unknown CANN version '{other}': expected 'older' or 'newer'")),
        }
    }
}

impl fmt::Display for CannVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CannVersion::Older => "older",
            CannVersion::Newer => "newer",
        })
    }
}

/// One failed constraint of the profile, with the value found and what is allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileViolation {
    /// A stable name for the constraint, e.g. `k-multiple-of-16`.
    pub constraint: &'static str,
    /// What is constrained, e.g. `k` or `operand 'w'`.
    pub subject: String,
    /// The allowed values.
    pub allowed: String,
    /// The value found.
    pub actual: String,
}

impl fmt::Display for ProfileViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {} must be {}, is {}",
            self.constraint, self.subject, self.allowed, self.actual
        )
    }
}

struct Profile {
    found: Vec<ProfileViolation>,
}

impl Profile {
    fn fail(
        &mut self,
        constraint: &'static str,
        subject: impl Into<String>,
        allowed: impl Into<String>,
        actual: impl Into<String>,
    ) {
        self.found.push(ProfileViolation {
            constraint,
            subject: subject.into(),
            allowed: allowed.into(),
            actual: actual.into(),
        });
    }

    /// Checks a statically known value against an inclusive range; unknown values pass (the
    /// kernel checks them at run time).
    fn range(&mut self, constraint: &'static str, subject: &str, value: Option<u64>, low: u64, high: u64) {
        if let Some(value) = value
            && !(low..=high).contains(&value)
        {
            self.fail(constraint, subject, format!("in [{low}, {high}]"), value.to_string());
        }
    }

    fn multiple(&mut self, constraint: &'static str, subject: &str, value: Option<u64>, of: u64) {
        if let Some(value) = value
            && value % of != 0
        {
            self.fail(constraint, subject, format!("a multiple of {of}"), value.to_string());
        }
    }
}

fn int_attr(op: &NpuOp<'_, '_>, name: &str, default: i64) -> i64 {
    match op.attribute(name).map(AttrValue::of) {
        Some(AttrValue::Int { value, .. }) => value,
        _ => default,
    }
}

/// What the profile looks at: the types of a fused op's operands and result and two of its
/// attributes. Built from an existing op, or by a pass from the types an op *would* have, so
/// that legality can be decided before any IR is created.
#[derive(Clone, Debug)]
pub struct GmmfrSignature {
    /// Operand types by declared name (absent optionals are not listed).
    pub operands: Vec<(&'static str, TensorInfo)>,
    /// The result type.
    pub out: TensorInfo,
    /// The `dtype` attribute.
    pub dtype: i64,
    /// The `group_list_type` attribute.
    pub group_list_type: i64,
}

impl GmmfrSignature {
    /// Reads the signature of an existing fused op.
    pub fn of(op: &NpuOp<'_, '_>) -> Option<Self> {
        let operands = op
            .schema
            .operands
            .iter()
            .filter_map(|decl| op.operand_info(decl.name).map(|info| (decl.name, info)))
            .collect();
        Some(Self {
            operands,
            out: op.result_info(0)?,
            dtype: int_attr(op, "dtype", 0),
            group_list_type: int_attr(op, "group_list_type", 1),
        })
    }

    /// The type of an operand, if present.
    pub fn operand(&self, name: &str) -> Option<&TensorInfo> {
        self.operands.iter().find(|(n, _)| *n == name).map(|(_, info)| info)
    }
}

/// Every profile constraint a verified `npu.grouped_matmul_finalize_routing` fails (all of
/// them, not only the first), for the given CANN release. Empty means the kernel accepts it.
pub fn check_gmmfr(op: &NpuOp<'_, '_>, version: CannVersion) -> Vec<ProfileViolation> {
    GmmfrSignature::of(op).map_or_else(Vec::new, |signature| check_signature(&signature, version))
}

/// The profile check on a signature (see [`check_gmmfr`]).
pub fn check_signature(sig: &GmmfrSignature, version: CannVersion) -> Vec<ProfileViolation> {
    let mut p = Profile { found: Vec::new() };
    let (Some(x), Some(w)) = (sig.operand("x"), sig.operand("w")) else {
        return p.found;
    };
    let Some(scenario) = Scenario::classify(x, w) else {
        return p.found;
    };
    let m = x.dim(0);
    let k = x.dim(1);
    let n = sig.out.dim(1);
    let e = sig.operand("group_list").and_then(|g| g.dim(0));
    let batch = sig.out.dim(0);
    let shared = sig.operand("shared_input");
    let bsdp = shared.and_then(|s| s.dim(0));

    match &scenario {
        Scenario::NonQuantized(elem) => {
            p.fail(
                "non-quantized-no-kernel",
                "scenario",
                "A8W8 or A8W4 (Ascend has no non-quantized GMMFR kernel)",
                format!("non-quantized {elem}"),
            );
            return p.found;
        }
        Scenario::A8W8 => {
            p.multiple("k-multiple-of-16", "k", k, 16);
            p.multiple("n-multiple-of-32", "n", n, 32);
            if let Some(n) = n
                && n < 256
            {
                p.fail("n-min-256", "n", ">= 256", n.to_string());
            }
            if sig.operand("bias").is_some() {
                p.fail(
                    "a8w8-bias-not-accepted",
                    "operand 'bias'",
                    "absent (torch_npu does not accept an A8W8 bias)",
                    "present",
                );
            }
            if version == CannVersion::Older {
                if let Some(k) = k
                    && k != 2048
                {
                    p.fail("older-k-whitelist", "k", "2048 on the older release", k.to_string());
                }
                if let Some(n) = n
                    && n != 7168
                {
                    p.fail("older-n-whitelist", "n", "7168 on the older release", n.to_string());
                }
            }
        }
        Scenario::A8W4 { nz } => {
            p.multiple("a8w4-k-multiple-of-64", "k", k, 64);
            if let Some(k) = k
                && !(k > 128 && k <= 18432)
            {
                p.fail("a8w4-k-range", "k", "in (128, 18432]", k.to_string());
            }
            let (of, constraint) = if *nz {
                (64, "a8w4-n-multiple-of-64-nz")
            } else {
                (8, "a8w4-n-multiple-of-8-nd")
            };
            p.multiple(constraint, "n", n, of);
            if let Some(n) = n
                && n <= 64
            {
                p.fail("a8w4-n-min", "n", "> 64", n.to_string());
            }
        }
    }

    p.range("e-range", "e (experts)", e, 1, 256);
    p.range("m-range", "m (rows of x)", m, 1, 131072);
    p.range("batch-range", "output rows (batch)", batch, 1, 16384);
    if shared.is_some() {
        p.range("bsdp-range", "bsdp (rows of shared_input)", bsdp, 1, 2048);
    }
    if sig.dtype != 0 {
        p.fail(
            "dtype-f32-only",
            "attribute 'dtype'",
            "0 (f32 output)",
            sig.dtype.to_string(),
        );
    }
    for (name, info) in &sig.operands {
        if info.is_empty() {
            p.fail(
                "no-empty-tensors",
                format!("operand '{name}'"),
                "non-empty",
                info.text.clone(),
            );
        }
    }
    if sig.out.is_empty() {
        p.fail("no-empty-tensors", "result 'out'", "non-empty", sig.out.text.clone());
    }
    if version == CannVersion::Older {
        if sig.group_list_type != 1 {
            p.fail(
                "older-group-list-counts",
                "attribute 'group_list_type'",
                "1 (counts) on the older release",
                sig.group_list_type.to_string(),
            );
        }
        let (has_shared, has_logit) = (shared.is_some(), sig.operand("logit").is_some());
        if has_shared != has_logit {
            p.fail(
                "older-shared-input-with-logit",
                "operands 'shared_input' and 'logit'",
                "both present or both absent on the older release",
                format!("shared_input {}, logit {}", presence(has_shared), presence(has_logit)),
            );
        }
    }
    p.found
}

fn presence(present: bool) -> &'static str {
    if present { "present" } else { "absent" }
}

/// Every profile violation of every fused op in a module, as located errors
/// (`'npu.grouped_matmul_finalize_routing' op is outside the Ascend profile ...`).
pub fn check_module(module: &melior::ir::Module<'_>, version: CannVersion) -> Vec<crate::diagnostics::Diagnostic> {
    use melior::ir::operation::{OperationLike, WalkOrder, WalkResult};
    let mut found = Vec::new();
    module.as_operation().walk(WalkOrder::PreOrder, |operation| {
        if let Ok(Some(op)) = NpuOp::new(operation)
            && op.schema.name == crate::schema::GMMFR.name
        {
            let location = crate::location::SourceLoc::from_location(operation.location());
            for violation in check_gmmfr(&op, version) {
                found.push(crate::diagnostics::Diagnostic::error(
                    location.clone(),
                    format!(
                        "'{}' op is outside the Ascend profile (CANN {version}): {violation}",
                        op.name()
                    ),
                ));
            }
        }
        WalkResult::Advance
    });
    found
}

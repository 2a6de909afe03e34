//! One candidate: the fusion legality's decision on a finalize op, and the facts the report
//! gives about it (shapes, types, reasons with their profile values, graph facts, worth).

use super::dataflow::FunctionGraph;
use super::roofline::{self, Compute, Roofline, Traffic};
use super::{Candidate, NPU_PAIR_SPELLING, OperandType, ReasonEntry, Shapes, Verdict};
use gmmfr_dialect::graph::producer;
use gmmfr_dialect::location::SourceLoc;
use gmmfr_dialect::op_view::{AttrValue, NpuOp};
use gmmfr_dialect::profile::CannVersion;
use gmmfr_dialect::scenario::Scenario;
use gmmfr_dialect::schema;
use gmmfr_dialect::types::{Elem, TensorInfo};
use gmmfr_passes::recognition::SPELLING_ATTRIBUTE;
use gmmfr_passes::fusion::{Decision, FusionOptions, Plan, Reason, Target, decide};
use melior::ir::operation::OperationLike;
use melior::ir::{OperationRef, Value, ValueLike};
use petgraph::graph::NodeIndex;

fn op_name(op: OperationRef<'_, '_>) -> String {
    op.name().as_string_ref().as_str().unwrap_or("").to_string()
}

fn info(value: Value<'_, '_>) -> Option<TensorInfo> {
    TensorInfo::of(value.r#type())
}

fn int_attr(op: OperationRef<'_, '_>, name: &str) -> Option<i64> {
    match op.attribute(name).ok().map(AttrValue::of) {
        Some(AttrValue::Int { value, .. }) => Some(value),
        _ => None,
    }
}

/// The spelling the front end recorded on the finalize op, or the npu pair itself.
fn spelling(finalize_op: OperationRef<'_, '_>) -> String {
    finalize_op
        .attribute(SPELLING_ATTRIBUTE)
        .ok()
        .and_then(|a| melior::ir::attribute::StringAttribute::try_from(a).ok())
        .map(|a| a.value().to_string())
        .unwrap_or_else(|| NPU_PAIR_SPELLING.to_string())
}

/// Decides the finalize op at `node` with the fusion's legality and, if it is a candidate,
/// gathers what the report says about it.
pub(super) fn build(
    graph: &FunctionGraph<'_, '_>,
    node: NodeIndex,
    fusion: &FusionOptions,
    roofline: &Roofline,
    id: usize,
) -> Option<Candidate> {
    let finalize_op = graph.op(node);
    let (verdict, reasons, plan) = match decide(finalize_op, fusion) {
        Decision::NotCandidate => return None,
        Decision::Fuse(plan) => (Verdict::Fused, Vec::new(), Some(plan)),
        Decision::Block(reasons) => (Verdict::Blocked, reasons, None),
    };
    let finalize = NpuOp::new(finalize_op).ok().flatten()?;
    // The grouped matmul the legality paired it with: the rows' producer, through the reshape
    // of the padded modes.
    let (definer, _) = producer(finalize.operand("expanded_permuted_rows")?)?;
    let (gmm_op, reshape) = if op_name(definer) == "tensor.expand_shape" {
        (producer(definer.operand(0).ok()?)?.0, Some(definer))
    } else {
        (definer, None)
    };
    let gmm = NpuOp::new(gmm_op).ok().flatten()?;
    if gmm.schema.name != schema::GROUPED_MATMUL.name {
        return None;
    }
    let gmm_node = graph.node(gmm_op)?;
    let reshape_node = reshape.and_then(|r| graph.node(r));
    let facts = graph.facts(gmm_node, node, reshape_node.unwrap_or(node));
    let subgraph = graph.subgraph(gmm_node, node, reshape_node, &facts.obstacles, &facts.enclosing);

    let types = Types::of(&gmm, &finalize);
    let scenario = types
        .gmm("x")
        .zip(types.gmm("weight"))
        .and_then(|(x, w)| Scenario::classify(x, w));
    let shapes = shapes(&types);
    let traffic = traffic(
        &gmm,
        &finalize,
        &types,
        &shapes,
        scenario.as_ref(),
        plan.as_deref(),
        fusion,
    );
    let mut worth = roofline::estimate(traffic.as_ref(), roofline);
    // The flops need only m, k and n, even where a dynamic size leaves the traffic unknown.
    if let (None, Some(m), Some(k), Some(n)) = (worth.flops, shapes.m, shapes.k, shapes.n) {
        worth.flops = Some(2 * m * k * n);
    }
    Some(Candidate {
        id,
        function: graph.name.clone(),
        location: SourceLoc::from_location(finalize_op.location()),
        gmm_location: SourceLoc::from_location(gmm_op.location()),
        call_stack: SourceLoc::call_stack(finalize_op.location()),
        spelling: spelling(finalize_op),
        scenario: scenario.as_ref().map(|s| s.to_string()),
        shapes,
        operands: types.operand_types(),
        verdict,
        reasons: reasons.iter().map(reason_entry).collect(),
        notes: plan.map(|p| p.notes.clone()).unwrap_or_default(),
        graph_facts: facts.facts,
        worth,
        subgraph,
    })
}

/// The types of both ops' operands and results, each read once (reading a type prints it).
struct Types {
    gmm: Vec<(&'static str, TensorInfo)>,
    gmm_out: Option<TensorInfo>,
    finalize: Vec<(&'static str, TensorInfo)>,
    out: Option<TensorInfo>,
}

impl Types {
    fn of(gmm: &NpuOp<'_, '_>, finalize: &NpuOp<'_, '_>) -> Self {
        let operands = |op: &NpuOp<'_, '_>| {
            op.schema
                .operands
                .iter()
                .filter_map(|decl| op.operand_info(decl.name).map(|info| (decl.name, info)))
                .collect()
        };
        Self {
            gmm: operands(gmm),
            gmm_out: gmm.result_info(0),
            finalize: operands(finalize),
            out: finalize.result_info(0),
        }
    }

    fn gmm(&self, name: &str) -> Option<&TensorInfo> {
        self.gmm.iter().find(|(n, _)| *n == name).map(|(_, info)| info)
    }

    fn finalize(&self, name: &str) -> Option<&TensorInfo> {
        self.finalize.iter().find(|(n, _)| *n == name).map(|(_, info)| info)
    }

    fn operand_types(&self) -> Vec<OperandType> {
        let list = |prefix: &str, operands: &[(&'static str, TensorInfo)]| -> Vec<OperandType> {
            operands
                .iter()
                .map(|(name, info)| OperandType {
                    operand: format!("{prefix}.{name}"),
                    dtype: info.elem.to_string(),
                    r#type: info.text.clone(),
                })
                .collect()
        };
        let mut all = list("grouped_matmul", &self.gmm);
        all.extend(list("moe_finalize_routing", &self.finalize));
        all
    }
}

/// Bytes of the operands named `names` that are present, `None` if one of them is dynamic.
fn operand_bytes(operands: &[(&'static str, TensorInfo)], names: &[&str]) -> Option<u64> {
    operands
        .iter()
        .filter(|(name, _)| names.contains(name))
        .try_fold(0u64, |acc, (_, info)| Some(acc + bytes(info)?))
}

fn shapes(types: &Types) -> Shapes {
    let x = types.gmm("x");
    let batch = types.out.as_ref().and_then(|o| o.dim(0));
    let top_k = types.finalize("scales").and_then(|s| s.dim(1)).or_else(|| {
        let entries = numel(types.finalize("expanded_src_to_dst_row")?)?;
        batch.filter(|b| *b > 0).map(|b| entries / b)
    });
    Shapes {
        m: x.and_then(|x| x.dim(0)),
        k: x.and_then(|x| x.dim(1)),
        n: types.gmm_out.as_ref().and_then(|y| y.dim(1)),
        e: types.gmm("group_list").and_then(|g| g.dim(0)),
        batch,
        top_k,
    }
}

fn reason_entry(reason: &Reason) -> ReasonEntry {
    let code = reason.code();
    let full = reason.to_string();
    let message = full.strip_prefix(&format!("{code}: ")).unwrap_or(&full).to_string();
    let profile = match reason {
        Reason::AscendProfile(violation) => Some(violation.clone()),
        _ => None,
    };
    ReasonEntry { code, message, profile }
}

fn elem_bits(elem: &Elem) -> Option<u64> {
    match elem {
        Elem::I4 => Some(4),
        Elem::I8 => Some(8),
        Elem::F16 | Elem::BF16 => Some(16),
        Elem::I32 | Elem::F32 => Some(32),
        Elem::I64 => Some(64),
        Elem::Other(_) => None,
    }
}

fn numel(info: &TensorInfo) -> Option<u64> {
    info.dims
        .iter()
        .try_fold(1u64, |acc, d| d.and_then(|d| acc.checked_mul(d)))
}

/// A tensor's size in bytes, if static.
fn bytes(info: &TensorInfo) -> Option<u64> {
    Some((numel(info)? * elem_bits(&info.elem)?).div_ceil(8))
}

/// The bytes each kernel moves on both sides of the rewrite (see [`roofline`]). For a fused
/// candidate the plan says what the rewrite builds; for a blocked one the same is assumed of
/// the rewrite it would get (row_index and logit materialized).
fn traffic(
    gmm: &NpuOp<'_, '_>,
    finalize: &NpuOp<'_, '_>,
    types: &Types,
    shapes: &Shapes,
    scenario: Option<&Scenario>,
    plan: Option<&Plan<'_, '_>>,
    fusion: &FusionOptions,
) -> Option<Traffic> {
    let (m, k, n, batch) = (shapes.m?, shapes.k?, shapes.n?, shapes.batch?);
    let compute = match scenario? {
        Scenario::A8W8 => Compute::Int8,
        Scenario::A8W4 { .. } => Compute::Half,
        Scenario::NonQuantized(Elem::F32) => Compute::F32,
        Scenario::NonQuantized(_) => Compute::Half,
    };
    let x = types.gmm("x")?;
    let weight = types.gmm("weight")?;
    let group_list = types.gmm("group_list")?;
    let out = types.out.as_ref()?;
    let gmm_output = bytes(types.gmm_out.as_ref()?)?;
    let finalize_inputs = operand_bytes(
        &types.finalize,
        &[
            "skip1",
            "skip2",
            "bias",
            "scales",
            "expanded_src_to_dst_row",
            "expert_for_source_row",
        ],
    )?;

    // The rewrite's choices: from the plan, or what it would choose for a blocked pair.
    let quantized = x.elem == Elem::I8;
    let weight_to_nz = plan.map_or(quantized && weight.rank() == 3, |p| p.weight_to_nz);
    let group_list_to_counts = plan.map_or(
        fusion.target == Target::Ascend
            && fusion.cann_version == CannVersion::Older
            && int_attr(gmm.operation, "group_list_type").unwrap_or(0) == 0,
        |p| p.group_list_to_counts,
    );
    let index_transpose = match plan {
        Some(plan) => plan
            .index_chain
            .iter()
            .find(|op| op_name(**op) == "linalg.transpose")
            .and_then(|op| op.result(0).ok())
            .map(|r| info(r.into()).as_ref().and_then(bytes))
            .unwrap_or(Some(0))?,
        None => transposed_index_map(finalize).unwrap_or(Some(0))?,
    };
    let has_scales = finalize.operand("scales").is_some();
    let reused_row_index = match plan.and_then(|p| p.row_index) {
        Some(value) => Some(bytes(&info(value)?)?),
        None => None,
    };
    let shared = match plan {
        Some(plan) => match &plan.shared {
            Some(shared) => bytes(&info(shared.value)?)?,
            None => 0,
        },
        // skip1 as a bf16 shared_input.
        None => match types.finalize("skip1") {
            Some(skip1) => numel(skip1)? * 2,
            None => 0,
        },
    };

    let weight_bytes = bytes(weight)?;
    let fused_weight = if weight_to_nz {
        // (e, ceil(n/32), ceil(k/16), 16, 32) int8.
        weight.dim(0)? * n.div_ceil(32) * 32 * k.div_ceil(16) * 16
    } else {
        weight_bytes
    };
    let logit = if has_scales { m * 4 } else { 0 };
    let row_index = reused_row_index.unwrap_or(m * 4);
    let fused_inputs = bytes(x)?
        + fused_weight
        + bytes(group_list)?
        + operand_bytes(&types.gmm, &["scale", "per_token_scale"])?
        + shared
        + logit
        + row_index;
    let index_materialization = if reused_row_index.is_some() && !has_scales {
        0
    } else {
        let scales = operand_bytes(&types.finalize, &["scales"])?;
        let row_index_write = if reused_row_index.is_some() { 0 } else { m * 4 };
        m * 4 + scales + row_index_write + logit
    };
    let fused_output = batch * n * 4;
    let output_cast = if out.elem == Elem::F32 {
        0
    } else {
        fused_output + bytes(out)?
    };
    Some(Traffic {
        flops: 2 * m * k * n,
        compute,
        gmm_inputs: operand_bytes(
            &types.gmm,
            &["x", "weight", "group_list", "scale", "per_token_scale", "bias"],
        )?,
        gmm_output,
        finalize_inputs,
        finalize_output: bytes(out)?,
        index_transpose,
        fused_inputs,
        fused_output,
        index_materialization,
        output_cast,
        weight_cast: if weight_to_nz { weight_bytes + fused_weight } else { 0 },
        group_list_conversion: if group_list_to_counts {
            2 * bytes(group_list)?
        } else {
            0
        },
    })
}

/// For drop_pad_mode 0: the bytes of the `linalg.transpose` result that expanded_src_to_dst_row
/// is collapsed from, if it is one. `Some(None)`: a transpose of dynamic size.
fn transposed_index_map(finalize: &NpuOp<'_, '_>) -> Option<Option<u64>> {
    if int_attr(finalize.operation, "drop_pad_mode").unwrap_or(0) != 0 {
        return None;
    }
    let (collapse, _) = producer(finalize.operand("expanded_src_to_dst_row")?)?;
    if op_name(collapse) != "tensor.collapse_shape" {
        return None;
    }
    let (transpose, _) = producer(collapse.operand(0).ok()?)?;
    if op_name(transpose) != "linalg.transpose" {
        return None;
    }
    Some(info(transpose.result(0).ok()?.into()).as_ref().and_then(bytes))
}

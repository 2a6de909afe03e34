//! When `npu.moe_finalize_routing(npu.grouped_matmul(...))` equals the fused op (SPEC 2.4), and
//! what the rewrite needs to build it. This is the only place these rules live: the pass's
//! analysis (remarks) and its rewrite pattern both call [`decide`].

use super::reason::Reason;
use gmmfr_dialect::graph::{producer, users};
use gmmfr_dialect::op_view::{AttrValue, NpuOp};
use gmmfr_dialect::profile::{CannVersion, GmmfrSignature, check_signature};
use gmmfr_dialect::schema;
use gmmfr_dialect::types::{Elem, TensorInfo};
use melior::ir::{OperationRef, Value, ValueLike, operation::OperationLike};

/// How strictly the fused op must reproduce the unfused pair's numerics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    /// Allow the fused op to be more precise than the pair (it skips the GMM's bf16/f16
    /// rounding of each expert row). SPEC 2.4 (5): a refinement, recorded in the remark.
    #[default]
    Refine,
    /// Fuse only when the GMM does not round its rows (f32 output).
    Exact,
}

/// Which backend's legality the fused op must meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Target {
    /// Any valid IR (the CPU loop target).
    #[default]
    Loops,
    /// Also the Ascend profile (SPEC 4).
    Ascend,
}

/// Options of the fusion.
#[derive(Clone, Copy, Debug, Default)]
pub struct FusionOptions {
    /// Precision policy.
    pub precision: Precision,
    /// Target whose legality applies.
    pub target: Target,
    /// CANN release for `target = Ascend`.
    pub cann_version: CannVersion,
}

/// Where the rewrite gets gidx (permuted row -> flat source index).
pub enum GidxSource<'c, 'a> {
    /// An existing `npu.moe_init_routing` with row_idx_type 1 on the same inputs (its gidx), and
    /// the routing of the inverse map when that becomes a duplicate after the rewrite (its inverse
    /// dies with the finalize op, and the existing routing comes before every other use of its
    /// expanded rows and counts, which it then serves).
    Existing(Value<'c, 'a>, Option<OperationRef<'c, 'a>>),
    /// The routing op that produced the inverse; its inverse result has no other use, so the
    /// rewrite replaces it with the same routing producing gidx (row_idx_type 1).
    RetypeRouting(OperationRef<'c, 'a>),
}

/// skip1 as the fused op's shared_input.
pub struct SharedInput<'c, 'a> {
    /// The bf16 (bsdp, n) value.
    pub value: Value<'c, 'a>,
    /// The first output row it is written to.
    pub offset: u64,
}

/// Everything the rewrite needs to build the fused op for one pair.
pub struct Plan<'c, 'a> {
    /// The finalize op (the pattern's root).
    pub finalize: OperationRef<'c, 'a>,
    /// The grouped matmul.
    pub gmm: OperationRef<'c, 'a>,
    /// Where gidx comes from.
    pub gidx: GidxSource<'c, 'a>,
    /// An existing `gidx // K` to reuse as row_index.
    pub row_index: Option<Value<'c, 'a>>,
    /// Ops between the routing's inverse and the finalize op (mode 0's transpose chain) that
    /// become dead after the rewrite, in use order.
    pub index_chain: Vec<OperationRef<'c, 'a>>,
    /// topK.
    pub top_k: u64,
    /// Tokens (rows of the finalize output).
    pub tokens: u64,
    /// Router weights (R, K), if any.
    pub scales: Option<Value<'c, 'a>>,
    /// skip1 as shared_input, if any.
    pub shared: Option<SharedInput<'c, 'a>>,
    /// The GMM weight is ND int8 and needs a format_cast to NZ.
    pub weight_to_nz: bool,
    /// The GMM group list is cumsum and must become counts (older Ascend release).
    pub group_list_to_counts: bool,
    /// `arith.extf` users of a half-float finalize result that take the fused op's f32 result
    /// directly (precision=refine: the round trip through the half type is skipped as well).
    pub widened_users: Vec<OperationRef<'c, 'a>>,
    /// Notes for the remark.
    pub notes: Vec<String>,
}

/// The decision for one finalize op.
pub enum Decision<'c, 'a> {
    /// Not a GMM + finalize pair.
    NotCandidate,
    /// Fuse with this plan.
    Fuse(Box<Plan<'c, 'a>>),
    /// Do not fuse, for these reasons (all that apply).
    Block(Vec<Reason>),
}

fn name_of(op: &OperationRef<'_, '_>) -> String {
    op.name().as_string_ref().as_str().unwrap_or("").to_string()
}

fn int_attr(op: &OperationRef<'_, '_>, name: &str) -> Option<i64> {
    match op.attribute(name).ok().map(AttrValue::of) {
        Some(AttrValue::Int { value, .. }) => Some(value),
        _ => None,
    }
}

fn i64_array_attr(op: &OperationRef<'_, '_>, name: &str) -> Option<Vec<i64>> {
    match op.attribute(name).ok().map(AttrValue::of) {
        Some(AttrValue::I64Array(values)) => Some(values),
        _ => None,
    }
}

fn same_value(a: Value<'_, '_>, b: Value<'_, '_>) -> bool {
    a.to_raw().ptr == b.to_raw().ptr
}

fn info(value: Value<'_, '_>) -> Option<TensorInfo> {
    TensorInfo::of(value.r#type())
}

/// Decides whether the finalize op `root` and the grouped matmul feeding it fuse.
pub fn decide<'c, 'a>(root: OperationRef<'c, 'a>, options: &FusionOptions) -> Decision<'c, 'a> {
    let Ok(Some(finalize)) = NpuOp::new(root) else {
        return Decision::NotCandidate;
    };
    if finalize.schema.name != schema::MOE_FINALIZE_ROUTING.name {
        return Decision::NotCandidate;
    }
    let Some(rows) = finalize.operand("expanded_permuted_rows") else {
        return Decision::NotCandidate;
    };
    let mode = int_attr(&root, "drop_pad_mode").unwrap_or(0);
    // Padded modes read (E, C, H) rows: a GMM output reshaped to that is still a candidate, one
    // that cannot fuse.
    let rows = match producer(rows) {
        Some((reshape, _)) if (mode == 1 || mode == 3) && name_of(&reshape) == "tensor.expand_shape" => {
            match reshape.operand(0) {
                Ok(source) => source,
                Err(_) => return Decision::NotCandidate,
            }
        }
        _ => rows,
    };
    let Some((gmm_op, _)) = producer(rows) else {
        return Decision::NotCandidate;
    };
    let Ok(Some(gmm)) = NpuOp::new(gmm_op) else {
        return Decision::NotCandidate;
    };
    if gmm.schema.name != schema::GROUPED_MATMUL.name {
        return Decision::NotCandidate;
    }

    let mut reasons = Vec::new();
    let mut notes = Vec::new();

    // Graph conditions.
    let uses = users(rows).len();
    if uses != 1 {
        reasons.push(Reason::IntermediateHasOtherUsers { uses });
    }
    let same_block = match (gmm_op.block(), root.block()) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    };
    if !same_block {
        reasons.push(Reason::DifferentBlocks);
    }

    // Finalize features without a fused counterpart.
    if finalize.operand("skip2").is_some() {
        reasons.push(Reason::Skip2Present);
    }
    if finalize.operand("bias").is_some() {
        reasons.push(Reason::FinalizeBiasPresent);
    }
    if mode == 1 || mode == 3 {
        reasons.push(Reason::PaddedDropMode(mode));
    }

    // GMM features.
    let gmm_list_type = int_attr(&gmm_op, "group_list_type").unwrap_or(0);
    if gmm_list_type == 2 {
        reasons.push(Reason::GroupListPairs);
    }
    let x = gmm.operand_info("x");
    let quantized = x.as_ref().is_some_and(|x| x.elem == Elem::I8);
    if let Some(bias) = gmm.operand_info("bias")
        && (quantized || bias.elem != Elem::F32)
    {
        reasons.push(Reason::GmmBiasUnsupported(format!(
            "the grouped_matmul bias {} has no counterpart in the fused op{}",
            bias.text,
            if quantized {
                " (its A8W8 bias is bf16, added after dequantization)"
            } else {
                " (it takes an f32 bias)"
            }
        )));
    }
    let Some(gmm_out) = gmm.result_info(0) else {
        return Decision::NotCandidate;
    };
    if matches!(gmm_out.elem, Elem::BF16 | Elem::F16) {
        match options.precision {
            Precision::Exact => reasons.push(Reason::PrecisionExact(format!(
                "precision=exact: the grouped_matmul rounds each expert row to {}, the fused op does not",
                gmm_out.elem
            ))),
            Precision::Refine => notes.push(format!(
                "refines precision: the grouped_matmul rounded expert rows to {}, the fused op keeps f32",
                gmm_out.elem
            )),
        }
    }

    // Index correspondence (SPEC 2.4 (1), (2)).
    let Some(out) = finalize.result_info(0) else {
        return Decision::NotCandidate;
    };
    let tokens = out.dim(0);
    let scales = finalize.operand("scales");
    let top_k = scales.and_then(info).and_then(|s| s.dim(1)).or_else(|| {
        finalize
            .operand_info("expanded_src_to_dst_row")
            .and_then(|s| s.dim(0))
            .zip(tokens)
            .and_then(|(rk, r)| (r > 0).then(|| rk / r))
    });
    let mut gidx = None;
    let mut row_index = None;
    let mut index_chain = Vec::new();
    if mode == 0 || mode == 2 {
        match index_source(&finalize, mode) {
            Err(reason) => reasons.push(reason),
            Ok((inverse, chain, routing)) => {
                index_chain = chain;
                match check_routing(routing, tokens, top_k, x.as_ref().and_then(|x| x.dim(0))) {
                    Err(mut found) => reasons.append(&mut found),
                    Ok(()) => match gidx_source(routing, inverse, &index_chain, root) {
                        Ok((source, note)) => {
                            notes.push(note);
                            if let (GidxSource::Existing(g, _), Some(k)) = (&source, top_k) {
                                row_index = existing_row_index(*g, k);
                                if row_index.is_some() {
                                    notes.push("reused the existing gidx // K as row_index".to_string());
                                }
                            }
                            gidx = Some(source);
                        }
                        Err(reason) => reasons.push(reason),
                    },
                }
            }
        }
    }

    // skip1 -> shared_input (SPEC 2.4 (4)).
    let shared = match finalize.operand("skip1") {
        None => None,
        Some(skip1) => match shared_input(skip1) {
            Ok(shared) => {
                notes.push(format!("skip1 became shared_input at row offset {}", shared.offset));
                Some(shared)
            }
            Err(reason) => {
                reasons.push(reason);
                None
            }
        },
    };

    let weight = gmm.operand_info("weight");
    let weight_to_nz = quantized && weight.as_ref().is_some_and(|w| w.rank() == 3);
    if weight_to_nz {
        notes.push("inserted npu.format_cast of the ND int8 weight to FRACTAL_NZ".to_string());
    }
    let group_list_to_counts =
        options.target == Target::Ascend && options.cann_version == CannVersion::Older && gmm_list_type == 0;
    if group_list_to_counts {
        notes.push("converted the cumsum group list to counts (older CANN release)".to_string());
    }

    // Target legality, on the signature the fused op would have.
    if options.target == Target::Ascend
        && let Some(signature) = fused_signature(
            &gmm,
            &finalize,
            &out,
            shared.as_ref(),
            weight_to_nz,
            gmm_list_type,
            group_list_to_counts,
        )
    {
        for violation in check_signature(&signature, options.cann_version) {
            reasons.push(Reason::AscendProfile(violation));
        }
    }

    if !reasons.is_empty() {
        return Decision::Block(reasons);
    }
    let (Some(gidx), Some(top_k), Some(tokens)) = (gidx, top_k, tokens) else {
        return Decision::Block(vec![Reason::IndexCorrespondenceUnproven(
            "the number of tokens and topK must be static to materialize row_index and logit".to_string(),
        )]);
    };
    // Under precision=refine, widening the half-float result back to f32 takes the fused op's
    // f32 result as it is (one rounding fewer, as for the expert rows).
    let mut widened_users = Vec::new();
    if options.precision == Precision::Refine {
        if let Ok(result) = root.result(0) {
            let f32_type = out.text.rsplit_once('x').map(|(dims, _)| format!("{dims}xf32>"));
            for user in users(result.into()) {
                let widens = user.name().as_string_ref().as_str() == Ok("arith.extf")
                    && user.result(0).is_ok_and(|r| Some(r.r#type().to_string()) == f32_type);
                if widens && !widened_users.contains(&user) {
                    widened_users.push(user);
                }
            }
        }
        if !widened_users.is_empty() {
            notes.push(format!(
                "refines precision: {} arith.extf user(s) take the fused f32 result without rounding it to {} first",
                widened_users.len(),
                out.elem
            ));
        }
    }
    Decision::Fuse(Box::new(Plan {
        finalize: root,
        gmm: gmm_op,
        gidx,
        row_index,
        index_chain,
        top_k,
        tokens,
        scales,
        shared,
        weight_to_nz,
        group_list_to_counts,
        widened_users,
        notes,
    }))
}

type IndexSource<'c, 'a> = (Value<'c, 'a>, Vec<OperationRef<'c, 'a>>, OperationRef<'c, 'a>);

/// Finds the routing whose inverse map expanded_src_to_dst_row is: directly for mode 2, through
/// `collapse_shape(transpose(expand_shape(inverse), [1, 0]))` for mode 0. Returns the inverse
/// value, the ops of the chain, and the routing op.
fn index_source<'c, 'a>(finalize: &NpuOp<'c, 'a>, mode: i64) -> Result<IndexSource<'c, 'a>, Reason> {
    let Some(src2dst) = finalize.operand("expanded_src_to_dst_row") else {
        return Err(Reason::IndexCorrespondenceUnproven(
            "expanded_src_to_dst_row is missing".into(),
        ));
    };
    let mut chain = Vec::new();
    let inverse = if mode == 2 {
        src2dst
    } else {
        match transposed_source(src2dst, &mut chain) {
            Some(inner) => inner,
            None => {
                return Err(match routing_of(src2dst) {
                    Some(_) => Reason::IndexCorrespondenceUnproven(
                        "drop_pad_mode 0 reads expanded_src_to_dst_row slot-major: it must be the routing's inverse map transposed (tensor.expand_shape to (R, K), linalg.transpose [1, 0], tensor.collapse_shape), not the map itself".into(),
                    ),
                    None => not_from_routing(src2dst),
                });
            }
        }
    };
    let Some((routing, result)) = producer(inverse).filter(|(op, _)| name_of(op) == schema::MOE_INIT_ROUTING.name)
    else {
        return Err(not_from_routing(inverse));
    };
    if result != 1 {
        return Err(Reason::IndexCorrespondenceUnproven(format!(
            "expanded_src_to_dst_row comes from result #{result} of npu.moe_init_routing, not its expanded_row_idx"
        )));
    }
    if int_attr(&routing, "row_idx_type") == Some(1) {
        return Err(Reason::SplitMapping(
            "expanded_src_to_dst_row is gidx (row_idx_type 1) itself; finalize needs its inverse (row_idx_type 0)"
                .into(),
        ));
    }
    Ok((inverse, chain, routing))
}

fn routing_of(value: Value<'_, '_>) -> Option<()> {
    producer(value)
        .filter(|(op, _)| name_of(op) == schema::MOE_INIT_ROUTING.name)
        .map(|_| ())
}

/// Why a value not produced by the routing cannot be proven to be its inverse; recognizes the
/// "split" spelling (row_index = gidx // K passed as expanded_src_to_dst_row).
fn not_from_routing(value: Value<'_, '_>) -> Reason {
    if let Some((op, _)) = producer(value) {
        let name = name_of(&op);
        let derived_from_gidx = op
            .operand(0)
            .ok()
            .and_then(producer)
            .is_some_and(|(src, result)| name_of(&src) == schema::MOE_INIT_ROUTING.name && result == 1);
        if derived_from_gidx && (name == "arith.divsi" || name == "arith.floordivsi" || name == "arith.divui") {
            return Reason::SplitMapping(
                "expanded_src_to_dst_row is row_index (gidx // K), a permuted-row -> token scatter map, where finalize needs the (token, slot) -> permuted-row gather map".into(),
            );
        }
        return Reason::IndexCorrespondenceUnproven(format!(
            "expanded_src_to_dst_row is produced by {name}, not by npu.moe_init_routing"
        ));
    }
    Reason::IndexCorrespondenceUnproven(
        "expanded_src_to_dst_row is a block argument, not produced by npu.moe_init_routing".into(),
    )
}

/// Matches `collapse_shape(transpose(expand_shape(v) to (R, K), [1, 0]))` and returns v.
fn transposed_source<'c, 'a>(value: Value<'c, 'a>, chain: &mut Vec<OperationRef<'c, 'a>>) -> Option<Value<'c, 'a>> {
    let (collapse, _) = producer(value).filter(|(op, _)| name_of(op) == "tensor.collapse_shape")?;
    let (transpose, _) = producer(collapse.operand(0).ok()?).filter(|(op, _)| name_of(op) == "linalg.transpose")?;
    if i64_array_attr(&transpose, "permutation")? != [1, 0] {
        return None;
    }
    let (expand, _) = producer(transpose.operand(0).ok()?).filter(|(op, _)| name_of(op) == "tensor.expand_shape")?;
    let expanded = info(expand.result(0).ok()?.into())?;
    if expanded.rank() != 2 {
        return None;
    }
    chain.extend([expand, transpose, collapse]);
    expand.operand(0).ok()
}

/// Drop-less routing whose T, K agree with the finalize op and whose T*K rows are the GMM's m.
fn check_routing(
    routing: OperationRef<'_, '_>,
    tokens: Option<u64>,
    top_k: Option<u64>,
    m: Option<u64>,
) -> Result<(), Vec<Reason>> {
    let mut reasons = Vec::new();
    let experts = int_attr(&routing, "expert_num").unwrap_or(0);
    let idx = routing.operand(1).ok().and_then(info);
    let t = idx.as_ref().and_then(|i| i.dim(0));
    let k = idx.as_ref().and_then(|i| i.dim(1));
    let active = int_attr(&routing, "active_num").unwrap_or(0);
    if let (Some(t), Some(k)) = (t, k)
        && active > 0
        && (active as u64) < t * k
    {
        reasons.push(Reason::RoutingDropsTokens(format!(
            "the routing keeps active_num = {active} of T * K = {} rows",
            t * k
        )));
    }
    if let Some(range) = i64_array_attr(&routing, "active_expert_range")
        && range != [0, experts]
    {
        reasons.push(Reason::RoutingDropsTokens(format!(
            "the routing keeps experts [{}, {}) of {experts} (an expert-parallel shard): its inverse map holds -1 for (token, slot) pairs routed elsewhere",
            range.first().copied().unwrap_or(0),
            range.get(1).copied().unwrap_or(0)
        )));
    }
    let mut mismatch = |what: &str, a: Option<u64>, b: Option<u64>| {
        if let (Some(a), Some(b)) = (a, b)
            && a != b
        {
            reasons.push(Reason::RoutingShapeMismatch(format!("{what}: {a} vs {b}")));
        }
    };
    mismatch("tokens of the routing vs rows of the finalize output", t, tokens);
    mismatch("topK of the routing vs of the finalize scales", k, top_k);
    mismatch(
        "T * K of the routing vs rows m of the grouped_matmul",
        t.zip(k).map(|(t, k)| t * k),
        m,
    );
    if reasons.is_empty() { Ok(()) } else { Err(reasons) }
}

/// Where gidx comes from: an existing routing with row_idx_type 1 on the same inputs and
/// attributes (defined before the finalize op), or the routing itself retyped when nothing else
/// uses its inverse map.
fn gidx_source<'c, 'a>(
    routing: OperationRef<'c, 'a>,
    inverse: Value<'c, 'a>,
    chain: &[OperationRef<'c, 'a>],
    finalize: OperationRef<'c, 'a>,
) -> Result<(GidxSource<'c, 'a>, String), Reason> {
    let x = routing.operand(0).ok();
    for candidate in x.map(users).unwrap_or_default() {
        if name_of(&candidate) != schema::MOE_INIT_ROUTING.name || candidate == routing {
            continue;
        }
        let same_inputs = (0..2).all(|i| match (candidate.operand(i), routing.operand(i)) {
            (Ok(a), Ok(b)) => same_value(a, b),
            _ => false,
        });
        let same_attrs = ["expert_num", "active_num", "expert_tokens_num_type"]
            .iter()
            .all(|a| int_attr(&candidate, a) == int_attr(&routing, a))
            && i64_array_attr(&candidate, "active_expert_range") == i64_array_attr(&routing, "active_expert_range");
        if same_inputs && same_attrs && int_attr(&candidate, "row_idx_type") == Some(1) {
            let dominates = candidate.block() == finalize.block() && candidate.is_before_in_block(finalize);
            if !dominates {
                return Err(Reason::OperandsDoNotDominate(
                    "the gidx routing (row_idx_type 1)".into(),
                ));
            }
            if let Ok(result) = candidate.result(1) {
                let dies = users(inverse).len() == 1
                    && chain.iter().all(|op| op.result(0).ok().is_some_and(|r| users(r.into()).len() == 1));
                // The existing routing's results must dominate every other use of the duplicate's.
                let earlier = candidate.block() == routing.block()
                    && [0, 2].iter().all(|i| {
                        routing.result(*i).is_ok_and(|r| {
                            users(r.into())
                                .iter()
                                .all(|u| u.block() == candidate.block() && candidate.is_before_in_block(*u))
                        })
                    });
                let duplicate = (dies && earlier).then_some(routing);
                return Ok((
                    GidxSource::Existing(result.into(), duplicate),
                    if duplicate.is_some() {
                        "gidx from the existing row_idx_type 1 routing, which also replaces the duplicate inverse routing".to_string()
                    } else {
                        "gidx from the existing row_idx_type 1 routing".to_string()
                    },
                ));
            }
        }
    }
    // The inverse map (and each op of the transpose chain) must have exactly one use, so that it
    // dies with the finalize op.
    let single_use = users(inverse).len() == 1
        && chain
            .iter()
            .all(|op| op.result(0).ok().is_some_and(|r| users(r.into()).len() == 1));
    if single_use {
        Ok((
            GidxSource::RetypeRouting(routing),
            "gidx from the routing, switched to row_idx_type 1".to_string(),
        ))
    } else {
        Err(Reason::GidxNeedsExtraComputation)
    }
}

/// An existing row_index among gidx's users: `arith.divsi(gidx, splat K)`, or the same on
/// `arith.extsi(gidx)` (an int64 row_index).
fn existing_row_index<'c: 'a, 'a>(gidx: Value<'c, 'a>, top_k: u64) -> Option<Value<'c, 'a>> {
    let divides = |value: Value<'c, 'a>| {
        users(value).into_iter().find_map(|op| {
            if name_of(&op) != "arith.divsi" || !op.operand(0).ok().is_some_and(|v| same_value(v, value)) {
                return None;
            }
            let (constant, _) = producer(op.operand(1).ok()?).filter(|(c, _)| name_of(c) == "arith.constant")?;
            let text = constant.attribute("value").ok()?.to_string();
            let splat = text
                .strip_prefix("dense<")?
                .split('>')
                .next()?
                .trim()
                .parse::<u64>()
                .ok()?;
            (splat == top_k).then(|| op.result(0).ok().map(Into::into)).flatten()
        })
    };
    divides(gidx).or_else(|| {
        users(gidx)
            .into_iter()
            .filter(|op| name_of(op) == "arith.extsi")
            .find_map(|ext| ext.result(0).ok().and_then(|r| divides(r.into())))
    })
}

/// skip1 as shared_input: the bf16 source of `insert_slice(src into zeros)` at its row offset,
/// or skip1 itself (bf16, or `extf` of bf16) at offset 0.
fn shared_input<'c: 'a, 'a>(skip1: Value<'c, 'a>) -> Result<SharedInput<'c, 'a>, Reason> {
    let (value, offset) = match zero_insert_slice(skip1) {
        Some((source, offset)) => (source, offset),
        None => (skip1, 0),
    };
    let bf16 = |v: Value<'c, 'a>| info(v).is_some_and(|i| i.elem == Elem::BF16);
    if bf16(value) {
        return Ok(SharedInput { value, offset });
    }
    if let Some((extf, _)) = producer(value).filter(|(op, _)| name_of(op) == "arith.extf")
        && let Ok(source) = extf.operand(0)
        && bf16(source)
    {
        return Ok(SharedInput { value: source, offset });
    }
    Err(Reason::Skip1NotBf16(format!(
        "skip1 ({}) is not bf16 and not an extension of a bf16 value: the fused op's shared_input is bf16",
        info(value).map_or("?".to_string(), |i| i.text)
    )))
}

/// Matches `tensor.insert_slice %src into %zeros[off, 0] [bsdp, H] [1, 1]` where %zeros is a zero
/// constant or a zero `linalg.fill`, and the slice spans whole rows.
fn zero_insert_slice<'c: 'a, 'a>(value: Value<'c, 'a>) -> Option<(Value<'c, 'a>, u64)> {
    let (insert, _) = producer(value).filter(|(op, _)| name_of(op) == "tensor.insert_slice")?;
    if insert.operand_count() != 2 {
        return None; // dynamic offsets or sizes
    }
    let source = insert.operand(0).ok()?;
    let dest = insert.operand(1).ok()?;
    let offsets = i64_array_attr(&insert, "static_offsets")?;
    let strides = i64_array_attr(&insert, "static_strides")?;
    let sizes = i64_array_attr(&insert, "static_sizes")?;
    let dest_info = info(dest)?;
    let whole_rows = offsets.len() == 2
        && offsets[1] == 0
        && strides == [1, 1]
        && dest_info.dim(1).is_some_and(|h| sizes.get(1) == Some(&(h as i64)));
    if !whole_rows || offsets[0] < 0 || !is_zero(dest) {
        return None;
    }
    Some((source, offsets[0] as u64))
}

fn is_zero(value: Value<'_, '_>) -> bool {
    let Some((op, _)) = producer(value) else { return false };
    match name_of(&op).as_str() {
        "arith.constant" => op.attribute("value").ok().is_some_and(|a| {
            let text = a.to_string();
            text.starts_with("dense<0.000000e+00>") || text.starts_with("dense<0>")
        }),
        "linalg.fill" => op
            .operand(0)
            .ok()
            .and_then(producer)
            .filter(|(c, _)| name_of(c) == "arith.constant")
            .and_then(|(c, _)| c.attribute("value").ok())
            .is_some_and(|a| {
                let text = a.to_string();
                text.starts_with("0.000000e+00") || text.starts_with("0 ") || text == "0"
            }),
        _ => false,
    }
}

/// The types the fused op would have, for the profile check.
fn fused_signature(
    gmm: &NpuOp<'_, '_>,
    finalize: &NpuOp<'_, '_>,
    out: &TensorInfo,
    shared: Option<&SharedInput<'_, '_>>,
    weight_to_nz: bool,
    gmm_list_type: i64,
    group_list_to_counts: bool,
) -> Option<GmmfrSignature> {
    let x = gmm.operand_info("x")?;
    let m = x.dim(0);
    let mut weight = gmm.operand_info("weight")?;
    if weight_to_nz {
        let (e, k, n) = (weight.dim(0), weight.dim(1), weight.dim(2));
        weight.dims = vec![
            e,
            n.map(|n| n.div_ceil(32)),
            k.map(|k| k.div_ceil(16)),
            Some(16),
            Some(32),
        ];
    }
    let vector = |elem: Elem| TensorInfo {
        elem,
        dims: vec![m],
        text: String::new(),
    };
    let mut operands = vec![
        ("x", x.clone()),
        ("w", weight),
        ("group_list", gmm.operand_info("group_list")?),
    ];
    if let Some(scale) = gmm.operand_info("scale") {
        operands.push(("scale", scale));
    }
    if let Some(pts) = gmm.operand_info("per_token_scale") {
        operands.push(("pertoken_scale", pts));
    }
    if let Some(shared) = shared {
        operands.push(("shared_input", info(shared.value)?));
    }
    if finalize.operand("scales").is_some() {
        operands.push(("logit", vector(Elem::F32)));
    }
    operands.push(("row_index", vector(Elem::I32)));
    let n = gmm.result_info(0)?.dim(1);
    let out = TensorInfo {
        elem: Elem::F32,
        dims: vec![out.dim(0), n],
        text: String::new(),
    };
    let group_list_type = if group_list_to_counts { 1 } else { gmm_list_type };
    Some(GmmfrSignature {
        operands,
        out,
        dtype: 0,
        group_list_type,
    })
}

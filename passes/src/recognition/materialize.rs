//! Writing a recognized combine back as the canonical unfused pair the fusion pass decides on:
//! `npu.moe_init_routing` replaces the sort that produced the permutation (its row_idx_type 1
//! result is a stable argsort, one valid result of any sort by expert), the grouped matmuls take
//! the routing's counts, and `npu.moe_finalize_routing` (drop_pad_mode 2, the routing's inverse
//! map, the router weights as (tokens, topK) scales) replaces the combine. Legality of the fusion
//! itself stays with `npu-fuse-gmm-finalize`.

use super::Combine;
use super::dataflow::Dataflow;
use super::language::Moe;
use super::SPELLING_ATTRIBUTE;
use crate::frontend::aten::tensor_type;
use crate::frontend::splice::{splice, string_literal};
use egg::Id;
use gmmfr_dialect::graph::{erase, producer, users};
use gmmfr_dialect::op_view::NpuOp;
use melior::Context;
use melior::ir::{
    Attribute, BlockLike, BlockRef, operation::OperationMutLike, OperationRef, Value, ValueLike, operation::OperationLike,
};

/// Why a recognized combine could not be written back: a stable code and a sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unmaterializable {
    /// Stable code.
    pub code: &'static str,
    /// What was found.
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Unmaterializable {
    Unmaterializable {
        code,
        message: message.into(),
    }
}

fn dims_of(value: Value<'_, '_>) -> Option<(Vec<i64>, String)> {
    let info = gmmfr_dialect::types::TensorInfo::of(value.r#type())?;
    let dims: Option<Vec<i64>> = info.dims.iter().map(|d| d.map(|d| d as i64)).collect();
    Some((dims?, info.elem.to_string()))
}

/// Block order of two ops of one block (MLIR caches each block's op order, so this is amortized
/// constant time, unlike counting positions).
pub fn block_order(a: OperationRef<'_, '_>, b: OperationRef<'_, '_>) -> std::cmp::Ordering {
    if a == b {
        std::cmp::Ordering::Equal
    } else if a.is_before_in_block(b) {
        std::cmp::Ordering::Less
    } else {
        std::cmp::Ordering::Greater
    }
}

/// Whether `value` is computed after `op` (block arguments never are).
fn defined_after(value: Value<'_, '_>, op: OperationRef<'_, '_>) -> bool {
    producer(value).is_some_and(|(definer, _)| block_order(definer, op) == std::cmp::Ordering::Greater)
}

fn replace_all_uses(of: Value<'_, '_>, with: Value<'_, '_>) {
    // SAFETY: both values are live in the same block; MLIR rewires every use.
    unsafe { mlir_sys::mlirValueReplaceAllUsesOfWith(of.to_raw(), with.to_raw()) }
}

/// The values the rewrite needs, found in the e-graph before any IR changes.
struct Parts<'c, 'a> {
    tokens: i64,
    top_k: i64,
    experts: i64,
    ids: Value<'c, 'a>,
    routed_source: Option<Value<'c, 'a>>,
    routed_copies: Vec<Value<'c, 'a>>,
    perm_values: Vec<Value<'c, 'a>>,
    rows: Option<Value<'c, 'a>>,
    /// The rows' dims and element type (from the e-graph's facts).
    rows_shape: Option<(Vec<i64>, String)>,
    quantized: Option<(Value<'c, 'a>, Value<'c, 'a>, Value<'c, 'a>, Value<'c, 'a>)>,
    /// A grouped matmul plus a per-expert bias: (x, weight, bias).
    biased: Option<(Value<'c, 'a>, Value<'c, 'a>, Value<'c, 'a>)>,
    /// The sort's values (the expert ids in sorted order), which other ops may read.
    sorted_values: Vec<Value<'c, 'a>>,
    /// The flat expert ids the sort sorted.
    flat_ids: Option<Value<'c, 'a>>,
    group_lists: Vec<Value<'c, 'a>>,
    weights: Value<'c, 'a>,
    shared: Option<Value<'c, 'a>>,
}

fn first_value<'c: 'a, 'a>(dataflow: &Dataflow<'c, 'a>, class: Id) -> Option<Value<'c, 'a>> {
    dataflow.values_in(class).into_iter().next()
}

fn find_parts<'c: 'a, 'a>(
    dataflow: &Dataflow<'c, 'a>,
    root: Value<'c, 'a>,
    combine: Combine,
) -> Result<Parts<'c, 'a>, Unmaterializable> {
    let graph = &dataflow.graph;
    let (root_dims, _) = dims_of(root).ok_or_else(|| refuse("dynamic-shapes", "the combine's shape is not static"))?;
    let tokens = root_dims[0];
    let slots = graph[combine.perm].data.permutation_of.unwrap_or(0);
    let top_k = if tokens > 0 { slots / tokens } else { 0 };
    // The expert ids the permutation sorted: (tokens, topK), or a flat vector of them.
    let sorted = graph[combine.perm]
        .nodes
        .iter()
        .find_map(|n| if let Moe::SortPerm(c) = n { Some(*c) } else { None })
        .ok_or_else(|| refuse("permutation-not-a-sort", "the permutation is not the indices of a sort of expert ids"))?;
    let ids_2d = graph[sorted].nodes.iter().find_map(|n| match n {
        Moe::View([c, _]) => first_value(dataflow, *c).filter(|v| dims_of(*v).map(|d| d.0) == Some(vec![tokens, top_k])),
        _ => None,
    });
    let ids = ids_2d.or_else(|| first_value(dataflow, sorted)).ok_or_else(|| {
        refuse("routing-ids-unknown", "the sorted expert ids are not a value of the function")
    })?;
    // The rows: a grouped matmul (or an int8 one dequantized per channel and per row).
    let rows_class = graph.find(combine.rows);
    let gmm = graph[rows_class].nodes.iter().find_map(|n| match n {
        Moe::Gmm([x, w, gl, t]) => Some((*x, *w, *gl, *t, None, None)),
        Moe::QGmm([x, w, gl, t, s, p]) => Some((*x, *w, *gl, *t, Some((*s, *p)), None)),
        Moe::BGmm([x, w, gl, t, b, ids]) => Some((*x, *w, *gl, *t, None, Some((*b, *ids)))),
        _ => None,
    });
    let Some((gmm_x, w, _, _, dequant, bias)) = gmm else {
        let producer_name = first_value(dataflow, rows_class)
            .and_then(producer)
            .map(|(op, _)| op.name().as_string_ref().as_str().unwrap_or("").to_string())
            .unwrap_or_else(|| "a function argument".into());
        return Err(refuse(
            "rows-not-from-grouped-matmul",
            format!("the combined rows are computed by {producer_name}, not directly by a grouped matmul (an op between the matmul and the combine)"),
        ));
    };
    let experts = graph[w].data.tensor.as_ref().map(|t| t.dims[0]).unwrap_or(0);
    // The group lists that are the routing's counts (or their cumsum).
    let flat_ids = graph.find(sorted);
    let counts = graph.lookup(Moe::Counts([flat_ids, graph.lookup(Moe::Num(experts)).unwrap_or(flat_ids)]));
    let Some(counts) = counts else {
        return Err(refuse("group-list-not-routing-counts", "no group list counts the sorted expert ids"));
    };
    let cumsum = graph.lookup(Moe::Cumsum(counts));
    let group_list_ok = graph[rows_class].nodes.iter().any(|n| match n {
        Moe::Gmm([_, _, gl, t]) | Moe::QGmm([_, _, gl, t, _, _]) | Moe::BGmm([_, _, gl, t, _, _]) => {
            let kind = graph[*t].data.int;
            (graph.find(*gl) == graph.find(counts) && kind == Some(1))
                || (Some(graph.find(*gl)) == cumsum.map(|c| graph.find(c)) && kind == Some(0))
        }
        _ => false,
    });
    if !group_list_ok {
        return Err(refuse(
            "group-list-not-routing-counts",
            "the grouped matmul's group list is not the count (or cumsum) of the sorted expert ids",
        ));
    }
    let mut group_lists = dataflow.values_in(counts);
    if let Some(c) = cumsum {
        group_lists.extend(dataflow.values_in(c));
    }
    // The rows as a value of the function; a quantized or biased matmul is written anew, so its
    // rows need not exist (e.g. when the router weight was folded into the per-token scale).
    let rows = first_value(dataflow, rows_class);
    let rows_shape = graph[rows_class]
        .data
        .tensor
        .as_ref()
        .and_then(|t| t.dims.iter().map(|d| i64::try_from(*d).ok()).collect::<Option<Vec<i64>>>().map(|d| (d, t.elem.clone())));
    let quantized = match dequant {
        None => None,
        Some((scale, pts)) => {
            // The int8 matmul whose int32 output the dequant multiplies read.
            let int_gmm = graph[rows_class].nodes.iter().find_map(|n| match n {
                Moe::QGmm([x, w, _, _, _, _]) => Some((*x, *w)),
                _ => None,
            });
            let (x, w) = int_gmm.ok_or_else(|| refuse("rows-not-from-grouped-matmul", "no int8 grouped matmul"))?;
            match (first_value(dataflow, x), first_value(dataflow, w), first_value(dataflow, scale), first_value(dataflow, pts)) {
                (Some(x), Some(w), Some(s), Some(p)) => Some((x, w, s, p)),
                _ => return Err(refuse("rows-not-from-grouped-matmul", "the dequant operands are not values")),
            }
        }
    };
    let biased = match bias {
        None => None,
        Some((b, bias_ids)) => {
            if graph.find(bias_ids) != flat_ids {
                return Err(refuse("expert-bias-ids", "the bias is gathered by other ids than the ones the rows are sorted by"));
            }
            match (first_value(dataflow, gmm_x), first_value(dataflow, w), first_value(dataflow, b)) {
                (Some(x), Some(w), Some(b)) => Some((x, w, b)),
                _ => return Err(refuse("rows-not-from-grouped-matmul", "the biased grouped matmul's operands are not values")),
            }
        }
    };
    // Rows gathered by `perm // K`: the routing's expanded x.
    let mut routed_source = None;
    let mut routed_copies = Vec::new();
    for class in graph.classes() {
        for node in &class.nodes {
            let Moe::Gather([x, index]) = node else { continue };
            let by_token = graph[*index].nodes.iter().any(|n| {
                matches!(n, Moe::FloorDiv([p, k]) if graph.find(*p) == graph.find(combine.perm) && graph[*k].data.int == Some(top_k))
            });
            if !by_token {
                continue;
            }
            if let Some(source) = first_value(dataflow, *x) {
                if dims_of(source).map(|d| d.0.len()) == Some(2) && routed_source.is_none_or(|s| s == source) {
                    routed_source = Some(source);
                    routed_copies.extend(dataflow.values_in(class.id));
                }
            }
        }
    }
    let weights = first_value(dataflow, combine.weights)
        .ok_or_else(|| refuse("weights-unknown", "the router weights are not a value of the function"))?;
    let weights = graph[combine.weights]
        .nodes
        .iter()
        .find_map(|n| match n {
            Moe::View([c, _]) => first_value(dataflow, *c).filter(|v| dims_of(*v).map(|d| d.0) == Some(vec![tokens, top_k])),
            _ => None,
        })
        .unwrap_or(weights);
    let shared = match combine.shared {
        Some(s) => Some(first_value(dataflow, s).ok_or_else(|| refuse("shared-unknown", "the shared-expert rows are not a value"))?),
        None => None,
    };
    Ok(Parts {
        tokens,
        top_k,
        experts,
        ids,
        routed_source,
        routed_copies,
        perm_values: dataflow.values_in(combine.perm),
        rows,
        rows_shape,
        quantized,
        biased,
        sorted_values: graph.lookup(Moe::SortVals(flat_ids)).map(|c| dataflow.values_in(c)).unwrap_or_default(),
        flat_ids: first_value(dataflow, flat_ids),
        group_lists,
        weights,
        shared,
    })
}

/// A snippet line: a drop-less `npu.moe_init_routing` (every row active, per-expert counts) of
/// `%x` by the i32 expert ids `ids`, producing `results` (expanded rows, index map, counts).
pub(super) fn init_routing_line(results: &str, ids: &str, row_idx_type: i64, experts: impl std::fmt::Display, types: [&str; 5]) -> String {
    let [x_type, ids_type, ex_type, map_type, counts_type] = types;
    format!(
        "  {results} = \"npu.moe_init_routing\"(%x, {ids}) {{expert_num = {experts} : i64, active_num = 0 : i64, row_idx_type = {row_idx_type} : i64, expert_tokens_num_type = 1 : i64}} : ({x_type}, {ids_type}) -> ({ex_type}, {map_type}, {counts_type})\n"
    )
}

/// Snippet lines: `{result} = table[index]` over a 1-D `index` (a routing's gidx) into a 1-D
/// `table` of `len` elements, each index clamped into the table.
pub(super) fn gather_1d_lines(result: &str, table: &str, table_type: &str, table_elem: &str, index: &str, index_type: &str, index_elem: &str, len: impl Into<u64>) -> String {
    let last = len.into().max(1) - 1;
    let map = "affine_map<(d0) -> (d0)>";
    format!(
        "  %gather_init = tensor.empty() : {table_type}\n  {result} = linalg.generic {{indexing_maps = [{map}, {map}], iterator_types = [\"parallel\"]}} ins({index} : {index_type}) outs(%gather_init : {table_type}) {{\n  ^bb0(%gather_at: {index_elem}, %gather_out: {table_elem}):\n    %zero = arith.constant 0 : {index_elem}\n    %last = arith.constant {last} : {index_elem}\n    %lo = arith.maxsi %gather_at, %zero : {index_elem}\n    %c = arith.minsi %lo, %last : {index_elem}\n    %i = arith.index_cast %c : {index_elem} to index\n    %v = tensor.extract {table}[%i] : {table_type}\n    linalg.yield %v : {table_elem}\n  }} -> {table_type}\n"
    )
}

/// Rewrites one recognized combine. `root_op` defines `root`, the combine's value.
pub fn materialize<'c: 'a, 'a>(
    context: &'c Context,
    block: BlockRef<'c, 'a>,
    dataflow: &Dataflow<'c, 'a>,
    root_op: OperationRef<'c, 'a>,
    root: Value<'c, 'a>,
    combine: Combine,
    spelling: &str,
) -> Result<(), Unmaterializable> {
    let parts = find_parts(dataflow, root, combine)?;
    let (t, k, e) = (parts.tokens, parts.top_k, parts.experts);
    // Where the routing goes: right after the first op defining the permutation, which must come
    // after the ids and the rows it routes.
    let anchor = parts
        .perm_values
        .iter()
        .filter_map(|v| producer(*v).map(|(op, _)| op))
        .min_by(|a, b| block_order(*a, *b))
        .ok_or_else(|| refuse("permutation-not-a-sort", "the permutation is a function argument"))?;
    let routed = parts.routed_source.unwrap_or(parts.weights);
    for (what, value) in [("the expert ids", parts.ids), ("the routed rows", routed)] {
        if defined_after(value, anchor) {
            return Err(refuse("routing-inputs-defined-late", format!("{what} are computed after the sort")));
        }
    }
    let insert_before = anchor.next_in_block().ok_or_else(|| refuse("internal", "sort op is last"))?;
    let (ids_dims, ids_elem) = dims_of(parts.ids).ok_or_else(|| refuse("dynamic-shapes", "ids"))?;
    let (routed_dims, routed_elem) = dims_of(routed).ok_or_else(|| refuse("dynamic-shapes", "routed rows"))?;
    let ids_type = tensor_type(&ids_dims, &ids_elem);
    let ids2 = tensor_type(&[t, k], "i32");
    let x_type = tensor_type(&routed_dims, &routed_elem);
    let ex_type = tensor_type(&[t * k, routed_dims[1]], &routed_elem);
    let flat_i32 = tensor_type(&[t * k], "i32");
    let flat_i64 = tensor_type(&[t * k], "i64");
    let counts_type = tensor_type(&[e], "i64");
    let mut body = String::new();
    let ids_value = if ids_dims == [t, k] {
        "%ids".to_string()
    } else {
        body.push_str(&format!(
            "  %ids2 = tensor.expand_shape %ids [[0, 1]] output_shape [{t}, {k}] : {ids_type} into {}\n",
            tensor_type(&[t, k], &ids_elem)
        ));
        "%ids2".to_string()
    };
    let ids32 = match ids_elem.as_str() {
        "i32" => ids_value,
        "i64" | "i16" | "i8" => {
            let op = if ids_elem == "i64" { "arith.trunci" } else { "arith.extsi" };
            body.push_str(&format!(
                "  %ids32 = {op} {ids_value} : {} to {ids2}\n",
                tensor_type(&[t, k], &ids_elem)
            ));
            "%ids32".to_string()
        }
        other => return Err(refuse("routing-ids-unknown", format!("expert ids of type {other}"))),
    };
    let types = [x_type.as_str(), ids2.as_str(), ex_type.as_str(), flat_i32.as_str(), counts_type.as_str()];
    body.push_str(&init_routing_line("%ex, %inv, %counts", &ids32, 0, e, types));
    body.push_str(&init_routing_line("%ex1, %gidx, %counts1", &ids32, 1, e, types));
    body.push_str(&format!("  %gidx64 = arith.extsi %gidx : {flat_i32} to {flat_i64}\n"));
    let routing_text = format!(
        "func.func @routing(%ids: {ids_type}, %x: {x_type}) -> ({ex_type}, {flat_i32}, {counts_type}, {flat_i64}) {{\n{body}  return %ex, %inv, %counts, %gidx64 : {ex_type}, {flat_i32}, {counts_type}, {flat_i64}\n}}"
    );
    let routing = splice(context, insert_before, &routing_text, &[parts.ids, routed])
        .map_err(|e| refuse("internal", e.to_string()))?;
    let (ex, inv, counts, gidx) = (routing[0], routing[1], routing[2], routing[3]);
    // The sort's values (expert ids in sorted order), where other ops read them: `ids[gidx]`.
    if let Some(flat) = parts.flat_ids {
        let readers: Vec<Value<'c, 'a>> = parts
            .sorted_values
            .iter()
            .copied()
            .filter(|v| v.r#type() == flat.r#type() && !gmmfr_dialect::graph::users(*v).is_empty())
            .collect();
        if !readers.is_empty() {
            let flat_type = flat.r#type().to_string();
            let (flat_dims, flat_elem) = dims_of(flat).ok_or_else(|| refuse("dynamic-shapes", "ids"))?;
            let len = u64::try_from(flat_dims.first().copied().unwrap_or(1)).unwrap_or(1);
            let text = format!(
                "func.func @sorted_ids(%ids: {flat_type}, %g: {flat_i64}) -> {flat_type} {{\n{}  return %r : {flat_type}\n}}",
                gather_1d_lines("%r", "%ids", &flat_type, &flat_elem, "%g", &flat_i64, "i64", len)
            );
            let sorted = splice(context, insert_before, &text, &[flat, gidx]).map_err(|e| refuse("internal", e.to_string()))?;
            for value in readers {
                replace_all_uses(value, sorted[0]);
            }
        }
    }

    // The rows: the existing grouped matmul, or a quantized one replacing int32 + dequant.
    let (rows_dims, rows_elem) = match parts.rows {
        Some(rows) => dims_of(rows),
        None => parts.rows_shape.clone(),
    }
    .ok_or_else(|| refuse("dynamic-shapes", "rows"))?;
    let (rows, rows_elem) = match (parts.quantized, parts.biased) {
        (None, Some((x, w, b))) => {
            let types: Vec<String> = [x, w, counts, b].iter().map(|v| v.r#type().to_string()).collect();
            let out = tensor_type(&rows_dims, &rows_elem);
            let text = format!(
                "func.func @bgmm(%x: {}, %w: {}, %gl: {}, %b: {}) -> {out} {{\n  %y = \"npu.grouped_matmul\"(%x, %w, %gl, %b) {{group_list_type = 1 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 1>}} : ({}) -> {out}\n  return %y : {out}\n}}",
                types[0], types[1], types[2], types[3], types.join(", ")
            );
            let y = splice(context, root_op, &text, &[x, w, counts, b]).map_err(|e| refuse("internal", e.to_string()))?;
            (y[0], rows_elem)
        }
        (None, None) => (
            parts.rows.ok_or_else(|| refuse("rows-not-from-grouped-matmul", "the rows are not a value of the function"))?,
            rows_elem,
        ),
        (Some((x, w, scale, pts)), _) => {
            let types: Vec<String> = [x, w, counts, scale, pts].iter().map(|v| v.r#type().to_string()).collect();
            let out = tensor_type(&rows_dims, "bf16");
            let text = format!(
                "func.func @qgmm(%x: {}, %w: {}, %gl: {}, %s: {}, %p: {}) -> {out} {{\n  %y = \"npu.grouped_matmul\"(%x, %w, %gl, %s, %p) {{group_list_type = 1 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0>}} : ({}) -> {out}\n  return %y : {out}\n}}",
                types[0], types[1], types[2], types[3], types[4], types.join(", ")
            );
            let y = splice(context, root_op, &text, &[x, w, counts, scale, pts]).map_err(|e| refuse("internal", e.to_string()))?;
            (y[0], "bf16".to_string())
        }
    };

    // The finalize: scales are the router weights as (tokens, topK) f32.
    let (w_dims, w_elem) = dims_of(parts.weights).ok_or_else(|| refuse("dynamic-shapes", "weights"))?;
    let (root_dims, root_elem) = dims_of(root).ok_or_else(|| refuse("dynamic-shapes", "combine"))?;
    let mut body = String::new();
    let mut scales = "%w".to_string();
    if w_dims != [t, k] {
        body.push_str(&format!(
            "  %w2 = tensor.expand_shape %w [[0, 1]] output_shape [{t}, {k}] : {} into {}\n",
            tensor_type(&w_dims, &w_elem),
            tensor_type(&[t, k], &w_elem)
        ));
        scales = "%w2".into();
    }
    if w_elem != "f32" {
        body.push_str(&format!(
            "  %w32 = arith.extf {scales} : {} to {}\n",
            tensor_type(&[t, k], &w_elem),
            tensor_type(&[t, k], "f32")
        ));
        scales = "%w32".into();
    }
    let out_type = tensor_type(&root_dims, &rows_elem);
    let rows_type = rows.r#type().to_string();
    let (skip_operand, skip_type, skip_count) = match parts.shared {
        Some(s) => (", %sh".to_string(), format!(", {}", s.r#type()), 1),
        None => (String::new(), String::new(), 0),
    };
    body.push_str(&format!(
        "  %out = \"npu.moe_finalize_routing\"(%y{skip_operand}, {scales}, %inv) {{drop_pad_mode = 2 : i64, operandSegmentSizes = array<i32: 1, {skip_count}, 0, 0, 1, 1, 0>, {SPELLING_ATTRIBUTE} = {}}} : ({rows_type}{skip_type}, {}, {flat_i32}) -> {out_type}\n",
        string_literal(&format!("{spelling} (recognized)")),
        tensor_type(&[t, k], "f32")
    ));
    let mut result = "%out".to_string();
    if rows_elem != root_elem {
        let cast = if root_elem == "f32" || (root_elem == "bf16" && rows_elem == "f16") { "arith.extf" } else { "arith.truncf" };
        body.push_str(&format!("  %cast = {cast} %out : {out_type} to {}\n", tensor_type(&root_dims, &root_elem)));
        result = "%cast".into();
    }
    let root_type = root.r#type().to_string();
    let mut params = format!("%y: {rows_type}, %w: {}, %inv: {flat_i32}", parts.weights.r#type());
    let mut args = vec![rows, parts.weights, inv];
    if let Some(s) = parts.shared {
        params.push_str(&format!(", %sh: {}", s.r#type()));
        args.push(s);
    }
    let text = format!("func.func @finalize({params}) -> {root_type} {{\n{body}  return {result} : {root_type}\n}}");
    let finalized = splice(context, root_op, &text, &args).map_err(|e| refuse("internal", e.to_string()))?;

    // Rewire: the combine, the permutation, the routed rows and the group lists.
    replace_all_uses(root, finalized[0]);
    for perm in &parts.perm_values {
        if perm.r#type().to_string() == flat_i64 {
            replace_all_uses(*perm, gidx);
        }
    }
    for copy in &parts.routed_copies {
        if copy.r#type().to_string() == ex_type {
            replace_all_uses(*copy, ex);
        }
    }
    retarget_group_lists(context, &block, &parts.group_lists, counts);
    Ok(())
}

/// Whether `value` is one of `group_lists`, or an integer cast of one (the casts the rule
/// `group-list-cast-keeps-values` equates with their operand).
fn reads_group_list<'c: 'a, 'a>(mut value: Value<'c, 'a>, group_lists: &[Value<'c, 'a>]) -> bool {
    for _ in 0..8 {
        if group_lists.contains(&value) {
            return true;
        }
        match producer(value) {
            Some((op, _)) if matches!(op.name().as_string_ref().as_str(), Ok("arith.extsi" | "torch.prims.convert_element_type")) => {
                match op.operand(0) {
                    Ok(operand) => value = operand,
                    Err(_) => return false,
                }
            }
            _ => return false,
        }
    }
    false
}

/// Every grouped matmul reading one of `group_lists` reads the routing's counts instead.
fn retarget_group_lists<'c: 'a, 'a>(context: &'c Context, block: &BlockRef<'c, 'a>, group_lists: &[Value<'c, 'a>], counts: Value<'c, 'a>) {
    let mut next = block.first_operation();
    while let Some(op) = next {
        next = op.next_in_block();
        if op.name().as_string_ref().as_str() != Ok("npu.grouped_matmul") {
            continue;
        }
        let Ok(Some(view)) = NpuOp::new(op) else { continue };
        let Some(gl) = view.operand("group_list") else { continue };
        if !reads_group_list(gl, group_lists) {
            continue;
        }
        // group_list is operand 2 in every segment layout (x, weight, group_list are single).
        // SAFETY: the op is live; operand 2 is its group list and `counts` dominates it (the
        // routing sits right after the sort every group list is computed from).
        unsafe {
            mlir_sys::mlirOperationSetOperand(op.to_raw(), 2, counts.to_raw());
            let mut op_mut = melior::ir::operation::OperationRefMut::from_raw(op.to_raw());
            if let Some(attr) = Attribute::parse(context, "1 : i64") {
                op_mut.set_attribute("group_list_type", attr);
            }
        }
    }
}

/// Ops that compute a value and nothing else: erasable once nothing reads them.
fn is_pure(name: &str) -> bool {
    // In-place torch ops (`index_put_`, `copy_`) write their operand: never erasable.
    if name.ends_with('_') {
        return false;
    }
    name.starts_with("npu.")
        || name.starts_with("arith.")
        || name.starts_with("tensor.")
        || name.starts_with("torch.aten.")
        || name.starts_with("torch.prim.")
        || name.starts_with("torch.prims.")
        || name.starts_with("torch.constant.")
        || name == "torch.vtensor.literal"
        || name == "torch.operator"
}

/// Erases ops of `block` whose results nobody reads, until none is left; returns how many.
pub fn erase_dead(block: &BlockRef<'_, '_>) -> usize {
    let mut erased = 0;
    loop {
        let mut dead = Vec::new();
        let mut next = block.first_operation();
        while let Some(op) = next {
            next = op.next_in_block();
            let name = op.name().as_string_ref().as_str().unwrap_or("").to_string();
            let unused = op.result_count() > 0
                && (0..op.result_count()).all(|i| op.result(i).map(|r| users(r.into()).is_empty()).unwrap_or(false));
            if unused && is_pure(&name) && !name.contains("copy_") && !name.contains("print") {
                dead.push(op);
            }
        }
        if dead.is_empty() {
            return erased;
        }
        for op in dead.into_iter().rev() {
            erase(op);
            erased += 1;
        }
    }
}

//! The named rewrite rules that make every spelling of a MoE combine meet in one e-class, with
//! their side conditions as named checks. A check that fails is recorded (rule, check, class,
//! what was found) so that a candidate left unrecognized can say why.

use super::language::{FailedCheck, Moe, MoeFacts, MoeGraph, shape_symbol};
use egg::{Applier, Id, Pattern, PatternAst, Rewrite, Subst, Symbol, Var, rewrite};

fn var(name: &str) -> Var {
    name.parse().expect("pattern variable")
}

fn fail(graph: &mut MoeGraph, rule: &'static str, check: &'static str, class: Id, detail: String) -> bool {
    let failure = FailedCheck {
        check,
        rule,
        class: graph.find(class),
        detail,
    };
    if !graph.analysis.failures.contains(&failure) {
        graph.analysis.failures.push(failure);
    }
    false
}

fn dims(graph: &MoeGraph, id: Id) -> Option<Vec<i64>> {
    graph[id].data.tensor.as_ref().map(|t| t.dims.clone())
}

/// `?p` is a permutation (by how it was computed) of `[0, n)`.
fn permutation_of(graph: &MoeGraph, id: Id) -> Option<i64> {
    graph[id].data.permutation_of
}

/// The check names, for documentation and tests.
pub const CHECKS: &[(&str, &str)] = &[
    ("permutation-provenance", "the index is a permutation by construction (a sort's or argsort's indices, or their inverse)"),
    ("slot-view", "the view splits the gathered rows into (tokens, topK, n) with tokens * topK = the permutation's length and sums over topK"),
    ("slot-count", "the divisor of the permutation is topK = (number of rows) / (number of tokens)"),
    ("scatter-base-shape", "the scatter target is zeros of (tokens, n)"),
    ("weight-per-slot", "the router weights are a flat (tokens * topK) vector read at the same permutation"),
    ("dequant-operands", "int8 x and weight, per-expert per-channel f32 scale (experts, n), per-row f32 scale (rows)"),
    ("shared-input-bf16", "the shared-expert rows have the combine's shape and are bf16"),
];

/// Every rule, in a stable order.
pub fn rules() -> Vec<Rewrite<Moe, MoeFacts>> {
    let mut rules: Vec<Rewrite<Moe, MoeFacts>> = vec![
        rewrite!("index-add-into-zeros-is-scatter";
            "(index_add (zeros ?s) ?i ?src)" => "(scatter (zeros ?s) ?i ?src)"),
        rewrite!("index-put-accumulate-into-zeros-is-scatter";
            "(index_put_acc (zeros ?s) ?i ?src)" => "(scatter (zeros ?s) ?i ?src)"),
        rewrite!("scatter-add-of-expanded-rows-is-scatter";
            "(scatter_add (zeros ?s) (expand_rows ?i ?n) ?src)" => "(scatter (zeros ?s) ?i ?src)"),
        rewrite!("scatter-by-slot-token-is-combine";
            "(scatter (zeros ?s) (floordiv ?p ?k) ?y)" => "(combine ?p ?y)"
            if scatter_by_slot_token),
        rewrite!("router-weight-commutes-with-combine";
            "(combine ?p (mul ?y (unsqueeze (gather ?wf ?p) 1)))" => "(wcombine ?p ?y ?wf)"
            if weight_per_slot),
        rewrite!("mul-commutes"; "(mul ?a ?b)" => "(mul ?b ?a)"),
        rewrite!("mul-associates-left"; "(mul (mul ?a ?b) ?c)" => "(mul ?a (mul ?b ?c))"),
        rewrite!("mul-associates-right"; "(mul ?a (mul ?b ?c))" => "(mul (mul ?a ?b) ?c)"),
        // A per-row factor built as a product before the broadcast: (a * b)[:, None] ==
        // a[:, None] * b[:, None] (e.g. router weights folded into the per-token scale).
        rewrite!("unsqueeze-distributes-over-mul"; "(unsqueeze (mul ?a ?b) ?d)" => "(mul (unsqueeze ?a ?d) (unsqueeze ?b ?d))" if same_shape("?a", "?b")),
        rewrite!("add-commutes"; "(add ?a ?b)" => "(add ?b ?a)"),
        rewrite!("argsort-of-permutation-is-inverse"; "(sortperm ?p)" => "(invperm ?p)" if is_permutation("?p")),
        rewrite!("inverse-of-inverse-is-identity"; "(invperm (invperm ?p))" => "?p"),
        rewrite!("cumsum-group-list-is-counts"; "(gmm ?x ?w (cumsum ?c) 0)" => "(gmm ?x ?w ?c 1)"),
        rewrite!("quantized-cumsum-group-list-is-counts";
            "(qgmm ?x ?w (cumsum ?c) 0 ?s ?t)" => "(qgmm ?x ?w ?c 1 ?s ?t)"),
        rewrite!("group-list-cast-keeps-values";
            "(gmm ?x ?w (cast ?g ?t) ?k)" => "(gmm ?x ?w ?g ?k)" if integer("?g")),
        rewrite!("quantized-group-list-cast-keeps-values";
            "(qgmm ?x ?w (cast ?g ?t) ?k ?s ?p)" => "(qgmm ?x ?w ?g ?k ?s ?p)" if integer("?g")),
        rewrite!("gather-by-own-sort-permutation-is-sorted"; "(gather ?x (sortperm ?x))" => "(sortvals ?x)"),
        rewrite!("counts-ignore-order"; "(counts (sortvals ?x) ?e)" => "(counts ?x ?e)"),
        rewrite!("dequant-is-quantized-gmm";
            "(mul (mul (cast (gmm ?x ?w ?gl ?t) t:f32) (gather ?s (sortvals ?ids))) (unsqueeze ?pts 1))"
            => "(qgmm ?x ?w ?gl ?t ?s ?pts)" if dequant_operands),
        rewrite!("expert-bias-is-gmm-bias";
            "(add (gmm ?x ?w ?gl ?t) (gather ?b (sortvals ?ids)))" => "(bgmm ?x ?w ?gl ?t ?b ?ids)" if expert_bias),
        rewrite!("expert-bias-is-gmm-bias-commuted";
            "(add (gather ?b (sortvals ?ids)) (gmm ?x ?w ?gl ?t))" => "(bgmm ?x ?w ?gl ?t ?b ?ids)" if expert_bias),
        rewrite!("biased-group-list-cast-keeps-values";
            "(bgmm ?x ?w (cast ?g ?t) ?k ?b ?i)" => "(bgmm ?x ?w ?g ?k ?b ?i)" if integer("?g")),
        rewrite!("shared-expert-add-is-shared-input";
            "(add (wcombine ?p ?y ?wf) ?sh)" => "(wcombine-shared ?p ?y ?wf ?sh)" if shared_input_bf16),
    ];
    let view_sum: Pattern<Moe> = "(sum (view (gather ?y (invperm ?p)) ?s) ?d)".parse().expect("pattern");
    rules.push(
        Rewrite::new("gather-by-inverse-view-sum-is-scatter", view_sum, ViewSumIsScatter).expect("rule"),
    );
    rules
}

/// The names of every rule, in order.
pub fn rule_names() -> Vec<String> {
    rules().iter().map(|r| r.name.to_string()).collect()
}

/// Both operands have the same known shape (no broadcasting between them).
fn same_shape(a: &str, b: &str) -> impl Fn(&mut MoeGraph, Id, &Subst) -> bool {
    let (a, b) = (var(a), var(b));
    move |graph, _class, subst| {
        let dims = |id: Id| graph[id].data.tensor.as_ref().map(|t| t.dims.clone());
        matches!((dims(subst[a]), dims(subst[b])), (Some(x), Some(y)) if x == y)
    }
}

/// A group list converted between integer types keeps its values (counts fit any of them).
fn integer(name: &str) -> impl Fn(&mut MoeGraph, Id, &Subst) -> bool {
    let g = var(name);
    move |graph, _class, subst| graph[subst[g]].data.tensor.as_ref().is_some_and(|t| t.elem.starts_with('i'))
}

fn is_permutation(name: &str) -> impl Fn(&mut MoeGraph, Id, &Subst) -> bool {
    let p = var(name);
    move |graph, class, subst| {
        // Most sorts sort expert ids, not permutations: a miss here is not worth reporting.
        let _ = class;
        permutation_of(graph, subst[p]).is_some()
    }
}

fn scatter_by_slot_token(graph: &mut MoeGraph, class: Id, subst: &Subst) -> bool {
    const RULE: &str = "scatter-by-slot-token-is-combine";
    let (s, p, k, y) = (subst[var("?s")], subst[var("?p")], subst[var("?k")], subst[var("?y")]);
    let Some(n) = permutation_of(graph, p) else {
        return fail(graph, RULE, "permutation-provenance", class,
            "the scatter index is `idx // K` of an index that is not a permutation (a sort's or argsort's indices)".into());
    };
    let (Some(target), Some(rows)) = (graph[s].data.shape.clone(), dims(graph, y)) else {
        return fail(graph, RULE, "scatter-base-shape", class, "shapes are not static".into());
    };
    if target.len() != 2 || rows.len() != 2 || target[1] != rows[1] || rows[0] != n {
        return fail(graph, RULE, "scatter-base-shape", class,
            format!("scatter of {rows:?} rows into {target:?} with a permutation of {n}"));
    }
    let tokens = target[0];
    let top_k = graph[k].data.int.unwrap_or(0);
    if tokens <= 0 || tokens * top_k != n {
        return fail(graph, RULE, "slot-count", class,
            format!("{n} rows over {tokens} tokens, divided by {top_k} (needs tokens * topK = rows)"));
    }
    true
}

fn weight_per_slot(graph: &mut MoeGraph, class: Id, subst: &Subst) -> bool {
    let (p, wf) = (subst[var("?p")], subst[var("?wf")]);
    let n = permutation_of(graph, p);
    match (dims(graph, wf), n) {
        (Some(d), Some(n)) if d == vec![n] => true,
        (d, n) => fail(graph, "router-weight-commutes-with-combine", "weight-per-slot", class,
            format!("the weights read at the permutation have shape {d:?}, expected [{}]", n.unwrap_or(-1))),
    }
}

fn dequant_operands(graph: &mut MoeGraph, class: Id, subst: &Subst) -> bool {
    let get = |name: &str| subst[var(name)];
    let facts = |graph: &MoeGraph, id: Id| graph[id].data.tensor.clone();
    let (x, w, s, pts) = (facts(graph, get("?x")), facts(graph, get("?w")), facts(graph, get("?s")), facts(graph, get("?pts")));
    let ok = match (&x, &w, &s, &pts) {
        (Some(x), Some(w), Some(s), Some(pts)) => {
            x.elem == "i8" && w.elem == "i8" && s.elem == "f32" && pts.elem == "f32"
                && x.dims.len() == 2 && w.dims.len() == 3 && s.dims == vec![w.dims[0], w.dims[2]]
                && pts.dims == vec![x.dims[0]]
        }
        _ => false,
    };
    if ok {
        true
    } else {
        let show = |t: &Option<super::language::TensorFacts>| {
            t.as_ref().map(|t| format!("{:?}x{}", t.dims, t.elem)).unwrap_or_else(|| "?".into())
        };
        fail(graph, "dequant-is-quantized-gmm", "dequant-operands", class,
            format!("x {}, weight {}, scale {}, per-row scale {}", show(&x), show(&w), show(&s), show(&pts)))
    }
}

/// `bias[sorted ids]` added to a grouped matmul's rows is its per-expert bias: `bias` is
/// (experts, n) of the rows' element type.
fn expert_bias(graph: &mut MoeGraph, class: Id, subst: &Subst) -> bool {
    let (b, w, x) = (subst[var("?b")], subst[var("?w")], subst[var("?x")]);
    let bias = graph[b].data.tensor.clone();
    let weight = graph[w].data.tensor.clone();
    let rows = graph[x].data.tensor.clone();
    match (bias, weight, rows) {
        (Some(b), Some(w), Some(x)) if w.dims.len() == 3 && b.dims == [w.dims[0], w.dims[2]] && b.elem == x.elem => true,
        (b, _, _) => fail(graph, "expert-bias-is-gmm-bias", "expert-bias-shape", class,
            format!("the added {} is not an (experts, n) bias of the rows' type",
                b.map(|b| format!("{:?}x{}", b.dims, b.elem)).unwrap_or_else(|| "?".into()))),
    }
}

fn shared_input_bf16(graph: &mut MoeGraph, class: Id, subst: &Subst) -> bool {
    let (sh, y) = (subst[var("?sh")], subst[var("?y")]);
    let shared = graph[sh].data.tensor.clone();
    let combined = graph[class].data.tensor.clone();
    let rows_elem = graph[y].data.tensor.as_ref().map(|t| t.elem.clone());
    match (shared, combined) {
        (Some(s), Some(c)) if s.dims == c.dims && s.elem == "bf16" && rows_elem.as_deref() == Some("bf16") => true,
        (s, _) => fail(graph, "shared-expert-add-is-shared-input", "shared-input-bf16", class,
            format!("the added rows are {}; the fused op's shared_input is bf16 (left as a separate add)",
                s.map(|s| format!("{:?}x{}", s.dims, s.elem)).unwrap_or_else(|| "?".into()))),
    }
}

/// `sum(view(gather(y, invperm(p)), [T, K, n]), 1)` == `scatter(zeros(T, n), p // K, y)`: reading
/// row `p^-1[t*K + j]` for every slot and summing over slots adds row `r` to token `p[r] // K`.
struct ViewSumIsScatter;

impl Applier<Moe, MoeFacts> for ViewSumIsScatter {
    fn apply_one(
        &self,
        graph: &mut MoeGraph,
        class: Id,
        subst: &Subst,
        _ast: Option<&PatternAst<Moe>>,
        _rule: Symbol,
    ) -> Vec<Id> {
        const RULE: &str = "gather-by-inverse-view-sum-is-scatter";
        let (y, p, s, d) = (subst[var("?y")], subst[var("?p")], subst[var("?s")], subst[var("?d")]);
        let Some(n) = permutation_of(graph, p) else {
            fail(graph, RULE, "permutation-provenance", class,
                "the rows are gathered back by the inverse of an index that is not a permutation".into());
            return vec![];
        };
        let shape = graph[s].data.shape.clone().unwrap_or_default();
        let dim = graph[d].data.int;
        let rows = dims(graph, y).unwrap_or_default();
        if shape.len() != 3 || dim != Some(1) || shape[0] * shape[1] != n || rows.len() != 2 || rows[1] != shape[2] {
            fail(graph, RULE, "slot-view", class,
                format!("view {shape:?} summed over dim {dim:?} of rows {rows:?} with a permutation of {n}"));
            return vec![];
        }
        let (tokens, top_k, width) = (shape[0], shape[1], shape[2]);
        let target = graph.add(Moe::Leaf(shape_symbol(&[tokens, width])));
        let zeros = graph.add(Moe::Zeros(target));
        let k = graph.add(Moe::Num(top_k));
        let token = graph.add(Moe::FloorDiv([p, k]));
        let scatter = graph.add(Moe::Scatter([zeros, token, y]));
        if graph.union(class, scatter) { vec![scatter] } else { vec![] }
    }
}

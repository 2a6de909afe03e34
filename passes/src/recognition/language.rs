//! The term language of MoE dataflow that the e-graph works on, and the facts it keeps per
//! e-class (shape, element type, known integer, "is a permutation of [0, n)").
//!
//! Leaves are the values the recognizer does not interpret (function arguments and the results
//! of opaque ops), named `v<N>`, with their shape and element type from MLIR. Nodes named after
//! torch ops mean what the torch op means on the operand positions that matter; the nodes
//! `combine`, `wcombine` and `wcombine-shared` are the canonical forms rules rewrite into.

use egg::{Analysis, DidMerge, EGraph, Id, Symbol, define_language};
use std::collections::HashMap;

define_language! {
    /// A MoE dataflow term.
    pub enum Moe {
        // `(view x shape)`: reshape, shape as a `s:AxBxC` symbol.
        "view" = View([Id; 2]),
        // `(unsqueeze x dim)`.
        "unsqueeze" = Unsqueeze([Id; 2]),
        // `(gather x idx)`: `x[idx]`, rows of `x` picked by a 1-D index.
        "gather" = Gather([Id; 2]),
        // `(sum x dim)`: sum over one dim, not kept.
        "sum" = Sum([Id; 2]),
        // `(mul a b)`: elementwise with broadcasting.
        "mul" = Mul([Id; 2]),
        // `(add a b)`: elementwise with broadcasting.
        "add" = Add([Id; 2]),
        // `(floordiv x k)`: integer division rounding down by a constant.
        "floordiv" = FloorDiv([Id; 2]),
        // `(cast x dtype)`: element type conversion.
        "cast" = Cast([Id; 2]),
        // `(sortperm x)`: the indices that sort 1-D `x` ascending (sort's second result, argsort).
        "sortperm" = SortPerm(Id),
        // `(sortvals x)`: 1-D `x` sorted ascending.
        "sortvals" = SortVals(Id),
        // `(invperm p)`: `q` with `q[p[i]] = i` (index_put of arange at `p`).
        "invperm" = InvPerm(Id),
        // `(zeros shape)`.
        "zeros" = Zeros(Id),
        // `(index_add base idx src)`: `base.index_add(0, idx, src)`.
        "index_add" = IndexAdd([Id; 3]),
        // `(index_put_acc base idx src)`: `base.index_put((idx,), src, accumulate=True)`.
        "index_put_acc" = IndexPutAcc([Id; 3]),
        // `(scatter_add base idx2d src)`: `base.scatter_add(0, idx2d, src)`.
        "scatter_add" = ScatterAdd([Id; 3]),
        // `(expand_rows idx n)`: `idx[:, None].expand(-1, n)`.
        "expand_rows" = ExpandRows([Id; 2]),
        // `(scatter base idx src)`: rows of `src` added into zero `base` at rows `idx`.
        "scatter" = Scatter([Id; 3]),
        // `(counts ids e)`: how many times each of `0..e` occurs in `ids` (bincount, histc).
        "counts" = Counts([Id; 2]),
        // `(cumsum x)`: inclusive prefix sum of a 1-D tensor.
        "cumsum" = Cumsum(Id),
        // `(gmm x w group_list group_list_type)`: grouped matmul with ND weights, no scales.
        "gmm" = Gmm([Id; 4]),
        // `(qgmm x w group_list group_list_type scale pertoken_scale)`: int8 grouped matmul
        // dequantized per output channel and per row.
        "qgmm" = QGmm([Id; 6]),
        // `(bgmm x w group_list group_list_type bias ids)`: grouped matmul plus the per-expert
        // bias `bias[g]` on the rows of group g (`ids`: the flat expert ids the rows are sorted by).
        "bgmm" = BGmm([Id; 6]),
        // `(combine p y)`: `out[p[r] // K] += y[r]`, `p` a permutation of `[0, T*K)`.
        "combine" = Combine([Id; 2]),
        // `(wcombine p y wf)`: `out[p[r] // K] += y[r] * wf[p[r]]`.
        "wcombine" = WCombine([Id; 3]),
        // `(wcombine-shared p y wf s)`: `wcombine` plus the shared-expert rows `s`.
        "wcombine-shared" = WCombineShared([Id; 4]),
        // A known integer.
        Num(i64),
        // A leaf value `v<N>`, a shape `s:...` or a dtype `t:...`.
        Leaf(Symbol),
    }
}

/// A tensor's static facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorFacts {
    /// Static dims.
    pub dims: Vec<i64>,
    /// Element type (`f32`, `bf16`, `i64`, ...).
    pub elem: String,
}

/// What the e-graph knows about an e-class.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// The tensor's shape and element type, when known.
    pub tensor: Option<TensorFacts>,
    /// The integer, for `Num` classes.
    pub int: Option<i64>,
    /// For a 1-D integer tensor known (by how it was computed) to be a permutation of `[0, n)`.
    pub permutation_of: Option<i64>,
    /// For a shape symbol: its dims.
    pub shape: Option<Vec<i64>>,
    /// For a dtype symbol: the element type.
    pub dtype: Option<String>,
}

/// A side condition that failed, kept so that a candidate left unrecognized can say why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedCheck {
    /// The named check (`permutation-provenance`, ...).
    pub check: &'static str,
    /// The rule whose condition it was.
    pub rule: &'static str,
    /// The e-class the rule matched.
    pub class: Id,
    /// What was found.
    pub detail: String,
}

/// The e-class analysis: leaf facts come from MLIR types, node facts are derived.
#[derive(Default)]
pub struct MoeFacts {
    /// Facts of each leaf symbol, filled before the leaf is added.
    pub leaves: HashMap<Symbol, TensorFacts>,
    /// Side conditions that failed during saturation.
    pub failures: Vec<FailedCheck>,
}

/// The e-graph type.
pub type MoeGraph = EGraph<Moe, MoeFacts>;

/// Parses `s:5x2x16` (`s:` for a scalar shape).
pub fn parse_shape(symbol: &str) -> Option<Vec<i64>> {
    let dims = symbol.strip_prefix("s:")?;
    if dims.is_empty() {
        return Some(Vec::new());
    }
    dims.split('x').map(|d| d.parse().ok()).collect()
}

/// The symbol for a shape.
pub fn shape_symbol(dims: &[i64]) -> Symbol {
    Symbol::from(format!("s:{}", dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")))
}

fn tensor(dims: Vec<i64>, elem: &str) -> Option<TensorFacts> {
    Some(TensorFacts {
        dims,
        elem: elem.to_string(),
    })
}

fn broadcast(a: &TensorFacts, b: &TensorFacts) -> Option<TensorFacts> {
    let rank = a.dims.len().max(b.dims.len());
    let mut dims = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.dims.len() >= rank { a.dims[i + a.dims.len() - rank] } else { 1 };
        let db = if i + b.dims.len() >= rank { b.dims[i + b.dims.len() - rank] } else { 1 };
        dims.push(match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        });
    }
    tensor(dims, &a.elem)
}

impl Analysis<Moe> for MoeFacts {
    type Data = Facts;

    fn make(egraph: &mut MoeGraph, enode: &Moe, _id: Id) -> Facts {
        let t = |id: &Id| egraph[*id].data.tensor.clone();
        let int = |id: &Id| egraph[*id].data.int;
        let mut facts = Facts::default();
        match enode {
            Moe::Num(n) => facts.int = Some(*n),
            Moe::Leaf(symbol) => {
                let text = symbol.as_str();
                if let Some(dims) = parse_shape(text) {
                    facts.shape = Some(dims);
                } else if let Some(dtype) = text.strip_prefix("t:") {
                    facts.dtype = Some(dtype.to_string());
                } else {
                    facts.tensor = egraph.analysis.leaves.get(symbol).cloned();
                }
            }
            Moe::View([x, s]) => {
                if let (Some(x), Some(dims)) = (t(x), egraph[*s].data.shape.clone()) {
                    if dims.iter().product::<i64>() == x.dims.iter().product::<i64>() {
                        facts.tensor = tensor(dims, &x.elem);
                    }
                }
            }
            Moe::Unsqueeze([x, d]) => {
                if let (Some(x), Some(d)) = (t(x), int(d)) {
                    let d = if d < 0 { d + x.dims.len() as i64 + 1 } else { d };
                    if (0..=x.dims.len() as i64).contains(&d) {
                        let mut dims = x.dims.clone();
                        dims.insert(d as usize, 1);
                        facts.tensor = tensor(dims, &x.elem);
                    }
                }
            }
            Moe::Gather([x, i]) => {
                if let (Some(x), Some(i)) = (t(x), t(i)) {
                    if i.dims.len() == 1 && !x.dims.is_empty() {
                        let mut dims = vec![i.dims[0]];
                        dims.extend_from_slice(&x.dims[1..]);
                        facts.tensor = tensor(dims, &x.elem);
                    }
                }
            }
            Moe::Sum([x, d]) => {
                if let (Some(x), Some(d)) = (t(x), int(d)) {
                    let d = if d < 0 { d + x.dims.len() as i64 } else { d };
                    if (0..x.dims.len() as i64).contains(&d) {
                        let mut dims = x.dims.clone();
                        dims.remove(d as usize);
                        facts.tensor = tensor(dims, &x.elem);
                    }
                }
            }
            Moe::Mul([a, b]) | Moe::Add([a, b]) => {
                if let (Some(a), Some(b)) = (t(a), t(b)) {
                    facts.tensor = broadcast(&a, &b);
                }
            }
            Moe::FloorDiv([x, _]) => facts.tensor = t(x),
            Moe::Cast([x, d]) => {
                if let (Some(x), Some(d)) = (t(x), egraph[*d].data.dtype.clone()) {
                    facts.tensor = tensor(x.dims, &d);
                }
            }
            Moe::SortPerm(x) => {
                if let Some(x) = t(x) {
                    if x.dims.len() == 1 {
                        facts.tensor = tensor(x.dims.clone(), "i64");
                        facts.permutation_of = Some(x.dims[0]);
                    }
                }
            }
            Moe::SortVals(x) => facts.tensor = t(x),
            Moe::InvPerm(p) => {
                facts.tensor = t(p);
                facts.permutation_of = egraph[*p].data.permutation_of;
            }
            Moe::Zeros(s) => {
                if let Some(dims) = egraph[*s].data.shape.clone() {
                    facts.tensor = tensor(dims, "f32");
                }
            }
            Moe::IndexAdd([base, _, _])
            | Moe::IndexPutAcc([base, _, _])
            | Moe::ScatterAdd([base, _, _])
            | Moe::Scatter([base, _, _]) => facts.tensor = t(base),
            Moe::ExpandRows([i, n]) => {
                if let (Some(i), Some(n)) = (t(i), int(n)) {
                    facts.tensor = tensor(vec![i.dims[0], n], &i.elem);
                }
            }
            Moe::Counts([_, e]) => {
                if let Some(e) = int(e) {
                    facts.tensor = tensor(vec![e], "i64");
                }
            }
            Moe::Cumsum(x) => facts.tensor = t(x),
            Moe::Gmm([x, w, _, _]) | Moe::QGmm([x, w, _, _, _, _]) | Moe::BGmm([x, w, _, _, _, _]) => {
                if let (Some(x), Some(w)) = (t(x), t(w)) {
                    if x.dims.len() == 2 && w.dims.len() == 3 {
                        let elem = if matches!(enode, Moe::QGmm(_)) { "f32" } else { x.elem.as_str() };
                        facts.tensor = tensor(vec![x.dims[0], w.dims[2]], elem);
                    }
                }
            }
            Moe::Combine(_) | Moe::WCombine(_) | Moe::WCombineShared(_) => {}
        }
        facts
    }

    fn merge(&mut self, a: &mut Facts, b: Facts) -> DidMerge {
        let before = a.clone();
        // Canonical nodes carry no shape of their own; any member's shape is the class's.
        if a.tensor.is_none() {
            a.tensor = b.tensor.clone();
        }
        if a.int.is_none() {
            a.int = b.int;
        }
        if a.permutation_of.is_none() {
            a.permutation_of = b.permutation_of;
        }
        if a.shape.is_none() {
            a.shape = b.shape.clone();
        }
        if a.dtype.is_none() {
            a.dtype = b.dtype.clone();
        }
        let changed_a = *a != before;
        let mut merged_into_b = b;
        if merged_into_b.tensor.is_none() {
            merged_into_b.tensor = a.tensor.clone();
        }
        DidMerge(changed_a, merged_into_b != *a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_round_trip_through_symbols() {
        assert_eq!(parse_shape(shape_symbol(&[5, 2, 16]).as_str()), Some(vec![5, 2, 16]));
        assert_eq!(parse_shape("s:"), Some(vec![]));
        assert_eq!(parse_shape("v3"), None);
    }

    #[test]
    fn sortperm_of_a_vector_is_a_permutation_of_its_length() {
        let mut graph = MoeGraph::default();
        graph.analysis.leaves.insert(
            Symbol::from("v0"),
            TensorFacts {
                dims: vec![10],
                elem: "i64".into(),
            },
        );
        let leaf = graph.add(Moe::Leaf(Symbol::from("v0")));
        let perm = graph.add(Moe::SortPerm(leaf));
        let inverse = graph.add(Moe::InvPerm(perm));
        assert_eq!(graph[perm].data.permutation_of, Some(10));
        assert_eq!(graph[inverse].data.permutation_of, Some(10));
        assert_eq!(graph[leaf].data.permutation_of, None);
    }
}

//! The e-graph of one block's dataflow: each op result that the recognizer understands becomes
//! a node of [`Moe`] (by what the torch or npu op means), every other value a leaf. The builder
//! remembers which MLIR values each e-class came from, so that the extracted form can reuse them.

use super::language::{Moe, MoeGraph, TensorFacts, shape_symbol};
use crate::frontend::torch_values::TorchValue;
use egg::{Id, Symbol};
use gmmfr_dialect::graph::producer;
use gmmfr_dialect::types::TensorInfo;
use melior::ir::{BlockLike, BlockRef, OperationRef, Value, ValueLike, operation::OperationLike};

/// A combine-looking op: where a MoE layer's expert rows meet its tokens again.
#[derive(Clone, Debug)]
pub struct Candidate<'c, 'a> {
    /// The op whose result is the combine (sum, index_add, scatter_add, index_put).
    pub op: OperationRef<'c, 'a>,
    /// Its e-class.
    pub class: Id,
    /// The op's name, for messages.
    pub spelling: String,
    /// The per-slot spelling (transformers' `batched_mm`): rewritten by `per_slot`, not by the
    /// e-graph's combine rules.
    pub per_slot: bool,
}

/// The e-graph of one block and the way back to MLIR.
pub struct Dataflow<'c, 'a> {
    /// The e-graph.
    pub graph: MoeGraph,
    /// Every MLIR value that was added, with its (original) e-class.
    pub values: Vec<(Value<'c, 'a>, Id)>,
    /// The combine-looking ops, in block order.
    pub candidates: Vec<Candidate<'c, 'a>>,
    /// `values` by MLIR value (its handle), for constant-time lookups: a model has tens of
    /// thousands of values.
    index: std::collections::HashMap<usize, Id>,
    next_leaf: usize,
}

/// A map key for an MLIR value: its handle.
fn key(value: Value<'_, '_>) -> usize {
    value.to_raw().ptr as usize
}

fn facts_of(value: Value<'_, '_>) -> Option<TensorFacts> {
    let info = TensorInfo::of(value.r#type())?;
    let dims: Option<Vec<i64>> = info.dims.iter().map(|d| d.map(|d| d as i64)).collect();
    Some(TensorFacts {
        dims: dims?,
        elem: info.elem.to_string(),
    })
}

use crate::frontend::torch_values::torch_op_name as name_of;

impl<'c: 'a, 'a> Dataflow<'c, 'a> {
    /// Builds the e-graph of `block`'s ops (nested regions are not entered).
    pub fn build(block: BlockRef<'c, 'a>) -> Self {
        let mut this = Self {
            graph: MoeGraph::default(),
            values: Vec::new(),
            candidates: Vec::new(),
            index: std::collections::HashMap::new(),
            next_leaf: 0,
        };
        let mut next = block.first_operation();
        while let Some(op) = next {
            next = op.next_in_block();
            this.add_op(op);
        }
        this
    }

    /// The e-class of `value`, adding it as a leaf if it was not seen.
    pub fn class_of(&mut self, value: Value<'c, 'a>) -> Id {
        if let Some(id) = self.index.get(&key(value)) {
            return self.graph.find(*id);
        }
        let symbol = Symbol::from(format!("v{}", self.next_leaf));
        self.next_leaf += 1;
        if let Some(facts) = facts_of(value) {
            self.graph.analysis.leaves.insert(symbol, facts);
        }
        let id = self.graph.add(Moe::Leaf(symbol));
        self.record(value, id);
        id
    }

    /// The e-class of `value`, if it was added.
    pub fn class_lookup(&self, value: Value<'c, 'a>) -> Option<Id> {
        self.index.get(&key(value)).map(|id| self.graph.find(*id))
    }

    /// Every MLIR value now in e-class `class`.
    pub fn values_in(&self, class: Id) -> Vec<Value<'c, 'a>> {
        let class = self.graph.find(class);
        self.values
            .iter()
            .filter(|(_, id)| self.graph.find(*id) == class)
            .map(|(v, _)| *v)
            .collect()
    }

    fn num(&mut self, n: i64) -> Id {
        self.graph.add(Moe::Num(n))
    }

    fn record(&mut self, value: Value<'c, 'a>, id: Id) {
        self.index.entry(key(value)).or_insert(id);
        self.values.push((value, id));
    }

    fn add_op(&mut self, op: OperationRef<'c, 'a>) {
        let name = name_of(&op);
        let operand = |i: usize| op.operand(i).ok();
        let result = |i: usize| op.result(i).ok().map(Value::from);
        let Some(out) = result(0) else { return };
        let node = match name.as_str() {
            "torch.aten.view" | "torch.aten.reshape" | "torch.aten._unsafe_view" | "torch.aten.flatten.using_ints"
            | "tensor.expand_shape" | "tensor.collapse_shape" | "torch.aten.squeeze.dim" => {
                let (Some(x), Some(facts)) = (operand(0), facts_of(out)) else {
                    self.leaf(out);
                    return;
                };
                let x = self.class_of(x);
                let s = self.graph.add(Moe::Leaf(shape_symbol(&facts.dims)));
                Some(Moe::View([x, s]))
            }
            "torch.aten.unsqueeze" => match (operand(0), operand(1).and_then(|d| TorchValue::of(d).int())) {
                (Some(x), Some(d)) => {
                    let rank = facts_of(x).map(|f| f.dims.len() as i64).unwrap_or(0);
                    let d = if d < 0 { d + rank + 1 } else { d };
                    let x = self.class_of(x);
                    Some(Moe::Unsqueeze([x, self.num(d)]))
                }
                _ => None,
            },
            "torch.aten.index.Tensor" => {
                let indices = operand(1).map(TorchValue::of);
                match (operand(0), indices) {
                    (Some(x), Some(TorchValue::List(items))) if items.len() == 1 => {
                        match TorchValue::of(items[0]).tensor() {
                            Some(index) => {
                                let x = self.class_of(x);
                                let index = self.class_of(index);
                                Some(Moe::Gather([x, index]))
                            }
                            None => None,
                        }
                    }
                    _ => None,
                }
            }
            "torch.aten.index_select" => match (operand(0), operand(1).and_then(|d| TorchValue::of(d).int()), operand(2)) {
                (Some(x), Some(0), Some(index)) => {
                    let x = self.class_of(x);
                    let index = self.class_of(index);
                    Some(Moe::Gather([x, index]))
                }
                _ => None,
            },
            "torch.aten.sum.dim_IntList" => {
                let dims = operand(1).and_then(|d| TorchValue::of(d).ints());
                let keepdim = operand(2).map(TorchValue::of);
                match (operand(0), dims, keepdim) {
                    (Some(x), Some(dims), Some(TorchValue::Bool(false))) if dims.len() == 1 && sums_gathered_rows(x) => {
                        let x = self.class_of(x);
                        let node = Moe::Sum([x, self.num(dims[0])]);
                        self.candidate(op, &name, node)
                    }
                    (Some(x), Some(dims), Some(TorchValue::Bool(false))) if dims.len() == 1 && sums_per_slot_bmm_rows(x) => {
                        let class = self.class_of(x);
                        let node = Moe::Sum([class, self.num(dims[0])]);
                        let result = self.candidate(op, &name, node);
                        if let Some(last) = self.candidates.last_mut() {
                            last.per_slot = true;
                        }
                        result
                    }
                    _ => None,
                }
            }
            "torch.aten.mul.Tensor" | "torch.aten.add.Tensor" => {
                let alpha_is_one = name.ends_with("mul.Tensor")
                    || operand(2).map(|a| matches!(TorchValue::of(a), TorchValue::Int(1))).unwrap_or(false);
                match (operand(0), operand(1)) {
                    (Some(a), Some(b)) if alpha_is_one => {
                        let (a, b) = (self.class_of(a), self.class_of(b));
                        Some(if name.ends_with("mul.Tensor") { Moe::Mul([a, b]) } else { Moe::Add([a, b]) })
                    }
                    _ => None,
                }
            }
            "torch.aten.div.Tensor_mode" | "torch.aten.div.Scalar_mode" | "torch.aten.floor_divide.Scalar"
            | "torch.aten.floor_divide" => {
                let mode_is_floor = if name.contains("_mode") {
                    matches!(operand(2).map(TorchValue::of), Some(TorchValue::Str(ref s)) if s == "floor")
                } else {
                    true
                };
                let divisor = operand(1).and_then(scalar_int);
                let integer = facts_of(out).map(|f| f.elem.starts_with('i')).unwrap_or(false);
                match (operand(0), divisor) {
                    (Some(x), Some(k)) if mode_is_floor && integer && k > 0 => {
                        let x = self.class_of(x);
                        Some(Moe::FloorDiv([x, self.num(k)]))
                    }
                    _ => None,
                }
            }
            "torch.prims.convert_element_type" | "torch.aten.to.dtype" | "torch.aten._to_copy" => {
                match (operand(0), facts_of(out)) {
                    (Some(x), Some(facts)) => {
                        let x = self.class_of(x);
                        let d = self.graph.add(Moe::Leaf(Symbol::from(format!("t:{}", facts.elem))));
                        Some(Moe::Cast([x, d]))
                    }
                    _ => None,
                }
            }
            "torch.aten.sort" | "torch.aten.sort.stable" => {
                let ascending = op
                    .operand(op.operand_count().saturating_sub(1))
                    .ok()
                    .map(|d| matches!(TorchValue::of(d), TorchValue::Bool(false)))
                    .unwrap_or(false);
                let one_d = operand(0).and_then(facts_of).map(|f| f.dims.len() == 1).unwrap_or(false);
                if let (Some(x), Some(perm), true, true) = (operand(0), result(1), ascending, one_d) {
                    let x = self.class_of(x);
                    let values = self.graph.add(Moe::SortVals(x));
                    self.record(out, values);
                    let perm_id = self.graph.add(Moe::SortPerm(x));
                    self.record(perm, perm_id);
                    return;
                }
                None
            }
            "torch.aten.argsort" | "torch.aten.argsort.stable" => {
                let one_d = operand(0).and_then(facts_of).map(|f| f.dims.len() == 1).unwrap_or(false);
                let descending = op
                    .operand(op.operand_count().saturating_sub(1))
                    .ok()
                    .map(|d| matches!(TorchValue::of(d), TorchValue::Bool(true)))
                    .unwrap_or(true);
                match operand(0) {
                    Some(x) if one_d && !descending => {
                        let x = self.class_of(x);
                        Some(Moe::SortPerm(x))
                    }
                    _ => None,
                }
            }
            "torch.aten.index_put" | "torch.aten.index_put_" => self.index_put(op, out, &name),
            "torch.aten.full_like" | "torch.aten.full" | "torch.aten.new_full"
                if operand(1).map(is_zero_scalar).unwrap_or(false) =>
            {
                facts_of(out).map(|f| {
                    let s = self.graph.add(Moe::Leaf(shape_symbol(&f.dims)));
                    Moe::Zeros(s)
                })
            }
            "torch.aten.zeros" | "torch.aten.zeros_like" | "torch.aten.new_zeros" => {
                let facts = facts_of(out);
                facts.map(|f| {
                    let s = self.graph.add(Moe::Leaf(shape_symbol(&f.dims)));
                    Moe::Zeros(s)
                })
            }
            "torch.aten.index_add" => {
                let dim = operand(1).and_then(|d| TorchValue::of(d).int());
                let alpha_is_one = operand(4).map(|a| matches!(TorchValue::of(a), TorchValue::Int(1))).unwrap_or(true);
                match (operand(0), dim, operand(2), operand(3)) {
                    (Some(base), Some(0), Some(index), Some(src)) if alpha_is_one => {
                        let node = Moe::IndexAdd([self.class_of(base), self.class_of(index), self.class_of(src)]);
                        self.candidate(op, &name, node)
                    }
                    _ => None,
                }
            }
            "torch.aten.scatter_add" => {
                let dim = operand(1).and_then(|d| TorchValue::of(d).int());
                match (operand(0), dim, operand(2), operand(3)) {
                    (Some(base), Some(0), Some(index), Some(src)) => {
                        let node = Moe::ScatterAdd([self.class_of(base), self.class_of(index), self.class_of(src)]);
                        self.candidate(op, &name, node)
                    }
                    _ => None,
                }
            }
            "torch.aten.expand" => {
                // idx[:, None].expand(-1, n): the row index repeated along columns.
                let sizes = operand(1).and_then(|s| TorchValue::of(s).ints());
                let source = operand(0).and_then(producer);
                match (source, sizes) {
                    (Some((unsqueeze, 0)), Some(sizes))
                        if name_of(&unsqueeze) == "torch.aten.unsqueeze"
                            && unsqueeze.operand(1).ok().and_then(|d| TorchValue::of(d).int()) == Some(1)
                            && sizes.len() == 2 =>
                    {
                        match (unsqueeze.operand(0).ok(), facts_of(out)) {
                            (Some(index), Some(facts)) => {
                                let index = self.class_of(index);
                                Some(Moe::ExpandRows([index, self.num(facts.dims[1])]))
                            }
                            _ => None,
                        }
                    }
                    _ => None,
                }
            }
            "torch.aten.bincount" => {
                // bincount(ids, None, minlength=e): e bins when every id is below e (the length is
                // data-dependent, so it is typed dynamic; a static result type must agree).
                let weights_none = operand(1).map(|w| TorchValue::of(w).is_none()).unwrap_or(false);
                let bins = operand(2).and_then(|m| TorchValue::of(m).int());
                let typed = facts_of(out).map(|f| f.dims);
                match (operand(0), bins, weights_none) {
                    (Some(ids), Some(bins), true) if typed.as_ref().is_none_or(|d| d == &vec![bins]) => {
                        let ids = self.class_of(ids);
                        Some(Moe::Counts([ids, self.num(bins)]))
                    }
                    _ => None,
                }
            }
            "torch.aten.histc" => self.histc(op, out),
            "torch.aten.cumsum" => match (operand(0), operand(1).and_then(|d| TorchValue::of(d).int())) {
                (Some(x), Some(0 | -1)) => {
                    let x = self.class_of(x);
                    Some(Moe::Cumsum(x))
                }
                _ => None,
            },
            "npu.grouped_matmul" => self.grouped_matmul(op),
            // Widening an integer keeps its value: the same e-class.
            "arith.extsi" => {
                if let Some(x) = operand(0) {
                    let id = self.class_of(x);
                    self.record(out, id);
                    return;
                }
                None
            }
            _ => None,
        };
        match node {
            Some(node) => {
                let id = self.graph.add(node);
                self.record(out, id);
            }
            None => {
                self.leaf(out);
            }
        }
    }

    fn leaf(&mut self, value: Value<'c, 'a>) -> Option<Moe> {
        self.class_of(value);
        None
    }

    fn candidate(&mut self, op: OperationRef<'c, 'a>, name: &str, node: Moe) -> Option<Moe> {
        let id = self.graph.add(node.clone());
        self.candidates.push(Candidate {
            op,
            class: id,
            spelling: name.to_string(),
            per_slot: false,
        });
        Some(node)
    }

    /// `index_put(empty, [p], arange(n))` is the inverse permutation of `p`; with
    /// `accumulate=True` into zeros it is a scatter-add of rows.
    fn index_put(&mut self, op: OperationRef<'c, 'a>, _out: Value<'c, 'a>, name: &str) -> Option<Moe> {
        let base = op.operand(0).ok()?;
        let indices = TorchValue::of(op.operand(1).ok()?);
        let values = op.operand(2).ok()?;
        let accumulate = matches!(TorchValue::of(op.operand(3).ok()?), TorchValue::Bool(true));
        let TorchValue::List(items) = indices else { return None };
        if items.len() != 1 {
            return None;
        }
        let index = TorchValue::of(items[0]).tensor()?;
        if accumulate {
            let node = Moe::IndexPutAcc([self.class_of(base), self.class_of(index), self.class_of(values)]);
            return self.candidate(op, name, node);
        }
        if is_arange_from_zero(values) {
            let p = self.class_of(index);
            return Some(Moe::InvPerm(p));
        }
        None
    }

    /// `histc(float(ids), bins=e, min=0, max=e-1)` counts each expert id.
    fn histc(&mut self, op: OperationRef<'c, 'a>, _out: Value<'c, 'a>) -> Option<Moe> {
        let input = op.operand(0).ok()?;
        let bins = TorchValue::of(op.operand(1).ok()?);
        let min = TorchValue::of(op.operand(2).ok()?);
        let max = TorchValue::of(op.operand(3).ok()?);
        let bins = bins.int()?;
        let number = |v: &TorchValue<'_, '_>| match v {
            TorchValue::Int(i) => Some(*i as f64),
            TorchValue::Float(f) => Some(*f),
            _ => None,
        };
        if number(&min)? != 0.0 || number(&max)? != (bins - 1) as f64 {
            return None;
        }
        // histc takes floats; the ids are the integers the cast came from.
        let (cast, _) = producer(input)?;
        if !matches!(name_of(&cast).as_str(), "torch.prims.convert_element_type" | "torch.aten.to.dtype") {
            return None;
        }
        let ids = cast.operand(0).ok()?;
        if !facts_of(ids)?.elem.starts_with('i') {
            return None;
        }
        let ids = self.class_of(ids);
        Some(Moe::Counts([ids, self.num(bins)]))
    }

    fn grouped_matmul(&mut self, op: OperationRef<'c, 'a>) -> Option<Moe> {
        let view = gmmfr_dialect::op_view::NpuOp::new(op).ok()??;
        if view.operand("bias").is_some() {
            return None;
        }
        let group_list_type = view.attribute("group_list_type").and_then(|a| {
            melior::ir::attribute::IntegerAttribute::try_from(a).ok().map(|a| a.value())
        })?;
        let w = view.operand("weight")?;
        if facts_of(w)?.dims.len() != 3 {
            return None;
        }
        let x = self.class_of(view.operand("x")?);
        let w = self.class_of(w);
        let gl = self.class_of(view.operand("group_list")?);
        let t = self.num(group_list_type);
        match (view.operand("scale"), view.operand("per_token_scale")) {
            (None, None) => Some(Moe::Gmm([x, w, gl, t])),
            (Some(scale), Some(pts)) => {
                let scale = self.class_of(scale);
                let pts = self.class_of(pts);
                Some(Moe::QGmm([x, w, gl, t, scale, pts]))
            }
            _ => None,
        }
    }
}

/// Whether `x` is a view of gathered rows (`x[idx].view(...)`): only such sums are combine
/// candidates, so that the many other sums of a model are not reported.
fn sums_gathered_rows(x: Value<'_, '_>) -> bool {
    let Some((view, _)) = producer(x) else { return false };
    if !matches!(name_of(&view).as_str(), "torch.aten.view" | "torch.aten.reshape" | "torch.aten._unsafe_view") {
        return false;
    }
    let Some(source) = view.operand(0).ok() else { return false };
    producer(source).is_some_and(|(op, _)| matches!(name_of(&op).as_str(), "torch.aten.index.Tensor" | "torch.aten.index_select"))
}

/// Whether `x` views rows that a `bmm` computed one slot at a time on expert weights gathered by
/// the expert ids (transformers' `batched_mm` experts), possibly plus a bias and multiplied by
/// router weights: `view(mul(squeeze(bmm(W[ids], ...)) + b[ids], w), (T, K, n))`.
fn sums_per_slot_bmm_rows(x: Value<'_, '_>) -> bool {
    let Some((view, _)) = producer(x) else { return false };
    if !matches!(name_of(&view).as_str(), "torch.aten.view" | "torch.aten.reshape" | "torch.aten._unsafe_view") {
        return false;
    }
    let mut frontier: Vec<Value> = view.operand(0).ok().into_iter().collect();
    for _ in 0..6 {
        let mut next = Vec::new();
        for value in frontier {
            let Some((op, _)) = producer(value) else { continue };
            match name_of(&op).as_str() {
                "torch.aten.bmm" => {
                    // Either operand: bmm(W[ids], rows[..., None]) or bmm(rows[:, None], W[ids]).
                    let gathered = (0..2).any(|i| {
                        op.operand(i)
                            .ok()
                            .and_then(producer)
                            .is_some_and(|(w, _)| matches!(name_of(&w).as_str(), "torch.aten.index.Tensor" | "torch.aten.index_select"))
                    });
                    if gathered {
                        return true;
                    }
                }
                "torch.aten.mul.Tensor" | "torch.aten.add.Tensor" | "torch.prims.squeeze" | "torch.aten.squeeze.dim"
                | "torch.aten.unsqueeze" | "torch.aten.view" => {
                    next.extend((0..op.operand_count().min(2)).filter_map(|i| op.operand(i).ok()));
                }
                _ => {}
            }
        }
        frontier = next;
    }
    false
}

/// A torch scalar operand equal to zero.
fn is_zero_scalar(value: Value<'_, '_>) -> bool {
    match TorchValue::of(value) {
        TorchValue::Int(0) => true,
        TorchValue::Float(f) => f == 0.0,
        _ => false,
    }
}

/// An integer known at compile time from a torch scalar operand: an int constant, or a 0-d tensor
/// made from one (`prim.NumToTensor.Scalar`).
fn scalar_int(value: Value<'_, '_>) -> Option<i64> {
    if let Some(v) = TorchValue::of(value).int() {
        return Some(v);
    }
    let (op, _) = producer(value)?;
    if name_of(&op) == "torch.prim.NumToTensor.Scalar" {
        return TorchValue::of(op.operand(0).ok()?).int();
    }
    None
}

/// `arange(0, n, 1)` (or `arange(n)`), whatever its dtype.
fn is_arange_from_zero(value: Value<'_, '_>) -> bool {
    let Some((op, _)) = producer(value) else { return false };
    match name_of(&op).as_str() {
        "torch.aten.arange" => true,
        "torch.aten.arange.start" | "torch.aten.arange.start_step" => {
            let start = op.operand(0).ok().and_then(|v| TorchValue::of(v).int());
            let step_ok = name_of(&op) == "torch.aten.arange.start"
                || op.operand(2).ok().and_then(|v| TorchValue::of(v).int()) == Some(1);
            start == Some(0) && step_ok
        }
        _ => false,
    }
}

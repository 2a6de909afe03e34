//! The dataflow graph of every function as a petgraph `DiGraph`, and the facts the analyzer reads
//! from it: the other users of an intermediate, a dependence path that fusing would turn into a
//! cycle, the regions two ops live in, and the MoE subgraph around a candidate.
//!
//! Nodes are the ops nested in a function (at any depth, the function itself excluded). Edges:
//! a value edge from the op defining a value to each op using it (once per use), and a region
//! edge from an op nested in a region to the op owning that region: the enclosing op depends on
//! everything its regions compute, so a path through a nested use is a dependence of the
//! enclosing op.

use super::{GraphFact, NodeRole, OpDesc, Subgraph, SubgraphNode};
use gmmfr_dialect::graph::producer;
use gmmfr_dialect::location::SourceLoc;
use melior::ir::attribute::StringAttribute;
use melior::ir::block::BlockLike;
use melior::ir::operation::OperationLike;
use melior::ir::{Module, OperationRef, RegionLike};
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// An edge of the dataflow graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    /// Result `result` of the source op is operand `operand` of the target op.
    Value {
        /// The result number at the defining op.
        result: usize,
        /// The operand number at the using op.
        operand: usize,
    },
    /// The source op is nested in a region of the target op.
    Region,
}

/// The dataflow graph of one function (or other top-level op with regions).
pub struct FunctionGraph<'c, 'a> {
    /// The function's symbol (or the op name when it has none).
    pub name: String,
    /// The function op.
    pub function: OperationRef<'c, 'a>,
    /// Ops and their dependences.
    pub graph: DiGraph<OperationRef<'c, 'a>, Edge>,
    index: HashMap<usize, NodeIndex>,
}

fn key(op: OperationRef<'_, '_>) -> usize {
    op.to_raw().ptr as usize
}

fn op_name(op: OperationRef<'_, '_>) -> String {
    op.name().as_string_ref().as_str().unwrap_or("").to_string()
}

fn symbol(op: OperationRef<'_, '_>) -> Option<String> {
    op.attribute("sym_name")
        .ok()
        .and_then(|a| StringAttribute::try_from(a).ok())
        .map(|s| s.value().to_string())
}

/// How the report names an op: its name (with `@symbol` when it has one) and location.
pub fn describe(op: OperationRef<'_, '_>) -> OpDesc {
    let name = match symbol(op) {
        Some(symbol) => format!("{} @{symbol}", op_name(op)),
        None => op_name(op),
    };
    OpDesc {
        name,
        location: SourceLoc::from_location(op.location()),
    }
}

/// The graph of every function of the module (and of nested modules), in IR order.
pub fn build<'c, 'a>(module: &'a Module<'c>) -> Vec<FunctionGraph<'c, 'a>> {
    let mut graphs = Vec::new();
    let mut blocks = vec![module.body()];
    while let Some(block) = blocks.pop() {
        let mut next = block.first_operation();
        while let Some(op) = next {
            next = op.next_in_block();
            if op_name(op) == "builtin.module" {
                if let Some(inner) = op.region(0).ok().and_then(|r| r.first_block()) {
                    blocks.push(inner);
                }
            } else if op.region_count() > 0 {
                graphs.push(FunctionGraph::of(op));
            }
        }
    }
    graphs
}

/// Every op nested in `root` (not `root` itself), in pre-order (IR order). melior's `walk`
/// hands its callback ops of a closure-local lifetime, which a graph cannot keep, so this walks
/// regions, blocks and ops itself, with an explicit stack rather than recursion.
fn nested_ops<'c, 'a>(root: OperationRef<'c, 'a>) -> Vec<OperationRef<'c, 'a>> {
    let children = |op: OperationRef<'c, 'a>| {
        let mut inner = Vec::new();
        for region in op.regions() {
            let mut block = region.first_block();
            while let Some(current) = block {
                let mut next = current.first_operation();
                while let Some(nested) = next {
                    inner.push(nested);
                    next = nested.next_in_block();
                }
                block = current.next_in_region();
            }
        }
        inner
    };
    let mut found = Vec::new();
    let mut stack: Vec<OperationRef<'c, 'a>> = children(root).into_iter().rev().collect();
    while let Some(op) = stack.pop() {
        found.push(op);
        if op.region_count() > 0 {
            stack.extend(children(op).into_iter().rev());
        }
    }
    found
}

impl<'c, 'a> FunctionGraph<'c, 'a> {
    /// Builds the graph of the ops nested in `function`.
    pub fn of(function: OperationRef<'c, 'a>) -> Self {
        let mut graph = DiGraph::new();
        let mut index = HashMap::new();
        for op in nested_ops(function) {
            index.insert(key(op), graph.add_node(op));
        }
        // Edges once every op has a node: a use may precede its definition in block order
        // (graph regions, or a dominating block listed later).
        let nodes: Vec<NodeIndex> = graph.node_indices().collect();
        for node in nodes {
            let op = graph[node];
            for (operand, value) in op.operands().enumerate() {
                if let Some((definer, result)) = producer(value)
                    && let Some(&from) = index.get(&key(definer))
                {
                    graph.add_edge(from, node, Edge::Value { result, operand });
                }
            }
            if let Some(parent) = op.parent_operation()
                && let Some(&to) = index.get(&key(parent))
            {
                graph.add_edge(node, to, Edge::Region);
            }
        }
        Self {
            name: symbol(function).unwrap_or_else(|| op_name(function)),
            function,
            graph,
            index,
        }
    }

    /// The node of an op of this function.
    pub fn node(&self, op: OperationRef<'_, '_>) -> Option<NodeIndex> {
        self.index.get(&key(op)).copied()
    }

    /// The op of a node.
    pub fn op(&self, node: NodeIndex) -> OperationRef<'c, 'a> {
        self.graph[node]
    }

    /// Every use of a result of `node`: (user, result number, operand number), in edge order.
    pub fn uses(&self, node: NodeIndex) -> Vec<(NodeIndex, usize, usize)> {
        let mut found: Vec<(NodeIndex, usize, usize)> = self
            .graph
            .edges_directed(node, Direction::Outgoing)
            .filter_map(|edge| match edge.weight() {
                Edge::Value { result, operand } => Some((edge.target(), *result, *operand)),
                Edge::Region => None,
            })
            .collect();
        // petgraph lists outgoing edges newest first; report them in IR order.
        found.sort_by_key(|(user, _, operand)| (user.index(), *operand));
        found
    }

    /// The ops whose results `node` uses, each once.
    pub fn producers(&self, node: NodeIndex) -> Vec<NodeIndex> {
        let mut found: Vec<NodeIndex> = self
            .graph
            .edges_directed(node, Direction::Incoming)
            .filter(|edge| matches!(edge.weight(), Edge::Value { .. }))
            .map(|edge| edge.source())
            .collect();
        found.sort();
        found.dedup();
        found
    }

    /// A shortest dependence path from `from` to `to` (both included), if any.
    pub fn path(&self, from: NodeIndex, to: NodeIndex) -> Option<Vec<NodeIndex>> {
        petgraph::algo::astar(&self.graph, from, |n| n == to, |_| 1usize, |_| 0usize).map(|(_, path)| path)
    }

    /// The ops enclosing `op`, innermost first, up to and including the function.
    fn enclosing(&self, op: OperationRef<'c, 'a>) -> Vec<OperationRef<'c, 'a>> {
        let mut chain = Vec::new();
        let mut current = op.parent_operation();
        while let Some(parent) = current {
            chain.push(parent);
            if key(parent) == key(self.function) {
                break;
            }
            current = parent.parent_operation();
        }
        chain
    }

    /// The graph facts behind a candidate: every use of the grouped matmul's result other than
    /// the candidate's own (`own`: the finalize op's rows operand, or the reshape feeding it), a
    /// shortest would-be cycle through one of them, and the regions of the two ops when they
    /// are in different blocks. Also returns the nodes behind them for the subgraph: the
    /// obstacles (other users, ops on the path) and the enclosing ops.
    pub fn facts(&self, gmm: NodeIndex, finalize: NodeIndex, own: NodeIndex) -> Facts {
        let mut facts = Vec::new();
        let mut obstacles = Vec::new();
        let mut enclosing = Vec::new();
        let mut cycle: Option<Vec<NodeIndex>> = None;
        for (user, _, operand) in self.uses(gmm) {
            if user == own && operand == 0 {
                continue;
            }
            let path = if user == finalize {
                None
            } else {
                self.path(user, finalize)
            };
            facts.push(GraphFact::OtherUser {
                user: describe(self.op(user)),
                operand,
                reaches_finalize: path.is_some(),
            });
            obstacles.push(user);
            if let Some(path) = path
                && cycle.as_ref().is_none_or(|best| path.len() + 1 < best.len())
            {
                let mut full = vec![gmm];
                full.extend(path);
                cycle = Some(full);
            }
        }
        if let Some(path) = cycle {
            obstacles.extend(path.iter().copied().filter(|n| *n != gmm && *n != finalize));
            facts.push(GraphFact::WouldBeCycle {
                path: path.iter().map(|n| describe(self.op(*n))).collect(),
            });
        }
        let (gmm_op, finalize_op) = (self.op(gmm), self.op(finalize));
        if gmm_op.block() != finalize_op.block() {
            let gmm_chain = self.enclosing(gmm_op);
            let finalize_chain = self.enclosing(finalize_op);
            let gmm_keys: HashSet<usize> = gmm_chain.iter().map(|op| key(*op)).collect();
            let common = finalize_chain.iter().copied().find(|op| gmm_keys.contains(&key(*op)));
            let below = |chain: &[OperationRef<'c, 'a>]| -> Vec<OperationRef<'c, 'a>> {
                chain
                    .iter()
                    .copied()
                    .take_while(|op| common.is_none_or(|c| key(c) != key(*op)))
                    .collect()
            };
            let (gmm_below, finalize_below) = (below(&gmm_chain), below(&finalize_chain));
            enclosing.extend(gmm_below.iter().chain(&finalize_below).filter_map(|op| self.node(*op)));
            facts.push(GraphFact::DifferentRegions {
                gmm_enclosing: gmm_below.into_iter().map(describe).collect(),
                finalize_enclosing: finalize_below.into_iter().map(describe).collect(),
                common: common.map(describe),
            });
        }
        Facts {
            facts,
            obstacles,
            enclosing,
        }
    }

    /// The MoE subgraph around a candidate: the pair (and the reshape between them), the
    /// producers of their operands (following index plumbing back to the routing), and the
    /// obstacles found by [`FunctionGraph::facts`].
    pub fn subgraph(
        &self,
        gmm: NodeIndex,
        finalize: NodeIndex,
        reshape: Option<NodeIndex>,
        obstacles: &[NodeIndex],
        enclosing: &[NodeIndex],
    ) -> Subgraph {
        let mut roles: BTreeMap<NodeIndex, NodeRole> = BTreeMap::new();
        roles.insert(gmm, NodeRole::Gmm);
        roles.insert(finalize, NodeRole::Finalize);
        if let Some(reshape) = reshape {
            roles.insert(reshape, NodeRole::Reshape);
        }
        for node in enclosing {
            roles.entry(*node).or_insert(NodeRole::Enclosing);
        }
        for node in obstacles {
            roles.entry(*node).or_insert(NodeRole::Obstacle);
        }
        // Producers of the pair's operands; through index plumbing (reshapes, transposes,
        // casts, divisions) up to four ops back, so that the routing shows up.
        let mut queue: VecDeque<(NodeIndex, usize)> = [Some(gmm), Some(finalize), reshape]
            .into_iter()
            .flatten()
            .map(|n| (n, 0))
            .collect();
        while let Some((node, depth)) = queue.pop_front() {
            for definer in self.producers(node) {
                let name = op_name(self.op(definer));
                if NOISE.contains(&name.as_str()) || roles.contains_key(&definer) {
                    continue;
                }
                roles.insert(definer, NodeRole::Context);
                if depth < 4 && PLUMBING.contains(&name.as_str()) {
                    queue.push_back((definer, depth + 1));
                }
            }
        }
        // Only the edges of the included nodes: the subgraph costs its own size, not the
        // function's.
        let mut edges = Vec::new();
        for from in roles.keys() {
            for edge in self.graph.edges_directed(*from, Direction::Outgoing) {
                if roles.contains_key(&edge.target()) {
                    let region = matches!(edge.weight(), Edge::Region);
                    edges.push((from.index(), edge.target().index(), region));
                }
            }
        }
        edges.sort();
        edges.dedup();
        Subgraph {
            nodes: roles
                .into_iter()
                .map(|(node, role)| SubgraphNode {
                    key: node.index(),
                    op: describe(self.op(node)),
                    role,
                })
                .collect(),
            edges,
        }
    }
}

/// The graph facts of a candidate and the nodes behind them.
pub struct Facts {
    /// The facts, in the order: other users, would-be cycle, different regions.
    pub facts: Vec<GraphFact>,
    /// Other users of the intermediate and the ops on a would-be cycle.
    pub obstacles: Vec<NodeIndex>,
    /// The ops enclosing either end below their common ancestor.
    pub enclosing: Vec<NodeIndex>,
}

/// Ops that only move or reinterpret index data; the subgraph follows them back to the routing.
const PLUMBING: &[&str] = &[
    "tensor.expand_shape",
    "tensor.collapse_shape",
    "linalg.transpose",
    "arith.extsi",
    "arith.extui",
    "arith.extf",
    "arith.divsi",
    "tensor.insert_slice",
    "linalg.fill",
];

/// Ops left out of the subgraph: they add nodes without information.
const NOISE: &[&str] = &["arith.constant", "tensor.empty"];

//! The extraction cost: bytes a node moves (its tensor operands read plus its result written)
//! plus its arithmetic, in the units of one byte = one flop. The canonical combine forms read
//! the rows once and write the tokens once; the spellings they replace also write and read the
//! gathered, viewed and weighted intermediates, so the canonical forms are cheaper whenever
//! both are in the same e-class.

use super::language::{Moe, MoeGraph};
use egg::{CostFunction, Id, Language};

/// Bytes moved plus flops.
pub struct BytesAndFlops<'g> {
    graph: &'g MoeGraph,
}

impl<'g> BytesAndFlops<'g> {
    /// A cost function over `graph`'s facts.
    pub fn new(graph: &'g MoeGraph) -> Self {
        Self { graph }
    }

    fn elements(&self, id: Id) -> f64 {
        self.graph[id]
            .data
            .tensor
            .as_ref()
            .map(|t| t.dims.iter().map(|&d| d.max(0) as f64).product())
            .unwrap_or(0.0)
    }

    fn bytes(&self, id: Id) -> f64 {
        let size = self.graph[id]
            .data
            .tensor
            .as_ref()
            .map(|t| match t.elem.as_str() {
                "i8" | "i1" => 1.0,
                "f16" | "bf16" => 2.0,
                "f64" | "i64" => 8.0,
                _ => 4.0,
            })
            .unwrap_or(0.0);
        self.elements(id) * size
    }

    /// The cost of `node` alone (without its children).
    pub fn own_cost(&self, node: &Moe) -> f64 {
        let read: f64 = node.children().iter().map(|&c| self.bytes(c)).sum();
        match node {
            Moe::Num(_) | Moe::Leaf(_) => 0.0,
            Moe::Gmm([x, w, _, _]) | Moe::QGmm([x, w, _, _, _, _]) | Moe::BGmm([x, w, _, _, _, _]) => {
                let (m, k) = self.graph[*x]
                    .data
                    .tensor
                    .as_ref()
                    .map(|t| (t.dims[0] as f64, t.dims.get(1).copied().unwrap_or(0) as f64))
                    .unwrap_or((0.0, 0.0));
                let n = self.graph[*w].data.tensor.as_ref().and_then(|t| t.dims.get(2).copied()).unwrap_or(0) as f64;
                read + 2.0 * m * k * n + 4.0 * m * n
            }
            // The canonical forms: rows read once, tokens written once, one multiply-add per element.
            Moe::Combine([_, y]) | Moe::WCombine([_, y, _]) | Moe::WCombineShared([_, y, _, _]) => {
                read + 2.0 * self.elements(*y)
            }
            // Everything else writes a result about as large as its largest operand.
            _ => {
                let largest = node.children().iter().map(|&c| self.bytes(c)).fold(0.0, f64::max);
                read + largest
            }
        }
    }
}

impl CostFunction<Moe> for BytesAndFlops<'_> {
    type Cost = f64;

    fn cost<C>(&mut self, enode: &Moe, mut costs: C) -> f64
    where
        C: FnMut(Id) -> f64,
    {
        self.own_cost(enode) + enode.fold(0.0, |sum, id| sum + costs(id))
    }
}

//! `torch-lower-aten`: lower the aten ops left around the MoE layers (after import and
//! recognition) to upstream tensor, linalg, arith and math ops, so that the module runs on the
//! CPU target; every op it cannot lower stays, with the reason.

use crate::frontend::aten::lower;
use crate::frontend::remark;
use crate::frontend::splice::splice;
use crate::frontend::torch_values::torch_op_name;
use crate::pass::{Pass, PassError, PassInfo, PassOptions, PassOutcome, check_option_names};
use crate::recognition::materialize::erase_dead;
use gmmfr_dialect::context::NpuContext;
use gmmfr_dialect::graph::erase;
use gmmfr_dialect::location::SourceLoc;
use melior::ir::{BlockLike, BlockRef, Module, OperationRef, ValueLike, attribute::AttributeLike, operation::OperationLike};
use std::collections::BTreeMap;

/// The pass's description.
pub const INFO: PassInfo = PassInfo {
    name: "torch-lower-aten",
    summary: "Lower the remaining aten ops (reshapes, permutes, splits, elementwise math, mm/bmm, sums, gathers) to tensor/linalg/arith/math",
    description: "Runs after torch-to-npu (and usually npu-recognize-moe-combine, which reads aten semantics). \
                  view/reshape/unsqueeze/squeeze/flatten become tensor.collapse_shape + expand_shape; \
                  permute/transpose/t linalg.transpose; clone/alias/contiguous vanish; expand a broadcasting \
                  linalg.generic; split_with_sizes/split/chunk (+ ListUnpack) and slice tensor.extract_slice; \
                  cat tensor.insert_slice; add/sub/mul/div (tensor or scalar, with alpha and rounding modes), \
                  neg, relu, sigmoid, silu, exp, rsqrt, pow, maximum/minimum and dtype conversions a broadcasting \
                  linalg.generic computing half floats in f32; mm/bmm linalg.matmul/batch_matmul accumulating in \
                  f32; sum.dim_IntList/mean.dim linalg.reduce; index.Tensor/index_select a clamped gather; \
                  sort/cumsum/bincount/histc/index_put loops over 1-D tensors (out-of-range indices skipped); \
                  clamp, arange, full/zeros/ones/empty constants, vtensor.literal weights as arith.constant, embedding, softmax, topk, torch_npu's npu_swiglu. Needs \
                  static shapes and constant shape arguments; any op it cannot lower stays, with a remark saying \
                  why, and one remark per op name still left.",
    options: &[],
};

/// The lowering pass.
pub struct TorchLowerAtenPass;

impl TorchLowerAtenPass {
    /// Creates the pass from pipeline options (it has none).
    pub fn create(options: &PassOptions) -> Result<Self, PassError> {
        check_option_names(&INFO, options)?;
        Ok(Self)
    }
}

/// Replaces a `torch.vtensor.literal` by an `arith.constant` holding its `value` attribute.
fn literal_constant<'c, 'a>(context: &'c NpuContext, block: &BlockRef<'c, 'a>, op: OperationRef<'c, 'a>) -> Result<(), String> {
    let value = op.attribute("value").map_err(|_| "a literal without a value")?;
    let result = op.result(0).map_err(|_| "no result")?;
    if value.r#type() != result.r#type() {
        return Err(format!("its value has type {}, its result {}", value.r#type(), result.r#type()));
    }
    let constant = melior::dialect::arith::constant(context.mlir(), value, op.location());
    let constant = block.insert_operation_before(op, constant);
    let new = constant.result(0).map_err(|_| "no constant result")?;
    // SAFETY: both values are live in this block and of the same type (checked above).
    unsafe { mlir_sys::mlirValueReplaceAllUsesOfWith(result.to_raw(), new.to_raw()) }
    erase(op);
    Ok(())
}

/// Ops that only carry constants and lists to other torch ops: erased once unused.
fn is_structural(name: &str) -> bool {
    name.starts_with("torch.constant.") || name == "torch.prim.ListConstruct"
}

impl Pass for TorchLowerAtenPass {
    fn info(&self) -> &'static PassInfo {
        &INFO
    }

    fn run(&self, context: &NpuContext, module: &mut Module<'_>) -> Result<PassOutcome, PassError> {
        let mut outcome = PassOutcome::default();
        let mut lowered: BTreeMap<String, u64> = BTreeMap::new();
        let mut left: BTreeMap<String, (u64, SourceLoc)> = BTreeMap::new();
        for (_, block) in crate::frontend::function_bodies(module) {
            let mut next = block.first_operation();
            while let Some(op) = next {
                next = op.next_in_block();
                let name = torch_op_name(&op);
                if !name.starts_with("torch.") || is_structural(&name) {
                    continue;
                }
                if name == "torch.vtensor.literal" {
                    // A weight baked into the export: the same attribute (inline elements or a
                    // dense_resource blob of this context) on an arith.constant. Built from the
                    // attribute object, not its text: re-parsing a resource name would make a new,
                    // empty resource.
                    match literal_constant(context, &block, op) {
                        Ok(()) => *lowered.entry(name).or_insert(0) += 1,
                        Err(why) => outcome
                            .diagnostics
                            .push(remark(SourceLoc::from_location(op.location()), format!("{name} not lowered: {why}"))),
                    }
                    continue;
                }
                let result = lower(op).and_then(|found| match found {
                    None => Ok(false),
                    Some(l) => {
                        let text = l.snippet.function(&l.results);
                        let new = splice(context.mlir(), op, &text, &l.snippet.args).map_err(|e| e.to_string())?;
                        for (old, new) in l.replaces.iter().zip(&new) {
                            if old.r#type() != new.r#type() {
                                return Err(format!("internal: lowered to {} for {}", new.r#type(), old.r#type()));
                            }
                        }
                        for (old, new) in l.replaces.iter().zip(new) {
                            // SAFETY: both values are live in this block and of the same type.
                            unsafe { mlir_sys::mlirValueReplaceAllUsesOfWith(old.to_raw(), new.to_raw()) }
                        }
                        for extra in l.also_erase {
                            if next == Some(extra) {
                                next = extra.next_in_block();
                            }
                            erase(extra);
                        }
                        erase(op);
                        Ok(true)
                    }
                });
                match result {
                    Ok(true) => *lowered.entry(name).or_insert(0) += 1,
                    Ok(false) => {}
                    Err(why) => outcome
                        .diagnostics
                        .push(remark(SourceLoc::from_location(op.location()), format!("{name} not lowered: {why}"))),
                }
            }
            erase_dead(&block);
            let mut next = block.first_operation();
            while let Some(op) = next {
                next = op.next_in_block();
                let name = torch_op_name(&op);
                if name.starts_with("torch.") && !is_structural(&name) {
                    let entry = left.entry(name).or_insert((0, SourceLoc::from_location(op.location())));
                    entry.0 += 1;
                }
            }
        }
        for (name, count) in &lowered {
            outcome.statistics.insert(format!("lowered {name}"), *count);
        }
        for (name, (count, location)) in left {
            outcome.statistics.insert(format!("left {name}"), count);
            outcome.diagnostics.push(remark(location, format!("still torch: {count} x {name}")));
        }
        Ok(outcome)
    }
}

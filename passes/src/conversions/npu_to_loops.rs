//! `npu-lower-to-loops`: lower `npu.grouped_matmul_finalize_routing` to a tiled, vectorized loop
//! nest on memrefs (see [`super::gmmfr_loop_kernel`]) that the standard MLIR pipeline takes to
//! LLVM. Each op becomes `bufferization.to_buffer` of its operands, a call of its kernel on a
//! fresh output buffer, and `bufferization.to_tensor` of that buffer; one-shot bufferization
//! then removes the bridges.

use super::gmmfr_loop_kernel::{KernelSpec, STATUS_GLOBAL, kernel_text};
use super::moe_loop_kernels::{self, OpKernel};
use crate::pass::{Pass, PassError, PassInfo, PassOption, PassOptions, PassOutcome, check_option_names};
use gmmfr_dialect::context::NpuContext;
use gmmfr_dialect::diagnostics::Diagnostic;
use gmmfr_dialect::location::SourceLoc;
use gmmfr_dialect::op_view::{AttrValue, NpuOp};
use gmmfr_dialect::scenario::Scenario;
use gmmfr_dialect::schema;
use melior::ir::{
    Attribute, BlockLike, Identifier, Module, OperationRef, Type, Value, ValueLike,
    attribute::FlatSymbolRefAttribute,
    operation::{OperationBuilder, OperationLike, WalkOrder, WalkResult},
};
use std::fmt::Write;

/// The pass's description.
pub const INFO: PassInfo = PassInfo {
    name: "npu-lower-to-loops",
    summary: "Lower every npu op to loop nests on memrefs (CPU target); the fused op to a vectorized one",
    description: "Replaces each fused op (A8W8 with the NZ weight read in place, A8W4, non-quantized; static \
                  shapes) by a call of a generated kernel: runtime preconditions checked before any write \
                  (first failure recorded in the @__gmmfr_status global, read by @gmmfr_read_status), zero \
                  init and the shared-input slice, then a parallel loop over output-column blocks in which \
                  each expert's rows are multiplied, dequantized, weighted and scatter-added without the \
                  (m, n) intermediate going to memory. Deterministic: contributions to an output row are \
                  added in increasing row order.",
    options: &[PassOption {
        name: "vnni",
        help: "auto (default: use AVX-512 VNNI dot products for A8W8 when the host has them), true or false (the portable path; identical integer results)",
    }],
};

/// The loop lowering.
pub struct LowerToLoopsPass {
    vnni: bool,
}

/// Whether the host can run AVX-512 VNNI code (the JIT compiles for the host).
pub fn host_has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl LowerToLoopsPass {
    /// Creates the pass from pipeline options.
    pub fn create(options: &PassOptions) -> Result<Self, PassError> {
        check_option_names(&INFO, options)?;
        let vnni = match options.get("vnni").map(String::as_str) {
            None | Some("auto") => host_has_vnni(),
            Some("true") if host_has_vnni() => true,
            Some("true") => {
                return Err(PassError::Option {
                    pass: INFO.name,
                    message: "vnni=true, but this CPU has no AVX-512 VNNI".into(),
                });
            }
            Some("false") => false,
            Some(other) => {
                return Err(PassError::Option {
                    pass: INFO.name,
                    message: format!("option 'vnni' expects auto, true or false, got '{other}'"),
                });
            }
        };
        Ok(Self { vnni })
    }
}

/// The host-visible function that copies the status out and resets it.
pub const READ_STATUS: &str = "gmmfr_read_status";

fn fail(location: SourceLoc, message: String) -> PassError {
    PassError::Failed(vec![Diagnostic::error(location, message)])
}

impl Pass for LowerToLoopsPass {
    fn info(&self) -> &'static PassInfo {
        &INFO
    }

    fn run(&self, context: &NpuContext, module: &mut Module<'_>) -> Result<PassOutcome, PassError> {
        let mut ops = Vec::new();
        module.as_operation().walk(WalkOrder::PreOrder, |op| {
            if op
                .name()
                .as_string_ref()
                .as_str()
                .is_ok_and(|n| schema::lookup(n).is_some())
            {
                // SAFETY: the refs stay valid while the module is alive and unmodified, which
                // holds until the rewrite loop below, which handles each op once.
                ops.push(unsafe { OperationRef::from_raw(op.to_raw()) });
            }
            WalkResult::Advance
        });
        let mut outcome = PassOutcome::default();
        outcome.statistics.insert("lowered".into(), ops.len() as u64);
        if ops.is_empty() {
            return Ok(outcome);
        }
        let mut kernels = String::new();
        let mut plans = Vec::new();
        for (index, op) in ops.iter().enumerate() {
            let location = SourceLoc::from_location(op.location());
            let view = NpuOp::new(*op)
                .ok()
                .flatten()
                .ok_or_else(|| fail(location.clone(), "malformed npu op".into()))?;
            let operands: Vec<_> = view
                .schema
                .operands
                .iter()
                .filter_map(|d| view.operand_info(d.name).map(|i| (d.name, i)))
                .collect();
            let results: Vec<_> = (0..view.schema.results.len())
                .filter_map(|i| view.result_info(i))
                .collect();
            if operands.iter().any(|(_, i)| i.dims.contains(&None)) || results.iter().any(|r| r.dims.contains(&None)) {
                return Err(fail(
                    location,
                    format!("'{}' op: the loop lowering needs static shapes", view.name()),
                ));
            }
            let int = |name: &str| match view.attribute(name).map(AttrValue::of) {
                Some(AttrValue::Int { value, .. }) => value,
                _ => 0,
            };
            let name = format!("__npu_loops_{index}");
            if view.name() == schema::GMMFR.name {
                let (Some(x), Some(w)) = (view.operand_info("x"), view.operand_info("w")) else {
                    return Err(fail(location, "fused op without x or w".into()));
                };
                let scenario =
                    Scenario::classify(&x, &w).ok_or_else(|| fail(location.clone(), "unclassified fused op".into()))?;
                let spec = KernelSpec {
                    name: name.clone(),
                    scenario,
                    operands: operands.clone(),
                    out: results[0].clone(),
                    shared_input_weight: match view.attribute("shared_input_weight").map(AttrValue::of) {
                        Some(AttrValue::Float { value, .. }) => value as f32,
                        _ => 1.0,
                    },
                    shared_input_offset: int("shared_input_offset"),
                    group_list_type: int("group_list_type"),
                    vnni: self.vnni,
                };
                kernels.push_str(&kernel_text(&spec));
                plans.push((*op, name, spec.parameter_types()));
                continue;
            }
            let attributes: Vec<(&'static str, i64)> =
                view.schema.required_attributes.iter().map(|a| (*a, int(a))).collect();
            let expert_range = match view.attribute("active_expert_range").map(AttrValue::of) {
                Some(AttrValue::I64Array(v)) if v.len() == 2 => Some((v[0], v[1])),
                _ => None,
            };
            let kernel = OpKernel {
                name: name.clone(),
                operands,
                results,
                attributes,
                expert_range,
            };
            let text = match view.name() {
                n if n == schema::GROUPED_MATMUL.name => moe_loop_kernels::grouped_matmul(&kernel, self.vnni),
                n if n == schema::MOE_FINALIZE_ROUTING.name => moe_loop_kernels::finalize_routing(&kernel),
                n if n == schema::MOE_INIT_ROUTING.name => moe_loop_kernels::init_routing(&kernel),
                _ => {
                    let elem = kernel.results[0].elem.clone();
                    let n0 = gmmfr_dialect::verify::nz_block_n(&elem).unwrap_or(32);
                    moe_loop_kernels::format_cast(&kernel, n0)
                }
            };
            kernels.push_str(&text);
            plans.push((*op, name, kernel.parameter_types()));
        }
        let mut text = String::from("module {\n");
        let _ = writeln!(
            text,
            "memref.global \"private\" @{STATUS_GLOBAL} : memref<4xi64> = dense<0>"
        );
        let _ = writeln!(
            text,
            "func.func @{READ_STATUS}(%dst: memref<4xi64>) attributes {{llvm.emit_c_interface}} {{\n  %g = memref.get_global @{STATUS_GLOBAL} : memref<4xi64>\n  memref.copy %g, %dst : memref<4xi64> to memref<4xi64>\n  %z = arith.constant 0 : i64\n  linalg.fill ins(%z : i64) outs(%g : memref<4xi64>)\n  return\n}}"
        );
        text.push_str(&kernels);
        text.push_str("}\n");
        let generated = gmmfr_dialect::parse::parse_source(context, &text, "<npu-lower-to-loops>").map_err(|e| {
            fail(
                SourceLoc::Unknown,
                format!("internal error: the generated loop nest does not parse: {e}"),
            )
        })?;

        for (op, name, types) in &plans {
            replace_with_call(context, *op, name, types)
                .map_err(|m| fail(SourceLoc::from_location(op.location()), m))?;
        }
        let body = module.body();
        let mut next = generated.body().first_operation();
        while let Some(op) = next {
            // SAFETY: `op` is a live op of `generated`; the clone is an unparented deep copy.
            body.append_operation(unsafe { op.to_ref() }.clone());
            next = op.next_in_block();
        }
        Ok(outcome)
    }
}

/// `to_buffer` each operand, call the kernel on new output buffers, `to_tensor` the results.
fn replace_with_call(
    context: &NpuContext,
    op: OperationRef<'_, '_>,
    kernel: &str,
    types: &[String],
) -> Result<(), String> {
    let ctx = context.mlir();
    let location = op.location();
    let view = NpuOp::new(op).ok().flatten().ok_or("malformed op")?;
    let block = op.block().ok_or("op outside a block")?;
    let parse_type = |text: &str| Type::parse(ctx, text).ok_or_else(|| format!("cannot build type {text}"));
    let unit = |name: &str| (Identifier::new(ctx, name), Attribute::unit(ctx));
    let present: Vec<_> = view
        .schema
        .operands
        .iter()
        .filter_map(|d| view.operand(d.name))
        .collect();
    let result_count = op.result_count();
    if types.len() != present.len() + result_count {
        return Err(format!(
            "kernel signature has {} parameters for {} operands and {result_count} results",
            types.len(),
            present.len()
        ));
    }
    let mut buffers: Vec<Value<'_, '_>> = Vec::new();
    for (tensor, memref_type) in present.iter().zip(types) {
        let to_buffer = OperationBuilder::new("bufferization.to_buffer", location)
            .add_operands(&[*tensor])
            .add_results(&[parse_type(memref_type)?])
            .add_attributes(&[unit("read_only")])
            .build()
            .map_err(|e| e.to_string())?;
        let to_buffer = block.insert_operation_before(op, to_buffer);
        buffers.push(to_buffer.result(0).map_err(|e| e.to_string())?.into());
    }
    let mut outputs = Vec::new();
    for memref_type in &types[present.len()..] {
        let alloc = OperationBuilder::new("memref.alloc", location)
            .add_results(&[parse_type(memref_type)?])
            .add_attributes(&[(
                Identifier::new(ctx, "operandSegmentSizes"),
                Attribute::parse(ctx, "array<i32: 0, 0>").ok_or("attr")?,
            )])
            .build()
            .map_err(|e| e.to_string())?;
        let alloc = block.insert_operation_before(op, alloc);
        let buffer: Value = alloc.result(0).map_err(|e| e.to_string())?.into();
        buffers.push(buffer);
        outputs.push(buffer);
    }
    let call = OperationBuilder::new("func.call", location)
        .add_operands(&buffers)
        .add_attributes(&[(
            Identifier::new(ctx, "callee"),
            FlatSymbolRefAttribute::new(ctx, kernel).into(),
        )])
        .build()
        .map_err(|e| e.to_string())?;
    block.insert_operation_before(op, call);
    for (index, buffer) in outputs.into_iter().enumerate() {
        let old: Value = op.result(index).map_err(|e| e.to_string())?.into();
        let to_tensor = OperationBuilder::new("bufferization.to_tensor", location)
            .add_operands(&[buffer])
            .add_results(&[old.r#type()])
            .add_attributes(&[unit("restrict"), unit("writable")])
            .build()
            .map_err(|e| e.to_string())?;
        let to_tensor = block.insert_operation_before(op, to_tensor);
        let new: Value = to_tensor.result(0).map_err(|e| e.to_string())?.into();
        // SAFETY: both values are live in the same block; every use of the old result moves to
        // the new one before the op is erased.
        unsafe { mlir_sys::mlirValueReplaceAllUsesOfWith(old.to_raw(), new.to_raw()) };
    }
    gmmfr_dialect::graph::erase(op);
    Ok(())
}

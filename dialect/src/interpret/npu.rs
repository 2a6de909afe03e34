//! The `npu` ops, evaluated by the reference semantics (`crate::reference`). Operands are
//! resolved by their declared names ([`NpuOp`]); sizes the evaluators need that the operands
//! do not carry (n of an NZ weight, R and K of finalize routing, k and n of an NZ to ND cast)
//! come from the result type.

use super::attrs;
use super::error::{Fault, InterpretError};
use super::exec::{Exec, fault, reference, unsupported};
use super::value::{RtValue, TensorValue};
use crate::op_view::NpuOp;
use crate::reference::{
    self, GmmfrAttrs, GmmfrOperands, GroupedMatmulAttrs, GroupedMatmulOperands, MoeFinalizeRoutingAttrs,
    MoeFinalizeRoutingOperands, MoeInitRoutingAttrs,
};
use crate::schema;
use crate::tensor::Tensor;
use crate::verify::{ACL_FORMAT_FRACTAL_NZ, ACL_FORMAT_ND};
use melior::ir::{OperationRef, operation::OperationLike};

/// The operands of an `npu` op as [`Tensor`]s, by declared name.
struct Operands<'o, 'c, 'a> {
    npu: &'o NpuOp<'c, 'a>,
    tensors: Vec<(&'static str, Tensor)>,
}

impl<'o, 'c, 'a> Operands<'o, 'c, 'a> {
    fn new(exec: &Exec, npu: &'o NpuOp<'c, 'a>) -> Result<Self, InterpretError> {
        let op = npu.operation;
        let mut tensors = Vec::new();
        for decl in npu.schema.operands {
            let Some(value) = npu.operand(decl.name) else { continue };
            let tensor = match exec.value(op, value, || format!("operand '{}'", decl.name))? {
                RtValue::Tensor(t) => t,
                RtValue::Scalar(s) => {
                    return Err(unsupported(
                        op,
                        format!("operand '{}' is a scalar of {}", decl.name, s.elem()),
                    ));
                }
            };
            let tensor = tensor.to_tensor().map_err(|f| {
                fault(
                    op,
                    Fault::Operand {
                        operand: format!("operand '{}'", decl.name),
                        source: Box::new(f),
                    },
                )
            })?;
            tensors.push((decl.name, tensor));
        }
        Ok(Self { npu, tensors })
    }

    fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(n, _)| *n == name).map(|(_, t)| t)
    }

    fn required(&self, name: &str) -> Result<&Tensor, InterpretError> {
        self.get(name)
            .ok_or_else(|| unsupported(self.npu.operation, format!("operand '{name}' is missing")))
    }
}

fn int_attr(op: OperationRef<'_, '_>, name: &str) -> Result<i64, InterpretError> {
    attrs::int(op, name).ok_or_else(|| unsupported(op, format!("attribute '{name}' is missing or not an integer")))
}

/// Static dim `index` of result `result`, if static.
fn result_dim(
    exec: &mut Exec,
    op: OperationRef<'_, '_>,
    result: usize,
    index: usize,
) -> Result<Option<usize>, InterpretError> {
    let (_, dims) = exec.result_tensor_type(op, result)?;
    Ok(dims.get(index).copied().flatten())
}

fn tensor_results(tensors: Vec<Tensor>) -> Vec<RtValue> {
    tensors
        .iter()
        .map(|t| RtValue::tensor(TensorValue::from_tensor(t)))
        .collect()
}

/// Evaluates an `npu` op.
pub fn eval(exec: &mut Exec, op: OperationRef<'_, '_>) -> Result<Vec<RtValue>, InterpretError> {
    let npu = NpuOp::new(op)
        .map_err(|e| unsupported(op, e.to_string()))?
        .ok_or_else(|| unsupported(op, "not an npu op"))?;
    let operands = Operands::new(exec, &npu)?;
    let results = match npu.schema.name {
        name if name == schema::GMMFR.name => vec![gmmfr(op, &operands)?],
        name if name == schema::GROUPED_MATMUL.name => vec![grouped_matmul(exec, op, &operands)?],
        name if name == schema::MOE_FINALIZE_ROUTING.name => {
            vec![finalize_routing(exec, op, &operands)?]
        }
        name if name == schema::MOE_INIT_ROUTING.name => init_routing(op, &operands)?,
        name if name == schema::FORMAT_CAST.name => vec![format_cast(exec, op, &operands)?],
        other => return Err(unsupported(op, format!("no evaluator for {other}"))),
    };
    Ok(tensor_results(results))
}

fn gmmfr(op: OperationRef<'_, '_>, ops: &Operands<'_, '_, '_>) -> Result<Tensor, InterpretError> {
    let weight = attrs::float(op, "shared_input_weight")
        .ok_or_else(|| unsupported(op, "attribute 'shared_input_weight' is missing or not a float"))?;
    let tuning_config = match op.attribute("tuning_config") {
        Ok(_) => Some(
            attrs::i64_array(op, "tuning_config")
                .ok_or_else(|| unsupported(op, "attribute 'tuning_config' is not an array<i64>"))?,
        ),
        Err(_) => None,
    };
    let attributes = GmmfrAttrs {
        dtype: int_attr(op, "dtype")?,
        // An f32 attribute: the conversion back from f64 is exact.
        shared_input_weight: weight as f32,
        shared_input_offset: int_attr(op, "shared_input_offset")?,
        output_bs: int_attr(op, "output_bs")?,
        group_list_type: int_attr(op, "group_list_type")?,
        tuning_config,
    };
    let operands = GmmfrOperands {
        x: ops.required("x")?,
        w: ops.required("w")?,
        group_list: ops.required("group_list")?,
        scale: ops.get("scale"),
        bias: ops.get("bias"),
        offset: ops.get("offset"),
        pertoken_scale: ops.get("pertoken_scale"),
        shared_input: ops.get("shared_input"),
        logit: ops.get("logit"),
        row_index: ops.required("row_index")?,
    };
    reference::grouped_matmul_finalize_routing(&operands, &attributes).map_err(|e| reference(op, e))
}

fn grouped_matmul(
    exec: &mut Exec,
    op: OperationRef<'_, '_>,
    ops: &Operands<'_, '_, '_>,
) -> Result<Tensor, InterpretError> {
    let (elem, _) = exec.result_tensor_type(op, 0)?;
    let output_dtype = elem
        .dtype()
        .ok_or_else(|| unsupported(op, format!("a result of {elem}")))?;
    let weight = ops.required("weight")?;
    // n is the result's dim 1; when it is dynamic, the scale or bias (e, n) or an ND (e, k, n)
    // weight fixes it (an NZ weight only knows n rounded up).
    let n = match result_dim(exec, op, 0, 1)? {
        Some(n) => n,
        None => ops
            .get("scale")
            .or(ops.get("bias"))
            .and_then(|t| t.shape().get(1).copied())
            .or_else(|| (weight.rank() == 3).then(|| weight.shape()[2]))
            .ok_or_else(|| {
                unsupported(
                    op,
                    "n cannot be determined: result dim 1 is dynamic and no scale, bias or ND weight fixes it",
                )
            })?,
    };
    let attributes = GroupedMatmulAttrs {
        n,
        group_list_type: int_attr(op, "group_list_type")?,
        output_dtype,
    };
    let operands = GroupedMatmulOperands {
        x: ops.required("x")?,
        weight,
        group_list: ops.required("group_list")?,
        scale: ops.get("scale"),
        per_token_scale: ops.get("per_token_scale"),
        bias: ops.get("bias"),
    };
    reference::grouped_matmul(&operands, &attributes).map_err(|e| reference(op, e))
}

fn finalize_routing(
    exec: &mut Exec,
    op: OperationRef<'_, '_>,
    ops: &Operands<'_, '_, '_>,
) -> Result<Tensor, InterpretError> {
    let dim = |name: &str, index: usize| ops.get(name).and_then(|t| t.shape().get(index).copied());
    // R: the result's dim 0, else the dim 0 of an (R, ...) operand.
    let num_rows = match result_dim(exec, op, 0, 0)? {
        Some(r) => r,
        None => ["skip1", "skip2", "scales", "expert_for_source_row"]
            .iter()
            .find_map(|name| dim(name, 0))
            .ok_or_else(|| {
                unsupported(
                    op,
                    "R cannot be determined: result dim 0 is dynamic and no (R, ...) operand is present",
                )
            })?,
    };
    let src_to_dst = ops.required("expanded_src_to_dst_row")?;
    // K: scales dim 1, else expert_for_source_row dim 1, else len(src2dst) / R.
    let top_k = match dim("scales", 1).or_else(|| dim("expert_for_source_row", 1)) {
        Some(k) => k,
        None => {
            let len = src_to_dst.num_elements();
            if num_rows == 0 || len % num_rows != 0 {
                return Err(fault(
                    op,
                    Fault::Shape {
                        what: "expanded_src_to_dst_row".into(),
                        expected: format!("a multiple of R = {num_rows} entries"),
                        actual: format!("{len}"),
                    },
                ));
            }
            len / num_rows
        }
    };
    let attributes = MoeFinalizeRoutingAttrs {
        drop_pad_mode: int_attr(op, "drop_pad_mode")?,
        num_rows,
        top_k,
    };
    let operands = MoeFinalizeRoutingOperands {
        expanded_permuted_rows: ops.required("expanded_permuted_rows")?,
        skip1: ops.get("skip1"),
        skip2: ops.get("skip2"),
        bias: ops.get("bias"),
        scales: ops.get("scales"),
        expanded_src_to_dst_row: src_to_dst,
        expert_for_source_row: ops.get("expert_for_source_row"),
    };
    reference::moe_finalize_routing(&operands, &attributes).map_err(|e| reference(op, e))
}

fn init_routing(op: OperationRef<'_, '_>, ops: &Operands<'_, '_, '_>) -> Result<Vec<Tensor>, InterpretError> {
    let active_expert_range = match op.attribute("active_expert_range") {
        Ok(_) => match attrs::i64_array(op, "active_expert_range").as_deref() {
            Some(&[start, end]) => Some((start, end)),
            _ => {
                return Err(unsupported(
                    op,
                    "attribute 'active_expert_range' is not array<i64: start, end>",
                ));
            }
        },
        Err(_) => None,
    };
    let attributes = MoeInitRoutingAttrs {
        expert_num: int_attr(op, "expert_num")?,
        active_num: int_attr(op, "active_num")?,
        row_idx_type: int_attr(op, "row_idx_type")?,
        expert_tokens_num_type: int_attr(op, "expert_tokens_num_type")?,
        active_expert_range,
    };
    let routing = reference::moe_init_routing(ops.required("x")?, ops.required("expert_idx")?, &attributes)
        .map_err(|e| reference(op, e))?;
    Ok(vec![
        routing.expanded_x,
        routing.expanded_row_idx,
        routing.expert_tokens,
    ])
}

fn format_cast(
    exec: &mut Exec,
    op: OperationRef<'_, '_>,
    ops: &Operands<'_, '_, '_>,
) -> Result<Tensor, InterpretError> {
    let input = ops.required("input")?;
    let format = int_attr(op, "acl_format")?;
    if format == ACL_FORMAT_FRACTAL_NZ {
        return reference::nd_to_nz(input).map_err(|e| reference(op, e));
    }
    if format != ACL_FORMAT_ND {
        return Err(unsupported(op, format!("acl_format {format} (only 29 and 2)")));
    }
    // The logical (k, n) of an NZ to ND cast is the result's last two dims.
    let (_, dims) = exec.result_tensor_type(op, 0)?;
    let (k, n) = match dims.as_slice() {
        [.., Some(k), Some(n)] => (*k, *n),
        _ => {
            let name = exec.result_type(op, 0)?.name();
            return Err(unsupported(
                op,
                format!("NZ to ND needs static k and n in the result type {name}"),
            ));
        }
    };
    reference::nz_to_nd(input, k, n).map_err(|e| reference(op, e))
}

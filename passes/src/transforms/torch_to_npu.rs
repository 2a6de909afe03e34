//! `torch-to-npu`: import torch-mlir FX importer output. Value tensors become builtin tensors,
//! torch_npu's MoE custom ops and the grouped matmul spellings become npu ops, and every other op
//! stays as it is (opaque), with one remark per kind of op left.

use crate::recognition::SPELLING_ATTRIBUTE;
use crate::frontend::splice::splice;
use crate::frontend::torch_types::builtin_tensor;
use crate::frontend::torch_values::TorchValue;
use crate::pass::{Pass, PassError, PassInfo, PassOptions, PassOutcome, check_option_names};
use gmmfr_dialect::context::NpuContext;
use gmmfr_dialect::diagnostics::Diagnostic;
use gmmfr_dialect::graph::{erase, users};
use gmmfr_dialect::location::SourceLoc;
use melior::Context;
use melior::ir::{
    TypeLike, operation::OperationMutLike, BlockLike, BlockRef, Module, OperationRef, RegionLike, Type, Value, ValueLike,
    attribute::TypeAttribute,
    operation::{OperationLike, OperationRefMut, WalkOrder, WalkResult},
    r#type::FunctionType,
};
use std::collections::BTreeMap;

/// The pass's description.
pub const INFO: PassInfo = PassInfo {
    name: "torch-to-npu",
    summary: "Import torch-mlir output: builtin tensors, torch_npu MoE ops and grouped matmuls as npu ops, the rest opaque",
    description: "Reads MLIR from torch-mlir's FX importer (the torch dialect unregistered). Rewrites every \
                  !torch.vtensor<[dims],dtype> to the builtin tensor (signed integers signless) in signatures, \
                  block arguments and results; maps torch.operator \"torch.npu.npu_grouped_matmul\", \
                  \"npu_moe_finalize_routing\", \"npu_moe_init_routing_v2\", \
                  \"npu_grouped_matmul_finalize_routing\" and \"npu_format_cast\" (torch_npu's argument order), \
                  aten._grouped_mm and transformers' grouped_mm_fallback onto npu ops; drops \
                  aten._assert_tensor_metadata (the types are static and checked). Every other op is left \
                  untouched, and one remark per op name says how many were left opaque and where the first is.",
    options: &[],
};

/// The import pass.
pub struct TorchToNpuPass;

impl TorchToNpuPass {
    /// Creates the pass from pipeline options (it has none).
    pub fn create(options: &PassOptions) -> Result<Self, PassError> {
        check_option_names(&INFO, options)?;
        Ok(Self)
    }
}

use crate::frontend::torch_values::torch_op_name as op_name;

fn set_type(value: Value<'_, '_>, r#type: Type<'_>) {
    // SAFETY: the value is live; its users are torch ops (unverified) or ops we rewrite next.
    unsafe { mlir_sys::mlirValueSetType(value.to_raw(), r#type.to_raw()) }
}

fn retype(context: &Context, value: Value<'_, '_>) {
    if let Some(text) = builtin_tensor(&value.r#type().to_string()) {
        if let Some(r#type) = Type::parse(context, &text) {
            set_type(value, r#type);
        }
    }
}

/// Rewrites every torch value tensor in `function` (arguments, results, nested blocks) and its
/// function type.
fn retype_function(context: &Context, function: OperationRef<'_, '_>) {
    function.walk(WalkOrder::PreOrder, |op| {
        for index in 0..op.result_count() {
            if let Ok(result) = op.result(index) {
                retype(context, result.into());
            }
        }
        for r in 0..op.region_count() {
            let Ok(region) = op.region(r) else { continue };
            let mut block = region.first_block();
            while let Some(b) = block {
                for i in 0..b.argument_count() {
                    if let Ok(argument) = b.argument(i) {
                        retype(context, argument.into());
                    }
                }
                block = b.next_in_region();
            }
        }
        WalkResult::Advance
    });
    let Some(block) = function.region(0).ok().and_then(|r| r.first_block()) else { return };
    let inputs: Vec<Type> = (0..block.argument_count())
        .filter_map(|i| block.argument(i).ok().map(|a| a.r#type()))
        .collect();
    let Some(terminator) = block.terminator() else { return };
    let results: Vec<Type> = (0..terminator.operand_count())
        .filter_map(|i| terminator.operand(i).ok().map(|v| v.r#type()))
        .collect();
    let function_type = FunctionType::new(context, &inputs, &results);
    // SAFETY: the function op is live; replacing its type attribute does not invalidate refs.
    let mut function = unsafe { OperationRefMut::from_raw(function.to_raw()) };
    function.set_attribute("function_type", TypeAttribute::new(function_type.into()).into());
}

/// A tensor operand, or a single-tensor list of one.
fn single_tensor<'c: 'a, 'a>(value: Value<'c, 'a>) -> Option<Value<'c, 'a>> {
    match TorchValue::of(value) {
        TorchValue::List(items) if items.len() == 1 => TorchValue::of(items[0]).tensor(),
        other => other.tensor(),
    }
}

/// An optional tensor operand: `Ok(None)` for None, `Err` when it is something we cannot map.
fn optional_tensor<'c: 'a, 'a>(value: Value<'c, 'a>) -> Result<Option<Value<'c, 'a>>, ()> {
    if TorchValue::of(value).is_none() {
        return Ok(None);
    }
    single_tensor(value).map(Some).ok_or(())
}

struct Mapper<'c> {
    context: &'c Context,
}

/// The operands of one npu op being written: each present one bound to a snippet argument
/// (`%aN`), with its type, and the `operandSegmentSizes` of the optional ones.
#[derive(Default)]
struct Operands<'c, 'a> {
    args: Vec<Value<'c, 'a>>,
    names: Vec<String>,
    types: Vec<String>,
    segments: Vec<&'static str>,
}

impl<'c, 'a> Operands<'c, 'a> {
    /// A present operand, spelled `name` in the body (an argument, or a value computed from one).
    fn push_named(&mut self, value: Value<'c, 'a>, name: String, r#type: String) {
        self.args.push(value);
        self.names.push(name);
        self.types.push(r#type);
        self.segments.push("1");
    }

    /// A present operand used as it is.
    fn push(&mut self, value: Value<'c, 'a>) {
        let name = format!("%a{}", self.args.len());
        self.push_named(value, name, type_of(value));
    }

    /// An optional operand: absent ones only count in the segment sizes.
    fn optional(&mut self, value: Option<Value<'c, 'a>>) {
        match value {
            Some(v) => self.push(v),
            None => self.segments.push("0"),
        }
    }

    /// `(%a0, ...) {..., operandSegmentSizes = ...} : (types) -> result`, around `attributes`.
    fn call(&self, op: &str, attributes: &str, result: &str) -> String {
        format!(
            "\"{op}\"({}) {{{attributes}, operandSegmentSizes = array<i32: {}>}} : ({}) -> {result}",
            self.names.join(", "),
            self.segments.join(", "),
            self.types.join(", ")
        )
    }
}

/// The results an op's users see: list-returning ops (npu_grouped_matmul) are unpacked.
fn unpacked_results<'c: 'a, 'a>(op: OperationRef<'c, 'a>) -> Option<(Vec<Value<'c, 'a>>, Option<OperationRef<'c, 'a>>)> {
    let result: Value = op.result(0).ok()?.into();
    if !result.r#type().to_string().starts_with("!torch.list") {
        return Some(((0..op.result_count()).filter_map(|i| op.result(i).ok().map(Value::from)).collect(), None));
    }
    let uses = users(result);
    if uses.len() != 1 || uses[0].name().as_string_ref().as_str() != Ok("torch.prim.ListUnpack") {
        return None;
    }
    let unpack = uses[0];
    Some(((0..unpack.result_count()).filter_map(|i| unpack.result(i).ok().map(Value::from)).collect(), Some(unpack)))
}

fn type_of(value: Value<'_, '_>) -> String {
    value.r#type().to_string()
}

impl<'c> Mapper<'c> {
    /// Emits `text` (a function over `args`) before `op` and redirects `old` results to its results.
    fn replace<'a>(&self, op: OperationRef<'c, 'a>, text: &str, args: &[Value<'c, 'a>], old: &[Value<'c, 'a>]) -> Result<(), String> {
        let new = splice(self.context, op, text, args).map_err(|e| e.to_string())?;
        for (from, to) in old.iter().zip(new) {
            // SAFETY: both values are live in the same block.
            unsafe { mlir_sys::mlirValueReplaceAllUsesOfWith(from.to_raw(), to.to_raw()) }
        }
        Ok(())
    }

    fn function_text(args: &[Value<'_, '_>], results: &[String], body: &str, returned: &[&str]) -> String {
        let params: Vec<String> = args.iter().enumerate().map(|(i, a)| format!("%a{i}: {}", type_of(*a))).collect();
        format!(
            "func.func @f({}) -> ({}) {{\n{body}  return {} : {}\n}}",
            params.join(", "),
            results.join(", "),
            returned.join(", "),
            results.join(", ")
        )
    }

    /// A group list as i64 (`%name` over the argument index), with the cast when it is i32.
    fn group_list_i64(arg: usize, value: Value<'_, '_>, body: &mut String) -> Result<String, String> {
        let text = type_of(value);
        if text.ends_with("xi64>") {
            return Ok(format!("%a{arg}"));
        }
        if text.ends_with("xi32>") {
            let wide = text.replace("xi32>", "xi64>");
            body.push_str(&format!("  %gl = arith.extsi %a{arg} : {text} to {wide}\n"));
            return Ok("%gl".into());
        }
        Err(format!("group list of type {text}"))
    }

    /// `_grouped_mm(x, w, offs)` / `grouped_mm_fallback(x, w, offs)`: float grouped matmul over
    /// cumsum offsets.
    fn grouped_mm<'a>(&self, op: OperationRef<'c, 'a>) -> Result<(), String> {
        let x = op.operand(0).map_err(|_| "x")?;
        let w = op.operand(1).map_err(|_| "weight")?;
        let offsets = op.operand(2).map_err(|_| "offsets")?;
        if op.operand_count() > 3 && !TorchValue::of(op.operand(3).map_err(|_| "bias")?).is_none() {
            return Err("a bias".into());
        }
        let out: Value = op.result(0).map_err(|_| "result")?.into();
        let mut body = String::new();
        let gl = Self::group_list_i64(2, offsets, &mut body)?;
        body.push_str(&format!(
            "  %y = \"npu.grouped_matmul\"(%a0, %a1, {gl}) {{group_list_type = 0 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0>}} : ({}, {}, {}) -> {}\n",
            type_of(x), type_of(w), type_of(offsets).replace("xi32>", "xi64>"), type_of(out)
        ));
        let text = Self::function_text(&[x, w, offsets], &[type_of(out)], &body, &["%y"]);
        self.replace(op, &text, &[x, w, offsets], &[out])
    }

    fn npu_grouped_matmul<'a>(&self, op: OperationRef<'c, 'a>) -> Result<Vec<OperationRef<'c, 'a>>, String> {
        let operand = |i: usize| op.operand(i).map_err(|_| format!("operand {i}"));
        let x = single_tensor(operand(0)?).ok_or("x is not one tensor")?;
        let w = single_tensor(operand(1)?).ok_or("weight is not one tensor")?;
        for (index, what) in [(4, "offset"), (5, "antiquant_scale"), (6, "antiquant_offset"), (9, "activation_input"), (10, "activation_quant_scale"), (11, "activation_quant_offset")] {
            if !TorchValue::of(operand(index)?).is_none() {
                return Err(format!("{what} is given"));
            }
        }
        let bias = optional_tensor(operand(2)?).map_err(|_| "bias is not one tensor")?;
        let scale = optional_tensor(operand(3)?).map_err(|_| "scale is not one tensor")?;
        let pts = optional_tensor(operand(7)?).map_err(|_| "per_token_scale is not one tensor")?;
        let gl = TorchValue::of(operand(8)?).tensor().ok_or("group_list is not a tensor")?;
        let group_list_type = TorchValue::of(operand(14)?).int().unwrap_or(0);
        if TorchValue::of(operand(15)?).int().unwrap_or(0) != 0 {
            return Err("act_type is not 0".into());
        }
        let (results, unpack) = unpacked_results(op).ok_or("its result list is not unpacked once")?;
        if results.len() != 1 {
            return Err(format!("it returns {} tensors", results.len()));
        }
        let out = results[0];
        let mut body = String::new();
        let mut operands = Operands::default();
        operands.push(x);
        operands.push(w);
        let gl_text = Self::group_list_i64(2, gl, &mut body)?;
        operands.push_named(gl, gl_text, type_of(gl).replace("xi32>", "xi64>"));
        for value in [scale, pts, bias] {
            operands.optional(value);
        }
        body.push_str(&format!(
            "  %y = {}\n",
            operands.call("npu.grouped_matmul", &format!("group_list_type = {group_list_type} : i64"), &type_of(out))
        ));
        let text = Self::function_text(&operands.args, &[type_of(out)], &body, &["%y"]);
        self.replace(op, &text, &operands.args, &[out])?;
        Ok(unpack.into_iter().collect())
    }

    fn npu_moe_finalize_routing<'a>(&self, op: OperationRef<'c, 'a>) -> Result<(), String> {
        let operand = |i: usize| op.operand(i).map_err(|_| format!("operand {i}"));
        let rows = TorchValue::of(operand(0)?).tensor().ok_or("rows are not a tensor")?;
        let mut operands = Operands::default();
        operands.push(rows);
        for index in 1..=6 {
            let value = optional_tensor(operand(index)?).map_err(|_| format!("operand {index} is not a tensor"))?;
            if index == 5 && value.is_none() {
                return Err("expanded_src_to_dst_row is None".into());
            }
            operands.optional(value);
        }
        let mode = TorchValue::of(operand(7)?).int().unwrap_or(0);
        let out: Value = op.result(0).map_err(|_| "result")?.into();
        let attributes = format!("drop_pad_mode = {mode} : i64, {SPELLING_ATTRIBUTE} = \"torch_npu.npu_moe_finalize_routing\"");
        let body = format!("  %out = {}\n", operands.call("npu.moe_finalize_routing", &attributes, &type_of(out)));
        let text = Self::function_text(&operands.args, &[type_of(out)], &body, &["%out"]);
        self.replace(op, &text, &operands.args, &[out])
    }

    fn npu_moe_init_routing_v2<'a>(&self, op: OperationRef<'c, 'a>) -> Result<(), String> {
        let operand = |i: usize| op.operand(i).map_err(|_| format!("operand {i}"));
        let x = TorchValue::of(operand(0)?).tensor().ok_or("x is not a tensor")?;
        let ids = TorchValue::of(operand(1)?).tensor().ok_or("expert_idx is not a tensor")?;
        for (index, what) in [(2, "scale"), (3, "offset")] {
            if !TorchValue::of(operand(index)?).is_none() {
                return Err(format!("{what} is given (quantizing routing is not modelled)"));
            }
        }
        let int = |i: usize| -> Result<i64, String> { TorchValue::of(operand(i)?).int().ok_or(format!("operand {i} is not a constant int")) };
        let active_num = int(4)?;
        let expert_capacity = int(5)?;
        let expert_num = int(6)?;
        let drop_pad_mode = int(7)?;
        let tokens_type = int(8)?;
        let quant_mode = int(10)?;
        let row_idx_type = int(12)?;
        if drop_pad_mode != 0 || expert_capacity > 0 || quant_mode != -1 {
            return Err(format!("drop_pad_mode {drop_pad_mode}, expert_capacity {expert_capacity}, quant_mode {quant_mode} (only drop-less, unquantized routing is modelled)"));
        }
        let range = TorchValue::of(operand(11)?).ints().unwrap_or_default();
        if op.result(3).map(|r| !users(r.into()).is_empty()).unwrap_or(false) {
            return Err("its expanded_scale result is used".into());
        }
        let results: Vec<Value> = (0..3).filter_map(|i| op.result(i).ok().map(Value::from)).collect();
        let mut body = String::new();
        let ids_type = type_of(ids);
        let ids_operand = if ids_type.ends_with("xi64>") {
            body.push_str(&format!("  %ids = arith.trunci %a1 : {ids_type} to {}\n", ids_type.replace("xi64>", "xi32>")));
            "%ids"
        } else {
            "%a1"
        };
        let range_attr = if range.len() == 2 {
            format!(", active_expert_range = array<i64: {}, {}>", range[0], range[1])
        } else {
            String::new()
        };
        let result_types: Vec<String> = results.iter().map(|r| type_of(*r)).collect();
        body.push_str(&format!(
            "  %ex, %idx, %tokens = \"npu.moe_init_routing\"(%a0, {ids_operand}) {{expert_num = {expert_num} : i64, active_num = {} : i64, row_idx_type = {row_idx_type} : i64, expert_tokens_num_type = {tokens_type} : i64{range_attr}}} : ({}, {}) -> ({})\n",
            active_num.max(0),
            type_of(x),
            ids_type.replace("xi64>", "xi32>"),
            result_types.join(", ")
        ));
        let text = Self::function_text(&[x, ids], &result_types, &body, &["%ex", "%idx", "%tokens"]);
        self.replace(op, &text, &[x, ids], &results)
    }

    fn npu_gmmfr<'a>(&self, op: OperationRef<'c, 'a>) -> Result<(), String> {
        let operand = |i: usize| op.operand(i).map_err(|_| format!("operand {i}"));
        let mut operands = Operands::default();
        for index in 0..10 {
            let value = optional_tensor(operand(index)?).map_err(|_| format!("operand {index} is not a tensor"))?;
            if value.is_none() && (index < 3 || index == 9) {
                return Err(format!("required operand {index} is None"));
            }
            operands.optional(value);
        }
        let dtype = TorchValue::of(operand(10)?).int().unwrap_or(0);
        let weight = match TorchValue::of(operand(11)?) {
            TorchValue::Float(f) => f,
            TorchValue::Int(i) => i as f64,
            _ => 1.0,
        };
        let offset = TorchValue::of(operand(12)?).int().unwrap_or(0);
        let output_bs = TorchValue::of(operand(13)?).int().unwrap_or(0);
        let group_list_type = TorchValue::of(operand(14)?).int().unwrap_or(1);
        let out: Value = op.result(0).map_err(|_| "result")?.into();
        // torch's ScalarType codes for the output: 6 = float32 (the kernel's only output).
        let dtype = if dtype == 6 { 0 } else { dtype };
        let attributes = format!(
            "dtype = {dtype} : i64, shared_input_weight = {weight:.9e} : f32, shared_input_offset = {offset} : i64, output_bs = {output_bs} : i64, group_list_type = {group_list_type} : i64"
        );
        let body = format!("  %out = {}\n", operands.call("npu.grouped_matmul_finalize_routing", &attributes, &type_of(out)));
        let text = Self::function_text(&operands.args, &[type_of(out)], &body, &["%out"]);
        self.replace(op, &text, &operands.args, &[out])
    }

    fn npu_format_cast<'a>(&self, op: OperationRef<'c, 'a>) -> Result<(), String> {
        let input = TorchValue::of(op.operand(0).map_err(|_| "input")?).tensor().ok_or("input is not a tensor")?;
        let format = TorchValue::of(op.operand(1).map_err(|_| "format")?).int().ok_or("format is not a constant")?;
        let out: Value = op.result(0).map_err(|_| "result")?.into();
        let body = format!(
            "  %out = \"npu.format_cast\"(%a0) {{acl_format = {format} : i64}} : ({}) -> {}\n",
            type_of(input),
            type_of(out)
        );
        let text = Self::function_text(&[input], &[type_of(out)], &body, &["%out"]);
        self.replace(op, &text, &[input], &[out])
    }
}

use crate::frontend::remark;

/// Ops that are structure, not computation: never reported as opaque.
fn is_structural(name: &str) -> bool {
    name.starts_with("torch.constant.")
        || matches!(name, "torch.prim.ListConstruct" | "torch.prim.ListUnpack" | "func.return" | "func.func")
        || name.starts_with("npu.")
        || name.starts_with("arith.")
        || name.starts_with("tensor.")
}

impl Pass for TorchToNpuPass {
    fn info(&self) -> &'static PassInfo {
        &INFO
    }

    fn run(&self, context: &NpuContext, module: &mut Module<'_>) -> Result<PassOutcome, PassError> {
        let mlir = context.mlir();
        let mut outcome = PassOutcome::default();
        let mapper = Mapper { context: mlir };
        let mut mapped: BTreeMap<String, u64> = BTreeMap::new();
        let mut opaque: BTreeMap<String, (u64, SourceLoc)> = BTreeMap::new();
        for (function, block) in crate::frontend::function_bodies(module) {
            retype_function(mlir, function);
            map_block(&mapper, block, &mut mapped, &mut outcome.diagnostics)?;
            crate::recognition::materialize::erase_dead(&block);
            let mut next = block.first_operation();
            while let Some(op) = next {
                next = op.next_in_block();
                let name = op_name(&op);
                if !is_structural(&name) {
                    let entry = opaque.entry(name).or_insert((0, SourceLoc::from_location(op.location())));
                    entry.0 += 1;
                }
            }
        }
        for (name, count) in &mapped {
            outcome.statistics.insert(format!("mapped {name}"), *count);
        }
        for (name, (count, location)) in opaque {
            outcome.statistics.insert(format!("opaque {name}"), count);
            outcome.diagnostics.push(remark(location, format!("left opaque: {count} x {name}")));
        }
        Ok(outcome)
    }
}

fn map_block<'c: 'a, 'a>(
    mapper: &Mapper<'c>,
    block: BlockRef<'c, 'a>,
    mapped: &mut BTreeMap<String, u64>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Result<(), PassError> {
    let mut next = block.first_operation();
    while let Some(op) = next {
        next = op.next_in_block();
        let name = op_name(&op);
        let location = SourceLoc::from_location(op.location());
        let result = match name.as_str() {
            // Guards the exporter emits on dtypes and data-dependent sizes; the types here are static.
            "torch.aten._assert_tensor_metadata" | "torch.aten._assert_scalar" => {
                erase(op);
                continue;
            }
            "torch.npu.npu_grouped_matmul" => mapper.npu_grouped_matmul(op).map(|unpacks| {
                for unpack in unpacks {
                    if next == Some(unpack) {
                        next = unpack.next_in_block();
                    }
                    erase(unpack);
                }
            }),
            "torch.npu.npu_moe_finalize_routing" => mapper.npu_moe_finalize_routing(op),
            "torch.npu.npu_moe_init_routing_v2" => mapper.npu_moe_init_routing_v2(op),
            "torch.npu.npu_grouped_matmul_finalize_routing" => mapper.npu_gmmfr(op),
            "torch.npu.npu_format_cast" => mapper.npu_format_cast(op),
            "torch.aten._grouped_mm" | "torch.transformers.grouped_mm_fallback" => mapper.grouped_mm(op),
            _ => continue,
        };
        match result {
            Ok(()) => {
                *mapped.entry(name).or_insert(0) += 1;
                let live = (0..op.result_count()).any(|i| op.result(i).map(|r| !users(r.into()).is_empty()).unwrap_or(false));
                if !live {
                    erase(op);
                }
            }
            Err(why) => diagnostics.push(remark(location, format!("{name} left opaque: {why}"))),
        }
    }
    Ok(())
}

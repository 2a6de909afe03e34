//! `npu-lower-to-aclnn`: lower each `npu.grouped_matmul_finalize_routing` to the two-phase aclnn
//! call torchair graph mode makes (SPEC 4.1), at the LLVM-dialect level.
//!
//! A function whose body is one fused op on its arguments (the shape of a graph-mode kernel
//! call) becomes an `llvm.func` of the same name taking one device pointer per argument, then the
//! output pointer and the stream, and returning the aclnn status: aclCreateTensor for every
//! present operand (absent optionals are null), GetWorkspaceSize, aclrtMalloc of the workspace
//! when its size is non-zero, the launch, aclrtSynchronizeStream, then aclDestroyTensor /
//! aclDestroyIntArray / aclrtFree on every path. The first non-zero status is returned.

use super::aclnn_abi::{
    EntryPoint, FORMAT_FRACTAL_NZ, FORMAT_ND, LAUNCH_SIGNATURE, MALLOC_HUGE_FIRST, RUNTIME_FUNCTIONS, data_type,
    workspace_signature,
};
use crate::pass::{Pass, PassError, PassInfo, PassOption, PassOptions, PassOutcome, bool_option, check_option_names};
use gmmfr_dialect::context::NpuContext;
use gmmfr_dialect::diagnostics::{Diagnostic, Severity};
use gmmfr_dialect::location::SourceLoc;
use gmmfr_dialect::op_view::{AttrValue, NpuOp};
use gmmfr_dialect::profile::{CannVersion, check_gmmfr};
use gmmfr_dialect::scenario::Scenario;
use gmmfr_dialect::schema;
use gmmfr_dialect::types::TensorInfo;
use melior::ir::{
    BlockLike, Module, OperationRef, RegionLike, ValueLike,
    attribute::StringAttribute,
    operation::{OperationLike, WalkOrder, WalkResult},
};
use std::fmt::Write;

/// The pass's description.
pub const INFO: PassInfo = PassInfo {
    name: "npu-lower-to-aclnn",
    summary: "Lower npu.grouped_matmul_finalize_routing to the two-phase aclnn call of CANN's C API (LLVM dialect)",
    description: "Checks each fused op against the Ascend profile of the selected CANN release, chooses the \
                  entry point (WeightNz, WeightNzV2 with an offset or tuning config, V3 for A8W4 ND), and turns \
                  a function made of one fused op on its arguments into an llvm.func taking device pointers, the \
                  output pointer and the stream, that creates the aclTensors, asks for the workspace size, \
                  allocates it, launches, synchronizes, releases everything on every path and returns the first \
                  non-zero status. Ops outside the profile, non-quantized ops and ops inside larger functions are \
                  left for the loop target with a remark (an error with strict=true).",
    options: &[
        PassOption {
            name: "cann-version",
            help: "older or newer (default)",
        },
        PassOption {
            name: "strict",
            help: "true to make an op that cannot be lowered an error (default false)",
        },
        PassOption {
            name: "check-profile",
            help: "false to emit the call even for ops outside the profile, leaving validation to the runtime's GetWorkspaceSize (default true)",
        },
    ],
};

/// The aclnn lowering.
pub struct LowerToAclnnPass {
    version: CannVersion,
    strict: bool,
    check_profile: bool,
}

impl LowerToAclnnPass {
    /// Creates the pass from pipeline options.
    pub fn create(options: &PassOptions) -> Result<Self, PassError> {
        check_option_names(&INFO, options)?;
        let version = match options.get("cann-version") {
            None => CannVersion::default(),
            Some(text) => text.parse().map_err(|message| PassError::Option {
                pass: INFO.name,
                message,
            })?,
        };
        Ok(Self {
            version,
            strict: bool_option(&INFO, options, "strict", false)?,
            check_profile: bool_option(&INFO, options, "check-profile", true)?,
        })
    }
}

/// One operand of the aclnn call.
struct AclTensor {
    /// SSA name of the device pointer argument.
    pointer: String,
    /// View dims (logical shape).
    view: Vec<u64>,
    /// Storage dims (the 5-D NZ blocks for an NZ weight; the view otherwise).
    storage: Vec<u64>,
    data_type: i32,
    format: i32,
}

/// Why an op was not lowered.
enum Skip {
    Profile(Vec<String>),
    NoKernel(String),
    NotKernelShaped(String),
}

impl Pass for LowerToAclnnPass {
    fn info(&self) -> &'static PassInfo {
        &INFO
    }

    fn run(&self, context: &NpuContext, module: &mut Module<'_>) -> Result<PassOutcome, PassError> {
        let mut functions = Vec::new();
        for op in module
            .body()
            .first_operation()
            .into_iter()
            .flat_map(|first| std::iter::successors(Some(first), |o| o.next_in_block()))
        {
            if op.name().as_string_ref().as_str() == Ok("func.func") {
                functions.push(op);
            }
        }
        let mut outcome = PassOutcome::default();
        let mut lowered_text = String::new();
        let mut lowered_functions = Vec::new();
        let mut entries = Vec::new();
        let mut skipped = Vec::new();
        for function in functions {
            for op in fused_ops(function) {
                let location = SourceLoc::from_location(op.location());
                match self.lower(function, op) {
                    Ok((text, entry)) => {
                        lowered_text.push_str(&text);
                        lowered_functions.push(function);
                        if !entries.contains(&entry) {
                            entries.push(entry);
                        }
                        outcome
                            .diagnostics
                            .push(remark(location, format!("[{}] lowered to {}", INFO.name, entry.name())));
                    }
                    Err(skip) => {
                        let message = match skip {
                            Skip::Profile(failed) => format!(
                                "not lowered: outside the Ascend profile (CANN {}): {}",
                                self.version,
                                failed.join("; ")
                            ),
                            Skip::NoKernel(what) => format!("not lowered: {what}"),
                            Skip::NotKernelShaped(what) => format!("not lowered: {what}"),
                        };
                        skipped.push(Diagnostic::error(
                            location.clone(),
                            format!("'{}' op {message}", schema::GMMFR.name),
                        ));
                        outcome.diagnostics.push(remark(
                            location,
                            format!("[{}] {message}; left for the loop target", INFO.name),
                        ));
                    }
                }
            }
        }
        if self.strict && !skipped.is_empty() {
            return Err(PassError::Failed(skipped));
        }
        outcome
            .statistics
            .insert("lowered".into(), lowered_functions.len() as u64);
        outcome.statistics.insert("left-for-loops".into(), skipped.len() as u64);
        if lowered_functions.is_empty() {
            return Ok(outcome);
        }

        // Declarations once, then every lowered function; parsed in this context and moved in.
        let mut text = String::from("module {\n");
        for (name, signature) in RUNTIME_FUNCTIONS {
            let _ = writeln!(text, "  llvm.func @{name}{}", signature_as_declaration(signature));
        }
        for entry in &entries {
            let _ = writeln!(
                text,
                "  llvm.func @{}GetWorkspaceSize{}",
                entry.name(),
                signature_as_declaration(&workspace_signature(*entry))
            );
            let _ = writeln!(
                text,
                "  llvm.func @{}{}",
                entry.name(),
                signature_as_declaration(LAUNCH_SIGNATURE)
            );
        }
        text.push_str(&lowered_text);
        text.push_str("}\n");
        let generated = gmmfr_dialect::parse::parse_source(context, &text, "<npu-lower-to-aclnn>").map_err(|e| {
            PassError::Failed(vec![Diagnostic::error(
                SourceLoc::Unknown,
                format!("internal error: the generated aclnn call does not parse: {e}"),
            )])
        })?;
        for function in lowered_functions {
            gmmfr_dialect::graph::erase(function);
        }
        let body = module.body();
        let mut next = generated.body().first_operation();
        while let Some(op) = next {
            // SAFETY: `op` is a live op of `generated`, which outlives this statement; `clone` on
            // the owned view deep-copies it into a new, unparented op.
            body.append_operation(unsafe { op.to_ref() }.clone());
            next = op.next_in_block();
        }
        Ok(outcome)
    }
}

fn remark(location: SourceLoc, message: String) -> Diagnostic {
    Diagnostic {
        location,
        severity: Severity::Remark,
        message,
        notes: Vec::new(),
    }
}

/// `(a, b) -> r` as an llvm.func declaration suffix `(a, b) -> r`.
fn signature_as_declaration(signature: &str) -> String {
    signature.to_string()
}

fn fused_ops<'c, 'a>(function: OperationRef<'c, 'a>) -> Vec<OperationRef<'c, 'a>> {
    let mut found = Vec::new();
    function.walk(WalkOrder::PreOrder, |op| {
        if op.name().as_string_ref().as_str() == Ok(schema::GMMFR.name) {
            // SAFETY: the walk's refs are valid as long as the function is, which `found` cannot
            // outlive ('a); only their lifetime is widened from the callback's.
            found.push(unsafe { OperationRef::from_raw(op.to_raw()) });
        }
        WalkResult::Advance
    });
    found
}

fn int_attr(op: &NpuOp<'_, '_>, name: &str) -> i64 {
    match op.attribute(name).map(AttrValue::of) {
        Some(AttrValue::Int { value, .. }) => value,
        _ => 0,
    }
}

fn static_dims(info: &TensorInfo, what: &str) -> Result<Vec<u64>, Skip> {
    info.dims
        .iter()
        .map(|d| {
            d.ok_or_else(|| Skip::NotKernelShaped(format!("operand '{what}' has a dynamic shape ({})", info.text)))
        })
        .collect()
}

impl LowerToAclnnPass {
    /// The llvm.func replacing `function`, whose body must be `op` on its arguments.
    fn lower(&self, function: OperationRef<'_, '_>, op: OperationRef<'_, '_>) -> Result<(String, EntryPoint), Skip> {
        let view = NpuOp::new(op)
            .ok()
            .flatten()
            .ok_or_else(|| Skip::NotKernelShaped("malformed op".into()))?;
        let (Some(x), Some(w)) = (view.operand_info("x"), view.operand_info("w")) else {
            return Err(Skip::NotKernelShaped("malformed op".into()));
        };
        let scenario = Scenario::classify(&x, &w).ok_or_else(|| Skip::NotKernelShaped("unclassified op".into()))?;
        let tuning = match view.attribute("tuning_config").map(AttrValue::of) {
            Some(AttrValue::I64Array(values)) => Some(values),
            _ => None,
        };
        let entry = EntryPoint::choose(&scenario, view.operand("offset").is_some(), tuning.is_some())
            .ok_or_else(|| Skip::NoKernel(format!("the {scenario} variant has no Ascend kernel")))?;
        let failed = if self.check_profile {
            check_gmmfr(&view, self.version)
        } else {
            Vec::new()
        };
        if !failed.is_empty() {
            return Err(Skip::Profile(failed.iter().map(|v| v.to_string()).collect()));
        }

        // Kernel shape: the function's body is this op and a return of its result, and every
        // operand is a function argument.
        let name = function
            .attribute("sym_name")
            .ok()
            .and_then(|a| StringAttribute::try_from(a).ok())
            .map(|s| s.value().to_string())
            .ok_or_else(|| Skip::NotKernelShaped("function without a name".into()))?;
        let block = function
            .region(0)
            .ok()
            .and_then(|r| r.first_block())
            .ok_or_else(|| Skip::NotKernelShaped("function without a body".into()))?;
        let ops: Vec<_> = block
            .first_operation()
            .into_iter()
            .flat_map(|f| std::iter::successors(Some(f), |o| o.next_in_block()))
            .collect();
        let returns_result = ops.len() == 2
            && ops[0] == op
            && ops[1].name().as_string_ref().as_str() == Ok("func.return")
            && ops[1].operand_count() == 1
            && ops[1]
                .operand(0)
                .ok()
                .zip(op.result(0).ok())
                .is_some_and(|(a, b)| a.to_raw().ptr == b.to_raw().ptr);
        if !returns_result {
            return Err(Skip::NotKernelShaped(format!(
                "@{name} does more than call the fused op on its arguments (lower such graphs with the loop target)"
            )));
        }
        let mut argument_of = Vec::new();
        for decl in schema::GMMFR.operands {
            let Some(value) = view.operand(decl.name) else {
                argument_of.push(None);
                continue;
            };
            let index = (0..block.argument_count())
                .find(|i| block.argument(*i).is_ok_and(|a| a.to_raw().ptr == value.to_raw().ptr))
                .ok_or_else(|| {
                    Skip::NotKernelShaped(format!("operand '{}' of @{name} is not a function argument", decl.name))
                })?;
            argument_of.push(Some(index));
        }

        // The aclTensor of every present operand.
        let n0 = scenario.nz_block_n();
        let k = x.dim(1).unwrap_or(0);
        let out_info = view
            .result_info(0)
            .ok_or_else(|| Skip::NotKernelShaped("no result".into()))?;
        let n = out_info.dim(1).unwrap_or(0);
        let mut tensors: Vec<Option<AclTensor>> = Vec::new();
        for (decl, argument) in schema::GMMFR.operands.iter().zip(&argument_of) {
            let Some(argument) = argument else {
                tensors.push(None);
                continue;
            };
            let info = view
                .operand_info(decl.name)
                .ok_or_else(|| Skip::NotKernelShaped("untyped operand".into()))?;
            let dims = static_dims(&info, decl.name)?;
            let data_type = data_type(&info.elem)
                .ok_or_else(|| Skip::NotKernelShaped(format!("operand '{}' has no aclDataType", decl.name)))?;
            let (view_dims, format) = if decl.name == "w" && dims.len() == 5 {
                (vec![dims[0], k, n], FORMAT_FRACTAL_NZ)
            } else {
                (dims.clone(), FORMAT_ND)
            };
            let _ = n0;
            tensors.push(Some(AclTensor {
                pointer: format!("%arg{argument}"),
                view: view_dims,
                storage: dims,
                data_type,
                format,
            }));
        }
        let out_dims = static_dims(&out_info, "out")?;
        let out = AclTensor {
            pointer: "%out".into(),
            view: out_dims.clone(),
            storage: out_dims,
            data_type: 0,
            format: FORMAT_ND,
        };

        let attrs = Attributes {
            dtype: int_attr(&view, "dtype"),
            shared_input_weight: match view.attribute("shared_input_weight").map(AttrValue::of) {
                Some(AttrValue::Float { value, .. }) => value as f32,
                _ => 1.0,
            },
            shared_input_offset: int_attr(&view, "shared_input_offset"),
            group_list_type: int_attr(&view, "group_list_type"),
            tuning,
        };
        Ok((
            emit(&name, block.argument_count(), entry, &tensors, &out, &attrs),
            entry,
        ))
    }
}

struct Attributes {
    dtype: i64,
    shared_input_weight: f32,
    shared_input_offset: i64,
    group_list_type: i64,
    tuning: Option<Vec<i64>>,
}

fn dense(values: &[u64]) -> String {
    values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
}

fn strides(dims: &[u64]) -> Vec<u64> {
    let mut strides = vec![1u64; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * dims[i + 1];
    }
    strides
}

/// The text of the llvm.func and its constant globals.
fn emit(
    name: &str,
    arguments: usize,
    entry: EntryPoint,
    tensors: &[Option<AclTensor>],
    out: &AclTensor,
    attrs: &Attributes,
) -> String {
    let mut globals = String::new();
    let mut body = String::new();
    let global = |globals: &mut String, suffix: &str, values: &[u64]| -> String {
        let symbol = format!("__{name}_{suffix}");
        let _ = writeln!(
            globals,
            "  llvm.mlir.global private constant @{symbol}(dense<[{}]> : tensor<{}xi64>) {{addr_space = 0 : i32}} : !llvm.array<{} x i64>",
            dense(values),
            values.len(),
            values.len()
        );
        symbol
    };
    let _ = writeln!(body, "    %null = llvm.mlir.zero : !llvm.ptr");
    let _ = writeln!(body, "    %c0 = llvm.mlir.constant(0 : i64) : i64");
    let _ = writeln!(body, "    %c1 = llvm.mlir.constant(1 : i64) : i64");
    let _ = writeln!(body, "    %ok = llvm.mlir.constant(0 : i32) : i32");
    let names = schema::GMMFR
        .operands
        .iter()
        .map(|d| d.name)
        .chain(std::iter::once("out"));
    let mut handles = Vec::new();
    for (operand, tensor) in names.zip(tensors.iter().map(Option::as_ref).chain(std::iter::once(Some(out)))) {
        let Some(t) = tensor else {
            handles.push("%null".to_string());
            continue;
        };
        let dims = global(&mut globals, &format!("{operand}_dims"), &t.view);
        let stride = global(&mut globals, &format!("{operand}_strides"), &strides(&t.view));
        let storage = global(&mut globals, &format!("{operand}_storage"), &t.storage);
        let _ = writeln!(body, "    %v_{operand}_dims = llvm.mlir.addressof @{dims} : !llvm.ptr");
        let _ = writeln!(
            body,
            "    %v_{operand}_strides = llvm.mlir.addressof @{stride} : !llvm.ptr"
        );
        let _ = writeln!(
            body,
            "    %v_{operand}_storage = llvm.mlir.addressof @{storage} : !llvm.ptr"
        );
        let _ = writeln!(
            body,
            "    %v_{operand}_rank = llvm.mlir.constant({} : i64) : i64",
            t.view.len()
        );
        let _ = writeln!(
            body,
            "    %v_{operand}_storage_rank = llvm.mlir.constant({} : i64) : i64",
            t.storage.len()
        );
        let _ = writeln!(
            body,
            "    %v_{operand}_type = llvm.mlir.constant({} : i32) : i32",
            t.data_type
        );
        let _ = writeln!(
            body,
            "    %v_{operand}_format = llvm.mlir.constant({} : i32) : i32",
            t.format
        );
        let _ = writeln!(
            body,
            "    %t_{operand} = llvm.call @aclCreateTensor(%v_{operand}_dims, %v_{operand}_rank, %v_{operand}_type, %v_{operand}_strides, %c0, %v_{operand}_format, %v_{operand}_storage, %v_{operand}_storage_rank, {}) : (!llvm.ptr, i64, i32, !llvm.ptr, i64, i32, !llvm.ptr, i64, !llvm.ptr) -> !llvm.ptr",
            t.pointer
        );
        handles.push(format!("%t_{operand}"));
    }
    // Slots for the two-phase protocol; the workspace pointer starts null so that cleanup
    // frees it only if it was allocated.
    let _ = writeln!(body, "    %ws_size = llvm.alloca %c1 x i64 : (i64) -> !llvm.ptr");
    let _ = writeln!(body, "    %executor = llvm.alloca %c1 x !llvm.ptr : (i64) -> !llvm.ptr");
    let _ = writeln!(body, "    %ws_slot = llvm.alloca %c1 x !llvm.ptr : (i64) -> !llvm.ptr");
    let _ = writeln!(body, "    llvm.store %c0, %ws_size : i64, !llvm.ptr");
    let _ = writeln!(body, "    llvm.store %null, %executor : !llvm.ptr, !llvm.ptr");
    let _ = writeln!(body, "    llvm.store %null, %ws_slot : !llvm.ptr, !llvm.ptr");
    let tuning = match &attrs.tuning {
        Some(values) => {
            let values: Vec<u64> = values.iter().map(|v| *v as u64).collect();
            let symbol = global(&mut globals, "tuning_config", &values);
            let _ = writeln!(body, "    %tuning_values = llvm.mlir.addressof @{symbol} : !llvm.ptr");
            let _ = writeln!(
                body,
                "    %tuning_len = llvm.mlir.constant({} : i64) : i64",
                values.len()
            );
            let _ = writeln!(
                body,
                "    %tuning = llvm.call @aclCreateIntArray(%tuning_values, %tuning_len) : (!llvm.ptr, i64) -> !llvm.ptr"
            );
            "%tuning".to_string()
        }
        None => "%null".to_string(),
    };
    let _ = writeln!(body, "    %dtype = llvm.mlir.constant({} : i64) : i64", attrs.dtype);
    let _ = writeln!(
        body,
        "    %shared_weight = llvm.mlir.constant(0x{:08X} : f32) : f32",
        attrs.shared_input_weight.to_bits()
    );
    let _ = writeln!(
        body,
        "    %shared_offset = llvm.mlir.constant({} : i64) : i64",
        attrs.shared_input_offset
    );
    let _ = writeln!(body, "    %no_transpose = llvm.mlir.constant(false) : i1");
    let _ = writeln!(
        body,
        "    %group_list_type = llvm.mlir.constant({} : i64) : i64",
        attrs.group_list_type
    );

    // Parameter order of SPEC 4.1: x1, x2, scale, bias, [offset, antiquantScale, antiquantOffset,]
    // pertokenScale, groupList, sharedInput, logit, rowIndex, attributes, [tuningConfig,] out.
    let h = |name: &str| -> String {
        let index = schema::GMMFR.operand_index(name).unwrap_or(0);
        handles[index].clone()
    };
    let mut call = vec![h("x"), h("w"), h("scale"), h("bias")];
    if entry.has_v2_parameters() {
        call.extend([h("offset"), "%null".to_string(), "%null".to_string()]);
    }
    call.extend([
        h("pertoken_scale"),
        h("group_list"),
        h("shared_input"),
        h("logit"),
        h("row_index"),
    ]);
    call.extend(
        [
            "%dtype",
            "%shared_weight",
            "%shared_offset",
            "%no_transpose",
            "%no_transpose",
            "%group_list_type",
        ]
        .map(String::from),
    );
    if entry.has_v2_parameters() {
        call.push(tuning.clone());
    }
    call.extend([
        handles[handles.len() - 1].clone(),
        "%ws_size".into(),
        "%executor".into(),
    ]);
    let entry_name = entry.name();
    let _ = writeln!(
        body,
        "    %status_size = llvm.call @{entry_name}GetWorkspaceSize({}) : {}",
        call.join(", "),
        workspace_signature(entry)
    );
    let _ = writeln!(body, "    %size_ok = llvm.icmp \"eq\" %status_size, %ok : i32");
    let _ = writeln!(
        body,
        "    llvm.cond_br %size_ok, ^allocate, ^cleanup(%status_size : i32)"
    );
    let _ = writeln!(body, "  ^allocate:");
    let _ = writeln!(body, "    %size = llvm.load %ws_size : !llvm.ptr -> i64");
    let _ = writeln!(body, "    %needs_workspace = llvm.icmp \"ne\" %size, %c0 : i64");
    let _ = writeln!(body, "    llvm.cond_br %needs_workspace, ^malloc, ^launch");
    let _ = writeln!(body, "  ^malloc:");
    let _ = writeln!(
        body,
        "    %policy = llvm.mlir.constant({MALLOC_HUGE_FIRST} : i32) : i32"
    );
    let _ = writeln!(
        body,
        "    %status_malloc = llvm.call @aclrtMalloc(%ws_slot, %size, %policy) : (!llvm.ptr, i64, i32) -> i32"
    );
    let _ = writeln!(body, "    %malloc_ok = llvm.icmp \"eq\" %status_malloc, %ok : i32");
    let _ = writeln!(
        body,
        "    llvm.cond_br %malloc_ok, ^launch, ^cleanup(%status_malloc : i32)"
    );
    let _ = writeln!(body, "  ^launch:");
    let _ = writeln!(body, "    %workspace = llvm.load %ws_slot : !llvm.ptr -> !llvm.ptr");
    let _ = writeln!(body, "    %launch_size = llvm.load %ws_size : !llvm.ptr -> i64");
    let _ = writeln!(
        body,
        "    %launch_executor = llvm.load %executor : !llvm.ptr -> !llvm.ptr"
    );
    let _ = writeln!(
        body,
        "    %status_launch = llvm.call @{entry_name}(%workspace, %launch_size, %launch_executor, %stream) : {LAUNCH_SIGNATURE}"
    );
    let _ = writeln!(body, "    %launch_ok = llvm.icmp \"eq\" %status_launch, %ok : i32");
    let _ = writeln!(
        body,
        "    llvm.cond_br %launch_ok, ^synchronize, ^cleanup(%status_launch : i32)"
    );
    let _ = writeln!(body, "  ^synchronize:");
    let _ = writeln!(
        body,
        "    %status_sync = llvm.call @aclrtSynchronizeStream(%stream) : (!llvm.ptr) -> i32"
    );
    let _ = writeln!(body, "    llvm.br ^cleanup(%status_sync : i32)");
    let _ = writeln!(body, "  ^cleanup(%status: i32):");
    for handle in handles.iter().filter(|h| h.as_str() != "%null") {
        let _ = writeln!(
            body,
            "    %destroyed_{} = llvm.call @aclDestroyTensor({handle}) : (!llvm.ptr) -> i32",
            &handle[1..]
        );
    }
    if tuning != "%null" {
        let _ = writeln!(
            body,
            "    %destroyed_tuning = llvm.call @aclDestroyIntArray(%tuning) : (!llvm.ptr) -> i32"
        );
    }
    let _ = writeln!(body, "    %allocated = llvm.load %ws_slot : !llvm.ptr -> !llvm.ptr");
    let _ = writeln!(
        body,
        "    %was_allocated = llvm.icmp \"ne\" %allocated, %null : !llvm.ptr"
    );
    let _ = writeln!(body, "    llvm.cond_br %was_allocated, ^free, ^exit");
    let _ = writeln!(body, "  ^free:");
    let _ = writeln!(
        body,
        "    %freed = llvm.call @aclrtFree(%allocated) : (!llvm.ptr) -> i32"
    );
    let _ = writeln!(body, "    llvm.br ^exit");
    let _ = writeln!(body, "  ^exit:");
    let _ = writeln!(body, "    llvm.return %status : i32");

    let parameters: Vec<String> = (0..arguments)
        .map(|i| format!("%arg{i}: !llvm.ptr"))
        .chain(["%out: !llvm.ptr".into(), "%stream: !llvm.ptr".into()])
        .collect();
    // The C-interface twin (`_mlir_ciface_<name>`) that MLIR's ExecutionEngine calls through its
    // packed interface; object-file callers use `<name>` itself.
    let forwarded: Vec<String> = (0..arguments)
        .map(|i| format!("%arg{i}"))
        .chain(["%out".into(), "%stream".into()])
        .collect();
    let types = vec!["!llvm.ptr"; arguments + 2].join(", ");
    format!(
        "{globals}  llvm.func @{name}({params}) -> i32 {{\n{body}  }}\n  llvm.func @_mlir_ciface_{name}({params}) -> i32 {{\n    %status = llvm.call @{name}({args}) : ({types}) -> i32\n    llvm.return %status : i32\n  }}\n",
        params = parameters.join(", "),
        args = forwarded.join(", "),
    )
}

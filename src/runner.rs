//! Running any function of a module on the CPU: the module goes through an optional pipeline
//! (e.g. the fusion), the loop lowering and the standard pipeline to LLVM, is JIT-compiled, and
//! the function is called through its C interface with `.npy` tensors as memref descriptors.

use crate::error::Error;
use crate::jit::Jit;
use crate::loops_run::{C_RUNNER_UTILS, OPENMP_RUNTIME, to_llvm};
use crate::{Compiler, RunOptions};
use gmmfr_dialect::diagnostics::Diagnostic;
use gmmfr_dialect::location::SourceLoc;
use gmmfr_dialect::tensor::{Buffer, DType, Tensor};
use gmmfr_dialect::types::{Elem, TensorInfo};
use gmmfr_passes::conversions::gmmfr_loop_kernel::status;
use gmmfr_passes::conversions::npu_to_loops::READ_STATUS;
use melior::ir::{
    Attribute, BlockLike, Module, OperationRef, RegionLike, ValueLike,
    attribute::StringAttribute,
    operation::{OperationLike, OperationMutLike, OperationRefMut, WalkOrder, WalkResult},
    r#type::FunctionType,
};

fn invalid(location: SourceLoc, message: String) -> Error {
    Error::Invalid(vec![Diagnostic::error(location, message)])
}

fn find_function<'c, 'a>(module: &'a Module<'c>, name: &str) -> Option<OperationRef<'c, 'a>> {
    let mut found = None;
    module.as_operation().walk(WalkOrder::PreOrder, |op| {
        if op.name().as_string_ref().as_str() == Ok("func.func")
            && op
                .attribute("sym_name")
                .ok()
                .and_then(|a| StringAttribute::try_from(a).ok())
                .is_some_and(|s| s.value() == name)
        {
            // SAFETY: the ref is valid as long as the module is, which `found` cannot outlive.
            found = Some(unsafe { OperationRef::from_raw(op.to_raw()) });
            return WalkResult::Interrupt;
        }
        WalkResult::Advance
    });
    found
}

fn dtype_of(elem: &Elem) -> Option<DType> {
    Some(match elem {
        Elem::I4 => DType::I4,
        Elem::I8 => DType::I8,
        Elem::I32 => DType::I32,
        Elem::I64 => DType::I64,
        Elem::F16 => DType::F16,
        Elem::BF16 => DType::BF16,
        Elem::F32 => DType::F32,
        Elem::Other(_) => return None,
    })
}

/// The address of a tensor's first element (its storage is contiguous).
pub fn data_pointer(tensor: &Tensor) -> *mut () {
    match tensor.buffer() {
        Buffer::I8(v) => v.as_ptr() as *mut (),
        Buffer::I32(v) => v.as_ptr() as *mut (),
        Buffer::I64(v) => v.as_ptr() as *mut (),
        Buffer::F16(v) => v.as_ptr() as *mut (),
        Buffer::BF16(v) => v.as_ptr() as *mut (),
        Buffer::F32(v) => v.as_ptr() as *mut (),
    }
}

fn descriptor(data: *mut (), shape: &[usize]) -> Vec<i64> {
    let mut words = vec![data as i64, data as i64, 0];
    words.extend(shape.iter().map(|d| *d as i64));
    let mut strides = vec![0i64; shape.len()];
    let mut stride = 1i64;
    for (i, d) in shape.iter().enumerate().rev() {
        strides[i] = stride;
        stride *= *d as i64;
    }
    words.extend(strides);
    words
}

unsafe extern "C" {
    // Result buffers are allocated by the generated code with malloc; the host frees them.
    fn free(pointer: *mut std::ffi::c_void);
}

/// Copies `count` elements of `dtype` from `data` into a tensor.
///
/// # Safety
///
/// `data` must point at `count` initialized elements of `dtype`'s storage type.
unsafe fn read_tensor(data: *const (), dtype: DType, shape: Vec<usize>) -> Result<Tensor, String> {
    let count: usize = shape.iter().product();
    // SAFETY: forwarded from the caller.
    let tensor = unsafe {
        match dtype {
            DType::I4 => Tensor::from_i4(shape, std::slice::from_raw_parts(data as *const i8, count).to_vec()),
            DType::I8 => Tensor::from_i8(shape, std::slice::from_raw_parts(data as *const i8, count).to_vec()),
            DType::I32 => Tensor::from_i32(shape, std::slice::from_raw_parts(data as *const i32, count).to_vec()),
            DType::I64 => Tensor::from_i64(shape, std::slice::from_raw_parts(data as *const i64, count).to_vec()),
            DType::F16 => Tensor::from_f16(
                shape,
                std::slice::from_raw_parts(data as *const half::f16, count).to_vec(),
            ),
            DType::BF16 => Tensor::from_bf16(
                shape,
                std::slice::from_raw_parts(data as *const half::bf16, count).to_vec(),
            ),
            DType::F32 => Tensor::from_f32(shape, std::slice::from_raw_parts(data as *const f32, count).to_vec()),
        }
    };
    tensor.map_err(|e| e.to_string())
}

fn status_message(words: &[i64; 4]) -> String {
    match words[0] {
        status::NEGATIVE_COUNT => format!("group_list[{}] = {} gives a negative group size", words[1], words[2]),
        status::SUM_EXCEEDS_M => format!("sum(group_list) = {} exceeds m = {}", words[2], words[3]),
        status::ROW_INDEX_OUT_OF_RANGE => format!(
            "row_index[{}] = {} is outside [0, {}) for an active row",
            words[1], words[2], words[3]
        ),
        status::INDEX_OUT_OF_RANGE => format!(
            "index {} at position {} is outside [0, {})",
            words[2], words[1], words[3]
        ),
        code => format!("the generated code reported status {code}"),
    }
}

/// Converts `.npy` tensors to the parameter types of `entry` where the file format cannot hold
/// them: f32 arrays for bf16 or f16 parameters (every value must be exactly representable), and
/// int8 arrays for i4 parameters (every value in [-8, 7]).
pub fn adapt_arguments(module: &Module<'_>, entry: &str, args: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
    let Some(function) = find_function(module, entry) else {
        return Ok(args);
    };
    let Some(block) = function.region(0).ok().and_then(|r| r.first_block()) else {
        return Ok(args);
    };
    let mut adapted = Vec::new();
    for (index, arg) in args.into_iter().enumerate() {
        let wanted = block
            .argument(index)
            .ok()
            .and_then(|a| TensorInfo::of(a.r#type()))
            .and_then(|i| dtype_of(&i.elem));
        let converted = match (wanted, arg.dtype()) {
            (Some(DType::BF16), DType::F32) | (Some(DType::F16), DType::F32) => {
                let target = wanted.unwrap_or(DType::F32);
                let values = arg.to_f32_vec();
                let rounded = Tensor::from_f32_rounded(target, arg.shape().to_vec(), values.clone())
                    .map_err(|e| invalid(SourceLoc::Unknown, e.to_string()))?;
                if let Some(bad) = rounded
                    .to_f32_vec()
                    .iter()
                    .zip(&values)
                    .position(|(r, v)| r.to_bits() != v.to_bits() && !(r.is_nan() && v.is_nan()))
                {
                    return Err(invalid(
                        SourceLoc::Unknown,
                        format!(
                            "argument #{index}: element {bad} ({}) is not exactly representable in {target}",
                            values[bad]
                        ),
                    ));
                }
                rounded
            }
            (Some(DType::I4), DType::I8) => {
                let values = arg.as_i8().map(<[i8]>::to_vec).unwrap_or_default();
                if let Some(bad) = values.iter().position(|v| !(-8..=7).contains(v)) {
                    return Err(invalid(
                        SourceLoc::Unknown,
                        format!(
                            "argument #{index}: element {bad} ({}) is not an int4 value",
                            values[bad]
                        ),
                    ));
                }
                Tensor::from_i4(arg.shape().to_vec(), values).map_err(|e| invalid(SourceLoc::Unknown, e.to_string()))?
            }
            _ => arg,
        };
        adapted.push(converted);
    }
    Ok(adapted)
}

/// A function compiled for the CPU, ready to be called many times.
pub struct Compiled {
    jit: Jit,
    location: SourceLoc,
    entry: String,
    parameters: Vec<TensorInfo>,
    results: Vec<TensorInfo>,
}

/// Compiles function `entry` of `module` (already parsed and verified) for the CPU: `pipeline`
/// (our passes and upstream ones) first, then the loop lowering and the standard pipeline.
pub fn compile(
    compiler: &Compiler,
    mut module: Module<'_>,
    entry: &str,
    pipeline: Option<&str>,
    threads: usize,
) -> Result<Compiled, Error> {
    let function = find_function(&module, entry)
        .ok_or_else(|| invalid(SourceLoc::Unknown, format!("no function @{entry} in the module")))?;
    let location = SourceLoc::from_location(function.location());
    let block = function
        .region(0)
        .ok()
        .and_then(|r| r.first_block())
        .ok_or_else(|| invalid(location.clone(), format!("@{entry} has no body")))?;
    let parameters: Vec<TensorInfo> = (0..block.argument_count())
        .map(|i| block.argument(i).ok().and_then(|a| TensorInfo::of(a.r#type())))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            let torch = (0..block.argument_count())
                .any(|i| block.argument(i).is_ok_and(|a| a.r#type().to_string().starts_with("!torch.")));
            let hint = if torch {
                " (torch-mlir types: import it first, e.g. --pass-pipeline torch-to-npu,npu-recognize-moe-combine,torch-lower-aten,npu-fuse-gmm-finalize)"
            } else {
                ""
            };
            invalid(location.clone(), format!("@{entry} takes a non-tensor argument{hint}"))
        })?;
    let function_type = function
        .attribute("function_type")
        .ok()
        .and_then(|a| melior::ir::attribute::TypeAttribute::try_from(a).ok())
        .and_then(|t| FunctionType::try_from(t.value()).ok())
        .ok_or_else(|| invalid(location.clone(), format!("@{entry} has no function type")))?;
    let results: Vec<TensorInfo> = (0..function_type.result_count())
        .map(|i| function_type.result(i).ok().and_then(TensorInfo::of))
        .collect::<Option<_>>()
        .ok_or_else(|| invalid(location.clone(), format!("@{entry} returns a non-tensor value")))?;
    if results.iter().any(|r| r.dims.contains(&None)) {
        return Err(invalid(
            location.clone(),
            format!("@{entry} returns a tensor of dynamic shape; the runner needs static result shapes"),
        ));
    }
    // The C interface is what the host calls.
    // SAFETY: the function op is live; adding an attribute does not invalidate other refs.
    let mut function_mut = unsafe { OperationRefMut::from_raw(function.to_raw()) };
    function_mut.set_attribute("llvm.emit_c_interface", Attribute::unit(compiler.context().mlir()));

    let mut full = String::new();
    if let Some(pipeline) = pipeline {
        full.push_str(pipeline);
        full.push(',');
    }
    full.push_str("npu-lower-to-loops,");
    full.push_str(&to_llvm(threads));
    compiler.run_pipeline(&mut module, &full, &RunOptions::default())?;
    let libraries: &[&str] = if threads > 1 { &[C_RUNNER_UTILS, OPENMP_RUNTIME] } else { &[C_RUNNER_UTILS] };
    let jit = Jit::with_libraries(&module, &[], libraries)?;
    Ok(Compiled {
        jit,
        location,
        entry: entry.to_string(),
        parameters,
        results,
    })
}

impl Compiled {
    /// Calls the function on `args` (checked against its parameter types).
    pub fn call(&self, args: &[Tensor]) -> Result<Vec<Tensor>, Error> {
        let entry = &self.entry;
        if args.len() != self.parameters.len() {
            return Err(invalid(
                self.location.clone(),
                format!(
                    "@{entry} takes {} arguments, {} given",
                    self.parameters.len(),
                    args.len()
                ),
            ));
        }
        for (index, (arg, parameter)) in args.iter().zip(&self.parameters).enumerate() {
            let shape_ok = arg.shape().len() == parameter.rank()
                && arg
                    .shape()
                    .iter()
                    .zip(&parameter.dims)
                    .all(|(a, p)| p.is_none_or(|p| p as usize == *a));
            let dtype_ok = dtype_of(&parameter.elem) == Some(arg.dtype());
            if !shape_ok || !dtype_ok {
                return Err(invalid(
                    self.location.clone(),
                    format!(
                        "argument #{index} of @{entry} must be {}, got {} {:?}",
                        parameter.text,
                        arg.dtype(),
                        arg.shape()
                    ),
                ));
            }
        }
        let jit = &self.jit;
        let results = &self.results;
        let mut argument_descriptors: Vec<Vec<i64>> =
            args.iter().map(|a| descriptor(data_pointer(a), a.shape())).collect();
        let mut result_words: Vec<i64> = results.iter().flat_map(|r| vec![0i64; 3 + 2 * r.rank()]).collect();
        let mut pointers: Vec<*mut ()> = Vec::new();
        if !results.is_empty() {
            pointers.push(result_words.as_mut_ptr() as *mut ());
        }
        pointers.extend(argument_descriptors.iter_mut().map(|d| d.as_mut_ptr() as *mut ()));
        let mut arguments: Vec<*mut ()> = pointers.iter_mut().map(|p| p as *mut *mut () as *mut ()).collect();
        // SAFETY: the C interface of @entry takes a pointer to its results (one descriptor, or a
        // struct of them laid out back to back as 8-byte words), then one descriptor pointer per
        // argument; each argument tensor was checked against the parameter type above.
        unsafe { jit.invoke_packed(entry, &mut arguments)? };

        let mut status_words = [0i64; 4];
        if !jit.lookup(READ_STATUS).is_null() {
            let mut status_descriptor = descriptor(status_words.as_mut_ptr() as *mut (), &[4]);
            let mut status_pointer = status_descriptor.as_mut_ptr() as *mut ();
            let mut status_arguments = [&mut status_pointer as *mut *mut () as *mut ()];
            // SAFETY: @gmmfr_read_status takes one memref<4xi64> descriptor pointing at status_words.
            unsafe { jit.invoke_packed(READ_STATUS, &mut status_arguments)? };
        }

        let inputs: Vec<i64> = args.iter().map(|a| data_pointer(a) as i64).collect();
        let mut outputs = Vec::new();
        let mut freed: Vec<i64> = Vec::new();
        let mut offset = 0;
        for result in results {
            let words = &result_words[offset..offset + 3 + 2 * result.rank()];
            offset += 3 + 2 * result.rank();
            let (allocated, aligned, element_offset) = (words[0], words[1], words[2]);
            let shape: Vec<usize> = result.dims.iter().map(|d| d.unwrap_or(0) as usize).collect();
            let dtype = dtype_of(&result.elem).ok_or_else(|| {
                invalid(
                    SourceLoc::Unknown,
                    format!("result type {} is not supported", result.text),
                )
            })?;
            if status_words[0] == 0 && aligned != 0 {
                let size = match dtype {
                    DType::I4 | DType::I8 => 1,
                    DType::F16 | DType::BF16 => 2,
                    DType::I32 | DType::F32 => 4,
                    DType::I64 => 8,
                };
                let data = (aligned + element_offset * size) as *const ();
                // SAFETY: the generated code returned a contiguous buffer of the result's static
                // shape and element type (identity layout), alive until freed below.
                outputs.push(unsafe { read_tensor(data, dtype, shape) }.map_err(|e| invalid(SourceLoc::Unknown, e))?);
            }
            // Free what the generated code allocated; a result may be an argument's own buffer
            // or repeat another result.
            if allocated != 0 && !inputs.contains(&allocated) && !freed.contains(&allocated) {
                // SAFETY: allocated by the generated code with malloc and not used after this.
                unsafe { free(allocated as *mut std::ffi::c_void) };
                freed.push(allocated);
            }
        }
        if status_words[0] != 0 {
            return Err(invalid(self.location.clone(), status_message(&status_words)));
        }
        Ok(outputs)
    }
}

/// Compiles and calls `entry` once (see [`compile`] and [`Compiled::call`]).
pub fn run(
    compiler: &Compiler,
    module: Module<'_>,
    entry: &str,
    pipeline: Option<&str>,
    args: &[Tensor],
    threads: usize,
) -> Result<Vec<Tensor>, Error> {
    compile(compiler, module, entry, pipeline, threads)?.call(args)
}

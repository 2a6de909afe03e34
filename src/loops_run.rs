//! Running a case on the CPU loop target: the fused op is lowered to its loop nest
//! (`npu-lower-to-loops`), the module through MLIR's standard pipeline to LLVM, JIT-compiled and
//! called through its C interface with the case's buffers as memref descriptors.

use crate::error::Error;
use crate::jit::Jit;
use crate::{Compiler, RunOptions, case_module};
use gmmfr_dialect::diagnostics::Diagnostic;
use gmmfr_dialect::location::SourceLoc;
use gmmfr_dialect::reference::{GmmfrAttrs, GmmfrOperands};
use gmmfr_dialect::tensor::{Buffer, Tensor};
use gmmfr_passes::conversions::gmmfr_loop_kernel::status;
use gmmfr_passes::conversions::npu_to_loops::READ_STATUS;

/// Where the OpenMP runtime that multi-threaded kernels call lives (Debian's libomp-22-dev).
pub const OPENMP_RUNTIME: &str = "/usr/lib/llvm-22/lib/libomp.so";

/// The upstream pipeline from bufferizable tensor IR to the LLVM dialect. With more than one
/// thread, the kernels' parallel loops over output-column blocks become OpenMP work-sharing loops.
pub fn to_llvm(threads: usize) -> String {
    let openmp = if threads > 1 {
        format!("convert-scf-to-openmp{{num-threads={threads}}},canonicalize,")
    } else {
        String::new()
    };
    format!(
        "func.func(convert-elementwise-to-linalg),one-shot-bufferize{{bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map}},\
         func.func(convert-linalg-to-loops),convert-vector-to-scf,{openmp}convert-scf-to-cf,lower-affine,\
         expand-strided-metadata,finalize-memref-to-llvm,convert-vector-to-llvm,convert-arith-to-llvm,\
         convert-func-to-llvm,convert-cf-to-llvm,convert-index-to-llvm,{}reconcile-unrealized-casts",
        if threads > 1 { "convert-openmp-to-llvm," } else { "" }
    )
}

/// A memref descriptor laid out as MLIR's C interface expects: allocated and aligned pointers,
/// offset, sizes, strides (all 8-byte words).
struct Descriptor(Vec<i64>);

impl Descriptor {
    fn new(data: *mut (), shape: &[usize]) -> Self {
        let mut words = vec![data as i64, data as i64, 0];
        words.extend(shape.iter().map(|d| *d as i64));
        let mut stride = 1i64;
        let mut strides = vec![0i64; shape.len()];
        for (i, d) in shape.iter().enumerate().rev() {
            strides[i] = stride;
            stride *= *d as i64;
        }
        words.extend(strides);
        Self(words)
    }

    fn pointer(&mut self) -> *mut () {
        self.0.as_mut_ptr() as *mut ()
    }
}

fn data_pointer(tensor: &Tensor) -> *mut () {
    match tensor.buffer() {
        Buffer::I8(v) => v.as_ptr() as *mut (),
        Buffer::I32(v) => v.as_ptr() as *mut (),
        Buffer::I64(v) => v.as_ptr() as *mut (),
        Buffer::F16(v) => v.as_ptr() as *mut (),
        Buffer::BF16(v) => v.as_ptr() as *mut (),
        Buffer::F32(v) => v.as_ptr() as *mut (),
    }
}

unsafe extern "C" {
    // The generated code allocates its result with malloc (memref.alloc); the host frees it.
    fn free(pointer: *mut std::ffi::c_void);
}

/// Why the generated code refused to run, as it recorded it.
fn status_message(words: &[i64; 4]) -> String {
    match words[0] {
        status::NEGATIVE_COUNT => format!("group_list[{}] = {} gives a negative group size", words[1], words[2]),
        status::SUM_EXCEEDS_M => format!("sum(group_list) = {} exceeds m = {}", words[2], words[3]),
        status::ROW_INDEX_OUT_OF_RANGE => {
            format!(
                "row_index[{}] = {} is outside [0, {}) for an active row",
                words[1], words[2], words[3]
            )
        }
        code => format!("the generated code reported status {code}"),
    }
}

/// Lowers the fused op of a case to loops, JIT-compiles and runs it.
pub fn run_case(
    compiler: &Compiler,
    operands: &GmmfrOperands<'_>,
    attrs: &GmmfrAttrs,
    source_name: &str,
    threads: usize,
) -> Result<Tensor, Error> {
    let source = case_module::case_source(operands, attrs);
    let mut module = compiler.load_source(&source, source_name)?;
    compiler.run_pipeline(
        &mut module,
        &format!("npu-lower-to-loops,{}", to_llvm(threads)),
        &RunOptions::default(),
    )?;
    let libraries: &[&str] = if threads > 1 { &[OPENMP_RUNTIME] } else { &[] };
    let jit = Jit::with_libraries(&module, &[], libraries)?;

    let present: Vec<&Tensor> = [
        Some(operands.x),
        Some(operands.w),
        Some(operands.group_list),
        operands.scale,
        operands.bias,
        operands.offset,
        operands.pertoken_scale,
        operands.shared_input,
        operands.logit,
        Some(operands.row_index),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut descriptors: Vec<Descriptor> = present
        .iter()
        .map(|t| Descriptor::new(data_pointer(t), t.shape()))
        .collect();
    let m = operands.x.shape().first().copied().unwrap_or(0);
    let rows = if attrs.output_bs > 0 {
        attrs.output_bs as usize
    } else {
        m
    };
    let n = operands
        .scale
        .and_then(|s| s.shape().last().copied())
        .or_else(|| operands.w.shape().last().copied())
        .unwrap_or(0);
    let mut result = Descriptor(vec![0; 7]);
    let mut pointers: Vec<*mut ()> = std::iter::once(result.pointer())
        .chain(descriptors.iter_mut().map(Descriptor::pointer))
        .collect();
    let mut arguments: Vec<*mut ()> = pointers.iter_mut().map(|p| p as *mut *mut () as *mut ()).collect();
    // SAFETY: `@gmmfr_case`'s C interface takes a pointer to the result descriptor, then one
    // descriptor pointer per present operand in declaration order (case_source declares them so),
    // each describing a live, contiguous buffer of the static shape and type the module was
    // built from.
    unsafe { jit.invoke_packed(case_module::ENTRY, &mut arguments)? };

    let mut status_words = [0i64; 4];
    let mut status_descriptor = Descriptor::new(status_words.as_mut_ptr() as *mut (), &[4]);
    let mut status_pointer = status_descriptor.pointer();
    let mut status_arguments = [&mut status_pointer as *mut *mut () as *mut ()];
    // SAFETY: @gmmfr_read_status takes one memref<4xi64> descriptor, which points at
    // `status_words` (four i64).
    unsafe { jit.invoke_packed(READ_STATUS, &mut status_arguments)? };

    let allocated = result.0[0] as *mut std::ffi::c_void;
    let aligned = result.0[1] as *const f32;
    let output = if status_words[0] == 0 && !aligned.is_null() {
        // SAFETY: on success the generated code returned a (rows, n) f32 buffer it allocated.
        let values = unsafe { std::slice::from_raw_parts(aligned, rows * n) }.to_vec();
        Some(values)
    } else {
        None
    };
    if !allocated.is_null() {
        // SAFETY: the buffer was allocated by the generated code with malloc and is not used again.
        unsafe { free(allocated) };
    }
    match output {
        Some(values) => Tensor::from_f32(vec![rows, n], values).map_err(|e| Error::Write {
            path: source_name.into(),
            message: e.to_string(),
        }),
        None => Err(Error::Invalid(vec![Diagnostic::error(
            SourceLoc::Path(source_name.to_string()),
            status_message(&status_words),
        )])),
    }
}

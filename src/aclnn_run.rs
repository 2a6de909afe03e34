//! Running a case through the aclnn lowering and the ABI-faithful emulator: the module is
//! lowered to the two-phase aclnn call, JIT-compiled, linked against the emulator's C functions
//! and called with the case's buffers as device pointers.

use crate::error::Error;
use crate::jit::Jit;
use crate::runner::data_pointer;
use crate::{Compiler, RunOptions, case_module};
use gmmfr_aclnn_emu::{Release, set_release, symbols};
use gmmfr_dialect::profile::CannVersion;
use gmmfr_dialect::reference::{GmmfrAttrs, GmmfrOperands};
use gmmfr_dialect::tensor::Tensor;
use melior::ir::operation::{OperationLike, WalkOrder, WalkResult};

/// What happened.
pub enum AclnnOutcome {
    /// The call returned 0 and wrote this output.
    Ran(Tensor),
    /// The call returned a non-zero aclnn status.
    Status(i32),
    /// The op was not lowered (outside the profile, or no kernel); the remarks say why.
    NotLowered(Vec<String>),
}

/// Lowers the fused op of a case to aclnn and runs it on the emulator of `version`.
/// With `check_profile` false the call is emitted even outside the Ascend profile, so that the
/// runtime's own validation (GetWorkspaceSize) decides.
pub fn run_case(
    compiler: &Compiler,
    operands: &GmmfrOperands<'_>,
    attrs: &GmmfrAttrs,
    source_name: &str,
    version: CannVersion,
    check_profile: bool,
) -> Result<AclnnOutcome, Error> {
    let source = case_module::case_source(operands, attrs);
    let mut module = compiler.load_source(&source, source_name)?;
    let pipeline = format!("npu-lower-to-aclnn{{cann-version={version} check-profile={check_profile}}}");
    let report = compiler.run_pipeline(&mut module, &pipeline, &RunOptions::default())?;
    let mut still_fused = false;
    module.as_operation().walk(WalkOrder::PreOrder, |op| {
        still_fused |= op.name().as_string_ref().as_str() == Ok(gmmfr_dialect::schema::GMMFR.name);
        WalkResult::Advance
    });
    if still_fused {
        return Ok(AclnnOutcome::NotLowered(
            report.diagnostics.iter().map(|d| d.message.clone()).collect(),
        ));
    }

    set_release(match version {
        CannVersion::Older => Release::Older,
        CannVersion::Newer => Release::Newer,
    });
    let jit = Jit::new(&module, &symbols())?;
    let present = operands.present();
    let m = operands.x.shape().first().copied().unwrap_or(0);
    let rows = if attrs.output_bs > 0 {
        attrs.output_bs as usize
    } else {
        m
    };
    let n = operands.scale.and_then(|s| s.shape().last().copied()).unwrap_or(0);
    let mut out = vec![0f32; rows * n];
    let mut pointers: Vec<*mut ()> = present.iter().map(|t| data_pointer(t)).collect();
    pointers.push(out.as_mut_ptr() as *mut ());
    // The emulator runs synchronously; any non-null handle stands for the stream.
    let mut stream_storage = 0u64;
    pointers.push(&mut stream_storage as *mut u64 as *mut ());
    let mut status: i32 = -1;
    let mut arguments: Vec<*mut ()> = pointers.iter_mut().map(|p| p as *mut *mut () as *mut ()).collect();
    arguments.push(&mut status as *mut i32 as *mut ());
    // SAFETY (the call below): the lowered function takes one pointer per present operand (in declaration order,
    // as case_source declares them), the output pointer and the stream, and returns an i32; each
    // buffer matches the static type the module was built from, and all outlive the call.
    let before = gmmfr_aclnn_emu::live_objects();
    unsafe { jit.invoke_packed(case_module::ENTRY, &mut arguments)? };
    // The generated code must release every ACL object it created, on every path.
    let after = gmmfr_aclnn_emu::live_objects();
    if after != before {
        return Err(Error::Invalid(vec![gmmfr_dialect::diagnostics::Diagnostic::error(
            gmmfr_dialect::location::SourceLoc::Path(source_name.to_string()),
            format!("the generated aclnn call leaked ACL objects: {before:?} before, {after:?} after"),
        )]));
    }
    if status != 0 {
        return Ok(AclnnOutcome::Status(status));
    }
    Tensor::from_f32(vec![rows, n], out)
        .map(AclnnOutcome::Ran)
        .map_err(|e| Error::Write {
            path: source_name.to_string(),
            message: e.to_string(),
        })
}

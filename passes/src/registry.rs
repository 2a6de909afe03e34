//! Every pass, registered in one place.

use crate::conversions::{npu_to_aclnn, npu_to_loops};
use crate::pass::{Pass, PassError, PassInfo, PassOptions};
use crate::transforms::{check_ascend_profile, fuse_gmm_finalize, recognize_moe_combine, torch_lower_aten, torch_to_npu, verify};

/// The descriptions of every registered pass, in a stable order.
pub fn registry() -> &'static [&'static PassInfo] {
    &[
        &verify::INFO,
        &torch_to_npu::INFO,
        &recognize_moe_combine::INFO,
        &torch_lower_aten::INFO,
        &check_ascend_profile::INFO,
        &fuse_gmm_finalize::INFO,
        &npu_to_aclnn::INFO,
        &npu_to_loops::INFO,
    ]
}

/// Whether `name` is one of our passes (as opposed to an upstream MLIR pass).
pub fn is_registered(name: &str) -> bool {
    registry().iter().any(|info| info.name == name)
}

/// Creates a configured pass by name.
pub fn create(name: &str, options: &PassOptions) -> Result<Box<dyn Pass>, PassError> {
    Ok(match name {
        n if n == verify::INFO.name => Box::new(verify::VerifyPass::create(options)?),
        n if n == torch_to_npu::INFO.name => Box::new(torch_to_npu::TorchToNpuPass::create(options)?),
        n if n == torch_lower_aten::INFO.name => Box::new(torch_lower_aten::TorchLowerAtenPass::create(options)?),
        n if n == recognize_moe_combine::INFO.name => {
            Box::new(recognize_moe_combine::RecognizeMoeCombinePass::create(options)?)
        }
        n if n == check_ascend_profile::INFO.name => {
            Box::new(check_ascend_profile::CheckAscendProfilePass::create(options)?)
        }
        n if n == fuse_gmm_finalize::INFO.name => Box::new(fuse_gmm_finalize::FuseGmmFinalizePass::create(options)?),
        n if n == npu_to_aclnn::INFO.name => Box::new(npu_to_aclnn::LowerToAclnnPass::create(options)?),
        n if n == npu_to_loops::INFO.name => Box::new(npu_to_loops::LowerToLoopsPass::create(options)?),
        other => return Err(PassError::Unknown(other.to_string())),
    })
}

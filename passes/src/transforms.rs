//! Passes that check or transform `npu` IR in place (as opposed to lowerings).

pub mod check_ascend_profile;
pub mod fuse_gmm_finalize;
pub mod recognize_moe_combine;
pub mod torch_lower_aten;
pub mod torch_to_npu;
pub mod verify;

//! Passes that check or transform `npu` IR in place (as opposed to lowerings).

pub mod check_ascend_profile;
pub mod fuse_gmm_finalize;
pub mod verify;

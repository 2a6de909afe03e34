//! Passes that check or transform `npu` IR in place (as opposed to lowerings).

pub mod check_ascend_profile;
pub mod verify;

//! Passes over the `npu` dialect. Each pass lives in its own file, has a command-line name, a
//! one-line summary and a description, and is registered in [`registry`].

pub mod conversions;
pub mod frontend;
pub mod pass;
pub mod registry;
pub mod transforms;

pub use pass::{Pass, PassError, PassInfo, PassOption, PassOptions, PassOutcome};
pub use registry::{create, registry};
pub mod fusion;
pub mod recognition;

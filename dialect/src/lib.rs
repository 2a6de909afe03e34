//! The `npu` dialect: its IRDL declaration, the Rust verifier for what IRDL cannot express,
//! the Ascend legality profile, and the reference semantics of every op.

pub mod case;
pub mod npy;
pub mod reference;
pub mod tensor;

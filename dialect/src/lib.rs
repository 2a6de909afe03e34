//! The `npu` dialect: its IRDL declaration, the Rust verifier for what IRDL cannot express,
//! the Ascend legality profile, and the reference semantics of every op.

pub mod case;
pub mod context;
pub mod diagnostics;
pub mod graph;
pub mod interpret;
pub mod location;
pub mod npy;
pub mod op_view;
pub mod parse;
mod parser_guards;
pub mod profile;
pub mod reference;
pub mod scenario;
pub mod schema;
pub mod tensor;
pub mod types;
pub mod verify;

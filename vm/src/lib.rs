//! The Kvlar VM: loads, verifies and runs compiled policy programs.
#![forbid(unsafe_code)]

pub mod call;
pub mod decision;

pub use call::Call;
pub use decision::{Decision, Effect};

//! The Kvlar VM: loads, verifies and runs compiled policy programs.
//!
//! A [`Program`] is produced by `kvlar-compiler` (or loaded from a `.kvbc`
//! file with [`Program::from_bytes`]); both paths run the [`verify`]er, so a
//! `Program` value is always safe to run and always terminates. This crate
//! does not depend on the compiler: a proxy can run a precompiled program.
//!
//! ```
//! use kvlar_vm::{Call, Effect, Program};
//! use kvlar_vm::op::{Field, Instr};
//! use kvlar_vm::program::{Chunk, Const, Matcher, PolicyInfo, ProgramParts, RuleInfo};
//!
//! // "deny the tool `bash`", assembled by hand.
//! let mut code = Vec::new();
//! for i in [
//!     Instr::NameIn { field: Field::Tool, list: 0 },
//!     Instr::JumpIfFalse { off: 3 },
//!     Instr::Decide { rule: 0 },
//!     Instr::Halt,
//! ] {
//!     kvlar_vm::op::encode(&i, &mut code);
//! }
//! let program = Program::new(ProgramParts {
//!     consts: vec![Const::Matchers(vec![Matcher::Exact("bash".into())])],
//!     chunks: vec![Chunk { code }],
//!     rules: vec![RuleInfo { id: "no-bash".into(), effect: Effect::Deny,
//!                            reason: Some("no shells".into()), policy: 0 }],
//!     policies: vec![PolicyInfo { name: "p".into(), default_allow: false }],
//!     ..Default::default()
//! }).unwrap();
//!
//! let args = serde_json::json!({"command": "ls"});
//! let d = program.evaluate(&Call::mcp("bash", &args));
//! assert_eq!((d.effect(), d.rule()), (Effect::Deny, "no-bash"));
//! let d = program.evaluate(&Call::mcp("read_file", &args));
//! assert_eq!((d.effect(), d.rule()), (Effect::Deny, "_default_deny"));
//!
//! // Round trip through the binary format.
//! let again = Program::from_bytes(&program.to_bytes()).unwrap();
//! assert_eq!(again.hash(), program.hash());
//! ```
#![forbid(unsafe_code)]

pub mod builtins;
pub mod call;
pub mod decision;
pub mod disasm;
mod eval;
mod fast;
pub mod format;
pub mod kvlar;
mod names_cache;
pub mod op;
mod plan;
mod prefilter;
pub mod program;
mod set_engine;
mod short_names;
pub mod trace;
pub mod value;
pub mod verify;

pub use call::Call;
pub use decision::{Decision, Effect, Verdict, DEFAULT_ALLOW, DEFAULT_DENY};
pub use eval::VM_FAULT;
pub use format::LoadError;
pub use program::Program;
pub use trace::{Trace, TraceEvent, Tracer};
pub use verify::VerifyError;

/// Helpers shared by the crate's unit tests.
#[cfg(test)]
pub(crate) mod testutil {
    /// Every concatenation of exactly `n` pieces of `alphabet`.
    pub fn strings(alphabet: &[&str], n: usize) -> Vec<String> {
        let mut out = vec![String::new()];
        for _ in 0..n {
            out = out
                .iter()
                .flat_map(|t| alphabet.iter().map(move |a| format!("{t}{a}")))
                .collect();
        }
        out
    }
}

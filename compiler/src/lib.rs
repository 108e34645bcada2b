//! The Kvlar policy compiler: YAML policies → verified bytecode [`Program`].
//!
//! The pipeline is the module layout:
//! `load` (YAML → spanned [`ast`], expressions parsed by `kvlar-grammar`,
//! `extends` resolved) → `check` (names, types, regexes) → `lower` (AST → [`ir`])
//! → `codegen` (IR → bytecode [`Program`], verified by `kvlar-vm`).
#![forbid(unsafe_code)]

pub mod ast;
pub mod diagnostic;
pub mod load;
pub mod source;

pub use diagnostic::{CompileError, Failure};
pub use kvlar_vm::Program;
pub use source::{FileId, SourceMap, Span};

//! Kvlar's condition-expression grammar (pest) and AST.
#![forbid(unsafe_code)]

pub mod ast;

//! Kvlar's condition-expression grammar (pest) and AST.
//!
//! A rule's `when:` condition is one expression string; [`parse`] turns it
//! into an [`ast::Expr`] whose spans are byte ranges into that string, and
//! [`to_source`] prints a tree back as canonical source.
//!
//! ```
//! use kvlar_grammar::ast::{BinOp, ExprKind, Literal, PathRoot, Segment};
//!
//! let expr = kvlar_grammar::parse(r#"args.path under "/srv" && !(tool == 'rm')"#).unwrap();
//! let ExprKind::And(lhs, rhs) = &expr.kind else { panic!("expected &&") };
//! let ExprKind::Binary { op, op_span, lhs: path, rhs: dir } = &lhs.kind else {
//!     panic!("expected a test")
//! };
//! assert_eq!(*op, BinOp::Under);
//! assert_eq!(*op_span, 10..15);
//! let ExprKind::Path(p) = &path.kind else { panic!("expected a path") };
//! assert_eq!(p.root, PathRoot::Args);
//! assert_eq!(p.segments, vec![Segment::Key("path".into(), 4..9)]);
//! assert_eq!(dir.kind, ExprKind::Lit(Literal::Str("/srv".into())));
//! assert!(matches!(rhs.kind, ExprKind::Not(_)));
//! assert_eq!(expr.span, 0..41);
//! assert_eq!(kvlar_grammar::to_source(&expr), r#"args.path under "/srv" && !(tool == "rm")"#);
//!
//! let err = kvlar_grammar::parse("args.mode == ").unwrap_err();
//! assert_eq!(err.message, "expected an operand after '=='");
//! assert_eq!(err.span, 13..13);
//! ```
#![forbid(unsafe_code)]

pub mod ast;
mod error;
mod lex;
mod parse;
mod print;

pub use error::ParseError;
pub use lex::MAX_NESTING;
pub use parse::{parse, CALL_LIMIT, MAX_DEPTH};
pub use print::to_source;

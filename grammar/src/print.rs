//! Printing an AST back to canonical source text.
//!
//! [`to_source`] produces text that [`crate::parse`] parses back to the same
//! tree (spans aside), using canonical spellings (`&&`, `||`, `!`, `"..."`)
//! and only the parentheses that precedence requires, plus parentheses
//! around a test under `!` for readability.
//!
//! Trees that no source text produces cannot round-trip: a non-finite
//! float, a regex pattern containing a newline or a backslash directly
//! before a `/` (the `\/` escape stands for a plain slash), or a variable
//! name that is not an identifier or is a keyword.

use std::fmt::Write as _;

use crate::ast::{Expr, ExprKind, Literal, Path, PathRoot, QuantKind, Segment};

/// Prints `expr` as canonical source text.
pub fn to_source(expr: &Expr) -> String {
    let mut out = String::new();
    print(expr, Level::Or, &mut out);
    out
}

/// Precedence levels, loosest first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Or,
    And,
    Unary,
    Test,
    Operand,
}

fn level(e: &Expr) -> Level {
    match &e.kind {
        ExprKind::Or(..) => Level::Or,
        ExprKind::And(..) => Level::And,
        ExprKind::Not(..) => Level::Unary,
        ExprKind::Binary { .. } => Level::Test,
        _ => Level::Operand,
    }
}

/// Prints `e` where an expression of at least level `min` is required.
fn print(e: &Expr, min: Level, out: &mut String) {
    if level(e) < min {
        out.push('(');
        print(e, Level::Or, out);
        out.push(')');
        return;
    }
    match &e.kind {
        ExprKind::Lit(lit) => print_lit(lit, out),
        ExprKind::Regex { pattern, flags } => {
            out.push('/');
            let mut chars = pattern.chars();
            while let Some(c) = chars.next() {
                match c {
                    '/' => out.push_str("\\/"),
                    '\\' => match chars.next() {
                        // A backslash before a slash cannot be written (`\/` is a
                        // plain slash): print the slash.
                        Some('/') => out.push_str("\\/"),
                        Some('\n') => out.push_str("\\n"),
                        Some('\r') => out.push_str("\\r"),
                        Some(n) => {
                            out.push('\\');
                            out.push(n);
                        }
                        // A trailing lone backslash would escape the closing slash.
                        None => out.push_str("\\\\"),
                    },
                    // A regex cannot contain a raw line break; the regex escapes
                    // `\n` / `\r` match the same characters.
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
            out.push('/');
            out.push_str(flags);
        }
        ExprKind::List(items) => {
            out.push('[');
            print_list(items, out);
            out.push(']');
        }
        ExprKind::Path(p) => print_path(p, out),
        ExprKind::Not(inner) => {
            out.push('!');
            // `!a == b` already means `!(a == b)`; the parentheses are for readers.
            let min = if level(inner) == Level::Test {
                Level::Operand
            } else {
                Level::Unary
            };
            print(inner, min, out);
        }
        ExprKind::And(a, b) => {
            print(a, Level::And, out);
            out.push_str(" && ");
            print(b, Level::Unary, out);
        }
        ExprKind::Or(a, b) => {
            print(a, Level::Or, out);
            out.push_str(" || ");
            print(b, Level::And, out);
        }
        ExprKind::Binary { op, lhs, rhs, .. } => {
            print(lhs, Level::Operand, out);
            out.push(' ');
            out.push_str(op.as_str());
            out.push(' ');
            print(rhs, Level::Operand, out);
        }
        ExprKind::Call { name, args, .. } => {
            out.push_str(name);
            out.push('(');
            print_list(args, out);
            out.push(')');
        }
        ExprKind::Quant {
            kind,
            var,
            over,
            body,
            ..
        } => {
            out.push_str(match kind {
                QuantKind::Any => "any(",
                QuantKind::All => "all(",
            });
            out.push_str(var);
            out.push_str(" in ");
            print(over, Level::Operand, out);
            out.push_str(": ");
            print(body, Level::Or, out);
            out.push(')');
        }
    }
}

fn print_list(items: &[Expr], out: &mut String) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        print(item, Level::Or, out);
    }
}

fn print_lit(lit: &Literal, out: &mut String) {
    match lit {
        Literal::Str(s) => print_string(s, out),
        Literal::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Literal::Float(f) => {
            // `{:?}` always prints a `.` or an exponent, so it reads back as a float.
            let _ = write!(out, "{f:?}");
        }
        Literal::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Literal::Null => out.push_str("null"),
    }
}

/// Prints `s` as a double-quoted string literal.
pub(crate) fn print_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn print_path(p: &Path, out: &mut String) {
    out.push_str(match &p.root {
        PathRoot::Tool => "tool",
        PathRoot::Agent => "agent",
        PathRoot::Action => "action",
        PathRoot::Args => "args",
        PathRoot::Var(name) => name,
    });
    for seg in &p.segments {
        match seg {
            Segment::Key(k, _)
                if !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                out.push('.');
                out.push_str(k);
            }
            Segment::Key(k, _) => {
                out.push('[');
                print_string(k, out);
                out.push(']');
            }
            Segment::Index(i, _) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
}

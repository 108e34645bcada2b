//! The IR: policies as resolved condition trees. Names are bound, regexes and
//! globs compiled, literals turned into JSON values; what is left is exactly
//! what the code generator lays out as bytecode. `kvlar compile --emit ir`
//! prints it.

use std::fmt::{self, Write};

use kvlar_vm::op::{Field, Func, KvOp, Quant, TestOp};
use kvlar_vm::program::{Matcher, PathSeg};
use kvlar_vm::Effect;
use regex::Regex;
use serde_json::Value;

use crate::source::Span;

#[derive(Debug, Clone)]
pub struct Program {
    pub policies: Vec<Policy>,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub default_allow: bool,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub effect: Effect,
    pub reason: Option<String>,
    pub cond: Cond,
    pub span: Span,
    /// Every argument the rule reads, with the span of the reference (for
    /// `kvlar lint --tools`; the code generator does not use it).
    pub args: Vec<ArgRef>,
}

/// One place where a rule reads an argument.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgRef {
    pub path: ArgPath,
    pub span: Span,
}

/// How an argument is looked up.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgPath {
    /// A native path under `args`; an [`PathSeg::Index`] stands for any
    /// element (quantifier variables are resolved to the list they range
    /// over, with an index for the element).
    Path(Vec<PathSeg>),
    /// A Kvlar `parameters` key: a top-level argument name only.
    Param(String),
    /// A Kvlar condition `field`: the top-level name first, then, if it has
    /// dots, the dotted path through nested objects.
    Field(String),
}

/// A condition with the text and span it came from (for traces and `--emit asm`).
#[derive(Debug, Clone)]
pub struct Cond {
    pub kind: CondKind,
    pub label: String,
    pub span: Option<Span>,
}

#[derive(Debug, Clone)]
pub enum CondKind {
    True,
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    /// Tool / agent / action-type name against a glob list.
    NameIn {
        field: Field,
        matchers: Vec<Matcher>,
    },
    /// Kvlar `parameters` entry.
    KvParam {
        key: String,
        re: Regex,
    },
    /// Kvlar `conditions` entry; `re` is set for `matches` with a string value.
    KvCond {
        op: KvOp,
        field: String,
        value: Value,
        re: Option<Regex>,
    },
    Test {
        op: TestOp,
        a: Operand,
        b: Operand,
    },
    /// `=~` / `!~` / `glob` (a glob is compiled to an anchored regex).
    Regex {
        a: Operand,
        re: Regex,
        negate: bool,
    },
    Exists(Operand),
    Truthy(Operand),
    /// `any(x in over: body)`; `var` is the binding depth of `x`.
    Quant {
        kind: Quant,
        var: usize,
        over: Operand,
        body: Box<Cond>,
    },
}

#[derive(Debug, Clone)]
pub enum Operand {
    Name(Field),
    Args(Vec<PathSeg>),
    /// A quantifier variable (binding depth) and a path inside it.
    Var(usize, Vec<PathSeg>),
    Const(Value),
    Call(Func, Box<Operand>),
}

impl Cond {
    pub fn new(kind: CondKind, label: impl Into<String>, span: Option<Span>) -> Self {
        Cond {
            kind,
            label: label.into(),
            span,
        }
    }
    pub fn always() -> Self {
        Cond::new(CondKind::True, "", None)
    }
}

fn path_text(p: &[PathSeg]) -> String {
    let mut s = String::new();
    for seg in p {
        match seg {
            PathSeg::Key(k) => {
                let _ = write!(s, "[{}]", Value::String(k.clone()));
            }
            PathSeg::Index(i) => {
                let _ = write!(s, "[{i}]");
            }
        }
    }
    s
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Name(field) => f.write_str(field.name()),
            Operand::Args(p) => write!(f, "args{}", path_text(p)),
            Operand::Var(d, p) => write!(f, "$var{d}{}", path_text(p)),
            Operand::Const(v) => write!(f, "{v}"),
            Operand::Call(func, a) => write!(f, "{}({a})", func.name()),
        }
    }
}

fn matchers_text(ms: &[Matcher]) -> String {
    let items: Vec<String> = ms
        .iter()
        .map(|m| match m {
            Matcher::Exact(s) => format!("{s:?}"),
            Matcher::Glob { glob, re } => format!("glob {glob:?} /{}/", re.as_str()),
        })
        .collect();
    items.join(", ")
}

impl Cond {
    fn write(&self, out: &mut String, depth: usize) {
        let pad = "  ".repeat(depth);
        let _ = match &self.kind {
            CondKind::True => writeln!(out, "{pad}true"),
            CondKind::And(xs) | CondKind::Or(xs) => {
                let name = if matches!(self.kind, CondKind::And(_)) {
                    "and"
                } else {
                    "or"
                };
                let _ = writeln!(out, "{pad}{name}");
                for x in xs {
                    x.write(out, depth + 1);
                }
                Ok(())
            }
            CondKind::Not(x) => {
                let _ = writeln!(out, "{pad}not");
                x.write(out, depth + 1);
                Ok(())
            }
            CondKind::NameIn { field, matchers } => {
                writeln!(
                    out,
                    "{pad}{} in [{}]",
                    field.name(),
                    matchers_text(matchers)
                )
            }
            CondKind::KvParam { key, re } => {
                writeln!(out, "{pad}kvlar.param {key:?} =~ /{}/", re.as_str())
            }
            CondKind::KvCond {
                op, field, value, ..
            } => {
                writeln!(out, "{pad}kvlar.cond {field:?} {} {value}", op.name())
            }
            CondKind::Test { op, a, b } => writeln!(out, "{pad}{a} {} {b}", op.name()),
            CondKind::Regex { a, re, negate } => writeln!(
                out,
                "{pad}{a} {} /{}/",
                if *negate { "!~" } else { "=~" },
                re.as_str()
            ),
            CondKind::Exists(a) => writeln!(out, "{pad}exists({a})"),
            CondKind::Truthy(a) => writeln!(out, "{pad}{a} == true"),
            CondKind::Quant {
                kind,
                var,
                over,
                body,
            } => {
                let k = if *kind == Quant::Any { "any" } else { "all" };
                let _ = writeln!(out, "{pad}{k} $var{var} in {over}:");
                body.write(out, depth + 1);
                Ok(())
            }
        };
    }
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        for (pi, p) in self.policies.iter().enumerate() {
            let _ = writeln!(
                out,
                "policy {pi} {:?}{}",
                p.name,
                if p.default_allow {
                    " default allow"
                } else {
                    ""
                }
            );
            for r in &p.rules {
                let _ = writeln!(
                    out,
                    "  rule {:?} → {}{}",
                    r.id,
                    r.effect,
                    r.reason
                        .as_deref()
                        .map(|s| format!(" ({s:?})"))
                        .unwrap_or_default()
                );
                r.cond.write(&mut out, 2);
            }
        }
        f.write_str(&out)
    }
}

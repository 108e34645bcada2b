//! The expression AST. Every node carries a byte span into the text it was
//! parsed from; the compiler re-bases those spans onto the policy file with
//! [`Expr::map_spans`].

use std::ops::Range;

/// Byte range into the source text.
pub type Span = Range<usize>;

/// An expression node with its span.
///
/// The span covers the node's source text exactly: a binary node spans from
/// its left operand's start to its right operand's end; a literal includes
/// its quotes; a regex covers `/.../flags`. A parenthesised expression's
/// span includes the parentheses (`(a || b)` spans all nine bytes), so a
/// parent's span always covers its whole source text.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// `"str"`, `'str'`, `12`, `-3`, `1.5`, `true`, `false`, `null`.
    Lit(Literal),
    /// `/pattern/flags`; `flags` is a subset of `i`, `s`, `m` in source order.
    Regex { pattern: String, flags: String },
    /// `[a, b, c]`
    List(Vec<Expr>),
    /// `tool`, `agent`, `action`, `args.a["b.c"][0]`, or a quantifier variable `x.name`.
    Path(Path),
    /// `!e` / `not e`
    Not(Box<Expr>),
    /// `a && b` / `a and b`
    And(Box<Expr>, Box<Expr>),
    /// `a || b` / `a or b`
    Or(Box<Expr>, Box<Expr>),
    /// Binary comparison / test: `lhs op rhs`. `op_span` is the operator token's span.
    Binary {
        op: BinOp,
        op_span: Span,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `name(args…)`; `name_span` is the identifier's span. Names are not
    /// resolved by the parser (the compiler checks them and suggests fixes).
    Call {
        name: String,
        name_span: Span,
        args: Vec<Expr>,
    },
    /// `any(x in <expr>: <body>)` / `all(...)`.
    Quant {
        kind: QuantKind,
        var: String,
        var_span: Span,
        over: Box<Expr>,
        body: Box<Expr>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `=~`
    Match,
    /// `!~`
    NotMatch,
    In,
    NotIn,
    Contains,
    StartsWith,
    EndsWith,
    Glob,
    Under,
}

impl BinOp {
    /// The operator as written in source (canonical spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Match => "=~",
            BinOp::NotMatch => "!~",
            BinOp::In => "in",
            BinOp::NotIn => "not in",
            BinOp::Contains => "contains",
            BinOp::StartsWith => "startswith",
            BinOp::EndsWith => "endswith",
            BinOp::Glob => "glob",
            BinOp::Under => "under",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantKind {
    Any,
    All,
}

/// A path: a root followed by key / index segments.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub root: PathRoot,
    pub root_span: Span,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PathRoot {
    /// The tool (resource) name.
    Tool,
    /// The agent id.
    Agent,
    /// The action type (`tool_call` for MCP calls).
    Action,
    /// The call's argument object.
    Args,
    /// Any other identifier: a quantifier variable, resolved by the compiler
    /// (an unknown identifier is a compile error there, with did-you-mean).
    Var(String),
}

/// A path segment. Its span covers the whole segment: `.name` including the
/// dot, `["name"]` / `[3]` including the brackets.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// `.name` or `["name"]`
    Key(String, Span),
    /// `[3]`
    Index(u64, Span),
}

impl Expr {
    /// Applies `f` to every span in the tree (used to re-base spans from the
    /// expression string onto the policy file).
    pub fn map_spans(&mut self, f: &mut impl FnMut(&Span) -> Span) {
        self.span = f(&self.span);
        match &mut self.kind {
            ExprKind::Lit(_) | ExprKind::Regex { .. } => {}
            ExprKind::List(items) => items.iter_mut().for_each(|e| e.map_spans(f)),
            ExprKind::Path(p) => p.map_spans(f),
            ExprKind::Not(e) => e.map_spans(f),
            ExprKind::And(a, b) | ExprKind::Or(a, b) => {
                a.map_spans(f);
                b.map_spans(f);
            }
            ExprKind::Binary {
                op_span, lhs, rhs, ..
            } => {
                *op_span = f(op_span);
                lhs.map_spans(f);
                rhs.map_spans(f);
            }
            ExprKind::Call {
                name_span, args, ..
            } => {
                *name_span = f(name_span);
                args.iter_mut().for_each(|e| e.map_spans(f));
            }
            ExprKind::Quant {
                var_span,
                over,
                body,
                ..
            } => {
                *var_span = f(var_span);
                over.map_spans(f);
                body.map_spans(f);
            }
        }
    }
}

impl Path {
    fn map_spans(&mut self, f: &mut impl FnMut(&Span) -> Span) {
        self.root_span = f(&self.root_span);
        for s in &mut self.segments {
            match s {
                Segment::Key(_, sp) | Segment::Index(_, sp) => *sp = f(sp),
            }
        }
    }
}

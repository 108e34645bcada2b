//! Lowering: policy AST → IR. This is also where names are checked
//! (functions, variables), regexes and globs are compiled, and operand types
//! that can be known statically are checked. Every problem becomes a
//! diagnostic; lowering goes on after an error so that all of them are reported.

use kvlar_grammar::ast::{BinOp, Expr, ExprKind, Literal, Path, PathRoot, QuantKind, Segment};
use kvlar_vm::op::{Field, Func, KvOp as VmKvOp, Quant, TestOp};
use kvlar_vm::program::{Matcher, PathSeg};
use kvlar_vm::{kvlar as compat, Effect};
use regex::{Regex, RegexBuilder};
use serde_json::Value;

use crate::ast::{self, DefaultOutcome, KvOp, Sp};
use crate::diagnostic::{did_you_mean, CompileError};
use crate::ir::{ArgPath, ArgRef, Cond, CondKind, Operand, Policy, Program, Rule};
use crate::source::{FileId, SourceMap, Span};

/// The functions that yield values (`exists`, `any`, `all` are conditions).
const VALUE_FUNCS: &[(&str, Func)] = &[
    ("len", Func::Len),
    ("lower", Func::Lower),
    ("upper", Func::Upper),
    ("host", Func::Host),
    ("normpath", Func::NormPath),
];
const ALL_FUNCS: &[&str] = &[
    "exists", "len", "lower", "upper", "host", "normpath", "any", "all",
];
const ROOTS: &[&str] = &["tool", "agent", "action", "args"];

/// Regexes larger than this (compiled) are refused: a policy must not be able
/// to make the proxy allocate without bound.
const REGEX_SIZE_LIMIT: usize = 1 << 22;

pub fn lower(set: &ast::PolicySet, sources: &SourceMap) -> Result<Program, Vec<CompileError>> {
    let mut cx = Lower {
        sources,
        errors: Vec::new(),
        vars: Vec::new(),
        var_bases: Vec::new(),
        file: FileId(0),
        args: Vec::new(),
    };
    let policies = set
        .policies
        .iter()
        .map(|p| Policy {
            name: p.name.value.clone(),
            default_allow: matches!(
                p.default_outcome.as_ref().map(|d| d.value),
                Some(DefaultOutcome::Allow)
            ),
            rules: p.rules.iter().map(|r| cx.rule(r)).collect(),
        })
        .collect();
    if cx.errors.is_empty() {
        Ok(Program { policies })
    } else {
        Err(cx.errors)
    }
}

struct Lower<'s> {
    sources: &'s SourceMap,
    errors: Vec<CompileError>,
    /// Quantifier variables in scope, innermost last.
    vars: Vec<String>,
    /// For each variable in `vars`: the argument path of the elements it
    /// ranges over (`None` when it ranges over something else).
    var_bases: Vec<Option<Vec<PathSeg>>>,
    /// The arguments read by the rule being lowered.
    args: Vec<ArgRef>,
    /// The file of the rule being lowered (expression spans are byte ranges in it).
    file: FileId,
}

fn compile_regex(src: &str) -> Result<Regex, String> {
    RegexBuilder::new(src)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::Syntax(s) => s
                .lines()
                .rev()
                .find(|l| l.starts_with("error:"))
                .map(|l| l.trim_start_matches("error:").trim().to_string())
                .unwrap_or(s),
            regex::Error::CompiledTooBig(n) => {
                format!("the compiled regex exceeds the size limit of {n} bytes")
            }
            other => other.to_string(),
        })
}

/// Kvlar glob list → matchers, with Kvlar's exact semantics (a pattern whose
/// translation is not a valid regex is compared literally, as Kvlar does).
pub(crate) fn matchers(patterns: &[Sp<String>]) -> Vec<Matcher> {
    patterns
        .iter()
        .map(
            |p| match compat::glob_regex(&p.value).map(|re| Regex::new(&re)) {
                Some(Ok(re)) => Matcher::Glob {
                    glob: p.value.clone(),
                    re,
                },
                _ => Matcher::Exact(p.value.clone()),
            },
        )
        .collect()
}

fn list_label(name: &str, items: &[Sp<String>]) -> String {
    let items: Vec<&str> = items.iter().map(|s| s.value.as_str()).collect();
    format!("{name}: [{}]", items.join(", "))
}

fn join(a: Span, b: Span) -> Span {
    Span::new(a.file, a.start.min(b.start), a.end.max(b.end))
}

impl Lower<'_> {
    fn span(&self, r: &std::ops::Range<usize>) -> Span {
        Span::new(self.file, r.start, r.end)
    }

    fn text(&self, span: Span) -> String {
        let text = &self.sources.get(span.file).text;
        let raw = text.get(span.start..span.end).unwrap_or("");
        raw.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    fn rule(&mut self, r: &ast::Rule) -> Rule {
        self.file = r.id.span.file;
        self.args.clear();
        let mut parts = Vec::new();
        if !r.tools.is_empty() {
            parts.push(self.name_in(Field::Tool, "tools", &r.tools));
        }
        if let Some(m) = &r.match_on {
            if !m.action_types.is_empty() {
                parts.push(self.name_in(Field::Action, "action_types", &m.action_types));
            }
            if !m.resources.is_empty() {
                parts.push(self.name_in(Field::Tool, "resources", &m.resources));
            }
            if !m.agent_ids.is_empty() {
                parts.push(self.name_in(Field::Agent, "agent_ids", &m.agent_ids));
            }
            for (key, pattern) in &m.parameters {
                self.args.push(ArgRef {
                    path: ArgPath::Param(key.value.clone()),
                    span: key.span,
                });
                match compile_regex(&pattern.value) {
                    Ok(re) => parts.push(Cond::new(
                        CondKind::KvParam {
                            key: key.value.clone(),
                            re,
                        },
                        format!("parameters.{}: {:?}", key.value, pattern.value),
                        Some(join(key.span, pattern.span)),
                    )),
                    Err(msg) => self.errors.push(CompileError::invalid_regex(
                        self.sources,
                        pattern.span,
                        msg,
                    )),
                }
            }
            for c in &m.conditions {
                self.args.push(ArgRef {
                    path: ArgPath::Field(c.field.value.clone()),
                    span: c.field.span,
                });
                parts.push(self.kv_condition(c));
            }
        }
        if let Some(when) = &r.when {
            parts.push(self.cond(when));
        }
        let cond = match parts.len() {
            0 => Cond::always(),
            1 => parts.pop().unwrap_or_else(Cond::always),
            _ => Cond::new(CondKind::And(parts), "", None),
        };
        let (effect, reason) = match &r.effect.value {
            ast::Effect::Allow => (Effect::Allow, None),
            ast::Effect::Deny { reason } => (Effect::Deny, Some(reason.clone())),
            ast::Effect::RequireApproval { reason } => {
                (Effect::RequireApproval, Some(reason.clone()))
            }
        };
        Rule {
            id: r.id.value.clone(),
            effect,
            reason,
            cond,
            span: r.span,
            args: std::mem::take(&mut self.args),
        }
    }

    fn name_in(&mut self, field: Field, what: &str, pats: &[Sp<String>]) -> Cond {
        let span = pats.iter().map(|p| p.span).reduce(join);
        Cond::new(
            CondKind::NameIn {
                field,
                matchers: matchers(pats),
            },
            list_label(what, pats),
            span,
        )
    }

    fn kv_condition(&mut self, c: &ast::Condition) -> Cond {
        let op = match c.operator.value {
            KvOp::Eq => VmKvOp::Eq,
            KvOp::Neq => VmKvOp::Neq,
            KvOp::Contains => VmKvOp::Contains,
            KvOp::StartsWith => VmKvOp::StartsWith,
            KvOp::EndsWith => VmKvOp::EndsWith,
            KvOp::GreaterThan => VmKvOp::GreaterThan,
            KvOp::LessThan => VmKvOp::LessThan,
            KvOp::Exists => VmKvOp::Exists,
            KvOp::NotExists => VmKvOp::NotExists,
            KvOp::In => VmKvOp::In,
            KvOp::NotIn => VmKvOp::NotIn,
            KvOp::Matches => VmKvOp::Matches,
            KvOp::InDomain => VmKvOp::InDomain,
            KvOp::NotInDomain => VmKvOp::NotInDomain,
        };
        let mut re = None;
        if op == VmKvOp::Matches {
            if let Value::String(pattern) = &c.value.value {
                match compile_regex(pattern) {
                    Ok(r) => re = Some(r),
                    Err(msg) => self.errors.push(CompileError::invalid_regex(
                        self.sources,
                        c.value.span,
                        msg,
                    )),
                }
            }
        }
        let label = format!("{} {} {}", c.field.value, op.name(), c.value.value);
        Cond::new(
            CondKind::KvCond {
                op,
                field: c.field.value.clone(),
                value: c.value.value.clone(),
                re,
            },
            label,
            Some(c.span),
        )
    }

    /// An expression in condition position.
    fn cond(&mut self, e: &Expr) -> Cond {
        let span = self.span(&e.span);
        let label = self.text(span);
        let kind = match &e.kind {
            ExprKind::Not(x) => CondKind::Not(Box::new(self.cond(x))),
            ExprKind::And(a, b) => CondKind::And(vec![self.cond(a), self.cond(b)]),
            ExprKind::Or(a, b) => CondKind::Or(vec![self.cond(a), self.cond(b)]),
            ExprKind::Binary {
                op,
                op_span,
                lhs,
                rhs,
            } => self.binary(*op, self.span(op_span), lhs, rhs),
            ExprKind::Call {
                name,
                name_span,
                args,
            } if name == "exists" => {
                if args.len() != 1 {
                    self.errors.push(CompileError::wrong_arity(
                        self.sources,
                        self.span(name_span),
                        name,
                        1,
                        args.len(),
                    ));
                    CondKind::True
                } else if let ExprKind::Path(_) = &args[0].kind {
                    CondKind::Exists(self.operand(&args[0]))
                } else {
                    self.errors.push(CompileError::type_mismatch(
                        self.sources,
                        self.span(&args[0].span),
                        "exists() takes a path",
                        Some(
                            "for example `exists(args.path)` or `exists(args[\"key.with.dot\"])`"
                                .into(),
                        ),
                    ));
                    CondKind::True
                }
            }
            ExprKind::Quant {
                kind,
                var,
                var_span,
                over,
                body,
            } => {
                let over = self.operand(over);
                let base = match &over {
                    Operand::Args(p) => Some(p.clone()),
                    Operand::Var(d, p) => self
                        .var_bases
                        .get(d - 1)
                        .cloned()
                        .flatten()
                        .map(|b| [b, p.clone()].concat()),
                    _ => None,
                };
                if ROOTS.contains(&var.as_str()) {
                    self.errors.push(CompileError::type_mismatch(
                        self.sources,
                        self.span(var_span),
                        format!("`{var}` cannot be used as a variable name"),
                        Some("pick another name, for example `x`".into()),
                    ));
                }
                let var_id = self.vars.len() + 1;
                self.vars.push(var.clone());
                self.var_bases.push(base.map(|mut b| {
                    b.push(PathSeg::Index(0));
                    b
                }));
                let body = self.cond(body);
                self.vars.pop();
                self.var_bases.pop();
                CondKind::Quant {
                    kind: match kind {
                        QuantKind::Any => Quant::Any,
                        QuantKind::All => Quant::All,
                    },
                    var: var_id,
                    over,
                    body: Box::new(body),
                }
            }
            ExprKind::Regex { .. } => {
                self.errors.push(CompileError::type_mismatch(
                    self.sources,
                    span,
                    "a regex literal is not a condition",
                    Some("match it against a value: `args.command =~ /.../`".into()),
                ));
                CondKind::True
            }
            // A bare value: holds only if it is the boolean `true`.
            _ => CondKind::Truthy(self.operand(e)),
        };
        Cond::new(kind, label, Some(span))
    }

    fn binary(&mut self, op: BinOp, op_span: Span, lhs: &Expr, rhs: &Expr) -> CondKind {
        match op {
            BinOp::Match | BinOp::NotMatch => {
                let a = self.operand(lhs);
                let ExprKind::Regex { pattern, flags } = &rhs.kind else {
                    self.errors.push(CompileError::type_mismatch(
                        self.sources,
                        self.span(&rhs.span),
                        format!(
                            "the right side of `{}` must be a regex literal",
                            op.as_str()
                        ),
                        Some("write it between slashes: `args.command =~ /rm\\s+-rf/`".into()),
                    ));
                    return CondKind::True;
                };
                let src = if flags.is_empty() {
                    pattern.clone()
                } else {
                    format!("(?{flags}){pattern}")
                };
                match compile_regex(&src) {
                    Ok(re) => CondKind::Regex {
                        a,
                        re,
                        negate: op == BinOp::NotMatch,
                    },
                    Err(msg) => {
                        self.errors.push(CompileError::invalid_regex(
                            self.sources,
                            self.span(&rhs.span),
                            msg,
                        ));
                        CondKind::True
                    }
                }
            }
            BinOp::Glob => {
                let a = self.operand(lhs);
                let ExprKind::Lit(Literal::Str(pattern)) = &rhs.kind else {
                    self.errors.push(CompileError::type_mismatch(
                        self.sources,
                        self.span(&rhs.span),
                        "the right side of `glob` must be a string literal",
                        Some("for example `args.path glob \"/srv/**/*.txt\"`".into()),
                    ));
                    return CondKind::True;
                };
                match glob_to_regex(pattern).and_then(|src| compile_regex(&src)) {
                    Ok(re) => CondKind::Regex {
                        a,
                        re,
                        negate: false,
                    },
                    Err(msg) => {
                        self.errors.push(CompileError::invalid_glob(
                            self.sources,
                            self.span(&rhs.span),
                            msg,
                        ));
                        CondKind::True
                    }
                }
            }
            _ => {
                let _ = op_span;
                let test = match op {
                    BinOp::Eq => TestOp::Eq,
                    BinOp::Ne => TestOp::Ne,
                    BinOp::Lt => TestOp::Lt,
                    BinOp::Le => TestOp::Le,
                    BinOp::Gt => TestOp::Gt,
                    BinOp::Ge => TestOp::Ge,
                    BinOp::In => TestOp::In,
                    BinOp::NotIn => TestOp::NotIn,
                    BinOp::Contains => TestOp::Contains,
                    BinOp::StartsWith => TestOp::StartsWith,
                    BinOp::EndsWith => TestOp::EndsWith,
                    BinOp::Under => TestOp::Under,
                    BinOp::Match | BinOp::NotMatch | BinOp::Glob => TestOp::Eq,
                };
                CondKind::Test {
                    op: test,
                    a: self.operand(lhs),
                    b: self.operand(rhs),
                }
            }
        }
    }

    /// An expression in value position.
    fn operand(&mut self, e: &Expr) -> Operand {
        let span = self.span(&e.span);
        match &e.kind {
            ExprKind::Lit(l) => Operand::Const(literal(l)),
            ExprKind::List(items) => {
                let mut values = Vec::new();
                for item in items {
                    match &item.kind {
                        ExprKind::Lit(l) => values.push(literal(l)),
                        ExprKind::List(_) => match self.operand(item) {
                            Operand::Const(v) => values.push(v),
                            _ => values.push(Value::Null),
                        },
                        _ => self.errors.push(CompileError::type_mismatch(
                            self.sources,
                            self.span(&item.span),
                            "list items must be literals",
                            Some("to test several values, combine tests with `||`".into()),
                        )),
                    }
                }
                Operand::Const(Value::Array(values))
            }
            ExprKind::Path(p) => self.path(p),
            ExprKind::Call {
                name,
                name_span,
                args,
            } => {
                let nspan = self.span(name_span);
                match VALUE_FUNCS.iter().find(|(n, _)| n == name) {
                    Some((_, func)) => {
                        if args.len() != 1 {
                            self.errors.push(CompileError::wrong_arity(
                                self.sources,
                                nspan,
                                name,
                                1,
                                args.len(),
                            ));
                            return Operand::Const(Value::Null);
                        }
                        Operand::Call(*func, Box::new(self.operand(&args[0])))
                    }
                    None if name == "exists" => {
                        self.errors.push(CompileError::type_mismatch(
                            self.sources,
                            span,
                            "exists() is a condition, not a value",
                            Some("use it on its own: `exists(args.x) && ...`".into()),
                        ));
                        Operand::Const(Value::Null)
                    }
                    None => {
                        let suggestion = did_you_mean(name, ALL_FUNCS.iter().copied());
                        self.errors.push(CompileError::unknown_function(
                            self.sources,
                            nspan,
                            name,
                            suggestion,
                        ));
                        Operand::Const(Value::Null)
                    }
                }
            }
            ExprKind::Regex { .. } => {
                self.errors.push(CompileError::type_mismatch(
                    self.sources,
                    span,
                    "a regex literal can only stand on the right of `=~` or `!~`",
                    None,
                ));
                Operand::Const(Value::Null)
            }
            ExprKind::Not(_)
            | ExprKind::And(..)
            | ExprKind::Or(..)
            | ExprKind::Binary { .. }
            | ExprKind::Quant { .. } => {
                self.errors.push(CompileError::type_mismatch(
                    self.sources,
                    span,
                    "a condition cannot be used as a value here",
                    Some("tests cannot be compared or nested as operands; combine conditions with `&&`, `||`, `!`".into()),
                ));
                Operand::Const(Value::Null)
            }
        }
    }

    /// The span of a whole path expression (root and segments).
    fn path_span(&self, p: &Path) -> Span {
        let end = p
            .segments
            .last()
            .map(|s| match s {
                Segment::Key(_, sp) | Segment::Index(_, sp) => sp.end,
            })
            .unwrap_or(p.root_span.end);
        Span::new(self.file, p.root_span.start, end.max(p.root_span.end))
    }

    fn path(&mut self, p: &Path) -> Operand {
        let segs: Vec<PathSeg> = p
            .segments
            .iter()
            .map(|s| match s {
                Segment::Key(k, _) => PathSeg::Key(k.clone()),
                Segment::Index(i, _) => PathSeg::Index(*i),
            })
            .collect();
        let name_root = |field: Field, this: &mut Self| {
            if let Some(first) = p.segments.first() {
                let sp = match first {
                    Segment::Key(_, s) | Segment::Index(_, s) => s,
                };
                this.errors.push(CompileError::type_mismatch(
                    this.sources,
                    this.span(sp),
                    format!("`{}` is a string and has no fields", field.name()),
                    Some("argument values are under `args`, e.g. `args.path`".into()),
                ));
            }
            Operand::Name(field)
        };
        match &p.root {
            PathRoot::Tool => name_root(Field::Tool, self),
            PathRoot::Agent => name_root(Field::Agent, self),
            PathRoot::Action => name_root(Field::Action, self),
            PathRoot::Args => {
                self.args.push(ArgRef {
                    path: ArgPath::Path(segs.clone()),
                    span: self.path_span(p),
                });
                Operand::Args(segs)
            }
            PathRoot::Var(name) => match self.vars.iter().rposition(|v| v == name) {
                Some(depth) => {
                    if let Some(Some(base)) = self.var_bases.get(depth) {
                        if !segs.is_empty() {
                            self.args.push(ArgRef {
                                path: ArgPath::Path([base.clone(), segs.clone()].concat()),
                                span: self.path_span(p),
                            });
                        }
                    }
                    Operand::Var(depth + 1, segs)
                }
                None => {
                    let candidates: Vec<&str> = ROOTS
                        .iter()
                        .copied()
                        .chain(self.vars.iter().map(String::as_str))
                        .collect();
                    let suggestion = did_you_mean(name, candidates.iter().copied());
                    self.errors.push(CompileError::unknown_identifier(
                        self.sources,
                        self.span(&p.root_span),
                        name,
                        suggestion,
                    ));
                    Operand::Const(Value::Null)
                }
            },
        }
    }
}

fn literal(l: &Literal) -> Value {
    match l {
        Literal::Str(s) => Value::String(s.clone()),
        Literal::Int(i) => Value::from(*i),
        Literal::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Null => Value::Null,
    }
}

/// Native `glob` patterns → anchored regex, with globset's syntax and
/// `literal_separator` semantics (`*`, `?` and classes never match `/`; `**`
/// as a whole path component crosses directories; `{a,b}` alternatives),
/// matched per character (Unicode), `**` crossing newlines too.
pub fn glob_to_regex(glob: &str) -> Result<String, String> {
    if !glob.is_ascii() {
        return Err("non-ASCII characters in glob patterns are not supported; match with a regex (`=~`) instead".into());
    }
    let g = globset::GlobBuilder::new(glob)
        .literal_separator(true)
        .build()
        .map_err(|e| e.kind().to_string())?;
    let re = g.regex();
    let re = re.strip_prefix("(?-u)").unwrap_or(re);
    Ok(format!("(?s){re}"))
}

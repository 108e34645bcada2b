//! A small three-valued evaluator over IR conditions: given the conjuncts of
//! one rule (the *facts*, true of every call that rule matches), what can be
//! said of another condition — proven true, proven false, or unknown?
//!
//! Everything here is conservative: `Some(true)` and `Some(false)` are only
//! returned when they hold for every call satisfying the facts. Values are
//! judged with the VM's own functions (`kvlar_vm::value`, `kvlar_vm::kvlar`,
//! `kvlar_vm::builtins`), so the linter and the VM cannot disagree on what a
//! test means.

use kvlar_vm::builtins;
use kvlar_vm::kvlar as compat;
use kvlar_vm::op::{Field, KvOp, TestOp};
use kvlar_vm::program::{Matcher, PathSeg};
use kvlar_vm::value::{self, Val};
use serde_json::Value;

use crate::ir::{Cond, CondKind, Operand};

/// What an argument lookup refers to. A Kvlar `field` without a dot is the
/// top-level argument of that name, i.e. the native `args.<field>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subj {
    Args(Vec<PathSeg>),
    /// A Kvlar `field` containing a dot (top-level name first, then a path).
    KvDotted(String),
}

pub fn kv_subject(field: &str) -> Subj {
    if field.contains('.') {
        Subj::KvDotted(field.to_string())
    } else {
        Subj::Args(vec![PathSeg::Key(field.to_string())])
    }
}

/// The conjuncts of a condition (nested `and` flattened, `true` dropped,
/// double negation removed).
pub fn conjuncts(c: &Cond) -> Vec<&Cond> {
    let mut out = Vec::new();
    fn walk<'c>(c: &'c Cond, out: &mut Vec<&'c Cond>) {
        match &c.kind {
            CondKind::True => {}
            CondKind::And(xs) => xs.iter().for_each(|x| walk(x, out)),
            CondKind::Not(x) => match &x.kind {
                CondKind::Not(y) => walk(y, out),
                _ => out.push(c),
            },
            _ => out.push(c),
        }
    }
    walk(c, &mut out);
    out
}

/// What is known of every call matched by a rule.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    pub atoms: Vec<&'a Cond>,
    /// Exact JSON values of argument lookups.
    known: Vec<(Subj, Value)>,
    /// Exact names (tool / agent / action).
    names: Vec<(Field, String)>,
    /// Argument lookups that are present.
    present: Vec<Subj>,
    /// Name glob lists the name is known to match.
    name_sets: Vec<(Field, &'a [Matcher])>,
    /// Judge `*` to cover every name when nothing constrains it (only names
    /// containing a newline escape a `*`): the "may be shadowed" mode.
    pub assume_plain_names: bool,
}

/// The path an operand reads, through function calls.
fn base_path(op: &Operand) -> Option<&[PathSeg]> {
    match op {
        Operand::Args(p) => Some(p),
        Operand::Call(_, x) => base_path(x),
        _ => None,
    }
}

impl<'a> Facts<'a> {
    pub fn new(atoms: Vec<&'a Cond>) -> Self {
        let mut f = Facts::default();
        for a in &atoms {
            f.learn(a);
        }
        f.atoms = atoms;
        f
    }

    /// Adds an exact value for a lookup, ahead of what the atoms say.
    pub fn assume_value(&mut self, subj: Subj, v: Value) {
        self.present.push(subj.clone());
        self.known.insert(0, (subj, v));
    }

    fn learn(&mut self, c: &'a Cond) {
        match &c.kind {
            CondKind::Test { op, a, b } => {
                for x in [a, b] {
                    if let Some(p) = base_path(x) {
                        self.present.push(Subj::Args(p.to_vec()));
                    }
                }
                if *op == TestOp::Eq {
                    let pair = match (a, b) {
                        (x, Operand::Const(v)) | (Operand::Const(v), x) => Some((x, v)),
                        _ => None,
                    };
                    match pair {
                        // Numbers compare by value (`1 == 1.0`): not an exact value.
                        Some((Operand::Args(p), v)) if !v.is_number() => {
                            self.known.push((Subj::Args(p.clone()), v.clone()))
                        }
                        Some((Operand::Name(field), Value::String(s))) => {
                            self.names.push((*field, s.clone()))
                        }
                        _ => {}
                    }
                }
            }
            CondKind::Regex { a, .. } | CondKind::Exists(a) | CondKind::Truthy(a) => {
                if let Some(p) = base_path(a) {
                    self.present.push(Subj::Args(p.to_vec()));
                }
            }
            CondKind::Quant { over, .. } => {
                if let Some(p) = base_path(over) {
                    self.present.push(Subj::Args(p.to_vec()));
                }
            }
            CondKind::KvCond {
                op, field, value, ..
            } => {
                if !matches!(op, KvOp::NotExists | KvOp::NotIn) {
                    self.present.push(kv_subject(field));
                }
                if *op == KvOp::Eq {
                    self.known.push((kv_subject(field), value.clone()));
                }
            }
            CondKind::KvParam { key, .. } => {
                self.present
                    .push(Subj::Args(vec![PathSeg::Key(key.clone())]));
            }
            CondKind::NameIn { field, matchers } => {
                if let [Matcher::Exact(s)] = matchers.as_slice() {
                    self.names.push((*field, s.clone()));
                }
                self.name_sets.push((*field, matchers));
            }
            _ => {}
        }
    }

    fn known(&self, s: &Subj) -> Option<&Value> {
        self.known.iter().find(|(k, _)| k == s).map(|(_, v)| v)
    }

    fn name(&self, f: Field) -> Option<&str> {
        self.names
            .iter()
            .find(|(k, _)| *k == f)
            .map(|(_, s)| s.as_str())
    }

    fn is_present(&self, s: &Subj) -> bool {
        self.known(s).is_some()
            || self.present.iter().any(|p| match (s, p) {
                (Subj::Args(want), Subj::Args(have)) => have.starts_with(want),
                (a, b) => a == b,
            })
    }

    /// The value of an operand when the facts fix it.
    fn val<'s>(&'s self, op: &'s Operand) -> Option<Val<'s>> {
        match op {
            Operand::Const(v) => Some(Val::from_json(v)),
            Operand::Args(p) => self
                .known(&Subj::Args(p.clone()))
                .map(Val::from_json)
                .or_else(|| {
                    // A known object or list fixes its members too.
                    self.known.iter().find_map(|(k, v)| match k {
                        Subj::Args(q) if p.starts_with(q) && p.len() > q.len() => {
                            Some(value::lookup_json(v, &p[q.len()..]))
                        }
                        _ => None,
                    })
                }),
            Operand::Name(f) => self.name(*f).map(Val::Str),
            Operand::Call(func, x) => self.val(x).map(|v| builtins::call(*func, &v)),
            Operand::Var(..) => None,
        }
    }

    /// Is `goal` true of every call the facts describe?
    pub fn truth(&self, goal: &Cond) -> Option<bool> {
        match &goal.kind {
            CondKind::True => Some(true),
            CondKind::And(xs) => {
                let mut all = Some(true);
                for x in xs {
                    match self.truth(x) {
                        Some(false) => return Some(false),
                        Some(true) => {}
                        None => all = None,
                    }
                }
                all
            }
            CondKind::Or(xs) => {
                let mut all = Some(false);
                for x in xs {
                    match self.truth(x) {
                        Some(true) => return Some(true),
                        Some(false) => {}
                        None => all = None,
                    }
                }
                all
            }
            CondKind::Not(x) => {
                for f in &self.atoms {
                    if same(f, goal) {
                        return Some(true);
                    }
                }
                self.truth(x).map(|b| !b)
            }
            _ => {
                for f in &self.atoms {
                    if same(f, goal) {
                        return Some(true);
                    }
                    if let CondKind::Not(y) = &f.kind {
                        if same(y, goal) {
                            return Some(false);
                        }
                    }
                }
                self.atom(goal)
            }
        }
    }

    fn atom(&self, goal: &Cond) -> Option<bool> {
        match &goal.kind {
            CondKind::NameIn { field, matchers } => self.name_in(*field, matchers),
            CondKind::Test { op, a, b } => {
                let (x, y) = (self.val(a)?, self.val(b)?);
                Some(value::test(*op, &x, &y))
            }
            CondKind::Regex { a, re, negate } => {
                let x = self.val(a)?;
                Some(x.as_str().is_some_and(|s| re.is_match(s) != *negate))
            }
            CondKind::Exists(a) => match a {
                Operand::Args(p) if self.is_present(&Subj::Args(p.clone())) => Some(true),
                _ => self.val(a).map(|v| !v.is_missing()),
            },
            CondKind::Truthy(a) => self.val(a).map(|v| matches!(v, Val::Bool(true))),
            CondKind::KvCond {
                op,
                field,
                value,
                re,
            } => {
                let subj = kv_subject(field);
                if let Some(v) = self.known(&subj) {
                    let mut args = serde_json::Map::new();
                    args.insert(field.clone(), v.clone());
                    return Some(compat::condition(
                        &Value::Object(args),
                        *op,
                        field,
                        value,
                        re.as_ref(),
                    ));
                }
                match op {
                    KvOp::Exists if self.is_present(&subj) => Some(true),
                    KvOp::NotExists if self.is_present(&subj) => Some(false),
                    _ => None,
                }
            }
            CondKind::KvParam { key, re } => {
                let v = self.known(&Subj::Args(vec![PathSeg::Key(key.clone())]))?;
                let mut args = serde_json::Map::new();
                args.insert(key.clone(), v.clone());
                Some(compat::param_matches(&Value::Object(args), key, re))
            }
            _ => None,
        }
    }

    fn name_in(&self, field: Field, goal: &[Matcher]) -> Option<bool> {
        if let Some(name) = self.name(field) {
            return Some(compat::name_matches(goal, name));
        }
        let mut constrained = false;
        for (f, set) in &self.name_sets {
            if *f != field {
                continue;
            }
            constrained = true;
            if set.iter().all(|m| goal.iter().any(|g| covers(g, m))) {
                return Some(true);
            }
            if set.iter().all(|m| goal.iter().all(|g| disjoint(g, m))) {
                return Some(false);
            }
        }
        if !constrained && self.assume_plain_names && goal.iter().any(is_star) {
            return Some(true);
        }
        None
    }
}

/// A glob made of `*` only: every name without a newline.
pub fn is_star(m: &Matcher) -> bool {
    matches!(m, Matcher::Glob { glob, .. } if !glob.is_empty() && glob.chars().all(|c| c == '*'))
}

/// Can a Kvlar glob match a string containing a newline? (`*`, `?` and plain
/// characters cannot; a negated class or a literal newline can.)
fn may_match_newline(glob: &str) -> bool {
    glob.contains('\n') || glob.contains("[!") || glob.contains("[^")
}

const GLOB_SPECIAL: [char; 4] = ['*', '?', '[', ']'];

/// Every name matched by `m` is matched by `g`.
pub fn covers(g: &Matcher, m: &Matcher) -> bool {
    match (g, m) {
        (Matcher::Exact(a), Matcher::Exact(b)) => a == b,
        (Matcher::Glob { re, .. }, Matcher::Exact(b)) => re.is_match(b),
        (Matcher::Exact(_), Matcher::Glob { .. }) => false,
        (Matcher::Glob { glob: gg, .. }, Matcher::Glob { glob: mg, .. }) => {
            if gg == mg {
                return true;
            }
            if may_match_newline(mg) {
                return false;
            }
            if is_star(g) {
                return true;
            }
            // `P*`: a literal prefix then one trailing star.
            if let Some(prefix) = gg.strip_suffix('*') {
                if !prefix.contains(GLOB_SPECIAL) {
                    let lit: String = mg
                        .chars()
                        .take_while(|c| !GLOB_SPECIAL.contains(c))
                        .collect();
                    return lit.starts_with(prefix);
                }
            }
            // `*S`: one leading star then a literal suffix.
            if let Some(suffix) = gg.strip_prefix('*') {
                if !suffix.contains(GLOB_SPECIAL) {
                    let rev: String = mg
                        .chars()
                        .rev()
                        .take_while(|c| !GLOB_SPECIAL.contains(c))
                        .collect();
                    let lit: String = rev.chars().rev().collect();
                    return lit.ends_with(suffix);
                }
            }
            false
        }
    }
}

/// No name is matched by both (`false` when unsure).
fn disjoint(g: &Matcher, m: &Matcher) -> bool {
    match (g, m) {
        (Matcher::Exact(a), Matcher::Exact(b)) => a != b,
        (Matcher::Glob { re, .. }, Matcher::Exact(b))
        | (Matcher::Exact(b), Matcher::Glob { re, .. }) => !re.is_match(b),
        _ => false,
    }
}

fn operand_eq(a: &Operand, b: &Operand) -> bool {
    match (a, b) {
        (Operand::Name(x), Operand::Name(y)) => x == y,
        (Operand::Args(x), Operand::Args(y)) => x == y,
        (Operand::Var(d, x), Operand::Var(e, y)) => d == e && x == y,
        (Operand::Const(x), Operand::Const(y)) => x == y,
        (Operand::Call(f, x), Operand::Call(g, y)) => f == g && operand_eq(x, y),
        _ => false,
    }
}

/// Structural equality, ignoring labels and spans (`a == b` and `b == a` are the same).
pub fn same(a: &Cond, b: &Cond) -> bool {
    use CondKind as K;
    match (&a.kind, &b.kind) {
        (K::True, K::True) => true,
        (K::And(x), K::And(y)) | (K::Or(x), K::Or(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (K::Not(x), K::Not(y)) => same(x, y),
        (
            K::NameIn {
                field: f,
                matchers: m,
            },
            K::NameIn {
                field: g,
                matchers: n,
            },
        ) => f == g && m == n,
        (K::KvParam { key: k, re: r }, K::KvParam { key: l, re: s }) => {
            k == l && r.as_str() == s.as_str()
        }
        (
            K::KvCond {
                op: o,
                field: f,
                value: v,
                ..
            },
            K::KvCond {
                op: p,
                field: g,
                value: w,
                ..
            },
        ) => o == p && f == g && v == w,
        (
            K::Test {
                op: o,
                a: a1,
                b: b1,
            },
            K::Test {
                op: p,
                a: a2,
                b: b2,
            },
        ) => {
            o == p
                && ((operand_eq(a1, a2) && operand_eq(b1, b2))
                    || (matches!(o, TestOp::Eq | TestOp::Ne)
                        && operand_eq(a1, b2)
                        && operand_eq(b1, a2)))
        }
        (
            K::Regex {
                a: x,
                re: r,
                negate: n,
            },
            K::Regex {
                a: y,
                re: s,
                negate: m,
            },
        ) => n == m && r.as_str() == s.as_str() && operand_eq(x, y),
        (K::Exists(x), K::Exists(y)) | (K::Truthy(x), K::Truthy(y)) => operand_eq(x, y),
        (
            K::Quant {
                kind: k,
                var: v,
                over: o,
                body: b,
            },
            K::Quant {
                kind: l,
                var: w,
                over: p,
                body: c,
            },
        ) => k == l && v == w && operand_eq(o, p) && same(b, c),
        _ => false,
    }
}

/// What an atom reads, for judging independence: a name field, or the first
/// key of an argument path (`None` inside: the whole argument object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reads {
    Name(Field),
    Arg(Option<String>),
}

impl Reads {
    pub fn touches(&self, other: &Reads) -> bool {
        match (self, other) {
            (Reads::Name(a), Reads::Name(b)) => a == b,
            (Reads::Arg(None), Reads::Arg(_)) | (Reads::Arg(_), Reads::Arg(None)) => true,
            (Reads::Arg(Some(a)), Reads::Arg(Some(b))) => a == b,
            _ => false,
        }
    }
}

fn operand_reads(op: &Operand, out: &mut Vec<Reads>) {
    match op {
        Operand::Name(f) => out.push(Reads::Name(*f)),
        Operand::Args(p) => out.push(Reads::Arg(match p.first() {
            Some(PathSeg::Key(k)) => Some(k.clone()),
            _ => None,
        })),
        Operand::Call(_, x) => operand_reads(x, out),
        Operand::Var(..) | Operand::Const(_) => {}
    }
}

/// Everything a condition reads.
pub fn reads(c: &Cond) -> Vec<Reads> {
    let mut out = Vec::new();
    fn walk(c: &Cond, out: &mut Vec<Reads>) {
        match &c.kind {
            CondKind::True => {}
            CondKind::And(xs) | CondKind::Or(xs) => xs.iter().for_each(|x| walk(x, out)),
            CondKind::Not(x) => walk(x, out),
            CondKind::NameIn { field, .. } => out.push(Reads::Name(*field)),
            CondKind::KvParam { key, .. } => out.push(Reads::Arg(Some(key.clone()))),
            CondKind::KvCond { field, .. } => {
                out.push(Reads::Arg(Some(field.clone())));
                if let Some((first, _)) = field.split_once('.') {
                    out.push(Reads::Arg(Some(first.to_string())));
                }
            }
            CondKind::Test { a, b, .. } => {
                operand_reads(a, out);
                operand_reads(b, out);
            }
            CondKind::Regex { a, .. } | CondKind::Exists(a) | CondKind::Truthy(a) => {
                operand_reads(a, out)
            }
            CondKind::Quant { over, body, .. } => {
                operand_reads(over, out);
                walk(body, out);
            }
        }
    }
    walk(c, &mut out);
    out
}

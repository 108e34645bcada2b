//! Register values and the native (expression) tests on them. See
//! `docs/language.md` for the semantics: every test on a missing value or on
//! types it does not accept is `false`.

use std::cmp::Ordering;
use std::fmt;

use serde_json::{Number, Value};

use crate::builtins::normpath;
use crate::op::TestOp;
use crate::program::PathSeg;

/// A register value. Borrowed from the call or the program where possible.
#[derive(Debug, Clone, Default)]
pub enum Val<'a> {
    #[default]
    Missing,
    Null,
    Bool(bool),
    Num(Number),
    Str(&'a str),
    /// A string computed by a function (`lower`, `host`, `normpath`…).
    Owned(String),
    /// A JSON array or object.
    Json(&'a Value),
}

impl<'a> Val<'a> {
    /// The register form of a JSON value.
    #[inline]
    pub fn from_json(v: &'a Value) -> Val<'a> {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => Val::Num(n.clone()),
            Value::String(s) => Val::Str(s),
            Value::Array(_) | Value::Object(_) => Val::Json(v),
        }
    }

    #[inline]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            Val::Owned(s) => Some(s),
            _ => None,
        }
    }

    #[inline]
    pub fn is_missing(&self) -> bool {
        matches!(self, Val::Missing)
    }

    pub fn as_array(&self) -> Option<&'a [Value]> {
        match self {
            Val::Json(Value::Array(a)) => Some(a),
            _ => None,
        }
    }

    /// Type name, for traces.
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Missing => "missing",
            Val::Null => "null",
            Val::Bool(_) => "bool",
            Val::Num(_) => "number",
            Val::Str(_) | Val::Owned(_) => "string",
            Val::Json(Value::Array(_)) => "list",
            Val::Json(_) => "object",
        }
    }
}

impl fmt::Display for Val<'_> {
    /// JSON rendering (missing renders as `missing`), long values shortened.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Val::Missing => return f.write_str("missing"),
            Val::Null => "null".to_string(),
            Val::Bool(b) => b.to_string(),
            Val::Num(n) => n.to_string(),
            Val::Str(s) => Value::String((*s).to_string()).to_string(),
            Val::Owned(s) => Value::String(s.clone()).to_string(),
            Val::Json(v) => v.to_string(),
        };
        if text.chars().count() > 120 {
            let short: String = text.chars().take(117).collect();
            write!(f, "{short}...")
        } else {
            f.write_str(&text)
        }
    }
}

/// Compares two JSON numbers by value (integers exactly, otherwise as f64).
pub fn cmp_num(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    // One is negative and the other a u64 beyond i64: decided by sign.
    match (a.as_i64(), b.as_u64(), a.as_u64(), b.as_i64()) {
        (Some(_), Some(_), None, None) => return Some(Ordering::Less),
        (None, None, Some(_), Some(_)) => return Some(Ordering::Greater),
        _ => {}
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// Native equality (`==`).
pub fn equals(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Missing, _) | (_, Val::Missing) => false,
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Num(x), Val::Num(y)) => cmp_num(x, y) == Some(Ordering::Equal),
        (Val::Json(x), Val::Json(y)) => json_equals(x, y),
        _ => match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

/// Structural equality of lists and objects, with numbers compared by value
/// at every depth (`[1] == [1.0]`, `[0] == [-0.0]`), like scalars are.
/// `serde_json`'s own `==` tells `1` from `1.0`, which would make `==` on a
/// list disagree with `==` on its elements.
pub fn json_equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => cmp_num(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equals(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equals(v, w)))
        }
        _ => a == b,
    }
}

/// Equality of a register value with a JSON value (list membership).
pub fn equals_json(a: &Val, b: &Value) -> bool {
    equals(a, &Val::from_json(b))
}

fn order(a: &Val, b: &Val) -> Option<Ordering> {
    match (a, b) {
        (Val::Num(x), Val::Num(y)) => cmp_num(x, y),
        _ => match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) => Some(x.cmp(y)),
            _ => None,
        },
    }
}

pub fn lt(a: &Val, b: &Val) -> bool {
    order(a, b) == Some(Ordering::Less)
}
pub fn le(a: &Val, b: &Val) -> bool {
    matches!(order(a, b), Some(Ordering::Less | Ordering::Equal))
}
pub fn gt(a: &Val, b: &Val) -> bool {
    order(a, b) == Some(Ordering::Greater)
}
pub fn ge(a: &Val, b: &Val) -> bool {
    matches!(order(a, b), Some(Ordering::Greater | Ordering::Equal))
}

/// `a != b`: both present and not equal.
pub fn not_equals(a: &Val, b: &Val) -> bool {
    !a.is_missing() && !b.is_missing() && !equals(a, b)
}

/// `a in b`: `Some(result)` when the test applies (b a list, or both strings), else `None`.
fn membership(a: &Val, b: &Val) -> Option<bool> {
    if a.is_missing() {
        return None;
    }
    if let Some(items) = b.as_array() {
        return Some(items.iter().any(|x| equals_json(a, x)));
    }
    match (a.as_str(), b.as_str()) {
        (Some(x), Some(y)) => Some(y.contains(x)),
        _ => None,
    }
}

pub fn is_in(a: &Val, b: &Val) -> bool {
    membership(a, b) == Some(true)
}
pub fn not_in(a: &Val, b: &Val) -> bool {
    membership(a, b) == Some(false)
}

/// `a contains b`: substring, or list membership.
pub fn contains(a: &Val, b: &Val) -> bool {
    is_in(b, a)
}

pub fn starts_with(a: &Val, b: &Val) -> bool {
    matches!((a.as_str(), b.as_str()), (Some(x), Some(y)) if x.starts_with(y))
}
pub fn ends_with(a: &Val, b: &Val) -> bool {
    matches!((a.as_str(), b.as_str()), (Some(x), Some(y)) if x.ends_with(y))
}

/// `a under b`: after lexical normalisation, `a` is `b` or inside it.
pub fn under(a: &Val, b: &Val) -> bool {
    let (Some(p), Some(dir)) = (a.as_str(), b.as_str()) else {
        return false;
    };
    path_under(p, dir)
}

/// Path containment after normalisation (no allocation when both are already normal).
pub fn path_under(p: &str, dir: &str) -> bool {
    let p = normpath(p);
    let dir = normpath(dir);
    if dir == "/" {
        return p.starts_with('/');
    }
    p == dir || (p.starts_with(dir.as_ref()) && p.as_bytes().get(dir.len()) == Some(&b'/'))
}

/// A native binary test (the `test` instruction), shared by the VM and the linter.
pub fn test(op: TestOp, x: &Val, y: &Val) -> bool {
    match op {
        TestOp::Eq => equals(x, y),
        TestOp::Ne => not_equals(x, y),
        TestOp::Lt => lt(x, y),
        TestOp::Le => le(x, y),
        TestOp::Gt => gt(x, y),
        TestOp::Ge => ge(x, y),
        TestOp::In => is_in(x, y),
        TestOp::NotIn => not_in(x, y),
        TestOp::Contains => contains(x, y),
        TestOp::StartsWith => starts_with(x, y),
        TestOp::EndsWith => ends_with(x, y),
        TestOp::Under => under(x, y),
    }
}

/// Follows a path through JSON objects and arrays; missing if any step is absent.
pub fn lookup_json<'a>(v: &'a Value, path: &[PathSeg]) -> Val<'a> {
    let mut cur = v;
    for seg in path {
        let next = match (seg, cur) {
            (PathSeg::Key(k), Value::Object(m)) => m.get(k.as_str()),
            (PathSeg::Index(i), Value::Array(a)) => usize::try_from(*i).ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return Val::Missing,
        }
    }
    Val::from_json(cur)
}

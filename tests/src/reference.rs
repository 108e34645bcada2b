//! A reference interpreter: a deliberately simple tree-walking evaluator over
//! the policy AST ([`kvlar_compiler::ast::PolicySet`]) implementing
//! `docs/language.md` directly.
//!
//! It is written independently of the VM and favours clarity over speed:
//! values are cloned, regexes and globs are compiled on every use. Its only
//! job is to be obviously right, so the differential tests can compare the
//! compiler + VM against it (and it against the published `kvlar-core`).

use std::cmp::Ordering;

use kvlar_compiler::ast::{
    Condition, DefaultOutcome, Effect as AstEffect, KvOp, MatchOn, PolicySet, Rule,
};
use kvlar_grammar::ast::{BinOp, Expr, ExprKind, Literal, PathRoot, QuantKind, Segment};
use kvlar_vm::{Call, Effect};
use serde_json::{Map, Number, Value};

/// Rule id of the decision when a policy with `default_outcome: allow` matched nothing.
pub const DEFAULT_ALLOW: &str = "_default_allow";
/// Rule id of the decision when no policy decided.
pub const DEFAULT_DENY: &str = "_default_deny";
/// Kvlar's reason text for `_default_deny`.
pub const DEFAULT_DENY_REASON: &str = "no matching policy rule — denied by default (fail-closed)";

/// Evaluates `call` against `set`: policies in order, rules first-match.
pub fn evaluate(set: &PolicySet, call: &Call<'_>) -> (Effect, String, Option<String>) {
    for policy in &set.policies {
        for rule in &policy.rules {
            if rule_matches(rule, call) {
                return match &rule.effect.value {
                    AstEffect::Allow => (Effect::Allow, rule.id.value.clone(), None),
                    AstEffect::Deny { reason } => {
                        (Effect::Deny, rule.id.value.clone(), Some(reason.clone()))
                    }
                    AstEffect::RequireApproval { reason } => (
                        Effect::RequireApproval,
                        rule.id.value.clone(),
                        Some(reason.clone()),
                    ),
                };
            }
        }
        let allow_by_default = matches!(
            policy.default_outcome.as_ref().map(|d| d.value),
            Some(DefaultOutcome::Allow)
        );
        if !policy.rules.is_empty() && allow_by_default {
            return (Effect::Allow, DEFAULT_ALLOW.to_string(), None);
        }
    }
    (
        Effect::Deny,
        DEFAULT_DENY.to_string(),
        Some(DEFAULT_DENY_REASON.to_string()),
    )
}

/// A rule matches when every part that is present holds.
pub fn rule_matches(rule: &Rule, call: &Call<'_>) -> bool {
    if !rule.tools.is_empty()
        && !rule
            .tools
            .iter()
            .any(|p| kvlar_glob_matches(&p.value, call.tool))
    {
        return false;
    }
    if let Some(m) = &rule.match_on {
        if !match_on_holds(m, call) {
            return false;
        }
    }
    if let Some(when) = &rule.when {
        let mut scope = Vec::new();
        if !truthy(&eval(when, call, &mut scope)) {
            return false;
        }
    }
    true
}

// ---------------------------------------------------------------------------
// Kvlar `match_on`: a faithful port of kvlar-core's engine.rs.
// ---------------------------------------------------------------------------

/// Kvlar's glob: a pattern without `*`, `?`, `[` is compared exactly;
/// otherwise it is translated to an anchored regex (see [`kvlar_glob_to_regex`]);
/// if the translation fails the pattern is compared exactly.
pub fn kvlar_glob_matches(pattern: &str, value: &str) -> bool {
    if !pattern.contains(['*', '?', '[']) {
        return pattern == value;
    }
    match kvlar_glob_to_regex(pattern) {
        Some(re) => re.is_match(value),
        None => pattern == value,
    }
}

/// Port of kvlar-core's `glob_to_regex`: `*` → `.*`, `?` → `.`, a `[...]`
/// class copied verbatim (`[!` → `[^`), a few metacharacters escaped.
/// An unterminated class, or a translation the regex crate rejects, is `None`.
pub fn kvlar_glob_to_regex(pattern: &str) -> Option<regex::Regex> {
    let mut out = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                out.push('[');
                if chars.peek() == Some(&'!') {
                    chars.next();
                    out.push('^');
                }
                let mut closed = false;
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == ']' {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return None;
                }
            }
            '.' | '+' | '^' | '$' | '|' | '\\' | '(' | ')' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            other => out.push(other),
        }
    }
    out.push('$');
    regex::Regex::new(&out).ok()
}

/// The argument object as Kvlar sees it: anything but an object has no keys.
fn kvlar_params<'a>(call: &Call<'a>) -> Option<&'a Map<String, Value>> {
    call.args.as_object()
}

fn match_on_holds(m: &MatchOn, call: &Call<'_>) -> bool {
    let any_glob = |patterns: &[kvlar_compiler::ast::Sp<String>], value: &str| {
        patterns.is_empty() || patterns.iter().any(|p| kvlar_glob_matches(&p.value, value))
    };
    if !any_glob(&m.action_types, call.action)
        || !any_glob(&m.resources, call.tool)
        || !any_glob(&m.agent_ids, call.agent)
    {
        return false;
    }
    let params = kvlar_params(call);
    for (name, pattern) in &m.parameters {
        let Some(value) = params.and_then(|p| p.get(&name.value)) else {
            return false;
        };
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match regex::Regex::new(&pattern.value) {
            Ok(re) if re.is_match(&text) => {}
            _ => return false,
        }
    }
    m.conditions.iter().all(|c| condition_holds(c, call))
}

/// kvlar-core's `resolve_field`: the whole field as a top-level key first,
/// else the part before the first dot as a top-level key and the rest
/// followed through objects, one dot-separated key at a time.
pub fn kvlar_resolve_field(args: &Value, field: &str) -> Option<Value> {
    let params = args.as_object()?;
    if let Some(v) = params.get(field) {
        return Some(v.clone());
    }
    let (first, rest) = field.split_once('.')?;
    let mut cur = params.get(first)?;
    for key in rest.split('.') {
        cur = cur.as_object()?.get(key)?;
    }
    Some(cur.clone())
}

/// kvlar-core's `extract_hostname`.
pub fn kvlar_extract_hostname(input: &str) -> String {
    let without_scheme = match input.find("://") {
        Some(pos) => &input[pos + 3..],
        None => input,
    };
    let host_and_port = without_scheme.split('/').next().unwrap_or(without_scheme);
    let host = if host_and_port.starts_with('[') {
        host_and_port
            .split(']')
            .next()
            .map(|s| s.trim_start_matches('['))
            .unwrap_or(host_and_port)
    } else {
        host_and_port.split(':').next().unwrap_or(host_and_port)
    };
    host.to_lowercase()
}

fn kvlar_host_in_domain(host: &str, domain: &str) -> bool {
    let domain = domain.to_lowercase();
    host == domain || host.ends_with(&format!(".{domain}"))
}

fn kvlar_in_domain(host: &str, value: &Value) -> Option<bool> {
    match value {
        Value::String(d) => Some(kvlar_host_in_domain(host, d)),
        Value::Array(ds) => Some(
            ds.iter()
                .any(|d| d.as_str().is_some_and(|d| kvlar_host_in_domain(host, d))),
        ),
        _ => None,
    }
}

fn condition_holds(c: &Condition, call: &Call<'_>) -> bool {
    let field = kvlar_resolve_field(call.args, &c.field.value);
    let want = &c.value.value;
    match c.operator.value {
        KvOp::Exists => return field.is_some(),
        KvOp::NotExists => return field.is_none(),
        KvOp::NotIn => {
            return match field {
                None => true,
                Some(f) => match want.as_array() {
                    Some(items) => !items.contains(&f),
                    None => true,
                },
            }
        }
        _ => {}
    }
    let Some(f) = field else {
        return false;
    };
    let fs = f.as_str().unwrap_or("");
    let ws = want.as_str().unwrap_or("");
    match c.operator.value {
        KvOp::Eq => f == *want,
        KvOp::Neq => f != *want,
        KvOp::Contains => fs.contains(ws),
        KvOp::StartsWith => fs.starts_with(ws),
        KvOp::EndsWith => fs.ends_with(ws),
        KvOp::Matches => regex::Regex::new(ws).is_ok_and(|re| re.is_match(fs)),
        KvOp::GreaterThan => matches!((f.as_f64(), want.as_f64()), (Some(a), Some(b)) if a > b),
        KvOp::LessThan => matches!((f.as_f64(), want.as_f64()), (Some(a), Some(b)) if a < b),
        KvOp::In => want.as_array().is_some_and(|items| items.contains(&f)),
        KvOp::InDomain => kvlar_in_domain(&kvlar_extract_hostname(fs), want).unwrap_or(false),
        KvOp::NotInDomain => {
            kvlar_in_domain(&kvlar_extract_hostname(fs), want).is_none_or(|hit| !hit)
        }
        KvOp::Exists | KvOp::NotExists | KvOp::NotIn => unreachable!("handled above"),
    }
}

// ---------------------------------------------------------------------------
// Native `when` expressions.
// ---------------------------------------------------------------------------

/// A value during evaluation: `None` is *missing*.
type Val = Option<Value>;

fn truthy(v: &Val) -> bool {
    matches!(v, Some(Value::Bool(true)))
}

fn boolean(b: bool) -> Val {
    Some(Value::Bool(b))
}

/// Evaluates an expression to a value. Tests evaluate to booleans.
fn eval(e: &Expr, call: &Call<'_>, scope: &mut Vec<(String, Value)>) -> Val {
    match &e.kind {
        ExprKind::Lit(l) => Some(match l {
            Literal::Str(s) => Value::String(s.clone()),
            Literal::Int(i) => Value::from(*i),
            Literal::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Literal::Bool(b) => Value::Bool(*b),
            Literal::Null => Value::Null,
        }),
        // A regex only has meaning as the right-hand side of `=~` / `!~`.
        ExprKind::Regex { .. } => None,
        ExprKind::List(items) => {
            let mut out = Vec::new();
            for item in items {
                // Lists of missing items are not specified; treat the list as missing.
                out.push(eval(item, call, scope)?);
            }
            Some(Value::Array(out))
        }
        ExprKind::Path(p) => {
            let mut cur: Value = match &p.root {
                PathRoot::Tool => Value::String(call.tool.to_string()),
                PathRoot::Agent => Value::String(call.agent.to_string()),
                PathRoot::Action => Value::String(call.action.to_string()),
                PathRoot::Args => call.args.clone(),
                PathRoot::Var(name) => scope.iter().rev().find(|(n, _)| n == name)?.1.clone(),
            };
            for seg in &p.segments {
                cur = match seg {
                    Segment::Key(k, _) => cur.as_object()?.get(k)?.clone(),
                    Segment::Index(i, _) => cur.as_array()?.get(usize::try_from(*i).ok()?)?.clone(),
                };
            }
            Some(cur)
        }
        ExprKind::Not(inner) => boolean(!truthy(&eval(inner, call, scope))),
        ExprKind::And(a, b) => {
            boolean(truthy(&eval(a, call, scope)) && truthy(&eval(b, call, scope)))
        }
        ExprKind::Or(a, b) => {
            boolean(truthy(&eval(a, call, scope)) || truthy(&eval(b, call, scope)))
        }
        ExprKind::Binary { op, lhs, rhs, .. } => boolean(binary(*op, lhs, rhs, call, scope)),
        ExprKind::Call { name, args, .. } => function(name, args, call, scope),
        ExprKind::Quant {
            kind,
            var,
            over,
            body,
            ..
        } => {
            let Some(Value::Array(items)) = eval(over, call, scope) else {
                return boolean(false);
            };
            let mut result = matches!(kind, QuantKind::All);
            for item in items {
                scope.push((var.clone(), item));
                let holds = truthy(&eval(body, call, scope));
                scope.pop();
                match kind {
                    QuantKind::Any if holds => {
                        result = true;
                        break;
                    }
                    QuantKind::All if !holds => {
                        result = false;
                        break;
                    }
                    _ => {}
                }
            }
            boolean(result)
        }
    }
}

fn function(name: &str, args: &[Expr], call: &Call<'_>, scope: &mut Vec<(String, Value)>) -> Val {
    let arg = args.first().and_then(|a| eval(a, call, scope));
    match name {
        "exists" => boolean(arg.is_some()),
        "len" => match arg? {
            Value::String(s) => Some(Value::from(s.chars().count() as u64)),
            Value::Array(a) => Some(Value::from(a.len() as u64)),
            Value::Object(o) => Some(Value::from(o.len() as u64)),
            _ => None,
        },
        "lower" => Some(Value::String(arg?.as_str()?.to_lowercase())),
        "upper" => Some(Value::String(arg?.as_str()?.to_uppercase())),
        "host" => url_host(arg?.as_str()?).map(Value::String),
        "normpath" => Some(Value::String(normpath(arg?.as_str()?))),
        other => panic!("reference: unknown function {other}"),
    }
}

/// `host(url)` as documented: WHATWG parsing (`url` crate), `http://`
/// prepended when there is no `scheme://`, lower-cased, userinfo and port
/// dropped, IPv6 without brackets, one trailing dot removed.
pub fn url_host(s: &str) -> Option<String> {
    // docs/language.md: parse as a URL; if that fails or gives no host and
    // the string has no `://`, parse `http://` + string.
    let parsed = match url::Url::parse(s) {
        Ok(u) if u.host().is_some() => u,
        _ if s.contains("://") => return None,
        _ => url::Url::parse(&format!("http://{s}")).ok()?,
    };
    let host = match parsed.host()? {
        url::Host::Domain(d) => d.to_string(),
        url::Host::Ipv4(a) => a.to_string(),
        url::Host::Ipv6(a) => a.to_string(),
    };
    let host = host.to_lowercase();
    let host = host.strip_suffix('.').map(str::to_string).unwrap_or(host);
    if host.is_empty() {
        None
    } else {
        Some(host)
    }
}

/// Lexical path normalisation as documented for `normpath`.
pub fn normpath(p: &str) -> String {
    let absolute = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for comp in p.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else if joined.is_empty() {
        // docs/language.md: a relative path that resolves to nothing is `.`
        ".".to_string()
    } else {
        joined
    }
}

/// `glob`: globset's syntax with `literal_separator(true)`, applied to
/// characters as documented (`?` is one character). globset itself matches
/// bytes (`?` would match one byte of `é`), so for an ASCII pattern its
/// translated regex is run in Unicode mode instead; a non-ASCII pattern
/// (globset escapes it byte-wise) uses globset's own matcher. `**` also
/// crosses newlines (globset's `.*` would not, while its `*` does).
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let glob = globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .expect("reference: the compiler accepted an invalid glob");
    if pattern.is_ascii() {
        let re = glob.regex();
        let re = re.strip_prefix("(?-u)").unwrap_or(re);
        // `.` (from `**`) crosses newlines like `*` (`[^/]*`) does.
        if let Ok(re) = regex::RegexBuilder::new(re)
            .dot_matches_new_line(true)
            .build()
        {
            return re.is_match(text);
        }
    }
    glob.compile_matcher().is_match(text)
}

fn under(path: &str, dir: &str) -> bool {
    let p = normpath(path);
    let d = normpath(dir);
    if p == d {
        return true;
    }
    if d.ends_with('/') {
        // only "/" itself
        return p.starts_with(&d);
    }
    p.starts_with(&format!("{d}/"))
}

/// Numbers by value: integers exactly, anything involving a float as `f64`.
fn num_cmp(a: &Number, b: &Number) -> Option<Ordering> {
    let int = |n: &Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (int(a), int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// `==`: same type and equal; numbers by value; lists and objects structurally.
pub fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Some(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| value_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| value_eq(v, w)))
        }
        _ => false,
    }
}

fn ordered(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y),
        (Value::String(x), Value::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        _ => None,
    }
}

fn regex_of(e: &Expr) -> regex::Regex {
    let ExprKind::Regex { pattern, flags } = &e.kind else {
        panic!("reference: right-hand side of =~ is not a regex literal");
    };
    regex::RegexBuilder::new(pattern)
        .case_insensitive(flags.contains('i'))
        .dot_matches_new_line(flags.contains('s'))
        .multi_line(flags.contains('m'))
        .build()
        .expect("reference: the compiler accepted an invalid regex")
}

/// `in`: `b` a list with an item `== a`, or both strings and `a` a substring of `b`.
/// `None` when the operand types are not accepted.
fn membership(a: &Value, b: &Value) -> Option<bool> {
    match (a, b) {
        (_, Value::Array(items)) => Some(items.iter().any(|i| value_eq(a, i))),
        (Value::String(x), Value::String(y)) => Some(y.contains(x.as_str())),
        _ => None,
    }
}

fn binary(
    op: BinOp,
    lhs: &Expr,
    rhs: &Expr,
    call: &Call<'_>,
    scope: &mut Vec<(String, Value)>,
) -> bool {
    let Some(a) = eval(lhs, call, scope) else {
        return false;
    };
    match op {
        BinOp::Match => return a.as_str().is_some_and(|s| regex_of(rhs).is_match(s)),
        BinOp::NotMatch => return a.as_str().is_some_and(|s| !regex_of(rhs).is_match(s)),
        _ => {}
    }
    let Some(b) = eval(rhs, call, scope) else {
        return false;
    };
    match op {
        BinOp::Eq => value_eq(&a, &b),
        BinOp::Ne => !value_eq(&a, &b),
        BinOp::Lt => ordered(&a, &b) == Some(Ordering::Less),
        BinOp::Le => matches!(ordered(&a, &b), Some(Ordering::Less | Ordering::Equal)),
        BinOp::Gt => ordered(&a, &b) == Some(Ordering::Greater),
        BinOp::Ge => matches!(ordered(&a, &b), Some(Ordering::Greater | Ordering::Equal)),
        BinOp::In => membership(&a, &b) == Some(true),
        BinOp::NotIn => membership(&a, &b) == Some(false),
        BinOp::Contains => match (&a, &b) {
            (Value::String(x), Value::String(y)) => x.contains(y.as_str()),
            (Value::Array(items), _) => items.iter().any(|i| value_eq(i, &b)),
            _ => false,
        },
        BinOp::StartsWith => match (&a, &b) {
            (Value::String(x), Value::String(y)) => x.starts_with(y.as_str()),
            _ => false,
        },
        BinOp::EndsWith => match (&a, &b) {
            (Value::String(x), Value::String(y)) => x.ends_with(y.as_str()),
            _ => false,
        },
        BinOp::Glob => match (&a, &b) {
            (Value::String(x), Value::String(pat)) => glob_matches(pat, x),
            _ => false,
        },
        BinOp::Under => match (&a, &b) {
            (Value::String(x), Value::String(d)) => under(x, d),
            _ => false,
        },
        BinOp::Match | BinOp::NotMatch => unreachable!("handled above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_cases() {
        assert!(glob_matches("?", "é"), "`?` is one character");
        assert!(!glob_matches("??", "é"));
        assert!(glob_matches("/etc/**", "/etc/a/b"));
        assert!(!glob_matches("/etc/*", "/etc/a/b"));
        assert!(glob_matches("a/**/b", "a/b"));
        assert!(glob_matches("/srv/{app,data}/*", "/srv/data/x"));
        assert!(!glob_matches("[!a]*", "/x"));
    }

    #[test]
    fn normpath_cases() {
        assert_eq!(normpath("/a/../.."), "/");
        assert_eq!(normpath("/a//b/./c/"), "/a/b/c");
        assert_eq!(normpath("a/../../b"), "../b");
        assert_eq!(normpath("/"), "/");
        assert_eq!(normpath("a\\b/.."), ".");
        assert_eq!(normpath("/etc/../srv/x"), "/srv/x");
    }

    #[test]
    fn under_cases() {
        assert!(under("/dir", "/dir"));
        assert!(under("/dir/x", "/dir/"));
        assert!(!under("/dirt", "/dir"));
        assert!(!under("/dir/../etc", "/dir"));
        assert!(under("/anything", "/"));
        assert!(!under("relative", "/"));
    }

    #[test]
    fn host_cases() {
        assert_eq!(
            url_host("https://User@Example.COM:8080/x").as_deref(),
            Some("example.com")
        );
        assert_eq!(url_host("http://[::1]:8080/").as_deref(), Some("::1"));
        assert_eq!(url_host("example.com.").as_deref(), Some("example.com"));
        assert_eq!(url_host("Example.com/path").as_deref(), Some("example.com"));
        assert_eq!(url_host(""), None);
    }

    #[test]
    fn kvlar_glob_corners() {
        assert!(kvlar_glob_matches("read_*", "read_file"));
        assert!(!kvlar_glob_matches("read_*", "xread_file"));
        assert!(kvlar_glob_matches("[!a]b", "cb"));
        assert!(!kvlar_glob_matches("[!a]b", "ab"));
        assert!(
            kvlar_glob_matches("a[b", "a[b"),
            "unterminated class is literal"
        );
        assert!(kvlar_glob_matches("a.b?", "a.bc"));
        assert!(!kvlar_glob_matches("a.b?", "axbc"));
        assert!(
            !kvlar_glob_matches("*", "a\nb"),
            "`*` does not cross newlines"
        );
    }

    #[test]
    fn kvlar_hostname_corners() {
        assert_eq!(
            kvlar_extract_hostname("https://user@Host.com:1/x"),
            "user@host.com"
        );
        assert_eq!(kvlar_extract_hostname("http://[::1]:8080/"), "::1");
        assert_eq!(kvlar_extract_hostname("a.com?q=/x"), "a.com?q=");
    }

    #[test]
    fn field_resolution() {
        let args = serde_json::json!({"a.b": 1, "a": {"b": 2, "c": {"d": 3}}});
        assert_eq!(kvlar_resolve_field(&args, "a.b"), Some(Value::from(1)));
        assert_eq!(kvlar_resolve_field(&args, "a.c.d"), Some(Value::from(3)));
        assert_eq!(kvlar_resolve_field(&args, "a.x"), None);
    }
}

//! Kvlar v0.3 / v0.4 criteria, with exactly the published engine's
//! semantics (`kvlar-core` 0.3.0 / 0.4.0), odd corners included — the
//! differential tests in `tests/` hold us to it.

use std::borrow::Cow;

use regex::Regex;
use serde_json::Value;

use crate::op::KvOp;
use crate::program::Matcher;

/// Any matcher matches `value` (an empty list is handled by the compiler: no instruction).
#[inline]
pub fn name_matches(matchers: &[Matcher], value: &str) -> bool {
    matchers.iter().any(|m| match m {
        Matcher::Exact(s) => s == value,
        Matcher::Glob { re, .. } => re.is_match(value),
    })
}

/// The argument object's entries (a non-object has none).
#[inline]
pub(crate) fn param<'a>(args: &'a Value, key: &str) -> Option<&'a Value> {
    match args {
        Value::Object(m) => m.get(key),
        _ => None,
    }
}

/// Kvlar `parameters`: present, and the regex finds a match in its text (a
/// string as is, anything else as compact JSON).
pub fn param_matches(args: &Value, key: &str, re: &Regex) -> bool {
    match param(args, key) {
        Some(Value::String(s)) => re.is_match(s),
        Some(other) => with_json_text(other, |text| re.is_match(text)),
        None => false,
    }
}

thread_local! {
    /// Reused buffer for the compact JSON text of non-string arguments, so
    /// that matching them allocates nothing once warm.
    static JSON_TEXT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Calls `f` with the compact JSON text of `v` (the same text as `v.to_string()`).
pub(crate) fn with_json_text<R>(v: &Value, f: impl FnOnce(&str) -> R) -> R {
    JSON_TEXT.with(|buf| match buf.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let text = match serde_json::to_writer(&mut *buf, v) {
                Ok(()) => std::str::from_utf8(&buf).ok(),
                Err(_) => None,
            };
            let r = match text {
                Some(t) => f(t),
                None => f(&v.to_string()),
            };
            // Do not keep a huge argument's buffer alive.
            if buf.capacity() > 1 << 20 {
                *buf = Vec::new();
            }
            r
        }
        Err(_) => f(&v.to_string()),
    })
}

/// Kvlar's field resolution: the whole name as a top-level key first, then
/// split at the first dot and followed through nested objects (each further
/// level again split at its first dot, no array indexing).
pub fn resolve_field<'a>(args: &'a Value, field: &str) -> Option<&'a Value> {
    if let Some(v) = param(args, field) {
        return Some(v);
    }
    // A byte loop: most fields have no dot, and `split_once` costs more to
    // set up than to scan a short name.
    let dot = field.bytes().position(|b| b == b'.')?;
    let (first, rest) = (field.get(..dot)?, field.get(dot + 1..)?);
    let mut cur = param(args, first)?;
    let mut path = rest;
    loop {
        match path.split_once('.') {
            Some((head, tail)) => {
                cur = cur.as_object()?.get(head)?;
                path = tail;
            }
            None => return cur.as_object()?.get(path),
        }
    }
}

/// A Kvlar condition. `value` is the condition's JSON value; `re` is the
/// precompiled regex for `matches` (when the value is a string).
pub fn condition(args: &Value, op: KvOp, field: &str, value: &Value, re: Option<&Regex>) -> bool {
    let field_value = resolve_field(args, field);
    match op {
        KvOp::Exists => return field_value.is_some(),
        KvOp::NotExists => return field_value.is_none(),
        KvOp::NotIn => {
            return match field_value {
                None => true,
                Some(fv) => match value.as_array() {
                    Some(arr) => !arr.contains(fv),
                    None => true,
                },
            }
        }
        _ => {}
    }
    let Some(fv) = field_value else {
        return false;
    };
    let fstr = || fv.as_str().unwrap_or("");
    let vstr = || value.as_str().unwrap_or("");
    match op {
        KvOp::Eq => fv == value,
        KvOp::Neq => fv != value,
        KvOp::Contains => fstr().contains(vstr()),
        KvOp::StartsWith => fstr().starts_with(vstr()),
        KvOp::EndsWith => fstr().ends_with(vstr()),
        KvOp::GreaterThan => matches!((fv.as_f64(), value.as_f64()), (Some(a), Some(b)) if a > b),
        KvOp::LessThan => matches!((fv.as_f64(), value.as_f64()), (Some(a), Some(b)) if a < b),
        KvOp::In => value.as_array().is_some_and(|arr| arr.contains(fv)),
        KvOp::Matches => match re {
            Some(re) => re.is_match(fstr()),
            // A non-string pattern is Kvlar's empty pattern: matches everything.
            None => true,
        },
        KvOp::InDomain | KvOp::NotInDomain => {
            let host = extract_hostname(fstr());
            let hit = match value {
                Value::String(d) => host_in_domain(&host, d),
                Value::Array(ds) => ds
                    .iter()
                    .any(|d| d.as_str().is_some_and(|d| host_in_domain(&host, d))),
                _ => {
                    // in_domain: false; not_in_domain: true.
                    return op == KvOp::NotInDomain;
                }
            };
            if op == KvOp::InDomain {
                hit
            } else {
                !hit
            }
        }
        // Decided before the field lookup above.
        KvOp::Exists | KvOp::NotExists | KvOp::NotIn => false,
    }
}

/// Kvlar's host extraction: strip `scheme://`, cut at the first `/`, strip
/// the port (or the IPv6 brackets), lower-case. Userinfo is *not* removed.
pub fn extract_hostname(input: &str) -> Cow<'_, str> {
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
    if host.chars().any(|c| c.is_uppercase() || !c.is_ascii()) {
        Cow::Owned(host.to_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// `host` is `domain` (lower-cased) or ends with `.domain`.
pub fn host_in_domain(host: &str, domain: &str) -> bool {
    let domain: Cow<'_, str> = if domain.chars().any(|c| c.is_uppercase() || !c.is_ascii()) {
        Cow::Owned(domain.to_lowercase())
    } else {
        Cow::Borrowed(domain)
    };
    host == domain
        || (host.len() > domain.len()
            && host.ends_with(domain.as_ref())
            && host.as_bytes()[host.len() - domain.len() - 1] == b'.')
}

/// Kvlar's glob → regex translation (`kvlar-core`'s `glob_to_regex`), as a
/// regex source, or `None` for a pattern without `*`, `?`, `[` (exact
/// comparison) or an unterminated class (compared literally). The caller
/// must also fall back to exact comparison if the regex does not compile.
pub fn glob_regex(pattern: &str) -> Option<String> {
    if !pattern.contains(['*', '?', '[']) {
        return None;
    }
    let mut out = String::with_capacity(pattern.len() + 4);
    out.push('^');
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
            _ => out.push(c),
        }
    }
    out.push('$');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_resolution_like_kvlar() {
        let args = json!({"a.b": 1, "a": {"b": 2, "c": {"d": 3}, "x.y": 4}, "arr": [{"k": 1}]});
        assert_eq!(resolve_field(&args, "a.b"), Some(&json!(1)));
        assert_eq!(resolve_field(&args, "a.c.d"), Some(&json!(3)));
        assert_eq!(resolve_field(&args, "a.x.y"), None);
        assert_eq!(resolve_field(&args, "arr.0"), None);
        assert_eq!(resolve_field(&json!("str"), "a"), None);
    }

    #[test]
    fn hostname_like_kvlar() {
        assert_eq!(
            extract_hostname("https://Good.com@Evil.com/x"),
            "good.com@evil.com"
        );
        assert_eq!(extract_hostname("https://[::1]:8080/"), "::1");
        assert_eq!(
            extract_hostname("api.example.com:443/path"),
            "api.example.com"
        );
        assert!(host_in_domain("api.example.com", "Example.com"));
        assert!(!host_in_domain("badexample.com", "example.com"));
        assert!(host_in_domain("example.com", "example.com"));
    }

    #[test]
    fn glob_translation() {
        assert_eq!(glob_regex("read_*").as_deref(), Some("^read_.*$"));
        assert_eq!(glob_regex("*").as_deref(), Some(crate::fast::STAR));
        assert_eq!(glob_regex("a.b?").as_deref(), Some("^a\\.b.$"));
        assert_eq!(glob_regex("[!ab]x").as_deref(), Some("^[^ab]x$"));
        assert_eq!(glob_regex("bash"), None);
        assert_eq!(glob_regex("x[ab"), None);
    }
}

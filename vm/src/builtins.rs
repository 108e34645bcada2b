//! Built-in functions: `len`, `lower`, `upper`, `host`, `normpath`.

use std::borrow::Cow;

use serde_json::Value;

use crate::op::Func;
use crate::value::Val;

/// Applies a function; anything it does not accept gives `Missing`.
pub fn call<'a>(func: Func, v: &Val<'a>) -> Val<'a> {
    match func {
        Func::Len => match v {
            Val::Str(s) => Val::Num(s.chars().count().into()),
            Val::Owned(s) => Val::Num(s.chars().count().into()),
            Val::Json(Value::Array(a)) => Val::Num(a.len().into()),
            Val::Json(Value::Object(o)) => Val::Num(o.len().into()),
            _ => Val::Missing,
        },
        Func::Lower => match v.as_str() {
            Some(s) => Val::Owned(s.to_lowercase()),
            None => Val::Missing,
        },
        Func::Upper => match v.as_str() {
            Some(s) => Val::Owned(s.to_uppercase()),
            None => Val::Missing,
        },
        Func::Host => match v.as_str().and_then(host) {
            Some(h) => Val::Owned(h),
            None => Val::Missing,
        },
        Func::NormPath => match v {
            Val::Str(s) => match normpath(s) {
                Cow::Borrowed(b) => Val::Str(b),
                Cow::Owned(o) => Val::Owned(o),
            },
            Val::Owned(s) => Val::Owned(normpath(s).into_owned()),
            _ => Val::Missing,
        },
    }
}

/// The host of a URL (WHATWG parsing, as browsers and most HTTP clients do —
/// so `https:\\evil.com` has host `evil.com`): lower-cased, IDNA-normalised,
/// without userinfo, port, IPv6 brackets or one trailing dot. When the string
/// does not parse to a URL with a host and has no `://`, `http://` + string
/// is parsed instead (`example.com:443/x`). `None` when there is no host.
pub fn host(input: &str) -> Option<String> {
    let parsed = match url::Url::parse(input) {
        Ok(u) if u.host().is_some() => u,
        _ if input.contains("://") => return None,
        _ => url::Url::parse(&format!("http://{input}")).ok()?,
    };
    let host = match parsed.host()? {
        url::Host::Domain(d) => d.to_string(),
        url::Host::Ipv4(a) => a.to_string(),
        url::Host::Ipv6(a) => a.to_string(),
    };
    let host = host.strip_suffix('.').unwrap_or(&host).to_ascii_lowercase();
    if host.is_empty() {
        None
    } else {
        Some(host)
    }
}

/// Lexical path normalisation: `//` collapsed, `.` removed, `..` resolved
/// (never above `/`; kept at the front of a relative path), trailing `/`
/// dropped except for `/` itself. Empty input gives `.`. Borrows when the
/// input is already normal.
pub fn normpath(p: &str) -> Cow<'_, str> {
    if is_normal(p) {
        return Cow::Borrowed(p);
    }
    let absolute = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if matches!(parts.last(), Some(last) if *last != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    Cow::Owned(match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    })
}

fn is_normal(p: &str) -> bool {
    if p.is_empty() {
        return false;
    }
    if p == "/" || p == "." {
        return true;
    }
    if p.ends_with('/') {
        return false;
    }
    let rel = !p.starts_with('/');
    let body = p.strip_prefix('/').unwrap_or(p);
    let mut leading = rel;
    for seg in body.split('/') {
        match seg {
            "" | "." => return false,
            ".." if leading => {}
            ".." => return false,
            _ => leading = false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normpath_cases() {
        for (input, want) in [
            ("/tmp/../etc/passwd", "/etc/passwd"),
            ("/tmp//x/./y/", "/tmp/x/y"),
            ("/..", "/"),
            ("/a/../..", "/"),
            ("a/../../b", "../b"),
            ("../../x", "../../x"),
            ("", "."),
            ("./", "."),
            ("/", "/"),
            ("//", "/"),
            ("/etc", "/etc"),
            ("a/b", "a/b"),
        ] {
            assert_eq!(normpath(input), want, "normpath({input:?})");
        }
        assert!(matches!(normpath("/etc/passwd"), Cow::Borrowed(_)));
    }

    #[test]
    fn host_cases() {
        for (input, want) in [
            ("https://Example.COM/path", Some("example.com")),
            ("https://good.com@evil.com/", Some("evil.com")),
            ("http://user:pw@host.io:8080/x", Some("host.io")),
            ("https://[::1]:8443/", Some("::1")),
            ("example.com.", Some("example.com")),
            ("EXAMPLE.com:443", Some("example.com")),
            (
                "https://xn--bcher-kva.example/",
                Some("xn--bcher-kva.example"),
            ),
            ("https://bücher.example/", Some("xn--bcher-kva.example")),
            ("http://127.0.0.1/", Some("127.0.0.1")),
            ("https:\\\\evil.com\\x", Some("evil.com")),
            ("", None),
            ("https://", None),
        ] {
            assert_eq!(host(input).as_deref(), want, "host({input:?})");
        }
    }
}

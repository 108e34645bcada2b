//! Lexical checks that run before the pest parser, and the decoders for
//! string and regex tokens.
//!
//! Since the language has no division operator, `/` outside a string always
//! starts a regex literal, and a quote outside a regex always starts a
//! string. So strings and regexes can be found without parsing, which lets
//! us report unterminated literals, bad escapes and bad regex flags with
//! precise spans, and bound the bracket nesting before pest recurses.

use crate::error::ParseError;

/// Maximum nesting of `(` and `[` accepted (pest recurses on each level).
pub const MAX_NESTING: usize = 128;

/// Scans `src` for lexical errors and excessive bracket nesting.
pub(crate) fn check(src: &str) -> Result<(), ParseError> {
    let mut depth = 0usize;
    let mut i = 0;
    let bytes = src.as_bytes();
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' => i = decode_string(src, i)?.1,
            b'/' => i = decode_regex(src, i)?.2,
            b'(' | b'[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(too_deep(i..i + 1));
                }
                i += 1;
            }
            b')' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// The "expression nested too deeply" error.
pub(crate) fn too_deep(span: std::ops::Range<usize>) -> ParseError {
    ParseError::new(
        span,
        "expression nested too deeply",
        format!("nesting exceeds {MAX_NESTING} levels here"),
    )
    .with_help("simplify the expression, or split it over several rules")
}

/// Decodes the string literal whose opening quote is at byte `start`.
/// Returns the decoded text and the byte offset just past the closing quote.
pub(crate) fn decode_string(src: &str, start: usize) -> Result<(String, usize), ParseError> {
    let quote = if src[start..].starts_with('\'') {
        '\''
    } else {
        '"'
    };
    let unterminated = || {
        ParseError::new(
            start..src.len(),
            "unterminated string literal",
            "this string is never closed",
        )
        .with_help(format!(
            "close the string with {quote}; a {quote} inside the string is written \\{quote}"
        ))
    };
    let malformed_unicode = |span: std::ops::Range<usize>| {
        ParseError::new(span, "malformed unicode escape", "expected \\u{HEX}")
            .with_help("write a unicode escape as \\u{1F600}: 1 to 6 hex digits in braces")
    };
    let mut out = String::new();
    let mut i = start + 1;
    loop {
        let Some(c) = src[i..].chars().next() else {
            return Err(unterminated());
        };
        if c == quote {
            return Ok((out, i + 1));
        }
        if c != '\\' {
            out.push(c);
            i += c.len_utf8();
            continue;
        }
        let Some(e) = src[i + 1..].chars().next() else {
            return Err(unterminated());
        };
        let simple = match e {
            '"' => Some('"'),
            '\'' => Some('\''),
            '\\' => Some('\\'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            '0' => Some('\0'),
            _ => None,
        };
        if let Some(ch) = simple {
            out.push(ch);
            i += 2;
            continue;
        }
        if e == 'u' {
            let brace = i + 2;
            if brace == src.len() {
                return Err(unterminated());
            }
            if !src[brace..].starts_with('{') {
                return Err(malformed_unicode(i..brace));
            }
            let digits = src[brace + 1..]
                .bytes()
                .take_while(u8::is_ascii_hexdigit)
                .count();
            let after = brace + 1 + digits;
            match src[after..].chars().next() {
                None => return Err(unterminated()),
                Some('}') if (1..=6).contains(&digits) => {
                    let hex = &src[brace + 1..after];
                    let value = u32::from_str_radix(hex, 16)
                        .map_err(|_| malformed_unicode(i..after + 1))?;
                    let Some(ch) = char::from_u32(value) else {
                        return Err(ParseError::new(
                            i..after + 1,
                            format!("invalid unicode code point \\u{{{hex}}}"),
                            "not a unicode scalar value",
                        )
                        .with_help(
                            "surrogates (D800 to DFFF) and values above 10FFFF are not characters",
                        ));
                    };
                    out.push(ch);
                    i = after + 1;
                    continue;
                }
                Some('}') => return Err(malformed_unicode(i..after + 1)),
                Some(_) => return Err(malformed_unicode(i..after)),
            }
        }
        let mut err = ParseError::new(
            i..i + 1 + e.len_utf8(),
            format!("unknown escape sequence \\{}", e.escape_debug()),
            "unknown escape",
        )
        .with_help(
            "valid escapes are \\\" \\' \\\\ \\n \\r \\t \\0 \\u{HEX}; write a backslash as \\\\",
        );
        if "sSdDwWbB.".contains(e) {
            err = err.with_help(format!(
                "\\{e} is a regex escape: use a regex literal like /\\{e}/ with =~, \
                 or write the backslash as \\\\"
            ));
        }
        return Err(err);
    }
}

/// Decodes the regex literal whose opening `/` is at byte `start`.
/// Returns `(pattern, flags, end)` where `end` is just past the flags.
///
/// In the pattern, `\/` becomes `/`; every other backslash sequence is kept
/// verbatim.
pub(crate) fn decode_regex(src: &str, start: usize) -> Result<(String, String, usize), ParseError> {
    let unterminated = |end: usize| {
        ParseError::new(
            start..end,
            "unterminated regex literal",
            "this regex is never closed",
        )
        .with_help(
            "a regex ends at the next unescaped / on the same line; write a slash inside it as \\/",
        )
    };
    let mut pattern = String::new();
    let mut chars = src[start + 1..]
        .char_indices()
        .map(|(o, c)| (o + start + 1, c));
    let body_end = loop {
        let Some((pos, c)) = chars.next() else {
            return Err(unterminated(src.len()));
        };
        match c {
            '/' => break pos + 1,
            '\n' | '\r' => return Err(unterminated(pos)),
            '\\' => match chars.next() {
                None => return Err(unterminated(src.len())),
                Some((p, '\n' | '\r')) => return Err(unterminated(p)),
                Some((_, '/')) => pattern.push('/'),
                Some((_, e)) => {
                    pattern.push('\\');
                    pattern.push(e);
                }
            },
            other => pattern.push(other),
        }
    };
    let mut flags = String::new();
    let mut end = body_end;
    for c in src[body_end..].chars() {
        if !(c.is_ascii_alphanumeric() || c == '_') {
            break;
        }
        let span = end..end + 1;
        if !matches!(c, 'i' | 's' | 'm') {
            return Err(
                ParseError::new(span, format!("unknown regex flag '{c}'"), "unknown flag")
                    .with_help("allowed flags are i, s, m"),
            );
        }
        if flags.contains(c) {
            return Err(ParseError::new(
                span,
                format!("duplicate regex flag '{c}'"),
                "flag given twice",
            )
            .with_help("allowed flags are i, s, m, each at most once"));
        }
        flags.push(c);
        end += 1;
    }
    Ok((pattern, flags, end))
}

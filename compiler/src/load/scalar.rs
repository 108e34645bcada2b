//! Maps byte offsets inside a decoded YAML scalar back to byte offsets in
//! the file, so that an error in a `when:` expression points at the exact
//! line and column of the policy file.
//!
//! The scalar is re-decoded from the source text (plain, single-quoted,
//! double-quoted, literal `|` and folded `>` block scalars, flow context
//! included), recording for every decoded character the source bytes it came
//! from. The re-decoded string is compared with the one the YAML parser
//! produced: if they differ, every offset maps to the scalar's start (never a
//! wrong column) and the reason is kept in [`ScalarMap::fallback`].

use std::ops::Range;

/// Decoded-offset → file-offset mapping for one scalar.
#[derive(Debug, Clone)]
pub struct ScalarMap {
    /// Source byte range of the character containing each decoded byte
    /// (indexed by decoded byte offset); one extra entry for the end.
    ranges: Vec<(usize, usize)>,
    /// Start of the scalar token in the file.
    start: usize,
    /// Why the exact mapping was not available (then every offset maps to `start`).
    pub fallback: Option<String>,
}

impl ScalarMap {
    /// Builds the mapping for the scalar whose token occupies `span` in `text`
    /// and whose decoded value is `decoded`.
    pub fn build(text: &str, span: Range<usize>, decoded: &str) -> ScalarMap {
        let start = span.start.min(text.len());
        let mut tried = Vec::new();
        for style in candidate_styles(text, &span) {
            match decode(text, &span, style, decoded) {
                Some(out) if out.s == decoded => {
                    return ScalarMap::exact(out, start);
                }
                Some(out) => tried.push(format!("{style:?} decoded to {:?}", out.s)),
                None => tried.push(format!("{style:?} did not decode")),
            }
        }
        let reason = format!(
            "scalar at byte {start}: could not re-decode {:?} ({})",
            decoded,
            tried.join("; ")
        );
        debug_log(&reason);
        ScalarMap {
            ranges: Vec::new(),
            start,
            fallback: Some(reason),
        }
    }

    fn exact(out: Decoded, start: usize) -> ScalarMap {
        let mut ranges = Vec::with_capacity(out.s.len() + 1);
        for ((_, c), r) in out.s.char_indices().zip(out.map.iter()) {
            for _ in 0..c.len_utf8() {
                ranges.push(*r);
            }
        }
        let end = out.map.last().map_or(out.end, |r| r.1);
        ranges.push((end, end));
        ScalarMap {
            ranges,
            start,
            fallback: None,
        }
    }

    /// Whether offsets are mapped exactly.
    pub fn is_exact(&self) -> bool {
        self.fallback.is_none()
    }

    /// File offset of decoded byte offset `off` (the start of its character).
    pub fn offset(&self, off: usize) -> usize {
        if self.fallback.is_some() {
            return self.start;
        }
        match self.ranges.get(off).or(self.ranges.last()) {
            Some(r) => r.0,
            None => self.start,
        }
    }

    /// File byte range of the decoded byte range `r`: from the start of its
    /// first character to the end of its last one (a decoded escape such as
    /// `\"` covers both source bytes).
    pub fn range(&self, r: &Range<usize>) -> Range<usize> {
        if self.fallback.is_some() {
            return self.start..self.start;
        }
        let start = self.offset(r.start);
        if r.end <= r.start {
            return start..start;
        }
        let last = r.end - 1;
        let end = match self.ranges.get(last).or(self.ranges.last()) {
            Some(x) => x.1,
            None => start,
        };
        start..end.max(start)
    }
}

fn debug_log(msg: &str) {
    if std::env::var_os("KVLAR_DEBUG_SPANS").is_some() {
        eprintln!("[kvlar::load::scalar] {msg}");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
    /// Block scalar whose header indicator (`|` or `>`) is at this offset.
    Block(usize),
}

struct Decoded {
    s: String,
    /// Source range per decoded char.
    map: Vec<(usize, usize)>,
    /// End of the decoded region (for empty results).
    end: usize,
}

impl Decoded {
    fn new(end: usize) -> Self {
        Decoded {
            s: String::new(),
            map: Vec::new(),
            end,
        }
    }
    fn push(&mut self, c: char, start: usize, end: usize) {
        self.s.push(c);
        self.map.push((start, end));
    }
}

fn candidate_styles(text: &str, span: &Range<usize>) -> Vec<Style> {
    let first = text.get(span.start..).and_then(|s| s.chars().next());
    match first {
        Some('"') => vec![Style::Double, Style::Plain],
        Some('\'') => vec![Style::Single, Style::Plain],
        Some('|') | Some('>') => vec![Style::Block(span.start), Style::Plain],
        _ => match block_header_before(text, span.start) {
            Some(h) => vec![Style::Block(h), Style::Plain],
            None => vec![Style::Plain],
        },
    }
}

/// If `pos` is the first content of a block scalar whose header is on an
/// earlier line, the offset of its `|` / `>` indicator.
pub fn block_header_before(text: &str, pos: usize) -> Option<usize> {
    let pos = pos.min(text.len());
    let line_start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    if !text[line_start..pos].chars().all(|c| c == ' ') {
        return None;
    }
    // Walk up over blank lines to the header line.
    let mut end = line_start;
    while end > 0 {
        let prev_end = end - 1; // the '\n' ending the previous line
        let prev_start = text[..prev_end].rfind('\n').map_or(0, |i| i + 1);
        let line = text[prev_start..prev_end].trim_end_matches('\r');
        if line.trim().is_empty() {
            end = prev_start;
            continue;
        }
        return header_indicator(line).map(|i| prev_start + i);
    }
    None
}

/// Offset within `line` of a trailing block-scalar header `|`/`>` (with
/// optional chomping / indentation indicators and comment).
fn header_indicator(line: &str) -> Option<usize> {
    // Cut a trailing comment (`#` preceded by whitespace).
    let mut content_end = line.len();
    let bytes = line.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'#' && i > 0 && (bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') {
            content_end = i;
            break;
        }
    }
    let content = line[..content_end].trim_end();
    let token_start = content.rfind([' ', '\t']).map_or(0, |i| i + 1);
    let token = &content[token_start..];
    let mut chars = token.chars();
    match chars.next() {
        Some('|') | Some('>') => {}
        _ => return None,
    }
    let rest: String = chars.collect();
    if rest.len() <= 2
        && rest
            .chars()
            .all(|c| c == '+' || c == '-' || c.is_ascii_digit())
    {
        Some(token_start)
    } else {
        None
    }
}

fn decode(text: &str, span: &Range<usize>, style: Style, want: &str) -> Option<Decoded> {
    let end = span.end.min(text.len());
    let start = span.start.min(end);
    match style {
        Style::Plain => decode_flow(text, start, end, style),
        Style::Single | Style::Double => {
            let q = if style == Style::Single { '\'' } else { '"' };
            let inner = text.get(start..end)?;
            if inner.len() < 2 || !inner.starts_with(q) || !inner.ends_with(q) {
                return None;
            }
            decode_flow(text, start + 1, end - 1, style)
        }
        Style::Block(h) => decode_block(text, h, span, want),
    }
}

fn char_at(text: &str, i: usize) -> Option<char> {
    text.get(i..).and_then(|s| s.chars().next())
}

fn is_break(text: &str, i: usize) -> bool {
    matches!(text.as_bytes().get(i), Some(b'\n') | Some(b'\r'))
}

/// Offset after the line break at `i`.
fn skip_break(text: &str, i: usize) -> usize {
    let b = text.as_bytes();
    if b.get(i) == Some(&b'\r') && b.get(i + 1) == Some(&b'\n') {
        i + 2
    } else {
        i + 1
    }
}

fn skip_white(text: &str, mut i: usize, end: usize) -> usize {
    let b = text.as_bytes();
    while i < end && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    i
}

/// Plain, single- and double-quoted scalars over `[a, b)` (quotes excluded):
/// escapes, trailing-whitespace stripping and line folding.
fn decode_flow(text: &str, a: usize, b: usize, style: Style) -> Option<Decoded> {
    let mut out = Decoded::new(b);
    let mut i = a;
    while i < b {
        let c = char_at(text, i)?;
        match c {
            '\\' if style == Style::Double => {
                let e = char_at(text, i + 1)?;
                if i + 1 >= b {
                    return None;
                }
                if e == '\n' || e == '\r' {
                    // Escaped line break: no space; empty lines that follow are newlines.
                    let mut k = skip_break(text, i + 1);
                    loop {
                        let j = skip_white(text, k, b);
                        if j < b && is_break(text, j) {
                            out.push('\n', j, skip_break(text, j));
                            k = skip_break(text, j);
                        } else {
                            k = j;
                            break;
                        }
                    }
                    i = k;
                    continue;
                }
                let (ch, len) = match e {
                    '0' => ('\0', 2),
                    'a' => ('\x07', 2),
                    'b' => ('\x08', 2),
                    't' | '\t' => ('\t', 2),
                    'n' => ('\n', 2),
                    'v' => ('\x0b', 2),
                    'f' => ('\x0c', 2),
                    'r' => ('\r', 2),
                    'e' => ('\x1b', 2),
                    ' ' => (' ', 2),
                    '"' => ('"', 2),
                    '/' => ('/', 2),
                    '\\' => ('\\', 2),
                    'N' => ('\u{85}', 2),
                    '_' => ('\u{a0}', 2),
                    'L' => ('\u{2028}', 2),
                    'P' => ('\u{2029}', 2),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex = text.get(i + 2..i + 2 + n)?;
                        if i + 2 + n > b {
                            return None;
                        }
                        let v = u32::from_str_radix(hex, 16).ok()?;
                        (char::from_u32(v)?, 2 + n)
                    }
                    _ => return None,
                };
                out.push(ch, i, i + len);
                i += len;
            }
            '\'' if style == Style::Single => {
                if char_at(text, i + 1) == Some('\'') && i + 1 < b {
                    out.push('\'', i, i + 2);
                    i += 2;
                } else {
                    return None;
                }
            }
            ' ' | '\t' => {
                let j = skip_white(text, i, b);
                if j < b && is_break(text, j) {
                    // Trailing white space of a line is not content.
                    i = j;
                    continue;
                }
                for k in i..j {
                    out.push(text.as_bytes()[k] as char, k, k + 1);
                }
                i = j;
            }
            '\n' | '\r' => {
                let first = i;
                let mut k = skip_break(text, i);
                let mut empties = Vec::new();
                loop {
                    let j = skip_white(text, k, b);
                    if j < b && is_break(text, j) {
                        empties.push(j);
                        k = skip_break(text, j);
                    } else {
                        k = j;
                        break;
                    }
                }
                if empties.is_empty() {
                    out.push(' ', first, k.max(first + 1));
                } else {
                    for p in empties {
                        out.push('\n', p, skip_break(text, p));
                    }
                }
                i = k;
            }
            _ => {
                out.push(c, i, i + c.len_utf8());
                i += c.len_utf8();
            }
        }
    }
    Some(out)
}

#[derive(Debug, Clone, Copy)]
struct Line {
    start: usize,
    /// End of the line's text (before the break).
    end: usize,
    /// Range of the line break (empty at end of input).
    brk: (usize, usize),
}

/// Block scalar with header at `h`; tries every possible indentation and
/// keeps the one that reproduces the decoded value (checked by the caller).
fn decode_block(text: &str, h: usize, span: &Range<usize>, want: &str) -> Option<Decoded> {
    let indicator = char_at(text, h)?;
    let mut chomp = 'c';
    let mut explicit: Option<usize> = None;
    for c in text.get(h + 1..)?.chars() {
        match c {
            '-' | '+' => chomp = c,
            '1'..='9' => explicit = Some(c as usize - '0' as usize),
            _ => break,
        }
    }
    let header_end = text[h..].find('\n').map(|i| h + i + 1)?;
    // Lines after the header, up to the end of the input.
    let mut lines = Vec::new();
    let mut p = header_end;
    while p < text.len() {
        let nl = text[p..].find('\n').map(|i| p + i);
        let (end, brk) = match nl {
            Some(n) => {
                let end = if n > p && text.as_bytes()[n - 1] == b'\r' {
                    n - 1
                } else {
                    n
                };
                (end, (end, n + 1))
            }
            None => (text.len(), (text.len(), text.len())),
        };
        lines.push(Line { start: p, end, brk });
        p = brk.1;
        if nl.is_none() {
            break;
        }
    }
    let first_indent = lines
        .iter()
        .find(|l| !text[l.start..l.end].trim_matches(' ').is_empty())
        .map_or(0, |l| leading_spaces(text, l));
    let min = explicit.unwrap_or(0);
    // Prefer the indentation that matches the parser's span start.
    let mut tries: Vec<usize> = (min..=first_indent.max(min)).rev().collect();
    if let Some(l) = lines
        .iter()
        .find(|l| l.start <= span.start && span.start <= l.end && span.start > h)
    {
        let m = span.start - l.start;
        tries.retain(|x| *x != m);
        tries.insert(0, m);
    }
    let mut first = None;
    for m in tries {
        if let Some(d) = block_with_indent(text, &lines, m, indicator == '>', chomp) {
            if d.s == want {
                return Some(d);
            }
            first.get_or_insert(d);
        }
    }
    first
}

fn leading_spaces(text: &str, l: &Line) -> usize {
    text[l.start..l.end]
        .bytes()
        .take_while(|b| *b == b' ')
        .count()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Empty,
    Content { more_indented: bool },
}

fn block_with_indent(
    text: &str,
    lines: &[Line],
    m: usize,
    folded: bool,
    chomp: char,
) -> Option<Decoded> {
    let mut body: Vec<(Line, Kind)> = Vec::new();
    for l in lines {
        let line = &text[l.start..l.end];
        let sp = leading_spaces(text, l);
        let rest = &line[sp..];
        if rest.is_empty() {
            if sp > m {
                body.push((
                    *l,
                    Kind::Content {
                        more_indented: true,
                    },
                ));
            } else {
                body.push((*l, Kind::Empty));
            }
        } else if sp >= m {
            if m == 0 && (line.starts_with("---") || line.starts_with("...")) {
                break;
            }
            let first = rest.chars().next();
            let more = sp > m || matches!(first, Some(' ') | Some('\t'));
            body.push((
                *l,
                Kind::Content {
                    more_indented: more,
                },
            ));
        } else {
            break;
        }
    }
    let last_content = body
        .iter()
        .rposition(|(_, k)| matches!(k, Kind::Content { .. }));
    let end = body.last().map_or(0, |(l, _)| l.brk.1);
    let mut out = Decoded::new(end);
    let push_break = |out: &mut Decoded, l: &Line| {
        if l.brk.1 > l.brk.0 {
            out.push('\n', l.brk.0, l.brk.1);
        }
    };
    let Some(last) = last_content else {
        if chomp == '+' {
            for (l, _) in &body {
                push_break(&mut out, l);
            }
        }
        return Some(out);
    };
    let mut prev_content: Option<(Line, bool)> = None;
    let mut pending_empties: Vec<Line> = Vec::new();
    for (idx, (l, k)) in body.iter().enumerate() {
        if idx > last {
            break;
        }
        match k {
            Kind::Empty => pending_empties.push(*l),
            Kind::Content { more_indented } => {
                match prev_content {
                    None => {
                        for e in &pending_empties {
                            push_break(&mut out, e);
                        }
                    }
                    Some((pl, pmore)) => {
                        if folded && !pmore && !more_indented {
                            if pending_empties.is_empty() {
                                out.push(' ', pl.brk.0, pl.brk.1);
                            } else {
                                for e in &pending_empties {
                                    push_break(&mut out, e);
                                }
                            }
                        } else {
                            push_break(&mut out, &pl);
                            for e in &pending_empties {
                                push_break(&mut out, e);
                            }
                        }
                    }
                }
                pending_empties.clear();
                let cs = (l.start + m).min(l.end);
                for (off, c) in text[cs..l.end].char_indices() {
                    out.push(c, cs + off, cs + off + c.len_utf8());
                }
                prev_content = Some((*l, *more_indented));
            }
        }
    }
    if let Some((pl, _)) = prev_content {
        if chomp != '-' {
            push_break(&mut out, &pl);
        }
    }
    if chomp == '+' {
        for (l, _) in body.iter().skip(last + 1) {
            push_break(&mut out, l);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::{self, YKind};
    use crate::source::line_col;

    /// The map and decoded value of the scalar under key `w` (top level or
    /// in a top-level flow mapping / first list item).
    fn scalar_of(text: &str) -> (ScalarMap, String) {
        let (root, problems) = yaml::parse(text).expect("valid yaml");
        assert!(problems.is_empty());
        let node = find_w(&root).expect("key w");
        let decoded = match &node.kind {
            YKind::Str(s) => s.clone(),
            _ => text[node.span.clone()].to_string(),
        };
        (ScalarMap::build(text, node.span.clone(), &decoded), decoded)
    }

    fn find_w(n: &yaml::YNode) -> Option<&yaml::YNode> {
        match &n.kind {
            YKind::Map(es) => es.iter().find_map(|(k, v)| {
                if matches!(&k.kind, YKind::Str(s) if s == "w") {
                    Some(v)
                } else {
                    find_w(v)
                }
            }),
            YKind::Seq(items) => items.iter().find_map(find_w),
            _ => None,
        }
    }

    /// File line/column of the first occurrence of `needle` in the decoded value.
    fn at(text: &str, needle: &str) -> (usize, usize) {
        let (map, decoded) = scalar_of(text);
        assert!(map.is_exact(), "{:?}", map.fallback);
        let off = decoded.find(needle).expect("needle in decoded");
        let r = map.range(&(off..off + needle.len()));
        line_col(text, r.start)
    }

    fn range_text<'t>(text: &'t str, needle: &str) -> &'t str {
        let (map, decoded) = scalar_of(text);
        let off = decoded.find(needle).expect("needle");
        &text[map.range(&(off..off + needle.len()))]
    }

    #[test]
    fn plain_single_line() {
        let t = "w: args.a == 1 && zz\n";
        assert_eq!(at(t, "zz"), (1, 19));
        assert_eq!(range_text(t, "== 1"), "== 1");
    }

    #[test]
    fn plain_multi_line_folding() {
        let t = "w: args.a == 1\n  && zz\n\n  yy\nother: 1\n";
        let (_, d) = scalar_of(t);
        assert_eq!(d, "args.a == 1 && zz\nyy");
        assert_eq!(at(t, "&&"), (2, 3));
        assert_eq!(at(t, "zz"), (2, 6));
        assert_eq!(at(t, "yy"), (4, 3));
        // The folded space is the line break at the end of line 1.
        assert_eq!(at(t, " &&"), (1, 15));
    }

    #[test]
    fn plain_value_on_next_line() {
        let t = "rules:\n  - w:\n      args.a\n      && zz\n";
        assert_eq!(at(t, "zz"), (4, 10));
    }

    #[test]
    fn single_quoted_with_escape_and_folding() {
        let t = "w: 'args.a == ''x'' &&\n   zz'\n";
        let (_, d) = scalar_of(t);
        assert_eq!(d, "args.a == 'x' && zz");
        assert_eq!(at(t, "'x'"), (1, 15));
        assert_eq!(range_text(t, "'x'"), "''x''");
        assert_eq!(at(t, "zz"), (2, 4));
    }

    #[test]
    fn double_quoted_escapes() {
        let t = "w: \"args.a == \\\"x\\\" && \\u00e9\\x41\\t zz\"\n";
        let (_, d) = scalar_of(t);
        assert_eq!(d, "args.a == \"x\" && éA\t zz");
        assert_eq!(at(t, "\"x\""), (1, 15));
        assert_eq!(range_text(t, "\"x\""), "\\\"x\\\"");
        assert_eq!(range_text(t, "é"), "\\u00e9");
        assert_eq!(at(t, "zz"), (1, 37));
    }

    #[test]
    fn double_quoted_line_breaks() {
        // Escaped line break (no space), then a folded one, then an empty line.
        let t = "w: \"args.a ==\\\n     1 &&\n   zz\n\n   yy\"\n";
        let (_, d) = scalar_of(t);
        assert_eq!(d, "args.a ==1 && zz\nyy");
        assert_eq!(at(t, "1 &&"), (2, 6));
        assert_eq!(at(t, "zz"), (3, 4));
        assert_eq!(at(t, "yy"), (5, 4));
    }

    #[test]
    fn literal_block() {
        let t = "w: |\n  args.a == 1 &&\n  zz\nx: 1\n";
        let (_, d) = scalar_of(t);
        assert_eq!(d, "args.a == 1 &&\nzz\n");
        assert_eq!(at(t, "zz"), (3, 3));
        assert_eq!(at(t, "\nzz"), (2, 17));
    }

    #[test]
    fn literal_block_chomping_and_indentation_indicator() {
        let t = "w: |2-\n    args.a\n  zz\n\nx: 1\n";
        let (_, d) = scalar_of(t);
        assert_eq!(d, "  args.a\nzz");
        assert_eq!(at(t, "args"), (2, 5));
        assert_eq!(at(t, "zz"), (3, 3));
        let t = "w: |+ # keep\n  a\n  zz\n\nx: 1\n";
        let (_, d) = scalar_of(t);
        assert_eq!(d, "a\nzz\n\n");
        assert_eq!(at(t, "zz"), (3, 3));
    }

    #[test]
    fn nested_literal_block_in_list() {
        let t = "rules:\n  - id: r\n    w: |\n      args.a == 1 &&\n        zz\n";
        let (_, d) = scalar_of(t);
        assert_eq!(d, "args.a == 1 &&\n  zz\n");
        assert_eq!(at(t, "zz"), (5, 9));
    }

    #[test]
    fn folded_block() {
        let t = "w: >\n  args.a == 1\n  && zz\n\n  yy\n    more\nx: 1\n";
        let (_, d) = scalar_of(t);
        assert_eq!(d, "args.a == 1 && zz\nyy\n  more\n");
        assert_eq!(at(t, "zz"), (3, 6));
        assert_eq!(at(t, "yy"), (5, 3));
        assert_eq!(at(t, "more"), (6, 5));
    }

    #[test]
    fn flow_context() {
        let t = "x: {a: 1, w: args.a == 1 && zz}\n";
        assert_eq!(at(t, "zz"), (1, 29));
        let t = "x: [{w: \"a\\tb zz\"}]\n";
        assert_eq!(at(t, "zz"), (1, 15));
    }

    #[test]
    fn crlf_line_breaks() {
        let t = "w: |\r\n  a\r\n  zz\r\nx: 1\r\n";
        let (_, d) = scalar_of(t);
        assert_eq!(d, "a\nzz\n");
        assert_eq!(at(t, "zz"), (3, 3));
        let t = "w: a\r\n  zz\r\n";
        assert_eq!(at(t, "zz"), (2, 3));
    }

    #[test]
    fn mismatch_falls_back_to_start() {
        let t = "x: 1\nw: \"abc\"\n";
        let m = ScalarMap::build(t, 8..13, "something else");
        assert!(!m.is_exact());
        assert_eq!(m.offset(3), 8);
        assert_eq!(m.range(&(2..5)), 8..8);
    }

    #[test]
    fn non_ascii_columns_are_characters() {
        let t = "w: \"é == ü && zz\"\n";
        assert_eq!(at(t, "zz"), (1, 15));
    }
}

//! YAML text → a generic spanned node tree, parsed by serde-saphyr.
//!
//! The schema check (`schema.rs`) walks this tree, so that every problem in a
//! file is reported rather than serde's first one. Mapping key order is kept;
//! duplicate keys are detected here (both spans).

use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

/// A YAML node with the byte range of its token(s) in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct YNode {
    pub kind: YKind,
    /// For scalars: the scalar token (quotes and block indicators included).
    /// For collections: see [`YNode::span`] notes in `convert`.
    pub span: Range<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum YKind {
    /// Entries in file order (duplicates already reported and dropped).
    Map(Vec<(YNode, YNode)>),
    Seq(Vec<YNode>),
    Str(String),
    Int(i128),
    Float(f64),
    Bool(bool),
    Null,
}

impl YKind {
    /// How the type is named in "expected …, found …" messages.
    pub fn describe(&self) -> &'static str {
        match self {
            YKind::Map(_) => "a mapping",
            YKind::Seq(_) => "a list",
            YKind::Str(_) => "a string",
            YKind::Int(_) => "an integer",
            YKind::Float(_) => "a number",
            YKind::Bool(_) => "a boolean",
            YKind::Null => "nothing (null)",
        }
    }
}

/// A problem found while building the tree.
#[derive(Debug, Clone, PartialEq)]
pub enum YamlProblem {
    /// Malformed YAML (or a refused document, e.g. an alias bomb).
    Syntax {
        message: String,
        label: String,
        span: Range<usize>,
    },
    /// `span` is the repeated key, `first` the first occurrence.
    DuplicateKey {
        key: String,
        span: Range<usize>,
        first: Range<usize>,
    },
}

/// Parses one YAML document. On success returns the root node and any
/// duplicate-key problems (the tree keeps the first occurrence of each key).
pub fn parse(text: &str) -> Result<(YNode, Vec<YamlProblem>), YamlProblem> {
    let raw: Spanned<RawNode> = serde_saphyr::from_str_with_options(text, options())
        .map_err(|e| syntax_problem(text, &e))?;
    let mut problems = Vec::new();
    let root = convert(text, raw, &mut problems);
    Ok((root, problems))
}

/// Parser options: duplicate keys are passed through (we report them with both
/// spans), aliases are tightly limited so that an alias bomb ("billion laughs")
/// is refused instead of expanded.
fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_events = 1_000_000;
    budget.max_documents = 1;
    let mut opts = serde_saphyr::Options::default();
    opts.budget = Some(budget);
    opts.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    opts.alias_limits.max_total_replayed_events = 10_000;
    opts.alias_limits.max_replay_stack_depth = 16;
    opts.alias_limits.max_alias_expansions_per_anchor = 100;
    opts.with_snippet = false;
    // Closer to serde_yaml 0.9 (what Kvlar parses with) for untyped values:
    // `yes`/`no`/`on`/`off` are strings, `0755` and `1_000` are strings.
    opts.strict_booleans = true;
    opts.leading_zero_numbers_as_strings = true;
    opts.underscored_numbers_as_strings = true;
    opts.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::PassThrough;
    opts
}

/// Byte range of a serde-saphyr location (`defined` site).
fn loc_range(text: &str, loc: &Location) -> Range<usize> {
    let span = loc.span();
    match (span.byte_offset(), span.byte_len()) {
        (Some(off), Some(len)) => {
            let start = clamp_boundary(text, usize::try_from(off).unwrap_or(text.len()));
            let end = clamp_boundary(
                text,
                usize::try_from(off.saturating_add(len)).unwrap_or(text.len()),
            );
            start..end.max(start)
        }
        _ => {
            let off = offset_of_line_col(text, loc.line(), loc.column());
            off..off
        }
    }
}

fn clamp_boundary(text: &str, mut off: usize) -> usize {
    off = off.min(text.len());
    while !text.is_char_boundary(off) {
        off -= 1;
    }
    off
}

/// Byte offset of a 1-based line / character column (clamped to the text).
pub fn offset_of_line_col(text: &str, line: u64, column: u64) -> usize {
    let mut off = 0usize;
    let mut cur = 1u64;
    if line > 1 {
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                cur += 1;
                if cur == line {
                    off = i + 1;
                    break;
                }
            }
        }
        if cur < line {
            return text.len();
        }
    }
    let rest = &text[off..];
    for (n, (i, c)) in rest.char_indices().enumerate() {
        if n as u64 + 1 >= column || c == '\n' {
            return off + i;
        }
    }
    text.len()
}

fn syntax_problem(text: &str, err: &serde_saphyr::Error) -> YamlProblem {
    let err = err.without_snippet();
    let message = plain_message(err);
    let span = match err.location() {
        Some(loc) if loc.line() > 0 => {
            let r = loc_range(text, &loc);
            if r.is_empty() {
                // Point at one character so the label is visible.
                let end = text[r.start..]
                    .chars()
                    .next()
                    .filter(|c| *c != '\n')
                    .map_or(r.start, |c| r.start + c.len_utf8());
                r.start..end
            } else {
                r
            }
        }
        _ => 0..0,
    };
    YamlProblem::Syntax {
        label: "the YAML parser stopped here".to_string(),
        message,
        span,
    }
}

/// The error message without serde-saphyr's own "at line X column Y" suffix
/// (the diagnostic shows the position itself).
fn plain_message(err: &serde_saphyr::Error) -> String {
    let msg = err.to_string();
    let msg = msg.lines().next().unwrap_or("").trim().to_string();
    strip_location_suffix(&msg)
}

fn strip_location_suffix(msg: &str) -> String {
    let mut s = msg.to_string();
    for marker in [" at line ", " at position ", " (line "] {
        if let Some(i) = s.find(marker) {
            s.truncate(i);
        }
    }
    let s = s.trim_end_matches([':', ',', ' ']).to_string();
    if s.is_empty() {
        msg.to_string()
    } else {
        s
    }
}

fn convert(text: &str, raw: Spanned<RawNode>, problems: &mut Vec<YamlProblem>) -> YNode {
    let span = loc_range(text, &raw.defined);
    let kind = match raw.value {
        RawNode::Map(entries) => {
            let mut out: Vec<(YNode, YNode)> = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let k = convert(text, k, problems);
                let v = convert(text, v, problems);
                if let Some(key) = key_identity(text, &k) {
                    if let Some((first, _)) = out
                        .iter()
                        .find(|(f, _)| key_identity(text, f).as_deref() == Some(key.as_str()))
                    {
                        problems.push(YamlProblem::DuplicateKey {
                            key,
                            span: k.span.clone(),
                            first: first.span.clone(),
                        });
                        continue;
                    }
                }
                out.push((k, v));
            }
            YKind::Map(out)
        }
        RawNode::Seq(items) => YKind::Seq(
            items
                .into_iter()
                .map(|i| convert(text, i, problems))
                .collect(),
        ),
        RawNode::Str(s) => {
            // Block scalars: the parser's span starts at the first content
            // line; include the `|` / `>` header and drop trailing breaks.
            if let Some(h) = super::scalar::block_header_before(text, span.start) {
                let end = text[..span.end].trim_end().len().max(h + 1);
                return YNode {
                    kind: YKind::Str(s),
                    span: h..end,
                };
            }
            YKind::Str(s)
        }
        RawNode::Int(i) => YKind::Int(i),
        RawNode::Float(f) => YKind::Float(f),
        RawNode::Bool(b) => YKind::Bool(b),
        RawNode::Null => YKind::Null,
    };
    let span = match &kind {
        YKind::Map(_) | YKind::Seq(_) => collection_extent(text, span, &kind),
        _ => span,
    };
    YNode { kind, span }
}

/// A collection's span: from its first token to the end of its last child
/// (and the closing bracket of a flow collection).
fn collection_extent(text: &str, span: Range<usize>, kind: &YKind) -> Range<usize> {
    let mut end = span.end;
    match kind {
        YKind::Map(es) => {
            for (k, v) in es {
                end = end.max(k.span.end).max(v.span.end);
            }
        }
        YKind::Seq(items) => {
            for i in items {
                end = end.max(i.span.end);
            }
        }
        _ => {}
    }
    let open = text.as_bytes().get(span.start).copied();
    let close = match open {
        Some(b'[') => Some(b']'),
        Some(b'{') => Some(b'}'),
        _ => None,
    };
    if let Some(close) = close {
        let bytes = text.as_bytes();
        let mut i = end.max(span.start + 1);
        let mut in_comment = false;
        while i < bytes.len() {
            let b = bytes[i];
            if in_comment {
                if b == b'\n' {
                    in_comment = false;
                }
            } else if b == close {
                end = i + 1;
                break;
            } else if b == b'#' {
                in_comment = true;
            } else if !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b',') {
                break;
            }
            i += 1;
        }
    }
    span.start..end.max(span.start)
}

/// The text of a scalar key (strings by value, other scalars by their source
/// text), `None` for collection keys.
pub fn key_text(text: &str, node: &YNode) -> Option<String> {
    match &node.kind {
        YKind::Str(s) => Some(s.clone()),
        YKind::Int(_) | YKind::Float(_) | YKind::Bool(_) | YKind::Null => {
            Some(text.get(node.span.clone()).unwrap_or("").to_string())
        }
        YKind::Map(_) | YKind::Seq(_) => None,
    }
}

fn key_identity(text: &str, node: &YNode) -> Option<String> {
    match &node.kind {
        YKind::Int(i) => Some(format!("\u{0}int:{i}")),
        _ => key_text(text, node),
    }
}

/// What serde-saphyr deserializes into (spans on every node).
#[derive(Debug)]
enum RawNode {
    Map(Vec<(Spanned<RawNode>, Spanned<RawNode>)>),
    Seq(Vec<Spanned<RawNode>>),
    Str(String),
    Int(i128),
    Float(f64),
    Bool(bool),
    Null,
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawNode;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawNode, E> {
        Ok(RawNode::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawNode, E> {
        Ok(RawNode::Int(i128::from(v)))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawNode, E> {
        Ok(RawNode::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawNode, E> {
        Ok(RawNode::Int(i128::from(v)))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawNode, E> {
        match i128::try_from(v) {
            Ok(i) => Ok(RawNode::Int(i)),
            Err(_) => Ok(RawNode::Float(v as f64)),
        }
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawNode, E> {
        Ok(RawNode::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawNode, E> {
        Ok(RawNode::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<RawNode, E> {
        Ok(RawNode::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<RawNode, E> {
        Ok(RawNode::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawNode, D::Error> {
        RawNode::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawNode, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<RawNode>>()? {
            items.push(item);
        }
        Ok(RawNode::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawNode, A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = map.next_key::<Spanned<RawNode>>()? {
            let v = map.next_value::<Spanned<RawNode>>()?;
            entries.push((k, v));
        }
        Ok(RawNode::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Vec<(YNode, YNode)> {
        match parse(text) {
            Ok((
                YNode {
                    kind: YKind::Map(es),
                    ..
                },
                p,
            )) if p.is_empty() => es,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scalar_spans_are_tokens() {
        let t = "a: 1\nb: \"x\\ny\"\nc: 'it''s'\nd: |\n  l1\n  l2\ne: plain\n  more\n";
        let es = root(t);
        let spans: Vec<&str> = es.iter().map(|(_, v)| &t[v.span.clone()]).collect();
        assert_eq!(
            spans,
            [
                "1",
                "\"x\\ny\"",
                "'it''s'",
                "|\n  l1\n  l2",
                "plain\n  more"
            ]
        );
        assert_eq!(es[1].1.kind, YKind::Str("x\ny".into()));
        assert_eq!(es[2].1.kind, YKind::Str("it's".into()));
        assert_eq!(es[3].1.kind, YKind::Str("l1\nl2\n".into()));
        assert_eq!(es[4].1.kind, YKind::Str("plain more".into()));
    }

    #[test]
    fn collection_spans() {
        let t = "x: [a, {k: v} ]\nrules:\n  - id: r\n    effect: allow\n";
        let es = root(t);
        assert_eq!(&t[es[0].1.span.clone()], "[a, {k: v} ]");
        let YKind::Seq(items) = &es[1].1.kind else {
            panic!()
        };
        assert_eq!(&t[items[0].span.clone()], "id: r\n    effect: allow");
    }

    #[test]
    fn scalar_resolution_close_to_serde_yaml() {
        let t = "a: yes\nb: 0o17\nc: 1.0\nd: ~\ne:\nf: 0755\ng: 1_000\nh: .inf\ni: true\n";
        let kinds: Vec<YKind> = root(t).into_iter().map(|(_, v)| v.kind).collect();
        assert_eq!(
            kinds,
            [
                YKind::Str("yes".into()),
                YKind::Int(15),
                YKind::Float(1.0),
                YKind::Null,
                YKind::Null,
                YKind::Str("0755".into()),
                YKind::Str("1_000".into()),
                YKind::Float(f64::INFINITY),
                YKind::Bool(true),
            ]
        );
    }

    #[test]
    fn duplicate_keys_have_both_spans() {
        let (_, p) = parse("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n").expect("parses");
        assert_eq!(
            p,
            [
                YamlProblem::DuplicateKey {
                    key: "c".into(),
                    span: 17..18,
                    first: 10..11
                },
                YamlProblem::DuplicateKey {
                    key: "a".into(),
                    span: 22..23,
                    first: 0..1
                },
            ]
        );
    }

    #[test]
    fn syntax_errors_point_at_the_token() {
        let e = parse("a: [1, 2\n").unwrap_err();
        assert_eq!(
            e,
            YamlProblem::Syntax {
                message: "unclosed bracket '['".into(),
                label: "the YAML parser stopped here".into(),
                span: 3..4
            }
        );
        let YamlProblem::Syntax { span, .. } = parse("x: 1\na: b: c\n").unwrap_err() else {
            panic!()
        };
        assert_eq!(span, 9..10);
        let YamlProblem::Syntax { span, .. } = parse("key: \"unterminated\n").unwrap_err() else {
            panic!()
        };
        assert_eq!(span, 5..6);
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut t = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let refs: Vec<String> = (0..10).map(|_| format!("*a{}", i - 1)).collect();
            t.push_str(&format!("a{i}: &a{i} [{}]\n", refs.join(", ")));
        }
        let start = std::time::Instant::now();
        let e = parse(&t).unwrap_err();
        assert!(matches!(e, YamlProblem::Syntax { .. }), "{e:?}");
        assert!(start.elapsed().as_secs() < 5);
    }

    #[test]
    fn small_aliases_still_work() {
        let es = root("a: &x [1, 2]\nb: *x\n");
        assert_eq!(es[0].1.kind, es[1].1.kind);
    }

    #[test]
    fn offset_of_line_col_counts_characters() {
        assert_eq!(offset_of_line_col("ab\néx\n", 2, 2), 5);
        assert_eq!(offset_of_line_col("ab", 9, 1), 2);
    }
}

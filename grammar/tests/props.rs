//! Property tests: the parser never panics and reports sane spans, and
//! printed trees parse back to themselves.

use kvlar_grammar::ast::{BinOp, Expr, ExprKind, Literal, Path, PathRoot, QuantKind, Segment};
use kvlar_grammar::{parse, to_source};
use proptest::prelude::*;

/// Checks that every span of `e` is a valid range on char boundaries of `src`.
fn check_spans(src: &str, e: &Expr) {
    let mut copy = e.clone();
    let mut spans = Vec::new();
    copy.map_spans(&mut |s| {
        spans.push(s.clone());
        s.clone()
    });
    for s in spans {
        assert!(src.get(s.clone()).is_some(), "span {s:?} of {src:?}");
        assert!(s.start <= s.end && s.end <= e.span.end && s.start >= e.span.start);
    }
}

fn strip(mut e: Expr) -> Expr {
    e.map_spans(&mut |_| 0..0);
    e
}

fn check_input(src: &str) {
    match parse(src) {
        Ok(e) => {
            check_spans(src, &e);
            let printed = to_source(&e);
            match parse(&printed) {
                Ok(again) => assert_eq!(strip(again), strip(e), "{src:?} -> {printed:?}"),
                Err(err) => assert_eq!(err.message, "expression nested too deeply"),
            }
        }
        Err(err) => {
            assert!(
                src.get(err.span.clone()).is_some(),
                "error span {:?} of {src:?}",
                err.span
            );
            assert!(!err.message.is_empty());
            assert!(!err.label.is_empty());
        }
    }
}

/// Fragments that exercise the grammar's corners when glued together.
const FRAGMENTS: &[&str] = &[
    "a",
    "x",
    "args",
    "tool",
    " ",
    "\n",
    ".",
    "b",
    "0",
    "12",
    "-",
    "1.5",
    "e3",
    "&&",
    "||",
    "!",
    "not",
    "and",
    "or",
    "in",
    "not in",
    "==",
    "!=",
    "<",
    "<=",
    ">=",
    "=~",
    "!~",
    "contains",
    "under",
    "glob",
    "(",
    ")",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "'",
    "\\",
    "/",
    "i",
    "s",
    "m",
    "u{",
    "}",
    "any",
    "all",
    "len",
    "true",
    "null",
    "é",
    "\u{1F600}",
    "=",
    "&",
    "\t",
];

fn fragments() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40).prop_map(|v| v.concat())
}

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "contains",
    "startswith",
    "endswith",
    "glob",
    "under",
    "true",
    "false",
    "null",
];

fn ident() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,5}".prop_filter("not a keyword or reserved name", |s| {
        !KEYWORDS.contains(&s.as_str())
            && !matches!(
                s.as_str(),
                "tool" | "agent" | "action" | "args" | "any" | "all"
            )
    })
}

fn e(kind: ExprKind) -> Expr {
    Expr { kind, span: 0..0 }
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        any::<String>().prop_map(Literal::Str),
        any::<i64>().prop_map(Literal::Int),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Literal::Float),
        any::<bool>().prop_map(Literal::Bool),
        Just(Literal::Null),
    ]
}

fn regex() -> impl Strategy<Value = ExprKind> {
    let piece = prop_oneof![
        "[^\\\\\n\r]",
        Just("\\s".to_string()),
        Just("\\\\".to_string()),
        Just("\\d".to_string()),
        Just("/".to_string()),
    ];
    (
        prop::collection::vec(piece, 0..8),
        prop::sample::subsequence(vec!['i', 's', 'm'], 0..=3),
    )
        .prop_map(|(pieces, flags)| ExprKind::Regex {
            pattern: pieces.concat(),
            flags: flags.into_iter().collect(),
        })
}

fn path() -> impl Strategy<Value = Path> {
    let root = prop_oneof![
        Just(PathRoot::Tool),
        Just(PathRoot::Agent),
        Just(PathRoot::Action),
        Just(PathRoot::Args),
        ident().prop_map(PathRoot::Var),
    ];
    let segment = prop_oneof![
        any::<String>().prop_map(|k| Segment::Key(k, 0..0)),
        "[a-z0-9_-]{1,6}".prop_map(|k| Segment::Key(k, 0..0)),
        any::<u64>().prop_map(|i| Segment::Index(i, 0..0)),
    ];
    (root, prop::collection::vec(segment, 0..4)).prop_map(|(root, segments)| Path {
        root,
        root_span: 0..0,
        segments,
    })
}

fn binop() -> impl Strategy<Value = BinOp> {
    prop::sample::select(vec![
        BinOp::Eq,
        BinOp::Ne,
        BinOp::Lt,
        BinOp::Le,
        BinOp::Gt,
        BinOp::Ge,
        BinOp::Match,
        BinOp::NotMatch,
        BinOp::In,
        BinOp::NotIn,
        BinOp::Contains,
        BinOp::StartsWith,
        BinOp::EndsWith,
        BinOp::Glob,
        BinOp::Under,
    ])
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        literal().prop_map(|l| e(ExprKind::Lit(l))),
        regex().prop_map(e),
        path().prop_map(|p| e(ExprKind::Path(p))),
    ];
    leaf.prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|x| e(ExprKind::Not(Box::new(x)))),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| e(ExprKind::And(Box::new(a), Box::new(b)))),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| e(ExprKind::Or(Box::new(a), Box::new(b)))),
            (binop(), inner.clone(), inner.clone()).prop_map(|(op, a, b)| e(ExprKind::Binary {
                op,
                op_span: 0..0,
                lhs: Box::new(a),
                rhs: Box::new(b),
            })),
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| e(ExprKind::List(v))),
            (ident(), prop::collection::vec(inner.clone(), 0..3)).prop_map(|(name, args)| e(
                ExprKind::Call {
                    name,
                    name_span: 0..0,
                    args,
                }
            )),
            (
                prop_oneof![Just(QuantKind::Any), Just(QuantKind::All)],
                ident(),
                inner.clone(),
                inner,
            )
                .prop_map(|(kind, var, over, body)| e(ExprKind::Quant {
                    kind,
                    var,
                    var_span: 0..0,
                    over: Box::new(over),
                    body: Box::new(body),
                })),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_strings_never_panic(src in any::<String>()) {
        check_input(&src);
    }

    #[test]
    fn glued_fragments_never_panic(src in fragments()) {
        check_input(&src);
    }

    #[test]
    fn printed_trees_parse_back(tree in expr()) {
        let printed = to_source(&tree);
        let parsed = parse(&printed)
            .unwrap_or_else(|err| panic!("{printed:?} does not parse: {err:?}"));
        check_spans(&printed, &parsed);
        prop_assert_eq!(strip(parsed), tree, "printed as {:?}", printed);
    }
}

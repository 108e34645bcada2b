//! Exact AST shapes and spans for the expression parser, and its errors.

use kvlar_grammar::ast::{
    BinOp, Expr, ExprKind, Literal, Path, PathRoot, QuantKind, Segment, Span,
};
use kvlar_grammar::{parse, to_source, ParseError};

// ---- constructors ----------------------------------------------------------

fn e(kind: ExprKind, span: Span) -> Expr {
    Expr { kind, span }
}

fn b(x: Expr) -> Box<Expr> {
    Box::new(x)
}

fn var(name: &str, span: Span) -> Expr {
    let kind = ExprKind::Path(Path {
        root: PathRoot::Var(name.to_string()),
        root_span: span.clone(),
        segments: vec![],
    });
    e(kind, span)
}

fn path(root: PathRoot, root_span: Span, segments: Vec<Segment>, span: Span) -> Expr {
    e(
        ExprKind::Path(Path {
            root,
            root_span,
            segments,
        }),
        span,
    )
}

fn key(k: &str, span: Span) -> Segment {
    Segment::Key(k.to_string(), span)
}

fn bin(op: BinOp, op_span: Span, lhs: Expr, rhs: Expr, span: Span) -> Expr {
    e(
        ExprKind::Binary {
            op,
            op_span,
            lhs: b(lhs),
            rhs: b(rhs),
        },
        span,
    )
}

fn and(l: Expr, r: Expr, span: Span) -> Expr {
    e(ExprKind::And(b(l), b(r)), span)
}

fn or(l: Expr, r: Expr, span: Span) -> Expr {
    e(ExprKind::Or(b(l), b(r)), span)
}

fn not(x: Expr, span: Span) -> Expr {
    e(ExprKind::Not(b(x)), span)
}

fn int(i: i64, span: Span) -> Expr {
    e(ExprKind::Lit(Literal::Int(i)), span)
}

fn float(f: f64, span: Span) -> Expr {
    e(ExprKind::Lit(Literal::Float(f)), span)
}

fn string(s: &str, span: Span) -> Expr {
    e(ExprKind::Lit(Literal::Str(s.to_string())), span)
}

fn ok(src: &str) -> Expr {
    match parse(src) {
        Ok(x) => x,
        Err(err) => panic!("{src:?} failed to parse: {err:?}"),
    }
}

fn err(src: &str) -> ParseError {
    match parse(src) {
        Ok(x) => panic!("{src:?} parsed unexpectedly: {x:?}"),
        Err(err) => err,
    }
}

// ---- operators and precedence ----------------------------------------------

#[test]
fn every_test_operator() {
    let ops = [
        ("==", BinOp::Eq),
        ("!=", BinOp::Ne),
        ("<", BinOp::Lt),
        ("<=", BinOp::Le),
        (">", BinOp::Gt),
        (">=", BinOp::Ge),
        ("=~", BinOp::Match),
        ("!~", BinOp::NotMatch),
        ("in", BinOp::In),
        ("not in", BinOp::NotIn),
        ("contains", BinOp::Contains),
        ("startswith", BinOp::StartsWith),
        ("endswith", BinOp::EndsWith),
        ("glob", BinOp::Glob),
        ("under", BinOp::Under),
    ];
    for (text, op) in ops {
        let src = format!("x {text} y");
        let n = text.len();
        assert_eq!(
            ok(&src),
            bin(
                op,
                2..2 + n,
                var("x", 0..1),
                var("y", 3 + n..4 + n),
                0..4 + n
            ),
            "{src}"
        );
        assert_eq!(op.as_str(), text);
    }
}

#[test]
fn operators_without_spaces() {
    assert_eq!(
        ok("a<=-3"),
        bin(BinOp::Le, 1..3, var("a", 0..1), int(-3, 3..5), 0..5)
    );
    assert_eq!(
        ok("a!~/x/"),
        bin(
            BinOp::NotMatch,
            1..3,
            var("a", 0..1),
            e(
                ExprKind::Regex {
                    pattern: "x".into(),
                    flags: "".into()
                },
                3..6
            ),
            0..6
        )
    );
}

#[test]
fn not_in_is_one_operator_token() {
    assert_eq!(
        ok("a not   in b"),
        bin(BinOp::NotIn, 2..10, var("a", 0..1), var("b", 11..12), 0..12)
    );
    assert_eq!(
        ok("a not\n\tin b"),
        bin(BinOp::NotIn, 2..9, var("a", 0..1), var("b", 10..11), 0..11)
    );
    // Prefix `not` applies to the whole test.
    assert_eq!(
        ok("not a in b"),
        not(
            bin(BinOp::In, 6..8, var("a", 4..5), var("b", 9..10), 4..10),
            0..10
        )
    );
}

#[test]
fn precedence_or_and_not_test() {
    assert_eq!(
        ok("a || b && !c == d"),
        or(
            var("a", 0..1),
            and(
                var("b", 5..6),
                not(
                    bin(
                        BinOp::Eq,
                        13..15,
                        var("c", 11..12),
                        var("d", 16..17),
                        11..17
                    ),
                    10..17
                ),
                5..17
            ),
            0..17
        )
    );
    assert_eq!(
        ok("a && b || c"),
        or(
            and(var("a", 0..1), var("b", 5..6), 0..6),
            var("c", 10..11),
            0..11
        )
    );
}

#[test]
fn keyword_spellings() {
    assert_eq!(
        ok("a or b and not c"),
        or(
            var("a", 0..1),
            and(var("b", 5..6), not(var("c", 15..16), 11..16), 5..16),
            0..16
        )
    );
    assert_eq!(
        ok("not(a)"),
        not(path(PathRoot::Var("a".into()), 4..5, vec![], 3..6), 0..6)
    );
    assert_eq!(ok("!!a"), not(not(var("a", 2..3), 1..3), 0..3));
}

#[test]
fn and_or_are_left_associative() {
    assert_eq!(
        ok("a && b && c"),
        and(
            and(var("a", 0..1), var("b", 5..6), 0..6),
            var("c", 10..11),
            0..11
        )
    );
    assert_eq!(
        ok("a or b || c"),
        or(
            or(var("a", 0..1), var("b", 5..6), 0..6),
            var("c", 10..11),
            0..11
        )
    );
}

#[test]
fn parentheses_group_and_are_part_of_the_span() {
    assert_eq!(
        ok("(a || b) && c"),
        and(
            or(var("a", 1..2), var("b", 6..7), 0..8),
            var("c", 12..13),
            0..13
        )
    );
    assert_eq!(
        ok(" ( ( x ) ) "),
        path(PathRoot::Var("x".into()), 5..6, vec![], 1..10)
    );
    assert_eq!(
        ok("(a) == (1)"),
        bin(
            BinOp::Eq,
            4..6,
            path(PathRoot::Var("a".into()), 1..2, vec![], 0..3),
            int(1, 7..10),
            0..10
        )
    );
}

#[test]
fn whitespace_and_newlines() {
    assert_eq!(
        ok("\n  a\n  &&\tb\r\n"),
        and(var("a", 3..4), var("b", 10..11), 3..11)
    );
}

// ---- paths -------------------------------------------------------------------

#[test]
fn path_roots() {
    for (src, root) in [
        ("tool", PathRoot::Tool),
        ("agent", PathRoot::Agent),
        ("action", PathRoot::Action),
        ("args", PathRoot::Args),
        ("x", PathRoot::Var("x".into())),
        ("any", PathRoot::Var("any".into())),
        ("_tmp1", PathRoot::Var("_tmp1".into())),
    ] {
        let n = src.len();
        assert_eq!(ok(src), path(root, 0..n, vec![], 0..n), "{src}");
    }
}

#[test]
fn path_with_every_segment_kind() {
    let src = r#"args.a["b.c"][0].in['q\'']"#;
    assert_eq!(
        ok(src),
        path(
            PathRoot::Args,
            0..4,
            vec![
                key("a", 4..6),
                key("b.c", 6..13),
                Segment::Index(0, 13..16),
                key("in", 16..19),
                key("q'", 19..26),
            ],
            0..26
        )
    );
    assert_eq!(
        ok(r#"args[ "x y" ][ 12 ]"#),
        path(
            PathRoot::Args,
            0..4,
            vec![key("x y", 4..13), Segment::Index(12, 13..19)],
            0..19
        )
    );
}

#[test]
fn dotted_keys_allow_keywords_digits_and_dashes() {
    assert_eq!(
        ok("args.not == args.dry-run.0"),
        bin(
            BinOp::Eq,
            9..11,
            path(PathRoot::Args, 0..4, vec![key("not", 4..8)], 0..8),
            path(
                PathRoot::Args,
                12..16,
                vec![key("dry-run", 16..24), key("0", 24..26)],
                12..26
            ),
            0..26
        )
    );
    assert_eq!(
        ok("x.name"),
        path(
            PathRoot::Var("x".into()),
            0..1,
            vec![key("name", 1..6)],
            0..6
        )
    );
}

#[test]
fn keywords_need_a_word_boundary() {
    assert_eq!(
        ok("android && notify || inx"),
        or(
            and(var("android", 0..7), var("notify", 11..17), 0..17),
            var("inx", 21..24),
            0..24
        )
    );
    assert_eq!(
        ok("truex == nullable"),
        bin(
            BinOp::Eq,
            6..8,
            var("truex", 0..5),
            var("nullable", 9..17),
            0..17
        )
    );
}

// ---- literals ------------------------------------------------------------------

#[test]
fn string_escapes() {
    assert_eq!(
        ok(r#""\" \' \\ \n \r \t \0 \u{1F600} \u{41}""#),
        string("\" ' \\ \n \r \t \0 \u{1F600} A", 0..39)
    );
    assert_eq!(ok(r#"'a"b'"#), string("a\"b", 0..5));
    assert_eq!(ok("'é'"), string("é", 0..4));
    assert_eq!(ok("\"\""), string("", 0..2));
    assert_eq!(ok("\"line\nbreak\""), string("line\nbreak", 0..12));
}

#[test]
fn numbers() {
    assert_eq!(ok("12"), int(12, 0..2));
    assert_eq!(ok("-3"), int(-3, 0..2));
    assert_eq!(ok("-9223372036854775808"), int(i64::MIN, 0..20));
    assert_eq!(ok("9223372036854775807"), int(i64::MAX, 0..19));
    assert_eq!(ok("1.5"), float(1.5, 0..3));
    assert_eq!(ok("-0.25"), float(-0.25, 0..5));
    assert_eq!(ok("2e3"), float(2000.0, 0..3));
    assert_eq!(ok("1.5E-3"), float(0.0015, 0..6));
    assert_eq!(
        ok("x == -3"),
        bin(BinOp::Eq, 2..4, var("x", 0..1), int(-3, 5..7), 0..7)
    );
}

#[test]
fn booleans_and_null() {
    assert_eq!(ok("true"), e(ExprKind::Lit(Literal::Bool(true)), 0..4));
    assert_eq!(ok("false"), e(ExprKind::Lit(Literal::Bool(false)), 0..5));
    assert_eq!(ok("null"), e(ExprKind::Lit(Literal::Null), 0..4));
}

#[test]
fn lists() {
    assert_eq!(
        ok(r#"[1, "a", x,]"#),
        e(
            ExprKind::List(vec![int(1, 1..2), string("a", 4..7), var("x", 9..10)]),
            0..12
        )
    );
    assert_eq!(ok("[]"), e(ExprKind::List(vec![]), 0..2));
    assert_eq!(ok("[ ]"), e(ExprKind::List(vec![]), 0..3));
    assert_eq!(
        ok("tool in [[1], []]"),
        bin(
            BinOp::In,
            5..7,
            path(PathRoot::Tool, 0..4, vec![], 0..4),
            e(
                ExprKind::List(vec![
                    e(ExprKind::List(vec![int(1, 10..11)]), 9..12),
                    e(ExprKind::List(vec![]), 14..16),
                ]),
                8..17
            ),
            0..17
        )
    );
}

#[test]
fn regex_literals() {
    let src = r"args.cmd =~ /rm\s+\/tmp/is";
    assert_eq!(
        ok(src),
        bin(
            BinOp::Match,
            9..11,
            path(PathRoot::Args, 0..4, vec![key("cmd", 4..8)], 0..8),
            e(
                ExprKind::Regex {
                    pattern: r"rm\s+/tmp".into(),
                    flags: "is".into()
                },
                12..26
            ),
            0..26
        )
    );
    // `\\` stays as it is, so `\\/` is a backslash pair and then the end.
    assert_eq!(
        ok(r"/a\\/m"),
        e(
            ExprKind::Regex {
                pattern: r"a\\".into(),
                flags: "m".into()
            },
            0..6
        )
    );
    assert_eq!(
        ok(r#"/[\/'"]/smi"#),
        e(
            ExprKind::Regex {
                pattern: r#"[/'"]"#.into(),
                flags: "smi".into()
            },
            0..11
        )
    );
    assert_eq!(
        ok("//"),
        e(
            ExprKind::Regex {
                pattern: "".into(),
                flags: "".into()
            },
            0..2
        )
    );
}

// ---- calls and quantifiers -----------------------------------------------------

#[test]
fn calls() {
    assert_eq!(
        ok("len(args.items) > 3"),
        bin(
            BinOp::Gt,
            16..17,
            e(
                ExprKind::Call {
                    name: "len".into(),
                    name_span: 0..3,
                    args: vec![path(PathRoot::Args, 4..8, vec![key("items", 8..14)], 4..14)],
                },
                0..15
            ),
            int(3, 18..19),
            0..19
        )
    );
    assert_eq!(
        ok("f()"),
        e(
            ExprKind::Call {
                name: "f".into(),
                name_span: 0..1,
                args: vec![]
            },
            0..3
        )
    );
    assert_eq!(
        ok("f (a, b || c,)"),
        e(
            ExprKind::Call {
                name: "f".into(),
                name_span: 0..1,
                args: vec![var("a", 3..4), or(var("b", 6..7), var("c", 11..12), 6..12)]
            },
            0..14
        )
    );
}

#[test]
fn nested_quantifiers() {
    let src = r#"any(x in args.items: all(y in x.tags: y != "z"))"#;
    let inner = e(
        ExprKind::Quant {
            kind: QuantKind::All,
            var: "y".into(),
            var_span: 25..26,
            over: b(path(
                PathRoot::Var("x".into()),
                30..31,
                vec![key("tags", 31..36)],
                30..36,
            )),
            body: b(bin(
                BinOp::Ne,
                40..42,
                var("y", 38..39),
                string("z", 43..46),
                38..46,
            )),
        },
        21..47,
    );
    assert_eq!(
        ok(src),
        e(
            ExprKind::Quant {
                kind: QuantKind::Any,
                var: "x".into(),
                var_span: 4..5,
                over: b(path(
                    PathRoot::Args,
                    9..13,
                    vec![key("items", 13..19)],
                    9..19
                )),
                body: b(inner),
            },
            0..48
        )
    );
}

#[test]
fn quantifier_over_is_an_operand() {
    assert_eq!(
        ok("all(v in [1, 2]: v in (args.ok))"),
        e(
            ExprKind::Quant {
                kind: QuantKind::All,
                var: "v".into(),
                var_span: 4..5,
                over: b(e(
                    ExprKind::List(vec![int(1, 10..11), int(2, 13..14)]),
                    9..15
                )),
                body: b(bin(
                    BinOp::In,
                    19..21,
                    var("v", 17..18),
                    path(PathRoot::Args, 23..27, vec![key("ok", 27..30)], 22..31),
                    17..31
                )),
            },
            0..32
        )
    );
}

// ---- printing ------------------------------------------------------------------

#[test]
fn to_source_is_canonical() {
    let cases = [
        ("a or b and not c", "a || b && !c"),
        ("not a in b", "!(a in b)"),
        ("(a || b) && !(c && d)", "(a || b) && !(c && d)"),
        ("a || (b || c)", "a || (b || c)"),
        ("(a || b) || c", "a || b || c"),
        (
            r#"args['x.y'][2].z == 'it\'s'"#,
            r#"args["x.y"][2].z == "it's""#,
        ),
        (r"x =~ /a\/b\\/i", r"x =~ /a\/b\\/i"),
        ("[1,2.0,-3,true,null,]", "[1, 2.0, -3, true, null]"),
        ("any(x in (args.l):f(x,1))", "any(x in args.l: f(x, 1))"),
        ("x in (a == b)", "x in (a == b)"),
        ("'\\u{7}\\0'", r#""\u{7}\0""#),
    ];
    for (src, want) in cases {
        let printed = to_source(&ok(src));
        assert_eq!(printed, want, "{src}");
    }
}

// ---- errors --------------------------------------------------------------------

#[track_caller]
fn assert_err(src: &str, message: &str, span: Span) {
    let error = err(src);
    assert_eq!(error.message, message, "{src}: {error:?}");
    assert_eq!(error.span, span, "{src}: {error:?}");
    assert_eq!(error.to_string(), message);
}

#[test]
fn error_operand_after_operator() {
    assert_err("a && ", "expected an operand after '&&'", 5..5);
    assert_err("a and", "expected an operand after 'and'", 5..5);
    assert_err("a ||)", "expected an operand after '||'", 4..5);
    assert_err("x == é", "expected an operand after '=='", 5..7);
    assert_err("a not in ", "expected an operand after 'not in'", 9..9);
    assert_err("any(x in :x)", "expected an operand after 'in'", 9..10);
    assert_err("!", "expected an operand after '!'", 1..1);
    let e = err("a && ");
    assert_eq!(e.label, "unexpected end of input");
    assert_eq!(e.help, None);
}

#[test]
fn error_expected_lists() {
    assert_err(
        "(a",
        "expected `)` or an operator, found end of input",
        2..2,
    );
    assert_err(
        "a b",
        "expected an operator or end of input, found `b`",
        2..3,
    );
    assert_err("f(a,,b)", "expected an operand or `)`, found `,`", 4..5);
    assert_err("args.", "expected a key name, found end of input", 5..5);
    assert_err(
        "args[",
        "expected a string or an index, found end of input",
        5..5,
    );
    assert_err("any(x in L c)", "expected `:`, found `c`", 11..12);
    assert_err("any(1)", "expected a variable name, found `1`", 4..5);
    assert_err(
        "[1 2]",
        "expected one of: `,`, `]`, an operator, found `2`",
        3..4,
    );
    assert_err(")", "expected an operand, found `)`", 0..1);
    assert_err(
        "a == \"x\" \"y\"",
        "expected an operator or end of input, found the string \"y\"",
        9..12,
    );
}

#[test]
fn error_help_for_common_mistakes() {
    let e = err("a = b");
    assert_eq!(e.message, "expected an operator or end of input, found `=`");
    assert_eq!(e.span, 2..3);
    assert_eq!(e.help.as_deref(), Some("use `==` to compare values"));

    let e = err("a & b");
    assert_eq!(e.span, 2..3);
    assert_eq!(
        e.help.as_deref(),
        Some("use `&&` (or `and`) to require both conditions")
    );

    let e = err("in == 1");
    assert_eq!(e.message, "expected an operand, found `in`");
    assert_eq!(e.span, 0..2);
    assert!(e
        .help
        .unwrap()
        .starts_with("keywords cannot be used as names"));

    let e = err("x == - 3");
    assert_eq!(e.message, "expected an operand after '=='");
    assert_eq!(e.span, 5..6);
    assert_eq!(
        e.help.as_deref(),
        Some("there is no minus operator; a negative number is written without a space, e.g. -3")
    );
}

#[test]
fn error_unterminated_string() {
    assert_err(r#"args.x == "abc"#, "unterminated string literal", 10..14);
    assert_err("tool == 'a", "unterminated string literal", 8..10);
    assert_err("'it's'", "unterminated string literal", 5..6);
    assert_err(r#""abc\"#, "unterminated string literal", 0..5);
    assert_err(r#""\u{12"#, "unterminated string literal", 0..6);
}

#[test]
fn error_bad_escapes() {
    let e = err(r#"x == "a\qb""#);
    assert_eq!(e.message, r"unknown escape sequence \q");
    assert_eq!(e.span, 7..9);
    assert_eq!(e.label, "unknown escape");
    assert_err(r#""\é""#, r"unknown escape sequence \é", 1..4);
    let e = err(r#"x == "\s+""#);
    assert_eq!(e.span, 6..8);
    assert!(e.help.unwrap().contains("regex literal"));
    assert_err(
        r#""\u{D800}""#,
        r"invalid unicode code point \u{D800}",
        1..9,
    );
    assert_err(
        r#""\u{110000}""#,
        r"invalid unicode code point \u{110000}",
        1..11,
    );
    assert_err(r#""\u{}""#, "malformed unicode escape", 1..5);
    assert_err(r#""\u{1234567}""#, "malformed unicode escape", 1..12);
    assert_err(r#""\u41""#, "malformed unicode escape", 1..3);
    assert_err(r#""\u{4g}""#, "malformed unicode escape", 1..5);
}

#[test]
fn error_regex() {
    assert_err("x =~ /abc", "unterminated regex literal", 5..9);
    assert_err(r"x =~ /a\/", "unterminated regex literal", 5..9);
    assert_err("x =~ /a\nb/", "unterminated regex literal", 5..7);
    let e = err("x =~ /a/x");
    assert_eq!(e.message, "unknown regex flag 'x'");
    assert_eq!(e.span, 8..9);
    assert_eq!(e.help.as_deref(), Some("allowed flags are i, s, m"));
    assert_err("x =~ /a/ii", "duplicate regex flag 'i'", 9..10);
    assert_err("x =~ /a/s1", "unknown regex flag '1'", 9..10);
}

#[test]
fn error_chained_comparisons() {
    let e = err("a == b == c");
    assert_eq!(
        e.message,
        "comparison operators cannot be chained; add parentheses"
    );
    assert_eq!(e.span, 7..9);
    assert_eq!(e.label, "second operator `==` in a chain");
    assert_err(
        "1 < x not in y",
        "comparison operators cannot be chained; add parentheses",
        6..12,
    );
}

#[test]
fn error_numbers_out_of_range() {
    assert_err(
        "99999999999999999999",
        "integer literal out of range",
        0..20,
    );
    assert_err(
        "x == -9223372036854775809",
        "integer literal out of range",
        5..25,
    );
    assert_err("1e999", "float literal out of range", 0..5);
    assert_err("args[18446744073709551616]", "index out of range", 5..25);
}

#[test]
fn error_empty_expression() {
    assert_err("", "empty expression", 0..0);
    assert_err(" \n\t", "empty expression", 0..3);
}

#[test]
fn error_reserved_quantifier_variable() {
    assert_err(
        "any(args in L: true)",
        "`args` cannot be used as a quantifier variable",
        4..8,
    );
}

#[test]
fn error_nesting_limits() {
    let deep = format!("{}a{}", "(".repeat(200), ")".repeat(200));
    assert_err(&deep, "expression nested too deeply", 128..129);
    let deep_list = format!("x in {}1{}", "[".repeat(129), "]".repeat(129));
    assert_err(&deep_list, "expression nested too deeply", 133..134);
    // 128 levels are fine.
    let ok_deep = format!("{}a{}", "(".repeat(128), ")".repeat(128));
    assert_eq!(
        ok(&ok_deep),
        path(PathRoot::Var("a".into()), 128..129, vec![], 0..257)
    );

    // AST depth: the 257th level (counting from the leaf) is rejected.
    let nots = format!("{}a", "!".repeat(300));
    assert_err(&nots, "expression nested too deeply", 44..301);
    let chain = vec!["a"; 300].join(" && ");
    let e = err(&chain);
    assert_eq!(e.message, "expression nested too deeply");
    assert_eq!(e.span, 0..(256 * 5 + 1));
    // 256 `&&` terms (depth 256) still parse.
    assert!(parse(&vec!["a"; 256].join(" && ")).is_ok());
}

#[test]
fn error_too_complex() {
    let huge = format!("[{}]", vec!["1"; 200_000].join(","));
    let e = err(&huge);
    assert_eq!(e.message, "expression is too complex to parse");
    assert_eq!(e.span, 0..huge.len());
}

#[test]
fn error_at_end_of_input_is_empty_span() {
    for src in ["a ==", "(", "f(x", "[1,", "any(x in y:", "not"] {
        let e = err(src);
        assert_eq!(e.span, src.len()..src.len(), "{src}: {e:?}");
        assert!(e.label.contains("end of input"), "{src}: {e:?}");
    }
}

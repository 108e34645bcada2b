//! Every kind of load error: exact `file:line:column` and the rendered
//! diagnostic (insta snapshots in `tests/snapshots/`).

use std::path::{Path, PathBuf};

use kvlar_compiler::ast::{DefaultOutcome, Effect, KvOp};
use kvlar_compiler::diagnostic::{render, CompileError, Failure};
use kvlar_compiler::load::{load_files, load_str};
use kvlar_compiler::SourceMap;

const HEAD: &str = "name: p\ndescription: d\nversion: \"1\"\n";

fn errors(text: &str) -> Vec<CompileError> {
    let mut sources = SourceMap::new();
    match load_str(
        "policy.yaml",
        text,
        Path::new("tests/fixtures"),
        &mut sources,
    ) {
        Ok(set) => panic!("expected errors, got {set:?}"),
        Err(e) => e,
    }
}

fn one(text: &str) -> CompileError {
    let mut e = errors(text);
    assert_eq!(e.len(), 1, "{:#?}", e);
    e.remove(0)
}

fn at(e: &CompileError) -> Option<(String, usize, usize)> {
    e.line_col()
}

fn pos(file: &str, line: usize, col: usize) -> Option<(String, usize, usize)> {
    Some((file.to_string(), line, col))
}

#[test]
fn yaml_syntax_error() {
    let e = one(&format!(
        "{HEAD}rules:\n  - id: a\n    effect: {{type: deny, reason: x\n  - id: b\n"
    ));
    assert!(matches!(e, CompileError::YamlSyntax { .. }));
    assert_eq!(at(&e), pos("policy.yaml", 7, 7));
    insta::assert_snapshot!(render(&e));
}

#[test]
fn duplicate_key() {
    let e = one(&format!(
        "{HEAD}rules:\n  - id: a\n    effect: allow\n    id: b\n"
    ));
    assert!(matches!(e, CompileError::DuplicateKey { .. }));
    assert_eq!(at(&e), pos("policy.yaml", 7, 5));
    insta::assert_snapshot!(render(&e));
}

#[test]
fn unknown_key_with_did_you_mean() {
    let e = one(&format!(
        "{HEAD}rules:\n  - id: a\n    match_onn:\n      resources: [bash]\n    effect: allow\n"
    ));
    let CompileError::UnknownKey { help, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(help.starts_with("did you mean `match_on`?"), "{help}");
    assert_eq!(at(&e), pos("policy.yaml", 6, 5));
    insta::assert_snapshot!(render(&e));
}

#[test]
fn missing_rule_id() {
    let e = one(&format!(
        "{HEAD}rules:\n  - description: no id\n    effect: allow\n"
    ));
    assert!(matches!(&e, CompileError::MissingKey { key, .. } if key == "id"));
    assert_eq!(at(&e), pos("policy.yaml", 5, 5));
    insta::assert_snapshot!(render(&e));
}

#[test]
fn missing_policy_keys() {
    let e = errors("name: p\nrules: []\n");
    let keys: Vec<String> = e
        .iter()
        .map(|e| match e {
            CompileError::MissingKey { key, .. } => key.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(keys, ["description", "version"]);
    assert_eq!(at(&e[0]), pos("policy.yaml", 1, 1));
}

#[test]
fn wrong_type_list_of_strings() {
    let e = one(&format!(
        "{HEAD}rules:\n  - id: a\n    tools: {{name: bash}}\n    effect: allow\n"
    ));
    assert_eq!(
        e.to_string(),
        "expected a list of strings for `tools`, found a mapping"
    );
    assert_eq!(at(&e), pos("policy.yaml", 6, 12));
    insta::assert_snapshot!(render(&e));
}

#[test]
fn unknown_operator() {
    let e = one(&format!(
        "{HEAD}rules:\n  - id: a\n    match_on:\n      conditions:\n        - field: mode\n          operator: equal\n          value: rw\n    effect: allow\n"
    ));
    let CompileError::UnknownOperator { help, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(help.starts_with("did you mean `equals`?"), "{help}");
    assert_eq!(at(&e), pos("policy.yaml", 9, 21));
    insta::assert_snapshot!(render(&e));
}

#[test]
fn unknown_effect() {
    let e = one(&format!(
        "{HEAD}rules:\n  - id: a\n    effect: denny\n    reason: no\n"
    ));
    let CompileError::UnknownEffect { help, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(help.starts_with("did you mean `deny`?"), "{help}");
    assert_eq!(at(&e), pos("policy.yaml", 6, 13));
    insta::assert_snapshot!(render(&e));
}

#[test]
fn unknown_effect_type_in_kvlar_form() {
    let e = one(&format!(
        "{HEAD}rules:\n  - id: a\n    effect:\n      type: alow\n"
    ));
    assert!(matches!(&e, CompileError::UnknownEffect { name, .. } if name == "alow"));
    assert_eq!(at(&e), pos("policy.yaml", 7, 13));
}

#[test]
fn deny_without_reason() {
    let e = one(&format!("{HEAD}rules:\n  - id: a\n    effect: deny\n"));
    assert!(matches!(&e, CompileError::MissingKey { key, .. } if key == "reason"));
    assert_eq!(at(&e), pos("policy.yaml", 6, 13));
    insta::assert_snapshot!(render(&e));
}

#[test]
fn require_approval_without_reason_in_kvlar_form() {
    let e = one(&format!(
        "{HEAD}rules:\n  - id: a\n    effect:\n      type: require_approval\n"
    ));
    assert!(matches!(&e, CompileError::MissingKey { key, .. } if key == "reason"));
    assert_eq!(at(&e), pos("policy.yaml", 7, 7));
}

#[test]
fn allow_with_reason() {
    let e = one(&format!(
        "{HEAD}rules:\n  - id: a\n    effect: allow\n    reason: fine\n"
    ));
    assert!(matches!(e, CompileError::InvalidValue { .. }));
    assert_eq!(at(&e), pos("policy.yaml", 7, 5));
    insta::assert_snapshot!(render(&e));
}

#[test]
fn empty_rule_id() {
    let e = one(&format!("{HEAD}rules:\n  - id: \"\"\n    effect: allow\n"));
    assert!(matches!(e, CompileError::InvalidValue { .. }));
    assert_eq!(at(&e), pos("policy.yaml", 5, 9));
}

#[test]
fn duplicate_rule_id_two_labels() {
    let e = one(&format!(
        "{HEAD}rules:\n  - id: same\n    effect: allow\n  - id: other\n    effect: allow\n  - id: same\n    effect: deny\n    reason: r\n"
    ));
    let CompileError::DuplicateRuleId { first, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(first.map(|s| (s.offset(), s.len())), Some((51, 4)));
    assert_eq!(at(&e), pos("policy.yaml", 9, 9));
    insta::assert_snapshot!(render(&e));
}

#[test]
fn duplicate_rule_id_across_files() {
    let e = one(&format!(
        "{HEAD}extends: [dup/base.yaml]\nrules:\n  - id: shared-id\n    effect: allow\n"
    ));
    let CompileError::DuplicateRuleId { first, related, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(*first, None);
    assert_eq!(related.len(), 1);
    // Own rules come first, so the base's definition is the duplicate.
    assert_eq!(at(&e), pos("tests/fixtures/dup/base.yaml", 5, 9));
    insta::assert_snapshot!(render(&e));
}

#[test]
fn extends_cycle() {
    let mut sources = SourceMap::new();
    let paths = [PathBuf::from("tests/fixtures/cycle/a.yaml")];
    let mut e = load_files(&paths, &mut sources).unwrap_err();
    assert_eq!(e.len(), 1, "{e:#?}");
    let e = e.remove(0);
    let CompileError::ExtendsCycle { chain, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(
        chain,
        "tests/fixtures/cycle/a.yaml → tests/fixtures/cycle/b.yaml → tests/fixtures/cycle/a.yaml"
    );
    assert_eq!(at(&e), pos("tests/fixtures/cycle/b.yaml", 5, 5));
    insta::assert_snapshot!(render(&e));
}

#[test]
fn extends_self() {
    let e = one(&format!("{HEAD}extends: [policy.yaml]\nrules: []\n"));
    // `policy.yaml` in base_dir does not exist on disk: not found, not a cycle.
    assert!(matches!(e, CompileError::ExtendsNotFound { .. }));
}

#[test]
fn extends_missing_file() {
    let e = one(&format!(
        "{HEAD}extends:\n  - ./nope/missing.yaml\nrules: []\n"
    ));
    let CompileError::ExtendsNotFound { resolved, help, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(resolved, "tests/fixtures/nope/missing.yaml");
    assert_eq!(*help, None);
    assert_eq!(at(&e), pos("policy.yaml", 5, 5));
    insta::assert_snapshot!(render(&e));
}

#[test]
fn extends_builtin_template() {
    let e = one(&format!("{HEAD}extends: [postgres]\nrules: []\n"));
    let CompileError::ExtendsNotFound { help, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(
        help.as_deref(),
        Some("built-in templates are not bundled yet; point extends at a file path, e.g. ./postgres.yaml")
    );
    assert_eq!(at(&e), pos("policy.yaml", 4, 11));
    insta::assert_snapshot!(render(&e));
}

#[test]
fn expression_error_in_plain_scalar() {
    let e = one(&format!(
        "{HEAD}rules:\n  - id: a\n    when: args.mode == && args.x\n    effect: allow\n"
    ));
    assert!(matches!(e, CompileError::Expression { .. }));
    assert_eq!(at(&e), pos("policy.yaml", 6, 24));
    insta::assert_snapshot!(render(&e));
}

#[test]
fn expression_error_in_double_quoted_scalar_after_escapes() {
    let e = one(&format!(
        "{HEAD}rules:\n  - id: a\n    when: \"args.a == \\\"x\\u00e9\\\" && )\"\n    effect: allow\n"
    ));
    assert!(matches!(e, CompileError::Expression { .. }));
    // `)` is at column 37: the escapes `\"`, `\u00e9`, `\"` are 2, 6 and 2
    // characters in the file but one each in the expression.
    assert_eq!(at(&e), pos("policy.yaml", 6, 37));
    insta::assert_snapshot!(render(&e));
}

#[test]
fn expression_error_at_end_of_double_quoted_scalar() {
    let e = one(&format!(
        "{HEAD}rules:\n  - id: a\n    when: \"args.a == \\\"x\\\" &&\"\n    effect: allow\n"
    ));
    assert!(matches!(e, CompileError::Expression { .. }));
    // The end of the expression: just before the closing quote.
    assert_eq!(at(&e), pos("policy.yaml", 6, 30));
}

#[test]
fn expression_error_on_second_line_of_literal_block() {
    let e = one(&format!(
        "{HEAD}rules:\n  - id: a\n    when: |\n      args.mode == \"rw\" &&\n        args.path ~= \"/etc\"\n    effect: allow\n"
    ));
    assert!(matches!(e, CompileError::Expression { .. }));
    assert_eq!(at(&e), pos("policy.yaml", 8, 19));
    insta::assert_snapshot!(render(&e));
}

#[test]
fn expression_error_in_folded_block() {
    let e = one(&format!(
        "{HEAD}rules:\n  - id: a\n    when: >-\n      args.mode == \"rw\"\n      && lenn(args.x) 3\n    effect: allow\n"
    ));
    assert!(matches!(e, CompileError::Expression { .. }));
    assert_eq!(at(&e), pos("policy.yaml", 8, 23));
}

#[test]
fn multiple_errors_in_one_file_all_reported() {
    let text = format!(
        "{HEAD}default_outcome: alow\nrules:\n  - id: a\n    tool: [x]\n    effect: allow\n  - id: b\n    effect: deny\n  - id: c\n    when: args.x ==\n    effect: {{type: allow}}\n"
    );
    let e = errors(&text);
    let got: Vec<(&str, usize, usize)> = e
        .iter()
        .map(|e| {
            let kind = match e {
                CompileError::InvalidValue { .. } => "invalid_value",
                CompileError::UnknownKey { .. } => "unknown_key",
                CompileError::MissingKey { .. } => "missing_key",
                CompileError::Expression { .. } => "expression",
                other => panic!("{other:?}"),
            };
            let (_, l, c) = e.line_col().expect("located");
            (kind, l, c)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("invalid_value", 4, 18),
            ("unknown_key", 7, 5),
            ("missing_key", 10, 13),
            ("expression", 12, 20),
        ]
    );
    let failure = Failure { errors: e };
    assert_eq!(failure.to_string(), "4 errors");
    insta::assert_snapshot!(render(&failure));
}

#[test]
fn io_error_names_the_path() {
    let mut sources = SourceMap::new();
    let e = load_files(&[PathBuf::from("tests/fixtures/none.yaml")], &mut sources).unwrap_err();
    assert_eq!(e.len(), 1);
    assert!(matches!(&e[0], CompileError::Io { path, .. } if path == "tests/fixtures/none.yaml"));
    assert_eq!(e[0].line_col(), None);
}

#[test]
fn empty_file() {
    let e = one("# nothing here\n");
    assert!(matches!(e, CompileError::InvalidValue { .. }));
    assert_eq!(at(&e), pos("policy.yaml", 1, 1));
}

#[test]
fn kvlar_format_and_diamond_extends_load() {
    let mut sources = SourceMap::new();
    let set = load_files(
        &[PathBuf::from("tests/fixtures/diamond/top.yaml")],
        &mut sources,
    )
    .expect("loads");
    assert_eq!(set.policies.len(), 1);
    let p = &set.policies[0];
    assert_eq!(p.version.as_ref().map(|v| v.value.as_str()), Some("1.0"));
    let ids: Vec<&str> = p.rules.iter().map(|r| r.id.value.as_str()).collect();
    // Own rules, then left (and its base), then right (base already included).
    assert_eq!(ids, ["top-rule", "left-rule", "base-rule", "right-rule"]);
    let base = &p.rules[2];
    assert_eq!(
        base.effect.value,
        Effect::RequireApproval {
            reason: "base".into()
        }
    );
    let names: Vec<&str> = sources.files().iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "tests/fixtures/diamond/top.yaml",
            "tests/fixtures/diamond/left.yaml",
            "tests/fixtures/diamond/base.yaml",
            "tests/fixtures/diamond/right.yaml",
        ]
    );
}

#[test]
fn native_and_kvlar_rules_load_with_spans() {
    let text = format!(
        "{HEAD}default_outcome: allow\nrules:\n  - id: k\n    description: kvlar\n    match_on:\n      resources: [\"exec*\"]\n      parameters: {{command: \"rm\\\\s+-rf\"}}\n      conditions:\n        - field: options.n\n          operator: in\n          value: [1, 0x10, yes, \"2\", 1.5, ~]\n        - field: x\n          operator: exists\n    effect: {{type: deny, reason: no}}\n  - id: n\n    tools: [run_command]\n    when: |\n      args.command contains \"x\"\n    effect: require_approval\n    reason: ask\n"
    );
    let mut sources = SourceMap::new();
    let set = load_str("policy.yaml", &text, Path::new("."), &mut sources).expect("loads");
    let p = &set.policies[0];
    assert_eq!(
        p.default_outcome.as_ref().map(|d| d.value),
        Some(DefaultOutcome::Allow)
    );
    let m = p.rules[0].match_on.as_ref().expect("match_on");
    assert_eq!(m.parameters[0].1.value, "rm\\s+-rf");
    assert_eq!(m.conditions[0].operator.value, KvOp::In);
    assert_eq!(
        m.conditions[0].value.value,
        serde_json::json!([1, 16, "yes", "2", 1.5, null])
    );
    assert_eq!(m.conditions[1].value.value, serde_json::Value::Null);
    let when = p.rules[1].when.as_ref().expect("when");
    // `args` on line 21, column 7.
    let (l, c) = sources.line_col(p.rules[1].id.span.file, when.span.start);
    assert_eq!((l, c), (21, 7));
    assert_eq!(&text[when.span.clone()], "args.command contains \"x\"");
}

/// A condition value that has no JSON form: an integer beyond 64 bits, and
/// a mapping key that is not a string (both at the offending node).
#[test]
fn condition_value_without_a_json_form() {
    let cond = |value: &str| {
        format!(
            "{HEAD}rules:\n  - id: a\n    match_on:\n      conditions:\n        - field: n\n          operator: eq\n          value: {value}\n    effect: allow\n"
        )
    };
    let e = one(&cond("[1, 99999999999999999999]"));
    assert_eq!(
        e.to_string(),
        "integer `99999999999999999999` is out of range"
    );
    assert_eq!(at(&e), pos("policy.yaml", 10, 22));
    let e = one(&cond("{a: {[1]: x}}"));
    assert_eq!(
        e.to_string(),
        "expected a string for `value key`, found a list"
    );
    assert_eq!(at(&e), pos("policy.yaml", 10, 23));
    // Quoted or tagged, the same digits are a string.
    for value in ["\"99999999999999999999\"", "!!str 99999999999999999999"] {
        let mut sources = SourceMap::new();
        let set = load_str(
            "policy.yaml",
            &cond(value),
            Path::new("tests/fixtures"),
            &mut sources,
        );
        assert!(set.is_ok(), "{value}: {set:?}");
    }
}

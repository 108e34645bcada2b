//! `kvlar schema`: a valid draft-07 JSON Schema that accepts every curated
//! policy and refuses what the compiler refuses at the schema level (unknown
//! keys, unknown operators and effects, missing or misplaced reasons).

mod common;

use serde_json::Value;

fn schema() -> Value {
    let o = common::kvlar(&["schema"]);
    assert_eq!(o.status.code(), Some(0));
    serde_json::from_slice(&o.stdout).expect("the schema is JSON")
}

fn validator() -> jsonschema::Validator {
    let s = schema();
    jsonschema::draft7::meta::validate(&s).expect("a valid draft-07 schema");
    jsonschema::draft7::new(&s).expect("compiles")
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("YAML")
}

#[test]
fn declares_draft_07() {
    assert_eq!(
        schema()["$schema"],
        "http://json-schema.org/draft-07/schema#"
    );
}

#[test]
fn every_curated_policy_validates() {
    let v = validator();
    let dir = common::policies_dir();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("policies") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.ends_with(".yaml") || name.ends_with(".test.yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        let doc = yaml(&text);
        let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        checked += 1;
    }
    assert_eq!(checked, 13);
}

const HEAD: &str = "name: p\ndescription: d\nversion: \"1\"\nrules:\n";

/// (rules, accepted): the schema and the compiler agree on each.
const CASES: &[(&str, bool)] = &[
    ("  - id: a\n    effect: allow\n", true),
    ("  - id: a\n    tools: [x]\n    when: args.a == 1\n    effect: deny\n    reason: r\n", true),
    ("  - id: a\n    description: d\n    match_on:\n      resources: [\"read_*\"]\n      parameters: {path: '^/etc'}\n      conditions:\n        - {field: path, operator: starts_with, value: /etc}\n        - {field: n, operator: one_of, value: [1, 2]}\n        - {field: u, operator: not_in_domain, value: [a.com]}\n    effect:\n      type: require_approval\n      reason: r\n", true),
    ("  - id: a\n    effect: {type: allow, reason: kvlar accepts this}\n", true),
    ("  - id: a\n    efect: allow\n", false),
    ("  - id: a\n    match_on: {resource: [x]}\n    effect: allow\n", false),
    ("  - id: a\n    match_on:\n      conditions: [{field: x, operator: equal, value: 1}]\n    effect: allow\n", false),
    ("  - id: a\n    match_on:\n      conditions: [{field: x, operator: eq, vaule: 1}]\n    effect: allow\n", false),
    ("  - id: a\n    effect: block\n    reason: r\n", false),
    ("  - id: a\n    effect: deny\n", false),
    ("  - id: a\n    effect: allow\n    reason: r\n", false),
    ("  - id: a\n    effect: {type: deny}\n", false),
    ("  - id: a\n    effect: {type: deny, reason: r}\n    reason: r\n", false),
    ("  - effect: allow\n", false),
];

#[test]
fn typos_and_misplaced_reasons_fail_like_the_compiler() {
    let v = validator();
    for (rules, accepted) in CASES {
        let text = format!("{HEAD}{rules}");
        let compiles = kvlar_compiler::compile_str("p.yaml", &text).is_ok();
        assert_eq!(compiles, *accepted, "compiler on:\n{text}");
        assert_eq!(v.is_valid(&yaml(&text)), *accepted, "schema on:\n{text}");
    }
    // Policy level: a typo'd top-level key, a missing name, a bad default.
    for text in [
        format!("{HEAD}  - id: a\n    effect: allow\nrulez: []\n"),
        "description: d\nversion: '1'\nrules: []\n".to_string(),
        format!("default_outcome: maybe\n{HEAD}"),
    ] {
        assert!(kvlar_compiler::compile_str("p.yaml", &text).is_err());
        assert!(!v.is_valid(&yaml(&text)), "schema on:\n{text}");
    }
}

#[test]
fn a_closed_stdout_is_not_a_panic() {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvlar"))
        .arg("schema")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kvlar runs");
    drop(child.stdout.take());
    let o = child.wait_with_output().expect("kvlar finishes");
    assert_eq!(common::stderr(&o), "");
    assert_eq!(o.status.code(), Some(0));
}

//! Whole-pipeline checks: lowering diagnostics (exact line and column),
//! determinism of the bytes, and Kvlar-format leniencies we must keep.

use kvlar_compiler::{compile_str, compile_strs};
use kvlar_vm::{Call, Effect};
use serde_json::json;

const HEAD: &str = "name: t\ndescription: d\nversion: \"1\"\n";

fn errors(yaml: &str) -> Vec<(String, usize, usize, String)> {
    let failure = compile_str("p.yaml", yaml).expect_err("must not compile");
    failure
        .errors
        .iter()
        .map(|e| {
            let (file, line, col) = e.line_col().expect("has a location");
            (file, line, col, e.to_string())
        })
        .collect()
}

#[test]
fn lowering_errors_are_all_reported_with_exact_positions() {
    let yaml = format!(
        "{HEAD}rules:\n  - id: a\n    when: lenn(args.x) > 3\n    effect: allow\n  - id: b\n    when: args.cmd =~ /(unclosed/ || y == 1\n    effect: deny\n    reason: r\n  - id: c\n    when: args.p glob \"[a-\"\n    effect: allow\n"
    );
    let errs = errors(&yaml);
    let positions: Vec<(usize, usize)> = errs.iter().map(|e| (e.1, e.2)).collect();
    assert_eq!(
        positions,
        vec![(6, 11), (9, 23), (9, 38), (13, 23)],
        "{errs:#?}"
    );
    assert!(errs[0].3.contains("lenn"), "{}", errs[0].3);
    assert_eq!(errs[1].3, "invalid regular expression: unclosed group");
    assert!(errs[2].3.contains('y'), "{}", errs[2].3);
}

#[test]
fn unknown_function_suggests_the_right_name() {
    let yaml =
        format!("{HEAD}rules:\n  - id: a\n    when: lowr(tool) == \"x\"\n    effect: allow\n");
    let failure = compile_str("p.yaml", &yaml).unwrap_err();
    let text = kvlar_compiler::diagnostic::render(&failure.errors[0]);
    assert!(text.contains("did you mean `lower`?"), "{text}");
}

#[test]
fn same_policy_same_bytes() {
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/shell.yaml"
    ))
    .unwrap();
    let a = compile_str("shell.yaml", &yaml).unwrap().program.to_bytes();
    let b = compile_str("shell.yaml", &yaml).unwrap().program.to_bytes();
    assert_eq!(a, b);
}

#[test]
fn kvlar_allow_with_reason_in_the_mapping_form_compiles() {
    let yaml = format!(
        "{HEAD}rules:\n  - id: a\n    description: d\n    match_on: {{resources: [x]}}\n    effect: {{type: allow, reason: \"kvlar ignores this\"}}\n"
    );
    let c = compile_str("p.yaml", &yaml).unwrap();
    let args = json!({});
    let d = c.program.evaluate(&Call::mcp("x", &args));
    assert_eq!(
        (d.effect(), d.rule(), d.reason()),
        (Effect::Allow, "a", None)
    );
}

#[test]
fn policies_are_tried_in_order_with_default_outcomes() {
    let first = format!(
        "{HEAD}default_outcome: deny\nrules:\n  - id: only-x\n    description: d\n    match_on: {{resources: [x]}}\n    effect: {{type: deny, reason: no x}}\n"
    );
    let second = format!(
        "{HEAD}default_outcome: allow\nrules:\n  - id: only-y\n    description: d\n    match_on: {{resources: [y]}}\n    effect: {{type: deny, reason: no y}}\n"
    );
    let c = compile_strs(&[("a.yaml", &first), ("b.yaml", &second)]).unwrap();
    let args = json!({});
    let rule = |tool| {
        c.program
            .evaluate(&Call::mcp(tool, &args))
            .rule()
            .to_string()
    };
    assert_eq!(rule("x"), "only-x");
    assert_eq!(rule("y"), "only-y");
    assert_eq!(rule("z"), "_default_allow");
}

#[test]
fn load_and_lowering_errors_are_reported_together_in_file_order() {
    let yaml = format!(
        "{HEAD}rules:\n  - id: a\n    when: args.x =~ /(/\n    effect: allow\n  - id: b\n    effect: denny\n"
    );
    let errs = errors(&yaml);
    let positions: Vec<(usize, usize)> = errs.iter().map(|e| (e.1, e.2)).collect();
    assert_eq!(positions, vec![(6, 21), (9, 13)], "{errs:#?}");
    assert_eq!(errs[0].3, "invalid regular expression: unclosed group");
    assert_eq!(errs[1].3, "unknown effect `denny`");
}

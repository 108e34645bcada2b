//! `kvlar test`, run as a user runs it: exact stdout lines, exit codes, and
//! line:column positions of the diagnostics of malformed test files.

mod common;

use std::path::{Path, PathBuf};

use common::{kvlar, lines, stderr, stdout, temp_path};
use serde_json::Value;

fn temp_dir(name: &str) -> PathBuf {
    let d = temp_path("test-cmd", name);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn write(path: &Path, text: &str) -> String {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("parent dir");
    }
    std::fs::write(path, text).expect("write");
    path.display().to_string()
}

const POLICY: &str = r#"name: demo
description: demo policy
version: "1"
rules:
  - id: deny-rm-rf
    tools: [run_command]
    when: args.command =~ /rm\s+-rf/
    effect: deny
    reason: Recursive forced deletion is not permitted
  - id: allow-mcp-agent
    match_on:
      agent_ids: [mcp-agent]
      resources: [read_file]
    effect:
      type: allow
  - id: allow-shell
    tools: [run_command]
    effect: allow
  - id: never-reached
    tools: [format_disk]
    effect: deny
    reason: no
"#;

const PASSING: &str = r#"policy: demo.yaml
tests:
  - id: rm-rf
    description: recursive deletes are refused
    action: {resource: run_command, parameters: {command: "rm -rf /"}}
    expect: deny
    rule: deny-rm-rf
    reason_contains: Recursive
  - id: ls
    action: {resource: run_command, parameters: {command: ls}}
    expect: allow
  - id: native-call-is-mcp-agent
    call: {name: read_file, arguments: {path: /tmp/x}}
    expect: allow
    rule: allow-mcp-agent
  - id: kvlar-action-is-test-agent
    action: {resource: read_file, parameters: {path: /tmp/x}}
    expect: deny
    rule: _default_deny
"#;

const FAILING: &str = r#"policy: demo.yaml
tests:
  - id: ls
    action: {resource: run_command, parameters: {command: ls}}
    expect: allow
  - id: wrong
    call:
      name: run_command
      arguments: {command: "rm -r build"}
    expect: deny
    rule: deny-rm-rf
"#;

fn fixture(name: &str, tests: &str) -> (PathBuf, String) {
    let dir = temp_dir(name);
    write(&dir.join("demo.yaml"), POLICY);
    let t = write(&dir.join("demo.test.yaml"), tests);
    (dir, t)
}

#[test]
fn all_pass() {
    let (_d, t) = fixture("pass", PASSING);
    let o = kvlar(&["test", "-f", &t]);
    assert_eq!(lines(&o), ["4 passed, 0 failed"], "{}", stderr(&o));
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stderr(&o), "");
}

#[test]
fn verbose_lists_passing_cases() {
    let (_d, t) = fixture("verbose", PASSING);
    let o = kvlar(&["test", "-f", &t, "--verbose"]);
    assert_eq!(
        lines(&o),
        [
            format!("== {t} (4 cases)"),
            format!("PASS {t}:3 rm-rf"),
            format!("PASS {t}:9 ls"),
            format!("PASS {t}:12 native-call-is-mcp-agent"),
            format!("PASS {t}:16 kvlar-action-is-test-agent"),
            "4 passed, 0 failed".to_string(),
        ]
    );
}

#[test]
fn a_failing_case_shows_expected_actual_and_the_trace() {
    let (_d, t) = fixture("fail", FAILING);
    let o = kvlar(&["test", "-f", &t]);
    assert_eq!(o.status.code(), Some(1));
    let out = lines(&o);
    assert_eq!(
        out[..7],
        [
            format!("FAIL {t}:6 wrong"),
            "  expected: deny, rule deny-rm-rf".to_string(),
            "  actual:   allow, rule allow-shell".to_string(),
            "  - expected decision deny, got allow".to_string(),
            "  - expected rule deny-rm-rf, got allow-shell".to_string(),
            r#"  call:     tool "run_command", agent "mcp-agent", action "tool_call", arguments {"command":"rm -r build"}"#.to_string(),
            String::new(),
        ]
    );
    let text = stdout(&o);
    // The explain trace: each rule considered, on the policy's source.
    assert!(text.contains("rule `deny-rm-rf` ✗ did not match"), "{text}");
    assert!(text.contains("demo.yaml:6:13]"), "{text}");
    assert!(
        text.contains(r#"╰── ✗ failed (value: "rm -r build")"#),
        "{text}"
    );
    assert!(text.contains("rule `allow-shell` ✓ matched"), "{text}");
    assert_eq!(out.last().map(String::as_str), Some("1 passed, 1 failed"));
}

#[test]
fn reason_mismatch_is_a_failure() {
    let tests = "policy: demo.yaml\ntests:\n  - id: r\n    action: {resource: run_command, parameters: {command: 'rm -rf x'}}\n    expect: deny\n    reason_contains: forbidden\n  - id: a\n    action: {resource: run_command}\n    expect: allow\n    reason_contains: x\n";
    let (_d, t) = fixture("reason", tests);
    let o = kvlar(&["test", "-f", &t]);
    let out = lines(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(out.contains(&r#"  actual:   deny, rule deny-rm-rf, reason "Recursive forced deletion is not permitted""#.to_string()), "{out:?}");
    assert!(out.contains(&r#"  - expected reason containing "forbidden", got "Recursive forced deletion is not permitted""#.to_string()), "{out:?}");
    assert!(
        out.contains(
            &r#"  - expected reason containing "x", but the decision has no reason"#.to_string()
        ),
        "{out:?}"
    );
    assert_eq!(out.last().map(String::as_str), Some("0 passed, 2 failed"));
}

#[test]
fn malformed_test_file_is_a_diagnostic_with_line_and_column() {
    let tests = "policy: demo.yaml\ntests:\n  - id: a\n    action: {resource: run_command}\n    expcet: allow\n";
    let (_d, t) = fixture("malformed", tests);
    let o = kvlar(&["test", "-f", &t]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("unknown key `expcet` in test case"), "{err}");
    assert!(err.contains(&format!("[{t}:5:5]")), "{err}");
    assert!(err.contains("did you mean `expect`?"), "{err}");
    assert!(
        err.contains("missing required key `expect` in test case"),
        "{err}"
    );
    assert_eq!(
        lines(&o),
        [
            "1 test file could not be run (see the diagnostics on stderr)",
            "0 passed, 1 failed"
        ]
    );
}

#[test]
fn yaml_syntax_error_has_its_position() {
    let tests = "policy: demo.yaml\ntests:\n  - id: a\n    action: {resource: run_command\n    expect: allow\n";
    let (_d, t) = fixture("syntax", tests);
    let o = kvlar(&["test", "-f", &t]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("YAML syntax error"), "{err}");
    assert!(err.contains(&format!("[{t}:5:11]")), "{err}");
}

#[test]
fn unknown_expectation_and_both_call_forms() {
    let tests = "policy: demo.yaml\ntests:\n  - id: a\n    action: {resource: x}\n    call: {name: x}\n    expect: alow\n";
    let (_d, t) = fixture("expect", tests);
    let o = kvlar(&["test", "-f", &t]);
    let err = stderr(&o);
    assert!(err.contains("unknown expected decision `alow`"), "{err}");
    assert!(err.contains("did you mean `allow`?"), "{err}");
    assert!(err.contains(&format!("[{t}:6:13]")), "{err}");
    assert!(
        err.contains("a test case has both `action` and `call`"),
        "{err}"
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn policy_is_relative_to_the_test_file_and_can_be_overridden() {
    let dir = temp_dir("override");
    write(&dir.join("policies/demo.yaml"), POLICY);
    let t = write(
        &dir.join("tests/demo.test.yaml"),
        &PASSING.replace("policy: demo.yaml", "policy: ../policies/demo.yaml"),
    );
    assert_eq!(lines(&kvlar(&["test", "-f", &t])), ["4 passed, 0 failed"]);

    // --policy replaces the file's policy: this one allows everything.
    let allow_all = write(
        &dir.join("allow.yaml"),
        "name: a\ndescription: a\nversion: '1'\nrules:\n  - id: all\n    effect: allow\n",
    );
    let o = kvlar(&["test", "-f", &t, "--policy", &allow_all]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        lines(&o).last().map(String::as_str),
        Some("1 passed, 3 failed")
    );

    // Without `policy:` and without --policy, the file is refused.
    let bare = write(
        &dir.join("bare.test.yaml"),
        "tests:\n  - id: a\n    action: {resource: x}\n    expect: allow\n",
    );
    let o = kvlar(&["test", "-f", &bare]);
    assert!(stderr(&o).contains("missing required key `policy` in test file"));
    assert_eq!(o.status.code(), Some(1));
    let o = kvlar(&["test", "-f", &bare, "--policy", &allow_all]);
    assert_eq!(lines(&o), ["1 passed, 0 failed"]);
}

#[test]
fn a_policy_that_does_not_compile() {
    let dir = temp_dir("badpolicy");
    write(
        &dir.join("demo.yaml"),
        "name: x\ndescription: d\nversion: '1'\nrules:\n  - id: r\n    efect: allow\n",
    );
    let t = write(&dir.join("demo.test.yaml"), PASSING);
    let o = kvlar(&["test", "-f", &t]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown key `efect` in rule"));
    assert_eq!(
        lines(&o).last().map(String::as_str),
        Some("0 passed, 1 failed")
    );
}

#[test]
fn coverage_lists_rules_no_case_reached() {
    let (_d, t) = fixture("coverage", PASSING);
    let o = kvlar(&["test", "-f", &t, "--coverage"]);
    let dir = Path::new(&t).parent().expect("dir").display().to_string();
    assert_eq!(
        lines(&o),
        [
            format!("coverage {t}: 3 of 4 rules reached"),
            format!("  not reached: never-reached ({dir}/demo.yaml:19:9)"),
            "4 passed, 0 failed".to_string(),
        ]
    );
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn json_report() {
    let (_d, t) = fixture("json", FAILING);
    let o = kvlar(&["test", "-f", &t, "--json", "--coverage"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_str(&stdout(&o)).expect("JSON on stdout");
    assert_eq!(
        (v["passed"].as_u64(), v["failed"].as_u64()),
        (Some(1), Some(1))
    );
    let file = &v["files"][0];
    assert_eq!(file["file"], t.as_str());
    let failing = &file["cases"][1];
    assert_eq!(failing["id"], "wrong");
    assert_eq!(failing["line"], 6);
    assert_eq!(failing["passed"], false);
    assert_eq!(
        failing["expected"],
        serde_json::json!({"decision": "deny", "rule": "deny-rm-rf", "reason_contains": null})
    );
    assert_eq!(
        failing["actual"],
        serde_json::json!({"decision": "allow", "rule": "allow-shell", "reason": null})
    );
    assert_eq!(failing["trace"][0]["rule"], "deny-rm-rf");
    assert_eq!(failing["trace"][0]["matched"], false);
    assert_eq!(failing["trace"][0]["tests"][1]["passed"], false);
    assert!(file["cases"][0].get("trace").is_none());
    let unreached: Vec<&str> = file["unreached_rules"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["rule"].as_str())
        .collect();
    assert_eq!(
        unreached,
        ["deny-rm-rf", "allow-mcp-agent", "never-reached"]
    );
}

#[test]
fn a_folder_runs_every_test_file_recursively_in_order() {
    let dir = temp_dir("folder");
    write(&dir.join("demo.yaml"), POLICY);
    write(&dir.join("b.test.yaml"), PASSING);
    write(
        &dir.join("a/c.test.yaml"),
        &PASSING.replace("policy: demo.yaml", "policy: ../demo.yaml"),
    );
    write(&dir.join("a.test.yaml"), FAILING);
    write(&dir.join("notes.yaml"), "not: a test file\n");
    let d = format!("{}/", dir.display());
    let o = kvlar(&["test", "-f", &d, "--verbose"]);
    let headers: Vec<String> = lines(&o)
        .into_iter()
        .filter(|l| l.starts_with("== "))
        .collect();
    let base = dir.display().to_string();
    assert_eq!(
        headers,
        [
            format!("== {base}/a/c.test.yaml (4 cases)"),
            format!("== {base}/a.test.yaml (2 cases)"),
            format!("== {base}/b.test.yaml (4 cases)"),
        ]
    );
    assert_eq!(
        lines(&o).last().map(String::as_str),
        Some("9 passed, 1 failed")
    );
    assert_eq!(o.status.code(), Some(1));

    let empty = temp_dir("empty-folder");
    let o = kvlar(&["test", "-f", &empty.display().to_string()]);
    assert!(stderr(&o).contains("no *.test.yaml file under"));
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn missing_file() {
    let o = kvlar(&["test", "-f", "/nonexistent/x.test.yaml"]);
    assert!(stderr(&o).contains("cannot read `/nonexistent/x.test.yaml`"));
    assert_eq!(o.status.code(), Some(1));
}

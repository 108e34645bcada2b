//! The `compile`, `eval` and `explain` commands, run as a user runs them:
//! exact stdout lines, exit codes, and positions in diagnostics.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn kvlar(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kvlar"));
    cmd.args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("kvlar runs");
    {
        use std::io::Write;
        let mut input = child.stdin.take().expect("stdin");
        if let Some(s) = stdin {
            // A kvlar that refuses its program exits without reading stdin:
            // the write then meets a closed pipe, and the output is what the
            // test checks.
            if let Err(e) = input.write_all(s.as_bytes()) {
                assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
            }
        }
    }
    child.wait_with_output().expect("kvlar finishes")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kvlar-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

const POLICY: &str = r#"name: demo
description: demo policy
version: "1"
rules:
  - id: deny-rm-rf
    tools: [run_command, "exec*"]
    when: args.command =~ /rm\s+-[a-z]*r[a-z]*f/ && !(args.command contains "--dry-run")
    effect: deny
    reason: Recursive forced deletion is not permitted
  - id: approve-push
    description: pushes need a human
    match_on:
      resources: [git_push]
    effect:
      type: require_approval
      reason: Pushing needs approval
  - id: allow-shell
    tools: [run_command]
    effect: allow
"#;

fn write_policy(dir: &std::path::Path) -> String {
    let p = dir.join("policy.yaml");
    std::fs::write(&p, POLICY).expect("write policy");
    p.to_string_lossy().into_owned()
}

#[test]
fn eval_answers_every_line_in_order() {
    let dir = temp_dir("eval");
    let policy = write_policy(&dir);
    let input = [
        r#"{"name":"run_command","arguments":{"command":"rm -rf /"}}"#,
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"run_command","arguments":{"command":"ls"}}}"#,
        r#"{"resource":"git_push","parameters":{}}"#,
        "not json",
        r#"{"name":"run_command","arguments":"rm -rf /"}"#,
        r#"{"name":"unknown_tool"}"#,
    ]
    .join("\n");
    let out = kvlar(&["eval", "--policy", &policy, "-"], Some(&input));
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        vec![
            r#"{"decision":"deny","rule":"deny-rm-rf","reason":"Recursive forced deletion is not permitted"}"#,
            r#"{"decision":"allow","rule":"allow-shell","reason":null}"#,
            r#"{"decision":"require_approval","rule":"approve-push","reason":"Pushing needs approval"}"#,
            r#"{"decision":"deny","rule":"_invalid_input","reason":"line 4: not valid JSON (expected ident at line 1 column 2)"}"#,
            r#"{"decision":"deny","rule":"_invalid_input","reason":"line 5: `arguments` of tools/call params must be an object, found a string"}"#,
            r#"{"decision":"deny","rule":"_default_deny","reason":"no matching policy rule — denied by default (fail-closed)"}"#,
        ]
    );
}

#[test]
fn compile_writes_a_program_that_eval_loads() {
    let dir = temp_dir("kvbc");
    let policy = write_policy(&dir);
    let out_path = dir.join("p.kvbc");
    let out_s = out_path.to_string_lossy().into_owned();
    let out = kvlar(&["compile", &policy, "-o", &out_s], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = stdout(&out);
    assert!(
        summary.starts_with("compiled 1 policy (3 rules) into "),
        "{summary}"
    );
    assert_eq!(summary.lines().count(), 1);
    let first = std::fs::read(&out_path).expect("program written");
    assert_eq!(&first[..4], b"KVBC");
    // Same policy, same bytes.
    assert!(kvlar(&["compile", &policy, "-o", &out_s], None)
        .status
        .success());
    assert_eq!(std::fs::read(&out_path).expect("again"), first);
    let out = kvlar(
        &["eval", "--policy", &out_s, "-"],
        Some(r#"{"name":"exec_sh","arguments":{"command":"rm -rf x"}}"#),
    );
    assert_eq!(
        stdout(&out).trim_end(),
        r#"{"decision":"deny","rule":"deny-rm-rf","reason":"Recursive forced deletion is not permitted"}"#
    );
    // A corrupted program is refused, not run.
    let mut bad = first.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    std::fs::write(&out_path, &bad).expect("corrupt");
    let out = kvlar(&["eval", "--policy", &out_s, "-"], Some("{}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("content hash does not match"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn compile_error_names_file_line_and_column() {
    let dir = temp_dir("err");
    let p = dir.join("bad.yaml");
    std::fs::write(
        &p,
        "name: bad\ndescription: d\nversion: \"1\"\nrules:\n  - id: a\n    when: args.x =~ /(/\n    effect: allow\n  - id: b\n    effect: denny\n",
    )
    .expect("write");
    let out = kvlar(&["compile", &p.to_string_lossy()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(err.contains("bad.yaml:6:21"), "{err}");
    assert!(err.contains("bad.yaml:9:13"), "{err}");
    assert!(err.contains("did you mean `deny`?"), "{err}");
}

#[test]
fn emit_asm_shows_rules_in_order() {
    let dir = temp_dir("asm");
    let policy = write_policy(&dir);
    let out = kvlar(&["compile", &policy, "--emit", "asm"], None);
    assert!(out.status.success());
    let asm = stdout(&out);
    let a = asm
        .find("chunk 1: rule 0 `deny-rm-rf`")
        .expect("rule 0 header");
    let b = asm
        .find("chunk 2: rule 1 `approve-push`")
        .expect("rule 1 header");
    let c = asm
        .find("chunk 3: rule 2 `allow-shell`")
        .expect("rule 2 header");
    assert!(a < b && b < c, "{asm}");
    assert!(asm.contains("test_regex"), "{asm}");
    assert!(asm.contains("dispatch    tool"), "{asm}");
    assert!(stderr(&out).starts_with("compiled 1 policy (3 rules)"));
}

/// `--emit stats` reports the fast paths, among them the one-pass plans
/// (shell.yaml's five exact tool names) and whether unknown tools
/// skip the rules on tool globs that do not match them: shell.yaml's rules
/// all name their tools (with `exec*`, `terminal*`), filesystem.yaml has
/// `*` rules.
#[test]
fn emit_stats_reports_the_unknown_tool_gate() {
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
    let stats = |name: &str| {
        let out = kvlar(
            &["compile", &format!("{policies}/{name}"), "--emit", "stats"],
            None,
        );
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let shell = stats("shell.yaml");
    assert!(shell.contains("\nrules           31\n"), "{shell}");
    assert!(
        shell.contains("\none-pass plans  5 (tools decided by one regex pass over one argument)\n"),
        "{shell}"
    );
    assert!(
        shell.contains(
            "\nunknown tools   glob gate (a tool no rule's glob matches is decided at once)\n"
        ),
        "{shell}"
    );
    let fs = stats("filesystem.yaml");
    assert!(
        fs.contains("\nunknown tools   no gate (a rule may apply to any tool)\n"),
        "{fs}"
    );
}

#[test]
fn explain_json_carries_the_trace() {
    let dir = temp_dir("explain");
    let policy = write_policy(&dir);
    let call = dir.join("call.json");
    std::fs::write(
        &call,
        r#"{"name":"run_command","arguments":{"command":"rm -rf / --dry-run"}}"#,
    )
    .expect("write call");
    let out = kvlar(
        &[
            "explain",
            &call.to_string_lossy(),
            "--policy",
            &policy,
            "--format",
            "json",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["rule"], "allow-shell");
    let considered = v["considered"].as_array().expect("considered");
    let ids: Vec<&str> = considered
        .iter()
        .map(|r| r["rule"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, vec!["deny-rm-rf", "allow-shell"]);
    assert_eq!(considered[0]["matched"], false);
    let tests = considered[0]["tests"].as_array().expect("tests");
    let summary: Vec<(String, bool, String)> = tests
        .iter()
        .map(|t| {
            (
                t["test"].as_str().unwrap_or("").to_string(),
                t["passed"].as_bool().unwrap_or(false),
                t["location"]
                    .as_str()
                    .unwrap_or("")
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "tools: [run_command, exec*]".to_string(),
                true,
                "policy.yaml:6:13".to_string()
            ),
            (
                "args.command =~ /rm\\s+-[a-z]*r[a-z]*f/".to_string(),
                true,
                "policy.yaml:7:11".to_string()
            ),
            (
                "(args.command contains \"--dry-run\")".to_string(),
                true,
                "policy.yaml:7:54".to_string()
            ),
        ]
    );
    assert_eq!(considered[1]["matched"], true);
}

/// A reader that goes away (`kvlar compile --emit asm … | head`) ends the
/// output quietly: no panic on the broken pipe. The disassembly is larger
/// than a pipe's buffer, so the writes past it meet the closed pipe
/// whenever the reader closes.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let dir = temp_dir("epipe");
    let mut yaml = String::from("name: big\ndescription: d\nversion: \"1\"\nrules:\n");
    for i in 0..800 {
        yaml += &format!("  - id: rule-{i}\n    description: d\n    match_on:\n      resources: [tool_{i}, \"x*\"]\n      conditions:\n        - field: path\n          operator: contains\n          value: needle-{i}\n    effect:\n      type: deny\n      reason: r\n");
    }
    let policy = dir.join("big.yaml");
    std::fs::write(&policy, yaml).expect("write policy");
    let policy = policy.to_string_lossy().into_owned();
    for emit in ["asm", "ir"] {
        // stderr to a file: a pipe nobody reads while stdout is read could
        // fill up and stall kvlar.
        let err_path = dir.join(format!("{emit}.stderr"));
        let err_file = std::fs::File::create(&err_path).expect("stderr file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_kvlar"))
            .args(["compile", &policy, "--emit", emit])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err_file)
            .spawn()
            .expect("kvlar runs");
        {
            use std::io::Read;
            let mut head = [0u8; 64];
            let mut out = child.stdout.take().expect("stdout");
            out.read_exact(&mut head).expect("the first bytes");
        }
        let status = child.wait().expect("kvlar finishes");
        let err = std::fs::read_to_string(&err_path).expect("stderr");
        assert!(!err.contains("panicked"), "--emit {emit}: {err}");
        assert!(
            err.contains("compiled 1 policy (800 rules)"),
            "--emit {emit}: {err}"
        );
        assert!(status.success(), "--emit {emit}: {err}");
    }
}

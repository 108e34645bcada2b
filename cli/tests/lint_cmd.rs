//! `kvlar lint` and the lint warnings of `kvlar compile`: exit codes and the
//! summary line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kvlar(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvlar"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("kvlar runs")
}

fn out(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn policy_file(name: &str, text: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kvlar-lint-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const SHADOWED: &str = "name: p\ndescription: d\nversion: \"1\"\nrules:\n  - id: allow-read\n    tools: [\"read_*\"]\n    effect: allow\n  - id: deny-read-file\n    tools: [read_file]\n    effect: deny\n    reason: no\n";

#[test]
fn curated_policies_lint_clean_with_deny_warnings() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.ends_with(".yaml") && !n.ends_with(".test.yaml")
        })
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert!(files.len() >= 4);
    let mut args = vec!["lint", "--deny-warnings"];
    args.extend(files.iter().map(String::as_str));
    let o = kvlar(&args);
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout, "0 warnings\n");
}

#[test]
fn warnings_fail_only_with_deny_warnings() {
    let p = policy_file("shadowed.yaml", SHADOWED);
    let p = p.to_str().unwrap();
    let o = kvlar(&["lint", p]);
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout, "1 warning\n");
    assert!(stderr.contains("kvlar::lint::shadowed"), "{stderr}");
    assert!(
        stderr.contains("rule `deny-read-file` is shadowed by rule `allow-read`"),
        "{stderr}"
    );
    assert!(stderr.contains("shadowed.yaml:5:9]"), "{stderr}");

    let o = kvlar(&["lint", "--deny-warnings", p]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(out(&o).0, "1 warning\n");

    // `compile` prints the warning but succeeds.
    let o = kvlar(&["compile", p]);
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.starts_with("compiled 1 policy (2 rules)"),
        "{stdout}"
    );
    assert!(stderr.contains("kvlar::lint::shadowed"), "{stderr}");
}

#[test]
fn together_lints_across_files() {
    let a = policy_file(
        "open.yaml",
        "name: open\ndescription: d\nversion: \"1\"\ndefault_outcome: allow\nrules:\n  - id: deny-rm\n    tools: [rm]\n    effect: deny\n    reason: x\n",
    );
    let b = policy_file(
        "later.yaml",
        "name: later\ndescription: d\nversion: \"1\"\nrules:\n  - id: deny-bash\n    tools: [bash]\n    effect: deny\n    reason: x\n",
    );
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let o = kvlar(&["lint", "--deny-warnings", a, b]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(out(&o).0, "0 warnings\n");
    let o = kvlar(&["lint", "--deny-warnings", "--together", a, b]);
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout, "1 warning\n");
    assert!(
        stderr.contains("kvlar::lint::unreachable_policy"),
        "{stderr}"
    );
}

#[test]
fn a_policy_that_does_not_compile_fails() {
    let p = policy_file(
        "bad.yaml",
        "name: p\ndescription: d\nversion: \"1\"\nrules:\n  - id: a\n    effect: alow\n",
    );
    let o = kvlar(&["lint", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).1.contains("unknown effect `alow`"));
}

const TOOLS: &str = r#"{"tools": [
  {"name": "read_file", "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}}},
  {"name": "move_file", "inputSchema": {"type": "object", "properties": {"source": {"type": "string"}, "destination": {"type": "string"}}}}
]}"#;

#[test]
fn tools_file_adds_argument_and_tool_name_checks() {
    let tools = policy_file("tools.json", TOOLS);
    let p = policy_file(
        "typos.yaml",
        "name: p\ndescription: d\nversion: \"1\"\nrules:\n  - id: deny-etc\n    tools: [read_file, move_fiel]\n    when: args.pth under \"/etc\"\n    effect: deny\n    reason: no\n",
    );
    let (tools, p) = (tools.to_str().unwrap(), p.to_str().unwrap());
    // Without the tools file nothing is known about arguments.
    let o = kvlar(&["lint", "--deny-warnings", p]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o).1);
    let o = kvlar(&["lint", "--deny-warnings", "--tools", tools, p]);
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert_eq!(stdout, "2 warnings\n");
    assert!(stderr.contains("kvlar::lint::unknown_tool"), "{stderr}");
    assert!(stderr.contains("typos.yaml:6:24]"), "{stderr}");
    assert!(stderr.contains("did you mean `move_file`?"), "{stderr}");
    assert!(stderr.contains("kvlar::lint::unknown_argument"), "{stderr}");
    assert!(stderr.contains("typos.yaml:7:11]"), "{stderr}");
    assert!(stderr.contains("did you mean `path`?"), "{stderr}");
}

#[test]
fn a_broken_tools_file_is_an_error_with_its_span() {
    let tools = policy_file(
        "broken-tools.json",
        "{\"tools\": [\n  {\"name\": \"x\"}\n]}\n",
    );
    let p = policy_file("shadowed-for-tools.yaml", SHADOWED);
    let o = kvlar(&[
        "lint",
        "--tools",
        tools.to_str().unwrap(),
        p.to_str().unwrap(),
    ]);
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert_eq!(stdout, "");
    assert!(stderr.contains("kvlar::tools::shape"), "{stderr}");
    assert!(stderr.contains("tool `x` has no `inputSchema`"), "{stderr}");
    assert!(stderr.contains("broken-tools.json:2:3]"), "{stderr}");
}

//! The curated policies in `policies/` pass their test files under
//! `kvlar test`, exactly as CI and users run it.

mod common;

use std::path::PathBuf;

use common::{kvlar, policies_dir};
use serde_json::Value;

#[test]
fn every_curated_policy_passes_its_tests() {
    let dir = format!("{}/", policies_dir().display());
    let o = kvlar(&["test", "-f", &dir]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["342 passed, 0 failed"],
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn every_test_file_has_at_least_15_cases_and_every_policy_a_threat_model() {
    let dir = format!("{}/", policies_dir().display());
    let o = kvlar(&["test", "-f", &dir, "--json"]);
    let report: Value = serde_json::from_slice(&o.stdout).expect("JSON report");
    let files = report["files"].as_array().expect("files");
    let mut names = Vec::new();
    for f in files {
        let name = f["file"].as_str().expect("file name");
        let cases = f["cases"].as_array().map_or(0, Vec::len);
        assert!(cases >= 15, "{name}: {cases} cases");
        let policy = PathBuf::from(f["policy"][0].as_str().expect("policy path"));
        let text = std::fs::read_to_string(&policy).expect("policy readable");
        assert!(
            text.starts_with("# "),
            "{}: opens with a threat-model comment",
            policy.display()
        );
        names.push(
            policy
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string(),
        );
    }
    names.sort();
    assert_eq!(
        names,
        [
            "default",
            "fetch",
            "filesystem",
            "filesystem-native",
            "git",
            "github",
            "memory",
            "permissive",
            "postgres",
            "shell",
            "slack",
            "sqlite",
            "strict"
        ]
    );
}

//! The curated policies in `policies/` against their Kvlar-format test files
//! (`policies/<name>.test.yaml`): every case runs through the compiled
//! program (VM), the reference interpreter, and — for the Kvlar-format
//! policies — the published `kvlar-core` 0.4.0, which must all agree with the
//! expectations and with each other.
#![forbid(unsafe_code)]

mod common;

use std::path::{Path, PathBuf};

use common::{agree, Outcome, Published, Ver};
use kvlar_core_04::testing::{run_test_suite, TestSuite};
use kvlar_vm::{Call, Effect};
use serde_json::Value;

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

fn expected_effect(expect: &str) -> Effect {
    match expect.trim().to_lowercase().as_str() {
        "allow" => Effect::Allow,
        "deny" => Effect::Deny,
        "require_approval" | "requireapproval" | "approval" => Effect::RequireApproval,
        other => panic!("unknown expectation {other:?}"),
    }
}

/// Runs `<name>.test.yaml`; `kvlar_format` also runs kvlar-core 0.4.0.
fn run(name: &str, kvlar_format: bool) {
    let dir = policies_dir();
    let test_path = dir.join(format!("{name}.test.yaml"));
    let text = std::fs::read_to_string(&test_path).expect("test file readable");
    let suite: TestSuite = serde_yaml::from_str(&text).expect("test file parses");
    let policy_path = dir.join(suite.policy.as_deref().expect("test file names its policy"));
    assert!(
        suite.tests.len() >= 15,
        "{name}: only {} cases",
        suite.tests.len()
    );

    let compiled = kvlar_compiler::compile_files(std::slice::from_ref(&policy_path))
        .unwrap_or_else(|f| panic!("{name}: does not compile: {f:?}"));

    let published = kvlar_format.then(|| {
        let yaml = std::fs::read_to_string(&policy_path).expect("policy readable");
        let published =
            Published::load(Ver::V04, &[&yaml]).expect("kvlar-core 0.4.0 loads the policy");
        // kvlar's own test runner must pass the file too.
        let Published::V04(engine) = &published else {
            unreachable!()
        };
        let result = run_test_suite(engine, &suite);
        let failed: Vec<_> = result.results.iter().filter(|r| !r.passed).collect();
        assert!(
            failed.is_empty(),
            "{name}: kvlar-core 0.4.0 fails cases: {failed:#?}"
        );
        published
    });

    let mut failures = Vec::new();
    for case in &suite.tests {
        let args = Value::Object(case.action.parameters.clone().into_iter().collect());
        let call = Call {
            tool: &case.action.resource,
            agent: &case.action.agent_id,
            action: &case.action.action_type,
            args: &args,
        };
        let ours = Outcome::from_vm(compiled.program.evaluate(&call));
        let reference =
            Outcome::from_ref(kvlar_tests::reference::evaluate(&compiled.policies, &call));
        let mut problems = Vec::new();
        if ours.effect != expected_effect(&case.expect) {
            problems.push(format!("expected {}, got {}", case.expect, ours.effect));
        }
        if let Some(rule) = &case.rule {
            if ours.rule != *rule {
                problems.push(format!("expected rule {rule}, got {}", ours.rule));
            }
        }
        if let Some(want) = &case.reason_contains {
            if !ours
                .reason
                .as_deref()
                .is_some_and(|r| r.contains(want.as_str()))
            {
                problems.push(format!(
                    "expected reason containing {want:?}, got {:?}",
                    ours.reason
                ));
            }
        }
        if ours != reference {
            problems.push(format!("reference interpreter disagrees: {reference:?}"));
        }
        if let Some(p) = &published {
            let theirs = p.evaluate(&call);
            if !agree(&theirs, &ours) {
                problems.push(format!("kvlar-core 0.4.0 disagrees: {theirs:?}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{name}/{}: {ours:?}: {}",
                case.id,
                problems.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!("{name}: {} cases pass", suite.tests.len());
}

#[test]
fn shell() {
    run("shell", true);
}

#[test]
fn filesystem() {
    run("filesystem", true);
}

#[test]
fn postgres() {
    run("postgres", true);
}

#[test]
fn filesystem_native() {
    run("filesystem-native", false);
}

/// Every policy in `policies/` has a test file, and test files not run by
/// name above are run here (Kvlar-format ones also through kvlar-core).
#[test]
fn every_policy_is_tested() {
    let named = ["shell", "filesystem", "postgres", "filesystem-native"];
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(policies_dir()).expect("policies dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let Some(stem) = name.strip_suffix(".yaml") else {
            continue;
        };
        if let Some(stem) = stem.strip_suffix(".test") {
            if !named.contains(&stem) {
                let path = policies_dir().join(format!("{stem}.yaml"));
                let compiled = kvlar_compiler::compile_files(std::slice::from_ref(&path))
                    .unwrap_or_else(|f| panic!("{stem}: {f:?}"));
                let kvlar_format = compiled
                    .policies
                    .policies
                    .iter()
                    .flat_map(|p| &p.rules)
                    .all(|r| r.tools.is_empty() && r.when.is_none());
                run(stem, kvlar_format);
            }
        } else if !policies_dir().join(format!("{stem}.test.yaml")).exists() {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "policies without a test file: {missing:?}"
    );
    for name in named {
        assert!(
            policies_dir().join(format!("{name}.test.yaml")).exists(),
            "{name}.test.yaml"
        );
    }
}

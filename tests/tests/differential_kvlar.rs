//! Differential test: Kvlar-format policies compiled by `kvlar-compiler` and
//! run by `kvlar-vm` must decide exactly like the published `kvlar-core`
//! 0.3.0 / 0.4.0 (same decision kind, same rule id, same reason).
//!
//! Policies are generated as YAML text (flow style, double-quoted strings, so
//! both YAML parsers read the same values) from small alphabets chosen to
//! collide with the generated calls. Every generated policy set is evaluated
//! against many calls.
//!
//! `KVLAR_DIFF_CASES_03` / `KVLAR_DIFF_CASES_04` set the number of policy sets,
//! `KVLAR_DIFF_SEED` the seed (printed by every run).
#![forbid(unsafe_code)]

mod common;

use std::cell::Cell;
use std::time::Instant;

use common::kvgen::case;
use common::*;
use kvlar_vm::Effect;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};

/// Compiles `yamls` with our compiler and loads them into the published engine.
fn both(
    ver: Ver,
    yamls: &[String],
) -> Result<(Option<Published>, kvlar_compiler::Compiled), String> {
    let published =
        Published::load(ver, &yamls.iter().map(String::as_str).collect::<Vec<_>>()).ok();
    let named: Vec<(String, &str)> = yamls
        .iter()
        .enumerate()
        .map(|(i, y)| (format!("generated-{i}.yaml"), y.as_str()))
        .collect();
    let refs: Vec<(&str, &str)> = named.iter().map(|(n, y)| (n.as_str(), *y)).collect();
    let compiled = kvlar_compiler::compile_strs(&refs).map_err(|f| {
        format!(
            "our compiler rejected a policy set kvlar-core {}:\n{f:?}\n{}",
            if published.is_some() {
                "accepts"
            } else {
                "also rejects"
            },
            yamls.join("---\n")
        )
    })?;
    Ok((published, compiled))
}

fn run(ver: Ver, cases_var: &str, default_cases: u32) {
    let start = Instant::now();
    let evaluations = Cell::new(0usize);
    let policy_sets = Cell::new(0usize);
    let skipped = Cell::new(0usize);
    let decided_by_rule = Cell::new(0usize);
    // How often the VM's fast paths are in play (so that this test checks them).
    let with_inline = Cell::new(0usize);
    let with_runs = Cell::new(0usize);
    let with_plans = Cell::new(0usize);
    let with_gate = Cell::new(0usize);
    let with_resolved = Cell::new(0usize);
    let mut runner = runner(cases_var, default_cases);
    let result = runner.run(&case(ver), |(yamls, calls)| {
        policy_sets.set(policy_sets.get() + 1);
        let (published, compiled) = match both(ver, &yamls) {
            Ok((Some(p), c)) => (p, c),
            Ok((None, _)) => {
                skipped.set(skipped.get() + 1);
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(e)),
        };
        let fast = compiled.program.fast_summary();
        with_inline.set(with_inline.get() + usize::from(fast.inline_rules > 0));
        with_runs.set(with_runs.get() + usize::from(fast.runs > 0));
        with_plans.set(with_plans.get() + usize::from(fast.plans > 0));
        with_gate.set(with_gate.get() + usize::from(fast.unknown_glob_gate));
        for c in &calls {
            let call = c.call();
            let theirs = published.evaluate(&call);
            let ours = Outcome::from_vm(compiled.program.evaluate(&call));
            // Again: a tool the dispatch table does not know now runs the
            // list resolved for it on the first call.
            let again = Outcome::from_vm(compiled.program.evaluate(&call));
            evaluations.set(evaluations.get() + 1);
            if !theirs.rule.starts_with('_') {
                decided_by_rule.set(decided_by_rule.get() + 1);
            }
            for (when, ours) in [("first", &ours), ("second", &again)] {
                if !agree(&theirs, ours) {
                    return Err(TestCaseError::fail(format!(
                        "disagreement with kvlar-core {ver:?} ({when} call)\ncall: {c:?}\nkvlar-core: {theirs:?}\nours:       {ours:?}\npolicies:\n{}",
                        yamls.join("---\n")
                    )));
                }
            }
        }
        with_resolved.set(with_resolved.get() + usize::from(compiled.program.resolved_tools() > 0));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (sets, skip, evals) = (policy_sets.get(), skipped.get(), evaluations.get());
    println!(
        "kvlar-core {ver:?}: {sets} policy sets ({skip} skipped: kvlar-core could not parse), \
         {evals} evaluations ({} decided by a rule), {} sets with inline rules, {} with bit runs, {} with one-pass plans, {} with the unknown-tool glob gate, {} with resolved unknown tools, {:.1?}",
        decided_by_rule.get(),
        with_inline.get(),
        with_runs.get(),
        with_plans.get(),
        with_gate.get(),
        with_resolved.get(),
        start.elapsed()
    );
    assert!(
        with_inline.get() * 2 > sets && with_runs.get() * 3 > sets,
        "generator too weak for the fast paths: {} inline, {} with runs, of {sets}",
        with_inline.get(),
        with_runs.get()
    );
    // Rare (most generated policies have a rule for every tool: about 1.2%
    // of sets have the gate, 364 of 30,000 in one long run), but it must be
    // met: unknown tools then skip the rules whose globs miss. At 1,100
    // sets that is ~13 per run; a floor of 6 failed about one run in 20,
    // so the floor is 1 (no set at all: ~2 in a million runs).
    assert!(
        with_gate.get() > 0 || sets < 300,
        "generator too weak for the unknown-tool glob gate: {} of {sets}",
        with_gate.get()
    );
    // One-pass plans are rare here too (most generated sets have rules for
    // every tool, or test two arguments: 14 of 1,100 sets in a run, about
    // e^-14 odds of none); `one_pass_plans_decide_like_the_reference`
    // generates them on purpose.
    assert!(
        with_plans.get() > 0 || sets < 300,
        "generator too weak for one-pass plans: {} of {sets}",
        with_plans.get()
    );
    // Most generated sets have tools no rule names exactly; the second
    // evaluation of each call runs their resolved lists (1,040 of 1,100 sets
    // in a run).
    assert!(
        with_resolved.get() * 2 > sets,
        "generator too weak for resolved unknown tools: {} of {sets}",
        with_resolved.get()
    );
    assert!(
        skip * 20 < sets.max(1),
        "too many skipped cases: {skip} of {sets}"
    );
    assert!(
        decided_by_rule.get() * 5 > evals,
        "generator too weak: only {} of {evals} decided by a rule",
        decided_by_rule.get()
    );
}

#[test]
fn differential_kvlar_core_0_3() {
    run(Ver::V03, "KVLAR_DIFF_CASES_03", 1100);
}

#[test]
fn differential_kvlar_core_0_4() {
    run(Ver::V04, "KVLAR_DIFF_CASES_04", 1100);
}

// ---------------------------------------------------------------------------
// Hand-written regressions for the awkward corners of the Kvlar format.
// Each asserts the expected outcome (so it cannot pass vacuously) and that
// kvlar-core agrees.
// ---------------------------------------------------------------------------

/// Checks each `(tool, args, expected rule id)` against both engines.
fn check(ver: Ver, yaml: &str, cases: &[(&str, Value, &str)]) {
    check_full(ver, &[yaml], "mcp-agent", "tool_call", cases);
}

fn check_full(ver: Ver, yamls: &[&str], agent: &str, action: &str, cases: &[(&str, Value, &str)]) {
    let published = Published::load(ver, yamls).expect("kvlar-core parses the policy");
    let named: Vec<(String, &str)> = yamls
        .iter()
        .enumerate()
        .map(|(i, y)| (format!("p{i}.yaml"), *y))
        .collect();
    let refs: Vec<(&str, &str)> = named.iter().map(|(n, y)| (n.as_str(), *y)).collect();
    let compiled = kvlar_compiler::compile_strs(&refs).unwrap_or_else(|f| panic!("compile: {f:?}"));
    let reference_out = |call: &kvlar_vm::Call<'_>| {
        Outcome::from_ref(kvlar_tests::reference::evaluate(&compiled.policies, call))
    };
    for (tool, args, want) in cases {
        let call = kvlar_vm::Call {
            tool,
            agent,
            action,
            args,
        };
        let theirs = published.evaluate(&call);
        let ours = Outcome::from_vm(compiled.program.evaluate(&call));
        let reference = reference_out(&call);
        assert_eq!(
            theirs.rule, *want,
            "kvlar-core {ver:?} for {tool} {args}: {theirs:?} (test expectation wrong?)"
        );
        assert!(
            agree(&theirs, &reference),
            "reference for {tool} {args}: {reference:?} vs kvlar-core {theirs:?}"
        );
        assert!(
            agree(&theirs, &ours),
            "VM for {tool} {args}: {ours:?} vs kvlar-core {theirs:?}"
        );
    }
}

fn one_condition(op: &str, field: &str, value: &str) -> String {
    format!(
        r#"name: corner
description: corner case
version: "1"
rules:
  - id: hit
    description: the condition holds
    match_on:
      conditions:
        - field: "{field}"
          operator: {op}
          value: {value}
    effect:
      type: deny
      reason: "hit"
"#
    )
}

const MISS: &str = "_default_deny";

#[test]
fn type_confusion_eq_is_json_equality() {
    for ver in [Ver::V03, Ver::V04] {
        let op = if ver == Ver::V03 { "equals" } else { "eq" };
        check(
            ver,
            &one_condition(op, "n", "1"),
            &[
                ("t", json!({"n": 1}), "hit"),
                ("t", json!({"n": 1.0}), MISS),
                ("t", json!({"n": "1"}), MISS),
                ("t", json!({"n": true}), MISS),
                ("t", json!({}), MISS),
            ],
        );
        check(
            ver,
            &one_condition(op, "n", "1.0"),
            &[
                ("t", json!({"n": 1.0}), "hit"),
                ("t", json!({"n": 1}), MISS),
            ],
        );
        check(
            ver,
            &one_condition(op, "n", "\"1\""),
            &[
                ("t", json!({"n": "1"}), "hit"),
                ("t", json!({"n": 1}), MISS),
            ],
        );
        check(
            ver,
            &one_condition(op, "n", "null"),
            &[("t", json!({"n": null}), "hit"), ("t", json!({}), MISS)],
        );
        check(
            ver,
            &one_condition(op, "n", "[1, \"a\"]"),
            &[
                ("t", json!({"n": [1, "a"]}), "hit"),
                ("t", json!({"n": [1.0, "a"]}), MISS),
                ("t", json!({"n": 1}), MISS),
            ],
        );
        check(
            ver,
            &one_condition(op, "n", "-0.0"),
            &[
                ("t", json!({"n": 0.0}), "hit"),
                ("t", json!({"n": 0}), MISS),
            ],
        );
        check(
            ver,
            &one_condition(op, "n", "18446744073709551615"),
            &[
                ("t", json!({"n": u64::MAX}), "hit"),
                ("t", json!({"n": 1.8446744073709552e19}), MISS),
            ],
        );
        let neq = if ver == Ver::V03 { "not_equals" } else { "neq" };
        check(
            ver,
            &one_condition(neq, "mode", "\"ro\""),
            &[
                ("t", json!({"mode": "ro"}), MISS),
                ("t", json!({"mode": "rw"}), "hit"),
                ("t", json!({"mode": 5}), "hit"),
                ("t", json!({}), MISS),
            ],
        );
    }
}

#[test]
fn non_strings_count_as_empty_strings() {
    for ver in [Ver::V03, Ver::V04] {
        // `contains: 5` is `contains ""`: holds for every present field.
        check(
            ver,
            &one_condition("contains", "x", "5"),
            &[
                ("t", json!({"x": "abc"}), "hit"),
                ("t", json!({"x": 7}), "hit"),
                ("t", json!({"x": null}), "hit"),
                ("t", json!({}), MISS),
            ],
        );
        check(
            ver,
            &one_condition("starts_with", "x", "\"\""),
            &[
                ("t", json!({"x": [1]}), "hit"),
                ("t", json!({"y": 1}), MISS),
            ],
        );
        check(
            ver,
            &one_condition("ends_with", "x", "\"5\""),
            &[
                ("t", json!({"x": 5}), MISS),
                ("t", json!({"x": "15"}), "hit"),
            ],
        );
    }
    // `matches` with a non-string value is the empty regex.
    check(
        Ver::V04,
        &one_condition("matches", "x", "5"),
        &[("t", json!({"x": 1}), "hit"), ("t", json!({}), MISS)],
    );
    check(
        Ver::V04,
        &one_condition("matches", "x", "\"^$\""),
        &[
            ("t", json!({"x": 12}), "hit"),
            ("t", json!({"x": ""}), "hit"),
            ("t", json!({"x": "a"}), MISS),
        ],
    );
}

#[test]
fn membership_and_not_in() {
    check(
        Ver::V03,
        &one_condition("one_of", "b", "[\"main\", 1]"),
        &[
            ("t", json!({"b": "main"}), "hit"),
            ("t", json!({"b": 1}), "hit"),
            ("t", json!({"b": 1.0}), MISS),
            ("t", json!({"b": "dev"}), MISS),
            ("t", json!({}), MISS),
        ],
    );
    check(
        Ver::V04,
        &one_condition("in", "b", "\"main\""),
        &[("t", json!({"b": "main"}), MISS)],
    );
    check(
        Ver::V04,
        &one_condition("not_in", "b", "[\"GET\", \"POST\"]"),
        &[
            ("t", json!({"b": "GET"}), MISS),
            ("t", json!({"b": "DELETE"}), "hit"),
            ("t", json!({}), "hit"),
            ("t", json!({"b": ["GET"]}), "hit"),
        ],
    );
    // `not_in` with a value that is not a list holds for every present field.
    check(
        Ver::V04,
        &one_condition("not_in", "b", "\"GET\""),
        &[("t", json!({"b": "GET"}), "hit"), ("t", json!({}), "hit")],
    );
}

#[test]
fn numeric_comparisons_v03() {
    check(
        Ver::V03,
        &one_condition("greater_than", "size", "1000"),
        &[
            ("t", json!({"size": 1001}), "hit"),
            ("t", json!({"size": 1000.5}), "hit"),
            ("t", json!({"size": 1000}), MISS),
            ("t", json!({"size": "5000"}), MISS),
            ("t", json!({}), MISS),
        ],
    );
    check(
        Ver::V03,
        &one_condition("less_than", "size", "\"10\""),
        &[("t", json!({"size": 1}), MISS)],
    );
    check(
        Ver::V03,
        &one_condition("not_exists", "token", "null"),
        &[("t", json!({}), "hit"), ("t", json!({"token": null}), MISS)],
    );
    check(
        Ver::V03,
        &one_condition("exists", "a.b", "false"),
        &[
            ("t", json!({"a": {"b": null}}), "hit"),
            ("t", json!({"a.b": 1}), "hit"),
            ("t", json!({"a": {"c": 1}}), MISS),
        ],
    );
}

#[test]
fn dotted_fields_and_dotted_keys() {
    for ver in [Ver::V03, Ver::V04] {
        let op = if ver == Ver::V03 { "equals" } else { "eq" };
        check(
            ver,
            &one_condition(op, "options.branch", "\"main\""),
            &[
                ("t", json!({"options": {"branch": "main"}}), "hit"),
                // A top-level key containing the dot wins over the nested path.
                (
                    "t",
                    json!({"options.branch": "dev", "options": {"branch": "main"}}),
                    MISS,
                ),
                ("t", json!({"options.branch": "main"}), "hit"),
                ("t", json!({"options": "main"}), MISS),
                // No array indexing.
                ("t", json!({"options": [{"branch": "main"}]}), MISS),
            ],
        );
        check(
            ver,
            &one_condition(op, "a.b.c", "1"),
            &[
                ("t", json!({"a": {"b": {"c": 1}}}), "hit"),
                // Only the top level is tried as a whole key.
                ("t", json!({"a": {"b.c": 1}}), MISS),
                ("t", json!({"a.b": {"c": 1}}), MISS),
            ],
        );
        check(
            ver,
            &one_condition(op, "list.0", "1"),
            &[
                ("t", json!({"list": [1]}), MISS),
                ("t", json!({"list": {"0": 1}}), "hit"),
            ],
        );
    }
}

#[test]
fn parameters_regex_on_json_text() {
    let yaml = r#"name: params
description: parameters corners
version: "1"
rules:
  - id: digits
    description: n is all digits as text
    match_on:
      parameters: {n: "^[0-9]+$"}
    effect: {type: deny, reason: "digits"}
  - id: object
    description: object text
    match_on:
      parameters: {opts: "^\\{\"a\":1"}
    effect: {type: deny, reason: "object"}
  - id: null-or-bool
    description: literal text of null and booleans
    match_on:
      parameters: {flag: "^(null|true)$"}
    effect: {type: require_approval, reason: "flag"}
  - id: empty-matches-all-present
    description: empty regex
    match_on:
      parameters: {x: ""}
    effect: {type: allow}
"#;
    for ver in [Ver::V03, Ver::V04] {
        check(
            ver,
            yaml,
            &[
                ("t", json!({"n": 42}), "digits"),
                ("t", json!({"n": "42"}), "digits"),
                ("t", json!({"n": 4.0}), MISS),
                // Compact JSON with keys in sorted order.
                ("t", json!({"opts": {"b": 2, "a": 1}}), "object"),
                ("t", json!({"opts": {"a": 2}}), MISS),
                ("t", json!({"opts": {"a": 10}}), "object"),
                ("t", json!({"flag": null}), "null-or-bool"),
                ("t", json!({"flag": true}), "null-or-bool"),
                ("t", json!({"flag": "true"}), "null-or-bool"),
                ("t", json!({"x": []}), "empty-matches-all-present"),
                ("t", json!({}), MISS),
            ],
        );
    }
}

#[test]
fn globs_with_classes_and_metachars() {
    let yaml = r#"name: globs
description: glob corners
version: "1"
rules:
  - {id: neg-class, description: d, match_on: {resources: ["[!a]b"]}, effect: {type: deny, reason: "neg"}}
  - {id: class, description: d, match_on: {resources: ["[a-c]x*"]}, effect: {type: deny, reason: "class"}}
  - {id: unterminated, description: d, match_on: {resources: ["q[b"]}, effect: {type: deny, reason: "unterminated"}}
  - {id: dot, description: d, match_on: {resources: ["d.e?"]}, effect: {type: deny, reason: "dot"}}
  - {id: parens, description: d, match_on: {resources: ["f(*)"]}, effect: {type: deny, reason: "parens"}}
  - {id: empty-class, description: d, match_on: {resources: ["[]g]"]}, effect: {type: deny, reason: "empty class"}}
  - {id: backwards-range, description: d, match_on: {resources: ["[z-a]h*"]}, effect: {type: deny, reason: "bad range"}}
  - {id: regex-class, description: d, match_on: {resources: ["[\\d]i"]}, effect: {type: deny, reason: "regex class"}}
  - {id: star-no-newline, description: d, match_on: {resources: ["j*"]}, effect: {type: deny, reason: "star"}}
  - {id: case, description: d, match_on: {resources: ["K*"]}, effect: {type: deny, reason: "case"}}
"#;
    for ver in [Ver::V03, Ver::V04] {
        check(
            ver,
            yaml,
            &[
                ("bb", json!({}), "neg-class"),
                ("ab", json!({}), MISS),
                ("b", json!({}), MISS),
                ("bx", json!({}), "class"),
                ("cxyz", json!({}), "class"),
                ("dx", json!({}), MISS),
                ("q[b", json!({}), "unterminated"),
                ("qab", json!({}), MISS),
                ("d.ef", json!({}), "dot"),
                ("dxef", json!({}), MISS),
                ("f(x)", json!({}), "parens"),
                ("fx", json!({}), MISS),
                // `[]g]` is a regex class of `]` and `g`.
                ("g", json!({}), "empty-class"),
                ("]", json!({}), "empty-class"),
                ("[]g]", json!({}), MISS),
                ("[z-a]h*", json!({}), "backwards-range"),
                ("zh", json!({}), MISS),
                ("7i", json!({}), "regex-class"),
                ("j\nk", json!({}), MISS),
                ("jk", json!({}), "star-no-newline"),
                ("kx", json!({}), MISS),
                ("Kx", json!({}), "case"),
            ],
        );
    }
}

#[test]
fn agent_and_action_globs() {
    let yaml = r#"name: who
description: agents and action types
version: "1"
rules:
  - {id: bots, description: d, match_on: {agent_ids: ["bot-?"], action_types: ["tool_*"]}, effect: {type: deny, reason: "bots"}}
  - {id: reads, description: d, match_on: {action_types: ["resource_read"]}, effect: {type: allow}}
"#;
    for ver in [Ver::V03, Ver::V04] {
        check_full(
            ver,
            &[yaml],
            "bot-1",
            "tool_call",
            &[("x", json!({}), "bots")],
        );
        check_full(
            ver,
            &[yaml],
            "bot-12",
            "tool_call",
            &[("x", json!({}), MISS)],
        );
        check_full(
            ver,
            &[yaml],
            "bot-1",
            "resource_read",
            &[("x", json!({}), "reads")],
        );
    }
}

#[test]
fn hosts_with_ports_ipv6_and_userinfo() {
    let yaml = one_condition("in_domain", "url", "[\"example.com\", \"::1\", 5]");
    check(
        Ver::V04,
        &yaml,
        &[
            ("t", json!({"url": "https://example.com/x"}), "hit"),
            ("t", json!({"url": "http://API.Example.COM:8080/"}), "hit"),
            ("t", json!({"url": "example.com"}), "hit"),
            ("t", json!({"url": "notexample.com"}), MISS),
            ("t", json!({"url": "http://[::1]:8080/x"}), "hit"),
            // Kvlar does not strip userinfo: the "host" is `user@example.com`.
            ("t", json!({"url": "https://user@example.com/"}), MISS),
            // `user:pw@evil.com` is cut at the first colon: host `user`.
            (
                "t",
                json!({"url": "https://user:pw@sub.example.com/"}),
                MISS,
            ),
            // Query strings are not stripped.
            ("t", json!({"url": "https://example.com?x=/y"}), MISS),
            ("t", json!({"url": 5}), MISS),
            ("t", json!({}), MISS),
        ],
    );
    check(
        Ver::V04,
        &one_condition("not_in_domain", "url", "\"Example.com\""),
        &[
            ("t", json!({"url": "https://evil.com"}), "hit"),
            ("t", json!({"url": "https://a.example.com"}), MISS),
            ("t", json!({}), MISS),
            ("t", json!({"url": 7}), "hit"),
        ],
    );
    // A non-string, non-list domain: in_domain never, not_in_domain always.
    check(
        Ver::V04,
        &one_condition("not_in_domain", "url", "5"),
        &[("t", json!({"url": "https://example.com"}), "hit")],
    );
    // Empty domain: the empty host and hosts ending in a dot.
    check(
        Ver::V04,
        &one_condition("in_domain", "url", "\"\""),
        &[
            ("t", json!({"url": 5}), "hit"),
            ("t", json!({"url": "http://example.com./"}), "hit"),
            ("t", json!({"url": "http://example.com/"}), MISS),
        ],
    );
}

#[test]
fn default_outcome_and_policy_order() {
    let first = r#"name: first
description: allow by default
version: "1"
default_outcome: allow
rules:
  - {id: no-bash, description: d, match_on: {resources: [bash]}, effect: {type: deny, reason: "no bash"}}
"#;
    let second = r#"name: second
description: never reached when the first allows by default
version: "1"
rules:
  - {id: all, description: d, match_on: {}, effect: {type: require_approval, reason: "ask"}}
"#;
    let empty_allow =
        "name: e\ndescription: d\nversion: \"1\"\ndefault_outcome: allow\nrules: []\n";
    check_full(
        Ver::V04,
        &[first, second],
        "mcp-agent",
        "tool_call",
        &[
            ("bash", json!({}), "no-bash"),
            ("ls", json!({}), "_default_allow"),
        ],
    );
    // A policy without rules does not apply its default.
    check_full(
        Ver::V04,
        &[empty_allow, second],
        "mcp-agent",
        "tool_call",
        &[("ls", json!({}), "all")],
    );
    check_full(
        Ver::V04,
        &[empty_allow],
        "mcp-agent",
        "tool_call",
        &[("ls", json!({}), MISS)],
    );
    let deny_default = first.replace("default_outcome: allow", "default_outcome: deny");
    check_full(
        Ver::V04,
        &[&deny_default, second],
        "mcp-agent",
        "tool_call",
        &[("ls", json!({}), "all")],
    );
}

#[test]
fn reasons_are_carried_verbatim() {
    let yaml = r#"name: reasons
description: d
version: "1"
rules:
  - {id: r, description: d, match_on: {resources: [x]}, effect: {type: require_approval, reason: "Ask \"a human\" — é\n2"}}
"#;
    let published = Published::load(Ver::V04, &[yaml]).unwrap();
    let compiled = kvlar_compiler::compile_str("r.yaml", yaml).unwrap();
    let args = json!({});
    let call = kvlar_vm::Call::mcp("x", &args);
    let theirs = published.evaluate(&call);
    let ours = Outcome::from_vm(compiled.program.evaluate(&call));
    assert_eq!(theirs.reason.as_deref(), Some("Ask \"a human\" — é\n2"));
    assert_eq!(theirs, ours);
    assert_eq!(ours.effect, Effect::RequireApproval);
}

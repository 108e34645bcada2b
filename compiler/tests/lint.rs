//! `kvlar lint`: every finding with the exact rules and `file:line:column` of
//! each label, the cases a naive linter gets wrong, and snapshots of the
//! rendered text.

use kvlar_compiler::diagnostic::render;
use kvlar_compiler::lint::{lint, Warning};

const HEAD: &str = "name: p\ndescription: d\nversion: \"1\"\n";

fn run(files: &[(&str, &str)]) -> Vec<Warning> {
    let compiled = kvlar_compiler::compile_strs(files).unwrap_or_else(|e| panic!("{e:?}"));
    lint(&compiled)
}

fn one_file(rules: &str) -> Vec<Warning> {
    run(&[("p.yaml", &format!("{HEAD}rules:\n{rules}"))])
}

type Pos = (String, usize, usize);

/// (code, rule, positions) of every finding.
fn summary(ws: &[Warning]) -> Vec<(&'static str, String, Vec<Pos>)> {
    ws.iter()
        .map(|w| (w.code_str(), w.subject().to_string(), w.positions()))
        .collect()
}

fn at(file: &str, line: usize, col: usize) -> Pos {
    (file.to_string(), line, col)
}

fn codes(ws: &[Warning]) -> Vec<(&'static str, String)> {
    ws.iter()
        .map(|w| (w.code_str(), w.subject().to_string()))
        .collect()
}

// ---------------------------------------------------------------- shadowed --

#[test]
fn glob_before_exact_is_shadowed() {
    let ws = one_file(
        "  - id: allow-read\n    tools: [\"read_*\"]\n    effect: allow\n  - id: deny-read-file\n    tools: [read_file]\n    when: args.path contains \".env\"\n    effect: deny\n    reason: no\n",
    );
    assert_eq!(
        summary(&ws),
        vec![(
            "kvlar::lint::shadowed",
            "deny-read-file".to_string(),
            vec![at("p.yaml", 8, 9), at("p.yaml", 5, 9)]
        )]
    );
    let Warning::Shadowed { by, .. } = &ws[0] else {
        panic!("{:?}", ws[0])
    };
    assert_eq!(by, &["allow-read"]);
    assert!(ws[0].is_warning());
    insta::assert_snapshot!(render(&ws[0]));
}

#[test]
fn exact_before_glob_is_not_shadowed() {
    let ws = one_file(
        "  - id: deny-read-file\n    tools: [read_file]\n    effect: deny\n    reason: no\n  - id: allow-read\n    tools: [\"read_*\"]\n    effect: allow\n",
    );
    assert!(ws.is_empty(), "{ws:#?}");
}

#[test]
fn earlier_rule_with_an_extra_condition_does_not_shadow() {
    // `deny-env` only takes the calls whose path contains ".env": the later
    // rule still decides the others.
    let ws = one_file(
        "  - id: deny-env\n    tools: [read_file]\n    when: args.path contains \".env\"\n    effect: deny\n    reason: no\n  - id: allow-read\n    tools: [read_file]\n    effect: allow\n",
    );
    assert!(ws.is_empty(), "{ws:#?}");
}

#[test]
fn different_agents_do_not_shadow() {
    let ws = one_file(
        "  - id: a\n    match_on:\n      resources: [bash]\n      agent_ids: [alice]\n    effect: allow\n  - id: b\n    match_on:\n      resources: [bash]\n      agent_ids: [bob]\n    effect: deny\n    reason: no\n",
    );
    assert!(ws.is_empty(), "{ws:#?}");
}

#[test]
fn glob_covering_glob() {
    // `read_*` covers `read_file*`; `*_file` covers `read_*_file`; `re*` does
    // not cover `r*`.
    let ws = one_file(
        "  - id: a\n    tools: [\"read_*\"]\n    effect: allow\n  - id: b\n    tools: [\"read_file*\"]\n    effect: deny\n    reason: x\n  - id: c\n    tools: [\"*_file\"]\n    effect: allow\n  - id: d\n    tools: [\"write_*_file\"]\n    effect: deny\n    reason: x\n  - id: e\n    tools: [\"re*\"]\n    effect: allow\n  - id: f\n    tools: [\"r*\"]\n    effect: deny\n    reason: x\n",
    );
    assert_eq!(
        codes(&ws),
        vec![
            ("kvlar::lint::shadowed", "b".to_string()),
            ("kvlar::lint::shadowed", "d".to_string()),
        ]
    );
}

#[test]
fn equality_subset_is_shadowed_across_vocabularies() {
    // Kvlar `eq` before a native `==` on the same argument plus one more test.
    let ws = one_file(
        "  - id: ro\n    match_on:\n      resources: [query]\n      conditions:\n        - field: mode\n          operator: eq\n          value: ro\n    effect: allow\n  - id: ro-big\n    tools: [query]\n    when: args.mode == \"ro\" && args.limit > 100\n    effect: require_approval\n    reason: big\n",
    );
    assert_eq!(
        summary(&ws),
        vec![(
            "kvlar::lint::shadowed",
            "ro-big".to_string(),
            vec![at("p.yaml", 13, 9), at("p.yaml", 5, 9)]
        )]
    );
}

#[test]
fn literal_implications_are_decided_with_vm_semantics() {
    // `mode in [...]` ⊇ `mode == "ro"`; `startswith "adm"` ⊇ `== "admin"`;
    // Kvlar `parameters` regex against a known value.
    let ws = one_file(
        "  - id: modes\n    tools: [q]\n    when: args.mode in [\"ro\", \"rw\"]\n    effect: allow\n  - id: ro\n    tools: [q]\n    when: args.mode == \"ro\"\n    effect: deny\n    reason: x\n  - id: admins\n    tools: [login]\n    when: args.user startswith \"adm\"\n    effect: deny\n    reason: x\n  - id: admin\n    tools: [login]\n    when: args.user == \"admin\"\n    effect: allow\n  - id: rm\n    match_on:\n      resources: [bash]\n      parameters:\n        command: '\\brm\\b'\n    effect: deny\n    reason: x\n  - id: rm-root\n    match_on:\n      resources: [bash]\n      conditions:\n        - field: command\n          operator: equals\n          value: rm -rf /\n    effect: deny\n    reason: x\n",
    );
    assert_eq!(
        codes(&ws),
        vec![
            ("kvlar::lint::shadowed", "ro".to_string()),
            ("kvlar::lint::shadowed", "admin".to_string()),
            ("kvlar::lint::shadowed", "rm-root".to_string()),
        ]
    );
}

#[test]
fn a_value_outside_the_earlier_test_is_not_shadowed() {
    // `"root"` does not start with "adm"; `1 == 1.0`
    // natively, so the number case is left alone rather than guessed.
    let ws = one_file(
        "  - id: admins\n    tools: [login]\n    when: args.user startswith \"adm\"\n    effect: deny\n    reason: x\n  - id: root\n    tools: [login]\n    when: args.user == \"root\"\n    effect: allow\n  - id: mode\n    tools: [q]\n    when: args.mode in [\"ro\"]\n    effect: allow\n  - id: mode-rw\n    tools: [q]\n    when: args.mode == \"rw\"\n    effect: deny\n    reason: x\n",
    );
    assert!(ws.is_empty(), "{ws:#?}");
}

#[test]
fn several_earlier_rules_shadow_tool_by_tool() {
    let ws = one_file(
        "  - id: deny-a\n    tools: [a]\n    effect: deny\n    reason: x\n  - id: deny-b\n    tools: [\"b*\"]\n    effect: deny\n    reason: x\n  - id: allow-ab\n    tools: [a, bee]\n    effect: allow\n",
    );
    assert_eq!(
        summary(&ws),
        vec![(
            "kvlar::lint::shadowed",
            "allow-ab".to_string(),
            vec![at("p.yaml", 13, 9), at("p.yaml", 5, 9), at("p.yaml", 9, 9)]
        )]
    );
    let Warning::Shadowed { by, .. } = &ws[0] else {
        panic!()
    };
    assert_eq!(by, &["deny-a", "deny-b"]);
}

#[test]
fn shadowed_across_files_uses_a_related_note() {
    let ws = run(&[
        (
            "first.yaml",
            "name: first\ndescription: d\nversion: \"1\"\nrules:\n  - id: allow-read\n    match_on:\n      resources: [\"read_*\"]\n    effect:\n      type: allow\n",
        ),
        (
            "second.yaml",
            "name: second\ndescription: d\nversion: \"1\"\nrules:\n  - id: other\n    tools: [write]\n    effect: allow\n  - id: deny-read\n    tools: [read_file]\n    effect: deny\n    reason: x\n",
        ),
    ]);
    assert_eq!(
        summary(&ws),
        vec![(
            "kvlar::lint::shadowed",
            "deny-read".to_string(),
            vec![at("second.yaml", 8, 9), at("first.yaml", 5, 9)]
        )]
    );
}

#[test]
fn star_against_an_unconstrained_tool_may_be_shadowed() {
    // Only a tool name containing a newline gets past `*`.
    let ws = one_file(
        "  - id: deny-all-tools\n    tools: [\"*\"]\n    effect: deny\n    reason: x\n  - id: allow-x\n    when: args.x == 1\n    effect: allow\n",
    );
    assert_eq!(
        summary(&ws),
        vec![(
            "kvlar::lint::may_be_shadowed",
            "allow-x".to_string(),
            vec![at("p.yaml", 9, 9), at("p.yaml", 5, 9)]
        )]
    );
}

// ------------------------------------------------------------- unreachable --

#[test]
fn rules_after_a_catch_all() {
    let ws = one_file(
        "  - id: everything\n    effect: deny\n    reason: x\n  - id: late\n    tools: [a]\n    effect: allow\n  - id: later\n    effect: allow\n",
    );
    assert_eq!(
        summary(&ws),
        vec![
            (
                "kvlar::lint::unreachable",
                "late".to_string(),
                vec![at("p.yaml", 8, 9), at("p.yaml", 5, 9)]
            ),
            (
                "kvlar::lint::unreachable",
                "later".to_string(),
                vec![at("p.yaml", 11, 9), at("p.yaml", 5, 9)]
            ),
        ]
    );
    insta::assert_snapshot!(render(&ws[0]));
}

#[test]
fn policies_after_default_allow_are_unreachable() {
    let ws = run(&[
        (
            "open.yaml",
            "name: open\ndescription: d\nversion: \"1\"\ndefault_outcome: allow\nrules:\n  - id: deny-rm\n    tools: [rm]\n    effect: deny\n    reason: x\n",
        ),
        (
            "later.yaml",
            "name: later\ndescription: d\nversion: \"1\"\nrules:\n  - id: deny-bash\n    tools: [bash]\n    effect: deny\n    reason: x\n",
        ),
    ]);
    assert_eq!(
        summary(&ws),
        vec![(
            "kvlar::lint::unreachable_policy",
            "later".to_string(),
            vec![at("later.yaml", 1, 7), at("open.yaml", 4, 18)]
        )]
    );
    insta::assert_snapshot!(render(&ws[0]));
}

#[test]
fn default_allow_without_rules_blocks_nothing() {
    let ws = run(&[
        (
            "open.yaml",
            "name: open\ndescription: d\nversion: \"1\"\ndefault_outcome: allow\nrules: []\n",
        ),
        (
            "later.yaml",
            "name: later\ndescription: d\nversion: \"1\"\nrules:\n  - id: deny-bash\n    tools: [bash]\n    effect: deny\n    reason: x\n",
        ),
    ]);
    assert!(ws.is_empty(), "{ws:#?}");
}

// ---------------------------------------------------------------- conflict --

#[test]
fn stricter_rule_overlapping_an_earlier_allow_is_a_note() {
    let ws = one_file(
        "  - id: allow-bot\n    tools: [write_file]\n    match_on:\n      agent_ids: [\"bot-*\"]\n    effect: allow\n  - id: deny-env\n    tools: [write_file]\n    when: args.path contains \".env\"\n    effect: deny\n    reason: no\n",
    );
    assert_eq!(
        summary(&ws),
        vec![(
            "kvlar::lint::conflict",
            "deny-env".to_string(),
            vec![at("p.yaml", 10, 9), at("p.yaml", 5, 9)]
        )]
    );
    assert!(!ws[0].is_warning());
    assert_eq!(
        ws[0].to_string(),
        "rule `deny-env` (deny) overlaps the earlier rule `allow-bot` (allow): `allow-bot` decides the calls both match"
    );
}

#[test]
fn no_conflict_note_when_the_overlap_is_not_proven_or_intended() {
    // Same argument tested differently (overlap unknown); exceptions first
    // (deny before allow); a fallback with no conditions; a narrower tool list.
    let ws = one_file(
        "  - id: allow-ws\n    tools: [read_file]\n    when: args.path under \"/workspace\"\n    effect: allow\n  - id: deny-env\n    tools: [read_file]\n    when: args.path contains \".env\"\n    effect: deny\n    reason: no\n  - id: review\n    tools: [read_file]\n    effect: require_approval\n    reason: r\n  - id: allow-list\n    tools: [list]\n    effect: allow\n  - id: deny-keys\n    tools: [\"*\"]\n    when: args.path endswith \".pem\"\n    effect: deny\n    reason: k\n",
    );
    assert!(ws.is_empty(), "{ws:#?}");
}

// ------------------------------------------------------------- empty regex --

#[test]
fn empty_matching_regex_in_a_deny_rule() {
    let ws = one_file(
        "  - id: deny-rm\n    match_on:\n      resources: [bash]\n      parameters:\n        command: \"rm -rf|\"\n    effect: deny\n    reason: x\n  - id: deny-native\n    tools: [sh]\n    when: args.c =~ /(curl)?/\n    effect: deny\n    reason: x\n",
    );
    assert_eq!(
        summary(&ws),
        vec![
            (
                "kvlar::lint::empty_regex",
                "deny-rm".to_string(),
                vec![at("p.yaml", 9, 9), at("p.yaml", 5, 9)]
            ),
            (
                "kvlar::lint::empty_regex",
                "deny-native".to_string(),
                vec![at("p.yaml", 14, 11), at("p.yaml", 12, 9)]
            ),
        ]
    );
}

#[test]
fn anchored_negated_glob_and_allow_regexes_are_not_flagged() {
    // `^$` matches only the empty string; `!~` and a negated test fire on
    // mismatch; a glob is a whole-string match; allow rules are not checked.
    let ws = one_file(
        "  - id: deny-blank\n    tools: [sh]\n    when: args.c =~ /^\\s*$/\n    effect: deny\n    reason: x\n  - id: deny-neg\n    tools: [sh]\n    when: args.c !~ /a*/ || !(args.d =~ /b?/)\n    effect: deny\n    reason: x\n  - id: deny-glob\n    tools: [sh]\n    when: args.p glob \"**\"\n    effect: deny\n    reason: x\n  - id: allow-any\n    tools: [sh]\n    when: args.c =~ /x|/\n    effect: allow\n",
    );
    assert!(ws.is_empty(), "{ws:#?}");
}

// ------------------------------------------------------------- path prefix --

#[test]
fn startswith_on_a_path() {
    let ws = one_file(
        "  - id: allow-ws\n    tools: [read_file]\n    when: args.path startswith \"/workspace/\"\n    effect: allow\n  - id: allow-kv\n    match_on:\n      resources: [write_file]\n      conditions:\n        - field: target_dir\n          operator: starts_with\n          value: tmp/\n    effect: allow\n",
    );
    assert_eq!(
        summary(&ws),
        vec![
            (
                "kvlar::lint::path_prefix",
                "allow-ws".to_string(),
                vec![at("p.yaml", 7, 11), at("p.yaml", 5, 9)]
            ),
            (
                "kvlar::lint::path_prefix",
                "allow-kv".to_string(),
                vec![at("p.yaml", 13, 11), at("p.yaml", 9, 9)]
            ),
        ]
    );
    let Warning::PathPrefix { witness, help, .. } = &ws[1] else {
        panic!()
    };
    assert_eq!(witness, "tmp/../etc/passwd");
    assert!(help.contains("`args.target_dir under \"tmp\"`"), "{help}");
    insta::assert_snapshot!(render(&ws[0]));
}

#[test]
fn startswith_guarded_against_dotdot_is_not_flagged() {
    // An earlier deny rule refusing `..` for these tools, a `..` test in the
    // rule itself, a normalised path, and a prefix that is not a path.
    let ws = one_file(
        "  - id: deny-traversal\n    match_on:\n      resources: [\"*\"]\n      conditions:\n        - field: path\n          operator: matches\n          value: '(^|/)\\.\\.(/|$)'\n    effect:\n      type: deny\n      reason: no\n  - id: allow-ws\n    match_on:\n      resources: [read_file]\n      conditions:\n        - field: path\n          operator: starts_with\n          value: /workspace/\n    effect:\n      type: allow\n  - id: allow-src\n    tools: [open]\n    when: args.file startswith \"/src/\" && !(args.file contains \"..\")\n    effect: allow\n  - id: allow-norm\n    tools: [open]\n    when: normpath(args.file) startswith \"/srv/\"\n    effect: allow\n  - id: allow-name\n    tools: [greet]\n    when: args.name startswith \"Dr\"\n    effect: allow\n",
    );
    assert!(ws.is_empty(), "{ws:#?}");
}

#[test]
fn traversal_guard_for_other_tools_does_not_count() {
    let ws = one_file(
        "  - id: deny-traversal\n    tools: [write_file]\n    when: args.path contains \"..\"\n    effect: deny\n    reason: no\n  - id: allow-ws\n    tools: [read_file]\n    when: args.path startswith \"/workspace/\"\n    effect: allow\n",
    );
    assert_eq!(
        codes(&ws),
        vec![("kvlar::lint::path_prefix", "allow-ws".to_string())]
    );
}

// ---------------------------------------------------------------- policies --

#[test]
fn curated_policies_have_no_warnings() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".yaml") || name.ends_with(".test.yaml") {
            continue;
        }
        let compiled = kvlar_compiler::compile_files(std::slice::from_ref(&path))
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let warnings: Vec<String> = lint(&compiled)
            .iter()
            .filter(|w| w.is_warning())
            .map(|w| render(w))
            .collect();
        assert!(warnings.is_empty(), "{name}:\n{}", warnings.join("\n"));
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} policies found");
}

#[test]
fn fixtures_never_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "yaml") {
            if let Ok(c) = kvlar_compiler::compile_files(&[path]) {
                for w in lint(&c) {
                    let _ = render(&w);
                    assert!(!w.positions().is_empty());
                }
            }
        }
    }
}

// ------------------------------------------------------------ --tools file --

use kvlar_compiler::lint::tools::{check, Inventory};

/// A subset of `@modelcontextprotocol/server-filesystem`'s real `tools/list`.
const FS_TOOLS: &str = r#"{"tools": [
 {"name": "read_file", "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}, "tail": {"type": "number"}, "head": {"type": "number"}}, "required": ["path"]}},
 {"name": "read_multiple_files", "inputSchema": {"type": "object", "properties": {"paths": {"type": "array", "items": {"type": "string"}}}, "required": ["paths"]}},
 {"name": "edit_file", "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}, "edits": {"type": "array", "items": {"type": "object", "properties": {"oldText": {"type": "string"}, "newText": {"type": "string"}}}}, "dryRun": {"type": "boolean"}}}},
 {"name": "move_file", "inputSchema": {"type": "object", "properties": {"source": {"type": "string"}, "destination": {"type": "string"}}}}
]}"#;

fn against_tools(rules: &str) -> Vec<Warning> {
    let compiled = kvlar_compiler::compile_strs(&[("p.yaml", &format!("{HEAD}rules:\n{rules}"))])
        .unwrap_or_else(|e| panic!("{e:?}"));
    let inventory = Inventory::parse("tools.json", FS_TOOLS).unwrap_or_else(|e| panic!("{e:?}"));
    check(&compiled, &inventory)
}

#[test]
fn argument_no_tool_of_the_rule_takes() {
    let ws = against_tools(
        "  - id: deny-secrets\n    tools: [read_file]\n    when: args.pth contains \".ssh\"\n    effect: deny\n    reason: no\n",
    );
    assert_eq!(
        summary(&ws),
        vec![(
            "kvlar::lint::unknown_argument",
            "deny-secrets".to_string(),
            vec![at("p.yaml", 7, 11)]
        )]
    );
    let Warning::UnknownArgument {
        arg,
        tools_text,
        help,
        span,
        ..
    } = &ws[0]
    else {
        panic!("{:?}", ws[0])
    };
    assert_eq!(arg, "`args.pth`");
    assert_eq!(tools_text, "tool `read_file`");
    assert_eq!(span.len(), "args.pth".len());
    assert_eq!(
        help,
        "did you mean `path`? declared there: `head`, `path`, `tail`"
    );
    insta::assert_snapshot!(render(&ws[0]));
}

#[test]
fn argument_declared_by_one_of_the_rule_tools_is_fine() {
    // `paths` is only read_multiple_files', `path` only the others': with a
    // glob covering both, each is declared by some tool the rule applies to.
    let ws = against_tools(
        "  - id: deny-etc\n    tools: [\"read_*\"]\n    when: 'args.path under \"/etc\" || any(p in args.paths: p under \"/etc\")'\n    effect: deny\n    reason: no\n",
    );
    assert!(ws.is_empty(), "{ws:#?}");
}

#[test]
fn argument_of_another_tool_and_nested_paths() {
    let ws = against_tools(
        "  - id: moves\n    tools: [move_file]\n    when: args.path under \"/etc\"\n    effect: deny\n    reason: no\n  - id: edits\n    tools: [edit_file]\n    when: 'any(e in args.edits: e.newTxt contains \"sudo\") || any(e in args.edits: e.oldText == \"\")'\n    effect: deny\n    reason: no\n",
    );
    assert_eq!(
        summary(&ws),
        vec![
            (
                "kvlar::lint::unknown_argument",
                "moves".to_string(),
                vec![at("p.yaml", 7, 11)]
            ),
            (
                "kvlar::lint::unknown_argument",
                "edits".to_string(),
                vec![at("p.yaml", 12, 33)]
            ),
        ]
    );
    let Warning::UnknownArgument { arg, help, .. } = &ws[1] else {
        panic!("{:?}", ws[1])
    };
    assert_eq!(arg, "`args.edits[*].newTxt`");
    assert_eq!(
        help,
        "did you mean `newText`? declared there: `newText`, `oldText`"
    );
    let Warning::UnknownArgument { help, .. } = &ws[0] else {
        panic!("{:?}", ws[0])
    };
    assert_eq!(help, "declared there: `destination`, `source`");
}

#[test]
fn kvlar_parameters_and_fields_against_tools() {
    let ws = against_tools(
        "  - id: kv\n    description: d\n    match_on:\n      resources: [read_file, edit_file]\n      parameters:\n        paht: \"\\\\.ssh\"\n      conditions:\n        - field: edits.dryRun\n          operator: eq\n          value: true\n        - field: dryRun\n          operator: eq\n          value: true\n    effect:\n      type: deny\n      reason: no\n",
    );
    // `edits.dryRun`: neither a top-level key nor `dryRun` inside `edits`
    // (a list); `dryRun` alone is edit_file's.
    assert_eq!(
        summary(&ws),
        vec![
            (
                "kvlar::lint::unknown_argument",
                "kv".to_string(),
                vec![at("p.yaml", 10, 9)]
            ),
            (
                "kvlar::lint::unknown_argument",
                "kv".to_string(),
                vec![at("p.yaml", 12, 18)]
            ),
        ]
    );
    let Warning::UnknownArgument {
        arg,
        tools_text,
        help,
        ..
    } = &ws[0]
    else {
        panic!("{:?}", ws[0])
    };
    assert_eq!(arg, "parameters key `paht`");
    assert_eq!(tools_text, "any of the tools `read_file`, `edit_file`");
    assert!(help.starts_with("did you mean `path`?"), "{help}");
}

#[test]
fn tool_name_typo_is_reported_and_far_names_are_not() {
    let ws = against_tools(
        "  - id: typo\n    tools: [read_fiel, run_command, \"edit_*\"]\n    when: args.path under \"/etc\"\n    effect: deny\n    reason: no\n",
    );
    assert_eq!(
        summary(&ws),
        vec![(
            "kvlar::lint::unknown_tool",
            "typo".to_string(),
            vec![at("p.yaml", 6, 13)]
        )]
    );
    let Warning::UnknownTool { tool, help, .. } = &ws[0] else {
        panic!("{:?}", ws[0])
    };
    assert_eq!(tool, "read_fiel");
    assert!(help.starts_with("did you mean `read_file`?"), "{help}");
}

#[test]
fn rules_for_tools_the_file_does_not_list_are_not_checked() {
    let ws = against_tools(
        "  - id: shell\n    tools: [run_command]\n    when: args.command contains \"rm\"\n    effect: deny\n    reason: no\n  - id: by-name\n    when: 'tool == \"run_command\" && args.cmd == \"x\"'\n    effect: deny\n    reason: no\n",
    );
    assert!(ws.is_empty(), "{ws:#?}");
}

#[test]
fn rules_for_every_tool_are_not_checked_and_tool_tests_in_when_restrict() {
    // A rule for every tool is written for any server ("a tool that takes a
    // url"); a `tool in [...]` test in `when` restricts like `tools:`.
    let ws = against_tools(
        "  - id: any-tool\n    when: exists(args.destination) || exists(args.url)\n    effect: deny\n    reason: no\n  - id: named\n    when: 'tool in [\"move_file\", \"read_file\"] && exists(args.url)'\n    effect: deny\n    reason: no\n",
    );
    assert_eq!(
        summary(&ws),
        vec![(
            "kvlar::lint::unknown_argument",
            "named".to_string(),
            vec![at("p.yaml", 10, 57)]
        )]
    );
    let Warning::UnknownArgument { tools_text, .. } = &ws[0] else {
        panic!("{:?}", ws[0])
    };
    assert_eq!(tools_text, "any of the tools `read_file`, `move_file`");
}

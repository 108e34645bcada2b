//! The bypass suite, at the level of the compiler and the VM: calls dressed
//! up to slip past a rule (tool-name tricks against exact and glob rules,
//! path tricks against `under`, URL tricks against `host()`, huge and deeply
//! nested arguments, ambiguous keys), each asserted to the exact decision
//! and rule id — checked against the reference interpreter too.
//!
//! Where a trick gets through, it is because the rule as written does not
//! cover it (Kvlar matches names exactly and case-sensitively, by design);
//! those cases are asserted as they are, next to the policy that holds
//! (README, "Writing policies that hold"). Proxy-level tricks (the wire
//! format) are in `tests/e2e/test_bypass.py` and `cli/src/proxy/tests.rs`.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use kvlar_compiler::Compiled;
use kvlar_tests::proxy_classify::{client_line, ClientLine};
use kvlar_tests::reference;
use kvlar_vm::{Call, Effect};
use serde_json::{json, Value};

use Effect::{Allow, Deny, RequireApproval};

struct Policy(Compiled);

impl Policy {
    fn new(yaml: &str) -> Policy {
        let full = format!("name: p\ndescription: bypass suite\nversion: \"1\"\n{yaml}");
        Policy(kvlar_compiler::compile_str("p.yaml", &full).unwrap_or_else(|f| panic!("{f:?}")))
    }

    /// The decision and rule id for one call (VM and reference must agree).
    fn decide(&self, tool: &str, args: &Value) -> (Effect, String) {
        let call = Call::mcp(tool, args);
        let d = self.0.program.evaluate(&call);
        let r = reference::evaluate(&self.0.policies, &call);
        assert_eq!(
            (d.effect(), d.rule()),
            (r.0, r.1.as_str()),
            "VM and reference disagree on {tool:?} {args}"
        );
        (d.effect(), d.rule().to_string())
    }

    /// Asserts the decision for each tool name (empty arguments).
    fn tools(&self, cases: &[(&str, Effect, &str)]) {
        for &(tool, effect, rule) in cases {
            assert_eq!(
                self.decide(tool, &json!({})),
                (effect, rule.to_string()),
                "tool {tool:?}"
            );
        }
    }

    /// Asserts the decision for `tool` with `{key: value}` for each value.
    fn arg(&self, tool: &str, key: &str, cases: &[(&str, Effect, &str)]) {
        for &(value, effect, rule) in cases {
            assert_eq!(
                self.decide(tool, &json!({ key: value })),
                (effect, rule.to_string()),
                "{tool} {key} = {value:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Tool names

/// Look-alikes of `delete_file` and `exec_shell`.
const CASE: &str = "Delete_File";
const UPPER: &str = "DELETE_FILE";
const TRAILING_SPACE: &str = "delete_file ";
const LEADING_SPACE: &str = " delete_file";
const ZERO_WIDTH: &str = "delete_file\u{200b}";
const SOFT_HYPHEN: &str = "delete\u{00ad}_file";
const CYRILLIC_E: &str = "d\u{0435}lete_file";
const FULLWIDTH: &str = "\u{ff44}\u{ff45}\u{ff4c}\u{ff45}\u{ff54}\u{ff45}_file";
const NEWLINE: &str = "delete_file\n";
const NUL: &str = "delete_file\0";

const DENYLIST: &str = r#"default_outcome: allow
rules:
  - id: no-delete
    tools: [delete_file]
    effect: deny
    reason: no deletes
  - id: no-exec
    tools: ["exec*"]
    effect: deny
    reason: no exec
"#;

/// An exact, case-sensitive deny rule in front of `default_outcome: allow`
/// catches the name and nothing else: every look-alike is another tool to
/// Kvlar (and to the MCP servers we run, which look tools up exactly: the
/// look-alike gets "unknown tool"). Documented, not changed.
#[test]
fn exact_deny_rules_match_exactly() {
    let p = Policy::new(DENYLIST);
    p.tools(&[
        ("delete_file", Deny, "no-delete"),
        (CASE, Allow, "_default_allow"),
        (UPPER, Allow, "_default_allow"),
        (TRAILING_SPACE, Allow, "_default_allow"),
        (LEADING_SPACE, Allow, "_default_allow"),
        (ZERO_WIDTH, Allow, "_default_allow"),
        (SOFT_HYPHEN, Allow, "_default_allow"),
        (CYRILLIC_E, Allow, "_default_allow"),
        (FULLWIDTH, Allow, "_default_allow"),
        (NEWLINE, Allow, "_default_allow"),
        (NUL, Allow, "_default_allow"),
    ]);
}

/// A glob's `*` absorbs a trailing space or invisible character, but not a
/// newline (Kvlar's glob semantics), and the prefix stays case-sensitive.
#[test]
fn glob_deny_rules() {
    let p = Policy::new(DENYLIST);
    p.tools(&[
        ("exec", Deny, "no-exec"),
        ("exec_shell", Deny, "no-exec"),
        ("exec_shell ", Deny, "no-exec"),
        ("exec\u{200b}_shell", Deny, "no-exec"),
        ("exec_shell\0", Deny, "no-exec"),
        ("exec_shell\n", Allow, "_default_allow"),
        ("Exec_shell", Allow, "_default_allow"),
        (" exec_shell", Allow, "_default_allow"),
        ("\u{200b}exec_shell", Allow, "_default_allow"),
        ("\u{0435}xec_shell", Allow, "_default_allow"),
    ]);
}

/// What the author can write instead (README, "Writing policies that
/// hold"): `lower(tool)`, globs with classes, and a rule that refuses any
/// name outside a plain ASCII alphabet — which also covers confusables and
/// compatibility forms that `lower()` does not normalise (NFKC).
#[test]
fn hardened_name_rules_catch_every_look_alike() {
    let p = Policy::new(
        r#"default_outcome: allow
rules:
  - id: plain-names-only
    when: '!(tool =~ /^[a-z0-9_-]+$/i)'
    effect: deny
    reason: tool names must be plain ASCII
  - id: no-delete
    when: lower(tool) == "delete_file"
    effect: deny
    reason: no deletes
  - id: no-exec
    tools: ["[eE][xX][eE][cC]*"]
    effect: deny
    reason: no exec
"#,
    );
    p.tools(&[
        ("delete_file", Deny, "no-delete"),
        (CASE, Deny, "no-delete"),
        (UPPER, Deny, "no-delete"),
        (TRAILING_SPACE, Deny, "plain-names-only"),
        (LEADING_SPACE, Deny, "plain-names-only"),
        (ZERO_WIDTH, Deny, "plain-names-only"),
        (SOFT_HYPHEN, Deny, "plain-names-only"),
        (CYRILLIC_E, Deny, "plain-names-only"),
        (FULLWIDTH, Deny, "plain-names-only"),
        (NEWLINE, Deny, "plain-names-only"),
        (NUL, Deny, "plain-names-only"),
        ("", Deny, "plain-names-only"),
        ("EXEC_shell", Deny, "no-exec"),
        ("eXeC", Deny, "no-exec"),
        ("read_file", Allow, "_default_allow"),
    ]);
    // `lower()` is Unicode lower-casing, not NFKC: the fullwidth name stays fullwidth.
    let fold = Policy::new(
        "rules:\n  - id: r\n    when: lower(tool) == \"delete_file\"\n    effect: deny\n    reason: x\n",
    );
    fold.tools(&[(CASE, Deny, "r"), (FULLWIDTH, Deny, "_default_deny")]);
}

/// An allowlist (the default deny) is immune: every look-alike is simply
/// not on it. But a glob in an allowlist admits whatever its `*` matches.
#[test]
fn allowlists_refuse_every_look_alike() {
    let p = Policy::new(
        r#"rules:
  - id: allow-read
    tools: [read_file, list_directory]
    effect: allow
  - id: allow-search
    tools: ["search_*"]
    effect: allow
"#,
    );
    let d = "_default_deny";
    p.tools(&[
        ("read_file", Allow, "allow-read"),
        ("Read_File", Deny, d),
        ("read_file ", Deny, d),
        ("read_file\u{200b}", Deny, d),
        ("r\u{0435}ad_file", Deny, d),
        ("\u{ff52}ead_file", Deny, d),
        ("read_file\n", Deny, d),
        ("", Deny, d),
        ("search_files", Allow, "allow-search"),
        ("Search_files", Deny, d),
        // The glob's `*` takes anything but a newline after the prefix.
        ("search_files\u{200b}", Allow, "allow-search"),
        ("search_../../x", Allow, "allow-search"),
        ("search_x\n", Deny, d),
    ]);
}

// ---------------------------------------------------------------------------
// Paths and `under`

const SRV: &str = r#"rules:
  - id: read-srv
    tools: [read_file]
    when: args.path under "/srv/data"
    effect: allow
"#;

#[test]
fn under_resolves_dot_dot_and_slashes() {
    let p = Policy::new(SRV);
    let (a, d) = ("read-srv", "_default_deny");
    p.arg(
        "read_file",
        "path",
        &[
            ("/srv/data/report.txt", Allow, a),
            ("/srv/data", Allow, a),
            ("/srv/data/", Allow, a),
            ("/srv/data/./x", Allow, a),
            ("/srv/data//x", Allow, a),
            ("//srv//data//x", Allow, a),
            ("/srv/data/x/../y", Allow, a),
            ("/srv/data/../../etc/passwd", Deny, d),
            ("/srv/data//../etc", Deny, d),
            ("/srv/data/./../secret", Deny, d),
            ("/srv/data/x/../../secret", Deny, d),
            ("/srv/data/..", Deny, d),
            ("/srv/data/../", Deny, d),
            ("/srv/database", Deny, d),
            ("/srv/dat", Deny, d),
            ("/srv", Deny, d),
            ("srv/data/x", Deny, d),
            ("../srv/data/x", Deny, d),
            ("./srv/data/x", Deny, d),
            ("~/srv/data/x", Deny, d),
            ("", Deny, d),
            ("/srv/data/x\n/../../../etc", Deny, d),
        ],
    );
    // Missing or not a string: the test is false, the allow rule does not fire.
    for args in [
        json!({}),
        json!({"path": null}),
        json!({"path": 5}),
        json!({"path": ["/srv/data/x"]}),
        json!({"path": {"p": "/srv/data/x"}}),
        json!({"Path": "/srv/data/x"}),
    ] {
        assert_eq!(
            p.decide("read_file", &args),
            (Deny, d.to_string()),
            "{args}"
        );
    }
}

/// `under` is lexical: percent-encoding, backslashes and symlinks are not
/// interpreted (a server that decodes `%2e%2e` or splits on `\` reads
/// another path). Asserted as documented; the hardened policy refuses them.
#[test]
fn under_is_lexical_and_the_hardened_policy_refuses_the_rest() {
    let p = Policy::new(SRV);
    let a = "read-srv";
    p.arg(
        "read_file",
        "path",
        &[
            ("/srv/data/%2e%2e/%2e%2e/etc/passwd", Allow, a),
            ("/srv/data/..%2F..%2Fetc%2Fpasswd", Allow, a),
            ("/srv/data/..\\..\\etc\\passwd", Allow, a),
            ("/srv/data/link-to-etc/passwd", Allow, a),
        ],
    );
    let hardened = Policy::new(
        r#"rules:
  - id: no-odd-paths
    when: args.path =~ /[%\\]/ || args.path contains "\0"
    effect: deny
    reason: encoded or Windows-style paths are refused
  - id: read-srv
    tools: [read_file]
    when: args.path under "/srv/data"
    effect: allow
"#,
    );
    let odd = "no-odd-paths";
    hardened.arg(
        "read_file",
        "path",
        &[
            ("/srv/data/%2e%2e/%2e%2e/etc/passwd", Deny, odd),
            ("/srv/data/..%2F..%2Fetc%2Fpasswd", Deny, odd),
            ("/srv/data/..\\..\\etc\\passwd", Deny, odd),
            ("/srv/data/x\0/../../../etc", Deny, odd),
            ("/srv/data/report.txt", Allow, "read-srv"),
        ],
    );
}

/// `startswith` is the trap `under` replaces (and `kvlar lint` warns on).
#[test]
fn startswith_on_paths_lets_traversal_through() {
    let p = Policy::new(
        "rules:\n  - id: read-srv\n    when: args.path startswith \"/srv/data\"\n    effect: allow\n",
    );
    p.arg(
        "read_file",
        "path",
        &[
            ("/srv/data/../../etc/passwd", Allow, "read-srv"),
            ("/srv/database/x", Allow, "read-srv"),
        ],
    );
}

/// Deny rules written so a missing or odd argument falls on the safe side,
/// and quantifiers over lists.
#[test]
fn deny_rules_outside_a_directory() {
    let p = Policy::new(
        r#"default_outcome: allow
rules:
  - id: one-path
    tools: [write_file]
    when: '!(args.path under "/srv/data")'
    effect: deny
    reason: writes stay in /srv/data
  - id: many-paths
    tools: [read_multiple_files]
    when: '!all(p in args.paths: p under "/srv/data")'
    effect: deny
    reason: reads stay in /srv/data
"#,
    );
    let ok = "_default_allow";
    for (args, effect, rule) in [
        (json!({"path": "/srv/data/x"}), Allow, ok),
        (json!({"path": "/srv/data/../x"}), Deny, "one-path"),
        (json!({}), Deny, "one-path"),
        (json!({"path": 1}), Deny, "one-path"),
        (json!({"path": null}), Deny, "one-path"),
    ] {
        assert_eq!(
            p.decide("write_file", &args),
            (effect, rule.to_string()),
            "{args}"
        );
    }
    for (args, effect, rule) in [
        (
            json!({"paths": ["/srv/data/a", "/srv/data/b/c"]}),
            Allow,
            ok,
        ),
        (json!({"paths": []}), Allow, ok),
        (
            json!({"paths": ["/srv/data/a", "/srv/data/../../etc/shadow"]}),
            Deny,
            "many-paths",
        ),
        (json!({"paths": ["/srv/data/a", 5]}), Deny, "many-paths"),
        (json!({"paths": "/etc/shadow"}), Deny, "many-paths"),
        (json!({}), Deny, "many-paths"),
    ] {
        assert_eq!(
            p.decide("read_multiple_files", &args),
            (effect, rule.to_string()),
            "{args}"
        );
    }
}

// ---------------------------------------------------------------------------
// URLs and `host()`

const HOST_ALLOWLIST: &str = r#"rules:
  - id: fetch-good
    tools: [fetch]
    when: host(args.url) == "good.com" || host(args.url) endswith ".good.com"
    effect: allow
"#;

#[test]
fn host_allowlist_refuses_url_tricks() {
    let p = Policy::new(HOST_ALLOWLIST);
    let (a, d) = ("fetch-good", "_default_deny");
    p.arg(
        "fetch",
        "url",
        &[
            ("https://good.com/x", Allow, a),
            ("https://GOOD.COM/x", Allow, a),
            ("https://good.com./x", Allow, a),
            ("https://good.com:8443/x", Allow, a),
            ("https://user:pw@good.com/x", Allow, a),
            ("https://api.good.com/x", Allow, a),
            ("good.com/x", Allow, a),
            ("https://good.com@evil.com/", Deny, d),
            ("https://good.com:443@evil.com/", Deny, d),
            ("https://good.com%40evil.com@evil.com/", Deny, d),
            ("https://evil.com#@good.com", Deny, d),
            ("https://evil.com?@good.com", Deny, d),
            ("https://evil.com/@good.com", Deny, d),
            ("https://evil.com\\@good.com", Deny, d),
            ("https:\\\\evil.com\\good.com", Deny, d),
            ("https://good.com.evil.com/", Deny, d),
            ("https://evilgood.com/", Deny, d),
            ("https://good.com../", Deny, d),
            ("//evil.com/good.com", Deny, d),
            ("https://[::1]/good.com", Deny, d),
            ("javascript:alert('good.com')", Deny, d),
            ("file:///etc/passwd", Deny, d),
            ("", Deny, d),
        ],
    );
    for args in [
        json!({}),
        json!({"url": 1}),
        json!({"url": ["https://good.com"]}),
    ] {
        assert_eq!(p.decide("fetch", &args), (Deny, d.to_string()), "{args}");
    }
}

/// `host()` parses as browsers do (WHATWG): a backslash after the host is a
/// path separator, so `https://good.com\@evil.com/` has host `good.com`.
/// Python's `urllib.parse` splits userinfo on the last `@` and reads host
/// `evil.com`: a server fetching with it goes elsewhere than the policy
/// saw. Asserted as it is; the hardened allowlist refuses `\` and `@`.
#[test]
fn host_parser_differentials_need_a_guard() {
    let p = Policy::new(HOST_ALLOWLIST);
    p.arg(
        "fetch",
        "url",
        &[("https://good.com\\@evil.com/", Allow, "fetch-good")],
    );
    let hardened = Policy::new(
        r#"rules:
  - id: odd-url
    tools: [fetch]
    when: args.url =~ /[\\@\s]/ || !(args.url =~ /^https?:\/\//i)
    effect: deny
    reason: URLs with userinfo, backslashes, spaces or no http(s) scheme are refused
  - id: fetch-good
    tools: [fetch]
    when: host(args.url) == "good.com" || host(args.url) endswith ".good.com"
    effect: allow
"#,
    );
    hardened.arg(
        "fetch",
        "url",
        &[
            ("https://good.com\\@evil.com/", Deny, "odd-url"),
            ("https://good.com@evil.com/", Deny, "odd-url"),
            ("good.com/x", Deny, "odd-url"),
            ("//good.com/x", Deny, "odd-url"),
            ("https://good.com/ x", Deny, "odd-url"),
            ("https://good.com/x", Allow, "fetch-good"),
        ],
    );
}

const HOST_DENYLIST: &str = r#"default_outcome: allow
rules:
  - id: no-evil
    tools: [fetch]
    when: host(args.url) in ["evil.com", "127.0.0.1", "::1"]
    effect: deny
    reason: blocked host
"#;

/// `host()` normalises what it can: case, one trailing dot, ports,
/// userinfo, IPv4 in hex/octal/decimal, IPv6 spellings, fullwidth letters
/// (IDNA), tabs and newlines, percent-encoded hosts, missing slashes.
#[test]
fn host_denylist_sees_through_normalisable_spellings() {
    let p = Policy::new(HOST_DENYLIST);
    let b = "no-evil";
    p.arg(
        "fetch",
        "url",
        &[
            ("https://evil.com/", Deny, b),
            ("HTTPS://EVIL.COM/", Deny, b),
            ("https://EvIl.CoM./", Deny, b),
            ("https://evil.com:8080/", Deny, b),
            ("https://good.com@evil.com/", Deny, b),
            ("https://evil.com\\x", Deny, b),
            ("https:\\\\evil.com", Deny, b),
            ("https:evil.com", Deny, b),
            (" https://evil.com ", Deny, b),
            ("https://ev\til.com/", Deny, b),
            ("https://ev\nil.com/", Deny, b),
            ("https://evil%2Ecom/", Deny, b),
            ("https://\u{ff45}\u{ff56}\u{ff49}\u{ff4c}.com/", Deny, b),
            ("evil.com", Deny, b),
            ("evil.com:443/x", Deny, b),
            ("http://127.0.0.1/", Deny, b),
            ("http://127.1/", Deny, b),
            ("http://0x7f.1/", Deny, b),
            ("http://0177.0.0.1/", Deny, b),
            ("http://2130706433/", Deny, b),
            ("http://[::1]:80/", Deny, b),
            ("http://[0:0:0:0:0:0:0:1]/", Deny, b),
            ("http://[0000::0001]/", Deny, b),
            ("https://good.com/", Allow, "_default_allow"),
        ],
    );
}

/// What a denylist cannot see: other names for the same machine. Asserted
/// as it is; use an allowlist for hosts (README).
#[test]
fn host_denylists_leak_other_names() {
    let p = Policy::new(HOST_DENYLIST);
    let ok = "_default_allow";
    p.arg(
        "fetch",
        "url",
        &[
            ("http://[::ffff:127.0.0.1]/", Allow, ok),
            ("http://localhost/", Allow, ok),
            ("http://127.0.0.2/", Allow, ok),
            ("https://evil.com../", Allow, ok),
            ("https://sub.evil.com/", Allow, ok),
            ("https://xn--vil-8cd.com/", Allow, ok),
        ],
    );
}

// ---------------------------------------------------------------------------
// Huge and deeply nested arguments

/// Arguments nested as deep as the proxy's JSON parser accepts (serde_json
/// stops at 128 levels): every kind of test still decides, without
/// overflowing the (2 MiB) test thread's stack.
#[test]
fn deeply_nested_arguments_decide() {
    let depth = 126;
    let text = format!(
        "{{\"o\":{}\"rm -rf /\"{}}}",
        "{\"a\":[".repeat(depth / 2),
        "]}".repeat(depth / 2)
    );
    let args: Value = serde_json::from_str(&text).expect("within the parser's limit");
    let p = Policy::new(
        r#"default_outcome: allow
rules:
  - id: kvlar-params
    description: the argument as compact JSON
    match_on:
      parameters: {o: "rm -rf"}
    effect: {type: deny, reason: "params"}
"#,
    );
    assert_eq!(p.decide("x", &args), (Deny, "kvlar-params".into()));
    let p = Policy::new(
        r#"default_outcome: allow
rules:
  - id: structural
    when: 'args.o == args.o && len(args.o) == 1 && !(args.o contains 1) && any(x in args.o.a: exists(x.a))'
    effect: deny
    reason: structural
"#,
    );
    assert_eq!(p.decide("x", &args), (Deny, "structural".into()));
    // One level more than serde_json takes is refused by the proxy before
    // any evaluation (see also `deeply_nested_arguments_are_refused_by_the_proxy`).
    let too_deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    assert!(serde_json::from_str::<Value>(&too_deep).is_err());
}

#[test]
fn deeply_nested_arguments_are_refused_by_the_proxy() {
    for depth in [200usize, 100_000] {
        let line = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{{\"name\":\"x\",\"arguments\":{{\"a\":{}1{}}}}}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        match client_line(line.as_bytes()) {
            // 100,000 levels exceed the top-level parse already (-32700);
            // 200 pass it (the params are skipped as raw text) and are
            // refused when the arguments are built (-32600).
            ClientLine::Reply(bytes) => assert!(
                String::from_utf8_lossy(&bytes).contains("\"code\":-32700"),
                "{depth}"
            ),
            ClientLine::Refuse {
                reply: Some(bytes),
                why,
                ..
            } => {
                assert_eq!(why, "params could not be read", "{depth}");
                assert!(
                    String::from_utf8_lossy(&bytes).starts_with("{\"jsonrpc\":\"2.0\",\"id\":1,")
                );
            }
            other => panic!("{depth}: {other:?}"),
        }
    }
}

/// A megabyte string and a hundred-thousand-item list: exact decisions,
/// quickly (no quadratic work per call).
#[test]
fn huge_arguments_decide_quickly() {
    let p = Policy::new(
        r#"default_outcome: allow
rules:
  - id: no-rm
    when: args.command =~ /rm\s+-rf/
    effect: deny
    reason: rm
  - id: no-etc
    when: 'any(p in args.paths: p under "/etc")'
    effect: deny
    reason: etc
  - id: ask-long
    when: len(args.note) > 1000000
    effect: require_approval
    reason: long
"#,
    );
    let start = Instant::now();
    let mut command = "x".repeat(1 << 20);
    command.push_str(" rm  -rf /");
    assert_eq!(
        p.decide("bash", &json!({"command": command})),
        (Deny, "no-rm".into())
    );
    let mut paths: Vec<Value> = (0..100_000)
        .map(|i| json!(format!("/srv/data/{i}")))
        .collect();
    assert_eq!(
        p.decide("read", &json!({"paths": paths.clone()})),
        (Allow, "_default_allow".into())
    );
    paths.push(json!("/srv/data/../../etc/passwd"));
    assert_eq!(
        p.decide("read", &json!({"paths": paths})),
        (Deny, "no-etc".into())
    );
    assert_eq!(
        p.decide("x", &json!({"note": "é".repeat(1_000_001)})),
        (RequireApproval, "ask-long".into())
    );
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
}

// ---------------------------------------------------------------------------
// Keys

/// A key with a dot is ambiguous between a top-level name and a nested
/// path. Kvlar `conditions` fields try the top-level name first; native
/// `args.a.b` is always the nested path and `args["a.b"]` the top-level
/// name. A policy must test the spelling its server reads.
#[test]
fn dotted_keys_are_resolved_as_documented() {
    let p = Policy::new(
        r#"default_outcome: allow
rules:
  - id: kvlar-field
    description: a.b as Kvlar resolves it
    match_on:
      conditions: [{field: a.b, operator: equals, value: "evil"}]
    effect: {type: deny, reason: "kvlar"}
  - id: native-nested
    when: args.a.b == "evil"
    effect: deny
    reason: nested
  - id: native-top
    when: args["a.b"] == "evil"
    effect: deny
    reason: top
"#,
    );
    for (args, rule) in [
        (json!({"a.b": "evil", "a": {"b": "safe"}}), "kvlar-field"),
        (json!({"a.b": "safe", "a": {"b": "evil"}}), "native-nested"),
        (json!({"a": {"b": "evil"}}), "kvlar-field"),
        (json!({"a.b": "evil"}), "kvlar-field"),
    ] {
        assert_eq!(p.decide("x", &args), (Deny, rule.to_string()), "{args}");
    }
    assert_eq!(
        p.decide("x", &json!({"a.b": "safe", "a": {"b": "safe"}})),
        (Allow, "_default_allow".into())
    );
}

/// Duplicate keys never reach the VM: the proxy refuses them (exact, by
/// case, by `ſ`/`s`, through escapes, nested), so the server cannot read
/// another value than the policy did. More in `cli/src/proxy/tests.rs`.
#[test]
fn duplicate_keys_are_refused_before_evaluation() {
    for args in [
        r#"{"path":"/srv/data/x","path":"/etc/passwd"}"#,
        r#"{"path":"/srv/data/x","p\u0061th":"/etc/passwd"}"#,
        r#"{"path":"/srv/data/x","PATH":"/etc/passwd"}"#,
        r#"{"mask":"a","maſk":"b"}"#,
        r#"{"o":{"list":[{"k":1,"k":2}]}}"#,
    ] {
        let line = format!(
            r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"read_file","arguments":{args}}}}}"#
        );
        match client_line(line.as_bytes()) {
            ClientLine::Refuse {
                reply: Some(_),
                why,
                ..
            } => assert_eq!(
                why, "params contain duplicate keys (keys may not repeat, nor differ only by case)",
                "{args}"
            ),
            other => panic!("{args}: {other:?}"),
        }
    }
}

/// The curated fetch policy against URL parser differentials: whatever
/// `host()` reads, the userinfo, scheme and private-range rules refuse the
/// URLs that another parser (Python's `urllib`, `httpx`) reads differently.
#[test]
fn curated_fetch_policy_holds_against_parser_differentials() {
    let path = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/fetch.yaml"
    ));
    let p = Policy(kvlar_compiler::compile_files(&[path]).unwrap_or_else(|f| panic!("{f:?}")));
    p.arg(
        "fetch",
        "url",
        &[
            ("http://good.com\\@127.0.0.1/", Deny, "deny-userinfo"),
            ("https://good.com\\@evil.example/", Deny, "deny-userinfo"),
            ("http://good.com%5C@127.0.0.1/", Deny, "deny-loopback"),
            ("http://good.com\t@127.0.0.1/", Deny, "deny-loopback"),
            ("http://127.0.0.1\\@good.com/", Deny, "deny-loopback"),
            ("http://[::ffff:127.0.0.1]/", Deny, "deny-private-ipv6"),
            ("http://0x7f.1/", Deny, "deny-loopback"),
            (
                "https:\\\\169.254.169.254\\latest",
                Deny,
                "deny-non-http-scheme",
            ),
            ("https://169.254.169.254./latest", Deny, "deny-metadata"),
            ("https://example.com/", Allow, "allow-https"),
        ],
    );
}

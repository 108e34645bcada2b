//! Shared pieces of the differential tests: call generators, running the
//! published engine, comparing decisions.
#![allow(dead_code)]

pub mod kvgen;

use std::time::{SystemTime, UNIX_EPOCH};

use kvlar_vm::{Call, Effect};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Map, Value};

/// Tool names; chosen to collide with the glob patterns below.
pub const TOOLS: &[&str] = &[
    "bash",
    "read_file",
    "read_text_file",
    "write_file",
    "run_command",
    "exec",
    "exec_sql",
    "a.b",
    "axb",
    "a+b",
    "a(b)",
    "a[b",
    "[ab]",
    "x",
    "ab",
    "cb",
    "b",
    "read_*",
    "",
    "a\nb",
    "Bash",
    "é",
];

/// Tool / resource globs: exact names, `*`, `?`, classes, negated classes,
/// unterminated `[`, dots and regex metacharacters.
pub const TOOL_GLOBS: &[&str] = &[
    "bash",
    "read_file",
    "*",
    "read_*",
    "*_file",
    "*file*",
    "?",
    "??",
    "?b",
    "[abc]*",
    "[!a]b",
    "[a-c]b",
    "[!r]*",
    "a[b",
    "a.b",
    "a?b",
    "a+b",
    "a(b)",
    "a(*)",
    "exec*",
    "*exec*",
    "[.]*",
    "[]a]",
    "[z-a]*",
    "a\\*",
    "*$",
    "^*",
    "a|b*",
    "{a,b}*",
    "[[]ab]",
    "[\\w]*",
    "*\n*",
    "",
    "é",
    "B*",
];

pub const AGENTS: &[&str] = &[
    "mcp-agent",
    "test-agent",
    "bot-1",
    "bot-22",
    "Bot-1",
    "agent",
    "",
];
pub const AGENT_GLOBS: &[&str] = &[
    "bot-*",
    "bot-?",
    "*",
    "mcp-agent",
    "[bm]*",
    "*-1",
    "[!b]*",
    "test-agent",
];
pub const ACTIONS: &[&str] = &["tool_call", "resource_read", "tool_callx", "TOOL_CALL"];
pub const ACTION_GLOBS: &[&str] = &["tool_call", "tool_*", "*", "*_call", "[tr]*", "?ool_call"];

/// Top-level argument names (some containing dots).
pub const ARG_KEYS: &[&str] = &[
    "command", "path", "sql", "n", "url", "opts", "a", "a.b", "list", "flag", "nul", "x.y.z",
    "paths",
];
/// Keys of nested objects.
pub const NESTED_KEYS: &[&str] = &["b", "mode", "x", "y", "c", "b.c", "z"];

pub const STRINGS: &[&str] = &[
    "",
    "ls -la",
    "rm -rf /",
    "rm  -rf ~",
    "sudo su",
    "DROP TABLE users",
    "drop table x",
    "SELECT 1",
    "/etc/passwd",
    "/home/u/.ssh/id_rsa",
    "/srv/app/../../etc/shadow",
    "1",
    "1.0",
    "true",
    "null",
    "ro",
    "rw",
    "main",
    "example.com",
    "EXAMPLE.com",
    "a",
    "b",
    "a.b",
    "x\ny",
    "quote\"d",
    "back\\slash",
    "é",
    "ß",
    "İ",
    "{\"a\":1}",
];

pub const PATHS: &[&str] = &[
    "/etc/passwd",
    "/etc",
    "/etc/",
    "/etcetera",
    "/srv/app/x.txt",
    "/srv/app/../../etc/shadow",
    "/srv/./app//data/",
    "relative/p",
    "../x",
    "a/../../b",
    "/",
    "//etc//x",
    "/home/u/.ssh/id_rsa",
    "/home/u/.env",
    "/tmp/./a/",
    "C:\\x\\y",
    ".",
    "",
];

pub const URLS: &[&str] = &[
    "https://example.com/x",
    "http://EXAMPLE.com:8080",
    "http://[::1]:8080/x",
    "https://[2001:DB8::1]/",
    "user@host.com",
    "https://user:pw@host.com/",
    "https://user@Example.com/",
    "example.com",
    "sub.example.com/path",
    "notexample.com",
    "ftp://a.b.example.com:21/p",
    "http://example.com.",
    "https://example.com?x=/y",
    "https://evil.com#@example.com",
    "HOST.COM",
    "localhost:3000",
    "",
    "://example.com",
    "http://127.0.0.1/",
    "file:///etc/passwd",
];

/// A JSON scalar of any type; numbers include `1` vs `1.0`, negatives, `-0.0`, `u64::MAX`.
pub fn scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        1 => Just(Value::Null),
        2 => any::<bool>().prop_map(Value::Bool),
        3 => select(vec![0i64, 1, -1, 2, 5, 10, 1000, 443]).prop_map(Value::from),
        2 => select(vec![0.0f64, 1.0, -0.0, 2.5, -1.5, 1000.0, 0.1, 1e20]).prop_map(|f| json!(f)),
        1 => Just(json!(u64::MAX)),
        6 => select(STRINGS).prop_map(|s| Value::String(s.into())),
        3 => select(URLS).prop_map(|s| Value::String(s.into())),
        3 => select(PATHS).prop_map(|s| Value::String(s.into())),
    ]
    .boxed()
}

/// Any JSON value, nested up to two levels, objects keyed from [`NESTED_KEYS`].
pub fn json_value() -> BoxedStrategy<Value> {
    scalar()
        .prop_recursive(2, 12, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((select(NESTED_KEYS), inner), 0..4).prop_map(|kv| {
                    Value::Object(
                        kv.into_iter()
                            .map(|(k, v)| (k.to_string(), v))
                            .collect::<Map<_, _>>(),
                    )
                }),
            ]
        })
        .boxed()
}

/// A call: tool, agent, action type, arguments object.
#[derive(Debug, Clone)]
pub struct GenCall {
    pub tool: String,
    pub agent: String,
    pub action: String,
    pub args: Value,
}

impl GenCall {
    pub fn call(&self) -> Call<'_> {
        Call {
            tool: &self.tool,
            agent: &self.agent,
            action: &self.action,
            args: &self.args,
        }
    }
}

pub fn args_object() -> BoxedStrategy<Value> {
    prop::collection::vec((select(ARG_KEYS), json_value()), 0..6)
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
        .boxed()
}

pub fn gen_call() -> BoxedStrategy<GenCall> {
    (
        select(TOOLS),
        prop_oneof![6 => Just("mcp-agent"), 4 => select(AGENTS)],
        prop_oneof![8 => Just("tool_call"), 2 => select(ACTIONS)],
        args_object(),
    )
        .prop_map(|(tool, agent, action, args)| GenCall {
            tool: tool.into(),
            agent: agent.into(),
            action: action.into(),
            args,
        })
        .boxed()
}

/// A decision in a form both engines can be reduced to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub effect: Effect,
    pub rule: String,
    pub reason: Option<String>,
}

impl Outcome {
    pub fn from_vm(d: kvlar_vm::Decision<'_>) -> Self {
        Outcome {
            effect: d.effect(),
            rule: d.rule().to_string(),
            reason: d.reason().map(str::to_string),
        }
    }
    pub fn from_ref((effect, rule, reason): (Effect, String, Option<String>)) -> Self {
        Outcome {
            effect,
            rule,
            reason,
        }
    }
}

/// Which published engine to compare with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ver {
    V03,
    V04,
}

/// kvlar-core 0.3.0 or 0.4.0 with policies loaded.
pub enum Published {
    V03(kvlar_core_03::Engine),
    V04(kvlar_core_04::Engine),
}

impl Published {
    /// Loads each policy with `load_policy_yaml`; `Err` if the engine rejects one.
    pub fn load(ver: Ver, yamls: &[&str]) -> Result<Self, String> {
        match ver {
            Ver::V03 => {
                let mut e = kvlar_core_03::Engine::new();
                for y in yamls {
                    e.load_policy_yaml(y).map_err(|e| e.to_string())?;
                }
                Ok(Published::V03(e))
            }
            Ver::V04 => {
                let mut e = kvlar_core_04::Engine::new();
                for y in yamls {
                    e.load_policy_yaml(y).map_err(|e| e.to_string())?;
                }
                Ok(Published::V04(e))
            }
        }
    }

    pub fn evaluate(&self, call: &Call<'_>) -> Outcome {
        let params = call.args.as_object().cloned().unwrap_or_default();
        macro_rules! run {
            ($krate:ident, $engine:expr) => {{
                let mut action = $krate::Action::new(call.action, call.tool, call.agent);
                action.parameters.extend(params);
                let d = $engine.evaluate(&action);
                let effect = if d.is_allowed() {
                    Effect::Allow
                } else if d.is_denied() {
                    Effect::Deny
                } else {
                    Effect::RequireApproval
                };
                Outcome {
                    effect,
                    rule: d.matched_rule().to_string(),
                    reason: d.reason().map(str::to_string),
                }
            }};
        }
        match self {
            Published::V03(e) => run!(kvlar_core_03, e),
            Published::V04(e) => run!(kvlar_core_04, e),
        }
    }
}

/// Two outcomes agree: same effect and rule, same reason unless allow.
pub fn agree(a: &Outcome, b: &Outcome) -> bool {
    a.effect == b.effect && a.rule == b.rule && (a.effect == Effect::Allow || a.reason == b.reason)
}

/// A test runner: `cases` from env var `var` (default `default`), seeded from
/// `KVLAR_DIFF_SEED` (printed, so a failing run can be repeated).
pub fn runner(cases_var: &str, default_cases: u32) -> TestRunner {
    let cases = std::env::var(cases_var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    let seed: u64 = std::env::var("KVLAR_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!("KVLAR_DIFF_SEED={seed} {cases_var}={cases}");
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

/// YAML double-quoted scalar (JSON string syntax is valid YAML).
pub fn q(s: &str) -> String {
    serde_json::to_string(s).expect("string serialises")
}

/// A JSON value in flow style (valid YAML for both parsers).
pub fn flow(v: &Value) -> String {
    serde_json::to_string(v).expect("value serialises")
}

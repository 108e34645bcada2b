//! Generator of Kvlar-format policies (YAML text) for the differential tests.
#![allow(dead_code)]

use super::*;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Value};

/// Calls evaluated per generated policy set.
pub const CALLS_PER_POLICY: usize = 50;

pub const FIELDS: &[&str] = &[
    "command",
    "path",
    "sql",
    "n",
    "url",
    "opts",
    "a",
    "a.b",
    "list",
    "flag",
    "nul",
    "x.y.z",
    "opts.mode",
    "opts.x.y",
    "opts.b.c",
    "a.b.c",
    "a.x",
    "x.y",
    "missing",
    "",
    "opts.",
    ".x",
    "n.x",
    "list.0",
];

/// Valid regexes (Kvlar silently ignores invalid ones; we reject them, so they
/// are not generated here but covered by the compiler's own tests).
pub const REGEXES: &[&str] = &[
    "rm\\s+-rf",
    "^ls",
    "^/etc",
    "\\.ssh",
    "(?i)drop\\s+table",
    "^[0-9]+$",
    "^1$",
    "1\\.0",
    "^true$",
    "null",
    "^\\{",
    "\\[",
    "a|b",
    "^$",
    "",
    ".",
    "(?s)x.y",
    "é",
    "^\\s*$",
    "example\\.com",
    "^-",
    "\\d",
    "(?m)^y$",
];

pub const DOMAINS: &[&str] = &[
    "example.com",
    "EXAMPLE.COM",
    "com",
    "",
    "::1",
    "2001:db8::1",
    "host.com",
    "user@host.com",
    "user",
    "localhost",
    "127.0.0.1",
    ".",
];

pub const REASONS: &[&str] = &[
    "blocked",
    "needs a human",
    "quote \" and \\ and é",
    "",
    "multi\nline",
];

pub const OPS_03: &[&str] = &[
    "equals",
    "not_equals",
    "contains",
    "starts_with",
    "ends_with",
    "greater_than",
    "less_than",
    "exists",
    "not_exists",
    "one_of",
];
pub const OPS_04: &[&str] = &[
    "eq",
    "neq",
    "contains",
    "starts_with",
    "ends_with",
    "matches",
    "in",
    "not_in",
    "in_domain",
    "not_in_domain",
];

#[derive(Debug, Clone)]
pub struct KvRule {
    action_types: Option<Vec<&'static str>>,
    resources: Option<Vec<&'static str>>,
    agent_ids: Option<Vec<&'static str>>,
    parameters: Vec<(&'static str, &'static str)>,
    conditions: Vec<(&'static str, &'static str, Value)>,
    effect: u8,
    reason: &'static str,
}

#[derive(Debug, Clone)]
pub struct KvPolicy {
    default_outcome: Option<&'static str>,
    rules: Vec<KvRule>,
}

fn glob_list(
    pool: &'static [&'static str],
    common: &'static [&'static str],
) -> BoxedStrategy<Option<Vec<&'static str>>> {
    prop_oneof![
        5 => Just(None),
        1 => Just(Some(vec![])),
        6 => prop::collection::vec(prop_oneof![select(pool), select(common)], 1..4).prop_map(Some),
    ]
    .boxed()
}

fn condition_value(op: &'static str) -> BoxedStrategy<Value> {
    match op {
        // Any string is a regex here, so only valid ones; non-strings count as "".
        "matches" => prop_oneof![
            4 => select(REGEXES).prop_map(|r| Value::String(r.into())),
            1 => scalar().prop_filter("a non-string", |v| !v.is_string()),
        ]
        .boxed(),
        "in_domain" | "not_in_domain" => prop_oneof![
            4 => select(DOMAINS).prop_map(|d| Value::String(d.into())),
            3 => prop::collection::vec(
                prop_oneof![4 => select(DOMAINS).prop_map(|d| Value::String(d.into())), 1 => scalar()],
                0..4
            )
            .prop_map(Value::Array),
            1 => scalar(),
        ]
        .boxed(),
        "in" | "one_of" | "not_in" => prop_oneof![
            4 => prop::collection::vec(scalar(), 0..5).prop_map(Value::Array),
            1 => json_value(),
        ]
        .boxed(),
        _ => prop_oneof![4 => scalar(), 1 => json_value()].boxed(),
    }
}

pub fn condition(ver: Ver) -> BoxedStrategy<(&'static str, &'static str, Value)> {
    let ops = if ver == Ver::V03 { OPS_03 } else { OPS_04 };
    (select(FIELDS), select(ops))
        .prop_flat_map(|(field, op)| condition_value(op).prop_map(move |v| (field, op, v)))
        .boxed()
}

pub fn kv_rule(ver: Ver) -> BoxedStrategy<KvRule> {
    (
        glob_list(ACTION_GLOBS, ACTIONS),
        glob_list(TOOL_GLOBS, TOOLS),
        glob_list(AGENT_GLOBS, AGENTS),
        prop_oneof![3 => Just(vec![]), 1 => prop::collection::vec((select(ARG_KEYS), select(REGEXES)), 1..3)],
        prop_oneof![2 => Just(vec![]), 3 => prop::collection::vec(condition(ver), 1..4)],
        0u8..3,
        select(REASONS),
    )
        .prop_map(
            |(action_types, resources, agent_ids, parameters, conditions, effect, reason)| KvRule {
                action_types,
                resources,
                agent_ids,
                parameters,
                conditions,
                effect,
                reason,
            },
        )
        .boxed()
}

/// Literal values for the string tests of [`kv_block`].
const LITERALS: &[&str] = &[
    "rm", "-rf", "/etc", "ssh", "DROP", "drop", "SELECT", "..", "/", "su", "é", "\n", "1", "",
    "a.b",
];

/// Several rules in a row on one tool list, each one string test on the same
/// field (or one `parameters` regex on the same key): the shape the VM
/// decides inline and as a bit run, from the regex set of that field.
fn kv_block(ver: Ver) -> BoxedStrategy<Vec<KvRule>> {
    let ops: &'static [&'static str] = if ver == Ver::V03 {
        &["contains", "starts_with", "ends_with"]
    } else {
        &["contains", "starts_with", "ends_with", "matches", "matches"]
    };
    let test = (
        select(ops),
        select(LITERALS),
        select(REGEXES),
        0u8..3,
        select(REASONS),
    );
    (
        glob_list(TOOL_GLOBS, TOOLS),
        select(FIELDS),
        select(ARG_KEYS),
        0u8..4,
        prop::collection::vec(test, 3..7),
    )
        .prop_map(|(resources, field, key, kind, tests)| {
            tests
                .into_iter()
                .map(|(op, literal, regex, effect, reason)| {
                    let (parameters, conditions) = if kind == 0 {
                        (vec![(key, regex)], vec![])
                    } else {
                        let value = if op == "matches" { regex } else { literal };
                        (vec![], vec![(field, op, Value::String(value.into()))])
                    };
                    KvRule {
                        action_types: None,
                        resources: resources.clone(),
                        agent_ids: None,
                        parameters,
                        conditions,
                        effect,
                        reason,
                    }
                })
                .collect()
        })
        .boxed()
}

pub fn kv_policy(ver: Ver) -> BoxedStrategy<KvPolicy> {
    let outcome = if ver == Ver::V04 {
        prop_oneof![2 => Just(None), 1 => Just(Some("allow")), 1 => Just(Some("deny"))].boxed()
    } else {
        Just(None).boxed()
    };
    let group = prop_oneof![
        3 => kv_rule(ver).prop_map(|r| vec![r]),
        1 => kv_block(ver),
    ];
    (outcome, prop::collection::vec(group, 0..=7))
        .prop_map(|(default_outcome, groups)| KvPolicy {
            default_outcome,
            rules: groups.into_iter().flatten().collect(),
        })
        .boxed()
}

pub fn render(index: usize, p: &KvPolicy) -> String {
    let mut y = String::new();
    y.push_str(&format!("name: {}\n", q(&format!("generated-{index}"))));
    y.push_str("description: \"generated policy\"\n");
    y.push_str("version: \"1.0\"\n");
    if let Some(d) = p.default_outcome {
        y.push_str(&format!("default_outcome: {d}\n"));
    }
    if p.rules.is_empty() {
        y.push_str("rules: []\n");
        return y;
    }
    y.push_str("rules:\n");
    for (j, r) in p.rules.iter().enumerate() {
        y.push_str(&format!("  - id: {}\n", q(&format!("p{index}-r{j}"))));
        y.push_str("    description: \"generated rule\"\n");
        let mut m = serde_json::Map::new();
        for (key, list) in [
            ("action_types", &r.action_types),
            ("resources", &r.resources),
            ("agent_ids", &r.agent_ids),
        ] {
            if let Some(list) = list {
                m.insert(key.into(), json!(list));
            }
        }
        if !r.parameters.is_empty() {
            let mut params = serde_json::Map::new();
            for (k, re) in &r.parameters {
                params.entry(k.to_string()).or_insert_with(|| json!(re));
            }
            m.insert("parameters".into(), Value::Object(params));
        }
        if !r.conditions.is_empty() {
            let conds: Vec<Value> = r
                .conditions
                .iter()
                .map(|(f, op, v)| json!({"field": f, "operator": op, "value": v}))
                .collect();
            m.insert("conditions".into(), Value::Array(conds));
        }
        y.push_str(&format!("    match_on: {}\n", flow(&Value::Object(m))));
        match r.effect {
            0 => y.push_str("    effect: {\"type\": \"allow\"}\n"),
            1 => y.push_str(&format!(
                "    effect: {{\"type\": \"deny\", \"reason\": {}}}\n",
                q(r.reason)
            )),
            _ => y.push_str(&format!(
                "    effect: {{\"type\": \"require_approval\", \"reason\": {}}}\n",
                q(r.reason)
            )),
        }
    }
    y
}

pub fn case(ver: Ver) -> BoxedStrategy<(Vec<String>, Vec<GenCall>)> {
    (
        prop::collection::vec(kv_policy(ver), 1..=3),
        prop::collection::vec(gen_call(), CALLS_PER_POLICY),
    )
        .prop_map(|(policies, calls)| {
            let yamls = policies
                .iter()
                .enumerate()
                .map(|(i, p)| render(i, p))
                .collect();
            (yamls, calls)
        })
        .boxed()
}

//! `kvlar schema`: prints a JSON Schema (draft-07, what the YAML language
//! server validates with) of the policy format, so editors check and complete
//! policies. Both rule forms (Kvlar's `match_on` / `effect: {type, reason}`
//! and native `tools` / `when` / `effect: deny` + `reason`) and both operator
//! vocabularies are described. The key lists and operator spellings are the
//! compiler's own (`kvlar_compiler::load::schema`, `KvOp::SPELLINGS`), so the
//! schema cannot drift from what the compiler accepts.

use std::process::ExitCode;

use kvlar_compiler::ast::KvOp;
use kvlar_compiler::load::schema::{
    CONDITION_KEYS, EFFECT_KEYS, MATCH_ON_KEYS, POLICY_KEYS, RULE_KEYS,
};
use serde_json::{json, Map, Value};

use crate::report::outln;

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> ExitCode {
    let s = schema();
    outln!(
        "{}",
        serde_json::to_string_pretty(&s).unwrap_or_else(|_| s.to_string())
    );
    ExitCode::SUCCESS
}

const EFFECTS: [&str; 3] = ["allow", "deny", "require_approval"];

/// Any YAML scalar: the loader reads `version: 1.0` as the string "1.0".
fn text(description: &str) -> Value {
    json!({"type": ["string", "number", "boolean", "null"], "description": description})
}

fn globs(description: &str) -> Value {
    json!({
        "type": ["array", "null"],
        "items": {"type": ["string", "number", "boolean"]},
        "description": description,
    })
}

/// The schema of one key of one mapping; `None` for a key this file does not
/// describe (a test checks there is none).
fn property(context: &str, key: &str) -> Option<Value> {
    Some(match (context, key) {
        ("policy", "name") => text("The policy's name"),
        ("policy", "description") => text("What the policy does"),
        ("policy", "version") => text("The policy's version, e.g. \"1.0\""),
        ("policy", "extends") => json!({
            "type": ["array", "null"],
            "items": {"type": "string"},
            "description": "Policy files (relative to this one) whose rules are appended after this policy's own",
        }),
        ("policy", "default_outcome") => json!({
            "enum": ["allow", "deny"],
            "description": "allow: end with `_default_allow` when no rule of this policy matched; deny (default): go on to the next policy",
        }),
        ("policy", "rules") => json!({
            "type": ["array", "null"],
            "items": {"$ref": "#/definitions/rule"},
            "description": "Tried in order; the first rule that matches decides",
        }),
        ("rule", "id") => text("Unique rule id (reported with every decision)"),
        ("rule", "description") => text("What the rule is for"),
        ("rule", "match_on") => json!({"$ref": "#/definitions/match_on"}),
        ("rule", "tools") => {
            globs("Tool-name globs (`*`, `?`, `[a-z]`); the rule applies to these tools only")
        }
        ("rule", "when") => json!({
            "type": ["string", "boolean"],
            "description": "A condition expression, e.g. `args.path under \"/srv\"`. Quote it, or use `>-`, when it contains `: `",
        }),
        ("rule", "effect") => json!({
            "oneOf": [
                {"enum": EFFECTS, "description": "Short form; `deny` and `require_approval` need `reason:` beside it"},
                {"$ref": "#/definitions/effect"},
            ],
        }),
        ("rule", "reason") => json!({
            "type": ["string", "number", "boolean"],
            "description": "Shown to the agent (short `effect:` form only)",
        }),
        ("match_on", "action_types") => globs("Action-type globs (`tool_call` for MCP)"),
        ("match_on", "resources") => globs("Tool-name globs"),
        ("match_on", "agent_ids") => globs("Agent-id globs"),
        ("match_on", "parameters") => json!({
            "type": ["object", "null"],
            "additionalProperties": {"type": ["string", "number", "boolean"]},
            "description": "Argument name → regex that must find a match in its text",
        }),
        ("match_on", "conditions") => json!({
            "type": ["array", "null"],
            "items": {"$ref": "#/definitions/condition"},
            "description": "All must hold",
        }),
        ("condition", "field") => text("Argument name, or a dot path into nested objects"),
        ("condition", "operator") => json!({
            "enum": KvOp::SPELLINGS.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            "description": "Kvlar v0.3 and v0.4 operator names",
        }),
        ("condition", "value") => {
            json!({"description": "Compared with the field (a list for in / one_of / not_in / in_domain)"})
        }
        ("effect", "type") => json!({"enum": EFFECTS}),
        ("effect", "reason") => text("Shown to the agent; required for deny and require_approval"),
        _ => return None,
    })
}

fn object(context: &str, keys: &[&str], required: &[&str], nullable: bool) -> Value {
    let props: Map<String, Value> = keys
        .iter()
        .map(|k| {
            (
                (*k).to_string(),
                property(context, k).unwrap_or_else(|| json!({})),
            )
        })
        .collect();
    let ty = if nullable {
        json!(["object", "null"])
    } else {
        json!("object")
    };
    json!({
        "type": ty,
        "properties": props,
        "required": required,
        "additionalProperties": false,
    })
}

/// `effect: deny` or `{type: deny}` needs a reason; `effect: allow` takes
/// none beside it; a mapping effect takes no `reason` beside it.
fn rule_constraints() -> Value {
    json!([
        {
            "if": {"properties": {"effect": {"enum": ["deny", "require_approval"]}}, "required": ["effect"]},
            "then": {"required": ["reason"]},
        },
        {
            "if": {"properties": {"effect": {"const": "allow"}}, "required": ["effect"]},
            "then": {"not": {"required": ["reason"]}},
        },
        {
            "if": {"properties": {"effect": {"type": "object"}}, "required": ["effect"]},
            "then": {"not": {"required": ["reason"]}},
        },
    ])
}

/// The JSON Schema of a policy file.
pub fn schema() -> Value {
    let mut policy = object(
        "policy",
        POLICY_KEYS,
        &["name", "description", "version"],
        false,
    );
    let mut rule = object("rule", RULE_KEYS, &["id", "effect"], false);
    rule["allOf"] = rule_constraints();
    let mut effect = object("effect", EFFECT_KEYS, &["type"], false);
    effect["if"] = json!({"properties": {"type": {"enum": ["deny", "require_approval"]}}});
    effect["then"] = json!({"required": ["reason"]});
    policy["$schema"] = json!("http://json-schema.org/draft-07/schema#");
    policy["title"] = json!("Kvlar policy");
    policy["description"] = json!(
        "A Kvlar policy: rules tried in order, the first match decides (see docs/language.md)"
    );
    policy["definitions"] = json!({
        "rule": rule,
        "match_on": object("match_on", MATCH_ON_KEYS, &[], true),
        "condition": object("condition", CONDITION_KEYS, &["field", "operator"], false),
        "effect": effect,
    });
    policy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_the_compiler_accepts_is_described() {
        for (context, keys) in [
            ("policy", POLICY_KEYS),
            ("rule", RULE_KEYS),
            ("match_on", MATCH_ON_KEYS),
            ("condition", CONDITION_KEYS),
            ("effect", EFFECT_KEYS),
        ] {
            for k in keys {
                assert!(property(context, k).is_some(), "{context}.{k}");
            }
        }
    }

    #[test]
    fn operators_of_both_vocabularies() {
        let s = schema();
        let ops = &s["definitions"]["condition"]["properties"]["operator"]["enum"];
        for op in [
            "equals",
            "eq",
            "one_of",
            "in",
            "not_in",
            "in_domain",
            "matches",
        ] {
            assert!(
                ops.as_array().is_some_and(|a| a.contains(&json!(op))),
                "{op}"
            );
        }
    }
}

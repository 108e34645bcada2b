//! The answer to a denied `tools/call`.
//!
//! A denial is a JSON-RPC **result** with `isError: true` (a tool execution
//! error the client shows the model), a text naming the tool, the reason and
//! the rule, and machine-readable details under `_meta["io.kvlar/decision"]`
//! so a client can tell a policy denial from a tool failure.

use kvlar_vm::{Decision, Effect};

use super::classify::write_json_str;

/// The `_meta` key that carries the decision.
pub const META_KEY: &str = "io.kvlar/decision";

/// The text shown to the model.
pub fn text(tool: &str, decision: &Decision<'_>) -> String {
    let reason = decision.reason().unwrap_or("no reason given");
    match decision.effect() {
        Effect::RequireApproval => format!(
            "Kvlar denied the call to tool `{tool}`: it requires approval ({reason}), \
             and no approval channel is configured (rule {})",
            decision.rule()
        ),
        _ => format!(
            "Kvlar denied the call to tool `{tool}`: {reason} (rule {})",
            decision.rule()
        ),
    }
}

/// The denial line (ending with `\n`) answering request `id` (raw JSON text).
pub fn denial(id: &str, tool: &str, decision: &Decision<'_>, policy_hash: &str) -> Vec<u8> {
    let text = text(tool, decision);
    let mut out = Vec::with_capacity(256 + 2 * text.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b",\"result\":{\"content\":[{\"type\":\"text\",\"text\":");
    write_json_str(&mut out, &text);
    out.extend_from_slice(b"}],\"isError\":true,\"_meta\":{\"");
    out.extend_from_slice(META_KEY.as_bytes());
    out.extend_from_slice(b"\":{\"decision\":");
    write_json_str(&mut out, decision.effect().as_str());
    out.extend_from_slice(b",\"rule\":");
    write_json_str(&mut out, decision.rule());
    out.extend_from_slice(b",\"reason\":");
    match decision.reason() {
        Some(r) => write_json_str(&mut out, r),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"policy_hash\":");
    write_json_str(&mut out, policy_hash);
    out.extend_from_slice(b",\"tool\":");
    write_json_str(&mut out, tool);
    out.extend_from_slice(b"}}}}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvlar_vm::Verdict;

    fn deny(rule: &'static str, reason: Option<&'static str>) -> Verdict {
        Verdict::new(Effect::Deny, rule, reason)
    }

    #[test]
    fn denial_bytes() {
        let verdict = deny("no-env", Some("environment is secret"));
        let d = Decision::new(&verdict);
        let line = denial("7", "get-env", &d, "abc123");
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\
             \"Kvlar denied the call to tool `get-env`: environment is secret (rule no-env)\"}],\
             \"isError\":true,\"_meta\":{\"io.kvlar/decision\":{\"decision\":\"deny\",\"rule\":\"no-env\",\
             \"reason\":\"environment is secret\",\"policy_hash\":\"abc123\",\"tool\":\"get-env\"}}}}\n"
        );
    }

    #[test]
    fn denial_escapes_and_keeps_string_ids() {
        let verdict = deny("r\"1", Some("line\nbreak"));
        let d = Decision::new(&verdict);
        let line = denial("\"a\\u0062\"", "t\"x", &d, "h");
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["id"], "ab");
        assert!(String::from_utf8_lossy(&line).contains("\"id\":\"a\\u0062\""));
        assert_eq!(
            v["result"]["content"][0]["text"],
            "Kvlar denied the call to tool `t\"x`: line\nbreak (rule r\"1)"
        );
        assert_eq!(v["result"]["_meta"]["io.kvlar/decision"]["tool"], "t\"x");
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
    }

    #[test]
    fn require_approval_is_denied_saying_so() {
        let verdict = Verdict::new(
            Effect::RequireApproval,
            "ask-first",
            Some("writes need a human"),
        );
        let d = Decision::new(&verdict);
        let v: serde_json::Value = serde_json::from_slice(&denial("1", "write", &d, "h")).unwrap();
        assert_eq!(
            v["result"]["content"][0]["text"],
            "Kvlar denied the call to tool `write`: it requires approval (writes need a human), \
             and no approval channel is configured (rule ask-first)"
        );
        assert_eq!(v["result"]["isError"], true);
        assert_eq!(
            v["result"]["_meta"]["io.kvlar/decision"]["decision"],
            "require_approval"
        );
    }

    #[test]
    fn missing_reason() {
        let verdict = deny("_default_deny", None);
        let d = Decision::new(&verdict);
        let v: serde_json::Value = serde_json::from_slice(&denial("0", "x", &d, "h")).unwrap();
        assert_eq!(
            v["result"]["content"][0]["text"],
            "Kvlar denied the call to tool `x`: no reason given (rule _default_deny)"
        );
        assert_eq!(
            v["result"]["_meta"]["io.kvlar/decision"]["reason"],
            serde_json::Value::Null
        );
    }
}

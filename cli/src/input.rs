//! What `eval` and `explain` accept as a call: a Kvlar action
//! (`{"resource", "action_type"?, "agent_id"?, "parameters"?}`), an MCP
//! `tools/call` params object (`{"name", "arguments"?}`), or a whole JSON-RPC
//! `tools/call` request. Anything else is rejected with a reason — the caller
//! turns that into a deny (fail closed).

use serde_json::{Map, Value};

/// Kvlar's default agent id for test actions.
pub const TEST_AGENT: &str = "test-agent";

/// An owned call, borrowed as a [`kvlar_vm::Call`] for evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedCall {
    pub tool: String,
    pub agent: String,
    pub action: String,
    pub args: Value,
}

impl OwnedCall {
    pub fn as_call(&self) -> kvlar_vm::Call<'_> {
        kvlar_vm::Call {
            tool: &self.tool,
            agent: &self.agent,
            action: &self.action,
            args: &self.args,
        }
    }
}

fn string_field(obj: &Map<String, Value>, key: &str, what: &str) -> Result<Option<String>, String> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "`{key}` of {what} must be a string, found {}",
            type_name(other)
        )),
    }
}

fn args_field(obj: &Map<String, Value>, key: &str, what: &str) -> Result<Value, String> {
    match obj.get(key) {
        None => Ok(Value::Object(Map::new())),
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(other) => Err(format!(
            "`{key}` of {what} must be an object, found {}",
            type_name(other)
        )),
    }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Interprets one parsed JSON value as a call.
pub fn to_call(v: &Value, mcp_agent: &str) -> Result<OwnedCall, String> {
    let Value::Object(obj) = v else {
        return Err(format!("expected a JSON object, found {}", type_name(v)));
    };
    if obj.contains_key("resource") {
        let what = "a Kvlar action";
        let tool = string_field(obj, "resource", what)?.unwrap_or_default();
        return Ok(OwnedCall {
            tool,
            agent: string_field(obj, "agent_id", what)?.unwrap_or_else(|| TEST_AGENT.into()),
            action: string_field(obj, "action_type", what)?
                .unwrap_or_else(|| kvlar_vm::call::TOOL_CALL.into()),
            args: args_field(obj, "parameters", what)?,
        });
    }
    if let Some(method) = obj.get("method") {
        if method.as_str() != Some("tools/call") {
            return Err(format!(
                "a JSON-RPC request must have method \"tools/call\", found {method}"
            ));
        }
        let Some(Value::Object(params)) = obj.get("params") else {
            return Err("a tools/call request must have a `params` object".into());
        };
        return mcp_params(params, mcp_agent);
    }
    if obj.contains_key("name") {
        return mcp_params(obj, mcp_agent);
    }
    Err("expected a Kvlar action (`resource`), an MCP tools/call params object (`name`) or a JSON-RPC tools/call request (`method`)".into())
}

fn mcp_params(params: &Map<String, Value>, agent: &str) -> Result<OwnedCall, String> {
    let what = "tools/call params";
    let Some(tool) = string_field(params, "name", what)? else {
        return Err("tools/call params must have a `name`".into());
    };
    Ok(OwnedCall {
        tool,
        agent: agent.to_string(),
        action: kvlar_vm::call::TOOL_CALL.into(),
        args: args_field(params, "arguments", what)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_three_shapes() {
        let a = to_call(
            &json!({"resource": "bash", "parameters": {"command": "ls"}}),
            "mcp-agent",
        )
        .unwrap();
        assert_eq!(
            (a.tool.as_str(), a.agent.as_str(), a.action.as_str()),
            ("bash", "test-agent", "tool_call")
        );
        assert_eq!(a.args, json!({"command": "ls"}));
        let b = to_call(
            &json!({"name": "read_file", "arguments": {"path": "/x"}}),
            "mcp-agent",
        )
        .unwrap();
        assert_eq!(
            (b.tool.as_str(), b.agent.as_str()),
            ("read_file", "mcp-agent")
        );
        let c = to_call(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t"}}),
            "mcp-agent",
        )
        .unwrap();
        assert_eq!((c.tool.as_str(), &c.args), ("t", &json!({})));
    }

    #[test]
    fn rejects_with_reasons() {
        assert_eq!(
            to_call(&json!({"name": 5}), "a").unwrap_err(),
            "`name` of tools/call params must be a string, found a number"
        );
        assert_eq!(
            to_call(&json!({"name": "t", "arguments": "rm -rf /"}), "a").unwrap_err(),
            "`arguments` of tools/call params must be an object, found a string"
        );
        assert_eq!(
            to_call(&json!({"method": "tools/list"}), "a").unwrap_err(),
            "a JSON-RPC request must have method \"tools/call\", found \"tools/list\""
        );
        assert_eq!(
            to_call(&json!([1]), "a").unwrap_err(),
            "expected a JSON object, found an array"
        );
    }
}

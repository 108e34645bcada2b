//! The input of an evaluation: one tool call, borrowed.

use serde_json::Value;

/// The action type of an MCP `tools/call`.
pub const TOOL_CALL: &str = "tool_call";
/// The agent id given to MCP calls unless configured otherwise.
pub const MCP_AGENT: &str = "mcp-agent";

/// A tool call to decide on. Everything is borrowed: building a `Call`
/// allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The tool (Kvlar: resource) name.
    pub tool: &'a str,
    /// The agent id.
    pub agent: &'a str,
    /// The action type (`tool_call` for MCP calls).
    pub action: &'a str,
    /// The argument object. Anything but a JSON object is treated as an
    /// object with no keys by the Kvlar-format criteria and as-is by `args`
    /// paths in expressions (so `args.x` is missing).
    pub args: &'a Value,
}

impl<'a> Call<'a> {
    /// An MCP `tools/call` with the default agent id.
    pub fn mcp(tool: &'a str, args: &'a Value) -> Self {
        Call {
            tool,
            agent: MCP_AGENT,
            action: TOOL_CALL,
            args,
        }
    }
}

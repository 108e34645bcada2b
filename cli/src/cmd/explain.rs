//! `kvlar explain CALL.json --policy P [--format text|json]`: the decision,
//! then every rule the VM considered, in order, with each test it ran, whether
//! it passed and the value it saw — as source snippets of the policy.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;
use serde_json::{json, Value};

use crate::input;
use crate::policy_load;
use crate::report;
use crate::report::outln;
use crate::trace_view::{self, location, rule_span};

#[derive(clap::Args)]
pub struct Args {
    /// The call: a Kvlar action, MCP tools/call params, or a JSON-RPC tools/call request.
    #[arg(value_name = "CALL.json")]
    pub call: PathBuf,
    /// Policy files (compiled together, tried in order) or one `.kvbc` program.
    #[arg(long = "policy", short = 'p', required = true, value_name = "POLICY")]
    pub policies: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Agent id given to MCP-shaped calls.
    #[arg(long, default_value = kvlar_vm::call::MCP_AGENT)]
    pub agent_id: String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub fn run(args: Args) -> ExitCode {
    let Ok(loaded) = policy_load::load(&args.policies) else {
        return ExitCode::from(1);
    };
    let text = match std::fs::read_to_string(&args.call) {
        Ok(t) => t,
        Err(e) => return report::fail(format!("cannot read {}: {e}", args.call.display()), None),
    };
    let parsed: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            return report::fail(
                format!("{} is not valid JSON: {e}", args.call.display()),
                Some("a call is a Kvlar action, an MCP tools/call params object or a JSON-RPC tools/call request"),
            )
        }
    };
    let call = match input::to_call(&parsed, &args.agent_id) {
        Ok(c) => c,
        Err(why) => return report::fail(format!("{}: {why}", args.call.display()), None),
    };
    let program = &loaded.program;
    let mut trace = kvlar_vm::Trace::default();
    let decision = program.evaluate_traced(&call.as_call(), &mut trace);

    let rules = trace_view::group(&loaded, &trace);

    match args.format {
        Format::Json => {
            let considered = trace_view::to_json(&loaded, &rules);
            let out = json!({
                "decision": decision.effect().as_str(),
                "rule": decision.rule(),
                "reason": decision.reason(),
                "call": {"tool": call.tool, "agent": call.agent, "action": call.action, "arguments": call.args},
                "policy_hash": program.hash_hex(),
                "considered": considered,
            });
            outln!(
                "{}",
                serde_json::to_string_pretty(&out).unwrap_or_else(|_| out.to_string())
            );
        }
        Format::Text => {
            outln!("decision: {}", decision.effect());
            match location(&loaded, trace.decided.and_then(|r| rule_span(&loaded, r))) {
                Some(loc) => outln!("rule:     {} ({loc})", decision.rule()),
                None => outln!("rule:     {}", decision.rule()),
            }
            if let Some(reason) = decision.reason() {
                outln!("reason:   {reason}");
            }
            outln!(
                "call:     tool {:?}, agent {:?}, action {:?}",
                call.tool,
                call.agent,
                call.action
            );
            outln!();
            trace_view::print(&loaded, &rules);
        }
    }
    ExitCode::SUCCESS
}

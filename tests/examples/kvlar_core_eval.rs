//! The peer side of the whole-process benchmark (`scripts/bench-eval-process.sh`):
//! `kvlar eval`'s job done with the published `kvlar-core` 0.4.0 — read MCP
//! `tools/call` params objects (`{"name", "arguments"}`), one per line,
//! decide each, write one JSON line per decision.
//!
//!   kvlar_core_eval POLICY.yaml… < calls.jsonl > decisions.jsonl

use std::io::{BufRead, BufWriter, Write};

use kvlar_core_04 as core;
use serde_json::{json, Value};

fn main() {
    let mut engine = core::Engine::new();
    for path in std::env::args().skip(1) {
        let yaml = std::fs::read_to_string(&path).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
        engine
            .load_policy_yaml(&yaml)
            .unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    }
    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    for line in stdin.lines() {
        let line = line.unwrap_or_else(|e| fail(&e.to_string()));
        let decided = match serde_json::from_str::<Value>(&line) {
            Ok(params) => {
                let name = params.get("name").and_then(Value::as_str).unwrap_or("");
                let mut action = core::Action::new("tool_call", name, "mcp-agent");
                if let Some(Value::Object(m)) = params.get("arguments") {
                    for (k, v) in m {
                        action.parameters.insert(k.clone(), v.clone());
                    }
                }
                let d = engine.evaluate(&action);
                json!({"rule": d.matched_rule()})
            }
            Err(e) => json!({"error": e.to_string()}),
        };
        let _ = writeln!(out, "{decided}");
    }
}

fn fail(message: &str) -> ! {
    eprintln!("kvlar_core_eval: {message}");
    std::process::exit(1)
}

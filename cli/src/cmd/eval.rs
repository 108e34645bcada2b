//! `kvlar eval --policy P… CALLS.jsonl|-`: one decision per input line.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use serde_json::Value;

use crate::input;
use crate::policy_load;
use crate::report;

/// Rule id of the deny given to an input line that is not a call.
pub const INVALID_INPUT: &str = "_invalid_input";

#[derive(clap::Args)]
pub struct Args {
    /// Policy files (compiled together, tried in order) or one `.kvbc` program.
    #[arg(long = "policy", short = 'p', required = true, value_name = "POLICY")]
    pub policies: Vec<PathBuf>,
    /// Agent id given to MCP-shaped calls.
    #[arg(long, default_value = kvlar_vm::call::MCP_AGENT)]
    pub agent_id: String,
    /// JSON lines of calls; `-` reads stdin.
    #[arg(value_name = "CALLS.jsonl|-")]
    pub calls: PathBuf,
}

/// One output line: `{"decision", "rule", "reason"}`, in that order.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Out<'a> {
    pub decision: &'a str,
    pub rule: &'a str,
    pub reason: Option<String>,
}

fn invalid(lineno: usize, why: &str) -> Out<'static> {
    Out {
        decision: "deny",
        rule: INVALID_INPUT,
        reason: Some(format!("line {lineno}: {why}")),
    }
}

/// The output line for one input line.
pub fn decide_line<'p>(
    program: &'p kvlar_vm::Program,
    line: &str,
    lineno: usize,
    agent: &str,
) -> Out<'p> {
    let parsed: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return invalid(lineno, &format!("not valid JSON ({e})")),
    };
    match input::to_call(&parsed, agent) {
        Ok(call) => {
            let d = program.evaluate(&call.as_call());
            Out {
                decision: d.effect().as_str(),
                rule: d.rule(),
                reason: d.reason().map(str::to_string),
            }
        }
        Err(why) => invalid(lineno, &why),
    }
}

pub fn run(args: Args) -> ExitCode {
    let Ok(loaded) = policy_load::load(&args.policies) else {
        return ExitCode::from(1);
    };
    let reader: Box<dyn BufRead> = if args.calls.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(&args.calls) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => {
                return report::fail(format!("cannot read {}: {e}", args.calls.display()), None)
            }
        }
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for (i, line) in reader.split(b'\n').enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => return report::fail(format!("cannot read input: {e}"), None),
        };
        let text = String::from_utf8_lossy(&line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        if text.trim().is_empty() {
            continue;
        }
        let v = match std::str::from_utf8(&line) {
            Ok(_) => decide_line(&loaded.program, text, i + 1, &args.agent_id),
            Err(_) => invalid(i + 1, "not valid UTF-8"),
        };
        let text = serde_json::to_string(&v).unwrap_or_default();
        if writeln!(out, "{text}").is_err() {
            return ExitCode::from(1);
        }
    }
    if out.flush().is_err() {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

//! `kvlar tools [-o FILE] -- <server command>`: starts an MCP server, asks it
//! for its tools (`initialize`, then `tools/list`, following `nextCursor`)
//! and prints `{"tools": [...]}` — the file `kvlar lint --tools` reads.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::report::fail;
use crate::report::out;

/// The protocol revision announced in `initialize`.
const PROTOCOL_VERSION: &str = "2025-11-25";
/// Pages of `tools/list` followed before giving up (a server looping on one cursor).
const MAX_PAGES: usize = 1000;

#[derive(clap::Args)]
pub struct Args {
    /// Write the tools to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Seconds to wait for each answer from the server.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// The server command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "SERVER COMMAND")]
    pub command: Vec<String>,
}

pub fn run(args: Args) -> ExitCode {
    let Some((program, rest)) = args.command.split_first() else {
        return fail(
            "no server command given",
            Some("kvlar tools -- npx @modelcontextprotocol/server-filesystem /tmp"),
        );
    };
    let mut child = match Command::new(program)
        .args(rest)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return fail(
                format!("cannot start `{program}`: {e}"),
                Some("give the server command after `--`, as in a client configuration"),
            )
        }
    };
    let result = fetch(&mut child, Duration::from_secs(args.timeout.max(1)));
    stop(child);
    let tools = match result {
        Ok(t) => t,
        Err(message) => return fail(format!("{program}: {message}"), None),
    };
    let mut text = serde_json::to_string_pretty(&json!({ "tools": tools }))
        .unwrap_or_else(|_| "{}".to_string());
    text.push('\n');
    match &args.output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, text) {
                return fail(format!("cannot write {}: {e}", path.display()), None);
            }
            eprintln!(
                "kvlar tools: {} tools written to {}",
                tools.len(),
                path.display()
            );
        }
        None => out!("{text}"),
    }
    ExitCode::SUCCESS
}

/// The handshake and the paged `tools/list`.
fn fetch(child: &mut Child, timeout: Duration) -> Result<Vec<Value>, String> {
    let mut stdin = child.stdin.take().ok_or("no stdin pipe")?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let lines = spawn_reader(stdout);
    send(
        &mut stdin,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL_VERSION,
            // Everything a client may declare: some servers only register
            // tools for the capabilities the client has.
            "capabilities": {"roots": {"listChanged": false}, "sampling": {}, "elicitation": {}},
            "clientInfo": {"name": "kvlar-tools", "version": env!("CARGO_PKG_VERSION")}
        }}),
    )?;
    answer(&lines, &mut stdin, 1, timeout, "initialize")?;
    send(
        &mut stdin,
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )?;
    let mut tools = Vec::new();
    let mut cursor: Option<Value> = None;
    for page in 0..MAX_PAGES {
        let id = 2 + page as u64;
        let params = match &cursor {
            Some(c) => json!({ "cursor": c }),
            None => json!({}),
        };
        send(
            &mut stdin,
            &json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": params}),
        )?;
        let result = answer(&lines, &mut stdin, id, timeout, "tools/list")?;
        match result.get("tools") {
            Some(Value::Array(page)) => tools.extend(page.iter().cloned()),
            _ => return Err("the `tools/list` result has no `tools` list".into()),
        }
        cursor = result.get("nextCursor").filter(|c| !c.is_null()).cloned();
        if cursor.is_none() {
            return Ok(tools);
        }
    }
    Err(format!(
        "`tools/list` still had a `nextCursor` after {MAX_PAGES} pages"
    ))
}

fn spawn_reader(stdout: std::process::ChildStdout) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx
                        .send(line.trim_end_matches(['\n', '\r']).to_string())
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    rx
}

fn send(stdin: &mut ChildStdin, msg: &Value) -> Result<(), String> {
    let mut line = msg.to_string();
    line.push('\n');
    stdin
        .write_all(line.as_bytes())
        .and_then(|()| stdin.flush())
        .map_err(|e| format!("cannot write to the server: {e}"))
}

/// Waits for the response to `id`, answering the server's own requests on
/// the way (roots: none; ping: empty; anything else: method not found).
fn answer(
    lines: &Receiver<String>,
    stdin: &mut ChildStdin,
    id: u64,
    timeout: Duration,
    what: &str,
) -> Result<Value, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match lines.recv_timeout(left) {
            Ok(l) => l,
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "no answer to `{what}` within {} s",
                    timeout.as_secs()
                ))
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(format!(
                    "the server closed its output before answering `{what}`"
                ))
            }
        };
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            eprintln!("kvlar tools: ignoring a non-JSON line from the server");
            continue;
        };
        if let Some(method) = msg.get("method").and_then(Value::as_str) {
            if let Some(req_id) = msg.get("id") {
                let reply = match method {
                    "roots/list" => {
                        json!({"jsonrpc": "2.0", "id": req_id, "result": {"roots": []}})
                    }
                    "ping" => json!({"jsonrpc": "2.0", "id": req_id, "result": {}}),
                    _ => {
                        json!({"jsonrpc": "2.0", "id": req_id, "error": {"code": -32601, "message": "kvlar tools does not handle this request"}})
                    }
                };
                send(stdin, &reply)?;
            }
            continue;
        }
        if msg.get("id").and_then(Value::as_u64) != Some(id) {
            continue;
        }
        if let Some(err) = msg.get("error") {
            return Err(format!("the server answered `{what}` with an error: {err}"));
        }
        return msg
            .get("result")
            .cloned()
            .ok_or_else(|| format!("the answer to `{what}` has no `result`"));
    }
}

/// Closes the server's stdin, gives it a moment, then kills it.
fn stop(mut child: Child) {
    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

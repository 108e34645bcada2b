//! `kvlar proxy`: a transparent MCP stdio firewall.
//!
//! The MCP client starts `kvlar proxy … -- <server command>` instead of the
//! server. Every `tools/call` is decided by the compiled policy before
//! anything reaches the server; everything else passes through byte for byte.
//!
//! ```text
//! kvlar proxy --stdio --policy P [--policy P2] [--watch] [--audit FILE] [--audit-redact] [--agent-id ID] -- <command> [args…]
//! kvlar proxy --config proxy.yaml
//! ```
//!
//! - Allowed: the client's original bytes are forwarded unchanged.
//! - Denied (and `require_approval`, as there is no approval channel yet): the
//!   proxy answers with a JSON-RPC result `{"content":[{"type":"text","text":
//!   "Kvlar denied the call to tool `X`: <reason> (rule <id>)"}],"isError":true,
//!   "_meta":{"io.kvlar/decision":{decision, rule, reason, policy_hash, tool}}}` ([`deny`]).
//! - Fail closed ([`classify`]): a line that is not JSON or not UTF-8 → `-32700`
//!   (id null); a `tools/call` that is malformed, has a null id, duplicate keys (or keys
//!   differing only by case) anywhere in its params, an ambiguous id, or a
//!   method that differs from `tools/call` only by case/whitespace → `-32600`
//!   with its id; a batch containing any `tools/call` → `-32600` for each
//!   request in it; a `tools/call` notification → dropped; a line with a
//!   carriage return between its tokens (a line break to universal-newline
//!   readers such as the Python SDK) → `-32600` when it has an id, else
//!   dropped. None is forwarded. Keys compare case-insensitively as Go's
//!   `EqualFold` does (`ſ` is `s`), and `params` keys that only look like
//!   `name`/`arguments` are refused.
//! - Lines up to 64 MiB; longer client lines get `-32600` (when their id can be
//!   read) and are dropped. Non-JSON lines on the server's stdout are dropped
//!   and logged.
//! - Lifecycle ([`child`]): client EOF closes the server's stdin, then SIGTERM
//!   after 2 s, SIGKILL after 2 more; when the server exits, requests it did
//!   not answer get `-32000` errors and the proxy exits with its status
//!   (128 + signal if it was killed). Exit 2: bad arguments or config;
//!   1: the policy does not compile; 127: the server command was not found.
//! - stdout carries protocol only; logs go to stderr, prefixed `[kvlar] `.
//! - Waiting ([`spin`]): while the server owes an answer, the proxy polls for
//!   it for up to `--busy-poll` µs (default 500) before it sleeps; the window
//!   shrinks, down to none, while the waits take longer than that.

/// Writes one line to stderr. Unlike `eprintln!`, it never panics: a client
/// that closed the proxy's stderr must not bring the proxy down.
macro_rules! log {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod audit;
mod child;
mod classify;
mod config;
mod deny;
mod lines;
mod policy;
mod reload;
mod session;
mod spin;
mod stdio;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use audit::Audit;
use session::{Context, Pending};
use spin::Spin;

/// `kvlar proxy`: run an MCP server behind the policy firewall.
#[derive(Debug, Default, clap::Args)]
pub struct ProxyArgs {
    /// Speak MCP over stdio (the only transport, and the default).
    #[arg(long)]
    pub stdio: bool,
    /// A policy file (repeatable; tried in order).
    #[arg(long = "policy", value_name = "FILE")]
    pub policies: Vec<PathBuf>,
    /// Recompile and swap the policy when its files change.
    #[arg(long)]
    pub watch: bool,
    /// Append one JSON line per decision to this file.
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
    /// Leave argument values out of the audit log (their names are kept).
    #[arg(long)]
    pub audit_redact: bool,
    /// The agent id policies see (default: mcp-agent).
    #[arg(long, value_name = "ID")]
    pub agent_id: Option<String>,
    /// Poll up to this long for the server's answer before sleeping (default 500; 0: off)
    ///
    /// While a forwarded request is unanswered, the proxy polls the server and
    /// the client up to this many microseconds before it sleeps. This saves a
    /// wake-up per call where waking a sleeping process is slow (virtual
    /// machines whose idle CPUs halt), for at most that much CPU per message.
    /// The window adapts: it halves, down to none, after each wait longer than
    /// this, and doubles back after a wait it would have caught, so a server
    /// that always answers later is not polled for. At most 1000000.
    #[arg(long, value_name = "MICROSECONDS",
          value_parser = clap::value_parser!(u64).range(0..=config::MAX_BUSY_POLL_US))]
    pub busy_poll: Option<u64>,
    /// A proxy.yaml with policy_paths, hot_reload, transport, upstream_command,
    /// upstream_args, audit_file, agent_id, busy_poll_us; flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The upstream MCP server command and its arguments, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Runs the proxy until the upstream server is gone; exits with its status.
pub fn run(args: ProxyArgs) -> ExitCode {
    let settings = match config::resolve(args) {
        Ok(s) => s,
        Err(msg) => {
            log!("{msg}");
            return ExitCode::from(2);
        }
    };
    let loaded = match policy::load(&settings.policies) {
        Ok(l) => l,
        Err(diagnostic) => {
            log!("[kvlar] cannot compile the policy:\n{diagnostic}");
            return ExitCode::from(1);
        }
    };
    log!(
        "[kvlar] loaded {} policies ({} rules), policy hash {}",
        loaded.policies,
        loaded.rules,
        loaded.hash
    );
    let store = Arc::new(ArcSwap::from_pointee(loaded));
    if settings.watch {
        if let Err(msg) = reload::spawn(settings.policies.clone(), store.clone()) {
            log!("{msg}");
            return ExitCode::from(1);
        }
    }
    let (audit, audit_writer) = match &settings.audit {
        Some(path) => {
            let (a, w) = Audit::start(path.clone(), settings.audit_redact);
            (Some(a), Some(w))
        }
        None => (None, None),
    };
    let ctx = Arc::new(Context {
        policy: store,
        agent: Arc::from(settings.agent.as_str()),
        audit,
        pending: Arc::new(Pending::default()),
    });
    let spin = Arc::new(Spin::new(settings.busy_poll));
    let (poll, woke, pending) = (spin.clone(), spin.clone(), ctx.pending.clone());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Busy-poll only while the server owes an answer, for a window that
        // adapts to how long the waits take (see `spin`).
        .on_thread_park(move || {
            if !pending.is_empty() {
                poll.park();
            }
        })
        .on_thread_unpark(move || woke.unpark())
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log!("[kvlar] cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(child::run(&settings.command, &settings.args, ctx, &spin));
    // The client's stdin may still be blocked in a read: do not wait for it.
    runtime.shutdown_background();
    if let Some(w) = audit_writer {
        w.finish(Duration::from_secs(2));
    }
    code
}

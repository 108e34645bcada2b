//! The upstream server process and the proxy's lifecycle.
//!
//! - The child inherits the proxy's environment and stderr.
//! - Client EOF: close the child's stdin, wait up to 2 s, SIGTERM, wait 2 s, SIGKILL.
//! - Child exit: forward what it still wrote, answer the pending requests with
//!   errors, exit with the child's status.
//! - SIGINT / SIGTERM / SIGHUP: forwarded to the child, then as above.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitCode, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::policy::Decide;
use super::session::{self, Context};
use super::spin::Spin;
use super::stdio;

/// Time the child gets to exit by itself after its stdin is closed, and after SIGTERM.
pub const GRACE: Duration = Duration::from_secs(2);

/// Runs the upstream command and the forwarding loops until the child is gone.
pub async fn run<D: Decide>(
    command: &str,
    args: &[String],
    ctx: Arc<Context<D>>,
    spin: &Spin,
) -> ExitCode {
    let mut child = match Command::new(command)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            log!("[kvlar] cannot start the upstream server `{command}`: {e}");
            return ExitCode::from(if e.kind() == io::ErrorKind::NotFound {
                127
            } else {
                1
            });
        }
    };
    let (Some(child_in), Some(child_out)) = (child.stdin.take(), child.stdout.take()) else {
        log!("[kvlar] the upstream server's stdio is not available");
        return ExitCode::from(1);
    };

    let (client_in, client_out) = stdio::open();
    spin.watch(std::io::stdin().as_fd());
    spin.watch(child_out.as_fd());
    let (out, rx) = mpsc::channel::<Vec<u8>>(1024);
    let writer = tokio::spawn(session::writer(rx, client_out));
    let pending = ctx.pending.clone();
    let mut s2c = tokio::spawn(session::server_to_client(
        child_out,
        out.clone(),
        pending.clone(),
    ));
    let mut c2s = tokio::spawn(session::client_to_server(
        client_in,
        child_in,
        out.clone(),
        ctx,
    ));

    let mut sigint = Signals::new(SignalKind::interrupt());
    let mut sigterm = Signals::new(SignalKind::terminate());
    let mut sighup = Signals::new(SignalKind::hangup());

    let mut client_done = false;
    let status = tokio::select! {
        st = child.wait() => st,
        _ = &mut c2s => {
            client_done = true;
            stop(&mut child, GRACE, Signal::SIGTERM).await
        }
        _ = sigint.recv() => stop(&mut child, Duration::ZERO, Signal::SIGINT).await,
        _ = sigterm.recv() => stop(&mut child, Duration::ZERO, Signal::SIGTERM).await,
        _ = sighup.recv() => stop(&mut child, Duration::ZERO, Signal::SIGHUP).await,
    };
    let (code, described) = match &status {
        Ok(st) => (exit_code(st), describe(st)),
        Err(e) => {
            log!("[kvlar] cannot wait for the upstream server: {e}");
            (1, "unknown status".to_owned())
        }
    };

    // Forward what the server still wrote, then stop reading the client.
    if timeout(Duration::from_millis(500), &mut s2c).await.is_err() {
        s2c.abort();
    }
    if !client_done {
        c2s.abort();
        let _ = c2s.await;
    }
    session::answer_pending(&pending, &out, &described).await;
    drop(out);
    let _ = timeout(GRACE, writer).await;
    ExitCode::from(code)
}

/// Waits `first` for the child to exit, then sends `sig`, waits [`GRACE`], then kills it.
async fn stop(child: &mut Child, first: Duration, sig: Signal) -> io::Result<ExitStatus> {
    if !first.is_zero() {
        if let Ok(st) = timeout(first, child.wait()).await {
            return st;
        }
    }
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = kill(Pid::from_raw(pid), sig);
    }
    if let Ok(st) = timeout(GRACE, child.wait()).await {
        return st;
    }
    log!("[kvlar] the upstream server did not exit; killing it");
    child.start_kill()?;
    child.wait().await
}

/// The proxy's exit code for the child's status: its code, or 128 + signal.
pub fn exit_code(st: &ExitStatus) -> u8 {
    match (st.code(), st.signal()) {
        (Some(c), _) => (c & 0xff) as u8,
        (None, Some(s)) => (128 + s).clamp(0, 255) as u8,
        (None, None) => 1,
    }
}

fn describe(st: &ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        (None, None) => "unknown status".to_owned(),
    }
}

/// A signal stream; one that could not be installed never fires.
struct Signals(Option<tokio::signal::unix::Signal>);

impl Signals {
    fn new(kind: SignalKind) -> Self {
        match signal(kind) {
            Ok(s) => Signals(Some(s)),
            Err(e) => {
                log!("[kvlar] cannot handle a signal: {e}");
                Signals(None)
            }
        }
    }
    async fn recv(&mut self) {
        match &mut self.0 {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
}

//! Proxy benchmark: what `kvlar proxy` costs per `tools/call`, next to a
//! direct connection and the published `kvlar-cli` 0.4.0 proxy, in the same
//! run. `scripts/bench-proxy.sh` builds what it needs and runs this; it prints
//! Markdown tables for BENCHMARKS.md.
//!
//! Every configuration is a chain of real processes on real pipes: this
//! harness (the MCP client) → [proxy →] upstream server. The upstream server
//! is either this same binary started with `--mock-server` (a minimal,
//! deterministic stdio MCP server that answers at once, so the proxy's cost is
//! what is measured) or a real server from npm:
//! `@modelcontextprotocol/server-filesystem`, serving a directory this harness
//! fills, with `policies/filesystem.yaml` rooted at that directory (the
//! curated policy is written for this server), and
//! `@modelcontextprotocol/server-everything`. The issue's targets are about
//! what a user sees, so they are judged against the real servers; the mock
//! rows, with the relay below, show the proxy's own cost.
//!
//! Next to the proxies, this same binary started with `--relay -- SERVER…`
//! is a "proxy" that does no work: two threads copy lines both ways with
//! blocking reads, and the benchmark's denied call is answered without
//! parsing it. What it adds is what the machine charges for one more process
//! in the chain (pipe hops, wake-ups, where the scheduler puts it), a floor
//! no real proxy can go under on this machine. It runs in front of the mock
//! and in front of each real server.
//!
//! `kvlar proxy --busy-poll 0` runs next to the default proxy (filesystem.yaml
//! against the mock, allow-all against each real server) unless
//! `--no-poll-ablation` is given: what the proxy's busy-polling while the
//! server owes an answer saves or costs, in the same run.
//!
//! A proxy in front of a real server is judged against a direct connection
//! to *its own* server process: a "tap" opens that process's stdin and
//! stdout pipes again (`/proc/PID/fd/0` and `/1`) and calls it directly
//! while the proxy is stopped (SIGSTOP; see `Process::Tap`). Two processes of
//! the same Node server differ (JIT and garbage-collector state, where the
//! scheduler put them) by more than the targets; the same process, reached
//! both ways in alternating blocks, does not. Each real server also has a
//! second direct configuration with a server process of its own, which shows
//! what two processes differ by. `--processes K` runs every real-server
//! configuration over K server processes, its calls shared out between them
//! (1 by default: with 3, each process got too few calls to warm up).
//!
//! - Round-trip latency: one request in flight; the clock starts before the
//!   request is written and stops when its response has been read
//!   (`Instant`). p50 and p99 over all samples.
//! - Pipelined throughput: N calls with a window of W in flight (a writer
//!   thread, the reader returning credits); calls/s, median over rounds.
//! - CPU per call: the CPU time (`/proc/PID/task/*/schedstat`, in ns) that
//!   the client (this harness's threads), the proxy and the server process
//!   (with every process it started) spent during each configuration's calls,
//!   divided by the calls. With every process busy, N cores cannot carry more
//!   than N / (their sum) calls per second: that bound is printed next to the
//!   measured throughput.
//! - The servers are measured one after the other (the mock, then
//!   server-filesystem, then server-everything), each with only its own
//!   chains alive, and each prints its own tables. With every chain alive at
//!   once, a server process idled ~200 ms through the other chains' blocks,
//!   and its first calls after that filled the p99.
//! - Every chain is started once and kept; measurements are interleaved in
//!   short blocks (50 calls by default: 20,000 calls over 400 rounds), in a
//!   new (shuffled) order each round, so machine noise, which comes in bursts
//!   on a VM, hits every configuration alike. Each block begins with
//!   `--settle` untimed calls (5): the first calls after switching chains
//!   meet cold caches and sleeping processes, which back-to-back calls do not.
//!   The latency verdicts also print each figure over the even and over the
//!   odd rounds: two halves of the run whose difference is the figure's
//!   resolution.
//!
//! Without `--bench` (e.g. `cargo test --benches`) it does nothing: nothing in
//! the test suite depends on timing.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // First: the relay's own arguments name the server it starts.
    if args.first().map(String::as_str) == Some("--relay") {
        let server = args.get(2..).unwrap_or_default();
        if let Err(e) = relay(server) {
            eprintln!("relay: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.iter().any(|a| a == "--mock-server") {
        if let Err(e) = mock_server() {
            eprintln!("mock server: {e}");
            std::process::exit(1);
        }
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("proxy benchmark: skipped (run scripts/bench-proxy.sh)");
        return;
    }
    let opts = match Options::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench-proxy: {e}");
            std::process::exit(2);
        }
    };
    // One run per server, each with only its own chains: with every chain
    // alive at once, each server process sat idle through the others'
    // blocks (~200 ms), and its first calls after that filled the p99.
    let groups = [
        (opts.mock, Upstream::Mock, "the mock server"),
        (
            opts.filesystem.is_some(),
            Upstream::Filesystem,
            "`@modelcontextprotocol/server-filesystem`",
        ),
        (
            opts.everything.is_some(),
            Upstream::Everything,
            "`@modelcontextprotocol/server-everything`",
        ),
    ];
    for (_, group, name) in groups.into_iter().filter(|g| g.0) {
        println!();
        println!("#### Against {name}");
        if let Err(e) = run(&opts, group) {
            eprintln!("bench-proxy: {e}");
            std::process::exit(1);
        }
    }
}

// ---------------------------------------------------------------- options

struct Options {
    kvlar: PathBuf,
    kvlar_cli: Option<PathBuf>,
    /// Whether to run the mock server's configurations.
    mock: bool,
    /// Whether to run the do-nothing relay chain.
    relay: bool,
    /// Whether to run `kvlar proxy --busy-poll 0` (curated policy) too.
    poll_ablation: bool,
    everything: Option<PathBuf>,
    filesystem: Option<PathBuf>,
    allow_all: PathBuf,
    curated: PathBuf,
    /// The policy for the server-everything chains (denies `get-env`).
    everything_policy: PathBuf,
    /// Sequential calls per configuration (mock server).
    seq: usize,
    /// Sequential calls per configuration with a real server.
    seq_everything: usize,
    /// Interleaving rounds for the sequential measurement.
    rounds: usize,
    /// Untimed calls at the start of each block of the sequential
    /// measurement: the first call after switching to a chain meets cold
    /// caches and sleeping processes, which the interleaving causes and a
    /// run of back-to-back calls does not have.
    settle: usize,
    /// Warm-up calls per configuration.
    warmup: usize,
    /// Warm-up calls per configuration and server process with a real
    /// server: a Node server's JIT needs far more than the mock's warm-up to
    /// settle, and until it has, its slow calls fill the p99.
    warmup_everything: usize,
    /// Pipelined calls per round and configuration (mock server).
    calls: usize,
    /// Pipelined calls per round and configuration with a real server.
    calls_everything: usize,
    window: usize,
    tput_rounds: usize,
    /// Server processes behind each real-server configuration (see `run`).
    processes: usize,
    logs: PathBuf,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let mut o = Options {
            kvlar: root.join("target/release/kvlar"),
            kvlar_cli: Some(root.join(".deps/kvlar-cli-0.4.0/bin/kvlar")),
            mock: true,
            relay: true,
            poll_ablation: true,
            everything: Some(root.join("tests/e2e/node_modules/.bin/mcp-server-everything")),
            filesystem: Some(root.join("tests/e2e/node_modules/.bin/mcp-server-filesystem")),
            allow_all: root.join("tests/e2e/policies/allow-all.yaml"),
            curated: root.join("policies/filesystem.yaml"),
            everything_policy: root.join("tests/e2e/policies/everything.yaml"),
            seq: 20_000,
            seq_everything: 20_000,
            rounds: 400,
            settle: 5,
            warmup: 2_000,
            warmup_everything: 10_000,
            calls: 10_000,
            calls_everything: 5_000,
            window: 64,
            tput_rounds: 5,
            processes: 1,
            logs: std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| root.join("target"), PathBuf::from)
                .join("bench-proxy"),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{a} needs a value"))
            };
            let num = |v: String| {
                v.parse::<usize>()
                    .map_err(|_| format!("{a}: not a number: {v}"))
            };
            match a.as_str() {
                "--bench" => {}
                "--kvlar" => o.kvlar = val()?.into(),
                "--kvlar-cli" => o.kvlar_cli = Some(val()?.into()),
                "--no-kvlar-cli" => o.kvlar_cli = None,
                "--everything" => o.everything = Some(val()?.into()),
                "--no-everything" => o.everything = None,
                "--filesystem" => o.filesystem = Some(val()?.into()),
                "--no-filesystem" => o.filesystem = None,
                "--no-relay" => o.relay = false,
                "--no-mock" => o.mock = false,
                "--no-poll-ablation" => o.poll_ablation = false,
                "--allow-all" => o.allow_all = val()?.into(),
                "--curated" => o.curated = val()?.into(),
                "--seq" => o.seq = num(val()?)?,
                "--seq-everything" => o.seq_everything = num(val()?)?,
                "--rounds" => o.rounds = num(val()?)?.max(1),
                "--settle" => o.settle = num(val()?)?,
                "--warmup" => o.warmup = num(val()?)?,
                "--warmup-everything" => o.warmup_everything = num(val()?)?,
                "--calls" => o.calls = num(val()?)?,
                "--calls-everything" => o.calls_everything = num(val()?)?,
                "--window" => o.window = num(val()?)?.max(1),
                "--tput-rounds" => o.tput_rounds = num(val()?)?.max(1),
                "--processes" => o.processes = num(val()?)?.max(1),
                "--logs" => o.logs = val()?.into(),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if !o.kvlar.is_file() {
            return Err(format!(
                "{} not found (cargo build --release -p kvlar)",
                o.kvlar.display()
            ));
        }
        for opt in [&mut o.kvlar_cli, &mut o.everything, &mut o.filesystem] {
            if opt.as_ref().is_some_and(|p| !p.is_file()) {
                eprintln!(
                    "bench-proxy: {} not found; skipping it",
                    opt.as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                );
                *opt = None;
            }
        }
        Ok(o)
    }
}

// ---------------------------------------------------------------- requests

/// A `tools/call` line with a placeholder for its id, and what its answer must contain.
#[derive(Clone, Copy)]
struct Request<'a> {
    /// The params object.
    params: &'a str,
    expect: Expect,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Answered by the server: the result contains this text.
    Allowed(&'static str),
    /// Answered by the proxy: a tool result with `isError: true`.
    Denied,
}

/// Allowed by the curated policy (`allow-read-workspace`, after every deny rule).
const READ_ALLOWED: &str =
    r#"{"name":"read_text_file","arguments":{"path":"/workspace/src/main.rs"}}"#;
/// Denied by the curated policy (`deny-ssh`).
const READ_DENIED: &str =
    r#"{"name":"read_text_file","arguments":{"path":"/home/user/.ssh/id_rsa"}}"#;
const ECHO: &str = r#"{"name":"echo","arguments":{"message":"hello"}}"#;
/// Denied by tests/e2e/policies/everything.yaml (`deny-env`).
const GET_ENV: &str = r#"{"name":"get-env","arguments":{}}"#;
const MOCK_TEXT: &str = r#""text":"ok""#;
const ECHO_TEXT: &str = "Echo: hello";
/// The content of the file server-filesystem reads in the benchmark.
const FS_TEXT: &str = "kvlar proxy benchmark file";

fn request_line(out: &mut Vec<u8>, id: u64, method: &str, params: Option<&str>) {
    out.clear();
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(id.to_string().as_bytes());
    out.extend_from_slice(br#","method":""#);
    out.extend_from_slice(method.as_bytes());
    out.push(b'"');
    if let Some(p) = params {
        out.extend_from_slice(br#","params":"#);
        out.extend_from_slice(p.as_bytes());
    }
    out.extend_from_slice(b"}\n");
}

/// Whether `line` holds `"id":<id>` (compact or with a space), followed by `,` or `}`.
fn has_id(line: &[u8], id: u64) -> bool {
    let id = id.to_string();
    let mut rest = line;
    while let Some(at) = find(rest, br#""id":"#) {
        let mut tail = &rest[at + 5..];
        while tail.first() == Some(&b' ') {
            tail = &tail[1..];
        }
        if tail.starts_with(id.as_bytes()) && matches!(tail.get(id.len()), Some(b',' | b'}' | b' '))
        {
            return true;
        }
        rest = &rest[at + 5..];
    }
    false
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_response(line: &[u8]) -> bool {
    find(line, br#""id""#).is_some() && find(line, br#""method""#).is_none()
}

fn check(line: &[u8], expect: Expect, chain: &str) -> Result<(), String> {
    let ok = match expect {
        Expect::Allowed(text) => {
            find(line, text.as_bytes()).is_some() && find(line, b"\"error\"").is_none()
        }
        Expect::Denied => {
            find(line, br#""isError":true"#).is_some() && find(line, MOCK_TEXT.as_bytes()).is_none()
        }
    };
    if ok {
        Ok(())
    } else {
        let shown: String = String::from_utf8_lossy(line).chars().take(300).collect();
        Err(format!("{chain}: unexpected answer: {shown}"))
    }
}

// ---------------------------------------------------------------- chains

struct Chain {
    name: String,
    process: Process,
    stdin: Option<File>,
    stdout: BufReader<File>,
    next_id: u64,
    line: Vec<u8>,
    buf: Vec<u8>,
}

/// What is at the other end of a chain's pipes.
enum Process {
    /// A process this harness started: a server, or a proxy (or relay) in
    /// front of one.
    Spawned { child: Child, is_proxy: bool },
    /// A direct connection to the server of a proxy chain: its stdin and
    /// stdout pipes, opened again through `/proc/SERVER/fd/0` and `/1`.
    /// The proxy is stopped (SIGSTOP) while the tap is used, so the server's
    /// answers come here, and nothing of the proxy runs meanwhile. The
    /// server process (its JIT and garbage-collector state, where it runs)
    /// is the one the proxy chain's calls reach: the difference between the
    /// two is the proxy's, not a second server process's.
    Tap { proxy: u32, server: u32 },
}

impl Chain {
    fn start(name: &str, argv: &[String], logs: &Path) -> Result<Chain, String> {
        let log_path = logs.join(format!("{}.stderr", name.replace([' ', '/'], "_")));
        let log = File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("{name}: cannot start {}: {e}", argv[0]))?;
        let stdin = child.stdin.take().map(|i| File::from(OwnedFd::from(i)));
        let stdout = File::from(OwnedFd::from(child.stdout.take().ok_or("no stdout")?));
        let mut chain = Chain {
            name: name.to_owned(),
            process: Process::Spawned {
                is_proxy: name.contains("kvlar") || name.contains("relay"),
                child,
            },
            stdin,
            stdout: BufReader::with_capacity(256 * 1024, stdout),
            next_id: 1,
            line: Vec::with_capacity(1024),
            buf: Vec::with_capacity(64 * 1024),
        };
        chain
            .handshake()
            .map_err(|e| format!("{e} (stderr: {})", log_path.display()))?;
        Ok(chain)
    }

    /// A direct connection to the server behind `proxy` (see [`Process::Tap`]).
    /// The server has had its `initialize` through the proxy; the tap's ids
    /// start far above the proxy chain's.
    fn tap(name: &str, proxy: &Chain) -> Result<Chain, String> {
        let Process::Spawned {
            child,
            is_proxy: true,
        } = &proxy.process
        else {
            return Err(format!("{name}: {} is not a proxy chain", proxy.name));
        };
        let pid = child.id();
        let server = match children(pid)[..] {
            [server] => server,
            ref other => {
                return Err(format!(
                    "{name}: {} should have one child process (its server), has {other:?}",
                    proxy.name
                ))
            }
        };
        let open = |fd: u32, write: bool| -> Result<File, String> {
            let path = format!("/proc/{server}/fd/{fd}");
            let target = std::fs::read_link(&path).map_err(|e| format!("{name}: {path}: {e}"))?;
            if !target.to_string_lossy().starts_with("pipe:") {
                return Err(format!(
                    "{name}: {path} is {}, not a pipe",
                    target.display()
                ));
            }
            std::fs::OpenOptions::new()
                .read(!write)
                .write(write)
                .open(&path)
                .map_err(|e| format!("{name}: open {path}: {e}"))
        };
        let stdin = open(0, true)?;
        let stdout = open(1, false)?;
        Ok(Chain {
            name: name.to_owned(),
            process: Process::Tap { proxy: pid, server },
            stdin: Some(stdin),
            stdout: BufReader::with_capacity(256 * 1024, stdout),
            next_id: 1 << 40,
            line: Vec::with_capacity(1024),
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// For a tap: stops its proxy until the guard is dropped. Every call the
    /// proxy chain made has been answered by then, so the proxy owes
    /// nothing and reads nothing of what follows.
    fn pause(&self) -> Result<Option<Stopped>, String> {
        let Process::Tap { proxy, .. } = self.process else {
            return Ok(None);
        };
        let pid = Pid::from_raw(proxy as i32);
        kill(pid, Signal::SIGSTOP).map_err(|e| format!("{}: SIGSTOP {proxy}: {e}", self.name))?;
        let stopped = Stopped(pid);
        // The signal is delivered asynchronously: wait until every thread is stopped.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !all_stopped(proxy) {
            if Instant::now() > deadline {
                return Err(format!("{}: the proxy ({proxy}) did not stop", self.name));
            }
            thread::yield_now();
        }
        Ok(Some(stopped))
    }

    fn handshake(&mut self) -> Result<(), String> {
        let init = r#"{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"kvlar-bench","version":"0"}}"#;
        self.request("initialize", Some(init))?;
        self.write(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")?;
        self.request("tools/list", None)?;
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        stdin
            .write_all(bytes)
            .map_err(|e| format!("{}: write: {e}", self.name))
    }

    /// Reads lines until the response with `id`; leaves it in `self.buf`.
    fn read_response(&mut self, id: u64) -> Result<(), String> {
        loop {
            self.buf.clear();
            let n = self
                .stdout
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| format!("{}: read: {e}", self.name))?;
            if n == 0 {
                return Err(format!("{}: the chain closed its stdout", self.name));
            }
            if has_id(&self.buf, id) && is_response(&self.buf) {
                return Ok(());
            }
        }
    }

    fn request(&mut self, method: &str, params: Option<&str>) -> Result<(), String> {
        let id = self.next_id;
        self.next_id += 1;
        request_line(&mut self.line, id, method, params);
        let line = std::mem::take(&mut self.line);
        let res = self.write(&line);
        self.line = line;
        res?;
        self.read_response(id)
    }

    /// One sequential `tools/call`; returns its round-trip time.
    fn call(&mut self, req: Request<'_>) -> Result<Duration, String> {
        let id = self.next_id;
        self.next_id += 1;
        request_line(&mut self.line, id, "tools/call", Some(req.params));
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        let start = Instant::now();
        stdin
            .write_all(&self.line)
            .map_err(|e| format!("{}: write: {e}", self.name))?;
        self.read_response(id)?;
        let rtt = start.elapsed();
        check(&self.buf, req.expect, &self.name)?;
        Ok(rtt)
    }

    /// `n` calls with up to `window` in flight; returns the wall time and
    /// the CPU time of the writer thread (the reader is the calling thread).
    fn pipelined(
        &mut self,
        req: Request<'_>,
        n: usize,
        window: usize,
    ) -> Result<(Duration, u64), String> {
        let first = self.next_id;
        self.next_id += n as u64;
        let (credit_tx, credit_rx) = mpsc::sync_channel::<()>(window);
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        let stdout = &mut self.stdout;
        let buf = &mut self.buf;
        let name = self.name.as_str();
        let start = Instant::now();
        let result = thread::scope(|s| {
            let writer = s.spawn(move || -> Result<u64, String> {
                let cpu_start = thread_cpu_ns();
                let mut line = Vec::with_capacity(256);
                for i in 0..n {
                    if i >= window && credit_rx.recv().is_err() {
                        return Err("reader stopped".into());
                    }
                    request_line(&mut line, first + i as u64, "tools/call", Some(req.params));
                    stdin
                        .write_all(&line)
                        .map_err(|e| format!("{name}: write: {e}"))?;
                }
                Ok(thread_cpu_ns().saturating_sub(cpu_start))
            });
            let mut got = 0;
            let mut res = Ok(());
            while got < n {
                buf.clear();
                match stdout.read_until(b'\n', buf) {
                    Ok(0) => {
                        res = Err(format!("{name}: the chain closed its stdout"));
                        break;
                    }
                    Err(e) => {
                        res = Err(format!("{name}: read: {e}"));
                        break;
                    }
                    Ok(_) => {}
                }
                if !is_response(buf) {
                    continue;
                }
                if let Err(e) = check(buf, req.expect, name) {
                    res = Err(e);
                    break;
                }
                got += 1;
                let _ = credit_tx.send(());
            }
            drop(credit_tx);
            let w = writer.join().unwrap_or(Err("writer panicked".into()));
            res.and(w)
        });
        let elapsed = start.elapsed();
        result.map(|writer_cpu| (elapsed, writer_cpu))
    }

    /// CPU time so far, in ns: the proxy process (if the chain has one) and
    /// the server with every process under it.
    fn cpu(&self) -> (u64, u64) {
        let (pid, is_proxy) = match &self.process {
            Process::Spawned { child, is_proxy } => (child.id(), *is_proxy),
            // The proxy is stopped: it spends nothing during the tap's calls.
            Process::Tap { server, .. } => (*server, false),
        };
        let below: u64 = descendants(pid).into_iter().map(process_cpu_ns).sum();
        match is_proxy {
            true => (process_cpu_ns(pid), below),
            false => (0, process_cpu_ns(pid) + below),
        }
    }

    /// Closes the chain's stdin and waits for it to exit (killing it after
    /// 5 s). A tap only closes its ends of the server's pipes: stop taps
    /// before their proxies, or the server keeps a writer on its stdin.
    fn stop(mut self) {
        drop(self.stdin.take());
        let Process::Spawned { mut child, .. } = self.process else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A proxy stopped for its tap; continued when dropped (also on an error).
struct Stopped(Pid);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = kill(self.0, Signal::SIGCONT);
    }
}

/// Whether every thread of `pid` is stopped (state `T`).
fn all_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|t| {
        std::fs::read_to_string(t.path().join("stat")).is_ok_and(|stat| {
            // The state follows the command name, which is in parentheses.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                == Some("T")
        })
    })
}

// ---------------------------------------------------------------- configurations

#[derive(Clone, Copy, PartialEq, Eq)]
enum Upstream {
    Mock,
    Filesystem,
    Everything,
}

struct Config<'a> {
    label: String,
    /// Its chains (more than one with a real server: `Options::processes`).
    chains: Vec<usize>,
    request: Request<'a>,
    upstream: Upstream,
    /// The direct configuration it is compared with (its own index for a direct one).
    baseline: usize,
    /// For a proxy in front of a real server: the direct configuration to
    /// the same server processes (its taps), which it is judged against.
    pair: Option<usize>,
    throughput: bool,
    seq: Vec<Duration>,
    /// The same samples, from even and from odd rounds: two halves that
    /// each span the whole run, to show what an "added" figure varies by.
    seq_rounds: [Vec<Duration>; 2],
    tput: Vec<f64>,
    seq_cpu: Cpu,
    tput_cpu: Cpu,
}

/// CPU time spent during a configuration's calls, in ns, and the calls.
#[derive(Default, Clone, Copy)]
struct Cpu {
    client: u64,
    proxy: u64,
    server: u64,
    calls: u64,
}

impl Cpu {
    /// Adds what was spent between two readings of `(client, proxy, server)`.
    fn add(&mut self, before: (u64, u64, u64), after: (u64, u64, u64), calls: usize) {
        self.client += after.0.saturating_sub(before.0);
        self.proxy += after.1.saturating_sub(before.1);
        self.server += after.2.saturating_sub(before.2);
        self.calls += calls as u64;
    }

    /// Per call, in µs: (client, proxy, server).
    fn per_call(&self) -> Option<(f64, f64, f64)> {
        let n = self.calls as f64 * 1e3;
        (self.calls > 0).then(|| {
            (
                self.client as f64 / n,
                self.proxy as f64 / n,
                self.server as f64 / n,
            )
        })
    }
}

/// Reads a `schedstat` file's first field: the task's time on a CPU, in ns.
fn schedstat_ns(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The calling thread's CPU time, in ns (0 where `/proc` does not tell).
fn thread_cpu_ns() -> u64 {
    schedstat_ns(Path::new("/proc/thread-self/schedstat")).unwrap_or(0)
}

/// A process's CPU time, in ns: the sum over its live threads.
fn process_cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| schedstat_ns(&t.path().join("schedstat")))
        .sum()
}

/// The child processes of `pid` (started by any of its threads).
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        out.extend(
            kids.split_whitespace()
                .filter_map(|k| k.parse::<u32>().ok()),
        );
    }
    out
}

/// Every process under `pid` (children, their children, …).
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for k in children(p) {
            out.push(k);
            todo.push(k);
        }
    }
    out
}

/// Starts the chains of one server's configurations (`group`), measures
/// them, stops them, and prints their tables.
fn run(o: &Options, group: Upstream) -> Result<(), String> {
    std::fs::create_dir_all(&o.logs).map_err(|e| format!("{}: {e}", o.logs.display()))?;
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let mock = vec![me.display().to_string(), "--mock-server".to_owned()];
    let path = |p: &Path| p.display().to_string();
    let proxy = |bin: &Path, policy: &Path, server: &[String]| -> Vec<String> {
        let mut v = vec![
            path(bin),
            "proxy".into(),
            "--stdio".into(),
            "--policy".into(),
            path(policy),
            "--".into(),
        ];
        v.extend_from_slice(server);
        v
    };

    // The do-nothing relay in front of a server.
    let relay = |server: &[String]| -> Vec<String> {
        let mut v = vec![me.display().to_string(), "--relay".into(), "--".into()];
        v.extend_from_slice(server);
        v
    };
    // Chains: (name, argv).
    let mut chains_spec: Vec<(String, Vec<String>)> = Vec::new();
    if group == Upstream::Mock {
        chains_spec.push(("direct".into(), mock.clone()));
        chains_spec.push((
            "kvlar allow-all".into(),
            proxy(&o.kvlar, &o.allow_all, &mock),
        ));
        chains_spec.push(("kvlar curated".into(), proxy(&o.kvlar, &o.curated, &mock)));
        if o.poll_ablation {
            // The same proxy without busy-polling (`--busy-poll 0`): what it saves.
            let mut argv = proxy(&o.kvlar, &o.curated, &mock);
            argv.splice(2..2, ["--busy-poll".to_owned(), "0".to_owned()]);
            chains_spec.push(("kvlar curated no-poll".into(), argv));
        }
        if o.relay {
            chains_spec.push(("relay".into(), relay(&mock)));
        }
        if let Some(cli) = &o.kvlar_cli {
            chains_spec.push((
                "kvlar-cli allow-all".into(),
                proxy(cli, &o.allow_all, &mock),
            ));
            chains_spec.push(("kvlar-cli curated".into(), proxy(cli, &o.curated, &mock)));
        }
    }
    // server-filesystem serves a directory made here, with the curated
    // policy rooted at it (`serve_directory`).
    let served = match &o.filesystem {
        Some(_) if group == Upstream::Filesystem => Some(serve_directory(o)?),
        _ => None,
    };
    // A real server's configurations each run over `o.processes` chains,
    // each with a server process of its own ("NAME #1", "NAME #2", …), and
    // pool their calls: what one process's JIT and garbage-collector state
    // adds or takes off is averaged instead of being read as the proxy's.
    //
    // A proxy (or relay) chain in front of a real server also gets a tap,
    // "tap NAME #i": a direct connection to that chain's own server process
    // (`Process::Tap`), which its calls are judged against.
    let mut taps_spec: Vec<(String, usize)> = Vec::new();
    let mut real = |name: &str, argv: Vec<String>| {
        let proxied = !name.contains(" direct");
        for i in 1..=o.processes {
            if proxied {
                taps_spec.push((format!("tap {name} #{i}"), chains_spec.len()));
            }
            chains_spec.push((format!("{name} #{i}"), argv.clone()));
        }
    };
    if let (Some(fs), Some((dir, policy))) = (&o.filesystem, &served) {
        let server = vec![path(fs), path(dir)];
        real("filesystem direct", server.clone());
        real("filesystem direct 2", server.clone());
        real(
            "filesystem kvlar allow-all",
            proxy(&o.kvlar, &o.allow_all, &server),
        );
        real("filesystem kvlar curated", proxy(&o.kvlar, policy, &server));
        if o.poll_ablation {
            let mut argv = proxy(&o.kvlar, &o.allow_all, &server);
            argv.splice(2..2, ["--busy-poll".to_owned(), "0".to_owned()]);
            real("filesystem kvlar allow-all no-poll", argv);
        }
        if o.relay {
            real("filesystem relay", relay(&server));
        }
        if let Some(cli) = &o.kvlar_cli {
            real(
                "filesystem kvlar-cli allow-all",
                proxy(cli, &o.allow_all, &server),
            );
            real("filesystem kvlar-cli curated", proxy(cli, policy, &server));
        }
    }
    if let Some(ev) = o
        .everything
        .as_ref()
        .filter(|_| group == Upstream::Everything)
    {
        let server = vec![path(ev)];
        real("everything direct", server.clone());
        real("everything direct 2", server.clone());
        real(
            "everything kvlar allow-all",
            proxy(&o.kvlar, &o.allow_all, &server),
        );
        real(
            "everything kvlar policy",
            proxy(&o.kvlar, &o.everything_policy, &server),
        );
        if o.poll_ablation {
            let mut argv = proxy(&o.kvlar, &o.allow_all, &server);
            argv.splice(2..2, ["--busy-poll".to_owned(), "0".to_owned()]);
            real("everything kvlar allow-all no-poll", argv);
        }
        if o.relay {
            real("everything relay", relay(&server));
        }
        if let Some(cli) = &o.kvlar_cli {
            real(
                "everything kvlar-cli allow-all",
                proxy(cli, &o.allow_all, &server),
            );
            real(
                "everything kvlar-cli policy",
                proxy(cli, &o.everything_policy, &server),
            );
        }
    }
    // Every chain's name, by its index: the started ones, then the taps.
    let names: Vec<&str> = chains_spec
        .iter()
        .map(|(n, _)| n.as_str())
        .chain(taps_spec.iter().map(|(n, _)| n.as_str()))
        .collect();
    // The chains of a configuration: `name`, or its processes `name #i`.
    let idx = |name: &str| -> Vec<usize> {
        let ours = |n: &str| {
            n == name
                || n.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix(" #"))
                    .is_some_and(|i| i.parse::<usize>().is_ok())
        };
        (0..names.len()).filter(|&i| ours(names[i])).collect()
    };

    let allowed = Request {
        params: READ_ALLOWED,
        expect: Expect::Allowed(MOCK_TEXT),
    };
    let denied = Request {
        params: READ_DENIED,
        expect: Expect::Denied,
    };
    let echo = Request {
        params: ECHO,
        expect: Expect::Allowed(ECHO_TEXT),
    };
    let get_env = Request {
        params: GET_ENV,
        expect: Expect::Denied,
    };
    let (fs_read, fs_secret) = match &served {
        Some((dir, _)) => (
            format!(
                r#"{{"name":"read_text_file","arguments":{{"path":{}}}}}"#,
                json_string(&dir.join(FS_FILE))
            ),
            format!(
                r#"{{"name":"read_text_file","arguments":{{"path":{}}}}}"#,
                json_string(&dir.join(FS_SECRET))
            ),
        ),
        None => Default::default(),
    };
    let fs_allowed = Request {
        params: &fs_read,
        expect: Expect::Allowed(FS_TEXT),
    };
    let fs_denied = Request {
        params: &fs_secret,
        expect: Expect::Denied,
    };
    let mut configs: Vec<Config> = Vec::new();
    let mut add = |label: &str, chains: Vec<usize>, request, upstream, tput: bool| {
        if !chains.is_empty() {
            // The first configuration with the same server is its direct one.
            let baseline = configs
                .iter()
                .position(|c: &Config| c.upstream == upstream)
                .unwrap_or(configs.len());
            configs.push(Config {
                label: label.to_owned(),
                chains,
                request,
                upstream,
                baseline,
                pair: None,
                throughput: tput,
                seq: Vec::new(),
                seq_rounds: [Vec::new(), Vec::new()],
                tput: Vec::new(),
                seq_cpu: Cpu::default(),
                tput_cpu: Cpu::default(),
            });
        }
    };
    use Upstream::{Everything, Filesystem, Mock};
    add("direct", idx("direct"), allowed, Mock, true);
    add(
        "kvlar proxy, allow-all",
        idx("kvlar allow-all"),
        allowed,
        Mock,
        true,
    );
    add(
        "kvlar proxy, filesystem.yaml, allowed call",
        idx("kvlar curated"),
        allowed,
        Mock,
        true,
    );
    add(
        "kvlar proxy, filesystem.yaml, denied call",
        idx("kvlar curated"),
        denied,
        Mock,
        false,
    );
    add(
        "kvlar proxy --busy-poll 0, filesystem.yaml, allowed call",
        idx("kvlar curated no-poll"),
        allowed,
        Mock,
        true,
    );
    add(
        "kvlar proxy --busy-poll 0, filesystem.yaml, denied call",
        idx("kvlar curated no-poll"),
        denied,
        Mock,
        false,
    );
    add(
        "relay (no work), allowed call",
        idx("relay"),
        allowed,
        Mock,
        true,
    );
    add(
        "relay (no work), denied call",
        idx("relay"),
        denied,
        Mock,
        false,
    );
    add(
        "kvlar-cli 0.4.0, allow-all",
        idx("kvlar-cli allow-all"),
        allowed,
        Mock,
        true,
    );
    add(
        "kvlar-cli 0.4.0, filesystem.yaml, allowed call",
        idx("kvlar-cli curated"),
        allowed,
        Mock,
        // About 1 ms per call: its pipelined runs would dominate the benchmark.
        false,
    );
    add(
        "kvlar-cli 0.4.0, filesystem.yaml, denied call",
        idx("kvlar-cli curated"),
        denied,
        Mock,
        false,
    );
    add(
        "server-filesystem direct",
        idx("filesystem direct"),
        fs_allowed,
        Filesystem,
        true,
    );
    add(
        &format!("server-filesystem direct, {SECOND_PROCESS}"),
        idx("filesystem direct 2"),
        fs_allowed,
        Filesystem,
        true,
    );
    add(
        &format!("server-filesystem direct, {SAME_PROCESS} kvlar proxy allow-all"),
        idx("tap filesystem kvlar allow-all"),
        fs_allowed,
        Filesystem,
        true,
    );
    add(
        "server-filesystem via kvlar proxy, allow-all",
        idx("filesystem kvlar allow-all"),
        fs_allowed,
        Filesystem,
        true,
    );
    add(
        &format!("server-filesystem direct, {SAME_PROCESS} kvlar proxy filesystem.yaml"),
        idx("tap filesystem kvlar curated"),
        fs_allowed,
        Filesystem,
        true,
    );
    add(
        "server-filesystem via kvlar proxy, filesystem.yaml, allowed call",
        idx("filesystem kvlar curated"),
        fs_allowed,
        Filesystem,
        true,
    );
    add(
        "server-filesystem via kvlar proxy, filesystem.yaml, denied call",
        idx("filesystem kvlar curated"),
        fs_denied,
        Filesystem,
        false,
    );
    add(
        &format!("server-filesystem direct, {SAME_PROCESS} kvlar proxy --busy-poll 0"),
        idx("tap filesystem kvlar allow-all no-poll"),
        fs_allowed,
        Filesystem,
        true,
    );
    add(
        "server-filesystem via kvlar proxy --busy-poll 0, allow-all",
        idx("filesystem kvlar allow-all no-poll"),
        fs_allowed,
        Filesystem,
        true,
    );
    add(
        &format!("server-filesystem direct, {SAME_PROCESS} the relay"),
        idx("tap filesystem relay"),
        fs_allowed,
        Filesystem,
        true,
    );
    add(
        "server-filesystem via the relay (no work)",
        idx("filesystem relay"),
        fs_allowed,
        Filesystem,
        true,
    );
    add(
        &format!("server-filesystem direct, {SAME_PROCESS} kvlar-cli allow-all"),
        idx("tap filesystem kvlar-cli allow-all"),
        fs_allowed,
        Filesystem,
        true,
    );
    add(
        "server-filesystem via kvlar-cli 0.4.0, allow-all",
        idx("filesystem kvlar-cli allow-all"),
        fs_allowed,
        Filesystem,
        true,
    );
    add(
        &format!("server-filesystem direct, {SAME_PROCESS} kvlar-cli filesystem.yaml"),
        idx("tap filesystem kvlar-cli curated"),
        fs_allowed,
        Filesystem,
        false,
    );
    add(
        "server-filesystem via kvlar-cli 0.4.0, filesystem.yaml, allowed call",
        idx("filesystem kvlar-cli curated"),
        fs_allowed,
        Filesystem,
        // About 1 ms per call, as against the mock.
        false,
    );
    add(
        "server-filesystem via kvlar-cli 0.4.0, filesystem.yaml, denied call",
        idx("filesystem kvlar-cli curated"),
        fs_denied,
        Filesystem,
        false,
    );
    add(
        "server-everything direct",
        idx("everything direct"),
        echo,
        Everything,
        true,
    );
    add(
        &format!("server-everything direct, {SECOND_PROCESS}"),
        idx("everything direct 2"),
        echo,
        Everything,
        true,
    );
    add(
        &format!("server-everything direct, {SAME_PROCESS} kvlar proxy allow-all"),
        idx("tap everything kvlar allow-all"),
        echo,
        Everything,
        true,
    );
    add(
        "server-everything via kvlar proxy, allow-all",
        idx("everything kvlar allow-all"),
        echo,
        Everything,
        true,
    );
    add(
        &format!("server-everything direct, {SAME_PROCESS} kvlar proxy --busy-poll 0"),
        idx("tap everything kvlar allow-all no-poll"),
        echo,
        Everything,
        true,
    );
    add(
        "server-everything via kvlar proxy --busy-poll 0, allow-all",
        idx("everything kvlar allow-all no-poll"),
        echo,
        Everything,
        true,
    );
    add(
        &format!("server-everything direct, {SAME_PROCESS} kvlar proxy everything.yaml"),
        idx("tap everything kvlar policy"),
        echo,
        Everything,
        false,
    );
    add(
        "server-everything via kvlar proxy, denied call (get-env)",
        idx("everything kvlar policy"),
        get_env,
        Everything,
        false,
    );
    add(
        &format!("server-everything direct, {SAME_PROCESS} the relay"),
        idx("tap everything relay"),
        echo,
        Everything,
        true,
    );
    add(
        "server-everything via the relay (no work)",
        idx("everything relay"),
        echo,
        Everything,
        true,
    );
    add(
        &format!("server-everything direct, {SAME_PROCESS} kvlar-cli allow-all"),
        idx("tap everything kvlar-cli allow-all"),
        echo,
        Everything,
        true,
    );
    add(
        "server-everything via kvlar-cli 0.4.0, allow-all",
        idx("everything kvlar-cli allow-all"),
        echo,
        Everything,
        true,
    );
    add(
        &format!("server-everything direct, {SAME_PROCESS} kvlar-cli everything.yaml"),
        idx("tap everything kvlar-cli policy"),
        echo,
        Everything,
        false,
    );
    add(
        "server-everything via kvlar-cli 0.4.0, denied call (get-env)",
        idx("everything kvlar-cli policy"),
        get_env,
        Everything,
        false,
    );

    let load_before = loadavg();
    eprintln!("bench-proxy: starting {} chains", chains_spec.len());
    let mut chains = Vec::new();
    for (name, argv) in &chains_spec {
        chains.push(Chain::start(name, argv, &o.logs)?);
    }
    for (name, of) in &taps_spec {
        let tap = Chain::tap(name, &chains[*of])?;
        chains.push(tap);
    }
    // A proxied configuration's pair: the configuration on its chains' taps.
    let tap_of = |ch: usize| {
        taps_spec
            .iter()
            .position(|&(_, of)| of == ch)
            .map(|j| chains_spec.len() + j)
    };
    for i in 0..configs.len() {
        let taps: Option<Vec<usize>> = configs[i].chains.iter().map(|&ch| tap_of(ch)).collect();
        configs[i].pair = taps.and_then(|t| configs.iter().position(|d| d.chains == t));
    }

    let per_block = |c: &Config| -> usize {
        let total = match c.upstream {
            Mock => o.seq,
            Filesystem | Everything => o.seq_everything,
        };
        total.div_ceil(o.rounds)
    };

    // Warm-up, interleaved in blocks of 100.
    eprintln!(
        "bench-proxy: warm-up ({} calls per configuration, {} per server process with a real server)",
        o.warmup, o.warmup_everything
    );
    let warmup = |c: &Config| match c.upstream {
        Mock => o.warmup,
        Filesystem | Everything => o.warmup_everything,
    };
    let blocks = o.warmup.max(o.warmup_everything).div_ceil(100);
    for b in 0..blocks {
        for c in configs.iter().filter(|c| b * 100 < warmup(c)) {
            for &ch in &c.chains {
                let _stopped = chains[ch].pause()?;
                for _ in 0..100 {
                    chains[ch].call(c.request)?;
                }
            }
        }
    }
    for c in configs.iter().filter(|c| c.throughput) {
        for &ch in &c.chains {
            let _stopped = chains[ch].pause()?;
            chains[ch].pipelined(c.request, 1000, o.window)?;
        }
    }

    // Sequential latency, interleaved.
    eprintln!(
        "bench-proxy: sequential round trips ({} per configuration, {} with a real server), {} rounds",
        o.seq, o.seq_everything, o.rounds
    );
    let k = configs.len();
    // Each round runs the blocks in a new order (a fixed-seed shuffle): with
    // the order only rotated, each block always followed the same one, and
    // the same binary measured in two places of that order differed by
    // 8–13 µs p50 against server-filesystem.
    let mut order: Vec<usize> = (0..k).collect();
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
    for round in 0..o.rounds {
        shuffle(&mut order, &mut rng);
        for &j in &order {
            let c = &mut configs[j];
            // The block is shared out over the configuration's chains.
            let n = per_block(c).div_ceil(c.chains.len());
            for &ch in &c.chains {
                let _stopped = chains[ch].pause()?;
                let chain = &mut chains[ch];
                for _ in 0..o.settle {
                    chain.call(c.request)?;
                }
                let before = cpu_now(chain, 0);
                for _ in 0..n {
                    let rtt = chain.call(c.request)?;
                    c.seq.push(rtt);
                    c.seq_rounds[round % 2].push(rtt);
                }
                c.seq_cpu.add(before, cpu_now(chain, 0), n);
            }
        }
    }

    // Pipelined throughput, interleaved.
    eprintln!(
        "bench-proxy: pipelined throughput ({} calls, window {}), {} rounds",
        o.calls, o.window, o.tput_rounds
    );
    let tput_idx: Vec<usize> = (0..k).filter(|&i| configs[i].throughput).collect();
    for round in 0..o.tput_rounds {
        for j in 0..tput_idx.len() {
            let c = &mut configs[tput_idx[(round + j) % tput_idx.len()]];
            let n = match c.upstream {
                Mock => o.calls,
                Filesystem | Everything => o.calls_everything,
            }
            .div_ceil(c.chains.len());
            // One run per chain, one after the other: the calls over the time.
            let mut elapsed = Duration::ZERO;
            for &ch in &c.chains {
                let _stopped = chains[ch].pause()?;
                let chain = &mut chains[ch];
                let before = cpu_now(chain, 0);
                let (t, writer_cpu) = chain.pipelined(c.request, n, o.window)?;
                c.tput_cpu.add(before, cpu_now(chain, writer_cpu), n);
                elapsed += t;
            }
            c.tput
                .push((n * c.chains.len()) as f64 / elapsed.as_secs_f64());
        }
    }
    let load_after = loadavg();
    // The taps (last) first: see `Chain::stop`.
    for chain in chains.into_iter().rev() {
        chain.stop();
    }

    report(o, &mut configs, &load_before, &load_after);
    Ok(())
}

/// A Fisher–Yates shuffle driven by xorshift64 (`state` must not be 0).
fn shuffle(v: &mut [usize], state: &mut u64) {
    for i in (1..v.len()).rev() {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let j = (*state % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// How the second direct configuration of a real server is labelled.
const SECOND_PROCESS: &str = "other server processes";

/// How a tap configuration is labelled: "server-… direct, {SAME_PROCESS} PROXY".
const SAME_PROCESS: &str = "the server process behind";

/// The file server-filesystem reads, under the served directory.
const FS_FILE: &str = "src/main.rs";

/// The secret the denied call asks for, under the served directory. It
/// exists, so a proxy that forwarded the call would get its content back
/// without `isError`, and the benchmark would stop on that answer.
const FS_SECRET: &str = ".ssh/id_rsa";

/// Makes the directory server-filesystem serves (with [`FS_FILE`] holding
/// [`FS_TEXT`], and [`FS_SECRET`]) and the curated policy rooted at it:
/// `policies/filesystem.yaml` with `/workspace` replaced by the directory's
/// real path. Returns both.
fn serve_directory(o: &Options) -> Result<(PathBuf, PathBuf), String> {
    fn io(p: &Path) -> impl Fn(io::Error) -> String + '_ {
        move |e| format!("{}: {e}", p.display())
    }
    let dir = o.logs.join("served");
    for (name, text) in [(FS_FILE, FS_TEXT), (FS_SECRET, "not for the agent")] {
        let file = dir.join(name);
        let parent = file.parent().unwrap_or(&dir);
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        std::fs::write(&file, format!("{text}\n")).map_err(io(&file))?;
    }
    // The server compares real paths; so does the policy.
    let dir = dir.canonicalize().map_err(io(&dir))?;
    let shown = dir.display().to_string();
    if shown.contains(['"', '\\', '\'', '\n']) || !shown.starts_with('/') {
        return Err(format!(
            "{shown}: the served directory's path must be absolute, without quotes or backslashes (set CARGO_TARGET_DIR)"
        ));
    }
    let curated = std::fs::read_to_string(&o.curated).map_err(io(&o.curated))?;
    if !curated.contains("/workspace") {
        return Err(format!(
            "{}: no `/workspace` to root at the served directory",
            o.curated.display()
        ));
    }
    let policy = o.logs.join("filesystem-served.yaml");
    std::fs::write(&policy, curated.replace("/workspace", &shown)).map_err(io(&policy))?;
    Ok((dir, policy))
}

/// A path as a JSON string (the served directory's path has no character to escape).
fn json_string(p: &Path) -> String {
    format!("\"{}\"", p.display())
}

/// `(client, proxy, server)` CPU so far, in ns; `extra` is client CPU spent
/// on threads that have ended.
fn cpu_now(chain: &Chain, extra: u64) -> (u64, u64, u64) {
    let (proxy, server) = chain.cpu();
    (thread_cpu_ns() + extra, proxy, server)
}

// ---------------------------------------------------------------- report

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn signed_us(a: Duration, b: Duration) -> String {
    format!("{:+.1} µs", us(a) - us(b))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

struct Stats {
    p50: Duration,
    p99: Duration,
    /// p50 and p99 over the even and over the odd rounds.
    halves: [(Duration, Duration); 2],
    tput: f64,
}

impl<'a> Config<'a> {
    /// What it is compared with: its pair (the same server processes,
    /// reached directly) if it has one, else the first direct configuration.
    fn reference(&self) -> usize {
        self.pair.unwrap_or(self.baseline)
    }
}

fn report(o: &Options, configs: &mut [Config<'_>], load_before: &str, load_after: &str) {
    let stats: Vec<Stats> = configs
        .iter_mut()
        .map(|c| {
            c.seq.sort();
            let halves = c.seq_rounds.each_mut().map(|h| {
                h.sort();
                (quantile(h, 0.50), quantile(h, 0.99))
            });
            Stats {
                p50: quantile(&c.seq, 0.50),
                p99: quantile(&c.seq, 0.99),
                halves,
                tput: median(&c.tput),
            }
        })
        .collect();
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "Machine: {} core(s), {}, {}; load average {} before, {} after.",
        cores,
        cpu_model(),
        idle_setting(),
        load_before,
        load_after
    );
    println!(
        "Sequential: {} round trips per configuration ({} with a real server, shared out over {} server processes per configuration) \
         after {} warm-up calls ({} per server process with a real server), interleaved in {} rounds, \
         each block after {} untimed calls. \
         Pipelined: {} calls ({} with a real server), window {}, median of {} interleaved rounds.",
        o.seq,
        o.seq_everything,
        o.processes,
        o.warmup,
        o.warmup_everything,
        o.rounds,
        o.settle,
        o.calls,
        o.calls_everything,
        o.window,
        o.tput_rounds
    );
    println!(
        "Through a proxy in front of a real server, \"added\" and \"vs direct\" compare with the \
         row above it, \"direct, {SAME_PROCESS} …\": the same server process, reached directly \
         through its own pipes while the proxy is stopped (SIGSTOP). Every other row compares with \
         the first direct row of its server."
    );
    println!();
    println!(
        "| configuration | p50 | p99 | added p50 | added p99 | pipelined calls/s | vs direct |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (i, c) in configs.iter().enumerate() {
        let s = &stats[i];
        let b = &stats[c.reference()];
        let direct = i == c.baseline;
        let (added50, added99) = if direct {
            ("—".to_owned(), "—".to_owned())
        } else {
            (signed_us(s.p50, b.p50), signed_us(s.p99, b.p99))
        };
        let (tput, ratio) = if c.throughput && !s.tput.is_nan() {
            (
                format!("{:.0}", s.tput),
                format!("{:.0}%", 100.0 * s.tput / b.tput),
            )
        } else {
            ("—".to_owned(), "—".to_owned())
        };
        match c.upstream {
            Upstream::Filesystem if direct => println!(
                "| *real server: `@modelcontextprotocol/server-filesystem`, `read_text_file`* | | | | | | |"
            ),
            Upstream::Everything if direct => println!(
                "| *real server: `@modelcontextprotocol/server-everything`, `echo`* | | | | | | |"
            ),
            _ => {}
        }
        println!(
            "| {} | {:.1} µs | {:.1} µs | {} | {} | {} | {} |",
            c.label,
            us(s.p50),
            us(s.p99),
            added50,
            added99,
            tput,
            ratio
        );
    }

    cpu_table(configs, &stats, cores);

    targets(configs, &stats);
}

/// The issue's four targets, judged for each real server (what a user's
/// calls go through), then the same figures against the mock server, where
/// they measure the proxy's own cost next to the do-nothing relay's.
fn targets(configs: &[Config<'_>], stats: &[Stats]) {
    let find = |label: &str| configs.iter().position(|c| c.label == label);
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let added = |i: usize| {
        let b = configs[i].reference();
        (
            us(stats[i].p50) - us(stats[b].p50),
            us(stats[i].p99) - us(stats[b].p99),
        )
    };
    // The same figure over the even and over the odd rounds: two halves of
    // the run that each span all of it, so their difference is what the
    // figure varies by within the run.
    let halves = |i: usize| {
        let b = configs[i].reference();
        let d = |k: usize, p99: bool| {
            let (x, y) = (stats[i].halves[k], stats[b].halves[k]);
            match p99 {
                false => us(x.0) - us(y.0),
                true => us(x.1) - us(y.1),
            }
        };
        format!(
            " (even / odd rounds: {:+.1} / {:+.1} µs p50, {:+.1} / {:+.1} µs p99; against {})",
            d(0, false),
            d(1, false),
            d(0, true),
            d(1, true),
            configs[b].label
        )
    };
    let latency = |label: &str| {
        if let Some(i) = find(label) {
            let (a50, a99) = added(i);
            println!(
                "- {label}: added p50 {a50:.1} µs ≤ 15 µs: {}; added p99 {a99:.1} µs ≤ 60 µs: {}{}",
                verdict(a50 <= 15.0),
                verdict(a99 <= 60.0),
                halves(i)
            );
        }
    };
    let denial = |label: &str| {
        if let Some(i) = find(label) {
            let b = configs[i].reference();
            println!(
                "- {label}: p50 {:.1} µs < {} (an allowed call) p50 {:.1} µs: {}",
                us(stats[i].p50),
                configs[b].label,
                us(stats[b].p50),
                verdict(stats[i].p50 < stats[b].p50)
            );
        }
    };
    let throughput = |label: &str| {
        if let Some(i) = find(label) {
            let b = configs[i].reference();
            let r = stats[i].tput / stats[b].tput;
            println!(
                "- {label}: pipelined throughput {:.0}% of {} ≥ 90%: {}",
                100.0 * r,
                configs[b].label,
                verdict(r >= 0.90)
            );
        }
    };
    // A chain with the do-nothing relay: what one more process costs.
    let reference = |label: &str| {
        if let Some(i) = find(label) {
            let (a50, a99) = added(i);
            let b = configs[i].reference();
            println!(
                "- for reference, {label}: added p50 {a50:.1} µs, added p99 {a99:.1} µs, \
                 pipelined throughput {:.0}% of direct",
                100.0 * stats[i].tput / stats[b].tput
            );
        }
    };
    if configs.iter().any(|c| c.upstream != Upstream::Mock) {
        println!();
        println!("Targets (issue 4), against this real server:");
    }
    latency("server-filesystem via kvlar proxy, allow-all");
    latency("server-filesystem via kvlar proxy, filesystem.yaml, allowed call");
    latency("server-everything via kvlar proxy, allow-all");
    denial("server-filesystem via kvlar proxy, filesystem.yaml, denied call");
    denial("server-everything via kvlar proxy, denied call (get-env)");
    throughput("server-filesystem via kvlar proxy, allow-all");
    throughput("server-filesystem via kvlar proxy, filesystem.yaml, allowed call");
    throughput("server-everything via kvlar proxy, allow-all");
    reference("server-filesystem via the relay (no work)");
    reference("server-everything via the relay (no work)");
    if configs.iter().any(|c| c.upstream == Upstream::Mock) {
        println!();
        println!(
            "The same figures against the mock server, which answers at once: the proxy's own cost, \
             next to a relay that does no work (the floor one more process sets on this machine):"
        );
    }
    latency("kvlar proxy, allow-all");
    latency("kvlar proxy, filesystem.yaml, allowed call");
    denial("kvlar proxy, filesystem.yaml, denied call");
    throughput("kvlar proxy, allow-all");
    throughput("kvlar proxy, filesystem.yaml, allowed call");
    if let (Some(i), Some(d)) = (
        find("relay (no work), allowed call"),
        find("relay (no work), denied call"),
    ) {
        let (a50, a99) = added(i);
        let b = configs[i].baseline;
        println!(
            "- relay (no work): added p50 {a50:.1} µs, added p99 {a99:.1} µs, \
             pipelined throughput {:.0}% of direct; its denial p50 {:.1} µs against direct {:.1} µs",
            100.0 * stats[i].tput / stats[b].tput,
            us(stats[d].p50),
            us(stats[b].p50)
        );
    }
}

/// CPU per call of each process of a chain, and what that allows on this
/// machine's cores when every process is busy (pipelined).
fn cpu_table(configs: &[Config<'_>], stats: &[Stats], cores: usize) {
    let fmt = |c: &Cpu| match c.per_call() {
        Some((cl, px, sv)) => {
            let px = match px {
                0.0 => "—".to_owned(),
                px => format!("{px:.2}"),
            };
            format!("{cl:.2} / {px} / {sv:.2}")
        }
        None => "—".to_owned(),
    };
    println!();
    println!(
        "CPU per call in µs, client / proxy / server (from `/proc/PID/task/*/schedstat`; \
         the server with every process it started). With every process busy, {cores} core(s) \
         carry at most {cores} / (the sum) calls/s:"
    );
    println!();
    println!(
        "| configuration | sequential | pipelined | pipelined bound on {cores} core(s) | measured |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (i, c) in configs.iter().enumerate() {
        let bound = match c.tput_cpu.per_call() {
            Some((cl, px, sv)) if c.throughput && cl + px + sv > 0.0 => {
                format!("{:.0}", cores as f64 * 1e6 / (cl + px + sv))
            }
            _ => "—".to_owned(),
        };
        let measured = match stats[i].tput {
            t if c.throughput && !t.is_nan() => format!("{t:.0}"),
            _ => "—".to_owned(),
        };
        println!(
            "| {} | {} | {} | {} | {} |",
            c.label,
            fmt(&c.seq_cpu),
            fmt(&c.tput_cpu),
            bound,
            measured
        );
    }
}

/// The guest's idle driver and its halt-poll setting, when there is one: on
/// a VM whose idle vCPUs halt at once, waking a process on another vCPU is
/// what a round trip between processes mostly costs.
fn idle_setting() -> String {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    let driver = read("/sys/devices/system/cpu/cpuidle/current_driver");
    let poll = read("/sys/module/haltpoll/parameters/guest_halt_poll_ns");
    match (driver, poll) {
        (Some(d), Some(p)) => format!("cpuidle driver {d}, guest_halt_poll_ns {p}"),
        (Some(d), None) => format!("cpuidle driver {d}"),
        _ => "cpuidle driver unknown".to_owned(),
    }
}

// ---------------------------------------------------------------- mock server

/// A minimal stdio MCP server: answers `initialize`, `tools/list`,
/// `tools/call` (always `ok`) and any other request (an empty result) at once;
/// ignores notifications. It flushes when it has no more input buffered.
fn mock_server() -> io::Result<()> {
    let input = File::from(io::stdin().as_fd().try_clone_to_owned()?);
    let output = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    let mut input = BufReader::with_capacity(256 * 1024, input);
    let mut out = io::BufWriter::with_capacity(256 * 1024, output);
    let mut line = Vec::with_capacity(64 * 1024);
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if let (Some(id), Some(method)) = (field(&line, b"\"id\":"), field(&line, b"\"method\":")) {
            out.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":")?;
            out.write_all(id)?;
            let result: &[u8] = match method {
                b"\"tools/call\"" => br#"{"content":[{"type":"text","text":"ok"}],"isError":false}"#,
                b"\"initialize\"" => {
                    br#"{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"kvlar-bench-mock","version":"0"}}"#
                }
                b"\"tools/list\"" => {
                    br#"{"tools":[{"name":"read_text_file","inputSchema":{"type":"object","properties":{"path":{"type":"string"}}}}]}"#
                }
                _ => b"{}",
            };
            out.write_all(b",\"result\":")?;
            out.write_all(result)?;
            out.write_all(b"}\n")?;
        }
        if input.buffer().is_empty() {
            out.flush()?;
        }
    }
    out.flush()
}

/// What marks the benchmark's denied call for the relay (from `READ_DENIED`).
const RELAY_DENIES: &[u8] = b"/.ssh/id_rsa";

/// `--relay -- SERVER…`: starts the server and copies lines both ways, one
/// blocking thread per direction, flushing when its input has nothing more
/// buffered. A client line holding [`RELAY_DENIES`] is answered with a
/// denial (`isError`, same id) instead of being forwarded. No JSON is parsed.
/// Both threads write whole batches of lines to stdout under one lock.
fn relay(server: &[String]) -> io::Result<()> {
    let Some((program, args)) = server.split_first() else {
        return Err(io::Error::other("usage: --relay -- SERVER [ARGS…]"));
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let upstream = child.stdin.take().ok_or(io::Error::other("no stdin"))?;
    let downstream = child.stdout.take().ok_or(io::Error::other("no stdout"))?;
    let out = std::sync::Arc::new(std::sync::Mutex::new(File::from(
        io::stdout().as_fd().try_clone_to_owned()?,
    )));
    let emit = |out: &std::sync::Mutex<File>, bytes: &[u8]| -> io::Result<()> {
        let mut f = out.lock().map_err(|_| io::Error::other("poisoned"))?;
        f.write_all(bytes)
    };
    let back = {
        let out = out.clone();
        thread::spawn(move || -> io::Result<()> {
            let mut r = BufReader::with_capacity(256 * 1024, downstream);
            let mut batch = Vec::with_capacity(64 * 1024);
            while r.read_until(b'\n', &mut batch)? > 0 {
                if r.buffer().is_empty() {
                    emit(&out, &batch)?;
                    batch.clear();
                }
            }
            emit(&out, &batch)
        })
    };
    let input = File::from(io::stdin().as_fd().try_clone_to_owned()?);
    let mut r = BufReader::with_capacity(256 * 1024, input);
    let mut w = io::BufWriter::with_capacity(256 * 1024, upstream);
    let mut line = Vec::with_capacity(64 * 1024);
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if find(&line, RELAY_DENIES).is_some() {
            let mut answer = b"{\"jsonrpc\":\"2.0\",\"id\":".to_vec();
            answer.extend_from_slice(field(&line, b"\"id\":").unwrap_or(b"null"));
            answer.extend_from_slice(
                br#","result":{"content":[{"type":"text","text":"denied by the relay"}],"isError":true}}"#,
            );
            answer.push(b'\n');
            emit(&out, &answer)?;
        } else {
            w.write_all(&line)?;
        }
        if r.buffer().is_empty() {
            w.flush()?;
        }
    }
    w.flush()?;
    drop(w);
    let copied = back
        .join()
        .map_err(|_| io::Error::other("relay thread panicked"))?;
    child.wait()?;
    copied
}

/// The raw JSON value after `key` (a number or a string without escapes), up to `,` or `}`.
fn field<'a>(line: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let at = find(line, key)? + key.len();
    let rest = &line[at..];
    let rest = &rest[rest.iter().position(|b| *b != b' ')?..];
    let end = if rest.first() == Some(&b'"') {
        1 + rest[1..].iter().position(|b| *b == b'"')? + 1
    } else {
        rest.iter().position(|b| matches!(b, b',' | b'}' | b' '))?
    };
    Some(&rest[..end])
}

//! The two forwarding loops and the single writer of the client's stdout.
//!
//! client → server and server → client run as independent tasks, so a slow
//! answer in one direction never holds up the other. Everything written to
//! the client (forwarded server lines and the proxy's own answers) goes
//! through one channel to one writer task, so lines never interleave.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use kvlar_vm::{Call, Effect};
use rustc_hash::FxBuildHasher;
use serde_json::value::RawValue;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;

use super::audit::{Audit, Record};
use super::classify::{self, ClientLine, ServerLine};
use super::deny;
use super::lines::{body, LineReader, Read, MAX_LINE};
use super::policy::Decide;

/// Lines for the client's stdout.
pub type Out = mpsc::Sender<Vec<u8>>;

/// What the client → server loop needs.
pub struct Context<D> {
    pub policy: Arc<ArcSwap<D>>,
    pub agent: Arc<str>,
    pub audit: Option<Audit>,
    pub pending: Arc<Pending>,
}

/// The client's requests forwarded to the server and not yet answered, so
/// they can be answered with an error if the server goes away. An entry is
/// removed when its response passes, so memory stays bounded by what is in flight.
///
/// Each entry keeps the id's raw text for those answers, except for the
/// common plain integer, whose text is its value's (no allocation per request).
#[derive(Default)]
pub struct Pending(Mutex<HashMap<IdKey, Outstanding, FxBuildHasher>>);

/// A pending id's raw text (`None`: a plain integer, see [`plain_integer`])
/// and how many requests with it are outstanding.
type Outstanding = (Option<Box<str>>, usize);

/// An id as the peers compare it: strings by content, numbers by value (as a
/// double, which is what a JavaScript server echoes back).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdKey {
    Str(String),
    Num(u64),
    Null,
}

impl IdKey {
    pub fn of(raw: &str) -> Option<IdKey> {
        // The common case, a small non-negative integer, without the JSON parser:
        // up to 19 digits always fits in a u64, which is what serde_json reads it as.
        let b = raw.as_bytes();
        if b.len() <= 19 && plain_digits(b) {
            let n = b.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            return Some(IdKey::Num(if n == 0 { 0 } else { (n as f64).to_bits() }));
        }
        match b.first()? {
            b'"' => serde_json::from_str::<String>(raw).ok().map(IdKey::Str),
            b'n' if raw == "null" => Some(IdKey::Null),
            _ => {
                let n: f64 = serde_json::from_str::<serde_json::Number>(raw)
                    .ok()?
                    .as_f64()?;
                Some(IdKey::Num(if n == 0.0 { 0 } else { n.to_bits() }))
            }
        }
    }
}

impl Pending {
    pub fn insert(&self, raw: &str) {
        if let Some(key) = IdKey::of(raw) {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            let text = || (!plain_integer(raw)).then(|| raw.into());
            map.entry(key).or_insert_with(|| (text(), 0)).1 += 1;
        }
    }

    pub fn remove(&self, raw: &str) {
        if let Some(key) = IdKey::of(raw) {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = map.get_mut(&key) {
                entry.1 -= 1;
                if entry.1 == 0 {
                    map.remove(&key);
                }
            }
        }
    }

    /// Whether no forwarded request awaits its answer.
    pub fn is_empty(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// Takes every pending id (raw JSON text, once per outstanding request).
    pub fn drain(&self) -> Vec<String> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (key, (raw, n)) in map.drain() {
            let raw = match (raw, key) {
                (Some(raw), _) => raw.into_string(),
                (None, IdKey::Num(bits)) => (f64::from_bits(bits) as u64).to_string(),
                // Only plain integers are kept without their text.
                (None, IdKey::Str(_) | IdKey::Null) => continue,
            };
            for _ in 0..n {
                out.push(raw.clone());
            }
        }
        out
    }
}

/// An integer id whose value (a double, see [`IdKey`]) spells it back
/// exactly: plain digits, at most 15 of them.
fn plain_integer(raw: &str) -> bool {
    raw.len() <= 15 && plain_digits(raw.as_bytes())
}

/// One or more digits without a leading zero: a JSON integer written the
/// way it is printed.
fn plain_digits(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(u8::is_ascii_digit) && (b[0] != b'0' || b.len() == 1)
}

/// Reads the client's lines until end of input, forwarding, evaluating or
/// answering each. Returns at the client's EOF; dropping `upstream` then
/// closes the server's stdin.
pub async fn client_to_server<R, W, D>(
    input: R,
    upstream: W,
    out: Out,
    ctx: Arc<Context<D>>,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    D: Decide,
{
    let mut reader = LineReader::new(input, MAX_LINE);
    let mut buf = Vec::with_capacity(64 * 1024);
    // Lines for the server are buffered while more whole lines are already
    // waiting in `reader`, and flushed before it could wait for input: one
    // write per burst of messages instead of one per message.
    let mut upstream = BufWriter::with_capacity(64 * 1024, upstream);
    // The ids of the requests buffered since the last flush, to answer with
    // errors if the flush fails.
    let mut unflushed = IdList::default();
    let mut upstream_ok = true;
    loop {
        if upstream_ok && !reader.has_line() {
            if let Err(e) = upstream.flush().await {
                log!("[kvlar] cannot write to the upstream server: {e}");
                upstream_ok = false;
                for id in unflushed.iter() {
                    upstream_gone(Some(id), &ctx, &out).await;
                }
            }
            unflushed.clear();
        }
        match reader.read_line(&mut buf).await? {
            Read::Eof => return Ok(()),
            Read::TooLong => {
                log!(
                    "[kvlar] dropped a client line longer than {} MiB (not forwarded)",
                    MAX_LINE >> 20
                );
                if let Some(id) = classify::scan_id(&buf) {
                    let msg = format!(
                        "Invalid Request: the message is longer than Kvlar's limit of {} MiB; it was not forwarded",
                        MAX_LINE >> 20
                    );
                    send(
                        &out,
                        classify::error_line(id, classify::INVALID_REQUEST, &msg),
                    )
                    .await;
                }
                continue;
            }
            Read::Line => {}
        }
        if buf.last() != Some(&b'\n') {
            buf.push(b'\n');
        }
        let forward_id = match classify::client_line(body(&buf)) {
            ClientLine::Forward {
                request_id,
                cancels,
            } => {
                if let Some(id) = cancels {
                    // The server may never answer a cancelled request.
                    ctx.pending.remove(id.get());
                }
                Some(request_id.map(RawValue::get))
            }
            ClientLine::Evaluate(call) => evaluate(call, &ctx, &out).await.map(Some),
            ClientLine::Reply(line) => {
                send(&out, line).await;
                None
            }
            ClientLine::Refuse { reply, id, why } => {
                if let Some(audit) = &ctx.audit {
                    audit.record(Record {
                        time: SystemTime::now(),
                        request_id: id.unwrap_or_else(|| "null".to_owned()),
                        tool: None,
                        args: None,
                        agent: ctx.agent.clone(),
                        decision: "invalid",
                        rule: None,
                        reason: Some(why.into_owned()),
                        policy_hash: ctx.policy.load().policy_hash().to_owned(),
                        eval_ns: 0,
                    });
                }
                if let Some(line) = reply {
                    send(&out, line).await;
                }
                None
            }
            ClientLine::Drop => None,
        };
        let Some(request_id) = forward_id else {
            continue;
        };
        if let Some(id) = request_id {
            ctx.pending.insert(id);
        }
        if !upstream_ok {
            upstream_gone(request_id, &ctx, &out).await;
            continue;
        }
        if let Err(e) = upstream.write_all(&buf).await {
            log!("[kvlar] cannot write to the upstream server: {e}");
            upstream_ok = false;
            for id in unflushed.iter() {
                upstream_gone(Some(id), &ctx, &out).await;
            }
            unflushed.clear();
            upstream_gone(request_id, &ctx, &out).await;
        } else if let Some(id) = request_id {
            unflushed.push(id);
        }
    }
}

/// Raw ids kept in one reused buffer: no allocation per request.
#[derive(Default)]
struct IdList {
    text: String,
    ends: Vec<usize>,
}

impl IdList {
    fn push(&mut self, id: &str) {
        self.text.push_str(id);
        self.ends.push(self.text.len());
    }
    fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }
    fn iter(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(a, &b)| &self.text[a..b])
    }
}

async fn upstream_gone<D>(request_id: Option<&str>, ctx: &Context<D>, out: &Out) {
    if let Some(id) = request_id {
        ctx.pending.remove(id);
        let line = classify::error_line(
            id,
            classify::UPSTREAM_GONE,
            "Kvlar: the upstream MCP server is not accepting input; the request was not delivered",
        );
        send(out, line).await;
    }
}

/// Decides a `tools/call`. `Some(id)`: forward the line (the request id to
/// track); `None`: it was denied and answered.
async fn evaluate<'l, D: Decide>(
    call: classify::ToolCall<'l>,
    ctx: &Context<D>,
    out: &Out,
) -> Option<&'l str> {
    let id = call.id.get();
    let program = ctx.policy.load();
    // The evaluation time only goes into the audit log: no clock reads without one.
    let start = ctx.audit.is_some().then(Instant::now);
    let decision = program.decide(&Call {
        tool: &call.name,
        agent: &ctx.agent,
        action: kvlar_vm::call::TOOL_CALL,
        args: &call.args,
    });
    let eval_ns = start.map_or(0, |s| s.elapsed().as_nanos() as u64);
    let allowed = decision.effect() == Effect::Allow;
    let denial = (!allowed).then(|| deny::denial(id, &call.name, &decision, program.policy_hash()));
    if let Some(audit) = &ctx.audit {
        audit.record(Record {
            time: SystemTime::now(),
            request_id: id.to_owned(),
            decision: decision.effect().as_str(),
            rule: Some(decision.rule().to_owned()),
            reason: decision.reason().map(str::to_owned),
            policy_hash: program.policy_hash().to_owned(),
            tool: Some(call.name.into_owned()),
            args: Some(call.args),
            agent: ctx.agent.clone(),
            eval_ns,
        });
    }
    drop(program);
    match denial {
        None => Some(id),
        Some(line) => {
            send(out, line).await;
            None
        }
    }
}

async fn send(out: &Out, line: Vec<u8>) {
    // Fails only when the writer is gone (shutting down): nothing left to tell.
    let _ = out.send(line).await;
}

/// Reads the server's stdout until EOF, forwarding JSON lines to the client
/// and dropping (and logging) anything else.
pub async fn server_to_client<R: AsyncRead + Unpin>(
    input: R,
    out: Out,
    pending: Arc<Pending>,
) -> io::Result<()> {
    let mut reader = LineReader::new(input, MAX_LINE);
    let mut buf = Vec::with_capacity(64 * 1024);
    // The lines to forward that were read from one burst of input, sent to the
    // writer together as soon as no further whole line is buffered (never
    // waiting for more input): one channel message and one write per burst.
    let mut batch: Vec<u8> = Vec::new();
    loop {
        if !batch.is_empty() && (!reader.has_line() || batch.len() >= BATCH) {
            let lines = std::mem::take(&mut batch);
            if out.send(lines).await.is_err() {
                return Ok(());
            }
        }
        match reader.read_line(&mut buf).await? {
            Read::Eof => {
                if !batch.is_empty() {
                    let _ = out.send(batch).await;
                }
                return Ok(());
            }
            Read::TooLong => {
                log!(
                    "[kvlar] dropped a server line longer than {} MiB",
                    MAX_LINE >> 20
                );
                continue;
            }
            Read::Line => {}
        }
        match classify::server_line(body(&buf)) {
            ServerLine::Forward { response_id } => {
                if let Some(id) = response_id {
                    pending.remove(id);
                }
            }
            ServerLine::Invalid(why) => {
                let text = String::from_utf8_lossy(body(&buf));
                let shown: String = text.chars().take(200).collect();
                let more = if shown.len() < text.len() { "…" } else { "" };
                log!("[kvlar] dropped a non-JSON line from the server's stdout ({why}): {shown}{more}");
                continue;
            }
        }
        if buf.last() != Some(&b'\n') {
            buf.push(b'\n');
        }
        if batch.is_empty() && buf.len() > BATCH {
            // A big line is handed over rather than copied.
            batch = std::mem::replace(&mut buf, Vec::with_capacity(64 * 1024));
        } else {
            if batch.capacity() == 0 {
                batch.reserve(buf.len().max(4096));
            }
            batch.extend_from_slice(&buf);
        }
    }
}

/// How many bytes of forwarded server lines go to the writer at most in one message.
const BATCH: usize = 64 * 1024;

/// Writes the queued lines to the client, in order. After a write error
/// (the client is gone) it reports once and discards the rest.
pub async fn writer<W: AsyncWrite + Unpin>(mut rx: mpsc::Receiver<Vec<u8>>, w: W) {
    // The lines already queued go out in one write; the flush below comes
    // before waiting for more.
    let mut w = BufWriter::with_capacity(64 * 1024, w);
    let mut failed = false;
    while let Some(first) = rx.recv().await {
        if failed {
            continue;
        }
        let mut res = w.write_all(&first).await;
        while res.is_ok() {
            match rx.try_recv() {
                Ok(line) => res = w.write_all(&line).await,
                Err(_) => break,
            }
        }
        if res.is_ok() {
            res = w.flush().await;
        }
        if let Err(e) = res {
            log!("[kvlar] cannot write to the client: {e}");
            failed = true;
        }
    }
    let _ = w.flush().await;
}

/// Answers every pending request with an error saying the server exited.
pub async fn answer_pending(pending: &Pending, out: &Out, status: &str) {
    for id in pending.drain() {
        let msg = format!(
            "Kvlar: the upstream MCP server exited ({status}) before answering this request"
        );
        send(
            out,
            classify::error_line(&id, classify::UPSTREAM_GONE, &msg),
        )
        .await;
    }
}

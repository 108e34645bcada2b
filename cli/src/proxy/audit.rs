//! The audit log: one JSON line per decision, written by its own thread so
//! that a slow or failing disk never delays forwarding.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::classify::write_json_str;

/// One decision.
#[derive(Debug)]
pub struct Record {
    pub time: SystemTime,
    /// The request id, raw JSON text.
    pub request_id: String,
    /// The tool name (`None` when a refused call had none).
    pub tool: Option<String>,
    /// The arguments (`None` when a refused call was not read that far).
    pub args: Option<Value>,
    pub agent: Arc<str>,
    /// `allow`, `deny`, `require_approval`, or `invalid` for a `tools/call`
    /// refused before evaluation (malformed, ambiguous, a notification, in a batch).
    pub decision: &'static str,
    /// The rule that decided (`None` for `invalid`).
    pub rule: Option<String>,
    pub reason: Option<String>,
    pub policy_hash: String,
    pub eval_ns: u64,
}

/// The sending side: cheap to use from the forwarding path (an unbounded channel).
#[derive(Clone)]
pub struct Audit {
    tx: mpsc::Sender<Record>,
}

/// The writer thread; [`Writer::finish`] waits for it to write what was sent.
pub struct Writer {
    done: mpsc::Receiver<()>,
}

impl Audit {
    /// Starts the writer thread appending to `path`.
    pub fn start(path: PathBuf, redact: bool) -> (Audit, Writer) {
        let (tx, rx) = mpsc::channel::<Record>();
        let (done_tx, done) = mpsc::channel();
        let spawned = thread::Builder::new()
            .name("kvlar-audit".into())
            .spawn(move || {
                write_all(&path, redact, rx);
                let _ = done_tx.send(());
            });
        if let Err(e) = spawned {
            log!("[kvlar] audit: could not start the audit writer: {e}; no audit log will be written");
        }
        (Audit { tx }, Writer { done })
    }

    /// Queues a record; never blocks.
    pub fn record(&self, r: Record) {
        let _ = self.tx.send(r);
    }
}

impl Writer {
    /// Waits (up to `limit`) for the thread to write everything queued; all
    /// [`Audit`] senders must be dropped first.
    pub fn finish(self, limit: Duration) {
        let _ = self.done.recv_timeout(limit);
    }
}

fn write_all(path: &Path, redact: bool, rx: mpsc::Receiver<Record>) {
    let mut failed = false;
    let mut fail = |what: &str, e: std::io::Error| {
        if !failed {
            failed = true;
            log!(
                "[kvlar] audit: cannot {what} {}: {e} (audit records are being lost; this is reported once)",
                path.display()
            );
        }
    };
    let file = OpenOptions::new().create(true).append(true).open(path);
    let mut out = match file {
        Ok(f) => Some(BufWriter::new(f)),
        Err(e) => {
            fail("open", e);
            None
        }
    };
    let mut line = Vec::with_capacity(512);
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(r) = next {
            if let Some(w) = out.as_mut() {
                line.clear();
                encode(&r, redact, &mut line);
                if let Err(e) = w.write_all(&line) {
                    fail("write", e);
                    out = None;
                }
            }
            next = rx.try_recv().ok();
        }
        if let Some(w) = out.as_mut() {
            if let Err(e) = w.flush() {
                fail("write", e);
                out = None;
            }
        }
    }
}

/// One audit line (with `\n`).
pub fn encode(r: &Record, redact: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    out.extend_from_slice(rfc3339(r.time).as_bytes());
    out.extend_from_slice(b"\",\"request_id\":");
    out.extend_from_slice(r.request_id.as_bytes());
    out.extend_from_slice(b",\"tool\":");
    write_opt_str(out, r.tool.as_deref());
    match &r.args {
        None => {}
        Some(args) if redact => {
            // Values dropped; the argument names are kept.
            out.extend_from_slice(b",\"argument_keys\":[");
            if let Value::Object(m) = args {
                for (i, k) in m.keys().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_json_str(out, k);
                }
            }
            out.push(b']');
        }
        Some(args) => {
            out.extend_from_slice(b",\"arguments\":");
            let _ = serde_json::to_writer(&mut *out, args);
        }
    }
    out.extend_from_slice(b",\"agent_id\":");
    write_json_str(out, &r.agent);
    out.extend_from_slice(b",\"decision\":");
    write_json_str(out, r.decision);
    out.extend_from_slice(b",\"rule\":");
    write_opt_str(out, r.rule.as_deref());
    out.extend_from_slice(b",\"reason\":");
    write_opt_str(out, r.reason.as_deref());
    out.extend_from_slice(b",\"policy_hash\":");
    write_json_str(out, &r.policy_hash);
    out.extend_from_slice(b",\"eval_ns\":");
    out.extend_from_slice(r.eval_ns.to_string().as_bytes());
    out.extend_from_slice(b"}\n");
}

fn write_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => write_json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// RFC 3339 UTC with microseconds, e.g. `2025-11-25T12:21:00.123456Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_micros()
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            time: UNIX_EPOCH + Duration::new(1_764_073_260, 123_456_789),
            request_id: "\"req-1\"".into(),
            tool: Some("get-env".into()),
            args: Some(serde_json::json!({"name": "HOME", "n": 1})),
            agent: Arc::from("mcp-agent"),
            decision: "deny",
            rule: Some("no-env".into()),
            reason: Some("secret".into()),
            policy_hash: "ab12".into(),
            eval_ns: 812,
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::new(1_764_073_260, 123_456_789)),
            "2025-11-25T12:21:00.123456Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(4_107_542_399)),
            "2100-02-28T23:59:59.000000Z"
        );
    }

    #[test]
    fn audit_line_bytes() {
        let mut out = Vec::new();
        encode(&record(), false, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"timestamp\":\"2025-11-25T12:21:00.123456Z\",\"request_id\":\"req-1\",\"tool\":\"get-env\",\
             \"arguments\":{\"n\":1,\"name\":\"HOME\"},\"agent_id\":\"mcp-agent\",\"decision\":\"deny\",\
             \"rule\":\"no-env\",\"reason\":\"secret\",\"policy_hash\":\"ab12\",\"eval_ns\":812}\n"
        );
    }

    #[test]
    fn redacted_line_drops_values() {
        let mut out = Vec::new();
        let mut r = record();
        r.reason = None;
        r.decision = "allow";
        encode(&r, true, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"timestamp\":\"2025-11-25T12:21:00.123456Z\",\"request_id\":\"req-1\",\"tool\":\"get-env\",\
             \"argument_keys\":[\"n\",\"name\"],\"agent_id\":\"mcp-agent\",\"decision\":\"allow\",\
             \"rule\":\"no-env\",\"reason\":null,\"policy_hash\":\"ab12\",\"eval_ns\":812}\n"
        );
    }

    #[test]
    fn refused_call_line() {
        let mut out = Vec::new();
        let mut r = record();
        r.request_id = "null".into();
        r.tool = None;
        r.args = None;
        r.decision = "invalid";
        r.rule = None;
        r.reason = Some("a JSON-RPC batch contained a tools/call".into());
        r.eval_ns = 0;
        encode(&r, true, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"timestamp\":\"2025-11-25T12:21:00.123456Z\",\"request_id\":null,\"tool\":null,\
             \"agent_id\":\"mcp-agent\",\"decision\":\"invalid\",\"rule\":null,\
             \"reason\":\"a JSON-RPC batch contained a tools/call\",\"policy_hash\":\"ab12\",\"eval_ns\":0}\n"
        );
    }

    #[test]
    fn writes_through_the_thread_and_reports_failure_once() {
        let dir = std::env::temp_dir().join(format!("kvlar-audit-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        let _ = std::fs::remove_file(&path);
        let (audit, writer) = Audit::start(path.clone(), false);
        audit.record(record());
        audit.record(record());
        drop(audit);
        writer.finish(Duration::from_secs(5));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        let v: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(v["rule"], "no-env");
        // A directory cannot be opened for appending: the proxy goes on.
        let (audit, writer) = Audit::start(dir.clone(), false);
        audit.record(record());
        drop(audit);
        writer.finish(Duration::from_secs(5));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

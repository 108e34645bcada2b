//! Settings: the `--config proxy.yaml` file, overridden by flags.
//!
//! ```yaml
//! policy_paths: [policy.yaml, more.yaml]   # relative to this file
//! hot_reload: true
//! transport: stdio
//! upstream_command: node
//! upstream_args: [server.js, --flag]
//! audit_file: audit.jsonl                  # relative to this file
//! agent_id: my-agent
//! busy_poll_us: 500                        # see `--busy-poll`
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use miette::{Diagnostic, NamedSource, SourceSpan};
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use super::policy::render;
use super::ProxyArgs;

/// How long the proxy busy-polls by default (`--busy-poll`, `busy_poll_us`).
pub const DEFAULT_BUSY_POLL: Duration = Duration::from_micros(500);

/// The longest busy-poll budget accepted, in microseconds.
pub const MAX_BUSY_POLL_US: u64 = 1_000_000;

/// The keys of the config file.
pub const KEYS: &[&str] = &[
    "policy_paths",
    "hot_reload",
    "transport",
    "upstream_command",
    "upstream_args",
    "audit_file",
    "agent_id",
    "busy_poll_us",
];

/// The config file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub policy_paths: Option<Vec<String>>,
    pub hot_reload: Option<bool>,
    pub transport: Option<Spanned<String>>,
    pub upstream_command: Option<String>,
    pub upstream_args: Option<Vec<String>>,
    pub audit_file: Option<String>,
    pub agent_id: Option<String>,
    pub busy_poll_us: Option<Spanned<u64>>,
}

/// Everything the proxy runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub policies: Vec<PathBuf>,
    pub watch: bool,
    pub command: String,
    pub args: Vec<String>,
    pub audit: Option<PathBuf>,
    pub audit_redact: bool,
    pub agent: String,
    /// How long the proxy polls its inputs before it sleeps while the server
    /// owes an answer (`--busy-poll`).
    pub busy_poll: Duration,
}

/// A config file error, shown with its span.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{message}")]
#[diagnostic(code(kvlar::proxy::config))]
pub struct ConfigError {
    message: String,
    #[source_code]
    src: NamedSource<String>,
    #[label("{label}")]
    span: Option<SourceSpan>,
    label: String,
    #[help]
    help: Option<String>,
}

/// Parses a config file's text; errors are rendered diagnostics.
pub fn parse(text: &str, name: &str) -> Result<FileConfig, String> {
    // An empty document is an empty config.
    if text.trim().is_empty()
        || text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(FileConfig::default());
    }
    let config: FileConfig = serde_saphyr::from_str(text).map_err(|e| {
        let inner = e.without_snippet();
        let (message, label, help) = match inner {
            serde_saphyr::Error::SerdeUnknownField { field, .. } => (
                format!("unknown key `{field}` in the proxy config"),
                "unknown key".to_owned(),
                Some(match did_you_mean(field) {
                    Some(k) => format!("did you mean `{k}`? The keys are: {}", KEYS.join(", ")),
                    None => format!("the keys are: {}", KEYS.join(", ")),
                }),
            ),
            other => (
                format!(
                    "invalid proxy config: {}",
                    strip_location(&other.to_string())
                ),
                "here".to_owned(),
                None,
            ),
        };
        let span = inner.location().and_then(|l| span_of(text, &l));
        render(&ConfigError {
            message,
            src: NamedSource::new(name, text.to_owned()),
            span,
            label,
            help,
        })
    })?;
    if let Some(t) = &config.transport {
        if t.value != "stdio" {
            return Err(render(&ConfigError {
                message: format!("unsupported transport `{}`", t.value),
                src: NamedSource::new(name, text.to_owned()),
                span: span_of(text, &t.referenced),
                label: "only `stdio` is supported".to_owned(),
                help: Some("use `transport: stdio`".to_owned()),
            }));
        }
    }
    if let Some(b) = &config.busy_poll_us {
        if b.value > MAX_BUSY_POLL_US {
            return Err(render(&ConfigError {
                message: format!("busy_poll_us {} is too long", b.value),
                src: NamedSource::new(name, text.to_owned()),
                span: span_of(text, &b.referenced),
                label: format!("at most {MAX_BUSY_POLL_US} (one second)"),
                help: Some(format!(
                    "the default is {} µs; 0 turns busy-polling off",
                    DEFAULT_BUSY_POLL.as_micros()
                )),
            }));
        }
    }
    Ok(config)
}

/// serde-saphyr's message without its position (the snippet shows it):
/// `error: line L column C: message` → `message`.
fn strip_location(msg: &str) -> String {
    let msg = msg.lines().next().unwrap_or("").trim();
    let msg = msg.strip_prefix("error: ").unwrap_or(msg);
    let msg = match msg.strip_prefix("line ") {
        Some(rest) => rest.split_once(": ").map_or(msg, |(_, m)| m),
        None => msg,
    };
    msg.find(" at line ").map_or(msg, |i| &msg[..i]).to_owned()
}

fn did_you_mean(field: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|k| (strsim::jaro_winkler(field, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// The byte span of a location: its byte offset when known, else from line and column.
fn span_of(text: &str, loc: &Location) -> Option<SourceSpan> {
    let span = loc.span();
    if let Some(off) = span.byte_offset() {
        let len = span.byte_len().unwrap_or(0).max(1);
        let off = (off as usize).min(text.len());
        let len = (len as usize).min(text.len() - off);
        return Some((off, len).into());
    }
    let (line, col) = (loc.line() as usize, loc.column() as usize);
    if line == 0 {
        return None;
    }
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let col_off: usize = l
                .chars()
                .take(col.saturating_sub(1))
                .map(char::len_utf8)
                .sum();
            let rest = &l[col_off..];
            let len = rest.find([' ', ':', '\n']).unwrap_or(rest.len()).max(1);
            return Some((offset + col_off, len.min(text.len() - offset - col_off)).into());
        }
        offset += l.len();
    }
    None
}

/// Resolves the settings: the config file (if any), then the flags over it.
pub fn resolve(args: ProxyArgs) -> Result<Settings, String> {
    let mut file = FileConfig::default();
    let mut base = PathBuf::new();
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "[kvlar] cannot read the proxy config {}: {e}",
                path.display()
            )
        })?;
        file = parse(&text, &path.display().to_string())?;
        base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    }
    let policies = if !args.policies.is_empty() {
        args.policies
    } else {
        file.policy_paths
            .unwrap_or_default()
            .into_iter()
            .map(|p| base.join(p))
            .collect()
    };
    if policies.is_empty() {
        return Err(
            "[kvlar] no policy: give --policy FILE (or `policy_paths` in the --config file)".into(),
        );
    }
    let (command, cmd_args) = match args.command.split_first() {
        Some((c, rest)) => (c.clone(), rest.to_vec()),
        None => match file.upstream_command {
            Some(c) => (c, file.upstream_args.unwrap_or_default()),
            None => {
                return Err("[kvlar] no upstream server: give it after `--` (or `upstream_command` in the --config file)".into())
            }
        },
    };
    Ok(Settings {
        policies,
        watch: args.watch || file.hot_reload.unwrap_or(false),
        command,
        args: cmd_args,
        audit: args.audit.or_else(|| file.audit_file.map(|p| base.join(p))),
        audit_redact: args.audit_redact,
        agent: args
            .agent_id
            .or(file.agent_id)
            .unwrap_or_else(|| kvlar_vm::call::MCP_AGENT.to_owned()),
        busy_poll: args
            .busy_poll
            .or(file.busy_poll_us.map(|b| b.value))
            .map_or(DEFAULT_BUSY_POLL, Duration::from_micros),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_config() {
        let c = parse(
            "policy_paths: [a.yaml, b.yaml]\nhot_reload: true\ntransport: stdio\nupstream_command: node\n\
             upstream_args: [s.js, --x]\naudit_file: audit.jsonl\nagent_id: bot-1\nbusy_poll_us: 0\n",
            "proxy.yaml",
        )
        .unwrap();
        assert_eq!(c.policy_paths.unwrap(), vec!["a.yaml", "b.yaml"]);
        assert_eq!(c.hot_reload, Some(true));
        assert_eq!(c.transport.unwrap().value, "stdio");
        assert_eq!(c.upstream_command.as_deref(), Some("node"));
        assert_eq!(c.upstream_args.unwrap(), vec!["s.js", "--x"]);
        assert_eq!(c.audit_file.as_deref(), Some("audit.jsonl"));
        assert_eq!(c.agent_id.as_deref(), Some("bot-1"));
        assert_eq!(c.busy_poll_us.unwrap().value, 0);
    }

    #[test]
    fn busy_poll_over_a_second_is_refused_with_its_span() {
        let err = parse("agent_id: x\nbusy_poll_us: 1000001\n", "p.yaml").unwrap_err();
        assert!(err.contains("busy_poll_us 1000001 is too long"), "{err}");
        assert!(err.contains("p.yaml:2:15"), "{err}");
        assert!(err.contains("at most 1000000 (one second)"), "{err}");
        assert!(
            err.contains("the default is 500 µs; 0 turns busy-polling off"),
            "{err}"
        );
        let ok = parse("busy_poll_us: 1000000\n", "p.yaml").unwrap();
        assert_eq!(ok.busy_poll_us.unwrap().value, 1_000_000);
        let err = parse("busy_poll_us: -1\n", "p.yaml").unwrap_err();
        assert!(err.contains("invalid proxy config"), "{err}");
        assert!(err.contains("p.yaml:1:15"), "{err}");
    }

    #[test]
    fn unknown_key_has_span_and_suggestion() {
        let err = parse("policy_paths: [a.yaml]\nhot_relaod: true\n", "proxy.yaml").unwrap_err();
        assert!(
            err.contains("unknown key `hot_relaod` in the proxy config"),
            "{err}"
        );
        assert!(err.contains("proxy.yaml:2:1"), "{err}");
        assert!(err.contains("did you mean `hot_reload`?"), "{err}");
    }

    #[test]
    fn unsupported_transport() {
        let err = parse("transport: http\n", "p.yaml").unwrap_err();
        assert!(err.contains("unsupported transport `http`"), "{err}");
        assert!(err.contains("p.yaml:1:12"), "{err}");
    }

    #[test]
    fn wrong_type_is_an_error() {
        let err = parse("hot_reload: [1]\n", "p.yaml").unwrap_err();
        assert!(err.contains("invalid proxy config"), "{err}");
        assert!(!err.contains("<input>"), "{err}");
        assert!(err.contains("p.yaml:1:"), "{err}");
    }

    #[test]
    fn flags_override_the_file() {
        let dir = std::env::temp_dir().join(format!("kvlar-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("proxy.yaml");
        std::fs::write(
            &path,
            "policy_paths: [p.yaml]\nhot_reload: true\nupstream_command: srv\nupstream_args: [a]\naudit_file: a.jsonl\nagent_id: x\nbusy_poll_us: 20\n",
        )
        .unwrap();
        let from_file = resolve(ProxyArgs {
            config: Some(path.clone()),
            ..ProxyArgs::default()
        })
        .unwrap();
        assert_eq!(
            from_file,
            Settings {
                policies: vec![dir.join("p.yaml")],
                watch: true,
                command: "srv".into(),
                args: vec!["a".into()],
                audit: Some(dir.join("a.jsonl")),
                audit_redact: false,
                agent: "x".into(),
                busy_poll: Duration::from_micros(20),
            }
        );
        let flagged = resolve(ProxyArgs {
            config: Some(path),
            policies: vec!["q.yaml".into()],
            agent_id: Some("y".into()),
            busy_poll: Some(0),
            command: vec!["other".into(), "b".into()],
            ..ProxyArgs::default()
        })
        .unwrap();
        assert_eq!(flagged.policies, vec![PathBuf::from("q.yaml")]);
        assert_eq!(flagged.agent, "y");
        assert_eq!(flagged.busy_poll, Duration::ZERO);
        assert_eq!(
            (flagged.command.as_str(), flagged.args.clone()),
            ("other", vec!["b".to_owned()])
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let none = resolve(ProxyArgs::default()).unwrap_err();
        assert!(none.contains("no policy"), "{none}");
    }
}

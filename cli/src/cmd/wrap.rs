//! `kvlar wrap` / `kvlar unwrap`: put every stdio MCP server of a client
//! configuration behind `kvlar proxy`, and take it out again.
//!
//! A server `{"command": C, "args": [A…]}` becomes
//! `{"command": "<kvlar>", "args": ["proxy", "--stdio", "--policy", "<policy>", "--", C, A…]}`.
//! The file is edited in place, as text: only the `command` value and the
//! start of `args` change, so key order, spacing and every other key keep
//! their bytes, and the wrapped `args` carry the original command verbatim
//! after `--` — which is all `unwrap` needs to restore the original bytes.
//! A server without `args` gets an `args` member inserted *before*
//! `command`; `unwrap` removes an `args` member in that position when
//! nothing of the original follows `--` (an original `"args": []` written
//! before `command` therefore comes back as no `args`, which clients treat
//! the same).

mod json;

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::ValueEnum;
use miette::{Diagnostic, NamedSource, SourceSpan};

use crate::report;
use crate::report::{out, outln};
use json::{Kind, Member, Node};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Client {
    /// Claude Desktop (`claude_desktop_config.json`).
    ClaudeDesktop,
    /// Cursor (`~/.cursor/mcp.json`).
    Cursor,
    /// Claude Code, user configuration (`~/.claude.json`: top-level and per-project servers).
    ClaudeCode,
    /// Claude Code, project configuration (`.mcp.json` in the current directory).
    ClaudeCodeProject,
}

impl Client {
    const ALL: [Client; 4] = [
        Client::ClaudeDesktop,
        Client::Cursor,
        Client::ClaudeCode,
        Client::ClaudeCodeProject,
    ];

    fn name(self) -> &'static str {
        match self {
            Client::ClaudeDesktop => "claude-desktop",
            Client::Cursor => "cursor",
            Client::ClaudeCode => "claude-code",
            Client::ClaudeCodeProject => "claude-code-project",
        }
    }

    /// The configuration file on this machine (Linux and macOS layouts).
    fn path(self) -> Option<PathBuf> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        match self {
            Client::ClaudeDesktop => {
                if cfg!(target_os = "macos") {
                    home.map(|h| {
                        h.join("Library/Application Support/Claude/claude_desktop_config.json")
                    })
                } else {
                    std::env::var_os("XDG_CONFIG_HOME")
                        .map(PathBuf::from)
                        .filter(|p| p.is_absolute())
                        .or_else(|| home.map(|h| h.join(".config")))
                        .map(|c| c.join("Claude/claude_desktop_config.json"))
                }
            }
            Client::Cursor => home.map(|h| h.join(".cursor/mcp.json")),
            Client::ClaudeCode => home.map(|h| h.join(".claude.json")),
            Client::ClaudeCodeProject => Some(PathBuf::from(".mcp.json")),
        }
    }
}

/// Which file, and which servers in it.
#[derive(clap::Args)]
pub struct Selection {
    /// The MCP client whose configuration to edit (default: the one found on this machine).
    #[arg(long, value_enum)]
    pub client: Option<Client>,
    /// Edit this configuration file instead of the client's default one.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Only these servers (by name; repeatable).
    #[arg(long, value_name = "NAME", num_args = 1..)]
    pub only: Vec<String>,
    /// Every server but these (by name; repeatable).
    #[arg(long, value_name = "NAME", num_args = 1..)]
    pub skip: Vec<String>,
    /// Print the change as a unified diff; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(clap::Args)]
pub struct Args {
    /// The policy the proxy enforces (checked now, made absolute).
    #[arg(long, required = true, value_name = "POLICY.yaml")]
    pub policy: PathBuf,
    #[command(flatten)]
    pub sel: Selection,
}

#[derive(clap::Args)]
pub struct UnwrapArgs {
    #[command(flatten)]
    pub sel: Selection,
}

/// A configuration file that cannot be edited safely.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum ConfigError {
    #[error("{path} is not valid JSON: {message}")]
    #[diagnostic(
        code(kvlar::wrap::syntax),
        help("fix the file (it was not changed), then run the command again")
    )]
    Syntax {
        path: String,
        message: String,
        #[source_code]
        src: NamedSource<Arc<str>>,
        #[label("{message}")]
        span: SourceSpan,
    },
    #[error("{message}")]
    #[diagnostic(code(kvlar::wrap::shape))]
    Shape {
        message: String,
        label: String,
        #[source_code]
        src: NamedSource<Arc<str>>,
        #[label("{label}")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Wrap,
    Unwrap,
}

/// One server entry of the file.
struct Server<'n> {
    name: String,
    /// `Some(project path)` for Claude Code's per-project servers.
    project: Option<String>,
    node: &'n Node,
}

impl Server<'_> {
    fn display(&self) -> String {
        match &self.project {
            Some(p) => format!("{} (project {p})", self.name),
            None => self.name.clone(),
        }
    }
}

struct Edit {
    range: Range<usize>,
    text: String,
}

pub fn run(args: Args) -> ExitCode {
    let policy = match std::fs::canonicalize(&args.policy) {
        Ok(p) => p,
        Err(e) => {
            return report::fail(
                format!("cannot read the policy {}: {e}", args.policy.display()),
                Some("give the path of a policy file, e.g. --policy policies/filesystem.yaml"),
            )
        }
    };
    // Never point a client at a policy that does not compile.
    if let Err(failure) = kvlar_compiler::compile_files(std::slice::from_ref(&policy)) {
        report::print(failure);
        return ExitCode::from(1);
    }
    let kvlar = match std::env::current_exe().and_then(std::fs::canonicalize) {
        Ok(p) => p,
        Err(e) => return report::fail(format!("cannot find the kvlar executable: {e}"), None),
    };
    let (Some(kvlar), Some(policy)) = (kvlar.to_str(), policy.to_str()) else {
        return report::fail(
            "the path of kvlar or of the policy is not valid UTF-8",
            Some("move them to a UTF-8 path: the configuration is JSON"),
        );
    };
    edit(
        &args.sel,
        Mode::Wrap,
        &Wrapper {
            kvlar: kvlar.to_string(),
            policy: policy.to_string(),
        },
    )
}

pub fn run_unwrap(args: UnwrapArgs) -> ExitCode {
    edit(
        &args.sel,
        Mode::Unwrap,
        &Wrapper {
            kvlar: String::new(),
            policy: String::new(),
        },
    )
}

struct Wrapper {
    kvlar: String,
    policy: String,
}

fn config_path(sel: &Selection) -> Result<PathBuf, ExitCode> {
    if let Some(p) = &sel.config {
        return Ok(p.clone());
    }
    if let Some(c) = sel.client {
        return c.path().ok_or_else(|| {
            report::fail(
                format!(
                    "cannot locate the {} configuration: HOME is not set",
                    c.name()
                ),
                Some("pass the file with --config FILE"),
            )
        });
    }
    let found: Vec<(Client, PathBuf)> = Client::ALL
        .iter()
        .filter_map(|c| c.path().map(|p| (*c, p)))
        .filter(|(_, p)| p.is_file())
        .collect();
    match found.as_slice() {
        [(_, p)] => Ok(p.clone()),
        [] => Err(report::fail(
            "no MCP client configuration found",
            Some(&format!(
                "looked for {}; pass --client or --config FILE",
                Client::ALL
                    .iter()
                    .filter_map(|c| c.path().map(|p| format!("{} ({})", p.display(), c.name())))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        )),
        many => Err(report::fail(
            "several MCP client configurations found",
            Some(&format!(
                "choose one with --client: {}",
                many.iter()
                    .map(|(c, p)| format!("{} ({})", c.name(), p.display()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        )),
    }
}

fn src(path: &Path, text: &str) -> NamedSource<Arc<str>> {
    NamedSource::new(path.display().to_string(), Arc::from(text))
}

fn shape(
    path: &Path,
    text: &str,
    span: Range<usize>,
    message: String,
    label: &str,
    help: Option<String>,
) -> ConfigError {
    ConfigError::Shape {
        message,
        label: label.to_string(),
        src: src(path, text),
        span: (span.start, span.len()).into(),
        help,
    }
}

/// Every server entry: top-level `mcpServers`, then Claude Code's
/// `projects.<path>.mcpServers`.
fn servers<'n>(
    path: &Path,
    text: &str,
    root: &'n Node,
) -> Result<Vec<Server<'n>>, Box<ConfigError>> {
    let Kind::Object(_) = root.kind else {
        return Err(Box::new(shape(
            path,
            text,
            root.span.clone(),
            format!("{} is not a JSON object", path.display()),
            "expected an object with `mcpServers`",
            None,
        )));
    };
    let mut out = Vec::new();
    let mut collect = |m: &'n Member, project: Option<String>| -> Result<(), Box<ConfigError>> {
        let Kind::Object(entries) = &m.value.kind else {
            return Err(Box::new(shape(
                path,
                text,
                m.value.span.clone(),
                format!("`mcpServers` is {}, not an object", m.value.type_name()),
                "expected an object of servers by name",
                None,
            )));
        };
        for e in entries {
            out.push(Server {
                name: e.key.clone(),
                project: project.clone(),
                node: &e.value,
            });
        }
        Ok(())
    };
    if let Some(m) = root.get("mcpServers") {
        collect(m, None)?;
    }
    if let Some(projects) = root.get("projects") {
        if let Kind::Object(ps) = &projects.value.kind {
            for p in ps {
                if let Some(m) = p.value.get("mcpServers") {
                    collect(m, Some(p.key.clone()))?;
                }
            }
        }
    }
    Ok(out)
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The whitespace at the start of the line holding `offset`.
fn indent_of(text: &str, offset: usize) -> &str {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = &text[line_start..];
    &line[..line.len() - line.trim_start_matches([' ', '\t']).len()]
}

fn items(node: &Node) -> Option<&[Node]> {
    match &node.kind {
        Kind::Array(items) => Some(items),
        _ => None,
    }
}

/// `(args items, index of "--")` when the server is already wrapped.
fn wrapped(server: &Node) -> Option<(&[Node], usize)> {
    let command = server.get("command")?.value.as_str()?;
    let file = Path::new(command).file_name()?.to_str()?;
    if file != "kvlar" && file != "kvlar.exe" {
        return None;
    }
    let args = items(&server.get("args")?.value)?;
    if args.first()?.as_str()? != "proxy" {
        return None;
    }
    let dashdash = args.iter().position(|a| a.as_str() == Some("--"))?;
    // The original command follows `--`.
    args.get(dashdash + 1)?;
    Some((args, dashdash))
}

/// Why a server is left as it is.
fn not_stdio(server: &Node) -> Option<String> {
    let Kind::Object(_) = server.kind else {
        return Some(format!(
            "its entry is {}, not an object",
            server.type_name()
        ));
    };
    match server.get("command") {
        Some(c) if c.value.as_str().is_some() => None,
        Some(c) => Some(format!(
            "`command` is {}, not a string",
            c.value.type_name()
        )),
        None if server.get("url").is_some() => {
            Some("a remote (URL) server: kvlar proxy wraps stdio servers only".to_string())
        }
        None => Some("no `command`".to_string()),
    }
}

fn wrap_edits(text: &str, server: &Node, w: &Wrapper) -> Result<Vec<Edit>, String> {
    if let Some(why) = not_stdio(server) {
        return Err(why);
    }
    if wrapped(server).is_some() {
        return Err("already wrapped".to_string());
    }
    let command = server.get("command").ok_or("no `command`")?;
    let mut prefix: Vec<String> = ["proxy", "--stdio", "--policy", &w.policy, "--"]
        .iter()
        .map(|s| json_string(s))
        .collect();
    prefix.push(text[command.value.span.clone()].to_string());
    let mut edits = vec![Edit {
        range: command.value.span.clone(),
        text: json_string(&w.kvlar),
    }];
    let multiline = text[server.span.clone()].contains('\n');
    let key_indent = indent_of(text, command.key_span.start);
    let unit = key_indent
        .strip_prefix(indent_of(text, server.span.start))
        .filter(|u| !u.is_empty())
        .unwrap_or("  ");
    let array = |items: &[String], indent: &str| {
        if multiline {
            let inner = format!("{indent}{unit}");
            format!(
                "[\n{}\n{indent}]",
                items
                    .iter()
                    .map(|i| format!("{inner}{i}"))
                    .collect::<Vec<_>>()
                    .join(",\n")
            )
        } else {
            format!("[{}]", items.join(", "))
        }
    };
    match server.get("args") {
        None => {
            let sep = if multiline {
                format!("\n{key_indent}")
            } else {
                " ".to_string()
            };
            edits.push(Edit {
                range: command.key_span.start..command.key_span.start,
                text: format!("\"args\": {},{sep}", array(&prefix, key_indent)),
            });
        }
        Some(args) => {
            let Some(list) = items(&args.value) else {
                return Err(format!(
                    "`args` is {}, not an array",
                    args.value.type_name()
                ));
            };
            match list {
                [] => edits.push(Edit {
                    range: args.value.span.clone(),
                    text: array(&prefix, indent_of(text, args.key_span.start)),
                }),
                [first, rest @ ..] => {
                    let sep = match rest.first() {
                        Some(second) => text[first.span.end..second.span.start].to_string(),
                        None => {
                            let ws = &text[args.value.span.start + 1..first.span.start];
                            if ws.contains('\n') {
                                format!(",{ws}")
                            } else {
                                ", ".to_string()
                            }
                        }
                    };
                    edits.push(Edit {
                        range: first.span.start..first.span.start,
                        text: format!("{}{sep}", prefix.join(&sep)),
                    });
                }
            }
        }
    }
    Ok(edits)
}

fn unwrap_edits(text: &str, server: &Node) -> Result<Vec<Edit>, String> {
    if let Some(why) = not_stdio(server) {
        return Err(why);
    }
    let Some((args, dashdash)) = wrapped(server) else {
        return Err("not wrapped".to_string());
    };
    let (Some(command), Some(args_member)) = (server.get("command"), server.get("args")) else {
        return Err("not wrapped".to_string());
    };
    let original = &args[dashdash + 1];
    let mut edits = vec![Edit {
        range: command.value.span.clone(),
        text: text[original.span.clone()].to_string(),
    }];
    if let Some(next) = args.get(dashdash + 2) {
        edits.push(Edit {
            range: args[0].span.start..next.span.start,
            text: String::new(),
        });
    } else if args_member.key_span.start < command.key_span.start {
        // Inserted by `wrap` before `command`: the original had no `args`.
        edits.push(Edit {
            range: args_member.key_span.start..command.key_span.start,
            text: String::new(),
        });
    } else {
        edits.push(Edit {
            range: args_member.value.span.clone(),
            text: "[]".to_string(),
        });
    }
    Ok(edits)
}

fn apply(text: &str, mut edits: Vec<Edit>) -> String {
    edits.sort_by_key(|e| std::cmp::Reverse((e.range.start, e.range.end)));
    let mut out = text.to_string();
    for e in edits {
        out.replace_range(e.range, &e.text);
    }
    out
}

fn edit(sel: &Selection, mode: Mode, w: &Wrapper) -> ExitCode {
    let path = match config_path(sel) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let text = match std::fs::read(&path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => {
                return report::fail(
                    format!("{} is not UTF-8 text", path.display()),
                    Some("MCP client configurations are JSON (UTF-8); the file was not changed"),
                )
            }
        },
        Err(e) => return report::fail(format!("cannot read {}: {e}", path.display()), None),
    };
    let root = match json::parse(&text) {
        Ok(r) => r,
        Err(e) => {
            report::print(ConfigError::Syntax {
                path: path.display().to_string(),
                message: e.message,
                src: src(&path, &text),
                span: (e.offset, e.len).into(),
            });
            return ExitCode::from(1);
        }
    };
    let all = match servers(&path, &text, &root) {
        Ok(s) => s,
        Err(e) => {
            report::print(*e);
            return ExitCode::from(1);
        }
    };
    for name in sel.only.iter().chain(&sel.skip) {
        if !all.iter().any(|s| &s.name == name) {
            let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
            let close = names
                .iter()
                .find(|n| strsim::jaro_winkler(n, name) >= 0.8)
                .map(|n| format!("did you mean `{n}`? "))
                .unwrap_or_default();
            return report::fail(
                format!("no server named `{name}` in {}", path.display()),
                Some(&format!(
                    "{close}servers: {}",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )),
            );
        }
    }
    let verb = if mode == Mode::Wrap {
        "wrapped"
    } else {
        "unwrapped"
    };
    let mut edits = Vec::new();
    let mut done = Vec::new();
    for s in &all {
        if (!sel.only.is_empty() && !sel.only.contains(&s.name)) || sel.skip.contains(&s.name) {
            continue;
        }
        let result = match mode {
            Mode::Wrap => wrap_edits(&text, s.node, w),
            Mode::Unwrap => unwrap_edits(&text, s.node),
        };
        match result {
            Ok(e) => {
                edits.extend(e);
                done.push(s.display());
            }
            Err(why) => eprintln!("note: left `{}` as it is: {why}", s.display()),
        }
    }
    if done.is_empty() {
        outln!("nothing to change in {}", path.display());
        return ExitCode::SUCCESS;
    }
    let new_text = apply(&text, edits);
    if let Err(e) = json::parse(&new_text) {
        return report::fail(
            format!(
                "internal error: the edited configuration is not valid JSON ({})",
                e.message
            ),
            Some("nothing was written; please report this with the configuration file"),
        );
    }
    if sel.dry_run {
        let name = path.display().to_string();
        out!(
            "{}",
            similar::TextDiff::from_lines(&text, &new_text)
                .unified_diff()
                .context_radius(3)
                .header(&name, &name)
        );
        eprintln!(
            "dry run: would have {verb} {}; nothing written",
            done.join(", ")
        );
        return ExitCode::SUCCESS;
    }
    let backup = match write_backup(&path, &text) {
        Ok(b) => b,
        Err(e) => {
            return report::fail(
                format!("cannot write a backup of {}: {e}", path.display()),
                Some("nothing was changed"),
            )
        }
    };
    if let Err(e) = write_atomic(&path, &new_text) {
        return report::fail(
            format!("cannot write {}: {e}", path.display()),
            Some("the file was not changed"),
        );
    }
    outln!(
        "{verb} {} in {} (backup: {})",
        done.join(", "),
        path.display(),
        backup.display()
    );
    if mode == Mode::Wrap {
        outln!("restart the MCP client to use it; `kvlar unwrap` undoes this");
    }
    ExitCode::SUCCESS
}

/// `FILE.kvlar-backup`, or the first free `FILE.kvlar-backup.N`: an existing
/// backup is never overwritten.
fn write_backup(path: &Path, text: &str) -> std::io::Result<PathBuf> {
    let base = format!("{}.kvlar-backup", path.display());
    for n in 0..10_000u32 {
        let candidate = if n == 0 {
            PathBuf::from(&base)
        } else {
            PathBuf::from(format!("{base}.{n}"))
        };
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(mut f) => {
                f.write_all(text.as_bytes())?;
                f.sync_all()?;
                if let Ok(meta) = std::fs::metadata(path) {
                    let _ = std::fs::set_permissions(&candidate, meta.permissions());
                }
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("too many backups"))
}

/// Writes through a temporary file in the same directory and a rename, so a
/// crash leaves either the old or the new file. A symlink is followed (its
/// target is replaced) and the file's permissions are kept.
fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let target = std::fs::canonicalize(path)?;
    let dir = target.parent().unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "config".to_string());
    let tmp = dir.join(format!(".{name}.kvlar-tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::set_permissions(&tmp, std::fs::metadata(&target)?.permissions())?;
        std::fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

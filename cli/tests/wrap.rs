//! `kvlar wrap` / `kvlar unwrap` on real files: byte-identical round trips
//! for each client format, selection, idempotence, dry-run diff, backups,
//! and malformed files left untouched.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

fn kvlar(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvlar"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("kvlar runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kvlar-wrap-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn policy() -> String {
    std::fs::canonicalize(Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/filesystem.yaml"))
        .unwrap()
        .display()
        .to_string()
}

fn kvlar_path() -> String {
    std::fs::canonicalize(env!("CARGO_BIN_EXE_kvlar"))
        .unwrap()
        .display()
        .to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

fn wrap(config: &Path, extra: &[&str]) -> Output {
    let policy = policy();
    let mut args = vec![
        "wrap",
        "--config",
        config.to_str().unwrap(),
        "--policy",
        &policy,
    ];
    args.extend_from_slice(extra);
    kvlar(&args)
}

fn unwrap(config: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["unwrap", "--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    kvlar(&args)
}

/// `{"command", "args"}` of a wrapped server running `cmd args…`.
fn wrapped(cmd: &str, args: &[&str]) -> Value {
    let mut a = vec![
        json!("proxy"),
        json!("--stdio"),
        json!("--policy"),
        json!(policy()),
        json!("--"),
        json!(cmd),
    ];
    a.extend(args.iter().map(|s| json!(s)));
    json!({"command": kvlar_path(), "args": a})
}

fn parsed(p: &Path) -> Value {
    serde_json::from_str(&read(p)).unwrap()
}

/// Only the `command` / `args` of a server entry.
fn run_of(v: &Value) -> Value {
    json!({"command": v["command"], "args": v["args"]})
}

const DESKTOP: &str = r#"{
  "mcpServers": {
    "filesystem": {
      "command": "npx",
      "args": [
        "-y",
        "@modelcontextprotocol/server-filesystem",
        "/Users/me/Desktop"
      ]
    },
    "memory": {
      "command": "npx",
      "args": [
        "-y"
      ],
      "env": {
        "MEMORY_FILE_PATH": "/tmp/m.json"
      }
    },
    "git": {
      "command": "uvx"
    },
    "empty-args": {
      "command": "my-server",
      "args": []
    },
    "remote": {
      "url": "https://example.com/mcp"
    },
    "inline": {"command": "node", "args": ["server.js", "--port", "8\u0030"]}
  },
  "globalShortcut": "Ctrl+Space"
}
"#;

#[test]
fn claude_desktop_round_trip_is_byte_identical() {
    let dir = temp_dir("desktop");
    let cfg = write(&dir, "claude_desktop_config.json", DESKTOP);
    let o = wrap(&cfg, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "wrapped filesystem, memory, git, empty-args, inline in {} (backup: {}.kvlar-backup)\nrestart the MCP client to use it; `kvlar unwrap` undoes this\n",
            cfg.display(),
            cfg.display()
        )
    );
    assert_eq!(
        stderr(&o),
        "note: left `remote` as it is: a remote (URL) server: kvlar proxy wraps stdio servers only\n"
    );
    let v = parsed(&cfg);
    let s = &v["mcpServers"];
    assert_eq!(
        run_of(&s["filesystem"]),
        wrapped(
            "npx",
            &[
                "-y",
                "@modelcontextprotocol/server-filesystem",
                "/Users/me/Desktop"
            ]
        )
    );
    assert_eq!(run_of(&s["memory"]), wrapped("npx", &["-y"]));
    assert_eq!(
        s["memory"]["env"],
        json!({"MEMORY_FILE_PATH": "/tmp/m.json"})
    );
    assert_eq!(run_of(&s["git"]), wrapped("uvx", &[]));
    assert_eq!(run_of(&s["empty-args"]), wrapped("my-server", &[]));
    assert_eq!(
        run_of(&s["inline"]),
        wrapped("node", &["server.js", "--port", "80"])
    );
    assert_eq!(s["remote"], json!({"url": "https://example.com/mcp"}));
    assert_eq!(v["globalShortcut"], "Ctrl+Space");
    // Untouched bytes stay: the escape in the inline entry, key order.
    let text = read(&cfg);
    assert!(text.contains(r#""--port", "8\u0030"]}"#), "{text}");
    let keys: Vec<&String> = v["mcpServers"].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 6);
    assert!(text.find("\"filesystem\"").unwrap() < text.find("\"inline\"").unwrap());

    let o = unwrap(&cfg, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(&cfg), DESKTOP);
    assert_eq!(
        stdout(&o),
        format!(
            "unwrapped filesystem, memory, git, empty-args, inline in {} (backup: {}.kvlar-backup.1)\n",
            cfg.display(),
            cfg.display()
        )
    );
}

#[test]
fn cursor_and_project_files_round_trip() {
    let text = "{\n  \"mcpServers\": {\n    \"postgres\": {\n      \"command\": \"npx\",\n      \"args\": [\"-y\", \"@modelcontextprotocol/server-postgres\", \"postgresql://localhost/db\"],\n      \"env\": {}\n    },\n    \"github\": {\n      \"type\": \"stdio\",\n      \"command\": \"docker\",\n      \"args\": [\n        \"run\",\n        \"-i\",\n        \"--rm\",\n        \"ghcr.io/github/github-mcp-server\"\n      ]\n    },\n    \"docs\": {\n      \"type\": \"http\",\n      \"url\": \"https://mcp.example.com\"\n    }\n  }\n}\n";
    let dir = temp_dir("cursor");
    for name in ["mcp.json", ".mcp.json"] {
        let cfg = write(&dir, name, text);
        let o = wrap(&cfg, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v = parsed(&cfg);
        assert_eq!(
            run_of(&v["mcpServers"]["postgres"]),
            wrapped(
                "npx",
                &[
                    "-y",
                    "@modelcontextprotocol/server-postgres",
                    "postgresql://localhost/db"
                ]
            )
        );
        assert_eq!(v["mcpServers"]["github"]["type"], "stdio");
        assert_eq!(
            run_of(&v["mcpServers"]["github"]),
            wrapped(
                "docker",
                &["run", "-i", "--rm", "ghcr.io/github/github-mcp-server"]
            )
        );
        // Same one-line style as the original array.
        assert!(read(&cfg).contains(&format!(
            "\"args\": [\"proxy\", \"--stdio\", \"--policy\", \"{}\", \"--\", \"npx\", \"-y\"",
            policy()
        )));
        let o = unwrap(&cfg, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(read(&cfg), text, "{name}");
    }
}

const CLAUDE_CODE: &str = r#"{
  "numStartups": 12,
  "mcpServers": {
    "sqlite": {
      "type": "stdio",
      "command": "uvx",
      "args": [
        "mcp-server-sqlite",
        "--db-path",
        "/tmp/test.db"
      ],
      "env": {}
    }
  },
  "projects": {
    "/home/me/app": {
      "allowedTools": [],
      "mcpServers": {
        "filesystem": {
          "type": "stdio",
          "command": "npx",
          "args": [
            "-y",
            "@modelcontextprotocol/server-filesystem",
            "/home/me/app"
          ],
          "env": {}
        },
        "sentry": {
          "type": "sse",
          "url": "https://mcp.sentry.dev/sse"
        }
      }
    },
    "/home/me/other": {
      "allowedTools": []
    }
  }
}
"#;

#[test]
fn claude_code_user_file_top_level_and_per_project() {
    let dir = temp_dir("claude-code");
    let cfg = write(&dir, ".claude.json", CLAUDE_CODE);
    let o = wrap(&cfg, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("wrapped sqlite, filesystem (project /home/me/app) in "));
    let v = parsed(&cfg);
    assert_eq!(
        run_of(&v["mcpServers"]["sqlite"]),
        wrapped("uvx", &["mcp-server-sqlite", "--db-path", "/tmp/test.db"])
    );
    let p = &v["projects"]["/home/me/app"]["mcpServers"];
    assert_eq!(
        run_of(&p["filesystem"]),
        wrapped(
            "npx",
            &[
                "-y",
                "@modelcontextprotocol/server-filesystem",
                "/home/me/app"
            ]
        )
    );
    assert_eq!(p["sentry"]["url"], "https://mcp.sentry.dev/sse");
    assert_eq!(v["numStartups"], 12);
    let o = unwrap(&cfg, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(&cfg), CLAUDE_CODE);
}

#[test]
fn only_and_skip_select_servers() {
    let dir = temp_dir("select");
    let cfg = write(&dir, "c.json", DESKTOP);
    let o = wrap(&cfg, &["--only", "git", "memory"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = parsed(&cfg);
    let s = &v["mcpServers"];
    assert_eq!(s["git"]["command"], json!(kvlar_path()));
    assert_eq!(s["memory"]["command"], json!(kvlar_path()));
    assert_eq!(s["filesystem"]["command"], "npx");
    assert_eq!(s["inline"]["command"], "node");

    // Unwrap everything but `git`.
    let o = unwrap(&cfg, &["--skip", "git"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = parsed(&cfg);
    assert_eq!(v["mcpServers"]["git"]["command"], json!(kvlar_path()));
    assert_eq!(v["mcpServers"]["memory"]["command"], "npx");
    let o = unwrap(&cfg, &["--only", "git"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(&cfg), DESKTOP);

    // An unknown name is an error, with a suggestion, and changes nothing.
    let o = wrap(&cfg, &["--only", "filesytem"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("no server named `filesytem`"), "{err}");
    assert!(err.contains("did you mean `filesystem`?"), "{err}");
    assert_eq!(read(&cfg), DESKTOP);
}

#[test]
fn wrapping_twice_changes_nothing() {
    let dir = temp_dir("idempotent");
    let cfg = write(&dir, "c.json", DESKTOP);
    assert!(wrap(&cfg, &[]).status.success());
    let once = read(&cfg);
    let o = wrap(&cfg, &[]);
    assert!(o.status.success());
    assert_eq!(
        stdout(&o),
        format!("nothing to change in {}\n", cfg.display())
    );
    assert!(stderr(&o).contains("note: left `filesystem` as it is: already wrapped"));
    assert_eq!(read(&cfg), once);
    assert!(!dir.join("c.json.kvlar-backup.1").exists());
    // Unwrapping an unwrapped file: nothing either.
    let plain = write(&dir, "plain.json", DESKTOP);
    let o = unwrap(&plain, &[]);
    assert!(o.status.success());
    assert_eq!(
        stdout(&o),
        format!("nothing to change in {}\n", plain.display())
    );
    assert!(!dir.join("plain.json.kvlar-backup").exists());
}

#[test]
fn dry_run_prints_a_diff_and_writes_nothing() {
    let dir = temp_dir("dry");
    let text = "{\n  \"mcpServers\": {\n    \"git\": {\n      \"command\": \"uvx\",\n      \"args\": [\"mcp-server-git\"]\n    }\n  }\n}\n";
    let cfg = write(&dir, "c.json", text);
    let o = wrap(&cfg, &["--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let name = cfg.display().to_string();
    assert_eq!(
        stdout(&o),
        format!(
            "--- {name}\n+++ {name}\n@@ -1,8 +1,8 @@\n {{\n   \"mcpServers\": {{\n     \"git\": {{\n-      \"command\": \"uvx\",\n-      \"args\": [\"mcp-server-git\"]\n+      \"command\": \"{k}\",\n+      \"args\": [\"proxy\", \"--stdio\", \"--policy\", \"{p}\", \"--\", \"uvx\", \"mcp-server-git\"]\n     }}\n   }}\n }}\n",
            k = kvlar_path(),
            p = policy()
        )
    );
    assert_eq!(
        stderr(&o),
        "dry run: would have wrapped git; nothing written\n"
    );
    assert_eq!(read(&cfg), text);
    assert!(!dir.join("c.json.kvlar-backup").exists());
}

#[test]
fn malformed_json_is_an_error_with_a_position_and_is_never_written() {
    let dir = temp_dir("malformed");
    let text = "{\n  \"mcpServers\": {\n    \"git\": {\"command\": \"uvx\",}\n  }\n}\n";
    let cfg = write(&dir, "c.json", text);
    let o = wrap(&cfg, &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("kvlar::wrap::syntax"), "{err}");
    assert!(err.contains("╰── trailing comma before `}`"), "{err}");
    assert!(err.contains(&format!("[{}:3:30]", cfg.display())), "{err}");
    assert!(err.contains("fix the file (it was not changed)"), "{err}");
    assert_eq!(read(&cfg), text);
    assert!(!dir.join("c.json.kvlar-backup").exists());

    // Valid JSON of the wrong shape: also a spanned error.
    let cfg = write(&dir, "d.json", "{\"mcpServers\": [1, 2]}");
    let o = unwrap(&cfg, &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("`mcpServers` is an array, not an object"),
        "{err}"
    );
    assert!(err.contains(&format!("[{}:1:16]", cfg.display())), "{err}");
}

#[test]
fn backups_are_numbered_and_hold_the_original() {
    let dir = temp_dir("backup");
    let cfg = write(&dir, "c.json", DESKTOP);
    write(&dir, "c.json.kvlar-backup", "an older backup");
    let o = wrap(&cfg, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(&dir.join("c.json.kvlar-backup")), "an older backup");
    assert_eq!(read(&dir.join("c.json.kvlar-backup.1")), DESKTOP);
    // No temporary file left behind.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains("kvlar-tmp")), "{names:?}");
}

#[test]
fn a_policy_that_does_not_compile_stops_wrap() {
    let dir = temp_dir("badpolicy");
    let cfg = write(&dir, "c.json", DESKTOP);
    let bad = write(
        &dir,
        "bad.yaml",
        "name: p\ndescription: d\nversion: \"1\"\nrules:\n  - id: a\n    effect: alow\n",
    );
    let o = kvlar(&[
        "wrap",
        "--config",
        cfg.to_str().unwrap(),
        "--policy",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unknown effect `alow`"),
        "{}",
        stderr(&o)
    );
    assert_eq!(read(&cfg), DESKTOP);
}

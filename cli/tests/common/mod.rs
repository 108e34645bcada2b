//! Helpers shared by the integration tests of `test`, `init`, `schema` and
//! the curated policies: run the built binary, read its output.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs `kvlar ARGS…` (no colours) and waits for it.
pub fn kvlar(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvlar"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("kvlar runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Stdout, line by line.
pub fn lines(o: &Output) -> Vec<String> {
    stdout(o).lines().map(str::to_string).collect()
}

/// An empty folder of its own for test `name` (not created).
pub fn temp_path(prefix: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kvlar-{prefix}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The repository's `policies/` folder.
pub fn policies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

#!/usr/bin/env bash
# The project's one test command (README "Test it"): formatting, lints, every
# Rust test (unit, differential, snapshot), then the end-to-end tests with the
# real MCP client and servers (scripts/e2e.sh installs them into local folders).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
echo "== end-to-end"
scripts/e2e.sh

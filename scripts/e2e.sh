#!/usr/bin/env bash
# End-to-end tests of `kvlar proxy` between the official Python MCP SDK client
# and real MCP servers from npm. Installs what they need into local folders
# (tests/e2e/node_modules, tests/e2e/.venv) — nothing global — then runs pytest.
#
#   scripts/e2e.sh [pytest args…]
#
# KVLAR_BIN: the binary under test (default: target/debug/kvlar, built here with cargo build -p kvlar).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
E2E="$ROOT/tests/e2e"
cd "$E2E"

die() { echo "e2e: $*" >&2; exit 1; }

command -v node >/dev/null 2>&1 || die "node is missing (Node.js >= 18 runs the MCP servers); install it, e.g. apt-get install nodejs npm"
command -v npm >/dev/null 2>&1 || die "npm is missing; install it, e.g. apt-get install npm"
PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null 2>&1 || die "python3 is missing (>= 3.10 runs the MCP SDK client)"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || die "python3 >= 3.10 is needed for the mcp SDK (found $("$PYTHON" --version 2>&1))"
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null \
  || die "python3 venv/ensurepip is missing; install it, e.g. apt-get install python3-venv"

# npm packages: reinstall when the lock file is newer than the install.
if [ ! -x node_modules/.bin/mcp-server-everything ] || [ ! -x node_modules/.bin/mcp-server-filesystem ] \
   || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "e2e: npm ci (tests/e2e/node_modules)" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

# Python client: a local venv, reinstalled when requirements.txt changes.
if [ ! -x .venv/bin/python ] || [ requirements.txt -nt .venv/.installed ]; then
  echo "e2e: python venv (tests/e2e/.venv)" >&2
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt >&2
  touch .venv/.installed
fi

if [ -z "${KVLAR_BIN:-}" ]; then
  echo "e2e: cargo build -p kvlar" >&2
  (cd "$ROOT" && cargo build -p kvlar) >&2
  KVLAR_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/kvlar"
fi
export KVLAR_BIN
[ -x "$KVLAR_BIN" ] || die "no kvlar binary at $KVLAR_BIN"

exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# Proxy benchmark: round-trip latency (p50/p99) and pipelined throughput of a
# tools/call direct to the server, through `kvlar proxy` (release build) and
# through the published kvlar-cli 0.4.0 proxy, all in the same run. Prints the
# Markdown tables that go into BENCHMARKS.md ("Proxy"): one run per server
# (the mock, server-filesystem, server-everything), each with only its own
# chains alive. A proxy in front of a real server is compared with its own
# server process, called directly while the proxy is stopped (SIGSTOP).
#
#   scripts/bench-proxy.sh [harness options…]
#
# Harness options (tests/benches/proxy.rs): --seq N (20000 sequential calls per
# configuration with the mock server), --seq-everything N (20000 with each real
# server), --rounds N (400 interleaving rounds: blocks of 50 calls), --settle N
# (5 untimed calls at the start of each block), --warmup N (2000),
# --warmup-everything N (10000 per real-server process), --calls N
# (10000 pipelined calls per round with the mock), --calls-everything N (5000
# with each real server), --window W (64), --tput-rounds N (5), --no-kvlar-cli,
# --no-mock, --no-filesystem, --no-everything (the servers), --no-relay (the
# do-nothing relay chains), --no-poll-ablation (the `kvlar proxy --busy-poll 0`
# chains), --processes K (1: server processes per real-server configuration,
# its calls shared out between them).
#
# Installs kvlar-cli 0.4.0 into .deps/kvlar-cli-0.4.0 (gitignored) the first
# time. The real-server rows (@modelcontextprotocol/server-filesystem and
# server-everything) need tests/e2e/node_modules (scripts/e2e.sh installs it);
# without it they are skipped. Not part of scripts/test-all.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
CLI="$ROOT/.deps/kvlar-cli-0.4.0/bin/kvlar"
if [ ! -x "$CLI" ]; then
  echo "bench-proxy: cargo install kvlar-cli 0.4.0 into .deps/kvlar-cli-0.4.0" >&2
  cargo install --locked kvlar-cli --version 0.4.0 --root "$ROOT/.deps/kvlar-cli-0.4.0" >&2 \
    || cargo install kvlar-cli --version 0.4.0 --root "$ROOT/.deps/kvlar-cli-0.4.0" >&2
fi

echo "bench-proxy: cargo build --release -p kvlar" >&2
cargo build --release -p kvlar >&2
echo "bench-proxy: building the harness (cargo bench -p kvlar-tests --bench proxy --no-run)" >&2
cargo bench -p kvlar-tests --bench proxy --no-run >&2

echo "Command: scripts/bench-proxy.sh $*"
echo "kvlar: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- cli vm compiler grammar 2>/dev/null || echo ' (uncommitted changes)') (release build); kvlar-cli: $("$CLI" --version 2>/dev/null || echo 'not installed')"
cargo bench -q -p kvlar-tests --bench proxy -- \
  --kvlar "$TARGET/release/kvlar" --kvlar-cli "$CLI" "$@"

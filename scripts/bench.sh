#!/usr/bin/env bash
# Runs the side-by-side benchmarks (our VM vs kvlar-core 0.4.0, same run) and
# prints the ratio table that goes into BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# Criterion options may follow a `--` or not (`bench.sh -- --measurement-time 3`).
if [ "${1:-}" = "--" ]; then shift; fi
cargo bench -p kvlar-tests --bench eval -- "$@"
python3 scripts/bench-report.py target/criterion

#!/usr/bin/env bash
# README command (2): install what is missing, build, and run the whole test
# suite. Needs root: the tests attach real uprobes to real Go processes.
# MDT_GO_VERSIONS=all widens the Go matrix (default: 1.19 1.23 1.24 1.27).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

echo "== format and lints"
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings

echo "== tests"
cargo test --locked --no-fail-fast -- --test-threads="${MDT_TEST_THREADS:-2}"

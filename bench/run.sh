#!/usr/bin/env bash
# The mdt performance benchmark (issue 3, "Performance"): ns per map delete with
# nothing attached, an empty uprobe (the floor), mdt at full capture and at
# --sample 0.01, and bpftrace (count, ustack); mdt's lost events at the highest
# rate; attach time on a large stripped Go binary. Then the flame step of
# issue 5 (mdt flame vs mdt trace; see the end of bench/bench.py). Needs root.
# About 4 minutes in all (3 for the trace part). docs/performance.md explains
# the rows and holds the last results.
#
#   bash bench/run.sh [--reps N] [--phase-ms MS] [--no-build] [--json FILE]
#
# Everything is in bench/bench.py (python3, standard library only); results go
# to stdout (progress to stderr), and with --json FILE also as JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
exec python3 bench/bench.py "$@"

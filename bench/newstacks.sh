#!/usr/bin/env bash
# mdt under a load where nearly every delete has a new stack: records/s, lost, memory and
# stop time per mode (json to a file and to /dev/null, the TUI, metrics only, flame). Needs
# root, tmux and bpftool. docs/performance.md holds the last results.
#
#   bash bench/newstacks.sh [--seconds N] [--modes json-file,json-null,tui,metrics,flame]
#                           [--no-build] [--json FILE]
#
# `--seconds 600` is the soak: memory after 10 minutes is what it was after the first 2.5.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
exec python3 bench/newstacks.py "$@"

#!/usr/bin/env bash
# What the issue-3 target asks of mdt, next to what any BPF program capturing
# the same data must pay on this machine: builds mdt a second time with
# bench/lower-bound.patch (the program does only the four user-memory reads a
# record needs -- runtime.g's head, the map length, the key, the goroutine
# stack -- then returns; string-key workload) and compares it, in one run, with
# the floor and with mdt as it is (bench/variants.py). Needs root; ~1 minute
# after the builds. docs/performance.md has the last results.
#
#   bash bench/lower_bound.sh [variants.py options, e.g. --reps 7]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

cargo build --release --locked
src=target/lower-bound/src
rm -rf "$src"
mkdir -p "$src"
# The committed tree plus the patch; its own target dir, kept between runs.
git archive HEAD | tar -x -C "$src"
patch -s -d "$src" -p1 < bench/lower-bound.patch
CARGO_TARGET_DIR="$PWD/target/lower-bound/target" cargo build --release --locked \
    --manifest-path "$src/Cargo.toml"

exec python3 bench/variants.py \
    --mdt "mdt=target/release/mdt" \
    --mdt "mdt-sample=target/release/mdt --sample 0.01" \
    --mdt "reads-only=target/lower-bound/target/release/mdt" "$@"

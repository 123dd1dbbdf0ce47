#!/usr/bin/env bash
# README command (1): install what is missing, build mdt, and run it on the
# bundled Go workload in fixtures/deletes.
set -euo pipefail
cd "$(dirname "$0")/.."
MDT_GO_VERSIONS="${MDT_GO_VERSIONS:-1.27}" source scripts/install-deps.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

cargo build --release --locked
go=".cache/go/1.27/bin/go"
[ -x "$go" ] || go="$(ls .cache/go/*/bin/go | tail -1)"
work="target/demo"
mkdir -p "$work"
cp fixtures/deletes/*.go "$work/"
(cd "$work" && printf 'module mdtdemo\n\ngo 1.21\n' > go.mod &&
    GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPROXY=off CGO_ENABLED=0 "$OLDPWD/$go" build -o workload .)

echo "== mdt inspect $work/workload"
./target/release/mdt inspect "$work/workload"
echo
echo "== mdt trace -- $work/workload   (every map delete the workload does)"
./target/release/mdt trace -- "$work/workload"

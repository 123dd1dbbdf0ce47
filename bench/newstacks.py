#!/usr/bin/env python3
"""mdt under a load where nearly every delete has a new stack (issue "Bounded under any load").

Run it as `bash bench/newstacks.sh [--seconds N] [--modes LIST] [--json FILE]`;
docs/performance.md holds the last results.

For each mode, a fresh `fixtures/newstacks` (newest Go toolchain in .cache/go, one goroutine:
a delete from a fresh map at the bottom of a random call chain of depth 8-19, so nearly every
delete has a stack never seen before, as fast as it can) and a release mdt attached with -p at
its defaults, for --seconds; then SIGINT (the TUI: `q`). Reported per mode:

  * deletes/s: the kernel's exact count over the run;
  * records/s: records that reached mdt's output (json-file, tui: mdt's summary; json-null:
    the records the kernel put in the ring, read from mdt's BPF counters with bpftool, less
    the few a stop leaves unread);
  * lost: records the kernel could not deliver (ring full), as a share of the deletes;
  * RSS: mdt's resident memory sampled every 0.5 s: after the first quarter of the run
    (warmed up), at the end, and its peak (VmHWM) -- flat after warm-up means bounded;
  * stop: from the signal (or `q`) until mdt has exited, outputs complete.

Modes: json-file (`--json -o FILE` on the repository's file system), json-null (`--json`
to /dev/null), tui (the terminal UI in tmux, 120x40), metrics (`--quiet --prometheus`),
flame (`mdt flame -o FILE.folded`).

Python 3 standard library only. Needs root, tmux, bpftool (json-null's count).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the shared helpers: builds, BPF counters, logging)

from bench import REPO, WORK, die, log, run  # noqa: E402

MODES = ["json-file", "json-null", "tui", "metrics", "flame"]


def build_newstacks(go):
    src = WORK / "newstacks.src"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    shutil.copy(REPO / "fixtures" / "newstacks" / "main.go", src / "main.go")
    (src / "go.mod").write_text("module mdtbench\n\ngo 1.21\n")
    out = WORK / "newstacks"
    log(f"newstacks: building fixtures/newstacks with {go}")
    run([go, "build", "-buildvcs=false", "-o", out, "."], cwd=src, env=bench.go_env(go))
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kib(pid, field):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def pid_of_exe(exe):
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if os.readlink(d / "exe") == str(exe):
                return int(d.name)
        except OSError:
            continue
    return None


def summary_numbers(line):
    """'mdt: D deletes, C clears in Xs (exact); R records, S sampled out, F filtered out,
    L lost' (events::Summary::line) -> dict."""
    m = re.search(r"(\d+) deletes, (\d+) clears in [\d.]+s \(exact\); (\d+) records, "
                  r"(\d+) sampled out, (\d+) filtered out, (\d+) lost", line)
    if not m:
        return None
    d, c, r, s, f, lost = map(int, m.groups())
    return {"deletes": d, "clears": c, "records": r, "sampled_out": s, "filtered_out": f,
            "lost": lost}


def last_json_line(path):
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(0, size - (1 << 16)))
        return json.loads(f.read().splitlines()[-1])


class Run:
    """One mode: the load, mdt attached to it, sampled, stopped."""

    def __init__(self, mode, mdt, load_bin, seconds):
        self.mode, self.mdt, self.seconds = mode, mdt, seconds
        self.load = subprocess.Popen([str(load_bin), "-goroutines", "1"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.load.stderr.readline()
        if not line.startswith("ready pid="):
            die(f"newstacks did not start: {line!r}")
        self.tmp = WORK / f"{mode}"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def cmd(self):
        pid = str(self.load.pid)
        out = self.tmp / "out"
        return {
            "json-file": [self.mdt, "trace", "-p", pid, "--json", "-o", out],
            "json-null": [self.mdt, "trace", "-p", pid, "--json", "-o", "/dev/null"],
            "tui": [self.mdt, "trace", "-p", pid],
            "metrics": [self.mdt, "trace", "-p", pid, "--quiet", "--prometheus",
                        f"127.0.0.1:{free_port()}"],
            "flame": [self.mdt, "flame", "-p", pid, "-o", str(out) + ".folded"],
        }[self.mode]

    def start(self):
        cmd = [str(c) for c in self.cmd()]
        self.err = self.tmp / "stderr"
        if self.mode == "tui":
            self.sock = f"mdtbench-{os.getpid()}"
            line = " ".join(cmd) + f" 2> {self.err}"
            subprocess.run(["tmux", "-L", self.sock, "-f", "/dev/null", "new-session", "-d",
                            "-x", "120", "-y", "40", line], check=True)
            deadline = time.monotonic() + 60
            while (pid := pid_of_exe(self.mdt)) is None:
                if time.monotonic() > deadline:
                    die("mdt did not start in tmux")
                time.sleep(0.05)
            self.pid, self.p = pid, None
        else:
            self.p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                      stderr=open(self.err, "w"))
            self.pid = self.p.pid
        deadline = time.monotonic() + 60
        while "mdt: tracing pid" not in self.err.read_text():
            if time.monotonic() > deadline:
                die(f"{self.mode}: mdt did not attach: {self.err.read_text()}")
            time.sleep(0.05)

    def sample(self):
        rss, t0 = [], time.monotonic()
        self.stats_before_stop = None
        out = self.tmp / "out"
        while (t := time.monotonic() - t0) < self.seconds:
            rss.append((t, status_kib(self.pid, "VmRSS")))
            if self.mode == "json-file" and out.exists():
                # ~300 MB/s at full capture: keep the disk from filling up
                # on a long run. mdt writes on at its offset (the file goes
                # sparse), so its last line is still there at the end.
                os.truncate(out, 0)
            time.sleep(0.5)
        self.cpu_s = bench.cpu_seconds(self.pid)
        if self.mode == "json-null":
            self.stats_before_stop = bench.mdt_kernel_stats(self.pid)
        self.hwm = status_kib(self.pid, "VmHWM")
        self.rss = rss
        self.elapsed = time.monotonic() - t0

    def stop(self):
        t0 = time.monotonic()
        if self.mode == "tui":
            subprocess.run(["tmux", "-L", self.sock, "send-keys", "q"], check=True)
        else:
            self.p.send_signal(signal.SIGINT)
        while Path(f"/proc/{self.pid}").exists() and status_kib(self.pid, "VmRSS") is not None:
            self.hwm = max(self.hwm or 0, status_kib(self.pid, "VmHWM") or 0)
            if time.monotonic() - t0 > 60:
                die(f"{self.mode}: mdt still runs 60 s after the stop")
            time.sleep(0.005)
        self.stop_s = time.monotonic() - t0
        if self.p:
            self.p.wait()
        else:
            subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True)
        self.load.send_signal(signal.SIGINT)
        out, _ = self.load.communicate(timeout=30)
        m = re.search(r"deletes=(\d+)", out)
        self.load_deletes = int(m.group(1)) if m else None

    def facts(self):
        err = self.err.read_text()
        f = {"mode": self.mode, "seconds": self.elapsed, "stop_ms": 1000 * self.stop_s,
             "peak_rss_mib": (self.hwm or 0) / 1024, "cpu_s": self.cpu_s}
        vals = [kib for _, kib in self.rss if kib]
        quarter = [kib for t, kib in self.rss if kib and t >= self.seconds / 4]
        f["rss_warm_mib"] = (quarter[0] if quarter else 0) / 1024
        f["rss_end_mib"] = (vals[-1] if vals else 0) / 1024
        deletes = records = lost = None
        if self.mode == "json-file":
            s = last_json_line(self.tmp / "out")
            deletes, records, lost = s["deletes"] + s["clears"], s["records"], s["lost"]
            f["out_bytes"] = (self.tmp / "out").stat().st_size  # apparent size
            (self.tmp / "out").unlink()
        elif self.mode == "tui":
            s = next(filter(None, map(summary_numbers, err.splitlines())), None)
            if s:
                deletes, records, lost = s["deletes"] + s["clears"], s["records"], s["lost"]
        elif self.mode == "json-null":
            k = self.stats_before_stop or {}
            records, lost = k.get("submitted"), k.get("lost")
            deletes = (records or 0) + (lost or 0) if records is not None else None
        else:
            m = re.search(r"(\d+) deletes", err)
            deletes = int(m.group(1)) if m else None
        f.update(deletes=deletes, records=records, lost=lost)
        f["deletes_per_s"] = deletes / self.elapsed if deletes else None
        f["records_per_s"] = records / self.elapsed if records is not None else None
        f["lost_share"] = lost / deletes if lost is not None and deletes else None
        return f


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30, help="length of each mode's run")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {MODES}")
    ap.add_argument("--no-build", action="store_true", help="use target/release/mdt as it is")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            die(f"unknown mode {m} (of {MODES})")
    if os.geteuid() != 0:
        die("needs root (uprobes, BPF)")
    if "tui" in modes and not shutil.which("tmux"):
        die("tmux not found (bash scripts/install-deps.sh installs it)")
    if "json-null" in modes and not shutil.which("bpftool"):
        die("bpftool not found (bash scripts/install-deps.sh installs it)")
    WORK.mkdir(parents=True, exist_ok=True)
    mdt = bench.build_mdt(args.no_build)
    # A private copy: its path names mdt's process for the TUI mode.
    copy = WORK / "mdt"
    shutil.copy(mdt, copy)
    load_bin = build_newstacks(bench.newest_go())
    mach = bench.machine()
    results = []
    for mode in modes:
        r = Run(mode, copy, load_bin, args.seconds)
        r.start()
        r.sample()
        r.stop()
        f = r.facts()
        results.append(f)
        log(f"newstacks: {mode}: {json.dumps(f)}")

    out = [f"mdt under a new stack per delete (fixtures/newstacks, 1 goroutine), "
           f"{args.seconds:.0f} s per mode, defaults",
           f"machine: {mach['cpu']}, {mach['cores']} cores, kernel {mach['kernel']}; "
           f"mdt {mach['mdt_commit']}", "",
           f"{'mode':<10}{'deletes/s':>11}{'records/s':>11}{'lost':>8}"
           f"{'RSS warm':>10}{'RSS end':>9}{'peak':>7}{'stop':>8}  (MiB, ms)"]
    for f in results:
        def num(v, fmt):
            return "-" if v is None else format(v, fmt)
        out.append(f"{f['mode']:<10}{num(f['deletes_per_s'], ',.0f'):>11}"
                   f"{num(f['records_per_s'], ',.0f'):>11}"
                   f"{num(None if f['lost_share'] is None else 100 * f['lost_share'], '.0f') + '%':>8}"
                   f"{f['rss_warm_mib']:>10.0f}{f['rss_end_mib']:>9.0f}{f['peak_rss_mib']:>7.0f}"
                   f"{f['stop_ms']:>8.0f}")
    print("\n".join(out), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": mach, "args": vars(args),
                                               "results": results}, indent=2, default=str))


if __name__ == "__main__":
    main()

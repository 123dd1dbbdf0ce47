#!/usr/bin/env python3
"""mdt performance benchmark (issue 3). Run it as `bash bench/run.sh`; docs/performance.md
explains the rows and holds the last results.

One run, one workload process, so every ratio is against a baseline of the same run:

  * builds fixtures/loop (newest Go toolchain in .cache/go, unstripped) and starts it in -serve
    mode: it stays alive and, on command, deletes (and re-inserts) string keys in a tight loop
    from a call depth of ~20 frames for a fixed time, then reports the deletes, the wall time
    and its thread's CPU time (the default metric: it includes the kernel's uprobe and BPF work
    and excludes time spent preempted, so it holds up on a busy machine);
  * for every configuration -- (a) nothing attached, (b) the empty uprobe (the floor: bpftrace
    `{ }`), (c) mdt at full capture, (l) the same with --no-labels, (k) the same with 3 pprof
    labels on the deleting goroutine, (d) mdt --sample 0.01, (g) mdt metrics only (--quiet
    --prometheus --no-latency: no records), (h) mdt --latency (outcome and latency of every
    call: a second uprobe on each exit), (j) metrics with --latency, (z) the floor of (h) and
    (j): empty uprobes at the entry instruction and at every exit point, (e) bpftrace count, (f)
    bpftrace ustack, and for reference (x) a tracefs uprobe event with recording off and (y)
    the empty uprobe at the function's entry -- attaches the tracer, waits until it is armed,
    runs one timed phase, detaches; repeated --reps times in a rotating order, median;
  * every probe but (y) sits at the same instruction: the one mdt uses, entry + probe_offset of
    the delete function (after the stack-growth check). bpftrace cannot place a uprobe at
    symbol+offset here (built without "unsafe uprobe" support), so the benchmark's copy of the
    workload gets one extra ELF symbol, `mdtbench_probe`, at exactly that address;
  * mdt's lost events at the highest rate: mdt as in (c), JSON to /dev/null, and its count of
    lost events read from its own BPF counters (bpftool) just before it is stopped;
  * mdt's attach time on a large stripped Go binary (a `strip`ped copy of the toolchain's own
    `go` command), in launch mode and with -p.

Python 3 standard library only. Needs root, tracefs, bpftrace, binutils (objcopy, strip,
readelf); bpftool for the lost-events count (else mdt writes to a file on /dev/shm).
"""

import argparse
import atexit
import json
import os
import platform
import queue
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Everything a run builds or writes lives in a directory of its own, removed at exit: two
# benchmark runs at the same time (other sessions, CI) must not replace each other's workload
# binary -- a uprobe is attached to a file's inode, so a tracer attaching by path to a rebuilt
# file would probe another run's workload.
WORK = REPO / "target" / "bench" / f"run-{os.getpid()}"


def _remove_work():
    shutil.rmtree(WORK, ignore_errors=True)


atexit.register(_remove_work)
TRACEFS = Path("/sys/kernel/tracing")
GROUP = "mdtbench"  # tracefs event group and instance name
PROBE_SYM = "mdtbench_probe"
EXIT_SYM = "mdtbench_exit"  # + the exit point's index

# The targets: mdt's added cost per delete as a multiple of the floor's added cost.
TARGET_FULL = 1.25
TARGET_SAMPLE = 1.03

# What a phase's "ns" is: "cpu" = CPU time of the workload thread (includes the kernel's uprobe
# and BPF work, excludes time preempted by other processes), or "wall" = elapsed time.
METRIC = "cpu"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def die(msg):
    log(f"bench: {msg}")
    sys.exit(1)


def run(cmd, **kw):
    kw.setdefault("check", True)
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    try:
        return subprocess.run([str(c) for c in cmd], text=True, **kw)
    except subprocess.CalledProcessError as e:
        die(f"{' '.join(map(str, cmd))} failed ({e.returncode}):\n{e.stdout}\n{e.stderr}")


def median(xs):
    return statistics.median(xs) if xs else float("nan")


# ---------------------------------------------------------------------------------------------
# Setup: tools, builds, the machine


def newest_go():
    cands = []
    for d in (REPO / ".cache" / "go").glob("1.*"):
        go = d / "bin" / "go"
        m = re.fullmatch(r"1\.(\d+)", d.name)
        if m and go.is_file():
            cands.append((int(m.group(1)), go))
    if not cands:
        die("no Go toolchain in .cache/go (run scripts/go-toolchains.sh, or scripts/test.sh)")
    return max(cands)[1]


def go_env(go):
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOROOT", "GOOS", "GOARCH", "GOAMD64", "GOEXPERIMENT", "GOFLAGS",
                        "GOWORK", "GOBIN", "GODEBUG")}
    env.update(GOTOOLCHAIN="local", GOFLAGS="-mod=mod", GOPROXY="off", GOSUMDB="off",
               GO111MODULE="on", GOENV="off", GOWORK="off", CGO_ENABLED="0",
               GOCACHE=str(REPO / ".cache" / "gocache"), GOPATH=str(REPO / ".cache" / "gopath"),
               GOROOT=str(go.resolve().parent.parent))
    return env


def build_mdt(no_build):
    mdt = REPO / "target" / "release" / "mdt"
    if not no_build:
        log("bench: cargo build --release")
        run(["cargo", "build", "--release", "--locked"], cwd=REPO, stdout=None, stderr=None)
    if not mdt.is_file():
        die(f"{mdt} is missing (drop --no-build)")
    return mdt


def inspect(mdt, binary):
    return json.loads(run([mdt, "inspect", "--json", binary]).stdout)


def add_symbol(src, dst, name, address, text_addr):
    """Copy src to dst with a FUNC symbol `name` of size 1 at `address` (for bpftrace)."""
    run(["objcopy", f"--add-symbol={name}=.text:{address - text_addr:#x},global,function",
         src, dst])
    b = bytearray(dst.read_bytes())
    (shoff,) = struct.unpack_from("<Q", b, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", b, 0x3A)
    secs = [struct.unpack_from("<IIQQQQIIQQ", b, shoff + i * shentsize) for i in range(shnum)]
    for sh in secs:
        if sh[1] != 2:  # SHT_SYMTAB
            continue
        off, size, link, entsize = sh[4], sh[5], sh[6], sh[9]
        stroff = secs[link][4]
        for i in range(size // entsize):
            e = off + i * entsize
            (st_name,) = struct.unpack_from("<I", b, e)
            end = b.index(0, stroff + st_name)
            if bytes(b[stroff + st_name:end]) == name.encode():
                (value,) = struct.unpack_from("<Q", b, e + 8)
                if value != address:
                    die(f"objcopy put {name} at {value:#x}, not {address:#x}")
                struct.pack_into("<Q", b, e + 16, 1)  # st_size: bpftrace wants one
                dst.write_bytes(b)
                return
    die(f"objcopy did not add {name} to {dst}")


def build_workload(mdt, go, key):
    """fixtures/loop, unstripped, plus the probe symbol. Returns (binary, probed function)."""
    src = WORK / "loop.src"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for f in (REPO / "fixtures" / "loop").glob("*.go"):
        shutil.copy(f, src / f.name)
    (src / "go.mod").write_text("module mdtbench\n\ngo 1.21\n")
    plain = WORK / "loop.plain"
    log(f"bench: building fixtures/loop with {go}")
    run([go, "build", "-buildvcs=false", "-o", plain, "."], cwd=src, env=go_env(go))
    info = inspect(mdt, plain)
    want = {"string": "runtime.mapdelete_faststr", "int64": "runtime.mapdelete_fast64",
            "struct": "runtime.mapdelete"}[key]
    funcs = {f["name"]: f for f in info["functions"]}
    if want not in funcs or not funcs[want]["attach"]:
        die(f"{plain}: mdt does not attach to {want}: {sorted(funcs)}")
    f = funcs[want]
    text = run(["readelf", "-SW", plain]).stdout
    m = re.search(r"\]\s+\.text\s+PROGBITS\s+([0-9a-f]+)", text)
    if not m:
        die(f"{plain}: no .text section")
    binary = WORK / "loop"
    text_addr = int(m.group(1), 16)
    add_symbol(plain, binary, PROBE_SYM, f["address"] + f["probe_offset"], text_addr)
    # One symbol per exit point mdt probes with --latency, for the empty uprobes of row (z).
    for i, x in enumerate(f.get("exit_points", [])):
        staged = WORK / "loop.staged"
        shutil.copy(binary, staged)
        add_symbol(staged, binary, f"{EXIT_SYM}{i}", f["address"] + x["offset"], text_addr)
    binary.chmod(0o755)
    info = inspect(mdt, binary)
    f = {g["name"]: g for g in info["functions"]}[want]
    return binary, info, f


def machine():
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    hv = ""
    try:
        out = run(["lscpu"], check=False).stdout
        m = re.search(r"Hypervisor vendor:\s*(\S+)", out)
        hv = m.group(1) if m else ""
    except FileNotFoundError:
        pass
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) // 1024
    rev = run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, check=False).stdout.strip()
    dirty = run(["git", "status", "--porcelain", "--", "src", "bpf"], cwd=REPO,
                check=False).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "hypervisor": hv or "none",
        "memory_mib": mem,
        "kernel": platform.release(),
        "mdt_commit": rev + ("+dirty(src/bpf)" if dirty else ""),
        "bpftrace": run(["bpftrace", "--version"], check=False).stdout.strip(),
    }


# ---------------------------------------------------------------------------------------------
# The workload


class Workload:
    def __init__(self, binary, key, depth):
        self.p = subprocess.Popen([str(binary), "-serve", "-key", key, "-depth", str(depth)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  bufsize=1)
        line = self.p.stdout.readline()
        m = re.match(r"ready pid=(\d+)", line)
        if not m:
            die(f"workload did not start: {line!r}")
        self.pid = int(m.group(1))

    def phase(self, ms):
        self.start_phase(ms)
        return self.end_phase()

    def start_phase(self, ms):
        self.p.stdin.write(f"run {ms}\n")
        self.p.stdin.flush()

    def end_phase(self):
        """Waits for the phase's report: (deletes, ns) -- ns per METRIC."""
        line = self.p.stdout.readline()
        m = re.match(r"phase: n=(\d+) ns=(\d+) cpu_ns=(\d+)", line)
        if not m:
            die(f"workload: unexpected {line!r}")
        n, wall, cpu = int(m.group(1)), int(m.group(2)), int(m.group(3))
        self.last = {"n": n, "wall_ns": wall, "cpu_ns": cpu}
        return n, (cpu if METRIC == "cpu" else wall)

    def set_labels(self, n):
        """Gives the deleting goroutine n pprof labels (0: none)."""
        self.p.stdin.write(f"labels {n}\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if line.strip() != f"labels: {n}":
            die(f"workload: unexpected {line!r} after `labels {n}`")

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write("quit\n")
                self.p.stdin.close()
                self.p.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()


# ---------------------------------------------------------------------------------------------
# Tracers: start() returns once the probe is armed; stop() detaches and returns facts.


class Nothing:
    label = "nothing attached"

    def start(self):
        pass

    def stop(self):
        return {}


def write_tracefs(path, text, append=False):
    fd = os.open(path, os.O_WRONLY | (os.O_APPEND if append else os.O_TRUNC))
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


class Floor:
    """A uprobe without BPF: a tracefs uprobe event at a file offset, enabled in a private
    tracefs instance whose recording is off. The kernel takes the trap and runs the uprobe
    dispatch, and nothing is recorded or run (no BPF, no ring buffer write)."""

    EVENTS = ("floor", "entry")

    def __init__(self, binary, file_offset, event="floor", label="empty uprobe (floor)"):
        self.event, self.label = event, label
        self.spec = f"p:{GROUP}/{event} {binary}:{file_offset:#x}\n"
        self.inst = TRACEFS / "instances" / GROUP

    @classmethod
    def cleanup(cls):
        inst = TRACEFS / "instances" / GROUP
        if inst.exists():
            for ev in cls.EVENTS:
                en = inst / "events" / GROUP / ev / "enable"
                if en.exists():
                    write_tracefs(en, "0")
            inst.rmdir()
        for ev in cls.EVENTS:
            if (TRACEFS / "events" / GROUP / ev).exists():
                write_tracefs(TRACEFS / "uprobe_events", f"-:{GROUP}/{ev}\n", append=True)

    def start(self):
        self.cleanup()
        write_tracefs(TRACEFS / "uprobe_events", self.spec, append=True)
        self.inst.mkdir()
        write_tracefs(self.inst / "tracing_on", "0")
        write_tracefs(self.inst / "events" / GROUP / self.event / "enable", "1")

    def stop(self):
        self.cleanup()
        return {}


def lines_to_queue(stream, q, keep=None):
    for line in iter(stream.readline, ""):
        q.put(line)
        if keep is not None:
            keep.append(line)
    q.put(None)


def wait_for(q, pattern, timeout, what):
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            die(f"{what}: not ready after {timeout} s; output: {''.join(seen)[-2000:]}")
        try:
            line = q.get(timeout=left)
        except queue.Empty:
            continue
        if line is None:
            die(f"{what} exited before it was ready; output: {''.join(seen)[-2000:]}")
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m


def cpu_seconds(pid):
    """utime + stime of a live process, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def mdt_stat_index(name):
    """The value of an enum mdt_stat member in bpf/mdt.h (the slot in mdt's "stats" map)."""
    m = re.search(rf"\b{name}\s*=\s*(\d+)", (REPO / "bpf" / "mdt.h").read_text())
    if not m:
        die(f"bpf/mdt.h has no {name}")
    return int(m.group(1))


def mdt_kernel_stats(pid):
    """mdt's own BPF counters, read from the maps its process holds (bpftool): events lost
    because the ring buffer was full, and events submitted; None if they cannot be read."""
    if not shutil.which("bpftool"):
        return None
    for fd in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            m = re.search(r"map_id:\s*(\d+)", fd.read_text())
        except OSError:
            continue
        if not m:
            continue
        show = subprocess.run(["bpftool", "-j", "map", "show", "id", m.group(1)],
                              capture_output=True, text=True)
        try:
            if show.returncode or json.loads(show.stdout).get("name") != "stats":
                continue
        except ValueError:
            continue
        out = {}
        for key, name in (("lost", "MDT_STAT_RINGBUF_FULL"), ("submitted", "MDT_STAT_SUBMITTED")):
            idx = mdt_stat_index(name)
            r = subprocess.run(["bpftool", "-j", "map", "lookup", "id", m.group(1), "key",
                                *(str(b) for b in idx.to_bytes(4, "little"))],
                               capture_output=True, text=True)
            try:
                vals = json.loads(r.stdout)["formatted"]["values"]
                out[key] = sum(int(v["value"]) for v in vals)
            except (ValueError, KeyError, TypeError):
                return None
        return out
    return None


class Labeled:
    """A tracer measured while the deleting goroutine carries `n` pprof labels."""

    def __init__(self, tracer, n):
        self.tracer, self.goroutine_labels = tracer, n
        self.label, self.cmd = tracer.label, tracer.cmd

    def start(self):
        self.tracer.start()

    def stop(self):
        return self.tracer.stop()

    @property
    def p(self):
        return self.tracer.p


class Mdt:
    def __init__(self, mdt, pid, extra, label, out_file=None, kernel_stats=False):
        """stdout on /dev/null, or with out_file `-o out_file` (read back at stop).
        kernel_stats: read mdt's BPF counters (bpftool) just before stopping it."""
        self.cmd = [str(mdt), "trace", "-p", str(pid), "--json", *extra]
        self.label, self.out_file, self.kernel_stats = label, out_file, kernel_stats
        if out_file:
            self.cmd += ["-o", str(out_file)]

    def start(self):
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL,  # `> /dev/null`
                                  stderr=subprocess.PIPE, text=True)
        self.q, self.err = queue.Queue(), []
        threading.Thread(target=lines_to_queue, args=(self.p.stderr, self.q, self.err),
                         daemon=True).start()
        m = wait_for(self.q, r"mdt: tracing pid \d+ \(.*attached in (\d+) ms\)", 60, "mdt")
        self.ready_s = time.monotonic() - self.t0
        self.attach_ms = int(m.group(1))
        self.cpu0 = cpu_seconds(self.p.pid)
        self.t_armed = time.monotonic()

    def stop(self):
        cpu = cpu_seconds(self.p.pid) - self.cpu0
        armed = time.monotonic() - self.t_armed
        kstats = mdt_kernel_stats(self.p.pid) if self.kernel_stats else None
        self.p.send_signal(signal.SIGINT)
        try:
            rc = self.p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            die(f"mdt did not exit within 60 s of SIGINT: {''.join(self.err)[-2000:]}")
        if rc != 0:
            die(f"mdt exited {rc}: {''.join(self.err)[-2000:]}")
        facts = {"ready_s": self.ready_s, "attach_ms": self.attach_ms,
                 "cpu_s": cpu, "armed_s": armed}
        if kstats is not None:
            facts["kernel_stats"] = kstats
        if self.out_file:
            path = Path(self.out_file)
            try:
                size = path.stat().st_size
                with path.open("rb") as f:
                    f.seek(max(0, size - (1 << 16)))
                    last = f.read().splitlines()[-1]
                facts["summary"] = json.loads(last)
                facts["out_bytes"] = size
                facts["out_lines"] = (facts["summary"].get("records") or 0) + 1
            except (OSError, IndexError, ValueError) as e:
                log(f"bench: cannot read mdt's summary from {path}: {e}")
                facts["summary"], facts["out_bytes"], facts["out_lines"] = None, 0, 1
            finally:
                path.unlink(missing_ok=True)
        return facts


class MdtMetrics(Mdt):
    """`mdt trace -p PID --quiet --prometheus ADDR`: exact counts per call site in the
    kernel, no records at all."""

    def __init__(self, mdt, pid, label, extra=()):
        super().__init__(mdt, pid, [], label)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.cmd = [str(mdt), "trace", "-p", str(pid), "--quiet", "--prometheus",
                    f"127.0.0.1:{port}", *extra]


class Bpftrace:
    """bpftrace with one uprobe, by default on PROBE_SYM (the instruction mdt probes)."""

    def __init__(self, binary, body, label, symbol=PROBE_SYM, also=()):
        probes = ", ".join(f"uprobe:{binary}:{sym}" for sym in (symbol, *also))
        self.prog = (f"{probes} {body} "
                     'BEGIN { printf("mdtbench ready\\n"); }')
        self.label = label

    def start(self):
        self.p = subprocess.Popen(["bpftrace", "-e", self.prog], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.q, self.out, self.err = queue.Queue(), [], []
        threading.Thread(target=lines_to_queue, args=(self.p.stdout, self.q, self.out),
                         daemon=True).start()
        threading.Thread(target=lambda: self.err.extend(self.p.stderr), daemon=True).start()
        wait_for(self.q, r"mdtbench ready", 120, "bpftrace")

    def stop(self):
        # SIGINT makes bpftrace print its maps and exit. That usually takes 0.2 s, but can take
        # 10 s or more on a busy machine (detaching a uprobe waits for an RCU grace period):
        # wait, insist, then kill it; its probes go away with it either way.
        for sig, wait in ((signal.SIGINT, 20), (signal.SIGINT, 10), (signal.SIGKILL, 10)):
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                log(f"bench: {self.label}: bpftrace still running {wait} s after signal {sig}")
        time.sleep(0.05)
        text = "".join(self.out)
        counts = [int(x) for x in re.findall(r"(?:@c|\]): (\d+)", text)]
        return {"hits": sum(counts) if counts else None}


# ---------------------------------------------------------------------------------------------
# Measurements


def measure(workload, tracer, ms, settle):
    labels = getattr(tracer, "goroutine_labels", 0)
    if labels:
        workload.set_labels(labels)
    tracer.start()
    try:
        time.sleep(settle)
        n, ns = workload.phase(ms)
    finally:
        facts = tracer.stop()
        if labels:
            workload.set_labels(0)
    facts.update(n=n, ns=ns, ns_per_delete=ns / n,
                 wall_ns_per_delete=workload.last["wall_ns"] / n,
                 cpu_ns_per_delete=workload.last["cpu_ns"] / n)
    return facts


def prog_run_stats(pid):
    """(run_time_ns, run_cnt) summed over the BPF programs whose fds `pid` holds."""
    rt = cnt = 0
    for fd in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            text = fd.read_text()
        except OSError:
            continue
        m, n = re.search(r"run_time_ns:\s*(\d+)", text), re.search(r"run_cnt:\s*(\d+)", text)
        if "prog_type" in text and m and n:
            rt, cnt = rt + int(m.group(1)), cnt + int(n.group(1))
    return rt, cnt


def bpf_prog_time(workload, tracer, ms, settle):
    """One phase with kernel.bpf_stats_enabled=1: the BPF program's own run time per hit
    (the kernel's run_time_ns / run_cnt; the stats themselves add two clock reads per run)."""
    knob = Path("/proc/sys/kernel/bpf_stats_enabled")
    old = knob.read_text().strip()
    knob.write_text("1")
    labels = getattr(tracer, "goroutine_labels", 0)
    if labels:
        workload.set_labels(labels)
    try:
        tracer.start()
        try:
            time.sleep(settle)
            a = prog_run_stats(tracer.p.pid)
            n, ns = workload.phase(ms)
            b = prog_run_stats(tracer.p.pid)
        finally:
            tracer.stop()
    finally:
        knob.write_text(old)
        if labels:
            workload.set_labels(0)
    runs = b[1] - a[1]
    return {"ns_per_run": (b[0] - a[0]) / runs if runs else float("nan"), "runs": runs,
            "deletes": n, "ns_per_delete": ns / n}


def attach_times(mdt, go, runs):
    """mdt's attach time on a strip(1)ped copy of the toolchain's `go` command."""
    big = WORK / "go-stripped"
    run(["strip", "-o", big, go.resolve()])
    info = inspect(mdt, big)
    if not info.get("stripped"):
        die(f"{big} is not stripped?")
    res = {"binary": f"strip(1) copy of {go.resolve()} ({info.get('go_version') or info.get('version')})",
           "size_mib": big.stat().st_size / (1 << 20),
           "attach_points": sum(1 for f in info["functions"] if f["attach"]),
           "launch": [], "pid": []}
    env = go_env(go)

    # Launch mode: `mdt trace -- go-stripped version`; held before exec until armed.
    for _ in range(runs):
        t0 = time.monotonic()
        p = subprocess.Popen([str(mdt), "trace", "--json", "-o", "/dev/null", "--", str(big),
                              "version"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, env=env)
        q = queue.Queue()
        threading.Thread(target=lines_to_queue, args=(p.stderr, q), daemon=True).start()
        m = wait_for(q, r"mdt: tracing pid \d+ \(.*attached in (\d+) ms\)", 60, "mdt (launch)")
        res["launch"].append({"ready_s": time.monotonic() - t0, "attach_ms": int(m.group(1))})
        if p.wait(timeout=60) != 0:
            die("mdt trace -- go version failed")

    # -p: a live `go-stripped run sleeper.go` (cmd/go waits for its child, which waits for
    # end of input).
    sleeper = WORK / "sleeper"
    sleeper.mkdir(exist_ok=True)
    (sleeper / "main.go").write_text(
        'package main\n\nimport (\n\t"fmt"\n\t"io"\n\t"os"\n)\n\n'
        'func main() {\n\tfmt.Println("sleeping")\n\tio.Copy(io.Discard, os.Stdin)\n}\n')
    env = dict(env, GO111MODULE="off")
    g = subprocess.Popen([str(big), "run", str(sleeper / "main.go")], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         cwd=sleeper)
    try:
        line = g.stdout.readline()
        if "sleeping" not in line:
            die(f"go run sleeper: {line!r} {g.stderr.read() if g.poll() is not None else ''}")
        for _ in range(runs):
            t = Mdt(mdt, g.pid, ["-o", "/dev/null"], "attach")
            t.start()
            facts = t.stop()
            res["pid"].append({"ready_s": facts["ready_s"], "attach_ms": facts["attach_ms"]})
    finally:
        g.stdin.close()
        try:
            g.wait(timeout=30)
        except subprocess.TimeoutExpired:
            g.kill()
    return res


def ensure_tracefs():
    if (TRACEFS / "uprobe_events").exists():
        return False
    r = subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)], capture_output=True,
                       text=True)
    if r.returncode != 0 or not (TRACEFS / "uprobe_events").exists():
        die(f"tracefs is not mounted at {TRACEFS} and mounting it failed: {r.stderr.strip()}")
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5, help="measurements per row (median)")
    ap.add_argument("--phase-ms", type=int, default=1000, help="length of one timed phase")
    ap.add_argument("--settle", type=float, default=0.3,
                    help="seconds between a tracer being armed and the phase")
    ap.add_argument("--lost-ms", type=int, default=3000, help="length of the lost-events phase")
    ap.add_argument("--attach-runs", type=int, default=3)
    ap.add_argument("--key", choices=["string", "int64", "struct"], default="string")
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--no-build", action="store_true", help="use target/release/mdt as it is")
    ap.add_argument("--metric", choices=["cpu", "wall"], default="cpu",
                    help="ns per delete from the workload thread's CPU time (default; robust "
                         "to other load) or from wall time")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args()
    global METRIC
    METRIC = args.metric

    if os.geteuid() != 0:
        die("needs root (uprobes, BPF)")
    for tool in ("bpftrace", "objcopy", "strip", "readelf"):
        if not shutil.which(tool):
            die(f"{tool} not found (bash scripts/install-deps.sh installs it)")
    began = time.monotonic()
    load_before = os.getloadavg()  # before this script's own builds and processes
    WORK.mkdir(parents=True, exist_ok=True)
    mounted = ensure_tracefs()
    mdt = build_mdt(args.no_build)
    go = newest_go()
    binary, info, func = build_workload(mdt, go, args.key)
    probe_file_offset = func["file_offset"] + func["probe_offset"]
    mach = machine()
    mach["go"] = info.get("go_version") or str(info.get("version"))

    configs = [
        ("a", Nothing()),
        ("b", Bpftrace(binary, "{ }", "empty uprobe (floor): bpftrace { }")),
        ("c", Mdt(mdt, 0, [], "mdt trace --json > /dev/null")),
        ("d", Mdt(mdt, 0, ["--sample", "0.01"], "mdt trace --json --sample 0.01 > /dev/null")),
        ("g", MdtMetrics(mdt, 0, "mdt trace --quiet --prometheus --no-latency (metrics only)",
                         ["--no-latency"])),
        # Outcome and latency on every call: a second uprobe, on each exit of the function
        # (docs/performance.md, "What a delete did"). (z) is its floor: the empty uprobe at
        # the same entry instruction and at the same exits.
        ("h", Mdt(mdt, 0, ["--latency"], "mdt trace --json --latency > /dev/null")),
        ("j", MdtMetrics(mdt, 0, "mdt trace --quiet --prometheus --latency", ["--latency"])),
        # Goroutine labels (docs/performance.md, "On whose behalf"): the workload links
        # runtime/pprof, so (c) reads g up to g.labels and finds none; (l) reads no labels at
        # all (the cost before labels existed); (k) is (c) with 3 labels on the goroutine.
        ("l", Mdt(mdt, 0, ["--no-labels"], "mdt trace --json --no-labels > /dev/null")),
        ("k", Labeled(Mdt(mdt, 0, [], "mdt trace --json, 3 labels on the goroutine"), 3)),
        ("z", Bpftrace(binary, "{ }", "empty uprobes at the entry and the exits",
                       also=[f"{EXIT_SYM}{i}" for i in range(len(func.get("exit_points", [])))])),
        ("e", Bpftrace(binary, "{ @c = count(); }", "bpftrace @c = count()")),
        ("f", Bpftrace(binary, "{ @[ustack] = count(); }", "bpftrace @[ustack] = count()")),
        # For reference, not targets: a uprobe with no BPF at all (a tracefs event, enabled
        # in a private instance with recording off), and the empty uprobe at the function's
        # entry, where `uprobe:BIN:runtime.mapdelete_faststr` lands.
        ("x", Floor(binary, probe_file_offset, "floor",
                    "tracefs uprobe event, nothing recorded")),
        ("y", Bpftrace(binary, "{ }", f"empty uprobe at the entry: {func['name']}+0",
                       symbol=func["name"])),
    ]
    results = {k: [] for k, _ in configs}
    workload = Workload(binary, args.key, args.depth)
    for k, t in configs:
        if isinstance(t, (Mdt, Labeled)):
            t.cmd[t.cmd.index("-p") + 1] = str(workload.pid)
    lost, prog = None, {}
    try:
        log(f"bench: workload pid {workload.pid}: {args.key} keys, depth {args.depth}; probing "
            f"{func['name']}+{func['probe_offset']} (file offset {probe_file_offset:#x})")
        workload.phase(1000)  # warm up
        for rep in range(args.reps):
            order = configs[rep % len(configs):] + configs[:rep % len(configs)]
            for k, t in order:
                facts = measure(workload, t, args.phase_ms, args.settle if k != "a" else 0)
                results[k].append(facts)
                extra = ""
                if facts.get("hits") is not None:
                    extra = f" (bpftrace hits {facts['hits']})"
                if "cpu_s" in facts:
                    extra = (f" (mdt ready in {facts['ready_s']:.2f} s, user space "
                             f"{100 * facts['cpu_s'] / facts['armed_s']:.0f}% of a CPU)")
                log(f"bench: rep {rep + 1}/{args.reps} ({k}) {t.label}: "
                    f"{facts['ns_per_delete']:.1f} ns/delete{extra}")

        # Lost events at the highest rate: full capture, exactly as (c), JSON to /dev/null; the
        # lost count is read from mdt's own BPF counters (bpftool) just before it is stopped.
        # Without bpftool: a file on tmpfs (a page-cache copy per record, a little dearer than
        # /dev/null), whose summary line is read back.
        if shutil.which("bpftool"):
            t = Mdt(mdt, workload.pid, [], "mdt trace --json > /dev/null", kernel_stats=True)
            sink = "/dev/null; lost read from mdt's BPF counters"
        else:
            out_file = Path("/dev/shm") / f"mdtbench-{os.getpid()}.jsonl"
            atexit.register(lambda: out_file.unlink(missing_ok=True))
            t = Mdt(mdt, workload.pid, [], "mdt trace --json -o /dev/shm/FILE", out_file=out_file)
            sink = "a file on tmpfs (/dev/shm)"
        # mdt attaches while the workload is already deleting at full speed, as it would to
        # a busy service: what is lost while it starts up counts too.
        workload.start_phase(args.lost_ms)
        time.sleep(0.2)
        t.start()
        n, ns = workload.end_phase()
        lost = t.stop()
        lost.update(n=n, wall_ns_per_delete=workload.last["wall_ns"] / n)
        lost["sink"] = sink
        ks = lost.get("kernel_stats") or lost.get("summary") or {}
        lost["lost"] = ks.get("lost")
        lost["records"] = ks.get("submitted", ks.get("records"))
        log(f"bench: lost check: {lost['n']} deletes at {lost['wall_ns_per_delete']:.1f} "
            f"wall ns/delete; records={lost['records']} lost={lost['lost']}")
        # Where mdt's cost goes: its BPF program's own run time per hit.
        prog = {}
        for k in ("b", "c", "l", "k", "d", "g", "e", "f"):
            t = dict(configs)[k]
            prog[k] = bpf_prog_time(workload, t, args.phase_ms, args.settle)
            log(f"bench: bpf stats ({k}) {t.label}: program {prog[k]['ns_per_run']:.0f} ns "
                f"per hit ({prog[k]['ns_per_delete']:.1f} ns/delete with stats on)")
    finally:
        workload.close()
        Floor.cleanup()

    log("bench: attach time on a large stripped binary")
    attach = attach_times(mdt, go, args.attach_runs)
    if mounted:
        subprocess.run(["umount", str(TRACEFS)], capture_output=True)
    took = time.monotonic() - began
    load_after = os.getloadavg()

    # ---- report
    med = {k: median([r["ns_per_delete"] for r in v]) for k, v in results.items()}
    wall = {k: median([r["wall_ns_per_delete"] for r in v]) for k, v in results.items()}
    base, floor = med["a"], med["b"]
    floor_added = floor - base
    labels = dict((k, t.label) for k, t in configs)
    targets = {"c": TARGET_FULL, "d": TARGET_SAMPLE}
    rows = []
    for k, _ in configs:
        xs = sorted(r["ns_per_delete"] for r in results[k])
        ratio = (med[k] - base) / floor_added if floor_added > 0 else float("nan")
        rows.append({"row": k, "label": labels[k], "ns_per_delete": med[k],
                     "added_ns": med[k] - base if k != "a" else None,
                     "ratio_to_floor": ratio if k != "a" else None,
                     "min": xs[0], "max": xs[-1], "runs": xs, "wall_ns_per_delete": wall[k]})
    ustack_ratio = (med["f"] - base) / floor_added if floor_added > 0 else float("nan")

    out = []
    p = out.append
    p(f"mdt benchmark: {METRIC} ns per map delete, median of {args.reps} phases of "
      f"{args.phase_ms} ms")
    p(f"machine: {mach['cpu']}, {mach['cores']} cores, hypervisor {mach['hypervisor']}, "
      f"{mach['memory_mib']} MiB, kernel {mach['kernel']}")
    p(f"mdt {mach['mdt_commit']}; workload {mach['go']}, {args.key} keys, depth "
      f"{args.depth}; every probe at {func['name']}+{func['probe_offset']} except (y); "
      f"{mach['bpftrace']}")
    p("")
    p(f"{'row':<4}{'configuration':<58}{'ns/delete':>10}{'added':>8}{'x floor':>9}"
      f"{'min..max':>14}{'wall ns':>9}  target (x floor)")
    for r in rows:
        k = r["row"]
        added = "" if r["added_ns"] is None else f"{r['added_ns']:.0f}"
        ratio = "" if r["ratio_to_floor"] is None else f"{r['ratio_to_floor']:.2f}"
        tgt = ""
        if k in targets:
            below = r["ratio_to_floor"] < ustack_ratio
            tgt = (f"<= {targets[k]:.2f}: " +
                   ("met" if r["ratio_to_floor"] <= targets[k] else
                    f"MISSED by {r['ratio_to_floor'] - targets[k]:.2f}") +
                   f"; < (f) {ustack_ratio:.2f}: " + ("met" if below else "MISSED"))
        spread = f"{r['min']:.0f}..{r['max']:.0f}"
        p(f"({k}) {r['label']:<58}{r['ns_per_delete']:>10.1f}{added:>8}{ratio:>9}"
          f"{spread:>14}{r['wall_ns_per_delete']:>9.0f}  {tgt}")
    p("added = ns/delete - (a); x floor = added / (b)'s added. (x) and (y) are for reference.")
    # What a delete did: the exit probes' cost, and the default it decides (issue 12).
    add = {k: med[k] - base for k in ("c", "g", "h", "j", "z", "k", "l")}
    # On whose behalf: the labels' cost (issue 14).
    p(f"labels: (c)-(l) = {add['c'] - add['l']:+.0f} ns per delete for reading g up to g.labels "
      f"and finding none ((c) = {add['c'] / add['l']:.3f}x (l)); 3 labels on the goroutine: "
      f"(k)-(c) = {add['k'] - add['c']:+.0f} ns ((k) = {add['k'] / add['c']:.2f}x (c))")
    if add["c"] > 0 and add["z"] > 0:
        vs_full = add["h"] / add["c"]
        p(f"outcome+latency: (h) adds {add['h']:.0f} ns = {vs_full:.2f}x full capture (c); "
          f"its floor (z), two empty uprobes, adds {add['z']:.0f} ns: (h) = "
          f"{add['h'] / add['z']:.2f}x (z); exits alone: (h)-(c) = {add['h'] - add['c']:.0f} "
          f"ns, (z)-(b) = {add['z'] - floor_added:.0f} ns")
        duty = add["g"] + 0.01 * (add["j"] - add["g"])
        p(f"  default: {'on for every call (<= 1.3x)' if vs_full <= 1.3 else 'opt-in --latency (> 1.3x)'}; "
          f"duty-cycled 1 s in 100 (--prometheus default): (g) + 1% x ((j) - (g)) = "
          f"{duty:.0f} ns added = {duty / floor_added:.2f}x floor ((j) armed: {add['j']:.0f} ns)")
    if prog:
        p("BPF program run time per hit (kernel.bpf_stats_enabled, one more phase each): " +
          ", ".join(f"({k}) {prog[k]['ns_per_run']:.0f} ns" for k in prog))
    p("")
    if lost:
        recs = lost.get("records") or 0
        n_lost = lost.get("lost")
        p(f"lost events at the highest rate (mdt trace --json at full capture, output to "
          f"{lost['sink']}; mdt started 0.2 s into a {args.lost_ms} ms phase of deletes):")
        traced = recs + (n_lost or 0)
        p(f"  while traced: {traced} deletes in {lost['armed_s']:.1f} s "
          f"({traced / lost['armed_s']:,.0f}/s); records={recs} lost={n_lost} -> "
          + ("OK (0 lost)" if n_lost == 0 else
             f"EVENTS LOST ({100 * n_lost / max(n_lost + recs, 1):.1f}%)" if n_lost else
             "unknown"))
        p(f"  mdt used {100 * lost['cpu_s'] / lost['armed_s']:.0f}% of a CPU, "
          f"{1e6 * lost['cpu_s'] / max(recs, 1):.1f} us of CPU per record")
    la = median([x["ready_s"] for x in attach["launch"]])
    pa = median([x["ready_s"] for x in attach["pid"]])
    p(f"attach time on {attach['binary']}: {attach['size_mib']:.1f} MiB, "
      f"{attach['attach_points']} attach points; median of {args.attach_runs}, from starting "
      f"mdt to its 'mdt: tracing' line (mdt's own figure in parentheses):")
    p(f"  launch mode (mdt trace -- go version): {la * 1000:.0f} ms "
      f"({median([x['attach_ms'] for x in attach['launch']]):.0f} ms); "
      f"-p (a running go run): {pa * 1000:.0f} ms "
      f"({median([x['attach_ms'] for x in attach['pid']]):.0f} ms)")
    quiet = load_before[0] <= 0.5 * mach["cores"]
    p(f"load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f} on "
      f"{mach['cores']} cores" + ("" if quiet else " -- the machine was busy: wall times and "
                                  "the lost-events check suffer most"))
    p(f"benchmark took {took:.0f} s")
    print("\n".join(out), flush=True)

    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": mach, "args": vars(args), "probe": func, "rows": rows,
            "raw": results, "lost": lost, "attach": attach, "took_s": took,
            "bpf_prog": prog, "load": [load_before, load_after],
        }, indent=2, default=str))



# =============================================================================================
# Flame step (issue 5, `mdt flame`), separate from main() above and run after it: what a
# flame-graph run costs the target, next to the trace's full capture, on a fresh workload of
# the same kind, measured the same way (rotating order, median). `mdt flame` counts stacks in
# the kernel and does nothing per delete in user space; the target is that its added cost per
# delete is no more than `mdt trace`'s at full capture. Also checks that the folded total is
# exactly the number of deletes the workload did while mdt was attached.


class MdtFlame(Mdt):
    """`mdt flame -p PID --format folded -o FILE`, stopped with SIGINT like the trace rows."""

    def __init__(self, mdt, pid, out, label):
        super().__init__(mdt, pid, [], label)
        self.cmd = [str(mdt), "flame", "-p", str(pid), "--format", "folded", "-o", str(out)]
        self.out = out

    def start(self):
        self.out.unlink(missing_ok=True)
        super().start()

    def stop(self):
        facts = super().stop()
        total = 0
        for line in self.out.read_text().splitlines():
            if line.strip():
                total += int(line.rsplit(" ", 1)[1])
        facts["folded_total"] = total
        return facts


def flame_step(args):
    mdt = build_mdt(True)  # main() built it
    go = newest_go()
    binary, _, func = build_workload(mdt, go, args.key)
    workload = Workload(binary, args.key, args.depth)
    configs = [
        ("a", Nothing()),
        ("c", Mdt(mdt, workload.pid, [], "mdt trace --json > /dev/null")),
        ("g", MdtFlame(mdt, workload.pid, WORK / "flame.folded", "mdt flame (kernel stack counts)")),
    ]
    results = {k: [] for k, _ in configs}
    prog = {}
    try:
        log(f"bench: flame step: workload pid {workload.pid}, probing {func['name']}")
        workload.phase(1000)  # warm up
        for rep in range(args.reps):
            order = configs[rep % len(configs):] + configs[:rep % len(configs)]
            for k, t in order:
                facts = measure(workload, t, args.phase_ms, args.settle if k != "a" else 0)
                results[k].append(facts)
                extra = ""
                if "folded_total" in facts:
                    extra = f" (folded total {facts['folded_total']} for {facts['n']} deletes)"
                log(f"bench: flame step: rep {rep + 1}/{args.reps} ({k}) {t.label}: "
                    f"{facts['ns_per_delete']:.1f} ns/delete{extra}")
        for k in ("c", "g"):
            t = dict(configs)[k]
            prog[k] = bpf_prog_time(workload, t, args.phase_ms, args.settle)
    finally:
        workload.close()

    med = {k: median([r["ns_per_delete"] for r in v]) for k, v in results.items()}
    added = {k: med[k] - med["a"] for k in ("c", "g")}
    ratio = added["g"] / added["c"] if added["c"] > 0 else float("nan")
    exact = [r["folded_total"] == r["n"] for r in results["g"]]
    out = ["", f"flame step: ns per map delete (median of {args.reps} phases of "
               f"{args.phase_ms} ms each, own workload)"]
    for k, t in configs:
        a = "" if k == "a" else f"{added[k]:>10.0f}"
        out.append(f"({k}) {t.label:<46}{med[k]:>10.1f}{a}")
    out.append(f"mdt flame's added cost / mdt trace's: {ratio:.2f} (target <= 1.00: "
               f"{'met' if ratio <= 1.0 else 'MISSED'})")
    out.append(f"folded total = deletes while attached: {sum(exact)}/{len(exact)} phases "
               f"{'OK' if all(exact) else 'MISMATCH: ' + str([(r['folded_total'], r['n']) for r in results['g']])}")
    out.append(f"BPF program run time per hit: flame {prog['g']['ns_per_run']:.0f} ns, "
               f"trace {prog['c']['ns_per_run']:.0f} ns (kernel.bpf_stats_enabled)")
    print("\n".join(out), flush=True)

    if args.json and Path(args.json).exists():
        data = json.loads(Path(args.json).read_text())
        data["flame"] = {"rows": {k: {"label": t.label, "ns_per_delete": med[k],
                                      "runs": [r["ns_per_delete"] for r in results[k]]}
                                  for k, t in configs},
                         "ratio_flame_to_trace": ratio, "exact": exact, "bpf_prog": prog}
        Path(args.json).write_text(json.dumps(data, indent=2, default=str))


def flame_main():
    # The options main() knows, parsed again (main() keeps its parser to itself).
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--phase-ms", type=int, default=1500)
    ap.add_argument("--settle", type=float, default=0.3)
    ap.add_argument("--key", choices=["string", "int64", "struct"], default="string")
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--json", metavar="FILE")
    args, _ = ap.parse_known_args()
    flame_step(args)


if __name__ == "__main__":
    main()
    flame_main()  # the flame step (see above)

#!/usr/bin/env python3
"""Compare mdt builds (or flag sets) against the floor on one workload: the quick loop behind
the "Where mdt's cost goes" tables of docs/performance.md.

    python3 bench/variants.py --mdt now=target/release/mdt --mdt old=/tmp/mdt-old \\
        --mdt 'sampled=target/release/mdt --sample 0.01' [--reps 5] [--phase-ms 1000] [--metrics]

Every --mdt is LABEL=PATH [EXTRA ARGS...]; each repetition runs the floor (bpftrace `{ }` on
the instruction mdt probes) and every variant once, in a rotating order. Prints the median CPU
ns per delete, the added cost as a multiple of the floor's, and each variant's BPF program run
time per hit (one more phase each with kernel.bpf_stats_enabled). Root, bpftrace, binutils.
"""

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the workload, tracers and measurements are bench.py's)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mdt", action="append", required=True, metavar="LABEL=PATH [ARGS]")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--phase-ms", type=int, default=1000)
    ap.add_argument("--settle", type=float, default=0.3)
    ap.add_argument("--key", choices=["string", "int64", "struct"], default="string")
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--no-prog-time", action="store_true", help="skip the bpf_stats phases")
    ap.add_argument("--metrics", action="store_true",
                    help="run each variant as `mdt trace --quiet --prometheus` (no records) "
                         "instead of `mdt trace --json`")
    args = ap.parse_args()
    if os.geteuid() != 0:
        bench.die("needs root (uprobes, BPF)")
    for tool in ("bpftrace", "objcopy", "readelf"):
        if not shutil.which(tool):
            bench.die(f"{tool} not found (bash scripts/install-deps.sh installs it)")

    variants = []
    for spec in args.mdt:
        label, _, rest = spec.partition("=")
        words = shlex.split(rest)
        if not label or not words or not Path(words[0]).is_file():
            bench.die(f"--mdt {spec!r}: want LABEL=PATH [ARGS...] with an existing PATH")
        variants.append((label, Path(words[0]).resolve(), words[1:]))

    bench.WORK.mkdir(parents=True, exist_ok=True)
    mounted = bench.ensure_tracefs()
    go = bench.newest_go()
    binary, _, func = bench.build_workload(variants[0][1], go, args.key)
    workload = bench.Workload(binary, args.key, args.depth)
    configs = [("nothing", bench.Nothing()),
               ("floor", bench.Bpftrace(binary, "{ }", "empty uprobe (floor)"))]
    if args.metrics:
        configs += [(label, bench.MdtMetrics(path, workload.pid, label, extra))
                    for label, path, extra in variants]
    else:
        configs += [(label, bench.Mdt(path, workload.pid, extra, label))
                    for label, path, extra in variants]
    results = {k: [] for k, _ in configs}
    prog = {}
    try:
        bench.log(f"variants: workload pid {workload.pid}, probing "
                  f"{func['name']}+{func['probe_offset']}")
        workload.phase(1000)
        for rep in range(args.reps):
            order = configs[rep % len(configs):] + configs[:rep % len(configs)]
            for k, t in order:
                settle = args.settle if k != "nothing" else 0
                facts = bench.measure(workload, t, args.phase_ms, settle)
                results[k].append(facts["ns_per_delete"])
                bench.log(f"variants: rep {rep + 1} {k}: {facts['ns_per_delete']:.1f} ns")
        if not args.no_prog_time:
            for k, t in configs[1:]:
                prog[k] = bench.bpf_prog_time(workload, t, args.phase_ms, args.settle)
    finally:
        workload.close()
        if mounted:
            bench.subprocess.run(["umount", str(bench.TRACEFS)], capture_output=True)

    med = {k: bench.median(v) for k, v in results.items()}
    base, floor_added = med["nothing"], med["floor"] - med["nothing"]
    print(f"{'variant':<16}{'ns/delete':>10}{'added':>8}{'x floor':>9}{'min..max':>14}"
          f"{'bpf ns/hit':>12}")
    for k, _ in configs:
        xs = sorted(results[k])
        added = med[k] - base
        ratio = added / floor_added if floor_added > 0 and k != "nothing" else float("nan")
        p = prog.get(k, {}).get("ns_per_run", float("nan"))
        print(f"{k:<16}{med[k]:>10.1f}{added:>8.0f}{ratio:>9.2f}"
              f"{f'{xs[0]:.0f}..{xs[-1]:.0f}':>14}{p:>12.0f}")


if __name__ == "__main__":
    main()

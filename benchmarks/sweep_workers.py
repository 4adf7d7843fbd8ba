"""Wall time of ``attnflow sweep`` on a LocalCluster of 1 worker against 2 (or --workers).

Runs the sweep (default: the tiny encoder's 60 points, examples/sweeps/encoder_tiny_dse.yaml)
as the command line does, each run into a fresh folder (nothing cached), the worker
counts in turn (1, 2, 1, 2, ...) so a change of the machine's load hits both, and prints
per run: workers, wall seconds (the whole command: cluster start-up included), the
1-minute load average before and after, points ok / failed, golden mismatches summed over
the simulated points, and whether results.csv is byte-identical to the first run's. Then
the median wall per worker count and the ratio to the first count's median.

Usage: python benchmarks/sweep_workers.py [--sweep FILE] [--workers 1 2] [--repeats 2]
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(sweep: Path, out: Path, workers: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    load_before = os.getloadavg()[0]
    cmd = [sys.executable, "-m", "attnflow.cli", "sweep", str(sweep), "-o", str(out),
           "--workers", str(workers)]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"sweep failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {"workers": workers, "wall": wall, "load_before": load_before,
            "load_after": os.getloadavg()[0], "rows": rows,
            "ok": sum(r["status"] == "ok" for r in rows),
            "mismatches": sum(int(r["golden_mismatches"] or 0) for r in rows),
            "simulated": sum(r["cycles"] != "" for r in rows),
            "csv": (out / "results.csv").read_bytes()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweep", default=str(ROOT / "examples/sweeps/encoder_tiny_dse.yaml"))
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "build/bench_sweep_workers"))
    args = ap.parse_args()
    runs = []
    print("run | workers | wall s | load 1-min before / after | points ok / all | "
          "simulated points | golden mismatches | results.csv == first run's")
    print("|".join(["---"] * 8))
    for repeat in range(args.repeats):
        for w in args.workers:
            r = run_once(Path(args.sweep), Path(args.out) / f"w{w}", w)
            runs.append(r)
            same = r["csv"] == runs[0]["csv"]
            print(f"{len(runs)} | {w} | {r['wall']:.1f} | {r['load_before']:.2f} / "
                  f"{r['load_after']:.2f} | {r['ok']} / {len(r['rows'])} | {r['simulated']} | "
                  f"{r['mismatches']} | {'yes' if same else 'NO'}", flush=True)
    medians = {w: statistics.median(r["wall"] for r in runs if r["workers"] == w)
               for w in args.workers}
    base = args.workers[0]
    for w, m in medians.items():
        print(f"median wall, {w} worker(s): {m:.1f} s; {base} / {w} workers: "
              f"{medians[base] / m:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

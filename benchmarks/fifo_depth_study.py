"""Reproduce the streaming-SDPA paper's FIFO result with the simulator.

For each N: the naive variant deadlocks when its row bypass FIFO (s_b, then e_b) is
shallower than a row, and needs about N + the latencies around it for full throughput;
the online variant runs at full throughput with depths that do not change with N.
Required depths are found by search (a monotone predicate over the depth), not assumed.

    python benchmarks/fifo_depth_study.py [--n 16 64 256 1024] [--markdown]
"""
from __future__ import annotations

import argparse
import time

from attnflow.api import prepare
from attnflow.ir.spec import load_spec
from attnflow.mappers.catalog import latency

SPEC = "examples/sdpa_online.yaml"


def run(variant, n, depths):
    over = [f"hardware.fifo_depths.{c}={v}" for c, v in depths.items()]
    spec = load_spec(SPEC, [f"model.seq_len={n}", "model.head_dim=4",
                            f"model.attention.variant={variant}", *over])
    design = prepare(spec)
    res = design.simulate()
    return design, res


def least(lo, hi, ok):
    """Smallest depth in [lo, hi] with ok(depth) (ok monotone, ok(hi) true)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def study(n):
    row = {"N": n}
    # naive
    base_design, base = run("naive", n, {})
    assert base.deadlock is None
    mapper = {c: base_design.hw.channels[c].depth for c in ("s_b", "e_b")}
    for ch in ("s_b", "e_b"):
        no_dl = least(1, mapper[ch], lambda dep: run("naive", n, {ch: dep})[1].deadlock is None)
        full = least(no_dl, mapper[ch],
                     lambda dep: run("naive", n, {ch: dep})[1].total_cycles == base.total_cycles)
        dl = run("naive", n, {ch: no_dl - 1})[1].deadlock if no_dl > 1 else None
        row[f"naive_{ch}_no_deadlock"] = no_dl
        row[f"naive_{ch}_full_rate"] = full
        row[f"naive_{ch}_deadlock_msg"] = dl.describe() if dl else ""
    row["naive_cycles"] = base.total_cycles
    # online: least depth per internal channel for full rate, others at the mapper's
    od, ores = run("online", n, {})
    need = {}
    for ch in ("s", "vr", "ol"):
        need[ch] = least(1, od.hw.channels[ch].depth,
                         lambda dep: run("online", n, {ch: dep})[1].total_cycles == ores.total_cycles)
    row["online_depths"] = need
    row["online_cycles"] = ores.total_cycles
    fill_online = 1 + latency("qk_scores") + latency("online_softmax_pv") + latency("normalize")
    row["fill"] = n + fill_online   # K/V load + pipeline latency
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[16, 64, 256, 1024])
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args()
    rows = []
    for n in args.n:
        t = time.perf_counter()
        rows.append(study(n))
        print(f"# N={n} studied in {time.perf_counter() - t:.1f} s", flush=True)
    print()
    print("| N | naive s_b: least depth w/o deadlock | naive s_b: least depth at full rate | "
          "naive e_b: w/o deadlock | naive e_b: full rate | naive cycles | "
          "online least depths (s, vr, ol) | online cycles | N*N + fill | "
          "naive / (N*N+fill) | online / (N*N+fill) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ideal = r["N"] ** 2 + r["fill"]
        od = r["online_depths"]
        print(f"| {r['N']} | {r['naive_s_b_no_deadlock']} | {r['naive_s_b_full_rate']} | "
              f"{r['naive_e_b_no_deadlock']} | {r['naive_e_b_full_rate']} | {r['naive_cycles']} | "
              f"{od['s']}, {od['vr']}, {od['ol']} | {r['online_cycles']} | {ideal} | "
              f"{r['naive_cycles'] / ideal:.4f} | {r['online_cycles'] / ideal:.4f} |")
    print()
    print("deadlock report with s_b one below its least depth, N =", rows[0]["N"], ":")
    print(rows[0]["naive_s_b_deadlock_msg"])


if __name__ == "__main__":
    main()

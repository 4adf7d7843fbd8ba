"""Attention lanes of one full online head: cycles against multipliers and estimated
resources as the lanes (scores per cycle) grow, from the simulator (fast engine) and the
resource estimate; every output is checked against the golden model, and the cycles
against the closed form N + N * ceil(N / lanes) + 9; then a window head (w' + N *
ceil((2w' + 1) / lanes) + 9); then the mapper's own choice of lanes for a cycle target
(hardware.target_cycles) at each N.

Usage: python benchmarks/lanes_study.py [--n 256 1024] [--lanes 1 2 4 8 16] [--d 16]
       [--device u280] [--window 32] [--window-n 4096]
"""
from __future__ import annotations

import argparse

import numpy as np

from attnflow.api import prepare
from attnflow.build import node_costs
from attnflow.mappers.window import window_fill
from attnflow.ir.spec import spec_from_dict
from attnflow.mappers.sdpa import online_head_cycles
from attnflow.targets import estimate, load_device


def head(n, d, attention=None, hardware=None):
    return prepare(spec_from_dict({"model": {"seq_len": n, "head_dim": d,
                                             "attention": attention or {}},
                                   "hardware": hardware or {}}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="*", default=[256, 1024])
    ap.add_argument("--lanes", type=int, nargs="*", default=[1, 2, 4, 8, 16])
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--device", default="u280")
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--window-n", type=int, nargs="*", default=[4096])
    args = ap.parse_args()
    dev = load_device(args.device)
    print(f"one full online head, d = {args.d}; estimate on {dev.name}\n")
    print("| N | lanes | cycles | cycles vs 1 lane | multipliers | DSP | LUT | FF | "
          "golden mismatches |")
    print("|---|---|---|---|---|---|---|---|---|")
    bad = 0
    for n in args.n:
        base = None
        for lanes in args.lanes:
            d = head(n, args.d, {"lanes": lanes})
            r = d.simulate(engine="fast")
            mism = int(np.sum(r.outputs["o"]["x"] != d.golden()))
            bad += mism + (r.total_cycles != online_head_cycles(d.hw.numerics, lanes))
            base = base or r.total_cycles
            t = estimate(d.hw, dev).totals
            mult = sum(c["multipliers"] for c in node_costs(d.hw).values())
            print(f"| {n} | {lanes} | {r.total_cycles} | {base / r.total_cycles:.2f}x | "
                  f"{mult} | {t['DSP']} | {t['LUT']} | {t['FF']} | {mism} |")
    print(f"\nwindow attention (w = {args.window}) with lanes: cycles ~ N * (2w + 1) / lanes\n")
    print("| N | lanes | cycles | closed form | cycles vs 1 lane | multipliers | "
          "golden mismatches |")
    print("|---|---|---|---|---|---|---|")
    for n in args.window_n:
        base = None
        for lanes in args.lanes:
            d = head(n, args.d, {"kind": "window", "window": args.window, "lanes": lanes})
            r = d.simulate(engine="fast")
            mism = int(np.sum(r.outputs["o"]["x"] != d.golden()))
            w = min(args.window, n - 1)
            form = w + n * -(-(2 * w + 1) // lanes) + window_fill(d.hw.numerics, lanes)
            bad += mism + (r.total_cycles != form)
            base = base or r.total_cycles
            mult = sum(c["multipliers"] for c in node_costs(d.hw).values())
            print(f"| {n} | {lanes} | {r.total_cycles} | {form} | "
                  f"{base / r.total_cycles:.2f}x | {mult} | {mism} |")
    print("\nthe mapper's choice for hardware.target_cycles (fewest lanes meeting it):\n")
    print("| N | target cycles | lanes chosen | cycles |")
    print("|---|---|---|---|")
    for n in args.n:
        for frac in (0.5, 0.2, 0.1):
            target = int(online_head_cycles(head(n, args.d).hw.numerics, 1) * frac)
            d = head(n, args.d, hardware={"target_cycles": target})
            cyc = d.simulate(engine="fast").total_cycles
            bad += cyc > target
            print(f"| {n} | {target} | {d.hw.instances['qk'].param('lanes')} | {cyc} |")
    print("\nall outputs equal golden, all cycles as the closed form" if not bad
          else f"\n{bad} CHECKS FAILED")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Sliding-window, split-context and full attention on one head, in the simulator:
cycles and on-chip memory bits for N in {256, 1024, 4096}, window w in {32, 128}
(``|i - j| <= w``) and split-context with P in {2, 4} engines.

Full online attention loads all N K/V rows, then makes N*N scores: cycles ~ N*N, K/V
memory ~ N rows. Window attention keeps W = 2w + 1 rows in rings and makes N*W scores:
cycles ~ N*W, memory independent of N; the causal window (keys i - w .. i) keeps w + 1
rows and makes N*(w + 1) scores; causal attention without a window runs the blocked
triangle (``ir.window.causal_blocks``, about N(N + sqrt N)/2 slots). Every run is checked against the golden model, and its
cycle count against the closed form given the head's numerics (F: the head's fill; full:
``mappers.sdpa.online_head_cycles``; window: w + N*W + F; causal window: N*(w + 1) + F;
causal: sum over blocks of rows * block end + F; split: N + N*N/P + ``split_fill``, P a
power of two dividing N).

Usage: python benchmarks/window_study.py [--n 256 1024 4096] [--w 32 128] [--d 16]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from attnflow.api import prepare
from attnflow.build import node_costs
from attnflow.mappers.split import split_fill
from attnflow.mappers.window import window_fill
from attnflow.ir.spec import spec_from_dict
from attnflow.ir.window import effective_window
from attnflow.mappers.window import window_head_cycles
from attnflow.mappers.sdpa import online_head_cycles


def run(n: int, d: int, window: int | None, split: int | None = None,
        kind: str = "window") -> dict:
    att = ({"kind": kind, "window": window} if window else
           {"kind": "causal"} if kind == "causal" else {"kind": "full"})
    if split:
        att["split"] = split
    design = prepare(spec_from_dict({"model": {"seq_len": n, "head_dim": d,
                                               "attention": att}}))
    t = time.time()
    r = design.simulate()
    wall = time.time() - t
    assert r.deadlock is None
    mism = int(np.count_nonzero(r.outputs["o"]["x"] != design.golden()))
    nm = design.hw.numerics
    if window and kind == "causal":
        expect = n * (effective_window(window, n) + 1) + window_fill(nm)
    elif window:
        we = effective_window(window, n)
        expect = we + n * (2 * we + 1) + window_fill(nm)
    elif kind == "causal":
        expect = window_head_cycles(nm, None, "causal")
    elif split:
        expect = n + n * n // split + split_fill(split, nm)
    else:
        expect = online_head_cycles(nm)
    costs = node_costs(design.hw)
    tmpl = sum(costs[i]["memory_bits"] for i in design.hw.instances)
    fifo = sum(costs[c]["memory_bits"] for c in design.hw.channels)
    return {"cycles": r.total_cycles, "expect": expect, "mism": mism,
            "mem_templates": tmpl, "mem_fifos": fifo, "wall": wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="*", default=[256, 1024, 4096])
    ap.add_argument("--w", type=int, nargs="*", default=[32, 128])
    ap.add_argument("--p", type=int, nargs="*", default=[2, 4], help="split engines")
    ap.add_argument("--d", type=int, default=16)
    args = ap.parse_args()
    print(f"one head, d = {args.d}, 8-bit Q/K/V; memory = template memories (K/V stores or "
          f"rings, exp ROM) + FIFO storage, in bits\n")
    print("| N | attention | cycles | closed form | golden mismatches | memory bits "
          "(templates + FIFOs) | full / this (cycles) | sim wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.n:
        full = run(n, args.d, None)
        rows = ([("full", full)] + [(f"window w={w}", run(n, args.d, w)) for w in args.w]
                + [("causal (blocked triangle)", run(n, args.d, None, kind="causal"))]
                + [(f"causal window w={w}", run(n, args.d, w, kind="causal"))
                   for w in args.w]
                + [(f"split P={p}", run(n, args.d, None, p)) for p in args.p])
        for label, r in rows:
            assert r["cycles"] == r["expect"] and r["mism"] == 0, (n, label, r)
            print(f"| {n} | {label} | {r['cycles']} | {r['expect']} | {r['mism']} | "
                  f"{r['mem_templates']} + {r['mem_fifos']} | "
                  f"{full['cycles'] / r['cycles']:.1f}x | {r['wall']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

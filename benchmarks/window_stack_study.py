"""Window attention inside an encoder stack against full attention, in the simulator:
the stack of examples/encoder_tiny.yaml at d_model 16, d_ff 32 (2 layers, 2 heads),
N in {64, 128}, balanced folding and a 1500-multiplier budget (which picks lanes for the
window stack). Every run is checked against the golden model and the cycle model.

Usage: python benchmarks/window_stack_study.py [--n 64 128] [--w 4 8] [--budget 1500]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from attnflow.api import prepare
from attnflow.build import node_costs
from attnflow.ir.spec import load_spec

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "encoder_tiny.yaml"


def run(n: int, overrides: list) -> dict:
    d = prepare(load_spec(EXAMPLE, ["model.d_model=16", "model.d_ff=32", f"model.seq_len={n}",
                                    "inputs.range=1.0"] + overrides))
    r = d.simulate(engine="fast")
    mism = int(np.count_nonzero(r.outputs["y"]["x"] != d.golden()))
    costs = node_costs(d.hw)
    fifo = sum(costs[c]["memory_bits"] for c in d.hw.channels)
    kv = costs["l0_qk0"]["memory_bits"] + costs["l0_vstore0"]["memory_bits"]
    return {"design": d, "cycles": r.total_cycles, "model": d.folding.cycles, "mism": mism,
            "fifo": fifo, "kv": kv}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="*", default=[64, 128])
    ap.add_argument("--w", type=int, nargs="*", default=[4, 8])
    ap.add_argument("--budget", type=int, default=1500)
    args = ap.parse_args()
    print("| N | attention | folding | multipliers | cycles (model = simulated) | FIFO bits | "
          "K+V store per head (bits) |")
    print("|---|---|---|---|---|---|---|")
    bad = 0
    for n in args.n:
        b = f"hardware.multiplier_budget={args.budget}"
        rows = [("full", "balanced", ["hardware.multiplier_budget=null"])]
        rows += [(f"window w={w}", "balanced", ["hardware.multiplier_budget=null",
                                                "model.attention.kind=window",
                                                f"model.attention.window={w}"])
                 for w in args.w]
        rows += [("full", f"budget {args.budget}", [b])]
        rows += [(f"window w={args.w[0]}", f"budget {args.budget}",
                  [b, "model.attention.kind=window", f"model.attention.window={args.w[0]}"])]
        full = {}
        for label, how, ov in rows:
            r = run(n, ov)
            f = r["design"].folding
            bad += r["mism"] + (r["cycles"] != r["model"])
            full.setdefault(how, r["cycles"])
            fold = (f"{how} (period {f.period})" if how == "balanced" else
                    f"{how}" + (f" ({f.lanes} lanes, auto)" if f.lanes > 1 else ""))
            ratio = "" if label == "full" else f" ({full[how] / r['cycles']:.1f}x fewer)"
            print(f"| {n} | {label} | {fold} | {f.multipliers} | {r['cycles']}{ratio} | "
                  f"{r['fifo']} | {r['kv']} |", flush=True)
    print("\nall outputs equal golden, all cycles equal the model" if not bad
          else f"\n{bad} CHECKS FAILED")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Decode mode of one causal head in the simulator: cycles per generated token as the
context grows. For each prefill context C, a head with N = C + S positions generates S
tokens; the cycles between consecutive output tokens are the cost of one token at
context C + t + 1 (one score per cycle), checked against that closed form, and every
output equals the golden model. Memory: the KV cache (N rows of K and of V) plus the
rest of the templates and FIFOs.

Usage: python benchmarks/decode_study.py [--contexts 64 128 ... 2048] [--steps 4] [--d 16]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from attnflow.api import prepare
from attnflow.build import node_costs
from attnflow.ir.spec import spec_from_dict


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--contexts", type=int, nargs="*", default=[64, 128, 256, 512, 1024, 2048])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--d", type=int, default=16)
    args = ap.parse_args()
    print(f"one causal head, d = {args.d}, {args.steps} generated tokens after each prefill\n")
    print("| prefill C | cycles per token (steps 2..S) | closed form C + t + 1 | "
          "golden mismatches | KV cache bits | all memory bits | sim wall s |")
    print("|---|---|---|---|---|---|---|")
    for c in args.contexts:
        n = c + args.steps
        d = prepare(spec_from_dict({"model": {"seq_len": n, "head_dim": args.d, "attention":
                                              {"kind": "causal", "decode": args.steps}}}))
        t = time.time()
        r = d.simulate()
        wall = time.time() - t
        per = np.diff(r.output_cycles["o"]).tolist()
        expect = [c + k + 1 for k in range(1, args.steps)]
        mism = int(np.count_nonzero(r.outputs["o"]["x"] != d.golden()))
        assert per == expect and mism == 0, (c, per, expect, mism)
        costs = node_costs(d.hw)
        cache = costs["qk"]["memory_bits"] + costs["vstore"]["memory_bits"]
        total = sum(v["memory_bits"] for v in costs.values())
        print(f"| {c} | {', '.join(map(str, per))} | {', '.join(map(str, expect))} | {mism} | "
              f"{cache} | {total} | {wall:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

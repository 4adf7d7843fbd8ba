"""Pipeline balance of the automatic folding: measured cycles per sequence against the
bound set by the slowest node, for the bundled encoder examples.

For each example (its hardware.parallelism dropped, so every linear is folded
automatically) and each folding goal (balanced; a cycle target; a multiplier budget),
simulate one sequence and print:

* the folding's modelled cycles and the simulated cycles (they must agree);
* the slowest node (most firings: busy cycles at one firing per cycle) and its firings,
  the bound a perfectly overlapped pipeline would approach for back-to-back sequences;
* measured / slowest-node bound;
* the layer-serial bound: every layer's attention needs all N K rows before its first
  score, so one sequence costs at least, per layer, the K barrier plus N*N scores
  (layers cannot overlap beyond one row), which is what the ratio mostly reflects;
* back to back (``hardware.sequences`` S, default 8; ``mappers.sequences``): the
  interval between the last two sequences' ends (II) simulated, and II / slowest node;
  every sequence's end must equal the model's: one sequence's cycles, then one every
  II (the slowest node's firings).

Usage: python benchmarks/encoder_balance.py [--examples PATH ...] [--sequences S]
"""
from __future__ import annotations

import argparse
import time

from attnflow.api import prepare
from attnflow.ir.spec import HEAD_OPS, load_spec
from attnflow.mappers.folding import fires
from attnflow.mappers.sequences import interval_model, sequence_ends

EXAMPLES = ["examples/encoder_tiny.yaml", "examples/encoder_bert_tiny.yaml"]
#: every linear folded automatically, no goal from the example itself
AUTO = ["hardware.parallelism={}", "hardware.multiplier_budget=null",
        "hardware.target_cycles=null"]


def goals(spec_path: str) -> list[tuple[str, list[str]]]:
    base = prepare(load_spec(spec_path, AUTO))
    fast = base.folding.cycles
    return [("balanced", []),
            ("target 1.5x balanced", [f"hardware.target_cycles={int(1.5 * fast)}"]),
            ("budget 1/2 balanced", [f"hardware.multiplier_budget="
                                     f"{base.folding.multipliers // 2}"])]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", nargs="*", default=EXAMPLES)
    ap.add_argument("--sequences", type=int, default=8,
                    help="sequences back to back for the II columns (default 8)")
    args = ap.parse_args()
    print("example | goal | period (P, P0) | multipliers | model cycles | simulated | "
          "slowest node (firings) | measured / slowest | layer-serial bound | "
          f"measured / layer-serial | II ({args.sequences} back to back) | II / slowest")
    print("|".join(["---"] * 12))
    for path in args.examples:
        for label, extra in goals(path):
            t = time.time()
            d = prepare(load_spec(path, [*AUTO, *extra]))
            r = d.simulate()
            if r.deadlock:
                print(f"{path} | {label} | DEADLOCK: {r.deadlock.describe()}")
                continue
            m = d.spec.model
            n, L = m.seq_len, m.layers
            busy = {p.name: p.fires for p in r.process_stats() if p.name in d.hw.instances}
            slow = max(busy, key=busy.get)
            f = d.folding
            # one sequence, layers in series: layer 0's K barrier (N rows at F_qkv each),
            # then per layer N*N scores, plus nothing else (an unreachable floor)
            f_qkv0 = max(fires(m, op, f.foldings[0][op]) for op in HEAD_OPS)
            serial = n * f_qkv0 + L * n * n
            S = args.sequences
            b2b = prepare(load_spec(path, [*AUTO, *extra, f"hardware.sequences={S}"]))
            rb = b2b.simulate(engine="fast")
            ends = sequence_ends(b2b.hw, rb.output_cycles)
            ii, node = interval_model(b2b.hw)
            print(f"{d.spec.name} | {label} | ({f.period}, {f.barrier or f.period}) | "
                  f"{f.multipliers} | {f.cycles} | {r.total_cycles} | {slow} "
                  f"({busy[slow]}) | {r.total_cycles / busy[slow]:.2f} | {serial} | "
                  f"{r.total_cycles / serial:.2f} | {ends[-1] - ends[-2]} | "
                  f"{(ends[-1] - ends[-2]) / busy[slow]:.2f}   [{time.time() - t:.1f} s]")
            assert r.total_cycles == f.cycles, "cycle model and simulator disagree"
            assert ends.tolist() == [f.cycles - 1 + ii * s for s in range(S)], \
                f"back to back: simulated ends {ends.tolist()}, model {f.cycles - 1} + s x {ii}"
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

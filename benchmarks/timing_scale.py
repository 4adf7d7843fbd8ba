"""Peak memory of the fast timing engine alone on a real-sized checkpoint (the extra hf
makes them: ``benchmarks/hf_families.py``): the design prepared with fixed formats (no
calibration run, no values, no golden model), then ``sim.fast.run_timing_fast``; printed:
firings and kept firings, the simulator state the limits estimate, seconds, peak RSS of
the process after each step, total cycles. For sizes whose whole ``attnflow sim`` takes
long (GPT-2 small at N = 1024: ``benchmarks/real_size_sim.py`` runs that).

    python benchmarks/timing_scale.py --only gpt2_small --seq-len 1024
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from hf_families import MODELS, REAL, checkpoint  # noqa: E402


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6   # kbytes on Linux


def main(argv=None) -> int:
    from attnflow import limits
    from attnflow.api import prepare_for
    from attnflow.ir.spec import load_spec
    from attnflow.sim import schedule_from_spec
    from attnflow.sim.fast import kept_firings, run_timing_fast
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="gpt2_small", help="model name (default gpt2_small)")
    ap.add_argument("--seq-len", type=int)
    ap.add_argument("--set", action="append", default=[], help="spec overrides")
    args = ap.parse_args(argv)
    family, config, n = {**MODELS, **REAL}[args.only]
    n = args.seq_len or n
    folder = checkpoint(args.only, family, config)
    t = time.time()
    spec = load_spec(str(folder / "config.json"),
                     [f"model.seq_len={n}", "quantization.activations=fixed", *args.set])
    d = prepare_for(spec, None)
    insts = d.hw.instances.values()
    print(f"{args.only} N {n}: prepared in {time.time() - t:.0f} s, peak RSS "
          f"{peak_gb():.2f} GB; {sum(i.contract.fires for i in insts)} firings, "
          f"{sum(kept_firings(i.contract) for i in insts)} kept", flush=True)
    try:
        limits.check_design(d, limits.Limits(max_memory=1))
    except limits.LimitError as e:
        print("estimate:", str(e).split(" needs about ")[1].split(";")[0], flush=True)
    t = time.time()
    timing = run_timing_fast(d.hw, schedule_from_spec(spec.schedule, d.hw))
    print(f"timing in {time.time() - t:.0f} s, peak RSS {peak_gb():.2f} GB; total cycles "
          f"{'gave up' if timing is None else timing.total_cycles}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

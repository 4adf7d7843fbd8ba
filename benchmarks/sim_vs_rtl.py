#!/usr/bin/env python3
"""Simulated cycles per wall-clock second: attnflow's Python simulator vs cocotb + Verilator.

One run measures, on one design (an example spec with ``--set``-style overrides):

* the Python simulator, ``Design.simulate()`` (token values + timing, with the fast
  engine and its fallback, as ``attnflow sim``/``build`` run it), and each timing engine
  alone: the fast one (``attnflow.sim.fast.run_timing_fast``) and the reference one
  (``attnflow.sim.engine.run_timing``); best of ``--reps`` runs after one warm-up run,
  cycles = ``total_cycles`` (reset to last output, inclusive);
* cocotb + Verilator on the emitted RTL (unless ``--sim-only``): ``attnflow.build.build``
  then ``run_testbench`` once (compiles the Verilator model; its build time is reported)
  and once more, timed. The RTL rate is the testbench's own figure: cycles simulated
  divided by the wall time of the cocotb stream loop (from the first cycle after reset to
  the end of the drain), which excludes the Verilator compile, the simulator's start-up,
  the embedded Python/cocotb start-up and the loading of the vectors. The rate over
  ``test_seconds`` (the cocotb runner's whole ``test()`` call: launching the simulator
  included) and the whole wall time of ``run_tb.py`` are reported next to it.

Usage::

    .venv/bin/python benchmarks/sim_vs_rtl.py                       # online, N=128, d=16
    .venv/bin/python benchmarks/sim_vs_rtl.py --variant naive --seq-len 1024 --sim-only
    .venv/bin/python benchmarks/sim_vs_rtl.py --stall-seed 3 --json

Progress goes to stderr; the table (or, with ``--json``, the JSON) to stdout.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def make_spec(args):
    from attnflow.build import stall_schedule
    from attnflow.ir.spec import load_spec
    path = Path(args.spec) if args.spec else EXAMPLES / f"sdpa_{args.variant}.yaml"
    overrides = [f"model.attention.variant={args.variant}",
                 f"model.seq_len={args.seq_len}", f"model.head_dim={args.head_dim}",
                 f"name=sdpa_{args.variant}_n{args.seq_len}_d{args.head_dim}"]
    spec = load_spec(path, overrides + list(args.set or ()))
    if args.stall_seed is not None:
        spec = dataclasses.replace(spec, schedule=stall_schedule(spec, args.stall_seed))
    return spec, path


def timed(fn, reps: int, setup=lambda: ()):
    """One warm-up call, then ``reps`` timed calls ``fn(*setup())`` (``setup`` untimed).
    Returns (best wall seconds, CPU seconds of that call, last return value)."""
    value = fn(*setup())
    best, cpu = float("inf"), None
    for _ in range(reps):
        a = setup()
        del value   # let the previous result go before the next run, as a single run would
        c0, t0 = time.process_time(), time.perf_counter()
        value = fn(*a)
        t1, c1 = time.perf_counter(), time.process_time()
        if t1 - t0 < best:
            best, cpu = t1 - t0, c1 - c0
    return best, cpu, value


def bench_sim(spec, reps: int) -> dict:
    from attnflow.api import prepare
    from attnflow.build import check_golden
    from attnflow.sim import schedule_from_spec
    from attnflow.sim.engine import run_timing
    from attnflow.sim.fast import run_timing_fast

    t0 = time.perf_counter()
    design = prepare(spec)
    t_prepare = time.perf_counter() - t0

    log(f"simulate(): warm-up + {reps} timed runs")
    t_full, cpu_full, result = timed(design.simulate, reps)
    if result.deadlock:
        raise SystemExit(f"error: the design deadlocks: {result.deadlock.describe()}")
    cycles = result.total_cycles
    mismatches = check_golden(design, result)

    log(f"run_timing(): warm-up + {reps} timed runs")
    # The schedule is drawn outside the timed region (simulate() draws it inside).
    t_timing, cpu_timing, timing = timed(
        run_timing, reps, lambda: (design.hw, schedule_from_spec(design.spec.schedule, design.hw)))
    if timing.total_cycles != cycles:
        raise SystemExit(f"error: run_timing gave {timing.total_cycles} cycles, "
                         f"simulate() {cycles}")
    firings = sum(p.fires for p in timing.procs)

    log(f"run_timing_fast(): warm-up + {reps} timed runs")
    t_fast, cpu_fast, fast = timed(
        run_timing_fast, reps,
        lambda: (design.hw, schedule_from_spec(design.spec.schedule, design.hw)))
    if fast is None or fast.total_cycles != cycles:
        raise SystemExit("error: the fast engine gave no result or different cycles")
    return {
        "fast_seconds": t_fast,
        "fast_cycles_per_second": cycles / t_fast,
        "fast_cpu_seconds": cpu_fast,
        "cycles": cycles,
        "golden_mismatches": mismatches,
        "prepare_seconds": t_prepare,
        "full_seconds": t_full,
        "full_cycles_per_second": cycles / t_full,
        "full_cpu_seconds": cpu_full,
        "timing_seconds": t_timing,
        "timing_cycles_per_second": cycles / t_timing,
        "timing_cpu_seconds": cpu_timing,
        "firings": firings,
        "timing_firings_per_second": firings / t_timing,
        "reps": reps,
    }


_STATS = re.compile(r"^STATS\b(.*)$", re.MULTILINE)


def read_stats(log_path: Path) -> dict:
    """The last STATS line of a run_tb.py log, as strings."""
    text = Path(log_path).read_text(encoding="utf-8", errors="replace")
    lines = _STATS.findall(text)
    if not lines:
        return {}
    return dict(item.partition("=")[::2] for item in lines[-1].split())


def _float(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def bench_rtl(spec, out_dir: Path, timeout: float) -> dict:
    from attnflow.build import build
    from attnflow.hdl.testbench import run_testbench

    log(f"build -> {out_dir}")
    t0 = time.perf_counter()
    design, result, summary = build(spec, out_dir, progress=log)
    t_build_flow = time.perf_counter() - t0
    if result.deadlock or summary.get("golden_mismatches"):
        raise SystemExit("error: build failed (deadlock or golden mismatch); see report.md")

    log("run_testbench #1 (compiles the Verilator model)")
    first = run_testbench(out_dir, timeout=timeout)
    st1 = read_stats(first.log)
    if not first.ok:
        raise SystemExit(f"error: first testbench run failed: {first.message} (log {first.log})")
    log(f"  {first.message}; build_seconds={st1.get('build_seconds')} "
        f"wall={first.wall_seconds:.2f}s")

    log("run_testbench #2 (timed)")
    second = run_testbench(out_dir, timeout=timeout)
    st2 = read_stats(second.log)
    if not second.ok:
        raise SystemExit(f"error: second testbench run failed: {second.message} (log {second.log})")
    summ_path = out_dir / "sim_build" / "verilator" / "vectors.summary.json"
    tb = json.loads(summ_path.read_text()) if summ_path.is_file() else {}
    cycles = int(tb.get("cycles_simulated") or st2.get("cycles") or 0)
    loop_s = _float(tb.get("wall_seconds"))
    rate = second.cycles_per_second or (cycles / loop_s if loop_s else None)
    if loop_s is None and rate:
        loop_s = cycles / rate
    test_s = _float(st2.get("test_seconds"))
    return {
        "verdict": second.message,
        "build_flow_seconds": t_build_flow,
        "first_run_wall_seconds": first.wall_seconds,
        "verilator_build_seconds": _float(st1.get("build_seconds")),
        "first_run_test_seconds": _float(st1.get("test_seconds")),
        "rebuild_check_seconds": _float(st2.get("build_seconds")),
        "cycles": cycles,
        "last_output_cycle": tb.get("last_output_cycle"),
        "loop_seconds": loop_s,
        "cycles_per_second": rate,
        "test_seconds": test_s,
        "test_cycles_per_second": cycles / test_s if test_s else None,
        "run_wall_seconds": second.wall_seconds,
        "run_wall_cycles_per_second": cycles / second.wall_seconds,
    }


def _fmt_rate(x) -> str:
    if x is None:
        return "n/a"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    if x >= 1e3:
        return f"{x / 1e3:.1f} k"
    return f"{x:.0f} "


def table(res: dict) -> str:
    d, s, r = res["design"], res["sim"], res.get("rtl")
    lines = [
        f"design {d['name']}: variant={d['variant']} N={d['seq_len']} d={d['head_dim']} "
        f"schedule={d['schedule']}",
        f"host: {res['host']['python']} on {res['host']['machine']}, "
        f"{res['host']['cpus']} CPUs, 1-min load average {res['host']['loadavg_start']:.2f} "
        f"at start, {res['host']['loadavg_end']:.2f} at end (other load slows every figure)",
        "",
        f"{'engine':<44} {'cycles':>9} {'seconds':>9} {'cycles/s':>11} {'cpu s':>8}",
        f"{'python sim: simulate() (values + timing)':<44} {s['cycles']:>9} "
        f"{s['full_seconds']:>9.4f} {_fmt_rate(s['full_cycles_per_second']):>11} "
        f"{s['full_cpu_seconds']:>8.4f}",
        f"{'python sim: fast engine only':<44} {s['cycles']:>9} "
        f"{s['fast_seconds']:>9.4f} {_fmt_rate(s['fast_cycles_per_second']):>11} "
        f"{s['fast_cpu_seconds']:>8.4f}",
        f"{'python sim: reference engine only':<44} {s['cycles']:>9} "
        f"{s['timing_seconds']:>9.4f} {_fmt_rate(s['timing_cycles_per_second']):>11} "
        f"{s['timing_cpu_seconds']:>8.4f}",
    ]
    if r:
        lines += [
            f"{'cocotb+Verilator: stream loop (used)':<44} {r['cycles']:>9} "
            f"{r['loop_seconds']:>9.4f} {_fmt_rate(r['cycles_per_second']):>11}",
            f"{'cocotb+Verilator: runner test() call':<44} {r['cycles']:>9} "
            f"{r['test_seconds'] or float('nan'):>9.3f} "
            f"{_fmt_rate(r['test_cycles_per_second']):>11}",
            f"{'cocotb+Verilator: whole run_tb.py wall':<44} {r['cycles']:>9} "
            f"{r['run_wall_seconds']:>9.3f} {_fmt_rate(r['run_wall_cycles_per_second']):>11}",
            "",
            f"ratio sim/RTL (stream-loop rate): simulate() {res['ratio_full']:.1f}x, "
            f"fast engine {res['ratio_fast']:.1f}x, reference engine {res['ratio_timing']:.1f}x",
            f"Verilator model compile (first run_tb.py): {r['verilator_build_seconds']} s; "
            f"first run wall {r['first_run_wall_seconds']:.1f} s; "
            f"re-build check on the timed run: {r['rebuild_check_seconds']} s",
            f"RTL verdict: {r['verdict']}",
        ]
    lines.append(f"simulator vs golden model: {s['golden_mismatches']} mismatches; "
                 f"best of {s['reps']} after a warm-up; "
                 f"{_fmt_rate(s['timing_firings_per_second'])}process firings/s in the reference engine")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=("online", "naive"), default="online")
    ap.add_argument("--seq-len", type=int, default=128, metavar="N")
    ap.add_argument("--head-dim", type=int, default=16, metavar="D")
    ap.add_argument("--stall-seed", type=int, default=None, metavar="SEED",
                    help="random input gaps / output backpressure from SEED "
                         "(as 'attnflow verify --stall-seed')")
    ap.add_argument("--spec", default=None,
                    help="spec YAML (default examples/sdpa_<variant>.yaml)")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="extra spec override, as in 'attnflow sim --set' (repeatable)")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions (best is kept)")
    ap.add_argument("--sim-only", action="store_true", help="skip cocotb + Verilator")
    ap.add_argument("--out", default=None, metavar="DIR",
                    help="build folder (default: a temporary folder, removed afterwards)")
    ap.add_argument("--rtl-timeout", type=float, default=3600.0,
                    help="seconds allowed per run_tb.py run")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    if args.reps < 1:
        ap.error("--reps must be >= 1")

    spec, path = make_spec(args)
    res = {
        "design": {"name": spec.name, "spec": str(path), "variant": args.variant,
                   "seq_len": args.seq_len, "head_dim": args.head_dim,
                   "stall_seed": args.stall_seed,
                   "schedule": dataclasses.asdict(spec.schedule)},
        "host": {"python": platform.python_version(), "machine": platform.machine(),
                 "cpus": os.cpu_count(), "loadavg_start": os.getloadavg()[0]},
    }
    res["sim"] = bench_sim(spec, args.reps)
    if not args.sim_only:
        tmp = None
        if args.out:
            out = Path(args.out)
        else:
            tmp = tempfile.TemporaryDirectory(prefix="attnflow_bench_")
            out = Path(tmp.name)
        try:
            res["rtl"] = bench_rtl(spec, out.resolve(), args.rtl_timeout)
        finally:
            if tmp is not None:
                tmp.cleanup()
        if args.out:
            res["rtl"]["out_dir"] = str(out)
        rtl_rate = res["rtl"]["cycles_per_second"]
        res["ratio_full"] = res["sim"]["full_cycles_per_second"] / rtl_rate
        res["ratio_timing"] = res["sim"]["timing_cycles_per_second"] / rtl_rate
        res["ratio_fast"] = res["sim"]["fast_cycles_per_second"] / rtl_rate
    res["host"]["loadavg_end"] = os.getloadavg()[0]
    print(json.dumps(res, indent=1) if args.json else table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``attnflow sweep``: the points of a sweep file as Dask tasks, cached, one row each.

The client (this process) expands the sweep file into points (:mod:`.sweep_file`),
validates each point's spec (a bad value is that point's error row, no task), serves
points whose result is in ``DIR/cache`` (:mod:`.sweep_cache`) and runs the rest on a
``dask.distributed`` cluster through :mod:`.sweep_runner`: a
:class:`~distributed.LocalCluster` sized to the machine by default, or an existing
scheduler. A task (:func:`run_point`) runs the public API (``prepare_for``,
``Design.simulate``, ``build.sim_summary``, ``targets.estimate``/``fit``, ``build.build`` +
``hdl.testbench.run_testbench``, ``targets.synthesize``) and returns the figures of its
row, with any failure (deadlock, mismatch, does not fit, tool error, timeout) as its
one-line ``error``, never an exception. The results are written by :mod:`.sweep_report`.

A row is cached unless it says the point should run again: a step that timed out (the
machine may just have been busy) or a worker whose attnflow differs from the client's.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from .ir.spec import spec_from_dict, spec_to_dict
from .sweep_cache import cache_get, cache_put, code_hash, point_key, wrong_code
from .sweep_file import Point, Sweep, load_sweep, points
from .sweep_runner import (Job, Progress, check_cluster_args, one_line, open_cluster,
                           run_jobs)

#: result fields of a row, in CSV order (after the point index and the axis values)
FIGURES = ("status", "error", "design", "cycles", "expected_cycles", "ii_cycles",
           "clock_mhz", "latency_us", "multipliers", "memory_bits", "golden_mismatches",
           "max_abs_error", "cosine", "device", "device_clock_mhz", "latency_us_device",
           "DSP", "LUT", "FF", "BRAM", "URAM", "LUTRAM", "fits", "verify", "synth_LUT",
           "synth_FF", "synth_DSP", "synth_BRAM", "fmax_mhz")
#: a figures field (not a column): why this row must not be cached
NO_CACHE = "no_cache"


# ----------------------------------------------------------------------------- one point

def _sim(design, row: dict):
    from .build import sim_summary
    result = design.simulate()
    s = sim_summary(design, result)
    b = s.get("bottleneck") or {}
    row.update(design=s["design"], cycles=s["total_cycles"],
               expected_cycles=s.get("expected_cycles"), ii_cycles=b.get("busy"),
               clock_mhz=s["clock_mhz"], latency_us=s["latency_us"],
               multipliers=s["multipliers"], memory_bits=s["memory_bits"])
    if result.deadlock:
        return f"deadlock: {result.deadlock.describe()}"
    acc = s["accuracy"]
    row.update(golden_mismatches=s["golden_mismatches"], max_abs_error=acc["max_abs_error"],
               cosine=acc["cosine"])
    if s["golden_mismatches"]:
        return f"simulator differs from the golden model in {s['golden_mismatches']} elements"
    return None


def _resources(design, target, row: dict):
    from .targets import estimate, fit, load_device
    device = load_device(target)
    est = estimate(design.hw, device)
    over = fit(est)
    t = est.totals
    row.update(device=device.name, device_clock_mhz=device.clock_mhz, fits=not over,
               **{k: t.get(k, 0) for k in ("DSP", "LUT", "FF", "BRAM", "URAM", "LUTRAM")})
    if row.get("cycles"):
        row["latency_us_device"] = row["cycles"] / device.clock_mhz
    if over:
        return f"does not fit on {device.name}: " + "; ".join(str(o) for o in over)
    return None


def _verify(spec, target, opts: dict, build_dir: Path, row: dict):
    """Build the point's RTL and testbench, run it without stalls and per stall seed."""
    from .api import prepare
    from .build import build, row_period, stall_schedule, vectors
    from .ir.spec import load_spec
    from .hdl.testbench import run_testbench, write_testbench
    design, result, summary = build(spec, build_dir, progress=lambda s: None, target=target)
    if result.deadlock:
        return "deadlock: no RTL written"
    verdicts = []
    for seed in [None, *opts["stall_seeds"]]:
        vec = None
        if seed is not None:
            design = prepare(load_spec(build_dir / "spec.yaml"))
            res = design.simulate(stall_schedule(design.spec, seed, row_period(design.hw)))
            if res.deadlock:
                return f"stall seed {seed}: deadlock: {res.deadlock.describe()}"
            vec = write_testbench(build_dir, vectors(res),
                                  vectors_name=f"vectors_stall{seed}.json").resolve()
        tb = run_testbench(build_dir, simulator=opts["simulator"], vectors=vec,
                           timeout=opts["verify_timeout"])
        label = "no stalls" if seed is None else f"stall seed {seed}"
        verdicts.append(f"{label}: {'PASS' if tb.ok else 'FAIL'}")
        if not tb.ok:
            row["verify"] = "FAIL"
            if tb.returncode is None:       # timed out: a busy machine, worth a rerun
                row[NO_CACHE] = "timeout"
            return f"verify {label}: {' '.join(tb.message.split())}"
    row["verify"] = "PASS (" + ", ".join(verdicts) + ")"
    return None


def _synth(target, opts: dict, build_dir: Path, row: dict):
    """Yosys (and nextpnr on Lattice parts) on the point's RTL; a run past
    ``synth_timeout`` is killed and is the row's error (not cached)."""
    from .targets import SynthError, synthesize
    start = time.monotonic()
    try:
        res = synthesize(build_dir, target, timeout=opts["synth_timeout"], pnr=opts["pnr"],
                         progress=lambda s: None)
    except SynthError as e:
        if time.monotonic() - start >= opts["synth_timeout"]:
            row[NO_CACHE] = "timeout"
        return f"synth: {one_line(e).removeprefix('SynthError: ')}"
    row.update({f"synth_{k}": res.counts.get(k) for k in ("LUT", "FF", "DSP", "BRAM")},
               fmax_mhz=res.fmax_mhz)
    return None


def run_point(spec_data: dict, source: str, target, run: tuple, opts: dict,
              build_dir: str | None, code: str) -> dict:
    """One point's figures (the FIGURES fields it has): runs on a Dask worker. Every
    problem is the row's one-line ``error`` (status ``failed``); later steps still run
    where they can (a design that does not fit is still simulated). ``code`` is the
    client's :func:`~.sweep_cache.code_hash`: a worker with other code runs nothing."""
    from .api import prepare_for
    row, errors = {}, []
    if code_hash() != code:
        return {"status": "failed", NO_CACHE: "code", "error": wrong_code(code)}
    try:
        spec = spec_from_dict(spec_data, source)
        design = prepare_for(spec, target)
        if "sim" in run:
            errors.append(_sim(design, row))
        if "resources" in run:
            errors.append(_resources(design, target, row))
        if ("verify" in run or "synth" in run) and not any(errors):
            out = Path(build_dir)
            if "verify" in run:
                errors.append(_verify(spec, target, opts, out, row))
            if "synth" in run and not any(errors):
                if not (out / "rtl").is_dir():
                    from .build import build
                    build(spec, out, progress=lambda s: None, target=target)
                errors.append(_synth(target, opts, out, row))
    except Exception as e:       # noqa: BLE001 - a point's failure is its row, not the sweep's
        errors.append(one_line(e))
    errors = [e for e in errors if e]
    row["status"] = "failed" if errors else "ok"
    row["error"] = "; ".join(errors) if errors else None
    return row


# ----------------------------------------------------------------------------- the sweep

@dataclass
class SweepResult:
    sweep: Sweep
    rows: list                  # one dict per point, in point order
    computed: int = 0           # points run on the cluster this time
    cached: int = 0             # points served from DIR/cache
    invalid: int = 0            # points whose spec failed validation (no task)
    wall_seconds: float = 0.0
    workers: int = 0
    columns: list = field(default_factory=list)
    lost: list = field(default_factory=list)   # (worker address, point indices it held)


def _row(point: Point, sweep: Sweep, figures: dict) -> dict:
    row = {"point": point.index}
    row.update({a.key: _cell(point.values.get(a.key)) for a in sweep.axes})
    row.update({k: figures.get(k) for k in FIGURES})
    return row


def _cell(value):
    """An axis value as a CSV cell: scalars as they are, mappings/lists as YAML flow text."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return value


def run_sweep(path, out_dir, workers: int | None = None, scheduler: str | None = None,
              processes: bool = True, progress: bool = True, log=print) -> SweepResult:
    """Run the sweep file at ``path`` into ``out_dir`` (results.csv, results.parquet when
    pyarrow is installed, pareto.png, report.html, cache/)."""
    from .sweep_report import write_results
    start = time.monotonic()
    check_cluster_args(workers, scheduler)
    sweep = load_sweep(path)
    pts = points(sweep)
    out = Path(out_dir)
    cache, code = out / "cache", code_hash()
    figures, keys, todo, invalid = {}, {}, [], 0
    for p in pts:
        if p.error:
            figures[p.index] = {"status": "failed", "error": p.error}
            invalid += 1
            continue
        keys[p.index] = point_key(p, sweep, code)
        hit = cache_get(cache, keys[p.index])
        if hit is not None:
            figures[p.index] = hit
        else:
            todo.append(p)
    # points that resolve to the same spec (e.g. a value listed twice) run once
    first = {}
    for p in todo:
        first.setdefault(keys[p.index], p)
    same = [p for p in todo if first[keys[p.index]] is not p]
    todo = list(first.values())
    cached = len(pts) - invalid - len(todo) - len(same)
    log(f"[attnflow] sweep {sweep.source}: {len(pts)} points ({invalid} invalid, {cached} "
        f"cached, {len(todo)} to run{f', {len(same)} the same as another' if same else ''}"
        f": {', '.join(sweep.run)})")
    n_workers, lost = 0, []
    if todo:
        n_workers, lost = _compute(sweep, todo, keys, figures, cache, out, code, workers,
                                   scheduler, processes, progress, len(pts) - len(todo))
    for p in same:
        figures[p.index] = figures[first[keys[p.index]].index]
    rows = [_row(p, sweep, figures[p.index]) for p in pts]
    res = SweepResult(sweep, rows, len(todo), cached, invalid, time.monotonic() - start,
                      n_workers, ["point", *(a.key for a in sweep.axes), *FIGURES], lost)
    write_results(res, out)
    return res


def _compute(sweep, todo, keys, figures, cache, out, code, workers, scheduler, processes,
             show, already: int) -> tuple[int, list]:
    """Run ``todo`` on the cluster, caching each row as it arrives; returns the number of
    workers and the workers lost."""
    jobs = [Job(p.index, f"attnflow-point-{p.index}-{keys[p.index]}", run_point,
                (spec_to_dict(p.spec), p.spec.source, p.target, sweep.run, sweep.options,
                 str((out / "points" / keys[p.index]).resolve()), code))
            for p in todo]

    def done(job: Job, row, error) -> bool:
        if error is not None:               # a worker killed twice, a lost task
            row = {"status": "failed", "error": error}
        elif not row.get(NO_CACHE):
            cache_put(cache, keys[job.index], row)
        figures[job.index] = row
        return row.get("status") == "failed"

    failed = sum(1 for f in figures.values() if f.get("status") == "failed")
    client, cluster = open_cluster(workers, scheduler, processes)
    try:
        bar = Progress(already + len(todo), already, show)
        log = run_jobs(client, jobs, done, bar, already, failed)
        return log.workers, log.lost
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

"""``attnflow sweep``: the points of a sweep file as Dask tasks, cached, one row each.

The client (this process) expands the sweep file into points (:mod:`.sweep_file`),
validates each point's spec (a bad value is that point's error row, no task), serves
points whose result is in ``DIR/cache`` and submits the rest with ``retries=1`` to a
``dask.distributed`` cluster: a :class:`~distributed.LocalCluster` sized to the machine
by default, or an existing scheduler. A task (:func:`run_point`) runs the public API
(``prepare_for``, ``Design.simulate``, ``build.sim_summary``, ``targets.estimate``/``fit``,
``build.build`` + ``hdl.testbench.run_testbench``, ``targets.synthesize``) and returns the
figures of its row, with any failure (deadlock, mismatch, does not fit, tool error) as
its one-line ``error``, never an exception. The results are written by
:mod:`.sweep_report`.

The cache key of a point is the SHA-256 of its resolved spec (``spec_to_dict``; the
weights file's content when it has one), the device, the steps and their options, and
the attnflow version: a changed spec field, option or device recomputes that point only.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .ir.spec import SpecError, spec_from_dict, spec_to_dict
from .sweep_file import Point, Sweep, load_sweep, points

#: result fields of a row, in CSV order (after the point index and the axis values)
FIGURES = ("status", "error", "design", "cycles", "expected_cycles", "ii_cycles",
           "clock_mhz", "latency_us", "multipliers", "memory_bits", "golden_mismatches",
           "max_abs_error", "cosine", "device", "device_clock_mhz", "latency_us_device",
           "DSP", "LUT", "FF", "BRAM", "URAM", "LUTRAM", "fits", "verify", "synth_LUT",
           "synth_FF", "synth_DSP", "synth_BRAM", "fmax_mhz")


# ----------------------------------------------------------------------------- one point

def _one_line(e: BaseException) -> str:
    text = str(e) if str(e) else type(e).__name__
    from .ir.spec import SpecError
    if not isinstance(e, SpecError):
        text = f"{type(e).__name__}: {text}"
    return " ".join(text.split())


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
        tb = run_testbench(build_dir, simulator=opts["simulator"], vectors=vec)
        label = "no stalls" if seed is None else f"stall seed {seed}"
        verdicts.append(f"{label}: {'PASS' if tb.ok else 'FAIL'}")
        if not tb.ok:
            row["verify"] = "FAIL"
            return f"verify {label}: {' '.join(tb.message.split())}"
    row["verify"] = "PASS (" + ", ".join(verdicts) + ")"
    return None


def _synth(target, opts: dict, build_dir: Path, row: dict):
    from .targets import synthesize
    res = synthesize(build_dir, target, timeout=opts["synth_timeout"], pnr=opts["pnr"],
                     progress=lambda s: None)
    row.update({f"synth_{k}": res.counts.get(k) for k in ("LUT", "FF", "DSP", "BRAM")},
               fmax_mhz=res.fmax_mhz)
    return None


def run_point(spec_data: dict, source: str, target, run: tuple, opts: dict,
              build_dir: str | None) -> dict:
    """One point's figures (the FIGURES fields it has): runs on a Dask worker. Every
    problem is the row's one-line ``error`` (status ``failed``); later steps still run
    where they can (a design that does not fit is still simulated)."""
    from .api import prepare_for
    row, errors = {}, []
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
        errors.append(_one_line(e))
    errors = [e for e in errors if e]
    row["status"] = "failed" if errors else "ok"
    row["error"] = "; ".join(errors) if errors else None
    return row


# ----------------------------------------------------------------------------- cache

def point_key(point: Point, sweep: Sweep) -> str:
    """SHA-256 (hex, 16 digits) of what determines a point's row."""
    data = spec_to_dict(point.spec)
    weights = getattr(point.spec.model, "weights", None)
    extra = {}
    if weights is not None and getattr(weights, "path", None):
        try:
            extra["weights_sha256"] = hashlib.sha256(Path(weights.path).read_bytes()).hexdigest()
        except OSError:
            pass
    target = point.target
    if target and os.path.isfile(target):
        extra["device_file"] = Path(target).read_text(encoding="utf-8")
    opts = {k: v for k, v in sweep.options.items() if k != "target"}
    blob = json.dumps({"spec": data, "target": target, "run": sweep.run, "options": opts,
                       "version": __version__, **extra}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _cache_get(cache: Path, key: str):
    try:
        return json.loads((cache / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None


def _cache_put(cache: Path, key: str, figures: dict):
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".{key}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(figures, sort_keys=True) + "\n")
    tmp.replace(cache / f"{key}.json")


# ----------------------------------------------------------------------------- cluster

def _cluster(workers: int | None, scheduler: str | None, processes: bool):
    """(client, cluster or None): a LocalCluster of ``workers`` single-threaded workers
    (default: one per core), or a client of the scheduler at ``scheduler``."""
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise SpecError("<command line>", "sweep", "needs dask.distributed: "
                        "pip install 'attnflow[sweep]'") from None
    if workers is not None and workers < 1:
        raise SpecError("<command line>", "--workers", f"must be >= 1, got {workers}")
    if scheduler:
        if workers is not None:
            raise SpecError("<command line>", "--workers", "sizes the LocalCluster only; "
                            "with --scheduler the cluster's own workers run the points")
        try:
            return Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as e:
            raise SpecError("<command line>", "--scheduler",
                            f"cannot reach {scheduler}: {_one_line(e)}") from None
    n = workers or os.cpu_count() or 1
    # a worker that dies mid-task: its point is retried once elsewhere, then is an error row
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                               dashboard_address=":0", silence_logs=logging.ERROR)
    return Client(cluster), cluster


class _Progress:
    """One live line on stderr: done / failed / running, with an ETA (tqdm if present)."""

    def __init__(self, total: int, initial: int, enabled: bool):
        self.enabled, self.bar, self.start = enabled, None, time.monotonic()
        self.total, self.initial = total, initial
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, initial=initial, unit="pt", file=sys.stderr,
                                dynamic_ncols=True, desc="sweep")
            except ImportError:
                pass

    def update(self, done: int, failed: int, running: int):
        state, now = (done, failed, running), time.monotonic()
        if not self.enabled or (state == getattr(self, "_last", None)
                                and now - getattr(self, "_when", 0.0) < 5.0):
            return
        self._last, self._when = state, now
        text = f"done {done}/{self.total}, failed {failed}, running {running}"
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix_str(f"failed {failed}, running {running}", refresh=True)
            return
        computed, elapsed = done - self.initial, time.monotonic() - self.start
        eta = (f", ETA {elapsed / computed * (self.total - done):.0f} s" if computed else "")
        print(f"\r[attnflow] sweep: {text}{eta}   ", end="", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            print(file=sys.stderr)


def _running(client, keys: set, threads: int) -> int:
    """Tasks of ``keys`` on a worker (at most one per worker thread: the rest are queued
    there)."""
    try:
        busy = client.processing()
    except Exception:          # noqa: BLE001 - progress only
        return 0
    return min(threads, len(keys & {k for ks in busy.values() for k in ks}))


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
    sweep = load_sweep(path)
    pts = points(sweep)
    out = Path(out_dir)
    cache = out / "cache"
    figures, keys, todo, invalid = {}, {}, [], 0
    for p in pts:
        if p.error:
            figures[p.index] = {"status": "failed", "error": p.error}
            invalid += 1
            continue
        keys[p.index] = point_key(p, sweep)
        hit = _cache_get(cache, keys[p.index])
        if hit is not None:
            figures[p.index] = hit
        else:
            todo.append(p)
    cached = len(pts) - invalid - len(todo)
    log(f"[attnflow] sweep {sweep.source}: {len(pts)} points ({invalid} invalid, {cached} "
        f"cached, {len(todo)} to run: {', '.join(sweep.run)})")
    n_workers = 0
    if todo:
        n_workers = _compute(sweep, todo, keys, figures, cache, out, workers, scheduler,
                             processes, progress, len(pts) - len(todo))
    rows = [_row(p, sweep, figures[p.index]) for p in pts]
    res = SweepResult(sweep, rows, len(todo), cached, invalid, time.monotonic() - start,
                      n_workers, ["point", *(a.key for a in sweep.axes), *FIGURES])
    write_results(res, out)
    return res


def _compute(sweep, todo, keys, figures, cache, out, workers, scheduler, processes,
             show, already: int) -> int:
    """Submit ``todo`` to the cluster and collect each row as it finishes; returns the
    number of workers."""
    from distributed import wait
    client, cluster = _cluster(workers, scheduler, processes)
    try:
        info = client.scheduler_info(n_workers=-1)["workers"]
        n_workers = len(info)
        threads = sum(w.get("nthreads", 1) for w in info.values()) or 1
        futures = {}
        for p in todo:
            build_dir = str((out / "points" / keys[p.index]).resolve())
            fut = client.submit(run_point, spec_to_dict(p.spec), p.spec.source, p.target,
                                sweep.run, sweep.options, build_dir, retries=1, pure=False,
                                key=f"attnflow-point-{p.index}-{keys[p.index]}")
            futures[fut] = p
        bar = _Progress(already + len(todo), already, show)
        failed = sum(1 for f in figures.values() if f.get("status") == "failed")
        pending, done = set(futures), already
        while pending:
            try:
                finished, pending = wait(pending, timeout=1.0, return_when="FIRST_COMPLETED")
            except TimeoutError:
                finished = set()
            for fut in finished:
                p = futures[fut]
                try:
                    row = fut.result()
                    _cache_put(cache, keys[p.index], row)
                except Exception as e:   # noqa: BLE001 - a killed worker (twice), a lost task
                    row = {"status": "failed", "error": _one_line(e)}
                figures[p.index] = row
                done += 1
                failed += row.get("status") == "failed"
            bar.update(done, failed, _running(client, {f.key for f in pending}, threads))
        bar.close()
        return n_workers
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

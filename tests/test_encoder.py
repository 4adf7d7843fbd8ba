"""One post-norm encoder layer mapped onto the existing streaming templates
(``mappers.encoder``): golden model == simulator bit for bit, analytic FIFO depths proved by
the simulator (no deadlock, no needless stall, exact cycle count), too-shallow channels
deadlock with the report naming them, and the integer layer against the float layer.

Simulator only (no RTL yet). Tiny layer: N = 8, d_model = 16, d_ff = 32.
"""
from __future__ import annotations

import numpy as np
import pytest

from attnflow.ir.encoder_golden import (OPS, accuracy, layer_golden,
                                        layer_plan, random_input)
from attnflow.ir.graph import interpret
from attnflow.ir.lower import attention_head_graph, lower_attention
from attnflow.ir.spec import spec_from_dict
from attnflow.ir.weights import load_weights
from attnflow.mappers.encoder import (expected_cycles, ffn_path, layer_fires, layer_inputs,
                                      map_encoder_layer, q_deadlock_bound, spec_folding)
from attnflow.mappers.rowops import skip_depth
from attnflow.sim.engine import run_timing
from attnflow.sim.run import simulate
from attnflow.sim.schedule import make_schedule

N, D, DFF = 8, 16, 32


def spec(heads=1, n=N, **extra):
    model = {"type": "encoder", "layers": 1, "d_model": D, "heads": heads, "d_ff": DFF,
             "seq_len": n}
    return spec_from_dict({"model": model, **extra})


def setup(heads=1, n=N, **extra):
    s = spec(heads, n, **extra)
    plan = layer_plan(s, load_weights(s))
    x = random_input(s)
    return s, plan, x


def run(hw, x, seed=0, gap=0.0, gap_max=1, ready=1.0, engine="auto"):
    sched = make_schedule({c: hw.tokens(c) for c in hw.inputs}, hw.outputs, seed, gap,
                          gap_max, ready)
    return simulate(hw, layer_inputs(x), sched, engine=engine)


def uniform(pe, simd):
    return {op: (pe, simd) for op in OPS}


# ---------------------------------------------------------------- golden model

def test_attention_golden_matches_the_ir_interpreter():
    """The layer's heads (the stack IR's per-head sdpa, lowered) == the one-head IR's
    lowered online head, on the layer's own Q/K/V."""
    _, plan, x = setup()
    tr = {}
    layer_golden(plan, x, tr)
    g = lower_attention(attention_head_graph(plan.attn), "online")
    ref = interpret(g, {"q": tr["q0"], "k": tr["k0"], "v": tr["v0"]})["o"]
    assert np.array_equal(tr["o0"], ref)


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_integer_layer_close_to_float(heads):
    _, plan, x = setup(heads)
    y = layer_golden(plan, x)
    acc = accuracy(plan, x, y)
    print(f"[encoder layer N={N} d={D} d_ff={DFF} heads={heads}] integer vs float: "
          f"max abs error {acc['max_abs_error']:.4f} (LSB {acc['out_lsb']}), "
          f"cosine {acc['cosine']:.6f}")
    assert acc["cosine"] > 0.999
    assert acc["max_abs_error"] < 0.25


# ---------------------------------------------------------------- simulator == golden

CASES = [  # heads, folding
    (1, uniform(1, 1)),
    (1, uniform(4, 4)),
    (1, uniform(16, 16)),     # qk (N per row) is the bottleneck
    (2, uniform(4, 4)),
    (4, uniform(4, 4)),
    (1, {"attn_out": (1, 1)}),
]


@pytest.mark.parametrize("heads,fold", CASES)
def test_sim_equals_golden_exact_cycles_no_needless_stall(heads, fold):
    _, plan, x = setup(heads)
    tr = {}
    gold = layer_golden(plan, x, tr)
    hw = map_encoder_layer(plan, fold)
    res = run(hw, x)
    assert res.deadlock is None
    assert np.array_equal(res.outputs["y"]["x"], gold)
    # every intermediate stream too
    for h in range(heads):
        for ch, key in ((f"q{h}", f"q{h}"), (f"k{h}", f"k{h}"), (f"v{h}", f"v{h}"),
                        (f"o{h}", f"o{h}")):
            assert np.array_equal(res.values[ch]["x"], tr[key]), ch
    for ch, key in (("proj", "proj"), ("r1", "r1"), ("h1", "h1"), ("up", "up"), ("a", "act"),
                    ("down", "down"), ("r2", "r2")):
        assert np.array_equal(res.values[ch]["x"], tr[key]), ch
    if heads > 1:
        assert np.array_equal(res.values["att"]["x"], tr["att"])
    # cycles: the analytic two-phase model, exactly
    exp = expected_cycles(hw)
    assert res.total_cycles == exp["total"]
    # no needless stall: every channel 4N deep gives the same total
    deep = map_encoder_layer(plan, fold, {c: 4 * N for c in hw.channels})
    assert run(deep, x).total_cycles == res.total_cycles
    # the q and skip1 channels fill to N (the whole sequence), as sized
    stats = {c.name: c for c in res.channel_stats()}
    assert stats["skip1"].max_occupancy == N and stats["skip1"].full_stall == 0
    assert stats["q0"].full_stall == 0
    print(f"[heads={heads} fold={fold}] total {res.total_cycles} cycles = model "
          f"{exp['total']} (barrier N*F_qkv = {exp['barrier']}, bottleneck period "
          f"{exp['bottleneck_period']}); slowest node {exp['slowest_node']}: "
          f"{exp['slowest_fires']} firings")


def test_sim_with_stalls_golden_and_engines_agree():
    _, plan, x = setup(2)
    gold = layer_golden(plan, x)
    hw = map_encoder_layer(plan, uniform(4, 4))
    res = run(hw, x, seed=3, gap=0.3, gap_max=3, ready=0.6)
    assert res.deadlock is None
    assert np.array_equal(res.outputs["y"]["x"], gold)
    ref = run_timing(hw, res.schedule)
    assert ref.deadlock is None and ref.output_cycles == res.output_cycles
    assert res.total_cycles >= expected_cycles(hw)["total"]


def test_folding_from_the_spec():
    s, plan, x = setup(hardware={"parallelism": {"default": {"pe": 4, "simd": 4},
                                                 "ffn_up": {"pe": 8}}})
    fold = spec_folding(s)
    assert fold["ffn_up"] == (8, 4) and fold["attn_q"] == (4, 4)
    hw = map_encoder_layer(plan, fold)
    res = run(hw, x)
    assert np.array_equal(res.outputs["y"]["x"], layer_golden(plan, x))
    assert res.total_cycles == expected_cycles(hw)["total"]


# ---------------------------------------------------------------- FIFO depths

@pytest.mark.parametrize("fold", [uniform(1, 1), uniform(4, 4), uniform(16, 16)])
def test_attention_skip_shallower_than_n_deadlocks(fold):
    _, plan, x = setup()
    ok = run(map_encoder_layer(plan, fold, {"skip1": N}), x)
    assert ok.deadlock is None
    res = run(map_encoder_layer(plan, fold, {"skip1": N - 1}), x)
    dl = res.deadlock
    assert dl is not None
    text = dl.describe()
    print("[skip1 = N - 1]", text)
    assert dl.culprits == ["skip1"]
    assert f"skip1 {N - 1}/{N - 1}" in text and "fork_in (clock" in text
    assert "waits on skip1 (full)" in text
    assert {"fork_in", "res1", "qk0", "lin_k0"} <= set(dl.wait_cycle)


@pytest.mark.parametrize("fold,n", [(uniform(1, 1), 8), (uniform(4, 4), 8),
                                    (uniform(16, 16), 12), (uniform(4, 4), 16)])
def test_q_channel_deadlock_bound_is_exact(fold, n):
    """q{h} needs depth(q) + depth(x_lin_q) + (1 if lin_q is folded) >= N: one less
    deadlocks, naming q0 (and x_lin_q0); at the bound it runs, golden."""
    _, plan, x = setup(n=n)
    hw = map_encoder_layer(plan, fold)
    bound = q_deadlock_bound(hw)
    assert hw.channels["q0"].depth == n >= bound
    res = run(map_encoder_layer(plan, fold, {"q0": bound}), x)
    assert res.deadlock is None
    assert np.array_equal(res.outputs["y"]["x"], layer_golden(plan, x))
    bad = run(map_encoder_layer(plan, fold, {"q0": bound - 1}), x)
    assert bad.deadlock is not None
    text = bad.deadlock.describe()
    print(f"[q0 = {bound - 1}, N = {n}]", text)
    assert "q0" in bad.deadlock.culprits
    assert "waits on q0 (full)" in text


def test_ffn_skip_throttles_below_skip_depth_never_deadlocks():
    _, plan, x = setup()
    fold = uniform(4, 4)
    hw = map_encoder_layer(plan, fold)
    # F_up = (32/4)(16/4), F_down = (16/4)(32/4); the activation (d_ff 32) folded to the
    # layer period max(N, 32) = 32 firings per row, one lane
    fe = layer_fires(N, D, DFF, D, fold)
    assert (fe["ffn_up"], fe["ffn_down"], fe["act"], fe["res2"]) == (32, 32, 32, 16)
    assert hw.instances["act"].contract.fires == N * 32
    p, per = ffn_path(32, 32, 32, 16)
    assert (p, per) == (1 + 44 + 45 + 44, 32)     # lin_up, act, lin_down: L + F - 1
    assert hw.channels["skip2"].depth == skip_depth(p, per) == 5
    base = run(hw, x).total_cycles
    totals = {}
    for depth in (1, 2, 3, 4, 5, 8):
        res = run(map_encoder_layer(plan, fold, {"skip2": depth}), x)
        assert res.deadlock is None
        assert np.array_equal(res.outputs["y"]["x"], layer_golden(plan, x))
        totals[depth] = res.total_cycles
    print("[skip2] total cycles by depth:", totals)
    assert totals[5] == totals[8] == base
    assert totals[1] > totals[2] > totals[3] > totals[4] > totals[5]


@pytest.mark.parametrize("extra", [{"norm": "rmsnorm"}, {"activation": "relu"},
                                   {"norm": "rmsnorm", "activation": "relu"}])
def test_rmsnorm_and_relu_layers(extra):
    s = spec_from_dict({"model": {"type": "encoder", "layers": 1, "d_model": D, "heads": 2,
                                  "d_ff": DFF, "seq_len": N, **extra}})
    plan = layer_plan(s, load_weights(s))
    x = random_input(s)
    gold = layer_golden(plan, x)
    hw = map_encoder_layer(plan, uniform(4, 4))
    res = run(hw, x)
    assert np.array_equal(res.outputs["y"]["x"], gold)
    assert res.total_cycles == expected_cycles(hw)["total"]
    assert accuracy(plan, x, gold)["cosine"] > 0.999


def test_unsupported_layer_kinds_are_refused():
    """Window layers build (tests/test_window_stack.py), causal ones too
    (tests/test_decoder.py); the naive variant is refused in layer_plan, and the API
    turns that into a one-line SpecError on model.attention.variant."""
    from attnflow.api import prepare
    from attnflow.ir.spec import SpecError
    s = spec_from_dict({"model": {"type": "encoder", "layers": 1, "d_model": D, "heads": 1,
                                  "d_ff": DFF, "seq_len": N,
                                  "attention": {"kind": "window", "window": 2}}})
    assert layer_plan(s, load_weights(s)).kind == "window"
    s = spec_from_dict({"model": {"type": "encoder", "layers": 1, "d_model": D, "heads": 1,
                                  "d_ff": DFF, "seq_len": N,
                                  "attention": {"kind": "window", "window": 2,
                                                "variant": "naive"}}})
    with pytest.raises(ValueError, match="model.attention"):
        layer_plan(s, load_weights(s))
    with pytest.raises(SpecError) as e:
        prepare(s)
    assert e.value.field == "model.attention.variant" and "\n" not in str(e.value)

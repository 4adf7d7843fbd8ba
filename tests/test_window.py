"""Sliding-window and causal attention of one head (``attention.kind: window | causal``,
``ir.window``, ``mappers.window``): golden == simulator bit for bit with and without stalls, the cycle
count ``w' + N*W + 9`` exactly, windows wider than the sequence, memory independent of
N, bad specs as one line; the RTL (``templates/window.py``) bit- and cycle-exact on Verilator
with and without stalls."""
from __future__ import annotations

import math

import numpy as np
import pytest

from attnflow.api import prepare
from attnflow.kinds import MaskedHead
from attnflow.build import node_costs
from attnflow.mappers.catalog import latency
from attnflow.ir.numerics import dequantize
from attnflow.ir.spec import ScheduleSpec, SpecError, spec_from_dict
from attnflow.ir.window import (causal_blocks, effective_window, offsets, slot_keys,
                                window_float)
from attnflow.mappers.window import window_head_cycles
from helpers import engine_runs, stream_fill

#: a window/causal/decode head's cycles after its last score slot: the input channel, then
#: the score, softmax and normalize templates' latencies along k -> s -> ol -> o


def head(n, d, w, **extra):
    return prepare(spec_from_dict({"model": {"seq_len": n, "head_dim": d, "attention": {
        "kind": "window", "window": w}}, **extra}))


def test_slot_order_and_masks():
    assert offsets(2, 10) == [0, -1, 1, -2, 2]
    assert offsets(5, 3) == [0, -1, 1, -2, 2]          # w' = N - 1 = 2
    keys, ok = slot_keys(1, 4)
    assert keys.tolist() == [[0, 0, 1], [1, 0, 2], [2, 1, 3], [3, 2, 3]]
    assert ok.tolist() == [[True, False, True], [True, True, True], [True, True, True],
                           [True, True, False]]


@pytest.mark.parametrize("n, d, w", [(16, 4, 3), (16, 4, 1), (8, 4, 20), (1, 2, 1),
                                     (5, 3, 2), (33, 8, 4)])
@pytest.mark.parametrize("stalls", [False, True])
def test_golden_equals_simulator_and_cycles(n, d, w, stalls):
    design = head(n, d, w)
    assert isinstance(design.kind, MaskedHead)
    sched = ScheduleSpec(seed=3, input_gap_prob=0.4, input_gap_max=3,
                         output_ready_prob=0.5) if stalls else None
    for r in engine_runs(design, sched):
        we = effective_window(w, n)
        if not stalls:
            assert r.total_cycles == we + n * (2 * we + 1) + stream_fill(design.hw)
        else:
            assert r.total_cycles >= we + n * (2 * we + 1) + stream_fill(design.hw)


def test_window_covering_the_sequence_equals_full_attention_in_float():
    """w >= N - 1: every key is in the band; the float references agree and the integer
    result is within a few output LSBs of the full online head's (a different but fixed
    accumulation order)."""
    w_design = head(16, 8, 100)
    full = prepare(spec_from_dict({"model": {"seq_len": 16, "head_dim": 8}}))
    nm = w_design.numerics
    qkv = [dequantize(w_design.inputs[k], f.frac) for k, f in (("q", nm.q), ("k", nm.k),
                                                               ("v", nm.v))]
    assert np.allclose(window_float(*qkv, 100), full.reference())
    diff = np.abs(w_design.golden() - full.golden()).max()
    assert diff <= 4


def test_accuracy_against_float_band_softmax():
    acc = head(64, 16, 8).accuracy()
    assert acc["cosine"] > 0.9999 and acc["max_abs_error"] < 2 * acc["out_lsb"]


def test_memory_independent_of_n():
    bits = {}
    for n in (64, 256):
        d = head(n, 16, 8)
        c = node_costs(d.hw)
        bits[n] = (c["qk"]["memory_bits"], c["vstore"]["memory_bits"])
    assert bits[64] == bits[256] == (17 * 16 * 8, 17 * 16 * 8)      # two rings of 2w+1 rows


def test_bad_window_specs_are_one_line(capsys):
    for att, field in (({"kind": "window", "window": 0}, "model.attention.window"),
                       ({"kind": "window"}, "model.attention.window"),
                       ({"kind": "window", "window": 2, "variant": "naive"},
                        "model.attention.variant")):
        with pytest.raises(SpecError) as e:
            prepare(spec_from_dict({"model": {"seq_len": 8, "head_dim": 4,
                                              "attention": att}}))
        assert e.value.field == field and "\n" not in str(e.value)


# ---------------------------------------------------------------- RTL

# ---------------------------------------------------------------- causal

def causal(n, d):
    return prepare(spec_from_dict({"model": {"seq_len": n, "head_dim": d,
                                             "attention": {"kind": "causal"}}}))


@pytest.mark.parametrize("n, d", [(1, 2), (5, 3), (16, 4), (33, 8)])
def test_causal_golden_equals_simulator_and_cycles(n, d):
    """Causal attention (keys j <= i) on the window machinery, slots 0, -1, ..., the ones
    before the sequence start masked, run as the blocked triangle (``causal_blocks``):
    every row of a block over its block's last row's keys."""
    design = causal(n, d)
    assert isinstance(design.kind, MaskedHead) and design.spec.model.attention.kind == "causal"
    for sched in (None, ScheduleSpec(seed=2, input_gap_prob=0.4, output_ready_prob=0.5)):
        for r in engine_runs(design, sched):
            if sched is None:
                assert r.total_cycles == sum(
                    rows * g for rows, g in causal_blocks(n)) + stream_fill(design.hw)
    acc = design.accuracy()
    assert acc["cosine"] > 0.9999 and acc["max_abs_error"] < 2 * acc["out_lsb"]


def test_causal_blocked_triangle():
    """Blocks of ceil(sqrt(N)) rows (rounded up to the lanes): rows (8, 16, ..., 64) slots
    at N = 64, 2304 score slots against N*N = 4096 for N slots a row and the exact
    triangle's N(N+1)/2 = 2080; with 4 lanes the groups are ceil(block end / 4). The
    contracts have one phase per block, the cycle count is the simulator's (the slots
    plus the fill)."""
    assert causal_blocks(64) == tuple((8, e) for e in range(8, 65, 8))
    assert causal_blocks(9, 4) == ((4, 1), (4, 2), (1, 3))
    assert causal_blocks(1) == ((1, 1),)
    d = causal(64, 4)
    assert window_head_cycles(d.numerics, None, "causal") == 2304 + stream_fill(d.hw)
    assert [p.name for p in d.hw.instances["qk"].contract.phases] == [f"b{k}" for k in
                                                                       range(8)]
    assert d.simulate(engine="fast").total_cycles == 2304 + stream_fill(d.hw)
    for n in (2, 10, 100, 1000):
        tri = n * (n + 1) // 2
        dn = causal(n, 4)
        slots = window_head_cycles(dn.numerics, None, "causal") - stream_fill(dn.hw)
        assert tri <= slots <= tri + n * math.isqrt(n) and slots <= n * n


def test_causal_row_zero_sees_only_itself():
    """Row 0 of a causal head is V row 0 (a single key), exactly representable."""
    design = causal(8, 4)
    nm = design.numerics
    o = dequantize(design.golden(), nm.out.frac)
    assert np.allclose(o[0], dequantize(design.inputs["v"][0], nm.v.frac))


@pytest.mark.rtl
@pytest.mark.parametrize("n, d, w", [
    (12, 4, 3),     # masked slots at both ends
    (5, 3, 20),     # a window wider than the sequence (w' = N - 1)
    (1, 2, 1),      # w' = 0: the row read by the firing that writes it (a cycle later)
    (7, 3, 1),
    (9, 4, None),   # causal: every row's slot 0 likewise
])
def test_rtl_window_head(tmp_path, n, d, w):
    """``attnflow build`` + the cocotb testbench on Verilator, no stalls and a stall
    seed: every output token's bits and cycle as simulated (one Verilator build)."""
    from helpers import verify_head_rtl
    att = {"kind": "causal"} if w is None else {"kind": "window", "window": w}
    spec = spec_from_dict({"name": f"{att['kind']}_n{n}_w{w or 0}", "model": {
        "seq_len": n, "head_dim": d, "attention": att}})
    result, stalled = verify_head_rtl(spec, tmp_path)
    print(f"[rtl {att['kind']} N={n} d={d} w={w}] {result.total_cycles} cycles, stalled "
          f"{stalled.total_cycles}: PASS")


def test_a_window_longer_than_the_sequence_is_noted():
    """2w' + 1 > N: built as asked, but the report and ``attnflow sim`` say full attention
    would take fewer cycles; no note when the band fits in N."""
    from attnflow.build import design_notes, report_md, sim_summary

    def spec(w):
        return spec_from_dict({"model": {"seq_len": 8, "head_dim": 4,
                                         "attention": {"kind": "window", "window": w}}})
    assert design_notes(spec(3)) == []
    note = ("model.attention.window: 5 gives rows of 2w'+1 = 11 slots (w' = 5) for N = 8 "
            "keys, so each row takes more cycles than full attention's 8; use window <= 3 "
            "(rows of at most N slots) or kind: full")
    assert design_notes(spec(5)) == [note]
    design = prepare(spec(5))
    assert f"- note: {note}" in report_md(sim_summary(design, design.simulate()))

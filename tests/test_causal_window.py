"""The causal sliding window (``attention: {kind: causal, window: w}``, keys
``i - w <= j <= i``; SWAT's causal window of w keys ``i-w+1..i`` is ``window: w - 1``):
slots 0, -1, ..., -w' over a ring of w' + 1 K/V rows, so cycles N * (w' + 1) + 9 and
memory independent of N, for one head and inside decoder stacks. golden == simulator
(both engines, with and without stalls), a window covering the sequence equals plain
causal attention bit for bit, accuracy against the float band, the RTL of one head
bit- and cycle-exact with and without stalls, outputs depend only on the last w + 1
inputs, bad specs one line."""
from __future__ import annotations

import numpy as np
import pytest

from attnflow.api import prepare
from attnflow.kinds import MaskedHead
from attnflow.build import node_costs
from attnflow.mappers.catalog import latency
from attnflow.ir.spec import ScheduleSpec, SpecError, load_spec, spec_from_dict
from attnflow.ir.window import causal_blocks, offsets
from attnflow.templates.online import groups

#: a window/causal/decode head's cycles after its last score slot: the input channel, then
#: the score, softmax and normalize templates' latencies along k -> s -> ol -> o

from helpers import engine_runs, online_cycles, stream_fill, verify_head_rtl


def head(n, d, w, lanes=None, name=None):
    att = {"kind": "causal", "window": w, **({"lanes": lanes} if lanes else {})}
    return spec_from_dict({"name": name or f"causal_w{w}_n{n}", "model": {
        "seq_len": n, "head_dim": d, "attention": att}})


def test_offsets():
    assert offsets(3, 10, "causal") == [0, -1, -2, -3]
    assert offsets(30, 5, "causal") == [0, -1, -2, -3, -4]      # w' = N - 1
    assert offsets(None, 3, "causal") == [0, -1, -2]


@pytest.mark.parametrize("n, d, w, lanes", [(16, 4, 3, 1), (16, 4, 3, 2), (8, 4, 20, 1),
                                            (1, 2, 1, 1), (5, 3, 1, 2), (33, 8, 4, 3)])
@pytest.mark.parametrize("stalls", [False, True])
def test_golden_equals_simulator_and_cycles(n, d, w, lanes, stalls):
    design = prepare(head(n, d, w, lanes))
    assert isinstance(design.kind, MaskedHead)
    sched = ScheduleSpec(seed=3, input_gap_prob=0.4, input_gap_max=3,
                         output_ready_prob=0.5) if stalls else None
    # a window covering the sequence (w >= N - 1) is plain causal: the blocked triangle
    exact = (n * groups(w + 1, lanes) if w < n - 1 else
             sum(rows * g for rows, g in causal_blocks(n, lanes))) + stream_fill(design.hw)
    for r in engine_runs(design, sched):
        assert r.total_cycles >= exact if stalls else r.total_cycles == exact


def test_window_covering_the_sequence_is_plain_causal():
    wide = prepare(head(12, 4, 11))
    plain = prepare(spec_from_dict({"model": {"seq_len": 12, "head_dim": 4,
                                              "attention": {"kind": "causal"}}}))
    assert np.array_equal(wide.golden(), plain.golden())
    # both run the blocked triangle (blocks of 4 rows over 4, 8, 12 slots)
    assert wide.simulate().total_cycles == plain.simulate().total_cycles == \
        4 * 24 + stream_fill(plain.hw)


def test_accuracy_and_memory_independent_of_n():
    acc = prepare(head(64, 16, 8)).accuracy()
    assert acc["cosine"] > 0.9999 and acc["max_abs_error"] < 2 * acc["out_lsb"]
    bits = [node_costs(prepare(head(n, 16, 8)).hw)["qk"]["memory_bits"] for n in (64, 256)]
    assert bits[0] == bits[1] == 9 * 16 * 8                 # a ring of w + 1 K rows


def test_outputs_depend_only_on_the_window():
    """Changing input row j changes the output rows j .. j + w and no other."""
    n, w = 12, 3
    a = prepare(head(n, 4, w))
    b = prepare(head(n, 4, w))
    j = 5
    for key in ("q", "k", "v"):
        b.inputs[key] = a.inputs[key].copy()
    b.inputs["k"][j] = -b.inputs["k"][j]
    b.inputs["v"][j] = -b.inputs["v"][j]
    diff = np.flatnonzero(np.any(a.golden() != b.golden(), axis=1))
    assert diff.min() >= j and diff.max() <= j + w and len(diff) > 1


def test_decoder_stack_with_a_causal_window():
    """decoder_tiny.yaml with window 3: golden == simulator == the cycle model, the
    balanced period drops from N = 8 to w + 1 = 4, accuracy against the float stack
    with the same band; an input row reaches only the next w rows."""
    d = prepare(load_spec("examples/decoder_tiny.yaml", ["model.attention.window=3"]))
    assert d.folding.period == 4
    r = d.simulate(engine="fast")
    assert np.array_equal(r.outputs["y"]["x"], d.golden())
    assert r.total_cycles == d.folding.cycles == 326
    for layer in d.accuracy()["layers"]:
        assert layer["cosine"] > 0.999 and layer["max_abs_error"] < 0.15
    x2 = d.x.copy()
    x2[2] = -x2[2]
    from attnflow.ir.encoder_golden import encoder_golden
    diff = np.flatnonzero(np.any(encoder_golden(d.plans, x2, None, d.final) != d.golden(),
                                 axis=1))
    # two layers: row 2 reaches rows 2 .. 2 + 2 w
    assert diff.min() == 2 and diff.max() <= 2 + 2 * 3


@pytest.mark.parametrize("att, field, text", [
    ({"kind": "full", "window": 3}, "model.attention.window", "only for kind window or causal"),
    ({"kind": "causal", "window": 0}, "model.attention.window", ">= 1"),
    ({"kind": "causal", "window": 2, "decode": 2}, "model.attention.window",
     "decode mode is built for plain causal attention only"),
    ({"kind": "causal", "window": 2, "lanes": 4}, "model.attention.lanes",
     "4 lanes for the 3 slots of a causal row; allowed: 1..3"),
])
def test_bad_specs_are_one_line(att, field, text):
    with pytest.raises(SpecError) as e:
        prepare(spec_from_dict({"model": {"seq_len": 8, "head_dim": 4, "attention": att}}))
    assert e.value.field == field and text in str(e.value) and "\n" not in str(e.value)


@pytest.mark.rtl
@pytest.mark.parametrize("n, d, w, lanes", [(12, 4, 3, None), (9, 4, 4, 2)])
def test_rtl_causal_window_head(tmp_path, n, d, w, lanes):
    result, stalled = verify_head_rtl(head(n, d, w, lanes), tmp_path)
    assert result.total_cycles == n * groups(w + 1, lanes or 1) + stream_fill(result.hw)
    assert stalled.total_cycles > result.total_cycles

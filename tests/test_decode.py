"""Decode mode of one causal head (``attention: {kind: causal, decode: S}``,
``ir.decode``, ``mappers.decode``, ``templates/decode.py``): a prefill of C = N - S tokens into
the on-chip KV cache, then one output row per generated token against a growing context;
golden == simulator bit for bit with and without stalls, C + t + 1 cycles per generated
token, RTL bit- and cycle-exact with and without stalls, bad specs as one line."""
from __future__ import annotations

import numpy as np
import pytest

from attnflow.api import prepare
from attnflow.kinds import DecodeHead
from attnflow.mappers.catalog import latency
from attnflow.ir.spec import ScheduleSpec, SpecError, spec_from_dict
from helpers import engine_runs, stream_fill

#: the decode head's cycles after its last score: the input channel, then
#: the score, softmax and normalize templates' latencies along k -> s -> ol -> o


def head(n, d, steps, **att):
    return prepare(spec_from_dict({"model": {"seq_len": n, "head_dim": d, "attention": {
        "kind": "causal", "decode": steps, **att}}}))


@pytest.mark.parametrize("n, d, steps", [(8, 4, 4), (5, 3, 5), (12, 4, 1), (1, 2, 1),
                                         (40, 8, 6)])
def test_golden_equals_simulator_and_cycles_per_token(n, d, steps):
    design = head(n, d, steps)
    assert isinstance(design.kind, DecodeHead) and design.inputs["q"].shape == (steps, d)
    c = n - steps
    for sched in (None, ScheduleSpec(seed=4, input_gap_prob=0.4, output_ready_prob=0.5)):
        for r in engine_runs(design, sched):
            if sched is None:
                per_token = np.diff(r.output_cycles["o"]).tolist()
                assert per_token == [c + t + 1 for t in range(1, steps)]
                assert r.total_cycles == c + sum(c + t + 1 for t in range(steps)) + \
                    stream_fill(design.hw)
    acc = design.accuracy()
    assert acc["cosine"] > 0.9999 and acc["max_abs_error"] < 2 * acc["out_lsb"]


def test_decode_equals_the_causal_heads_last_rows():
    """The generated tokens' outputs are the causal head's last S rows, bit for bit (same
    keys, same ascending accumulation order from key 0)."""
    from attnflow.ir.window import window_golden
    d = head(10, 4, 3)
    full_q = prepare(spec_from_dict({"model": {"seq_len": 10, "head_dim": 4}})).inputs["q"]
    causal = window_golden(d.numerics, full_q, d.inputs["k"], d.inputs["v"], None, "causal")
    assert np.array_equal(d.inputs["q"], full_q[7:])
    # the causal head's slot order is 0, -1, -2, ...: descending keys, so compare floats
    assert np.abs(causal[7:] - d.golden()).max() <= 2


def test_bad_decode_specs_are_one_line():
    for att, field in (({"kind": "causal", "decode": 0}, "model.attention.decode"),
                       ({"kind": "causal", "decode": 9}, "model.attention.decode"),
                       ({"kind": "full", "decode": 2}, "model.attention.decode"),
                       ({"kind": "causal", "decode": 2, "variant": "naive"},
                        "model.attention.variant")):
        with pytest.raises(SpecError) as e:
            prepare(spec_from_dict({"model": {"seq_len": 8, "head_dim": 4, "attention": att}}))
        assert e.value.field == field and "\n" not in str(e.value), str(e.value)


@pytest.mark.rtl
@pytest.mark.parametrize("n, d, steps", [(8, 4, 4), (5, 3, 5)])   # (5, 3, 5): no prefill
def test_rtl_decode_head(tmp_path, n, d, steps):
    from helpers import verify_head_rtl
    spec = spec_from_dict({"name": f"decode_n{n}_s{steps}", "model": {
        "seq_len": n, "head_dim": d, "attention": {"kind": "causal", "decode": steps}}})
    result, stalled = verify_head_rtl(spec, tmp_path, min_period=2)
    print(f"[rtl decode N={n} S={steps}] {result.total_cycles} cycles, stalled "
          f"{stalled.total_cycles}: PASS")

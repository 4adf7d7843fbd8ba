"""Split-context attention of one head (``attention.split: P``, ``ir.split``,
``mappers.split``): P online-softmax engines over contiguous K/V slices and a tree of
the associative (m, l, O) combine; golden == simulator bit for bit with and without
stalls, N not a multiple of P, P = N, exact cycles when P is a power of two dividing N,
bad specs as one line; the RTL (``templates/split.py``) bit- and cycle-exact on Verilator with
and without stalls."""
from __future__ import annotations

import numpy as np
import pytest

from attnflow.api import prepare
from attnflow.kinds import SplitHead
from attnflow.build import node_costs
from attnflow.mappers.catalog import latency
from attnflow.ir.spec import ScheduleSpec, SpecError, spec_from_dict
from attnflow.ir.split import combine, leaf_depth, slice_bounds, tree_pairs
from helpers import engine_runs

def split_fill(hw) -> int:
    """A split head's cycles after the last engine's last score, before its combines:
    the input channel, split_rows, qk_slice, softmax_slice, normalize."""
    return 1 + sum(latency(t) for t in ("split_rows", "qk_slice", "softmax_slice")) + \
        hw.instances["norm"].contract.latency


def head(n, d, p, **att):
    return prepare(spec_from_dict({"model": {"seq_len": n, "head_dim": d, "attention": {
        "kind": "full", "split": p, **att}}}))


def test_slices_and_tree():
    assert slice_bounds(17, 4) == [0, 5, 9, 13, 17]
    assert tree_pairs(5) == [[(0, 1), (2, 3), (4, None)], [(0, 1), (2, None)], [(0, 1)]]
    assert [leaf_depth(5, i) for i in range(5)] == [3, 3, 3, 3, 1]


def test_combine_is_the_online_step_on_a_one_key_state():
    """Combining a row state with a one-key slice's state (m = x, l = 1.0, O = v) is
    exactly the online step on that key."""
    d = head(8, 4, 2)
    nm = d.numerics
    rng = np.random.default_rng(0)
    m, l, o = None, None, None
    x = rng.integers(-300, 300, (5, 6))
    v = rng.integers(-100, 100, (5, 6, 4))
    for j in range(6):
        m, l, o = nm.online_step(j == 0, m, l, o, x[:, j], v[:, j])
    m2, l2, o2 = None, None, None
    for j in range(5):
        m2, l2, o2 = nm.online_step(j == 0, m2, l2, o2, x[:, j], v[:, j])
    one = (x[:, 5], np.full(5, nm.one), v[:, 5] * nm.one)
    mc, lc, oc = combine(nm, (m2, l2, o2), one)
    assert np.array_equal(mc, m) and np.array_equal(lc, l) and np.array_equal(oc, o)


@pytest.mark.parametrize("n, d, p", [(16, 4, 2), (17, 4, 4), (5, 3, 5), (33, 8, 3),
                                     (2, 2, 2), (64, 8, 4)])
@pytest.mark.parametrize("stalls", [False, True])
def test_golden_equals_simulator(n, d, p, stalls):
    design = head(n, d, p)
    assert isinstance(design.kind, SplitHead)
    sched = ScheduleSpec(seed=3, input_gap_prob=0.4, input_gap_max=3,
                         output_ready_prob=0.5) if stalls else None
    for r in engine_runs(design, sched):
        if stalls:
            continue
        base = n + n * (-(-n // p)) + split_fill(design.hw)
        levels = len(tree_pairs(p))
        if n % p == 0 and p & (p - 1) == 0:   # equal slices, every leaf log2(P) deep
            assert r.total_cycles == base + latency("combine") * levels
            assert r.total_cycles == design_expected(design)
        else:                                 # early engines may run a little ahead
            assert base - n <= r.total_cycles <= base + latency("combine") * levels


def design_expected(design):
    from attnflow.build import _model_fields
    return _model_fields(design)["expected_cycles"]


def test_accuracy_and_memory():
    d = head(64, 16, 4)
    acc = d.accuracy()
    assert acc["cosine"] > 0.9999 and acc["max_abs_error"] < 2 * acc["out_lsb"]
    c = node_costs(d.hw)
    assert [c[f"qk{i}"]["memory_bits"] for i in range(4)] == [16 * 16 * 8] * 4


def test_bad_split_specs_are_one_line():
    for att, field in (({"split": 1}, "model.attention.split"),
                       ({"split": 9}, "model.attention.split"),       # P > N = 8
                       ({"split": 2, "variant": "naive"}, "model.attention.variant"),
                       ({"kind": "window", "window": 2, "split": 2}, "model.attention.split")):
        with pytest.raises(SpecError) as e:
            prepare(spec_from_dict({"model": {"seq_len": 8, "head_dim": 4,
                                              "attention": {"kind": "full", **att}}}))
        assert e.value.field == field and "\n" not in str(e.value), str(e.value)
    with pytest.raises(SpecError) as e:
        spec_from_dict({"model": {"type": "encoder", "layers": 1, "d_model": 8, "heads": 2,
                                  "d_ff": 16, "seq_len": 4, "attention": {"split": 2}}})
    assert e.value.field == "model.attention.split" and "attention_head" in str(e.value)


@pytest.mark.rtl
@pytest.mark.parametrize("n, d, p", [
    pytest.param(8, 4, 2, marks=pytest.mark.rtl_full),      # equal slices
    (7, 3, 3),      # unequal slices (3, 2, 2), a state passed up the tree unchanged (CI)
    pytest.param(4, 2, 4, marks=pytest.mark.rtl_full),      # P = N: one key per engine
])
def test_rtl_split_head(tmp_path, n, d, p):
    """``attnflow build`` + the cocotb testbench on Verilator, no stalls and a stall
    seed: every output token's bits and cycle as simulated (one Verilator build)."""
    from helpers import verify_head_rtl
    spec = spec_from_dict({"name": f"split_n{n}_p{p}", "model": {
        "seq_len": n, "head_dim": d, "attention": {"kind": "full", "split": p}}})
    result, stalled = verify_head_rtl(spec, tmp_path)
    assert stalled.total_cycles > result.total_cycles
    print(f"[rtl split N={n} d={d} P={p}] {result.total_cycles} cycles, stalled "
          f"{stalled.total_cycles}: PASS")

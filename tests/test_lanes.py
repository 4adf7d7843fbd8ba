"""Attention lanes (``attention.lanes: L``, ``templates.online.groups``): qk_scores,
kv_replay and online_softmax_pv handle L keys a firing, a row's keys in ceil(N / L)
groups, the last one padded (the window/causal templates likewise over a row's W slots). The softmax chains the L online steps of a firing in key
order, so the bits are those of one score a cycle whatever L is; the cycles are exactly
N + N * ceil(N / L) + 9. golden == simulator (both engines) with and without stalls,
N not a multiple of L, L = N; RTL bit- and cycle-exact on Verilator with and without
stalls; the estimate's multipliers scale with L; bad lanes are one line."""
from __future__ import annotations

import numpy as np
import pytest

from attnflow.api import prepare
from attnflow.build import node_costs
from attnflow.cli import main
from attnflow.ir.spec import ScheduleSpec, SpecError, spec_from_dict
from attnflow.templates.online import groups
from attnflow.targets import estimate, load_device

from helpers import engine_runs, online_cycles, stream_fill, verify_head_rtl

#: cycles after the last score group: qk (3) + softmax (1) + normalize (4) + output (1)
from attnflow.mappers.catalog import latency  # noqa: E402

#: the online head after its last score group: input channel, qk, softmax, normalize


def lanes_spec(n, d, lanes, **extra):
    return spec_from_dict({"name": f"lanes_n{n}_d{d}_l{lanes}", "model": {
        "seq_len": n, "head_dim": d, "attention": {"lanes": lanes}}, **extra})


def test_groups():
    assert [groups(8, k) for k in (1, 2, 3, 4, 8)] == [8, 4, 3, 2, 1]
    assert groups(1, 1) == 1 and groups(7, 3) == 3


@pytest.mark.parametrize("n, d, lanes", [(8, 4, 2), (7, 4, 3), (16, 4, 4), (5, 3, 5),
                                         (9, 2, 4), (33, 8, 8), (1, 2, 1)])
@pytest.mark.parametrize("stalls", [False, True])
def test_golden_equals_simulator_and_cycles(n, d, lanes, stalls):
    design = prepare(lanes_spec(n, d, lanes))
    one_lane = prepare(lanes_spec(n, d, 1))
    # lanes change the cycles, not the bits
    assert np.array_equal(design.golden(), one_lane.golden())
    sched = ScheduleSpec(seed=3, input_gap_prob=0.4, input_gap_max=3,
                         output_ready_prob=0.5) if stalls else None
    for r in engine_runs(design, sched):
        exact = online_cycles(design.hw, n, lanes)
        if stalls:
            assert r.total_cycles >= exact
        else:
            assert r.total_cycles == exact


def test_lanes_trade_multipliers_for_cycles():
    """N = 64, d = 16: cycles fall as 1 / L while the attention multipliers grow as L."""
    dev = load_device("u280")
    rows = []
    for lanes in (1, 2, 4, 8):
        design = prepare(lanes_spec(64, 16, lanes))
        cyc = design.simulate().total_cycles
        est = estimate(design.hw, device=dev)
        rows.append((lanes, cyc, est.totals["DSP"]))
        assert cyc == online_cycles(design.hw, 64, lanes)
        costs = node_costs(design.hw)
        assert costs["qk"]["multipliers"] == 16 * lanes      # d products per lane
        assert costs["softmax"]["multipliers"] == (1 + 2 * 16) * lanes   # l*e, e*v, o*e
    dsp = [r[2] for r in rows]
    assert dsp == sorted(dsp) and dsp[-1] > 4 * dsp[0]


def test_bad_lanes_are_one_line(capsys, tmp_path):
    cases = [
        ({"lanes": 9}, "model.attention.lanes: 9 lanes for a row of 8 keys"),
        ({"lanes": 0}, "model.attention.lanes"),
        ({"lanes": 2, "variant": "naive"}, "not with variant naive"),
        ({"lanes": 6, "kind": "window", "window": 2}, "6 lanes for the 5 slots of a window "
                                                      "row; allowed: 1..5"),
        ({"lanes": 2, "split": 2}, "not with split"),
        ({"lanes": 2, "kind": "causal", "decode": 2}, "not with decode"),
    ]
    for att, text in cases:
        with pytest.raises(SpecError) as e:
            prepare(spec_from_dict({"model": {"seq_len": 8, "head_dim": 4,
                                              "attention": att}}))
        msg = str(e.value)
        assert text in msg and "\n" not in msg, msg
    spec = tmp_path / "s.yaml"
    spec.write_text("model: {seq_len: 8, head_dim: 4, attention: {lanes: 16}}\n")
    assert main(["sim", str(spec)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "allowed: 1..8" in err[0], err


@pytest.mark.rtl
@pytest.mark.parametrize("n, d, lanes", [(7, 4, 3),
                                         pytest.param(9, 2, 4, marks=pytest.mark.rtl_full)])
def test_rtl_lanes(tmp_path, n, d, lanes):
    """N not a multiple of L (padding lanes in the last group)."""
    result, stalled = verify_head_rtl(lanes_spec(n, d, lanes), tmp_path)
    assert result.total_cycles == online_cycles(result.hw, n, lanes)
    assert stalled.total_cycles > result.total_cycles


@pytest.mark.rtl_full
@pytest.mark.parametrize("n, d, lanes", [(8, 4, 2), (5, 3, 5), (16, 4, 4), (12, 8, 5)])
def test_rtl_lanes_full(tmp_path, n, d, lanes):
    result, _ = verify_head_rtl(lanes_spec(n, d, lanes), tmp_path)
    assert result.total_cycles == online_cycles(result.hw, n, lanes)


def test_mapper_chooses_lanes_for_a_goal(tmp_path):
    """hardware.target_cycles: the fewest lanes meeting it; multiplier_budget: the fewest
    lanes reaching the fewest cycles within it. The build's spec.yaml records the lanes
    chosen, so verify rebuilds the same design."""
    from attnflow.api import resolved_spec
    from attnflow.ir.spec import load_spec, spec_to_dict
    from attnflow.mappers.sdpa import online_head_cycles

    def head(**hw):
        return prepare(spec_from_dict({"model": {"seq_len": 64, "head_dim": 16},
                                       "hardware": hw}))

    d = head(target_cycles=1200)
    lanes = d.hw.instances["qk"].param("lanes")
    nm = d.numerics
    assert lanes == 4 and online_head_cycles(nm, 3) > 1200 >= online_head_cycles(nm, 4)
    assert d.simulate().total_cycles == online_head_cycles(nm, 4) == 1165
    d = head(multiplier_budget=350)
    lanes = d.hw.instances["qk"].param("lanes")
    mult = sum(c["multipliers"] for c in node_costs(d.hw).values())
    # 7 lanes: 359 multipliers; 6 lanes (11 groups, 24 rows interleaved: 934 cycles) is
    # faster than 5 (13 groups, 20 rows: the last block of 4 rows pads to 20, 1170)
    assert lanes == 6 and mult <= 350
    assert sum(c["multipliers"] for c in node_costs(
        prepare(lanes_spec(64, 16, 7)).hw).values()) > 350
    r = resolved_spec(d)
    assert r.model.attention.lanes == 6 and r.hardware.multiplier_budget is None
    path = tmp_path / "r.yaml"
    import yaml
    path.write_text(yaml.safe_dump(spec_to_dict(r)))
    assert prepare(load_spec(path)).hw.instances["qk"].param("lanes") == 6


@pytest.mark.parametrize("hw, att, text", [
    ({"target_cycles": 10}, {}, "hardware.target_cycles: 10 cycles is below the fastest "
                                "head (16 lanes: 447 cycles)"),
    ({"multiplier_budget": 5}, {}, "below the one-lane head's 65"),
    ({"target_cycles": 2000}, {"lanes": 2}, "model.attention.lanes is given"),
    ({"target_cycles": 2000}, {"kind": "causal"}, "not for kind causal; set model.attention.lanes instead"),
    ({"target_cycles": 2000, "multiplier_budget": 100}, {}, "not both"),
])
def test_bad_goals_are_one_line(hw, att, text):
    with pytest.raises(SpecError) as e:
        prepare(spec_from_dict({"model": {"seq_len": 64, "head_dim": 16, "attention": att},
                                "hardware": hw}))
    assert text in str(e.value) and "\n" not in str(e.value), str(e.value)


def window_spec(n, d, kind, w, lanes):
    att = {"kind": kind, "lanes": lanes, **({"window": w} if kind == "window" else {})}
    return spec_from_dict({"name": f"{kind}_lanes_n{n}_l{lanes}", "model": {
        "seq_len": n, "head_dim": d, "attention": att}})


def window_cycles(nm, kind, w, lanes):
    """w' + N * ceil(W / L) + fill (w' = 0 for causal; a causal head without a window:
    the blocked triangle's groups per row); ``nm``: the head's numerics."""
    from attnflow.mappers.window import window_head_cycles
    return window_head_cycles(nm, w, kind, lanes)


@pytest.mark.parametrize("n, d, kind, w, lanes", [
    (16, 4, "window", 3, 2), (16, 4, "window", 3, 7), (8, 4, "window", 20, 3),
    (5, 3, "window", 2, 4), (12, 4, "window", 3, 3), (9, 4, "causal", None, 2),
    (9, 4, "causal", None, 4), (33, 8, "causal", None, 5)])
@pytest.mark.parametrize("stalls", [False, True])
def test_window_and_causal_lanes_golden_equals_simulator(n, d, kind, w, lanes, stalls):
    design = prepare(window_spec(n, d, kind, w, lanes))
    assert np.array_equal(design.golden(), prepare(window_spec(n, d, kind, w, 1)).golden())
    sched = ScheduleSpec(seed=3, input_gap_prob=0.4, input_gap_max=3,
                         output_ready_prob=0.5) if stalls else None
    for r in engine_runs(design, sched):
        exact = window_cycles(design.numerics, kind, w, lanes)
        assert r.total_cycles >= exact if stalls else r.total_cycles == exact


@pytest.mark.rtl
@pytest.mark.parametrize("n, d, kind, w, lanes", [(12, 4, "window", 3, 3),
                                                  (9, 4, "causal", None, 4)])
def test_rtl_window_and_causal_lanes(tmp_path, n, d, kind, w, lanes):
    """W = 7 slots in 3 lanes (padding lanes in each row's last group) and a causal head
    N = 9 in 4 lanes (the blocked triangle: blocks of 4 rows in 1, 2 and 3 groups, padding
    lanes in the last row's; tests/test_causal_window.py pads every row of a causal
    window)."""
    result, stalled = verify_head_rtl(window_spec(n, d, kind, w, lanes), tmp_path)
    assert result.total_cycles == window_cycles(result.hw.numerics, kind, w, lanes)
    assert stalled.total_cycles > result.total_cycles


@pytest.mark.rtl_full
@pytest.mark.parametrize("n, d, kind, w, lanes", [(5, 3, "window", 20, 2),
                                                  (16, 4, "window", 3, 7),
                                                  (9, 4, "window", 1, 1),
                                                  # blocked triangles: blocks of 6 rows in
                                                  # 2, 4, 6 groups; one block of 1 group
                                                  (16, 4, "causal", None, 3),
                                                  (6, 3, "causal", None, 6)])
def test_rtl_window_lanes_full(tmp_path, n, d, kind, w, lanes):
    result, _ = verify_head_rtl(window_spec(n, d, kind, w, lanes), tmp_path)
    assert result.total_cycles == window_cycles(result.hw.numerics, kind, w, lanes)


@pytest.mark.parametrize("att, n", [({"lanes": 3}, 7), ({"kind": "window", "window": 3, "lanes": 3}, 12),
                                    ({"kind": "causal", "lanes": 4}, 12),
                                    ({"kind": "causal", "window": 3, "lanes": 2}, 12)])
def test_build_summary_expects_the_cycles_simulated(att, n):
    """The report's expected cycles are the closed forms the simulator meets."""
    from attnflow.build import sim_summary
    design = prepare(spec_from_dict({"model": {"seq_len": n, "head_dim": 4, "attention": att}}))
    r = design.simulate()
    s = sim_summary(design, r)
    assert s["expected_cycles"] == r.total_cycles and s["lanes"] == att["lanes"]

"""Whole encoders (stacked layers) through the public API (``attnflow.api.prepare``):
the bundled examples simulate bit-exactly against the golden model, the cycle model of
the automatic folding is met exactly, the folding honours its target or budget, the
integer design stays within a stated error of the float model after every layer, and the
residual skip FIFOs are sized right (a shallower one deadlocks, named; the mapper's is
not oversized).

Simulator only; the RTL of the tiny example is tests/test_encoder_rtl.py.
"""
from __future__ import annotations

import numpy as np
import pytest

from attnflow.api import prepare, resolved_spec
from attnflow.ir.spec import ScheduleSpec, SpecError, load_spec
from attnflow.mappers.folding import multipliers

TINY = "examples/encoder_tiny.yaml"
BERT = "examples/encoder_bert_tiny.yaml"


def auto(path, *overrides):
    """The example with every linear folded automatically and no goal (its parallelism and
    multiplier budget dropped), then ``overrides``."""
    return load_spec(path, ["hardware.parallelism={}", "hardware.multiplier_budget=null",
                            *overrides])


def sim(design, schedule=None):
    r = design.simulate(schedule)
    assert r.deadlock is None, r.deadlock.describe()
    return r


# ---------------------------------------------------------------- golden == simulator

@pytest.mark.parametrize("path", [TINY, BERT])
def test_example_golden_equals_simulator_and_cycle_model(path):
    """Each bundled example, as written: 2 layers, every output element equal to the
    golden model, total cycles equal to the folding's cycle model."""
    d = prepare(path)
    assert d.spec.model.layers == 2
    r = sim(d)
    assert np.array_equal(r.outputs["y"]["x"], d.golden())
    assert r.total_cycles == d.folding.cycles
    assert len(r.output_cycles["y"]) == d.spec.model.seq_len
    print(f"[{d.spec.name}] {d.folding.describe()}; simulated {r.total_cycles} cycles")


@pytest.mark.parametrize("overrides", [
    [],                                           # balanced
    ["hardware.target_cycles=6000"],
    ["hardware.multiplier_budget=2000"],
    ["model.layers=3", "hardware.target_cycles=20000"],
    ["model.norm=rmsnorm", "model.activation=relu", "model.heads=4"],
])
def test_tiny_automatic_folding_meets_its_model_exactly(overrides):
    d = prepare(auto(TINY, *overrides))
    r = sim(d)
    assert np.array_equal(r.outputs["y"]["x"], d.golden())
    assert r.total_cycles == d.folding.cycles
    hw = d.spec.hardware
    if hw.target_cycles:
        assert r.total_cycles <= hw.target_cycles
    if hw.multiplier_budget:
        assert d.folding.multipliers <= hw.multiplier_budget
    print(f"[tiny {overrides}] {d.folding.describe()}")


def test_tiny_with_stalls_equals_golden():
    """Input gaps and output backpressure change the cycles, never the values."""
    s = load_spec(TINY, ["schedule.input_gap_prob=0.4", "schedule.output_ready_prob=0.3",
                         "schedule.seed=7"])
    d = prepare(s)
    r = sim(d)
    assert np.array_equal(r.outputs["y"]["x"], d.golden())
    # never earlier, some rows later (the last one may land on its no-stall cycle)
    free = d.simulate(ScheduleSpec()).output_cycles["y"]
    assert r.total_cycles >= d.folding.cycles and r.output_cycles["y"] != free
    assert all(a >= b for a, b in zip(r.output_cycles["y"], free))


def test_budget_and_target_choices_are_the_cheapest_that_qualify():
    """A cycle target of twice the balanced cycles needs fewer multipliers than the
    balanced folding; a budget of that many multipliers is at least as fast."""
    base = prepare(auto(TINY))
    fast = base.folding.cycles
    t = prepare(auto(TINY, f"hardware.target_cycles={2 * fast}"))
    assert t.folding.cycles <= 2 * fast and t.folding.multipliers < base.folding.multipliers
    b = prepare(auto(TINY, f"hardware.multiplier_budget={t.folding.multipliers}"))
    assert b.folding.multipliers <= t.folding.multipliers
    assert b.folding.cycles <= t.folding.cycles


def test_folding_requests_out_of_reach_are_one_line_errors():
    with pytest.raises(SpecError) as e:
        prepare(auto(TINY, "hardware.target_cycles=100"))
    assert e.value.field == "hardware.target_cycles" and "out of reach" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(SpecError) as e:
        prepare(auto(TINY, "hardware.multiplier_budget=100"))
    assert e.value.field == "hardware.multiplier_budget" and "too few" in str(e.value)


def test_resolved_spec_rebuilds_the_same_design():
    d = prepare(auto(TINY, "hardware.target_cycles=9000"))
    again = prepare(resolved_spec(d))
    assert again.folding.mode == "spec"
    assert again.folding.foldings == d.folding.foldings
    assert again.folding.cycles == d.folding.cycles


def test_multiplier_count_of_a_folding():
    """multipliers(): PE x SIMD per linear instance (Q/K/V once per head) plus the
    attention templates' 4 d_head + 1 per head."""
    d = prepare(TINY)
    m = d.spec.model
    f = d.folding.foldings
    lin = sum(pe * simd * (m.heads if op in ("attn_q", "attn_k", "attn_v") else 1)
              for layer in f for op, (pe, simd) in layer.items())
    assert multipliers(m, f) == lin + m.layers * m.heads * (4 * m.d_head + 1)


# ---------------------------------------------------------------- BERT-tiny

def test_bert_tiny_golden_equals_simulator_balanced():
    """The BERT-tiny-sized example (2 layers, d_model 128, 2 heads, d_ff 512, N 128) with
    the balanced automatic folding: bit-exact, cycles as modelled."""
    d = prepare(auto(BERT))
    r = sim(d)
    assert np.array_equal(r.outputs["y"]["x"], d.golden())
    assert r.total_cycles == d.folding.cycles == 51854
    n = d.spec.model.seq_len
    slowest = max(p.fires for p in r.process_stats() if p.name in d.hw.instances)
    assert slowest == n * n + n                      # qk_scores: N K loads + N*N scores
    print(f"[bert-tiny balanced] {r.total_cycles} cycles, slowest node {slowest} firings, "
          f"ratio {r.total_cycles / slowest:.2f}")


# ---------------------------------------------------------------- accuracy per layer

#: bounds of the integer design against the float model, per layer, on the examples'
#: random inputs (uniform in [-2, 2]) and random weights; formats.act has LSB 1/256
ACCURACY_BOUNDS = {TINY: (0.995, 0.35), BERT: (0.99, 0.6)}   # cosine >=, max abs error <=


@pytest.mark.parametrize("path", [TINY, BERT])
def test_accuracy_per_layer_against_float(path):
    d = prepare(path)
    acc = d.accuracy()
    cos_min, err_max = ACCURACY_BOUNDS[path]
    for a in acc["layers"]:
        print(f"[{d.spec.name}] layer {a['layer']}: max abs error {a['max_abs_error']:.4f} "
              f"(LSB {a['out_lsb']}, |float| <= {a['max_abs_float']:.2f}), "
              f"cosine {a['cosine']:.6f}")
        assert a["cosine"] >= cos_min
        assert a["max_abs_error"] <= err_max
    assert len(acc["layers"]) == d.spec.model.layers
    assert acc["cosine"] == acc["layers"][-1]["cosine"]


# ---------------------------------------------------------------- residual FIFOs

def test_too_shallow_residual_skip_deadlocks_and_is_named():
    """l1_skip1 (layer 1's attention residual) one row short of N: the fork of layer 1
    waits on the full skip, the report names it; the mapper's depth N runs."""
    n = 32
    d = prepare(load_spec(TINY, [f"hardware.fifo_depths={{l1_skip1: {n - 1}}}"]))
    r = d.simulate()
    assert r.deadlock is not None
    text = r.deadlock.describe()
    print("[l1_skip1 = N - 1]", text)
    assert "l1_skip1" in r.deadlock.culprits
    assert "waits on l1_skip1 (full)" in text


@pytest.mark.parametrize("path", [TINY, BERT])
def test_mapper_skip_depths_are_not_oversized(path):
    """Measured max occupancy of every residual skip against the mapper's depth: skip1
    fills to N exactly (the whole sequence must pass before the first attention row),
    skip2 to its analytic full-rate depth (within one row)."""
    d = prepare(path)
    r = sim(d)
    stats = {c.name: c for c in r.channel_stats()}
    n = d.spec.model.seq_len
    for i in range(d.spec.model.layers):
        s1, s2 = stats[f"l{i}_skip1"], stats[f"l{i}_skip2"]
        print(f"[{d.spec.name}] l{i}_skip1 depth {s1.depth} max occupancy "
              f"{s1.max_occupancy}; l{i}_skip2 depth {s2.depth} max occupancy "
              f"{s2.max_occupancy}")
        assert s1.depth == n and s1.max_occupancy == n
        assert s2.max_occupancy >= s2.depth - 1 and s2.full_stall == 0


# ---------------------------------------------------------------- folding to a device

def test_target_device_fit_check_then_automatic_folding_that_fits():
    """The balanced tiny encoder overflows a ZCU102 (the fit check names DSP and LUT and
    by how much); folding for the device (--target) finds the fastest design that fits;
    an ECP5-85F can't hold any folding and the error says what overflows."""
    from attnflow.api import prepare_for
    from attnflow.targets import estimate, fit, load_device
    zcu = load_device("zcu102")
    s = auto(TINY, "hardware.multiplier_budget=null")
    big = prepare(s)
    over = {o.resource: o for o in fit(estimate(big.hw, zcu))}
    assert {"DSP", "LUT"} <= set(over)
    print("[balanced on zcu102]", "; ".join(str(o) for o in over.values()))
    assert str(over["DSP"]).startswith("DSP: needs ") and "zcu102 has 2520" in str(over["DSP"])
    d = prepare_for(s, "zcu102")
    est = estimate(d.hw, zcu)
    assert fit(est) == []
    assert d.folding.mode == "multiplier_budget" and d.folding.cycles > big.folding.cycles
    r = sim(d)
    assert r.total_cycles == d.folding.cycles
    assert np.array_equal(r.outputs["y"]["x"], d.golden())
    print(f"[zcu102] {d.folding.describe()}; DSP {est.totals['DSP']} / 2520, "
          f"LUT {est.totals['LUT']} / {zcu.luts}")
    with pytest.raises(SpecError) as e:
        prepare_for(s, "ecp5_85f")
    assert e.value.field == "--target" and "LUT: needs" in str(e.value)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------- pre-norm (ViT)

@pytest.mark.parametrize("overrides", [
    ["model.norm_position=pre"],
    ["model.norm_position=pre", "model.final_norm=true"],
    ["model.norm_position=pre", "model.final_norm=true", "model.norm=rmsnorm",
     "model.layers=3", "hardware.target_cycles=15000"],
])
def test_pre_norm_encoder_golden_equals_simulator(overrides):
    """Pre-norm layers (ln1 before the attention, ln2 before the FFN, the residual stream
    as the output) and the final norm: bit-exact, the cycle model exact (one more fork
    per layer than post-norm, plus the final norm's latency), skips as in post-norm."""
    d = prepare(auto(TINY, *overrides))
    assert ("l0_fork_attn" in d.hw.instances) and ("l0_ln1" in d.hw.instances)
    assert ("final_ln" in d.hw.instances) == d.spec.model.final_norm
    r = sim(d)
    assert np.array_equal(r.outputs["y"]["x"], d.golden())
    assert r.total_cycles == d.folding.cycles
    post = prepare(auto(TINY, *[o for o in overrides if "norm" not in o]))
    extra = d.spec.model.layers * 1 + (4 if d.spec.model.final_norm else 0)
    assert d.folding.cycles == post.folding.cycles + extra
    stats = {c.name: c for c in r.channel_stats()}
    assert stats["l0_skip1"].max_occupancy == d.spec.model.seq_len
    assert stats["l0_skip2"].full_stall == 0
    # the pre-norm residual stream is not normalised and grows layer by layer: the error
    # bound is relative to the largest float value
    for a in d.accuracy()["layers"]:
        print(f"[pre {overrides}] layer {a['layer']}: max abs error "
              f"{a['max_abs_error']:.3f} of {a['max_abs_float']:.2f}, cosine {a['cosine']:.5f}")
        assert a["cosine"] > 0.995 and a["max_abs_error"] < 0.1 * a["max_abs_float"]


def test_vit_hf_config_builds(tmp_path):
    """A ViT-style config.json (pre-norm, final LayerNorm) becomes a buildable design."""
    import json
    cfg = {"model_type": "vit", "hidden_size": 32, "num_attention_heads": 2,
           "intermediate_size": 64, "num_hidden_layers": 2, "hidden_act": "gelu",
           "layer_norm_eps": 1e-12, "image_size": 16, "patch_size": 4, "num_channels": 3,
           "qkv_bias": True}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    d = prepare(load_spec(tmp_path / "config.json"))
    m = d.spec.model
    assert (m.seq_len, m.norm_position, m.final_norm) == (17, "pre", True)  # 16 patches + CLS
    r = sim(d)
    assert np.array_equal(r.outputs["y"]["x"], d.golden())
    assert r.total_cycles == d.folding.cycles


def test_target_device_with_a_cycle_target():
    """--target with hardware.target_cycles: a target the fitting foldings can't reach is
    one line naming both; a reachable one gives the cheapest folding meeting it."""
    from attnflow.api import prepare_for
    from attnflow.targets import estimate, fit, load_device
    with pytest.raises(SpecError) as e:
        prepare_for(auto(TINY, "hardware.target_cycles=4000"), "zcu102")
    assert e.value.field == "--target" and "target_cycles" in str(e.value)
    d = prepare_for(auto(TINY, "hardware.target_cycles=90000"), "zcu102")
    assert d.folding.cycles <= 90000 and fit(estimate(d.hw, load_device("zcu102"))) == []


def test_fixed_layer0_qkv_has_no_separate_barrier_period():
    d = prepare(auto(TINY, "hardware.target_cycles=20000", "hardware.parallelism="
                     "{layers_0_attn_q: {simd: 8}, layers_0_attn_k: {simd: 8}, "
                     "layers_0_attn_v: {simd: 8}}"))
    assert d.folding.barrier is None and "layer 0 Q/K/V" not in d.folding.describe()

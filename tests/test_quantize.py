"""Quantization from the checkpoint (``ir.quantize``, spec sections ``quantization`` and
``calibration``): weight steps from the weights, activation formats calibrated, formats
fixed by hand, the spec's validation, and the design they give (golden == simulator)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from attnflow.api import prepare
from attnflow.ir.numerics_linear import channel_mults
from attnflow.ir.quantize import (calibration_peaks, fixed_formats, frac_for, stack_formats,
                                  tensor_names, weight_scales)
from attnflow.ir.spec import SpecError, load_spec, spec_from_dict, spec_to_dict
from attnflow.ir.types import FixedFormat as F
from attnflow.ir.weights import load_weights

ENC = {"type": "encoder", "layers": 2, "d_model": 16, "heads": 2, "d_ff": 32, "seq_len": 8}


def spec(quant=None, cal=None, model=None, **top):
    d = {"model": {**ENC, **(model or {})}, **top}
    if quant is not None:
        d["quantization"] = quant
    if cal is not None:
        d["calibration"] = cal
    return spec_from_dict(d)


@pytest.mark.parametrize("max_abs, bits, want", [
    (1.0, 16, 14),          # 1.0 * 2**14 = 16384 <= 32767; 2**15 does not fit
    (0.99, 8, 7),           # 0.99 * 128 = 126.7 rounds to 127: fits
    (3.2, 8, 5),            # 3.2 * 32 = 102.4
    (1000.0, 8, 0),         # too big for any fraction: frac 0 (values saturate)
    (0.0, 12, 11),          # an all-zero tensor: the most fractional bits
    (1e-6, 16, 15),         # tiny values: capped at bits - 1
])
def test_frac_for(max_abs, bits, want):
    assert frac_for(max_abs, bits) == want
    top = (1 << (bits - 1)) - 1
    if 0 < want < bits - 1:
        assert round(max_abs * 2 ** want) <= top < round(max_abs * 2 ** (want + 1))


def test_weight_scales_per_channel_and_per_tensor():
    w = np.array([[0.5, -1.27], [0.0, 0.0], [0.1, 0.2]])
    assert weight_scales(w, 8, "per_channel") == (1.27 / 127, 1.0, 0.2 / 127)
    assert weight_scales(w, 8, "per_tensor") == (1.27 / 127,) * 3


def test_channel_mults_share_one_shift():
    factors = (0.75, 0.1, 0.0123, 0.75)
    mults, top, shift = channel_mults(factors, 16)
    assert top == max(mults) and top.bit_length() == 16
    for m, f in zip(mults, factors):
        assert abs(m * 2.0 ** -shift - f) <= 2.0 ** -(shift + 1)


def test_fixed_formats_are_the_spec_formats():
    s = spec()
    fm = fixed_formats(s)
    assert [n for n, _ in fm.formats] == tensor_names(2, False, False)
    assert fm["l1.up"] == s.formats.act and fm["q"] == s.formats.q and fm["att"] == s.formats.out


def test_calibrated_formats_follow_the_peaks(tmp_path):
    s = spec({"activations": "calibrated"}, {"seed": 5}, inputs={"range": 0.25})
    w = load_weights(s)
    peaks = calibration_peaks(s, w)
    fm = stack_formats(s, w)
    assert set(peaks) == set(tensor_names(2, False, False))
    for name, fmt in fm.formats:
        assert fmt.frac == frac_for(peaks[name], fmt.bits), name
        assert fm.source(name) == "calibrated"
    assert peaks["x"] <= 0.25 and fm["x"].frac == frac_for(peaks["x"], 16)
    # a calibration file gives the same formats as the random inputs it holds
    xs = np.random.default_rng(5).uniform(-0.25, 0.25, (1, 8, 16))
    np.save(tmp_path / "cal.npy", xs)
    s2 = spec({"activations": "calibrated"}, {"file": str(tmp_path / "cal.npy")},
              inputs={"range": 0.25})
    assert stack_formats(s2, w) == fm


def test_formats_fixed_by_hand_win():
    s = spec({"activations": "calibrated",
              "formats": {"l0.up": {"bits": 12, "frac": 3}, "q": {"bits": 10, "frac": 6}}})
    fm = stack_formats(s, load_weights(s))
    assert fm["l0.up"] == F(12, 3) and fm["q"] == F(10, 6)
    assert fm.source("l0.up") == "by hand" and fm.source("l1.up") == "calibrated"


@pytest.mark.parametrize("weights, activations", [
    ("per_channel", "calibrated"), ("per_tensor", "fixed"), ("per_channel", "fixed"),
])
def test_scaled_designs_golden_equals_simulator(weights, activations):
    """Scaled weights and calibrated formats through the whole flow: the mapper builds
    the per-tensor formats (forks, residuals, norms) and the simulator's values are the
    golden model's; the float model is unchanged."""
    s = spec({"weights": weights, "activations": activations},
             model={"weights": {"source": "random", "seed": 3, "std": 0.02},
                    "norm_position": "pre", "final_norm": True,
                    "attention": {"kind": "causal"}, "activation": "gelu_tanh"})
    d = prepare(s)
    lin = d.plans[0].lin["ffn_up"].numerics
    assert (lin.w_scales is not None) and lin.per_channel == (weights == "per_channel")
    res = d.simulate()
    assert np.array_equal(res.outputs[d.hw.outputs[0]]["x"], d.golden())
    acc = d.accuracy()
    assert acc["cosine"] > 0.999, acc


def test_per_channel_beats_fixed_on_small_weights():
    """Hugging Face's weight spread (std 0.02) in a fixed s8.6 rounds most weights to 0;
    per-channel steps keep them."""
    model = {"weights": {"source": "random", "seed": 1, "std": 0.02}}
    fixed = prepare(spec(model=model)).accuracy()["cosine"]
    scaled = prepare(spec({"weights": "per_channel"}, model=model)).accuracy()["cosine"]
    assert scaled > 0.9999 and scaled > fixed


@pytest.mark.parametrize("data, field, message", [
    ({"quantization": {"weights": "int4"}}, "quantization.weights",
     "unsupported value 'int4'; allowed: fixed, per_channel, per_tensor"),
    ({"quantization": {"activations": "minmax"}}, "quantization.activations",
     "unsupported value 'minmax'; allowed: calibrated, fixed"),
    ({"quantization": {"formats": {"l5.up": {"bits": 8, "frac": 2}}}},
     "quantization.formats.l5.up", "unknown tensor"),
    ({"quantization": {"formats": {"l0.up": {"bits": 8, "frac": 9}}}},
     "quantization.formats.l0.up.frac", "must be an integer in 0..7"),
    ({"calibration": {"headroom": 0.5}}, "calibration.headroom",
     "must be a number in [1, 1e+06], got 0.5"),
    ({"calibration": {"sed": 1}}, "calibration.sed", "unknown field; did you mean 'seed'?"),
])
def test_bad_quantization_fields(data, field, message):
    with pytest.raises(SpecError) as info:
        spec_from_dict({"model": ENC, **data})
    assert info.value.field == field and message in info.value.message, str(info.value)


def test_head_specs_refuse_quantization():
    with pytest.raises(SpecError) as info:
        spec_from_dict({"model": {"seq_len": 8, "head_dim": 4},
                        "quantization": {"weights": "per_channel"}})
    assert info.value.field == "quantization.weights"
    assert "only for model.type encoder" in info.value.message


def test_calibration_file_errors(tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((3, 8, 15)))
    s = spec({"activations": "calibrated"}, {"file": str(tmp_path / "bad.npy")})
    with pytest.raises(SpecError) as info:
        prepare(s)
    assert info.value.field == "calibration.file"
    assert "has shape (3, 8, 15); expected real hidden states (8, 16)" in info.value.message


def test_round_trip_keeps_the_sections(tmp_path):
    s = spec({"weights": "per_tensor", "activations": "calibrated",
              "formats": {"x": {"bits": 16, "frac": 12}}}, {"seed": 4, "headroom": 1.5})
    again = spec_from_dict(spec_to_dict(s))
    assert again == s


def test_hf_config_defaults_to_scales_from_the_checkpoint(tmp_path):
    cfg = {"model_type": "bert", "hidden_size": 16, "num_attention_heads": 2,
           "intermediate_size": 32, "num_hidden_layers": 1}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    s = load_spec(tmp_path, ["model.seq_len=8"])
    assert (s.quantization.weights, s.quantization.activations) == ("per_channel",
                                                                    "calibrated")
    s = load_spec(tmp_path, ["model.seq_len=8", "quantization.weights=fixed"])
    assert s.quantization.weights == "fixed"
    assert math.isclose(s.calibration.headroom, 1.0)

"""Encoder specs (attnflow.ir.spec), weight files (attnflow.ir.weights) and Hugging Face
configs (attnflow.ir.hf_config)."""
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml

from attnflow.ir.hf_config import spec_from_hf_config
from attnflow.ir.spec import (
    AttentionSpec, EncoderSpec, Folding, FormatsSpec, HardwareSpec, LINEAR_OPS, ModelSpec,
    SpecError, WeightsSpec, load_spec, parse_override, spec_from_dict, spec_to_dict,
)
from attnflow.ir.types import FixedFormat
from attnflow.ir.weights import load_weights, random_weights, weight_shapes

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ENC = {"type": "encoder", "layers": 2, "d_model": 8, "heads": 2, "d_ff": 16, "seq_len": 4}


def enc(model=None, **sections):
    """A minimal valid encoder spec dict, model fields updated by ``model``."""
    d = {"model": {**ENC, **(model or {})}}
    d.update(sections)
    return d


def spec_error(d, overrides=(), **kw) -> SpecError:
    with pytest.raises(SpecError) as info:
        spec_from_dict(d, overrides=overrides, **kw)
    err = info.value
    assert "\n" not in str(err)
    assert str(err) == f"{err.source}: {err.field}: {err.message}"
    return err


def write_safetensors(path, tensors, dtypes=None, metadata=None):
    """Write ``tensors`` (name -> array) in the safetensors layout, by hand."""
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    codes = {"float16": "F16", "float32": "F32", "float64": "F64", "int32": "I32"}
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        code = (dtypes or {}).get(name) or codes[str(arr.dtype)]
        blob = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def file_spec(tmp_path, weights: dict, suffix=".npz", model=None, writer=None):
    """An encoder spec reading ``weights`` from a file written in ``tmp_path``."""
    path = tmp_path / f"w{suffix}"
    if writer is not None:
        writer(path, weights)
    elif suffix == ".npz":
        np.savez(path, **weights)
    else:
        write_safetensors(path, weights)
    return spec_from_dict(enc({**(model or {}), "weights": {"source": "file", "path": path.name}}),
                          base_dir=tmp_path)


# ----------------------------------------------------------------------------- valid specs

def test_encoder_tiny_example():
    s = load_spec(EXAMPLES / "encoder_tiny.yaml")
    assert s.name == "encoder_tiny_n32" and s.is_encoder
    assert s.model == EncoderSpec(2, 64, 2, 256, 32)
    assert s.model.d_head == 32 and s.model.type == "encoder"
    assert s.formats == FormatsSpec()
    # every linear folded automatically (mappers.folding)
    assert s.hardware.parallelism == ()
    assert s.hardware.folding("attn_q", 0) is None


def test_encoder_bert_tiny_example_matches_hf_config():
    s = load_spec(EXAMPLES / "encoder_bert_tiny.yaml")
    assert s.model == EncoderSpec(2, 128, 2, 512, 128, norm_eps=1e-12)
    assert s.model.d_head == 64
    hf = spec_from_hf_config(EXAMPLES / "hf_bert_tiny" / "config.json", 128)
    assert hf.model == s.model and hf.formats == s.formats and hf.inputs == s.inputs
    assert {k: f for k, f in s.hardware.parallelism} == {
        "default": Folding(8, 16), "ffn_up": Folding(32, 16), "ffn_down": Folding(8, 64)}
    for op in LINEAR_OPS:   # every layer takes 128 cycles per token
        f = s.hardware.folding(op, 0)
        m, k = s.model.linear_dims(op)
        assert (m // f.pe) * (k // f.simd) == 128


def test_encoder_defaults():
    s = spec_from_dict(enc())
    m = s.model
    assert m == EncoderSpec(layers=2, d_model=8, heads=2, d_ff=16, seq_len=4)
    assert m.attention == AttentionSpec("full", "online", None)
    assert (m.norm, m.norm_position, m.final_norm, m.norm_eps, m.activation) == \
        ("layernorm", "post", False, 1e-5, "gelu")
    assert m.weights == WeightsSpec("random", 0, None, None)
    f = s.formats
    assert (f.act, f.weight, f.gamma, f.beta, f.acc_bits) == \
        (FixedFormat(16, 8), FixedFormat(8, 6), FixedFormat(16, 12), FixedFormat(16, 12), None)
    assert s.hardware == HardwareSpec(200.0, (), (), None, None)
    assert s.hardware.folding("ffn_up", 0) is None
    assert hash(s) == hash(spec_from_dict(enc()))


def test_encoder_all_fields():
    s = spec_from_dict(enc(
        {"attention": {"kind": "window", "variant": "naive", "window": 3}, "norm": "rmsnorm",
         "norm_position": "pre", "final_norm": True, "norm_eps": 1e-6, "activation": "relu",
         "weights": {"source": "random", "seed": 7, "std": 0.25}},
        formats={"act": {"bits": 12, "frac": 6}, "weight": {"bits": 6, "frac": 5},
                 "gamma": {"bits": 14}, "beta": {"frac": 4}, "acc_bits": 40},
        hardware={"parallelism": {"layers_1_attn_q": {"pe": 4}, "attn_q": {"simd": 2}},
                  "target_cycles": 1000, "multiplier_budget": 64}))
    m = s.model
    assert m.attention == AttentionSpec("window", "naive", 3)
    assert (m.norm, m.norm_position, m.final_norm, m.norm_eps, m.activation) == \
        ("rmsnorm", "pre", True, 1e-6, "relu")
    assert m.weights == WeightsSpec("random", 7, 0.25)
    assert s.formats.act == FixedFormat(12, 6) and s.formats.weight == FixedFormat(6, 5)
    assert s.formats.gamma == FixedFormat(14, 12)  # frac keeps its default
    assert s.formats.beta == FixedFormat(16, 4) and s.formats.acc_bits == 40
    h = s.hardware
    assert (h.target_cycles, h.multiplier_budget) == (1000, 64)
    # layers_1_attn_q inherits simd from attn_q; attn_q's pe defaults to 1
    assert h.parallelism == (("attn_q", Folding(1, 2)), ("layers_1_attn_q", Folding(4, 2)))
    assert h.folding("attn_q", 0) == Folding(1, 2)
    assert h.folding("attn_q", 1) == Folding(4, 2)
    assert h.folding("attn_k", 1) is None


@pytest.mark.parametrize("kind", ["full", "causal"])
def test_attention_kinds_without_window(kind):
    s = spec_from_dict(enc({"attention": {"kind": kind}}))
    assert s.model.attention == AttentionSpec(kind, "online", None)
    assert "window" not in spec_to_dict(s)["model"]["attention"]


def test_linear_dims():
    m = spec_from_dict(enc()).model
    assert {op: m.linear_dims(op) for op in LINEAR_OPS} == {
        "attn_q": (8, 8), "attn_k": (8, 8), "attn_v": (8, 8), "attn_out": (8, 8),
        "ffn_up": (16, 8), "ffn_down": (8, 16)}


def test_exponent_floats_read_as_numbers(tmp_path):
    assert parse_override("model.norm_eps=1e-12") == ("model.norm_eps", 1e-12)
    assert parse_override("model.norm_eps=2E5") == ("model.norm_eps", 2e5)
    assert parse_override("name=e5") == ("name", "e5")
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(enc()) + "")
    s = load_spec(path, ["model.norm_eps=1e-6"])
    assert s.model.norm_eps == 1e-6
    path.write_text("model: {type: encoder, layers: 1, d_model: 4, heads: 1, d_ff: 4, "
                    "seq_len: 2, norm_eps: 1e-12}\n")
    assert load_spec(path).model.norm_eps == 1e-12


def test_overrides_on_encoder():
    s = load_spec(EXAMPLES / "encoder_tiny.yaml",
                  ["model.layers=3", "hardware.parallelism.ffn_up.pe=32",
                   "hardware.parallelism.layers_2_ffn_down.simd=256",
                   "model.attention.kind=window", "model.attention.window=4"])
    assert s.model.layers == 3 and s.model.attention.window == 4
    # the example leaves parallelism empty: missing pe/simd default to 1
    assert s.hardware.folding("ffn_up", 0) == Folding(32, 1)
    assert s.hardware.folding("ffn_down", 2) == Folding(1, 256)
    assert s.hardware.folding("ffn_down", 1) is None


# ----------------------------------------------------------------------------- round trip

def test_round_trip_encoder(tmp_path):
    np.savez(tmp_path / "w.npz", x=np.zeros(1))
    s = spec_from_dict(enc(
        {"attention": {"kind": "window", "window": 2}, "norm_eps": 1e-12, "final_norm": True,
         "weights": {"source": "file", "path": "w.npz"}},
        formats={"acc_bits": 30},
        hardware={"parallelism": {"default": {"pe": 2}, "layers_0_ffn_up": {"simd": 4}},
                  "target_cycles": 99}), base_dir=tmp_path)
    d = spec_to_dict(s)
    assert d["model"]["weights"] == {"source": "file", "path": str(tmp_path / "w.npz"),
                                        "naming": "attnflow"}
    assert d["model"]["attention"] == {"kind": "window", "variant": "online", "window": 2}
    assert d["hardware"]["parallelism"] == {"default": {"pe": 2, "simd": 1},
                                            "layers_0_ffn_up": {"pe": 2, "simd": 4}}
    text = yaml.safe_dump(d, sort_keys=False)
    assert yaml.safe_load(text) == d
    assert spec_from_dict(d) == s           # the absolute path needs no base_dir
    out = tmp_path / "sub" / "spec.yaml"
    out.parent.mkdir()
    out.write_text(text)
    assert load_spec(out) == s


def test_round_trip_encoder_examples(tmp_path):
    for path in sorted(EXAMPLES.glob("encoder_*.yaml")):
        s = load_spec(path)
        out = tmp_path / path.name
        out.write_text(yaml.safe_dump(spec_to_dict(s)))
        assert load_spec(out) == s


def test_attention_head_dict_has_no_encoder_fields():
    d = spec_to_dict(load_spec(EXAMPLES / "sdpa_online.yaml"))
    assert list(d["model"]) == ["type", "seq_len", "head_dim", "attention"]
    assert d["model"]["attention"] == {"kind": "full", "variant": "online"}
    assert list(d["formats"]) == ["q", "k", "v", "out", "score_frac", "prob_frac"]
    assert list(d["hardware"]) == ["clock_mhz", "fifo_depths"]
    assert spec_from_dict(d).model == ModelSpec("attention_head", 32, 16)


# ----------------------------------------------------------------------------- spec errors

def test_heads_must_divide_d_model():
    err = spec_error(enc({"d_model": 12, "heads": 5}))
    assert str(err) == ("<dict>: model.heads: 5 heads do not divide model.d_model = 12; "
                        "valid head counts: 1, 2, 3, 4, 6, 12")


def test_unknown_encoder_field():
    err = spec_error(enc({"dmodel": 8}))
    assert str(err) == ("<dict>: model.dmodel: unknown field; did you mean 'd_model'? allowed "
                        "fields: type, layers, d_model, heads, d_ff, seq_len, attention, norm, "
                        "norm_position, final_norm, norm_eps, activation, weights")


def test_head_dim_in_encoder():
    err = spec_error(enc({"head_dim": 4}))
    assert err.field == "model.head_dim"
    assert err.message.startswith("not an encoder field: an encoder's head width is "
                                  "d_model / heads; allowed fields: type, layers,")


def test_encoder_field_in_attention_head():
    err = spec_error({"model": {"seq_len": 4, "head_dim": 4, "layers": 2}})
    assert str(err) == ("<dict>: model.layers: an encoder field: set model.type: encoder; "
                        "allowed fields: type, seq_len, head_dim, attention")
    err = spec_error({"model": {"seq_len": 4, "head_dim": 4}, "formats": {"act": {"bits": 8}}})
    assert str(err) == ("<dict>: formats.act: only for model.type encoder; allowed fields: "
                        "q, k, v, out, score_frac, prob_frac")
    err = spec_error({"model": {"seq_len": 4, "head_dim": 4},
                      "hardware": {"parallelism": {"default": {"pe": 2}}}})
    assert err.field == "hardware.parallelism"
    assert err.message.startswith("only for model.type encoder")
    err = spec_error({"model": {"seq_len": 4, "head_dim": 4, "attention": {"window": 2}}})
    assert err.field == "model.attention.window"


def test_unknown_model_type():
    err = spec_error({"model": {"type": "decoder"}})
    assert str(err) == ("<dict>: model.type: unsupported value 'decoder'; "
                        "allowed: attention_head, encoder")


def test_window_kind_without_window():
    err = spec_error(enc({"attention": {"kind": "window"}}))
    assert str(err) == ("<dict>: model.attention.window: required for kind window: give an "
                        "integer >= 1 (query i sees keys j with |i - j| <= window)")


def test_window_with_other_kind():
    err = spec_error(enc({"attention": {"kind": "full", "window": 4}}))
    assert str(err) == ("<dict>: model.attention.window: only for kind window or causal "
                        "(kind is full); remove it or set model.attention.kind: window or causal")
    err = spec_error(enc({"attention": {"kind": "window", "window": 0}}))
    assert str(err) == "<dict>: model.attention.window: must be an integer >= 1, got 0"


def test_unsupported_attention_kind_in_encoder():
    err = spec_error(enc({"attention": {"kind": "sparse"}}))
    assert err.message == "unsupported value 'sparse'; allowed: causal, full, window"


@pytest.mark.parametrize("missing", ["layers", "d_model", "heads", "d_ff", "seq_len"])
def test_encoder_required_fields(missing):
    model = dict(ENC)
    del model[missing]
    err = spec_error({"model": model})
    assert str(err) == (f"<dict>: model.{missing}: required field is missing; "
                        "give an integer >= 1")


@pytest.mark.parametrize("model, field, message", [
    ({"layers": 0}, "model.layers", "must be an integer >= 1, got 0"),
    ({"d_ff": 2.5}, "model.d_ff", "must be an integer >= 1, got 2.5"),
    ({"norm": "batchnorm"}, "model.norm", "unsupported value 'batchnorm'; allowed: layernorm, rmsnorm"),
    ({"norm_position": "sandwich"}, "model.norm_position",
     "unsupported value 'sandwich'; allowed: post, pre"),
    ({"final_norm": 1}, "model.final_norm", "must be true or false, got 1"),
    ({"norm_eps": 0}, "model.norm_eps", "must be a number > 0, got 0"),
    ({"norm_eps": "1e-5x"}, "model.norm_eps", "must be a number > 0, got '1e-5x' (str)"),
    ({"activation": "swish"}, "model.activation", "unsupported value 'swish'; allowed: gelu, "
     "gelu_fast, gelu_tanh, quick_gelu, relu, silu"),
    ({"weights": {"source": "hub"}}, "model.weights.source",
     "unsupported value 'hub'; allowed: file, random"),
    ({"weights": {"std": -1}}, "model.weights.std", "must be a number > 0, got -1"),
    ({"weights": {"seed": -1}}, "model.weights.seed", "must be an integer >= 0, got -1"),
    ({"weights": {"path": "w.npz"}}, "model.weights.path",
     "only for source file; set model.weights.source: file to read weights from a file"),
    ({"weights": {"source": "file"}}, "model.weights.path",
     "required for source file: the .npz or .safetensors file (relative to the spec file's folder)"),
    ({"weights": {"source": "file", "path": "w.npz", "seed": 3}}, "model.weights.seed",
     "only for source random (a weights file fixes every value)"),
    ({"weights": {"source": "file", "path": "w.pt"}}, "model.weights.path",
     "unsupported file type '.pt' of 'w.pt'; allowed: .npz, .safetensors, .onnx (naming onnx)"),
])
def test_bad_encoder_fields(model, field, message):
    err = spec_error(enc(model))
    assert (err.field, err.message) == (field, message)


def test_weights_file_not_found(tmp_path):
    err = spec_error(enc({"weights": {"source": "file", "path": "nope.npz"}}), base_dir=tmp_path)
    assert str(err) == f"<dict>: model.weights.path: file not found: {tmp_path / 'nope.npz'}"


def test_weights_path_relative_to_spec_file(tmp_path):
    (tmp_path / "sub").mkdir()
    np.savez(tmp_path / "sub" / "w.npz", x=np.zeros(1))
    spec = tmp_path / "sub" / "spec.yaml"
    spec.write_text(yaml.safe_dump(enc({"weights": {"source": "file", "path": "w.npz"}})))
    assert load_spec(spec).model.weights.path == str(tmp_path / "sub" / "w.npz")


@pytest.mark.parametrize("formats, field", [
    ({"act": {"bits": 8, "frac": 6}}, "formats.act"),
    ({"weight": {"bits": 1}}, "formats.weight.bits"),
    ({"gamma": {"bits": 8, "frac": 8}}, "formats.gamma.frac"),
    ({"acc_bits": 63}, "formats.acc_bits"),
    ({"acc_bits": True}, "formats.acc_bits"),
    ({"bias": {"bits": 8}}, "formats.bias"),
])
def test_bad_encoder_formats(formats, field):
    assert spec_error(enc(formats=formats)).field == field


def test_act_must_hold_input_range():
    err = spec_error(enc(formats={"act": {"bits": 8, "frac": 6}}))
    assert str(err) == ("<dict>: formats.act: s8.6 holds [-2, 1.984]; inputs.range 2.0 does not "
                        "fit (the encoder input X is in formats.act): raise formats.act.bits or "
                        "lower formats.act.frac")
    # q/k/v/out are computed in an encoder, so the input range does not bind them
    s = spec_from_dict(enc(formats={"q": {"bits": 4, "frac": 3}}))
    assert s.formats.q == FixedFormat(4, 3)


def test_parallelism_must_divide():
    err = spec_error(enc(hardware={"parallelism": {"default": {"pe": 3}}}))
    # Q/K/V are one linear per head: PE divides d_model / heads = 4
    assert str(err) == ("<dict>: hardware.parallelism.default.pe: PE 3 does not divide M = 4 "
                        "(d_model / heads: one linear per head) of attn_q; allowed PE values "
                        "for attn_q: 1, 2, 4")
    err = spec_error(enc(hardware={"parallelism": {"attn_k": {"pe": 8}}}))
    assert err.field == "hardware.parallelism.attn_k.pe" and "M = 4" in err.message
    err = spec_error(enc(hardware={"parallelism": {"ffn_down": {"simd": 32}}}))
    assert str(err) == ("<dict>: hardware.parallelism.ffn_down.simd: SIMD 32 does not divide "
                        "K = 16 (d_ff) of ffn_down; allowed SIMD values for ffn_down: 1, 2, 4, 8, 16")
    # inherited from default into a layer key: blamed on default
    err = spec_error(enc(hardware={"parallelism": {"default": {"simd": 16}, "attn_v": {"simd": 8}}}))
    assert err.field == "hardware.parallelism.default.simd" and "of attn_q" in err.message
    # an op covered by its own key does not check default against it
    s = spec_from_dict(enc(hardware={"parallelism": {
        "default": {"pe": 16}, **{op: {"pe": 4} for op in LINEAR_OPS if op != "ffn_up"}}}))
    assert s.hardware.folding("ffn_up", 0) == Folding(16, 1)


@pytest.mark.parametrize("par, field, start", [
    ({"ffn_upp": {"pe": 2}}, "hardware.parallelism.ffn_upp",
     "unknown layer op; did you mean 'ffn_up'? allowed: default, attn_q, attn_k, attn_v, "
     "attn_out, ffn_up, ffn_down, or layers_<i>_<op> with i in 0..1"),
    ({"layers_2_ffn_up": {"pe": 2}}, "hardware.parallelism.layers_2_ffn_up",
     "layer 2 does not exist: model.layers = 2 (layers 0..1)"),
    ({"default": {"pe": 0}}, "hardware.parallelism.default.pe", "must be an integer >= 1, got 0"),
    ({"default": {"pes": 2}}, "hardware.parallelism.default.pes", "unknown field; did you mean"),
    ({"default": 4}, "hardware.parallelism.default", "must be a mapping with fields pe, simd"),
])
def test_bad_parallelism(par, field, start):
    err = spec_error(enc(hardware={"parallelism": par}))
    assert err.field == field and err.message.startswith(start)


def test_bad_folding_targets():
    assert spec_error(enc(hardware={"target_cycles": 0})).field == "hardware.target_cycles"
    err = spec_error(enc(hardware={"multiplier_budget": "lots"}))
    assert str(err) == ("<dict>: hardware.multiplier_budget: must be an integer >= 1, "
                        "got 'lots' (str)")


# ----------------------------------------------------------------------------- weights

def full_weights(spec, dtype=np.float32):
    return {n: a.astype(dtype) for n, a in random_weights(spec.model).items()}


def test_weight_names_and_shapes():
    m = spec_from_dict(enc()).model
    shapes = weight_shapes(m)
    assert list(shapes)[:14] == [
        "layers.0.attn.q.weight", "layers.0.attn.q.bias", "layers.0.attn.k.weight",
        "layers.0.attn.k.bias", "layers.0.attn.v.weight", "layers.0.attn.v.bias",
        "layers.0.attn.out.weight", "layers.0.attn.out.bias", "layers.0.ln1.gamma",
        "layers.0.ln1.beta", "layers.0.ffn.up.weight", "layers.0.ffn.up.bias",
        "layers.0.ffn.down.weight", "layers.0.ffn.down.bias"]
    assert len(shapes) == 2 * 16
    assert shapes["layers.1.ffn.up.weight"] == (16, 8)
    assert shapes["layers.1.ffn.down.weight"] == (8, 16)
    assert shapes["layers.1.ln2.beta"] == (8,)
    rms = spec_from_dict(enc({"norm": "rmsnorm", "final_norm": True})).model
    names = set(weight_shapes(rms))
    assert not any(n.endswith(".beta") for n in names)
    assert "final_norm.gamma" in names and len(names) == 2 * 14 + 1


def test_random_weights_deterministic_and_per_layer():
    s = spec_from_dict(enc())
    w = load_weights(s)
    assert {n: a.shape for n, a in w.items()} == weight_shapes(s.model)
    assert all(a.dtype == np.float64 for a in w.values())
    again = load_weights(spec_from_dict(enc()))
    assert all(np.array_equal(w[n], again[n]) for n in w)
    three = load_weights(spec_from_dict(enc({"layers": 3})))
    assert all(np.array_equal(w[n], three[n]) for n in w)     # layer i does not depend on L
    other = load_weights(spec_from_dict(enc({"weights": {"seed": 1}})))
    assert not np.array_equal(w["layers.0.attn.q.weight"], other["layers.0.attn.q.weight"])
    assert not np.array_equal(w["layers.0.attn.q.weight"], w["layers.0.attn.k.weight"])


def test_random_weight_statistics():
    s = spec_from_dict(enc({"d_model": 64, "d_ff": 256, "layers": 1}))
    w = load_weights(s)
    assert abs(w["layers.0.attn.q.weight"].std() - 1 / 8) < 0.01      # 1/sqrt(64)
    assert abs(w["layers.0.ffn.down.weight"].std() - 1 / 16) < 0.005  # 1/sqrt(256)
    assert abs(w["layers.0.ln1.gamma"].mean() - 1) < 0.05
    fixed = load_weights(spec_from_dict(enc({"d_model": 64, "d_ff": 256, "layers": 1,
                                             "weights": {"std": 0.02}})))
    assert abs(fixed["layers.0.ffn.up.weight"].std() - 0.02) < 0.002


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_weights_file_loads(tmp_path, suffix):
    want = full_weights(spec_from_dict(enc()))
    want["embeddings.extra"] = np.ones(3, np.float32)          # extra tensors are ignored
    s = file_spec(tmp_path, want, suffix)
    got = load_weights(s)
    assert set(got) == set(weight_shapes(s.model))
    for n, a in got.items():     # float32 in the file: kept float32 (exact), else float64
        assert a.dtype == (np.float32 if want[n].dtype == np.float32 else np.float64)
        assert np.array_equal(a, want[n].astype(np.float64))


def test_safetensors_dtypes(tmp_path):
    base = full_weights(spec_from_dict(enc()), np.float64)
    w = {n: a.astype(np.float16 if i % 2 else np.float64) for i, (n, a) in enumerate(base.items())}
    bf = np.array([1.5, -2.25, 0.0078125, -2.0 ** 28] * 2, np.float32)  # exact in bfloat16
    name = "layers.0.ln1.gamma"
    w[name] = (bf.view(np.uint32) >> 16).astype(np.uint16)
    s = file_spec(tmp_path, w, ".safetensors",
                  writer=lambda p, t: write_safetensors(p, t, {name: "BF16"}, {"format": "pt"}))
    got = load_weights(s)
    assert np.array_equal(got[name], bf.astype(np.float64))
    other = "layers.0.attn.q.bias"
    assert np.array_equal(got[other], w[other].astype(np.float64))


def test_safetensors_written_by_the_safetensors_package(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    want = full_weights(spec_from_dict(enc()))
    s = file_spec(tmp_path, want, ".safetensors", writer=lambda p, t: st.save_file(t, str(p)))
    got = load_weights(s)
    assert all(np.array_equal(got[n], want[n].astype(np.float64)) for n in got)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_weights_file_missing_tensor(tmp_path, suffix):
    w = full_weights(spec_from_dict(enc()))
    del w["layers.1.ffn.up.weight"]
    s = file_spec(tmp_path, w, suffix)
    with pytest.raises(SpecError) as info:
        load_weights(s)
    path = tmp_path / f"w{suffix}"
    assert str(info.value) == (f"<dict>: model.weights.path: tensor 'layers.1.ffn.up.weight' "
                               f"[16, 8] is missing from {path}")


def test_weights_file_missing_several(tmp_path):
    w = full_weights(spec_from_dict(enc()))
    s = file_spec(tmp_path, {n: a for n, a in w.items() if not n.startswith("layers.1.")})
    with pytest.raises(SpecError) as info:
        load_weights(s)
    assert info.value.message.endswith(f"is missing from {tmp_path / 'w.npz'} (and 15 more)")
    assert "'layers.1.attn.q.weight' [8, 8]" in info.value.message


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_weights_file_misshaped_tensor(tmp_path, suffix):
    w = full_weights(spec_from_dict(enc()))
    w["layers.0.ffn.down.weight"] = w["layers.0.ffn.down.weight"].T.copy()
    s = file_spec(tmp_path, w, suffix)
    with pytest.raises(SpecError) as info:
        load_weights(s)
    assert str(info.value) == (
        f"<dict>: model.weights.path: tensor 'layers.0.ffn.down.weight' in {tmp_path / f'w{suffix}'} "
        "has shape [16, 8], expected [8, 16]")


@pytest.mark.parametrize("suffix, shown", [(".npz", "int32"), (".safetensors", "I32")])
def test_weights_file_unsupported_dtype(tmp_path, suffix, shown):
    w = full_weights(spec_from_dict(enc()))
    w["layers.0.attn.q.bias"] = np.zeros(8, np.int32)
    s = file_spec(tmp_path, w, suffix)
    with pytest.raises(SpecError) as info:
        load_weights(s)
    assert str(info.value) == (
        f"<dict>: model.weights.path: tensor 'layers.0.attn.q.bias' in {tmp_path / f'w{suffix}'} "
        f"has unsupported dtype {shown}; allowed: float16, float32, float64 "
        "(safetensors: F16, BF16, F32, F64)")


def test_weights_file_non_finite(tmp_path):
    w = full_weights(spec_from_dict(enc()))
    w["layers.1.ln2.gamma"][3] = np.nan
    with pytest.raises(SpecError) as info:
        load_weights(file_spec(tmp_path, w))
    assert info.value.message == (f"tensor 'layers.1.ln2.gamma' in {tmp_path / 'w.npz'} holds "
                                  "non-finite values (nan or inf)")


@pytest.mark.parametrize("content, start", [
    (b"\x01\x02", "is not a safetensors file: shorter than its 8-byte header length"),
    (struct.pack("<Q", 1000) + b"{}", "is not a safetensors file: header length 1000 exceeds"),
    (struct.pack("<Q", 2) + b"[]", "is not a safetensors file: its header is not a JSON object"),
    (struct.pack("<Q", 3) + b"{x}", "is not a safetensors file: its header is not JSON"),
])
def test_corrupt_safetensors(tmp_path, content, start):
    path = tmp_path / "w.safetensors"
    path.write_bytes(content)
    s = spec_from_dict(enc({"weights": {"source": "file", "path": str(path)}}))
    with pytest.raises(SpecError) as info:
        load_weights(s)
    assert info.value.field == "model.weights.path"
    assert info.value.message.startswith(f"{path} {start}")


def test_safetensors_offsets_checked(tmp_path):
    path = tmp_path / "w.safetensors"
    w = full_weights(spec_from_dict(enc()))
    write_safetensors(path, w)
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header["layers.0.attn.q.bias"]["data_offsets"][1] += 4
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n:])
    with pytest.raises(SpecError) as info:
        load_weights(spec_from_dict(enc({"weights": {"source": "file", "path": str(path)}})))
    assert "entry 'layers.0.attn.q.bias'" in info.value.message
    assert "bytes, F32 [8] needs 32" in info.value.message


def test_npz_not_an_archive(tmp_path):
    path = tmp_path / "w.npz"
    path.write_text("hello")
    s = spec_from_dict(enc({"weights": {"source": "file", "path": str(path)}}))
    with pytest.raises(SpecError) as info:
        load_weights(s)
    assert info.value.message.startswith(f"cannot read {path} as a numpy .npz archive")


def test_load_weights_needs_an_encoder():
    with pytest.raises(SpecError) as info:
        load_weights(load_spec(EXAMPLES / "sdpa_online.yaml"))
    assert info.value.field == "model.type"


# ----------------------------------------------------------------------------- HF configs

def hf(tmp_path, cfg, seq_len=64, overrides=(), folder="model"):
    d = tmp_path / folder
    d.mkdir(exist_ok=True)
    path = d / "config.json"
    path.write_text(json.dumps(cfg))
    return spec_from_hf_config(path, seq_len, overrides), path


def hf_error(tmp_path, cfg, seq_len=64, overrides=()) -> tuple[SpecError, Path]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(SpecError) as info:
        spec_from_hf_config(path, seq_len, overrides)
    assert "\n" not in str(info.value)
    return info.value, path


BERT = {"model_type": "bert", "hidden_size": 128, "num_attention_heads": 2,
        "intermediate_size": 512, "num_hidden_layers": 2, "hidden_act": "gelu",
        "layer_norm_eps": 1e-12, "max_position_embeddings": 512}


def test_hf_bert_tiny_example():
    path = EXAMPLES / "hf_bert_tiny" / "config.json"
    s = spec_from_hf_config(path, 128)
    assert s.name == "hf_bert_tiny" and s.source == str(path)
    assert s.model == EncoderSpec(layers=2, d_model=128, heads=2, d_ff=512, seq_len=128,
                                  norm="layernorm", norm_position="post", final_norm=False,
                                  norm_eps=1e-12, activation="gelu")
    assert spec_from_hf_config(path.parent, 128) == s                      # the folder
    assert load_spec(path, ["model.seq_len=128"]) == s                     # via load_spec
    assert load_spec(path.parent, ["model.seq_len=128"]) == s


def test_hf_overrides():
    path = EXAMPLES / "hf_bert_tiny" / "config.json"
    s = spec_from_hf_config(path, 32, ["model.attention.variant=naive", "name=bt",
                                       "hardware.parallelism.default.pe=8"])
    assert s.name == "bt" and s.model.attention.variant == "naive"
    assert s.hardware.folding("ffn_down", 1) == Folding(8, 1)


def test_hf_round_trip(tmp_path):
    s = spec_from_hf_config(EXAMPLES / "hf_bert_tiny", 16)
    out = tmp_path / "spec.yaml"
    out.write_text(yaml.safe_dump(spec_to_dict(s)))
    assert load_spec(out) == s


@pytest.mark.parametrize("model_type", ["bert", "roberta", "xlm-roberta", "camembert", "electra"])
def test_hf_bert_family(tmp_path, model_type):
    s, _ = hf(tmp_path, {**BERT, "model_type": model_type, "hidden_act": "gelu_new",
                         "layer_norm_eps": 1e-5})
    assert (s.model.d_model, s.model.heads, s.model.d_ff, s.model.layers) == (128, 2, 512, 2)
    assert (s.model.activation, s.model.norm_eps, s.model.norm_position) == \
        ("gelu_tanh", 1e-5, "post")


def test_hf_defaults_and_inferred_type(tmp_path):
    cfg = {k: v for k, v in BERT.items() if k not in ("model_type", "hidden_act", "layer_norm_eps")}
    s, _ = hf(tmp_path, cfg)
    assert (s.model.activation, s.model.norm_eps) == ("gelu", 1e-12)


def test_hf_distilbert(tmp_path):
    cfg = {"model_type": "distilbert", "dim": 768, "n_heads": 12, "hidden_dim": 3072,
           "n_layers": 6, "activation": "gelu", "max_position_embeddings": 512,
           "sinusoidal_pos_embds": False, "dropout": 0.1, "qa_dropout": 0.1}
    s, _ = hf(tmp_path, cfg, 128, folder="distilbert-base")
    assert s.name == "distilbert_base"
    assert s.model == EncoderSpec(6, 768, 12, 3072, 128, norm_eps=1e-12)
    assert s.model.d_head == 64
    del cfg["model_type"]                                 # inferred from dim / n_heads
    assert hf(tmp_path, cfg, 128, folder="d2")[0].model == s.model
    err, path = hf_error(tmp_path, {**cfg, "activation": "mish"})
    assert err.field == "activation"


@pytest.mark.parametrize("model_type, seq_len", [("vit", 197), ("deit", 198)])
def test_hf_vit(tmp_path, model_type, seq_len):
    cfg = {"model_type": model_type, "hidden_size": 192, "num_attention_heads": 3,
           "intermediate_size": 768, "num_hidden_layers": 12, "hidden_act": "gelu",
           "layer_norm_eps": 1e-12, "image_size": 224, "patch_size": 16, "num_channels": 3,
           "qkv_bias": True, "encoder_stride": 16}
    s, _ = hf(tmp_path, cfg, None)
    assert s.model == EncoderSpec(12, 192, 3, 768, seq_len, norm_position="pre",
                                  final_norm=True, norm_eps=1e-12)
    assert hf(tmp_path, cfg, 50)[0].model.seq_len == 50      # an explicit length wins
    assert len(weight_shapes(s.model)) == 12 * 16 + 2        # + final_norm gamma, beta


def test_hf_seq_len_required(tmp_path):
    err, path = hf_error(tmp_path, BERT, None)
    assert str(err) == (f"{path}: model.seq_len: a bert config has no sequence length: give one, "
                        "e.g. --set model.seq_len=128 (this model has at most 512 positions)")
    s = spec_from_hf_config(path, None, ["model.seq_len=8"])
    assert s.model.seq_len == 8


def test_hf_seq_len_above_positions(tmp_path):
    err, path = hf_error(tmp_path, BERT, 513)
    assert str(err) == (f"{path}: model.seq_len: 513 tokens exceed this model's 512 positions "
                        "(max_position_embeddings 512); use at most 512")
    err, _ = hf_error(tmp_path, {**BERT, "model_type": "roberta", "max_position_embeddings": 514,
                                 "pad_token_id": 1}, 513)
    assert "exceed this model's 512 positions (max_position_embeddings 514 less pad_token_id + 1" \
        in err.message


def test_hf_unsupported_activation(tmp_path):
    err, path = hf_error(tmp_path, {**BERT, "hidden_act": "mish"})
    assert str(err) == (f"{path}: hidden_act: unsupported value 'mish'; allowed: gelu, "
                        "gelu_fast, gelu_new, gelu_python, gelu_python_tanh, gelu_pytorch_tanh, "
                        "quick_gelu, relu, silu, swish")


def test_hf_several_unsupported_fields(tmp_path):
    err, path = hf_error(tmp_path, {**BERT, "hidden_act": "mish", "is_decoder": True,
                                    "position_embedding_type": "relative_key"})
    assert str(err) == (
        f"{path}: hidden_act, position_embedding_type, is_decoder: cannot build: hidden_act: "
        "unsupported value 'mish'; allowed: gelu, gelu_fast, gelu_new, gelu_python, "
        "gelu_python_tanh, gelu_pytorch_tanh, quick_gelu, relu, silu, swish; "
        "position_embedding_type: 'relative_key' adds relative-position "
        "terms inside the attention scores, which are not built; allowed: absolute; is_decoder: "
        "true: decoders of this family are not supported (GPT-2-style ones are: model_type "
        "gpt2)")


def test_hf_vit_without_qkv_bias(tmp_path):
    err, path = hf_error(tmp_path, {"model_type": "vit", "hidden_size": 64,
                                    "num_attention_heads": 2, "intermediate_size": 128,
                                    "num_hidden_layers": 1, "qkv_bias": False})
    assert str(err) == (f"{path}: qkv_bias: false (a boolean): Q/K/V without biases are not "
                        "supported (every encoder layer has biases)")


def test_hf_heads_must_divide(tmp_path):
    err, path = hf_error(tmp_path, {**BERT, "num_attention_heads": 3})
    assert str(err) == (f"{path}: num_attention_heads: 3 heads do not divide hidden_size = 128; "
                        "valid head counts: 1, 2, 4, 8, 16, 32, 64, 128")


@pytest.mark.parametrize("cfg, field, message", [
    ({**BERT, "model_type": "gpt_neo"}, "model_type",
     "unsupported value 'gpt_neo'; allowed: bert, camembert, deit, distilbert, electra, gpt2, "
     "roberta, vit, xlm-roberta (encoders and GPT-2-style decoders)"),
    ({"n_embd": 4}, "model_type", "missing, and the keys are not those of a supported model; "
     "allowed model types: bert, camembert, deit, distilbert, electra, gpt2, roberta, vit, "
     "xlm-roberta"),
    ({k: v for k, v in BERT.items() if k != "intermediate_size"}, "intermediate_size",
     "required for model_type bert (the model's d_ff); give an integer >= 1"),
    ({**BERT, "hidden_size": "128"}, "hidden_size", "must be an integer >= 1, got '128' (str)"),
    ({**BERT, "layer_norm_eps": -1}, "layer_norm_eps", "must be a number > 0, got -1"),
])
def test_hf_bad_values(tmp_path, cfg, field, message):
    err, _ = hf_error(tmp_path, cfg)
    assert (err.field, err.message) == (field, message)


def test_hf_bad_files(tmp_path):
    with pytest.raises(SpecError) as info:
        spec_from_hf_config(tmp_path / "none.json", 8)
    assert info.value.message == "file not found"
    for text, start in (("{", "invalid JSON: Expecting property name"),
                        ("[1]", "a Hugging Face config is a JSON object"),
                        ('{"a": 1, "a": 2}', "invalid JSON: duplicate key 'a'")):
        path = tmp_path / "config.json"
        path.write_text(text)
        with pytest.raises(SpecError) as info:
            spec_from_hf_config(path, 8)
        assert info.value.field == "<file>" and info.value.message.startswith(start)


def test_hf_weights_file_relative_to_config(tmp_path):
    s, path = hf(tmp_path, {**BERT, "num_hidden_layers": 1}, 8)
    w = random_weights(s.model)
    np.savez(path.parent / "weights.npz", **w)
    s2 = spec_from_hf_config(path, 8, ["model.weights={source: file, path: weights.npz}"])
    got = load_weights(s2)
    assert all(np.array_equal(got[n], w[n]) for n in w)


def test_spec_written_as_json_is_not_an_hf_config(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(enc()))
    assert load_spec(path) == spec_from_dict(enc())

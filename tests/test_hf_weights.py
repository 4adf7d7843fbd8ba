"""Hugging Face checkpoints as weights (``model.weights.naming``, ``ir/weights.py``).

The checkpoints here are written by this file from the family's own layout (the tensor
names and shapes of ``transformers``' BERT, DistilBERT, ViT and GPT-2 modules, GPT-2's
``Conv1D`` storing ``[in, out]`` with Q, K, V side by side in ``c_attn``), so loading
them must give back exactly the weights they were made from; and a float GPT-2 block
written here straight from the checkpoint tensors must equal attnflow's float model on
those weights."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from attnflow.api import prepare
from attnflow.ir.encoder_golden import encoder_plans, final_norm_plan, layer_float
from attnflow.ir.spec import SpecError, load_spec, spec_from_dict
from attnflow.ir.weights import load_weights, random_weights

from test_spec_encoder import write_safetensors

D, HEADS, FF, LAYERS = 8, 2, 16, 2

CONFIGS = {
    "bert": {"model_type": "bert", "hidden_size": D, "num_attention_heads": HEADS,
             "intermediate_size": FF, "num_hidden_layers": LAYERS},
    "distilbert": {"model_type": "distilbert", "dim": D, "n_heads": HEADS, "hidden_dim": FF,
                   "n_layers": LAYERS},
    "vit": {"model_type": "vit", "hidden_size": D, "num_attention_heads": HEADS,
            "intermediate_size": FF, "num_hidden_layers": LAYERS, "image_size": 8,
            "patch_size": 4},
    "gpt2": {"model_type": "gpt2", "n_embd": D, "n_head": HEADS, "n_inner": FF,
             "n_layer": LAYERS, "n_positions": 32},
}
#: how each family names layer i's parts (the checkpoint's own layout)
LAYER = {
    "bert": ("encoder.layer.{i}.", {"q": "attention.self.query", "k": "attention.self.key",
                                    "v": "attention.self.value",
                                    "out": "attention.output.dense",
                                    "ln1": "attention.output.LayerNorm",
                                    "up": "intermediate.dense", "down": "output.dense",
                                    "ln2": "output.LayerNorm"}),
    "distilbert": ("transformer.layer.{i}.", {"q": "attention.q_lin", "k": "attention.k_lin",
                                              "v": "attention.v_lin",
                                              "out": "attention.out_lin",
                                              "ln1": "sa_layer_norm", "up": "ffn.lin1",
                                              "down": "ffn.lin2",
                                              "ln2": "output_layer_norm"}),
    "vit": ("encoder.layer.{i}.", {"q": "attention.attention.query",
                                   "k": "attention.attention.key",
                                   "v": "attention.attention.value",
                                   "out": "attention.output.dense", "ln1": "layernorm_before",
                                   "up": "intermediate.dense", "down": "output.dense",
                                   "ln2": "layernorm_after"}),
}
FINAL = {"vit": "layernorm", "gpt2": "ln_f"}
OURS = {"q": "attn.q", "k": "attn.k", "v": "attn.v", "out": "attn.out", "up": "ffn.up",
        "down": "ffn.down"}


def checkpoint(family: str, w: dict, prefix: str = "") -> dict:
    """attnflow weights ``w`` -> the family's checkpoint tensors."""
    out = {}
    for i in range(LAYERS):
        a = f"layers.{i}."
        if family == "gpt2":
            h = f"h.{i}."
            out[h + "attn.c_attn.weight"] = np.concatenate(
                [w[a + f"attn.{p}.weight"].T for p in "qkv"], axis=1)      # [d, 3d]
            out[h + "attn.c_attn.bias"] = np.concatenate([w[a + f"attn.{p}.bias"]
                                                          for p in "qkv"])
            for ours, theirs in (("attn.out", "attn.c_proj"), ("ffn.up", "mlp.c_fc"),
                                 ("ffn.down", "mlp.c_proj")):
                out[h + theirs + ".weight"] = w[a + ours + ".weight"].T   # Conv1D [in, out]
                out[h + theirs + ".bias"] = w[a + ours + ".bias"]
            for ln, theirs in (("ln1", "ln_1"), ("ln2", "ln_2")):
                out[h + theirs + ".weight"] = w[a + ln + ".gamma"]
                out[h + theirs + ".bias"] = w[a + ln + ".beta"]
            continue
        stem, parts = LAYER[family]
        stem = stem.format(i=i)
        for key, theirs in parts.items():
            if key.startswith("ln"):
                out[stem + theirs + ".weight"] = w[a + key + ".gamma"]
                out[stem + theirs + ".bias"] = w[a + key + ".beta"]
            else:
                out[stem + theirs + ".weight"] = w[a + OURS[key] + ".weight"]
                out[stem + theirs + ".bias"] = w[a + OURS[key] + ".bias"]
    if family in FINAL:
        out[FINAL[family] + ".weight"] = w["final_norm.gamma"]
        out[FINAL[family] + ".bias"] = w["final_norm.beta"]
    return {prefix + k: v for k, v in out.items()}


def hf_folder(tmp_path, family, tensors=None, prefix="", seq_len=8):
    """A config.json (+ model.safetensors of random weights) folder; returns (folder,
    the attnflow weights written)."""
    folder = tmp_path / family
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIGS[family]))
    over = [] if family == "vit" else [f"model.seq_len={seq_len}"]
    ref = random_weights(load_spec(folder, over).model)
    tensors = checkpoint(family, ref, prefix) if tensors is None else tensors
    write_safetensors(folder / "model.safetensors", tensors)
    return folder, over, ref


@pytest.mark.parametrize("family, prefix", [("bert", ""), ("bert", "bert."),
                                            ("distilbert", "distilbert."), ("vit", "vit."),
                                            ("gpt2", ""), ("gpt2", "transformer.")])
def test_checkpoint_loads_to_the_weights_it_was_made_from(tmp_path, family, prefix):
    folder, over, ref = hf_folder(tmp_path, family, prefix=prefix)
    spec = load_spec(folder, over)
    assert spec.model.weights.source == "file" and spec.model.weights.naming == family
    got = load_weights(spec)
    assert sorted(got) == sorted(ref)
    for name in ref:
        assert np.array_equal(got[name], ref[name]), name


def test_extra_tensors_and_an_lm_head_are_ignored(tmp_path):
    folder = tmp_path / "g"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIGS["gpt2"]))
    ref = random_weights(load_spec(folder, ["model.seq_len=8"]).model)
    t = checkpoint("gpt2", ref, "transformer.")
    t["lm_head.weight"] = np.zeros((5, D))
    t["transformer.wte.weight"] = np.zeros((5, D))
    write_safetensors(folder / "model.safetensors", t)
    got = load_weights(load_spec(folder, ["model.seq_len=8"]))
    assert all(np.array_equal(got[k], ref[k]) for k in ref)


def gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def gelu_new(x):
    """GPT-2's activation (``gelu_new``): the tanh form."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def gpt2_float(t: dict, x, heads: int, eps: float):
    """GPT-2's blocks and ln_f in float, straight from checkpoint tensors ``t``."""
    def ln(v, name):
        mu = v.mean(-1, keepdims=True)
        var = ((v - mu) ** 2).mean(-1, keepdims=True)
        return (v - mu) / np.sqrt(var + eps) * t[name + ".weight"] + t[name + ".bias"]

    def conv1d(v, name):
        return v @ t[name + ".weight"] + t[name + ".bias"]

    n, d = x.shape
    dh = d // heads
    mask = np.tril(np.ones((n, n), bool))
    for i in range(LAYERS):
        h = f"h.{i}."
        qkv = conv1d(ln(x, h + "ln_1"), h + "attn.c_attn")
        q, k, v = qkv[:, :d], qkv[:, d:2 * d], qkv[:, 2 * d:]
        outs = []
        for j in range(heads):
            sl = slice(j * dh, (j + 1) * dh)
            s = np.where(mask, q[:, sl] @ k[:, sl].T / math.sqrt(dh), -np.inf)
            p = np.exp(s - s.max(-1, keepdims=True))
            outs.append((p / p.sum(-1, keepdims=True)) @ v[:, sl])
        x = x + conv1d(np.concatenate(outs, 1), h + "attn.c_proj")
        x = x + conv1d(gelu_new(conv1d(ln(x, h + "ln_2"), h + "mlp.c_fc")), h + "mlp.c_proj")
    return ln(x, "ln_f")


def test_gpt2_float_model_equals_the_checkpoints_own_forward(tmp_path):
    """The loaded weights mean what GPT-2 means by them: attnflow's float stack (pre-norm
    layers + final norm) on the loaded weights equals GPT-2's forward written from the
    checkpoint tensors (GPT-2's gelu_new, the tanh form, in both)."""
    folder, over, ref = hf_folder(tmp_path, "gpt2")
    spec = load_spec(folder, over)
    w = load_weights(spec)
    x = np.random.default_rng(0).normal(0, 1, (8, D))
    y = x
    for plan in encoder_plans(spec, w):
        y = layer_float(plan, y)
    y = final_norm_plan(spec, w).float(y)
    want = gpt2_float(checkpoint("gpt2", ref), x, HEADS, spec.model.norm_eps)
    assert np.abs(y - want).max() < 1e-9 and np.abs(want).max() > 0.5


def test_checkpoint_design_golden_equals_simulator(tmp_path):
    folder, over, _ = hf_folder(tmp_path, "gpt2")
    design = prepare(load_spec(folder, over))
    r = design.simulate(engine="fast")
    assert r.deadlock is None
    assert np.array_equal(r.outputs[next(iter(r.outputs))]["x"], design.golden())
    assert design.accuracy()["cosine"] > 0.99
    from attnflow.build import sim_summary
    text = sim_summary(design, r)["model_text"]
    assert text.endswith("weights from model.safetensors (gpt2 names)"), text


def test_without_a_checkpoint_or_with_a_weights_override_weights_are_random(tmp_path):
    folder, over, _ = hf_folder(tmp_path, "bert")
    spec = load_spec(folder, over + ["model.weights.source=random"])
    assert spec.model.weights.source == "random"
    (folder / "model.safetensors").unlink()
    assert load_spec(folder, over).model.weights.source == "random"


def one_line(fn) -> str:
    with pytest.raises(SpecError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


def test_bad_checkpoints_are_one_line(tmp_path):
    # a BERT checkpoint read as GPT-2
    folder, over, ref = hf_folder(tmp_path, "bert")
    bert_file = folder / "model.safetensors"
    msg = one_line(lambda: load_weights(spec_from_dict({"model": {
        "type": "encoder", "layers": LAYERS, "d_model": D, "heads": HEADS, "d_ff": FF,
        "seq_len": 8, "weights": {"source": "file", "path": str(bert_file),
                                  "naming": "gpt2"}}})))
    assert "no tensor named 'h.0.attn.c_attn.weight'" in msg and "allowed" not in msg
    assert "set model.weights.naming to the file's naming, one of: attnflow, bert" in msg
    # a missing tensor
    folder, over, ref2 = hf_folder(tmp_path, "gpt2")
    t = checkpoint("gpt2", ref2)
    del t["h.1.mlp.c_fc.bias"]
    (folder / "model.safetensors").unlink()
    write_safetensors(folder / "model.safetensors", t)
    msg = one_line(lambda: load_weights(load_spec(folder, over)))
    assert "tensor 'h.1.mlp.c_fc.bias' [16] is missing from" in msg
    assert "(weights.naming gpt2)" in msg
    # Q/K/V not fused in c_attn's layout: wrong shape, named in the file's terms
    t["h.1.mlp.c_fc.bias"] = np.zeros(FF)
    t["h.0.attn.c_attn.weight"] = np.zeros((3 * D, D))
    (folder / "model.safetensors").unlink()
    write_safetensors(folder / "model.safetensors", t)
    msg = one_line(lambda: load_weights(load_spec(folder, over)))
    assert msg.endswith("tensor 'h.0.attn.c_attn.weight' in "
                        f"{folder / 'model.safetensors'} has shape [24, 8], expected [8, 24]")
    # two models in one file
    t2 = {**checkpoint("bert", ref, "a."), **checkpoint("bert", ref, "b.")}
    bert_file.unlink()
    write_safetensors(bert_file, t2)
    msg = one_line(lambda: load_weights(load_spec(bert_file.parent, ["model.seq_len=8"])))
    assert "2 tensors in" in msg and "more than one model" in msg


@pytest.mark.parametrize("weights, text", [
    ({"source": "random", "naming": "bert"},
     "model.weights.naming: only for source file; set model.weights.source: file"),
    ({"source": "file", "path": "w.safetensors", "naming": "llama"},
     "model.weights.naming: unsupported value 'llama'; allowed: attnflow, bert, distilbert, "
     "gpt2, onnx, vit"),
])
def test_bad_naming_fields_are_one_line(tmp_path, weights, text):
    write_safetensors(tmp_path / "w.safetensors", {"x": np.zeros(1)})
    msg = one_line(lambda: spec_from_dict({"model": {
        "type": "encoder", "layers": 1, "d_model": D, "heads": HEADS, "d_ff": FF,
        "seq_len": 8, "weights": weights}}, base_dir=tmp_path))
    assert text in msg, msg


def test_an_unread_checkpoint_is_an_error_not_random_weights(tmp_path):
    folder, over, _ = hf_folder(tmp_path, "gpt2")
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    msg = one_line(lambda: load_spec(folder, over))
    assert msg.endswith("model.weights: " + str(folder / "pytorch_model.bin") + " is not read "
                        "(only a single model.safetensors); save the model as "
                        "model.safetensors, or --set model.weights.source=random for random "
                        "weights"), msg
    assert load_spec(folder, over + ["model.weights.source=random"]).model.weights.source \
        == "random"


def test_tensorflow_era_layernorm_names_are_read(tmp_path):
    """Google's converted BERT checkpoints keep ``LayerNorm.gamma`` / ``.beta``."""
    sub = tmp_path / "legacy"
    sub.mkdir()
    folder, over, ref = hf_folder(sub, "bert")
    t = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias",
                                                                   "LayerNorm.beta"): v
         for k, v in checkpoint("bert", ref, "bert.").items()}
    assert any(k.endswith("LayerNorm.gamma") for k in t)
    (folder / "model.safetensors").unlink()
    write_safetensors(folder / "model.safetensors", t)
    got = load_weights(load_spec(folder, over))
    assert all(np.array_equal(got[k], ref[k]) for k in ref)


def test_a_final_norm_the_family_lacks_and_a_one_array_npz_are_one_line(tmp_path):
    folder, over, _ = hf_folder(tmp_path, "bert")
    msg = one_line(lambda: load_weights(load_spec(folder, over + ["model.final_norm=true"])))
    assert msg.endswith("model.final_norm: a bert checkpoint has no norm after the last "
                        "layer; set model.final_norm: false, or a naming with one (vit, "
                        "gpt2)"), msg
    np.save(tmp_path / "one.npy", np.zeros(3))
    (tmp_path / "one.npy").rename(tmp_path / "one.npz")
    msg = one_line(lambda: load_weights(spec_from_dict({"model": {
        "type": "encoder", "layers": 1, "d_model": D, "heads": HEADS, "d_ff": FF,
        "seq_len": 8, "weights": {"source": "file", "path": "one.npz", "naming": "gpt2"}}},
        base_dir=tmp_path)))
    assert "holds a single array, not a .npz archive of named arrays" in msg, msg

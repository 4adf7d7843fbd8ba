"""attnflow against transformers itself (the optional extra: ``pip install -e '.[hf]'``;
``make test-hf`` runs these; CI does not, it has no torch).

Each test builds a small model of one family from its config with the family's own
random initialisation (``from_config``), saves it with ``save_pretrained``
(``config.json`` + ``model.safetensors``), runs attnflow on the folder and compares, on the
family's own hidden states (its embeddings of random tokens, a random image for ViT),
with transformers' forward of the same blocks in float64 (``attnflow.hf_reference``):

* attnflow's float model after every layer: max abs error <= 1e-9;
* the integer design (int8 weights scaled per output channel, activation formats
  calibrated on other hidden states of the family): cosine >= 0.999 after every layer
  (the bound of this file), and the simulator's output equals the golden model's.

The real-sized checks (BERT-base dimensions at N = 128, GPT-2 small at N = 256, cosine >=
0.99 at the last layer) are marked ``slow`` too: ``pytest -m "hf and slow"``.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from attnflow import hf_reference as hf  # noqa: E402

pytestmark = pytest.mark.hf

#: the bounds this file asserts
FLOAT_BOUND = 1e-9
TINY_COSINE = 0.999
REAL_COSINE = 0.99

TINY = dict(num_hidden_layers=2, num_attention_heads=2, hidden_size=64, intermediate_size=256)
#: name -> (family, config, N)
MODELS = {
    "bert": ("bert", dict(TINY, max_position_embeddings=64, vocab_size=500), 32),
    "bert_silu": ("bert", dict(TINY, hidden_act="silu", max_position_embeddings=64,
                               vocab_size=500), 24),
    "roberta": ("roberta", dict(TINY, max_position_embeddings=64, vocab_size=500), 32),
    "distilbert": ("distilbert", dict(dim=64, n_layers=2, n_heads=2, hidden_dim=256,
                                      max_position_embeddings=64, vocab_size=500), 32),
    "distilbert_relu": ("distilbert", dict(dim=64, n_layers=2, n_heads=4, hidden_dim=128,
                                           activation="relu", max_position_embeddings=64,
                                           vocab_size=500), 16),
    "vit": ("vit", dict(TINY, image_size=16, patch_size=4), 17),
    "gpt2": ("gpt2", dict(n_embd=64, n_layer=2, n_head=2, n_positions=64, vocab_size=500,
                          bos_token_id=0, eos_token_id=0), 32),
    "gpt2_fast": ("gpt2", dict(n_embd=64, n_layer=2, n_head=4, n_positions=64, vocab_size=500,
                               activation_function="gelu_fast", bos_token_id=0,
                               eos_token_id=0), 20),
    "gpt2_pytorch_tanh": ("gpt2", dict(n_embd=32, n_layer=3, n_head=2, n_positions=64,
                                       vocab_size=500, activation_function="gelu_pytorch_tanh",
                                       bos_token_id=0, eos_token_id=0), 16),
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")

    def make(name, family, config):
        folder = root / name
        if not (folder / "model.safetensors").is_file():
            hf.make_checkpoint(family, config, folder)
        return folder
    return make


@pytest.mark.parametrize("name", list(MODELS))
def test_family_float_and_integer_against_transformers(checkpoints, name):
    family, config, n = MODELS[name]
    folder = checkpoints(name, family, config)
    c = hf.compare(folder, family, n)
    for i, (f, q) in enumerate(zip(c.float_model, c.integer)):
        assert f["max_abs_error"] <= FLOAT_BOUND, (name, i, f)
        assert q["cosine"] >= TINY_COSINE, (name, i, q)
    assert c.float_model[-1]["max_abs_ref"] > 0.5       # not a vanishing output
    design = c.design
    spec = design.spec
    assert (spec.quantization.weights, spec.quantization.activations) == (
        "per_channel", "calibrated")
    res = design.simulate()
    assert res.deadlock is None
    assert np.array_equal(res.outputs[design.hw.outputs[0]]["x"], design.golden())


def test_activation_names_reach_the_design(checkpoints):
    """GPT-2's default gelu_new is the tanh GELU (4.8e-4 from the erf GELU at x ~ 2.7,
    far above the float bound), BERT's silu is SiLU."""
    expect = {"gpt2": "gelu_tanh", "gpt2_fast": "gelu_fast",
              "gpt2_pytorch_tanh": "gelu_tanh", "bert_silu": "silu", "bert": "gelu",
              "distilbert_relu": "relu"}
    from attnflow.ir.spec import load_spec
    for name, act in expect.items():
        family, config, n = MODELS[name]
        spec = load_spec(checkpoints(name, family, config), [f"model.seq_len={n}"])
        assert spec.model.activation == act, name


@pytest.mark.slow
@pytest.mark.parametrize("name, family, config, n", [
    ("bert_base", "bert", dict(hf.bert_base(), vocab_size=1000), 128),
    ("gpt2_small", "gpt2", dict(hf.gpt2_small(), vocab_size=1000, bos_token_id=0,
                                eos_token_id=0), 256),
])
def test_real_sizes_against_transformers(checkpoints, name, family, config, n):
    """BERT-base and GPT-2 small dimensions, int8 weights: cosine >= 0.99 at the last
    layer (and the float model within the float bound at every layer)."""
    c = hf.compare(checkpoints(name, family, config), family, n)
    assert all(f["max_abs_error"] <= FLOAT_BOUND for f in c.float_model), c.float_model
    assert c.integer[-1]["cosine"] >= REAL_COSINE, c.integer

"""The ONNX front-end on graphs that ``torch.onnx.export`` writes from transformers' models
(the optional extra ``attnflow[hf]`` plus ``onnx``/``onnxruntime``; marker ``hf``, not in
CI; ``make test-hf`` runs it).

Each case builds a small random-init model of one family (the family's own
initialisation), exports it at the exporter's default opset (the torch.export-based
exporter, opset 20 here) or at opset 14 (the TorchScript exporter), with or without an
``attention_mask`` input (taken as all ones: no padding), with transformers' eager or
SDPA attention (``torch.nn.functional.scaled_dot_product_attention``, which the exporters
decompose with the scale on Q and K), reads the .onnx with
attnflow and compares at the stack output on the family's own hidden states (its
embeddings of random tokens; a random image for ViT), with onnxruntime running the
recognised stack cut out of the exported graph (``attnflow.onnx_reference``):

* attnflow's float model: max abs error <= 1e-5;
* the integer design (int8 weights per output channel, activations calibrated on other
  hidden states): cosine >= 0.999, and the simulator's output equals the golden model's.
"""
from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from attnflow import hf_reference as hf  # noqa: E402
from attnflow.onnx_reference import compare, export_model  # noqa: E402

pytestmark = pytest.mark.hf

FLOAT_BOUND = 1e-5
COSINE = 0.999

TINY = dict(num_hidden_layers=2, num_attention_heads=2, hidden_size=64, intermediate_size=256)
#: name -> (family, config, N)
MODELS = {
    "bert": ("bert", dict(TINY, max_position_embeddings=64, vocab_size=500), 32),
    "distilbert": ("distilbert", dict(dim=64, n_layers=2, n_heads=2, hidden_dim=256,
                                      max_position_embeddings=64, vocab_size=500), 32),
    "gpt2": ("gpt2", dict(n_embd=64, n_layer=2, n_head=2, n_positions=64, vocab_size=500,
                          bos_token_id=0, eos_token_id=0), 32),
    "vit": ("vit", dict(TINY, image_size=16, patch_size=4), 17),
}
#: exporter settings: (opset, dynamo, dynamic sequence axis, attention_mask input,
#: transformers' attention implementation)
EXPORTERS = {"default": (None, True, True, False, "eager"),
             "opset14": (14, False, True, False, "eager"),
             "default_mask": (None, True, True, True, "eager"),
             "opset14_mask": (14, False, True, True, "eager"),
             "default_sdpa": (None, True, True, True, "sdpa"),
             "opset14_sdpa": (14, False, True, True, "sdpa")}


@pytest.mark.parametrize("exporter", list(EXPORTERS))
@pytest.mark.parametrize("name", list(MODELS))
def test_exported_family_against_onnxruntime(tmp_path, name, exporter):
    family, config, n = MODELS[name]
    opset, dynamo, dynamic, mask, attention = EXPORTERS[exporter]
    mask = mask and family != "vit"             # ViT has no attention_mask input
    if family == "vit" and exporter.endswith("_mask"):
        pytest.skip("ViT has no attention_mask input")
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = export_model(family, config, path, n, opset, dynamo, dynamic,
                             attention_mask=mask, attention=attention)
    model = copy.deepcopy(model).double()       # the family's hidden states in float64
    x = hf.hidden_states(model, family, n, 0)
    np.save(tmp_path / "cal.npy", hf.hidden_states(model, family, n, 1))
    c = compare(path, x, n, calibration=tmp_path / "cal.npy")
    assert c.float_model["max_abs_error"] <= FLOAT_BOUND, c.float_model
    assert c.integer["cosine"] >= COSINE, c.integer
    assert c.float_model["max_abs_ref"] > 0.5
    m = c.design.spec.model
    assert m.attention.kind == ("causal" if family == "gpt2" else "full")
    assert m.norm_position == ("pre" if family in ("gpt2", "vit") else "post")
    res = c.design.simulate()
    assert res.deadlock is None
    assert np.array_equal(res.outputs[c.design.hw.outputs[0]]["x"], c.design.golden())

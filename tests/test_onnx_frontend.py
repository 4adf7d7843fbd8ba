"""The ONNX front-end (ir/onnx_frontend.py) on hand-built graphs in the exporters' shapes
(tests/onnx_graphs.py; no torch): the recognised spec, attnflow's float model against
onnxruntime at the stack output (max abs error <= 1e-5; the expected values come from
onnxruntime), the integer design (cosine) and the simulator against the golden model,
and one-line errors for bad input."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from attnflow.cli import main  # noqa: E402
from attnflow.ir.spec import SpecError, load_spec  # noqa: E402
from attnflow.onnx_reference import compare  # noqa: E402

from onnx_graphs import bert_like, gpt2_like  # noqa: E402

FLOAT_BOUND = 1e-5
COSINE = 0.99


def _save(tmp_path, model, name="model.onnx", **kw):
    path = tmp_path / name
    onnx.save(model, str(path), **kw)
    return path


def _hidden(n, d, seed):
    return np.random.default_rng(seed).uniform(-2.0, 2.0, (n, d))


@pytest.mark.parametrize("opset", [14, 17])
def test_bert_like_layer_against_onnxruntime(tmp_path, opset):
    path = _save(tmp_path, bert_like(opset=opset, layers=2))
    spec = load_spec(path)
    m = spec.model
    assert (m.layers, m.d_model, m.heads, m.d_ff, m.seq_len) == (2, 16, 2, 32, 8)
    assert (m.norm_position, m.final_norm, m.activation, m.attention.kind) == \
        ("post", False, "gelu", "full")
    c = compare(path, _hidden(8, 16, 0))
    assert c.float_model["max_abs_error"] <= FLOAT_BOUND, c.float_model
    assert c.integer["cosine"] >= COSINE, c.integer


@pytest.mark.parametrize("opset", [14, 18])
def test_gpt2_like_causal_layer_against_onnxruntime(tmp_path, opset):
    path = _save(tmp_path, gpt2_like(opset=opset))
    m = load_spec(path).model
    assert (m.attention.kind, m.norm_position, m.final_norm, m.activation) == \
        ("causal", "pre", True, "gelu_tanh")
    c = compare(path, _hidden(8, 16, 1))
    assert c.float_model["max_abs_error"] <= FLOAT_BOUND, c.float_model
    assert c.integer["cosine"] >= COSINE, c.integer


@pytest.mark.parametrize("act, name", [("gelu_op", "gelu"), ("relu", "relu")])
def test_activation_forms(tmp_path, act, name):
    path = _save(tmp_path, bert_like(act=act))
    assert load_spec(path).model.activation == name
    assert compare(path, _hidden(8, 16, 2)).float_model["max_abs_error"] <= FLOAT_BOUND


def test_sim_cli_reports_skipped_nodes_and_matches_golden(tmp_path, capsys):
    path = _save(tmp_path, gpt2_like(dynamic=True))
    assert main(["sim", str(path), "--seq-len", "8"]) == 0
    out = capsys.readouterr().out
    assert "golden mismatches 0" in out
    assert "skipped 1 nodes before the stack (embeddings): Gather x1" in out
    assert "skipped 1 nodes after the stack (pooler, heads, extra outputs): MatMul x1" in out


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def test_not_onnx(tmp_path, capsys):
    bad = tmp_path / "model.onnx"
    bad.write_text("this is not a protobuf\n" * 3)
    assert "not an ONNX model" in _error(capsys, ["sim", str(bad)])


def test_unsupported_op_inside_the_stack(tmp_path, capsys):
    path = _save(tmp_path, bert_like(act="sin"))
    err = _error(capsys, ["sim", str(path)])
    assert "(op Sin) in layer 0's feed-forward activation" in err
    assert "not supported; expected there: an activation: Gelu" in err


def test_unsupported_op_between_layers(tmp_path, capsys):
    path = _save(tmp_path, bert_like(layers=2, between="Abs"))
    err = _error(capsys, ["sim", str(path)])
    assert "(op Abs) in between layers 0 and 1: not supported" in err


def test_scores_scaled_otherwise(tmp_path, capsys):
    path = _save(tmp_path, bert_like(scale=2.0))
    err = _error(capsys, ["sim", str(path)])
    assert "(op Softmax) in layer 0's attention: not supported; expected there: scores " \
           "scaled by 1/sqrt(d_head) = 0.353553 (this graph scales them by 0.5)" in err


def test_attention_mask_input_is_named(tmp_path, capsys):
    path = _save(tmp_path, bert_like())
    assert main(["sim", str(path)]) == 0
    assert "attention mask built from graph input(s) attention_mask taken as all ones " \
           "(no padding)" in capsys.readouterr().out


def test_dynamic_sequence_needs_seq_len(tmp_path, capsys):
    path = _save(tmp_path, gpt2_like(dynamic=True))
    err = _error(capsys, ["sim", str(path)])
    assert "dynamic dimension 1 (seq): give the sequence length, e.g. --seq-len" in err


def test_static_graph_other_seq_len(tmp_path):
    path = _save(tmp_path, gpt2_like())
    with pytest.raises(SpecError, match="exported for 8 .static shapes.; use --seq-len 8"):
        load_spec(path, ["model.seq_len=16"])


def test_missing_external_data(tmp_path, capsys):
    path = _save(tmp_path, bert_like(), save_as_external_data=True,
                 all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    (tmp_path / "weights.bin").unlink()
    err = _error(capsys, ["sim", str(path)])
    assert "external file 'weights.bin', which is missing" in err


def test_external_data_present(tmp_path):
    path = _save(tmp_path, bert_like(), save_as_external_data=True,
                 all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    assert load_spec(path).model.layers == 1

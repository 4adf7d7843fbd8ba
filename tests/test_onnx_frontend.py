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
from attnflow.onnx_reference import compare, stack_input  # noqa: E402

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


_DIST = np.subtract.outer(np.arange(8), np.arange(8))


@pytest.mark.parametrize("keep, attention", [
    (np.abs(_DIST) <= 2, {"kind": "window", "window": 2}),
    ((_DIST >= 0) & (_DIST <= 3), {"kind": "causal", "window": 3}),
])
def test_window_masks_against_onnxruntime(tmp_path, keep, attention):
    path = _save(tmp_path, gpt2_like(keep=keep))
    a = load_spec(path).model.attention
    assert {"kind": a.kind, "window": a.window} == attention
    c = compare(path, _hidden(8, 16, 4))
    assert c.float_model["max_abs_error"] <= FLOAT_BOUND, c.float_model
    assert c.integer["cosine"] >= COSINE, c.integer


def test_other_mask_is_one_line(tmp_path, capsys):
    keep = np.ones((8, 8), bool)
    keep[0, 5] = False
    err = _error(capsys, ["sim", str(_save(tmp_path, gpt2_like(keep=keep)))])
    assert "(op Softmax) in layer 0's attention: not supported; expected there: no mask, " \
           "a causal mask" in err


@pytest.mark.parametrize("opset", [17, 23])
def test_rmsnorm_stack_against_onnxruntime(tmp_path, opset):
    path = _save(tmp_path, gpt2_like(opset=opset, rms=True))
    m = load_spec(path).model
    assert (m.norm, m.norm_eps, m.final_norm) == ("rmsnorm", 1e-6, True)
    c = compare(path, _hidden(8, 16, 3))
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
    assert "model.onnx: <file>: file not found" in _error(capsys, ["sim", str(tmp_path / "no" /
                                                                          "model.onnx")])


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


def _qdq(tmp_path):
    """bert_like quantized by onnxruntime's static quantization (QDQ, int8 weights per
    channel, int8 activations), calibrated on the model's own inputs."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    plain = _save(tmp_path, bert_like(opset=17, layers=2), "plain.onnx")
    rng = np.random.default_rng(0)
    batches = iter([{"input_ids": rng.integers(0, 50, (1, 8)),
                     "attention_mask": np.ones((1, 8), np.int64)} for _ in range(8)])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(batches, None)
    qdq = tmp_path / "qdq.onnx"
    quantize_static(str(plain), str(qdq), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, weight_type=QuantType.QInt8,
                    activation_type=QuantType.QInt8)
    return plain, qdq


def _feeds(seed):
    return {"input_ids": np.random.default_rng(seed).integers(0, 50, (1, 8)),
            "attention_mask": np.ones((1, 8), np.int64)}


def test_qdq_graph_weights_exact_and_output_against_onnxruntime(tmp_path):
    from onnx import numpy_helper

    from attnflow.ir.onnx_frontend import recognise
    from attnflow.ir.quantize import weight_scales
    plain, qdq = _qdq(tmp_path)
    stack = recognise(qdq)
    assert stack.qdq[0] > 0 and stack.qdq[1] > 0
    # every activation the graph quantizes gets a format holding the quantizer's range
    from attnflow.ir.quantize import tensor_names
    by_hand = dict(load_spec(qdq).quantization.formats)
    assert set(by_hand) == set(tensor_names(2, False, False)), sorted(by_hand)
    for name, peak in stack.act_ranges:
        fmt = by_hand[name]
        assert fmt.max_value >= peak * (1 - 2 ** -fmt.frac) and fmt.max_value < 2 * peak
    # every int8 weight of the graph is the design's own per-channel integer
    model = onnx.load(str(qdq))
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    ints = {}
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and init.get(n.input[0]) is not None \
                and init[n.input[0]].dtype == np.int8 and init[n.input[0]].ndim == 2:
            ints[n.output[0]] = (init[n.input[0]].T, init[n.input[1]])
    found = 0
    for name, w in stack.weights.items():
        if not name.endswith(".weight"):
            continue
        steps = np.asarray(weight_scales(w, 8, "per_channel"))
        match = [q for q, s in ints.values() if q.shape == w.shape
                 and np.allclose(q * s[:, None], w, rtol=0, atol=0)]
        assert len(match) == 1, name
        assert np.array_equal(np.rint(w / steps[:, None]), match[0]), name
        found += 1
    assert found == 12
    x = stack_input(qdq, _feeds(10))
    np.save(tmp_path / "cal.npy", stack_input(qdq, _feeds(11)))
    c = compare(qdq, x, calibration=tmp_path / "cal.npy")
    assert c.integer["cosine"] >= 0.99, c.integer


@pytest.mark.parametrize("bits", [4, 8])
def test_qonnx_graph_against_qonnx_executor(tmp_path, bits):
    """QONNX Quant nodes (per-channel weights of ``bits`` bits, 8-bit activations), the
    expected values from QONNX's own executor: the weight format is the graph's, every
    linear's integers are the graph's, and the integer design is within cosine 0.99."""
    pytest.importorskip("qonnx")
    from attnflow.ir.onnx_frontend import recognise
    path = _save(tmp_path, bert_like(layers=2, qonnx_bits=bits))
    spec = load_spec(path)
    assert spec.formats.weight.bits == bits
    stack = recognise(path)
    assert stack.exact == (12, 12) and stack.qdq == (12, 12)
    np.save(tmp_path / "cal.npy", _hidden(8, 16, 1))
    c = compare(path, _hidden(8, 16, 0), calibration=tmp_path / "cal.npy", executor="qonnx")
    assert c.integer["cosine"] >= 0.99, c.integer

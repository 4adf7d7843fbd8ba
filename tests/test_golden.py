"""IR, lowering and the golden model: integer pipeline vs float attention."""
import numpy as np
import pytest

from attnflow.api import prepare
from attnflow.ir.graph import Graph, IRError, infer_types, interpret
from attnflow.ir.lower import lower_attention
from attnflow.ir.types import TensorType

from helpers import spec

#: accuracy bounds of the integer pipeline against float attention (same quantised inputs)
MAX_ERR_LSB = 1.5        # in output LSBs (s16.8 -> 1.5 * 2^-8 = 0.0059)
MIN_COSINE = 0.9995


@pytest.mark.parametrize("variant", ["naive", "online"])
@pytest.mark.parametrize("n,d", [(8, 4), (32, 16), (128, 16), (12, 4)])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_integer_pipeline_accuracy(variant, n, d, seed):
    design = prepare(spec(variant, n, d, f"inputs.seed={seed}"))
    acc = design.accuracy()
    assert acc["max_abs_error"] <= MAX_ERR_LSB * acc["out_lsb"], acc
    assert acc["cosine"] >= MIN_COSINE, acc


@pytest.mark.parametrize("variant", ["naive", "online"])
def test_lowered_float_graph_is_attention(variant):
    design = prepare(spec(variant, 16, 8))
    fl = {k: v / 16.0 for k, v in design.inputs.items()}
    ref = interpret(design.graph, fl, "float")["o"]
    low = interpret(design.lowered, fl, "float")["o"]
    q, k, v = fl["q"], fl["k"], fl["v"]
    s = q @ k.T / np.sqrt(8)
    p = np.exp(s - s.max(1, keepdims=True))
    assert np.allclose(ref, (p / p.sum(1, keepdims=True)) @ v, atol=1e-12)
    assert np.allclose(low, ref, atol=1e-12)


def test_lowered_ops_and_types():
    design = prepare(spec("naive", 8, 4))
    assert design.lowered.ops() == ["input"] * 3 + [
        "scores", "row_max", "exp_sub", "row_sum", "reciprocal", "scale_rows", "matmul", "requant"]
    g = design.lowered.g
    assert g.nodes["o.scores"]["type"].shape == (8, 8)
    assert g.nodes["o.pv"]["type"].shape == (8, 4)
    assert g.nodes["o"]["type"].fmt == design.numerics.out
    online = prepare(spec("online", 8, 4)).lowered
    assert online.ops() == ["input"] * 3 + ["scores", "online_rowsum", "online_pv", "normalize"]


def test_variants_differ_only_in_rounding():
    a = prepare(spec("naive", 32, 16)).golden()
    b = prepare(spec("online", 32, 16)).golden()
    assert np.abs(a - b).max() <= 2


def test_ir_errors():
    nm = prepare(spec("online", 8, 4)).numerics
    g = Graph("bad", nm)
    g.add_input("q", TensorType((8, 4), nm.q))
    g.add_input("k", TensorType((8, 5), nm.k))
    with pytest.raises(IRError, match="unsupported op 'conv'"):
        g.add_op("x", "conv", ("q",))
    g.add_op("s", "scores", ("q", "k"))
    with pytest.raises(IRError, match="differ in head dim"):
        infer_types(g)
    with pytest.raises(IRError, match="no integer semantics"):
        interpret(prepare(spec()).graph, prepare(spec()).inputs, "int")
    with pytest.raises(IRError, match="allowed: naive, online"):
        lower_attention(prepare(spec()).graph, "flash")

"""The IR is the entry of every design (``ir.lower``, ``ir.stack``, ``ir.layer_ops``):

* every head kind is an ``sdpa`` node carrying its kind, lowered to the kind's ops; the
  golden model is the lowered graph interpreted and equals the kind's own kernel, the
  float reference the graph as written (checked here against attention written out
  with explicit masks in the test);
* a stack is written as linear / mha / residual_add / norm / activation ops; its
  lowering splits the heads; the stack mapper maps the layers ``match_layers`` reads from
  the ops, so a graph built by another front-end (here: by hand) gives the same layers,
  and a structure the templates can't build is one IRError naming the node.
"""
from __future__ import annotations

import numpy as np
import pytest

from attnflow.api import prepare
from attnflow.ir.graph import Graph, IRError, infer_types, interpret
from attnflow.ir.lower import attention_node
from attnflow.ir.numerics import dequantize
from attnflow.ir.spec import load_spec
from attnflow.ir.stack import lower_stack, match_layers, split_heads, stack_graph
from attnflow.ir.types import TensorType

HEAD = "examples/sdpa_online.yaml"
SMALL = ["model.seq_len=9", "model.head_dim=4"]


def head(*overrides):
    return prepare(load_spec(HEAD, SMALL + list(overrides)))


def _softmax_rows(x, keep):
    x = np.where(keep, x, -np.inf)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- heads

@pytest.mark.parametrize("over, op, attrs", [
    ((), "online_pv", {"kind": "full"}),
    (("model.attention.kind=window", "model.attention.window=2"), "masked_online",
     {"kind": "window", "window": 2}),
    (("model.attention.kind=causal",), "masked_online", {"kind": "causal", "window": None}),
    (("model.attention.split=3",), "split_online", {"split": 3}),
    (("model.attention.kind=causal", "model.attention.decode=4"), "decode_online",
     {"decode": 4}),
])
def test_every_head_kind_is_an_sdpa_node_lowered_to_its_ops(over, op, attrs):
    d = head(*over)
    assert d.graph.ops() == ["input", "input", "input", "sdpa"]
    assert op in d.lowered.ops()
    a = attention_node(d.lowered)
    assert {k: a[k] for k in attrs} == attrs
    assert np.array_equal(d.golden(), interpret(d.lowered, d.inputs)["o"])


def test_window_golden_and_reference_by_hand():
    """Window 2 over N = 9: the IR's golden is the masked online kernel; its float
    reference is softmax over |i - j| <= 2 written out here."""
    from attnflow.ir.window import window_golden
    d = head("model.attention.kind=window", "model.attention.window=2")
    q, k, v = (d.inputs[n] for n in "qkv")
    assert np.array_equal(d.golden(), window_golden(d.numerics, q, k, v, 2, "window"))
    nm = d.numerics
    qf, kf, vf = (dequantize(d.inputs[n], f.frac) for n, f in zip("qkv", (nm.q, nm.k, nm.v)))
    i, j = np.indices((9, 9))
    want = _softmax_rows(qf @ kf.T / 2.0, np.abs(i - j) <= 2) @ vf     # sqrt(d) = 2
    assert np.allclose(d.reference(), want, rtol=0, atol=1e-12)


def test_decode_reference_by_hand():
    """Decode 4 of N = 9: q holds the 4 new tokens; query t sees keys 0 .. 5 + t."""
    d = head("model.attention.kind=causal", "model.attention.decode=4")
    assert d.graph.node("q")["type"].shape == (4, 4) and d.golden().shape == (4, 4)
    nm = d.numerics
    qf, kf, vf = (dequantize(d.inputs[n], f.frac) for n, f in zip("qkv", (nm.q, nm.k, nm.v)))
    keep = np.arange(9)[None, :] <= np.array([5, 6, 7, 8])[:, None]
    want = _softmax_rows(qf @ kf.T / 2.0, keep) @ vf
    assert np.allclose(d.reference(), want, rtol=0, atol=1e-12)


def test_the_mapper_reads_the_kind_from_the_ir():
    d = head("model.attention.kind=window", "model.attention.window=3")
    assert d.hw.instances["qk"].param("window") == 3
    assert d.hw.instances["qk"].param("kind") == "window"


# ---------------------------------------------------------------- stacks

@pytest.mark.parametrize("spec", ["examples/encoder_tiny.yaml", "examples/decoder_tiny.yaml"])
def test_stack_ir_ops_and_lowering(spec):
    d = prepare(spec)
    m = d.spec.model
    ops = d.graph.ops()
    per_layer = {"linear": 6, "mha": 1, "residual_add": 2, "norm": 2, "activation": 1}
    for op, n in per_layer.items():
        assert ops.count(op) == n * m.layers + (op == "norm" and m.final_norm)
    low = d.lowered.ops()
    # split_heads: per head a Q, K and V linear and an attention; one concat a layer
    assert low.count("linear") == m.layers * (3 * m.heads + 3)
    assert low.count("concat") == m.layers and "mha" not in low
    att = "masked_online" if m.attention.kind != "full" else "online_pv"
    assert low.count(att) == m.layers * m.heads


@pytest.mark.parametrize("spec", ["examples/encoder_tiny.yaml", "examples/decoder_tiny.yaml"])
def test_match_layers_gives_back_the_layers(spec):
    """The mapper's layers are read from the ops: the same weights (objects), norm
    position, kind, activation and widths as the plans the loader wrote."""
    from attnflow.ir.encoder_golden import encoder_plans, final_norm_plan
    from attnflow.ir.weights import load_weights
    s = load_spec(spec)
    w = load_weights(s)
    plans, final = encoder_plans(s, w), final_norm_plan(s, w)
    got, got_final = match_layers(stack_graph(plans, final))
    assert len(got) == s.model.layers
    assert (got_final is None) == (not s.model.final_norm)
    for a, b in zip(plans, got):
        for f in ("n", "d_model", "heads", "d_head", "d_ff", "act_fmt", "act_fn", "pre",
                  "causal", "window", "kind"):
            assert getattr(a, f) == getattr(b, f), f
        assert all(a.lin[op] is b.lin[op] for op in a.lin)
        assert a.norm1 is b.norm1
        assert a.norm2 is b.norm2
        assert a.res1 is b.res1 and a.act_num is b.act_num
        assert a.attn == b.attn          # the graph's one AttentionNumerics


def _hand_built_layer(plan, break_residual=False):
    """One post-norm layer written op by op, as another front-end would."""
    g = Graph("hand", plan.attn)
    g.add_input("in", TensorType((plan.n, plan.d_model), plan.act_fmt))
    qkv = [g.add_op(f"p_{op}", "linear", ("in",), q=plan.lin[op])
           for op in ("attn_q", "attn_k", "attn_v")]
    g.add_op("attention", "mha", qkv, heads=plan.heads, kind="full", window=None)
    g.add_op("o_proj", "linear", ("attention",), q=plan.lin["attn_out"])
    g.add_op("add1", "residual_add", ("o_proj" if break_residual else "in", "o_proj"),
             numerics=plan.res1)
    g.add_op("ln_a", "norm", ("add1",), q=plan.norm1)
    g.add_op("fc1", "linear", ("ln_a",), q=plan.lin["ffn_up"])
    g.add_op("gelu", "activation", ("fc1",), fn=plan.act_fn, numerics=plan.act_num)
    g.add_op("fc2", "linear", ("gelu",), q=plan.lin["ffn_down"])
    g.add_op("add2", "residual_add", ("ln_a", "fc2"), numerics=plan.res2)
    g.add_op("ln_b", "norm", ("add2",), q=plan.norm2)
    g.mark_output("ln_b")
    return infer_types(g)


def test_a_hand_built_graph_maps_and_evaluates_like_the_loaders():
    from attnflow.mappers.encoder import map_encoder
    d = prepare("examples/encoder_tiny.yaml")
    plan = d.plans[0]
    g = _hand_built_layer(plan)
    (got,), final = match_layers(g)
    assert final is None and got.lin["ffn_up"] is plan.lin["ffn_up"] and not got.pre
    # the same HwGraph as the loader's one-layer stack
    a = map_encoder([got], [d.folding.foldings[0]], name="one")
    b = map_encoder([plan], [d.folding.foldings[0]], name="one")
    assert sorted(a.instances) == sorted(b.instances)
    assert all(a.instances[k] == b.instances[k] for k in a.instances)
    # and the same bits: the hand graph's lowering interpreted vs the loader's layer 0
    y = interpret(lower_stack(g), {"in": d.x})["ln_b"]
    want = interpret(d.lowered, {"x": d.x})["l0.y"]
    assert np.array_equal(y, want)


def test_unsupported_structure_is_one_error_naming_the_node():
    d = prepare("examples/encoder_tiny.yaml")
    with pytest.raises(IRError) as e:
        match_layers(_hand_built_layer(d.plans[0], break_residual=True))
    assert str(e.value) == ("add1: the attention residual must add the layer input in "
                            "and o_proj")


def test_split_heads_needs_qkv_linears_of_their_own():
    d = prepare("examples/encoder_tiny.yaml")
    plan = d.plans[0]
    g = Graph("shared", plan.attn)
    g.add_input("x", TensorType((plan.n, plan.d_model), plan.act_fmt))
    q = g.add_op("q", "linear", ("x",), q=plan.lin["attn_q"])
    g.add_op("att", "mha", (q, q, q), heads=plan.heads, kind="full", window=None)
    g.add_op("extra", "linear", ("q",), q=plan.lin["attn_out"])
    g.mark_output("att")
    with pytest.raises(IRError, match="^att: mha operand q must be a linear feeding only"):
        split_heads(infer_types(g))

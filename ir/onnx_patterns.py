"""The transformer patterns of the ONNX front-end, recognised on an
:class:`~attnflow.ir.onnx_graph.OnnxGraph` by structure and evaluated constants (never
by node or tensor names):

* linear: ``MatMul(x, W)`` (+ ``Add`` of a constant bias), or ``Gemm`` (transB, alpha,
  beta, optional C), through any reshapes (GPT-2's ``Conv1D`` is a Gemm on [N, d]);
* LayerNorm: ``LayerNormalization`` over the last axis, or its decomposed form
  ``(x - ReduceMean(x)) / Sqrt(ReduceMean((x - mean)^2) + eps) * gamma + beta`` (``Pow``
  2 or ``Mul``, ``Div`` or ``Mul`` by ``Reciprocal``); RMSNorm: ``RMSNormalization``,
  ``SimplifiedLayerNormalization``, or ``x * Reciprocal(Sqrt(ReduceMean(x^2) + eps)) *
  gamma`` (``Div`` forms too);
* the activation between the two feed-forward linears: the elementwise subgraph is
  checked op by op (Gelu, Erf, Tanh, Sigmoid, Relu, Mul, Div, Add, Sub, Pow, ...) and
  then evaluated on probe values against every activation attnflow builds
  (``ir.numerics_act``): erf GELU, tanh GELU, quick GELU, SiLU, ReLU;
* attention: see :func:`attention_at`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .onnx_graph import OnnxGraph, Unrecognised

__all__ = ["Linear", "Norm", "Attention", "linear_at", "linear_after", "norm_at",
           "norm_after", "activation_between", "attention_at", "weight_bits", "ACTIVATION_OPS"]

#: elementwise ops allowed inside a feed-forward activation
ACTIVATION_OPS = ("Gelu", "Erf", "Tanh", "Sigmoid", "Relu", "Mul", "Div", "Add", "Sub",
                  "Pow", "Sqrt", "Neg", "Cast", "Identity", "FastGelu")
_ACT_SUPPORTED = ("Gelu (approximate none or tanh), its Erf and Tanh forms, x*Sigmoid(a x) "
                  "(SiLU, quick GELU), Relu")
#: activation spec name -> what the graph shows
_ACT_CANDIDATES = ("gelu", "gelu_tanh", "quick_gelu", "silu", "relu")
_PROBE = np.linspace(-8.0, 8.0, 161)


@dataclass
class Linear:
    x: str                  # input (root)
    y: str                  # output (root, after the bias)
    weight: np.ndarray      # [out, in]
    bias: np.ndarray        # [out]
    nodes: list = field(default_factory=list)
    w_tensor: str = ""      # the weight input of the MatMul / Gemm


@dataclass
class Norm:
    x: str
    y: str
    gamma: np.ndarray
    beta: np.ndarray
    eps: float
    nodes: list = field(default_factory=list)
    kind: str = "layernorm"     # layernorm | rmsnorm (no mean, no beta)


@dataclass
class Attention:
    x: str                  # the tensor Q, K and V are projected from (root)
    q: Linear
    k: Linear
    v: Linear
    out: Linear
    heads: int
    kind: str               # full | causal | window
    window: int | None      # window and causal: keys |i - j| <= w (i - w <= j <= i); None
    mask_inputs: frozenset  # graph inputs the mask is built from (evaluated as no padding)
    nodes: list = field(default_factory=list)


def _fail(g: OnnxGraph, node, where: str, expected: str):
    raise Unrecognised(node, where, expected)


# ----------------------------------------------------------------------------- linear

def linear_at(g: OnnxGraph, y: str, where: str) -> Linear:
    """The linear layer whose output (bias included) is ``y`` (or a reshape of it)."""
    y = g.root(y)
    node = g.producer.get(y)
    nodes, bias = [], None
    if node is not None and node.op_type == "Add":
        a, b = node.input
        if g.constant(b) and not g.constant(a):
            bias, inner = g.value(b), a
        elif g.constant(a) and not g.constant(b):
            bias, inner = g.value(a), b
        else:
            _fail(g, node, where, "a linear layer (MatMul + Add of a constant bias, or Gemm)")
        nodes.append(node)
        node = g.producer.get(g.root(inner))
    if node is None or node.op_type not in ("MatMul", "Gemm"):
        _fail(g, node, where, "a linear layer (MatMul with a constant weight, or Gemm)")
    nodes.append(node)
    a, w = node.input[0], node.input[1]
    if not g.constant(w) or g.constant(a) or g.value(w).ndim != 2:
        _fail(g, node, where, "a linear layer: a stream times a constant 2-D weight")
    weight = np.asarray(g.value(w), np.float64)
    if node.op_type == "Gemm":
        if g.attr(node, "transA", 0):
            _fail(g, node, where, "Gemm without transA")
        weight = weight if g.attr(node, "transB", 0) else weight.T
        weight = weight * g.attr(node, "alpha", 1.0)
        if len(node.input) > 2 and node.input[2]:
            c = np.asarray(g.value(node.input[2]), np.float64) * g.attr(node, "beta", 1.0)
            bias = c if bias is None else np.asarray(bias, np.float64) + c
    else:
        weight = weight.T                                   # [in, out] -> [out, in]
    out = weight.shape[0]
    bias = np.zeros(out) if bias is None else np.asarray(bias, np.float64)
    if bias.size != out or (bias.ndim > 1 and bias.shape[-1] != out):
        _fail(g, nodes[0], where, f"a bias of {out} values")
    return Linear(g.root(a), y, weight, np.broadcast_to(bias.reshape(-1), (out,)).copy(), nodes,
                  w)


def linear_after(g: OnnxGraph, x: str, where: str, skip=()) -> Linear:
    """The linear layer reading ``x`` (a MatMul/Gemm among its users)."""
    for node, _ in g.uses(x):
        if node.op_type in ("MatMul", "Gemm") and g.root(node.input[0]) == x \
                and g.constant(node.input[1]) and node not in skip:
            y = node.output[0]
            adds = [n for n, _ in g.uses(y) if n.op_type == "Add"
                    and any(g.constant(i) for i in n.input)]
            if len(g.uses(y)) == 1 and adds:
                y = adds[0].output[0]
            return linear_at(g, y, where)
    users = [n for n, _ in g.uses(x)]
    _fail(g, users[0] if users else g.producer.get(x), where,
          "a linear layer (MatMul with a constant weight, or Gemm)")


# ----------------------------------------------------------------------------- norms

def _last_axis(g: OnnxGraph, node) -> bool:
    axes = g.attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = g.value(node.input[1]).tolist()
    rank = len(g.shape(node.input[0]))
    return axes is not None and [a % rank for a in axes] == [rank - 1]


class _Walk:
    """The nodes a decomposed pattern (a norm written out op by op) has taken so far."""

    def __init__(self, g: OnnxGraph):
        self.g, self.nodes = g, []

    def prod(self, t: str, *ops: str):
        """The node producing ``t`` if its op is one of ``ops`` (taken), else None."""
        n = self.g.producer.get(t)
        if n is None or n.op_type not in ops:
            return None
        self.nodes.append(n)
        return n


def _decomposed_norm(g: OnnxGraph, y: str) -> Norm | None:
    walk = _Walk(g)
    nodes, prod = walk.nodes, walk.prod

    def split(n):           # (stream input, constant value) of a binary node
        a, b = n.input
        if g.constant(b) and not g.constant(a):
            return a, g.value(b)
        if g.constant(a) and not g.constant(b):
            return b, g.value(a)
        return None, None

    beta = None
    n = prod(y, "Add", "Mul")
    if n is None:
        return None
    if n.op_type == "Add":
        inner, beta = split(n)
        n = prod(inner, "Mul") if inner else None
        if n is None:
            return None
    normed, gamma = split(n)
    if normed is None:
        return None
    div = prod(normed, "Div", "Mul")
    if div is None:
        return None
    centered, denom = div.input
    if div.op_type == "Mul":
        rec = g.producer.get(denom)
        if rec is None or rec.op_type != "Reciprocal":
            centered, denom = denom, centered
            rec = g.producer.get(denom)
        if rec is None or rec.op_type != "Reciprocal":
            return None
        nodes.append(rec)
        denom = rec.input[0]
    sub = prod(centered, "Sub")
    mean = sub and prod(sub.input[1], "ReduceMean")
    if not mean or mean.input[0] != sub.input[0] or not _last_axis(g, mean):
        return None
    x = sub.input[0]
    sqrt = prod(denom, "Sqrt")
    add = sqrt and prod(sqrt.input[0], "Add")
    if not add:
        return None
    var_t, eps = split(add)
    var = var_t and prod(var_t, "ReduceMean")
    if not var or not _last_axis(g, var):
        return None
    sq = prod(var.input[0], "Pow", "Mul")
    if sq is None:
        return None
    if sq.op_type == "Pow":
        if g.scalar(sq.input[1]) != 2.0:
            return None
        d = sq.input[0]
    else:
        if sq.input[0] != sq.input[1]:
            return None
        d = sq.input[0]
    dsub = g.producer.get(d)
    if dsub is None or dsub.op_type != "Sub" or dsub.input[0] != x:
        return None
    if dsub is not sub:
        nodes.append(dsub)
        m2 = g.producer.get(dsub.input[1])
        if m2 is None or m2.op_type != "ReduceMean" or m2.input[0] != x:
            return None
        nodes.append(m2)
    d_model = g.shape(x)[-1]
    if eps is None or np.size(eps) != 1:
        return None
    gamma = np.broadcast_to(np.asarray(gamma, np.float64).reshape(-1), (d_model,)).copy()
    beta = (np.zeros(d_model) if beta is None
            else np.broadcast_to(np.asarray(beta, np.float64).reshape(-1), (d_model,)).copy())
    return Norm(g.root(x), y, gamma, beta, float(np.asarray(eps).reshape(())), nodes)


def _decomposed_rms(g: OnnxGraph, y: str) -> Norm | None:
    """``x * 1/Sqrt(ReduceMean(x^2) + eps) * gamma`` (``Reciprocal`` or ``Div(1, .)``, or
    ``x / Sqrt(..)``), as torch exports an RMSNorm."""
    walk = _Walk(g)
    nodes, prod = walk.nodes, walk.prod
    top = prod(y, "Mul")
    if top is None:
        return None
    a, b = top.input
    normed, gamma = (a, b) if g.constant(b) else (b, a)
    if not g.constant(gamma) or g.constant(normed):
        return None
    scale = prod(normed, "Mul", "Div")
    if scale is None:
        return None
    x, s = scale.input
    sqrt = None
    if scale.op_type == "Mul":
        for x, s in (tuple(scale.input), tuple(scale.input)[::-1]):
            inv = g.producer.get(s)
            if inv is not None and (inv.op_type == "Reciprocal" or
                                    (inv.op_type == "Div" and g.scalar(inv.input[0]) == 1.0)):
                nodes.append(inv)
                sqrt = prod(inv.input[-1], "Sqrt")
                break
    else:
        sqrt = prod(s, "Sqrt")
    add = sqrt and prod(sqrt.input[0], "Add")
    if not add:
        return None
    var_t, eps_t = add.input if g.constant(add.input[1]) else add.input[::-1]
    mean = prod(var_t, "ReduceMean")
    if not mean or not _last_axis(g, mean) or g.scalar(eps_t) is None:
        return None
    sq = prod(mean.input[0], "Pow", "Mul")
    if sq is None or sq.input[0] != x or (sq.op_type == "Pow" and g.scalar(sq.input[1]) != 2.0) \
            or (sq.op_type == "Mul" and sq.input[1] != x):
        return None
    d_model = g.shape(x)[-1]
    gamma = np.broadcast_to(np.asarray(g.value(gamma), np.float64).reshape(-1), (d_model,))
    return Norm(g.root(x), y, gamma.copy(), np.zeros(d_model), g.scalar(eps_t), nodes,
                "rmsnorm")


def norm_at(g: OnnxGraph, y: str) -> Norm | None:
    """The LayerNorm or RMSNorm (op or decomposed) whose output is ``y``, else None."""
    y = g.root(y)
    n = g.producer.get(y)
    if n is not None and n.op_type in ("RMSNormalization", "SimplifiedLayerNormalization"):
        rank = len(g.shape(n.input[0]))
        if g.attr(n, "axis", -1) % rank != rank - 1 or not g.constant(n.input[1]):
            return None
        d_model = g.shape(n.input[0])[-1]
        return Norm(g.root(n.input[0]), y, np.asarray(g.value(n.input[1]), np.float64),
                    np.zeros(d_model), float(g.attr(n, "epsilon", 1e-5)), [n], "rmsnorm")
    if n is not None and n.op_type == "LayerNormalization":
        rank = len(g.shape(n.input[0]))
        if g.attr(n, "axis", -1) % rank != rank - 1 or not g.constant(n.input[1]):
            return None
        d_model = g.shape(n.input[0])[-1]
        beta = (g.value(n.input[2]) if len(n.input) > 2 and n.input[2] else np.zeros(d_model))
        return Norm(g.root(n.input[0]), y, np.asarray(g.value(n.input[1]), np.float64),
                    np.asarray(beta, np.float64), float(g.attr(n, "epsilon", 1e-5)), [n])
    return _decomposed_norm(g, y) or _decomposed_rms(g, y)


def norm_after(g: OnnxGraph, x: str) -> Norm | None:
    """The LayerNorm reading ``x`` (its op, or the end of its decomposed form: of the
    norms found from ``x``, the one of most nodes, so gamma's Mul is not taken for the
    end when beta's Add follows)."""
    seen, frontier, found = set(), [x], []
    for _ in range(12):
        nxt = []
        for t in frontier:
            for n, _ in g.uses(t):
                if id(n) in seen:
                    continue
                seen.add(id(n))
                if n.op_type in ("LayerNormalization", "RMSNormalization",
                                 "SimplifiedLayerNormalization", "Add", "Mul"):
                    norm = norm_at(g, n.output[0])
                    if norm is not None and norm.x == x:
                        found.append(norm)
                if n.op_type in ("ReduceMean", "Sub", "Pow", "Add", "Sqrt", "Div", "Mul",
                                 "Reciprocal"):
                    nxt.append(n.output[0])
        frontier = nxt
    return max(found, key=lambda norm: len(norm.nodes), default=None)


# ----------------------------------------------------------------------------- activation

def _eval_region(g: OnnxGraph, region, x: str, probe: np.ndarray) -> dict:
    from math import erf
    vals = {}

    def val(t):
        if t in vals:
            return vals[t]
        if g.root(t) == x:
            return probe
        if g.root(t) in vals:           # through a reshape or a QDQ pair
            return vals[g.root(t)]
        v = g.value(t)
        return float(v.reshape(-1)[0]) if g.constant(t) and v.size == 1 else None

    unary = {"Erf": np.vectorize(erf), "Tanh": np.tanh, "Sqrt": np.sqrt, "Neg": np.negative,
             "Sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)), "Relu": lambda v: np.maximum(v, 0),
             "Cast": lambda v: v, "Identity": lambda v: v}
    binary = {"Mul": np.multiply, "Div": np.divide, "Add": np.add, "Sub": np.subtract,
              "Pow": np.power}
    for n in region:
        ins = [val(i) for i in n.input if i]
        if any(v is None for v in ins):
            return {}
        if n.op_type in unary:
            r = unary[n.op_type](ins[0])
        elif n.op_type in binary:
            r = binary[n.op_type](ins[0], ins[1])
        elif n.op_type == "Gelu":
            from .numerics_act import activation_float
            r = activation_float("gelu_tanh" if g.attr(n, "approximate", b"none") in
                                 (b"tanh", "tanh") else "gelu", ins[0])
        else:
            return {}
        vals[n.output[0]] = np.asarray(r, np.float64) * np.ones_like(probe)
    return vals


def activation_between(g: OnnxGraph, u: str, where: str):
    """(activation name, its output tensor, region nodes) of the elementwise subgraph
    from ``u`` (the up projection's output) to the next linear layer's input."""
    from .numerics_act import activation_float
    region, reached, frontier = [], {u}, [u]
    order = {id(n): k for k, n in enumerate(g.nodes)}
    while frontier:
        t = frontier.pop()
        for n, _ in g.uses(t):
            if n.op_type in ("MatMul", "Gemm"):
                continue
            if n.op_type not in ACTIVATION_OPS:
                _fail(g, n, where, f"an activation: {_ACT_SUPPORTED}")
            if all(n is not r for r in region):
                region.append(n)
                reached.add(n.output[0])
                frontier.append(n.output[0])
    region.sort(key=lambda n: order[id(n)])
    if not region:
        _fail(g, g.producer.get(u), where, f"an activation: {_ACT_SUPPORTED}")
    end = g.root(region[-1].output[0])
    vals = _eval_region(g, region, u, _PROBE)
    got = vals.get(region[-1].output[0])
    if got is not None:
        for name in _ACT_CANDIDATES:
            if np.max(np.abs(got - activation_float(name, _PROBE))) <= 1e-6:
                return name, end, region
    _fail(g, region[-1], where, f"an activation: {_ACT_SUPPORTED} (this elementwise "
                                f"subgraph computes none of them)")


# ----------------------------------------------------------------------------- attention

def _heads_layout(idx: np.ndarray, base_shape, transposed: bool):
    """(column offset, heads, d_head) if ``idx`` is the head split of the base's [N, width]
    rows: element [h, n, e] (``transposed``: [h, e, n]) at row n, column off + h*dh + e."""
    while idx.ndim > 3 and idx.shape[0] == 1:
        idx = idx[0]
    if idx.ndim != 3:
        return None
    if transposed:
        idx = np.swapaxes(idx, 1, 2)
    heads, n, dh = idx.shape
    width = base_shape[-1]
    rows, cols = idx // width, idx % width
    off = int(cols[0, 0, 0])
    want_cols = off + np.arange(heads)[:, None, None] * dh + np.arange(dh)[None, None, :]
    if (rows == np.arange(n)[None, :, None]).all() and (cols == want_cols).all():
        return off, heads, dh
    return None


def _projection(g: OnnxGraph, t: str, transposed: bool, where: str):
    """(Linear restricted to the head columns, heads, d_head, scale, nodes) of a Q, K^T or
    V operand ``t`` of the attention's matmuls."""
    base, chain, factor, used = g.trace_views(t, scales=True)
    lin = linear_at(g, base, where)
    lay = _heads_layout(g.layout(base, chain), g.shape(base), transposed)
    if lay is None:
        _fail(g, chain[-1][0] if chain else g.producer.get(t), where,
              "a head split: Reshape to [.., N, heads, d_head] and Transpose to "
              "[.., heads, N, d_head] (K: [.., heads, d_head, N])")
    off, heads, dh = lay
    d = heads * dh
    part = Linear(lin.x, lin.y, lin.weight[off:off + d], lin.bias[off:off + d], lin.nodes,
                  lin.w_tensor)
    return part, heads, dh, factor, used


def _mask_kind(g: OnnxGraph, add_mask, where_masks, n: int, node, where: str):
    """(attention kind, window or None) of the keys the masks keep."""
    keep = np.ones((n, n), bool)
    for m in add_mask:
        v = np.asarray(g.value(m), np.float64)
        v = np.broadcast_to(v, v.shape[:-2] + (n, n)).reshape(-1, n, n)
        if not (v == v[0]).all():
            _fail(g, node, where, "the same mask for every head and batch")
        v = v[0]
        keep &= ~(v <= -1e4)
        if np.abs(v[v > -1e4]).max(initial=0) > 0:
            _fail(g, node, where, "a mask of 0 (keep) and a large negative value (drop)")
    for c in where_masks:
        v = np.broadcast_to(np.asarray(g.value(c), bool), g.shape(c)[:-2] + (n, n))
        keep &= v.reshape(-1, n, n)[0]
    dist = np.subtract.outer(np.arange(n), np.arange(n))        # query i - key j
    if keep.all():
        return "full", None
    if (keep == (dist >= 0)).all():
        return "causal", None
    if keep.any():
        w = int(np.abs(dist[keep]).max())
        if w >= 1 and (keep == (np.abs(dist) <= w)).all():
            return "window", w
        if w >= 1 and (keep == ((dist >= 0) & (dist <= w))).all():
            return "causal", w
    _fail(g, node, where, "no mask, a causal mask (query i sees keys j <= i), a sliding "
                          "window (|i - j| <= w) or a causal one (i - w <= j <= i)")


def _scores(g: OnnxGraph, t: str, where: str):
    """Walk back from the softmax input to the QK^T MatMul: (matmul, factor, additive
    masks, where-conditions, nodes)."""
    factor, adds, conds, nodes = 1.0, [], [], []
    while True:
        n = g.producer.get(t)
        if n is None:
            _fail(g, n, where, "Q K^T scores")
        if n.op_type == "MatMul":
            nodes.append(n)
            return n, factor, adds, conds, nodes
        nodes.append(n)
        s0, s1 = (g.scalar(i) for i in n.input[:2]) if len(n.input) >= 2 else (None, None)
        if n.op_type in ("Mul", "Div") and s1 is not None:
            factor *= s1 if n.op_type == "Mul" else 1.0 / s1
            t = n.input[0]
        elif n.op_type == "Mul" and s0 is not None:
            factor *= s0
            t = n.input[1]
        elif n.op_type in ("Cast", "Identity", "QuantizeLinear", "DequantizeLinear", "Quant"):
            t = n.input[0]
        elif n.op_type == "Add":
            for scores, m in (tuple(n.input), tuple(n.input)[::-1]):
                if _reaches_matmul(g, scores) and _is_mask(g, m):
                    t = scores
                    adds.append(m)
                    break
            else:
                _fail(g, n, where, "an additive mask that does not depend on the tokens")
        elif n.op_type == "Where" and len(n.input) == 3:
            c, x, y = n.input
            fill = g.scalar(y)
            if fill is None or fill > -1e4 or not _is_mask(g, c):
                _fail(g, n, where, "Where(mask, scores, large negative value)")
            conds.append(c)
            t = x
        else:
            _fail(g, n, where, "Q K^T scores, scaled (Mul/Div), masked (Add, Where), "
                               "then Softmax")


def _reaches_matmul(g: OnnxGraph, t: str) -> bool:
    """A Q K^T MatMul is behind ``t`` (through scales, masks and casts)."""
    through = ("Mul", "Div", "Add", "Cast", "Identity", "Where", "QuantizeLinear",
               "DequantizeLinear", "Quant")

    def follow(_, n):
        if n.op_type not in through:
            return []
        return [i for i in n.input if i and not g.constant(i)]
    return any(n.op_type == "MatMul" for _, n in g.upstream(t, follow))


def _is_mask(g: OnnxGraph, t: str) -> bool:
    """``t`` is built from shapes, constants and graph inputs only (an ``attention_mask``
    input, indexed and compared as exporters do): no linear layer, matmul, softmax, norm
    or convolution (no hidden state) is behind it."""
    def follow(cur, n):
        if n.op_type in ("Shape", "Size") or g.constant(cur):
            return []                   # shapes and constants
        return [i for i in n.input if i]
    hidden = ("MatMul", "Gemm", "Softmax", "LayerNormalization", "Conv")
    return not any(n.op_type in hidden and not g.constant(cur)
                   for cur, n in g.upstream(t, follow))


def _probabilities_user(g: OnnxGraph, p: str, where: str):
    """The P V MatMul reading the softmax output ``p`` (through Where(IsNaN(p), 0, p),
    Cast and Identity): (matmul, nodes)."""
    nodes = []
    while True:
        users = g.consumers.get(p, [])
        mm = [n for n in users if n.op_type == "MatMul" and n.input[0] == p]
        if mm:
            return mm[0], nodes
        wh = [n for n in users if n.op_type == "Where" and n.input[2] == p]
        cast = [n for n in users if n.op_type in ("Cast", "Identity", "QuantizeLinear",
                                                   "DequantizeLinear", "Quant")]
        if wh:
            isnan = g.producer.get(wh[0].input[0])
            if isnan is None or isnan.op_type != "IsNaN" or g.scalar(wh[0].input[1]) != 0.0:
                _fail(g, wh[0], where, "Where(IsNaN(P), 0, P) before P V")
            nodes += [isnan, wh[0]]
            p = wh[0].output[0]
        elif cast:
            nodes.append(cast[0])
            p = cast[0].output[0]
        else:
            _fail(g, users[0] if users else None, where, "the probabilities times V (MatMul)")


def _merge(g: OnnxGraph, o: str, heads: int, dh: int, where: str):
    """Follow the head merge after P V (output ``o``, [.., heads, N, d_head]): (merged
    tensor, nodes)."""
    t, chain = o, []
    while True:
        users = g.consumers.get(t, [])
        if len(users) != 1 or users[0].op_type not in ("Transpose", "Reshape", "Identity",
                                                      "Squeeze", "Unsqueeze", "Flatten",
                                                      "QuantizeLinear", "DequantizeLinear",
                                                      "Quant"):
            break
        chain.append((users[0], users[0].output[0]))
        t = users[0].output[0]
    idx = g.layout(o, chain) if chain else None
    n = g.shape(o)[-2]
    want = np.arange(heads * n * dh).reshape(heads, n, dh).transpose(1, 0, 2).reshape(n, -1)
    if idx is None or idx.size != want.size or not (idx.reshape(n, -1) == want).all():
        _fail(g, chain[-1][0] if chain else g.producer.get(o), where,
              "a head merge: Transpose to [.., N, heads, d_head] and Reshape to [.., N, d_model]")
    return g.root(t), [c for c, _ in chain]


def attention_at(g: OnnxGraph, softmax, where: str) -> Attention:
    """The attention block around ``softmax`` (one node for every head of a layer)."""
    rank = len(g.shape(softmax.input[0]))
    if g.attr(softmax, "axis", -1) % rank != rank - 1:
        _fail(g, softmax, where, "Softmax over the keys (the last axis)")
    qk, factor, adds, conds, nodes = _scores(g, softmax.input[0], where)
    q, heads, dh, fq, used_q = _projection(g, qk.input[0], False, where)
    k, hk, dk, fk, used_k = _projection(g, qk.input[1], True, where)
    pv, p_nodes = _probabilities_user(g, softmax.output[0], where)
    v, hv, dv, fv, used_v = _projection(g, pv.input[1], False, where)
    if (hk, dk) != (heads, dh) or (hv, dv) != (heads, dh) or fv != 1.0:
        _fail(g, pv, where, f"Q, K and V split alike into {heads} heads of {dh}")
    if not q.x == k.x == v.x:
        _fail(g, qk, where, "Q, K and V projected from the same tensor")
    scale = factor * fq * fk
    if not math.isclose(scale, 1.0 / math.sqrt(dh), rel_tol=1e-5):
        _fail(g, softmax, where, f"scores scaled by 1/sqrt(d_head) = {1 / math.sqrt(dh):.6g} "
                                 f"(this graph scales them by {scale:.6g})")
    n = g.shape(softmax.input[0])[-1]
    kind, window = _mask_kind(g, adds, conds, n, softmax, where)
    merged, m_nodes = _merge(g, pv.output[0], heads, dh, where)
    out = linear_after(g, merged, where)
    mask_inputs = frozenset().union(*(g.taint.get(m, frozenset()) for m in adds + conds))
    return Attention(q.x, q, k, v, out, heads, kind, window, mask_inputs,
                     [softmax, *nodes, *used_q, *used_k, pv, *p_nodes, *used_v, *m_nodes,
                      *q.nodes, *k.nodes, *v.nodes, *out.nodes])


def weight_bits(g: OnnxGraph, lin: Linear) -> int | None:
    """The bit width a quantized graph gives a linear's weights: a DequantizeLinear of
    8-bit (or 4-bit) integers, or a QONNX Quant's bit width; None for float weights."""
    t = lin.w_tensor
    while True:
        n = g.producer.get(t)
        if n is None:
            return None
        if n.op_type == "DequantizeLinear":
            kind = g.value(n.input[0]).dtype
            return 8 * kind.itemsize if kind.kind in "iu" else None
        if n.op_type == "Quant":
            return int(np.asarray(g.value(n.input[3])).reshape(()))
        if n.op_type not in ("Transpose", "Reshape", "Identity", "Cast"):
            return None
        t = n.input[0]

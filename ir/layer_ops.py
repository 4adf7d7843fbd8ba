"""The IR ops of encoder and decoder layers: their types, integer and float semantics.

Registered into ``ir.graph.OPS`` beside the attention ops. Each op's parameters travel in
its attributes (the quantized weights included), so the graph alone defines the model:

========================  ============================================================
op                        meaning (attributes)
========================  ============================================================
``linear``                x W^T + b, requantized (``q``: ``ir.encoder_golden.QLinear``)
``norm``                  LayerNorm or RMSNorm over the row (``q``: ``QNorm``)
``activation``            GELU, its tanh forms, SiLU or ReLU (``fn``, ``numerics``:
                          ``ir.numerics_act``)
``residual_add``          a + b, both rescaled to the output (``numerics``:
                          ``templates.residual.ResidualNumerics``; a: the skip)
``mha``                   multi-head attention on full-width Q, K, V (``heads``, ``kind``,
                          ``window``); float only: ``ir.stack.split_heads`` turns it into
                          per-head linears, ``sdpa`` nodes and a ``concat``
``concat``                the operands side by side along the row (any number)
========================  ============================================================
"""
from __future__ import annotations

import numpy as np

from .numerics_act import activation_float, gate_golden
from .numerics_linear import linear_golden
from .numerics_norm import gelu_golden, relu_golden
from .types import TensorType


def _need(cond, msg):
    if not cond:
        from .graph import IRError
        raise IRError(msg)


# ---------------------------------------------------------------- types

def _t_linear(nm, a, x):
    num = a["q"].numerics
    _need(x.shape[-1] == num.k, f"linear: input rows of {x.shape[-1]} features, the "
                                f"weights take {num.k}")
    return TensorType((x.shape[0], num.m), num.y)


def _t_norm(nm, a, x):
    num = a["q"].numerics
    _need(x.shape[-1] == num.dim, f"norm: rows of {x.shape[-1]}, the norm is over {num.dim}")
    return TensorType(x.shape, num.out)


def _t_act(nm, a, x):
    return TensorType(x.shape, a["numerics"].out)


def _t_residual(nm, a, x, y):
    _need(x.shape == y.shape, f"residual_add: operands {x.shape} and {y.shape} differ")
    return TensorType(x.shape, a["numerics"].out)


def _t_mha(nm, a, q, k, v):
    h = a["heads"]
    _need(q.shape[1] % h == 0 and q.shape[1] // h == nm.head_dim and k.shape == v.shape,
          f"mha: q {q.shape}, k {k.shape}, v {v.shape} are not {h} heads of {nm.head_dim}")
    return TensorType((q.shape[0], v.shape[1]), nm.out)


def _t_concat(nm, a, *xs):
    _need(len({x.shape[0] for x in xs}) == 1 and len({x.fmt for x in xs}) == 1,
          "concat: operands differ in rows or format")
    return TensorType((xs[0].shape[0], sum(x.shape[1] for x in xs)), xs[0].fmt)


# ---------------------------------------------------------------- semantics

def _linear_int(nm, a, x):
    q = a["q"]
    return linear_golden(x, q.w, q.b, q.numerics)


def _linear_real(a, x):
    q = a["q"]
    return x @ q.w_float.T + q.b_float


def _act_int(nm, a, x):
    golden = {"gelu": gelu_golden, "relu": relu_golden}.get(a["fn"], gate_golden)
    return golden(x, a["numerics"])


def _act_real(a, x):
    return activation_float(a["fn"], x)


def _residual_int(nm, a, x, y):
    from ..templates.residual import residual_golden     # the residual numerics live there
    return residual_golden(x, y, a["numerics"])


def _residual_real(a, x, y):
    num = a["numerics"]
    return num.scale_a * x + num.scale_b * y


def _mha_real(a, q, k, v):
    from .graph import attention_real
    dh = q.shape[1] // a["heads"]
    one = {"kind": a["kind"], "window": a["window"]}
    return np.concatenate([attention_real(one, q[:, s], k[:, s], v[:, s]) for s in
                           (slice(h * dh, (h + 1) * dh) for h in range(a["heads"]))], axis=1)


#: op -> (arity (None: any), infer, integer, real), as ``ir.graph.OpDef`` takes them
LAYER_OPS = {
    "linear": (1, _t_linear, _linear_int, _linear_real),
    "norm": (1, _t_norm, lambda nm, a, x: a["q"].golden(x), lambda a, x: a["q"].float(x)),
    "activation": (1, _t_act, _act_int, _act_real),
    "residual_add": (2, _t_residual, _residual_int, _residual_real),
    "mha": (3, _t_mha, None, _mha_real),
    "concat": (None, _t_concat, lambda nm, a, *xs: np.concatenate(xs, axis=1),
               lambda a, *xs: np.concatenate(xs, axis=1)),
}

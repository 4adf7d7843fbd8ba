"""The dataflow IR: typed tensor ops on a networkx DiGraph.

A node is either an ``input`` (a named tensor fed from outside) or an op with ordered
operands. Every node carries a :class:`~attnflow.ir.types.TensorType` after
:func:`infer_types`. Graph-level attributes hold the integer numerics
(:class:`~attnflow.ir.numerics.AttentionNumerics`) that the integer semantics read.

The op set is the one an attention head needs, before and after lowering:

========================  ============================================================
op                        meaning (float semantics; the integer one is in ``OPS``)
========================  ============================================================
``input``                 external tensor
``sdpa``                  softmax(q k^T / sqrt(d)) v over the keys its attributes keep
                          (``kind``: full | window | causal, ``window``, ``split``,
                          ``decode``); lowered away by ``lower_attention``
``masked_online``         window / causal attention on the slot machinery (``ir.window``)
``split_online``          split-context attention, P engines and a combine tree (``ir.split``)
``decode_online``         decode steps over a KV cache (``ir.decode``)
``scores``                q k^T / sqrt(d)
``row_max``               max over the last axis
``exp_sub``               exp(x - m) with m broadcast along rows
``row_sum``               sum over the last axis
``reciprocal``            1 / l
``scale_rows``            e * r, r broadcast along rows
``matmul``                a @ b
``requant``               cast to the output format
``online_rowsum``         sum_j exp(x_ij - max_j x_ij), computed with a running max
``online_pv``             sum_j exp(x_ij - max_j x_ij) v_j, computed with a running max
``normalize``             o / l
========================  ============================================================
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import networkx as nx
import numpy as np

from .decode import decode_golden
from .numerics import AttentionNumerics, attention_float, requant, saturate
from .split import split_golden
from .types import FixedFormat, TensorType
from .window import window_float, window_golden


class IRError(ValueError):
    pass


@dataclass(frozen=True)
class OpDef:
    arity: int | None   # None: any number of operands
    infer: Callable  # (numerics, attrs, in_types) -> TensorType
    integer: Callable  # (numerics, attrs, *ins) -> ndarray
    real: Callable  # (attrs, *ins) -> ndarray


def _need(cond, msg):
    if not cond:
        raise IRError(msg)


def _t_scores(nm, a, q, k):
    _need(q.shape[1:] == k.shape[1:], f"scores: q {q.shape} and k {k.shape} differ in head dim")
    return TensorType((q.shape[0], k.shape[0]), FixedFormat(nm.score_bits, nm.score_frac))


def _t_rowred(fmt_fn):
    return lambda nm, a, x: TensorType((x.shape[0],), fmt_fn(nm, x))


def _t_same(fmt_fn):
    return lambda nm, a, x, *rest: TensorType(x.shape, fmt_fn(nm, x))


def _prob(nm, x=None):
    return FixedFormat(nm.exp_bits, nm.prob_frac, signed=False)


def _sum(nm, x=None):
    return FixedFormat(nm.sum_bits, nm.prob_frac, signed=False)


def _acc(nm, x=None):
    return FixedFormat(nm.acc_bits, nm.prob_frac + nm.v.frac)


def _t_matmul(nm, a, p, v):
    _need(p.shape[1] == v.shape[0], f"matmul: inner dims {p.shape} @ {v.shape}")
    return TensorType((p.shape[0], v.shape[1]), _acc(nm))


def _t_pv(nm, a, x, v):
    _need(x.shape[1] == v.shape[0], f"online_pv: scores {x.shape} vs v {v.shape}")
    return TensorType((x.shape[0], v.shape[1]), _acc(nm))


def _t_sdpa(nm, a, q, k, v):
    _need(q.shape[1] == k.shape[1] and k.shape == v.shape,
          f"sdpa: q {q.shape}, k {k.shape}, v {v.shape} do not agree")
    return TensorType((q.shape[0], v.shape[1]), nm.out)


def attention_real(a, q, k, v):
    """The float attention an ``sdpa`` node (or its lowering) defines, by its attributes:
    full, the window band or causal (``ir.window.window_float``), decode (query t of S sees
    keys 0 .. N - S + t), split (full attention: the split changes the order only)."""
    if a.get("decode"):
        s, n = len(q), len(k)
        keep = np.arange(n)[None, :] <= (n - s + np.arange(s))[:, None]
        return attention_float(q, k, v, keep)
    if a.get("kind", "full") != "full":
        return window_float(q, k, v, a.get("window"), a["kind"])
    return attention_float(q, k, v)


def _online_rowsum(nm, x):
    return nm.online_rows(x, np.zeros((x.shape[1], 1), np.int64))[1]


def _online_pv(nm, x, v):
    return nm.online_rows(x, v)[2]


def _softmax_parts(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e


OPS: dict[str, OpDef] = {
    "sdpa": OpDef(3, _t_sdpa, None, attention_real),
    "masked_online": OpDef(3, _t_sdpa, lambda nm, a, q, k, v: window_golden(
                               nm, q, k, v, a["window"], a["kind"]), attention_real),
    "split_online": OpDef(3, _t_sdpa, lambda nm, a, q, k, v: split_golden(
                              nm, q, k, v, a["split"]), attention_real),
    "decode_online": OpDef(3, _t_sdpa, lambda nm, a, q, k, v: decode_golden(
                               nm, q, k, v, a["decode"]), attention_real),
    "scores": OpDef(2, _t_scores, lambda nm, a, q, k: nm.scores(q, k),
                    lambda a, q, k: q @ k.T / np.sqrt(q.shape[1])),
    "row_max": OpDef(1, _t_rowred(lambda nm, x: x.fmt), lambda nm, a, x: x.max(axis=1),
                     lambda a, x: x.max(axis=1)),
    "exp_sub": OpDef(2, _t_same(_prob), lambda nm, a, x, m: nm.exp(m[:, None] - x),
                     lambda a, x, m: np.exp(x - m[:, None])),
    "row_sum": OpDef(1, _t_rowred(_sum), lambda nm, a, e: e.sum(axis=1),
                     lambda a, e: e.sum(axis=1)),
    "reciprocal": OpDef(1, lambda nm, a, l: TensorType(l.shape, FixedFormat(
                            nm.recip_width + 1, nm.recip_bits - nm.prob_frac, signed=False)),
                        lambda nm, a, l: nm.recip(l), lambda a, l: 1.0 / l),
    "scale_rows": OpDef(2, _t_same(_prob),
                        lambda nm, a, e, r: requant(e * r[:, None], nm.p_shift),
                        lambda a, e, r: e * r[:, None]),
    "matmul": OpDef(2, _t_matmul, lambda nm, a, p, v: p @ v, lambda a, p, v: p @ v),
    "requant": OpDef(1, lambda nm, a, x: TensorType(x.shape, nm.out),
                     lambda nm, a, x: saturate(requant(x, a["shift"]), nm.out),
                     lambda a, x: x),
    "online_rowsum": OpDef(1, _t_rowred(_sum), lambda nm, a, x: _online_rowsum(nm, x),
                           lambda a, x: _softmax_parts(x).sum(axis=1)),
    "online_pv": OpDef(2, _t_pv, lambda nm, a, x, v: _online_pv(nm, x, v),
                       lambda a, x, v: _softmax_parts(x) @ v),
    "normalize": OpDef(2, lambda nm, a, o, l: TensorType(o.shape, nm.out),
                       lambda nm, a, o, l: nm.normalize(o, l),
                       lambda a, o, l: o / l[:, None]),
}


from .layer_ops import LAYER_OPS   # noqa: E402  (the layer ops need OpDef's table)

OPS.update({name: OpDef(*d) for name, d in LAYER_OPS.items()})


class Graph:
    """An op graph: nodes in insertion order, operands as ordered edges."""

    def __init__(self, name: str, numerics: AttentionNumerics):
        self.name = name
        self.g = nx.DiGraph(numerics=numerics)
        self.outputs: list[str] = []

    @property
    def numerics(self) -> AttentionNumerics:
        return self.g.graph["numerics"]

    def add_input(self, name: str, ttype: TensorType) -> str:
        self.g.add_node(name, op="input", attrs={}, type=ttype, operands=())
        return name

    def add_op(self, name: str, op: str, operands, **attrs) -> str:
        if op not in OPS:
            raise IRError(f"unsupported op {op!r}; supported: {', '.join(sorted(OPS))}")
        if OPS[op].arity is not None and len(operands) != OPS[op].arity:
            raise IRError(f"{name}: op {op} takes {OPS[op].arity} operands, got {len(operands)}")
        for src in operands:
            if src not in self.g:
                raise IRError(f"{name}: operand {src!r} is not a node")
        self.g.add_node(name, op=op, attrs=dict(attrs), type=None, operands=tuple(operands))
        for i, src in enumerate(operands):
            self.g.add_edge(src, name, port=i)
        return name

    def mark_output(self, name: str):
        self.outputs.append(name)

    def nodes(self):
        """Node names in a topological order (stable: insertion order among ready nodes)."""
        order = {n: i for i, n in enumerate(self.g.nodes)}
        return list(nx.lexicographical_topological_sort(self.g, key=order.__getitem__))

    def node(self, name):
        return self.g.nodes[name]

    def ops(self) -> list[str]:
        return [self.g.nodes[n]["op"] for n in self.nodes()]

    def find(self, op: str) -> list[str]:
        return [n for n in self.nodes() if self.g.nodes[n]["op"] == op]


def infer_types(graph: Graph) -> Graph:
    """Shape/type inference: fills every node's ``type``; raises IRError on a mismatch."""
    nm = graph.numerics
    for n in graph.nodes():
        node = graph.node(n)
        if node["op"] == "input":
            continue
        ins = [graph.node(s)["type"] for s in node["operands"]]
        node["type"] = OPS[node["op"]].infer(nm, node["attrs"], *ins)
    return graph


def interpret(graph: Graph, inputs: dict, mode: str = "int", keep=None,
              observe=None) -> dict:
    """The golden model: evaluate every node. ``mode`` is ``"int"`` (bit-exact, the
    hardware's arithmetic on stored integers) or ``"float"`` (the real-valued reference on
    dequantised inputs). Returns every node's value; with ``keep`` (node names), only
    those: every other value is dropped once the last node reading it has run, so a deep
    stack holds a few layers' intermediates at a time, not all of them. ``observe(name,
    value)``, when given, sees every node's value as it is computed."""
    if mode not in ("int", "float"):
        raise ValueError(f"mode must be 'int' or 'float', got {mode!r}")
    nm = graph.numerics
    vals = {}
    order = graph.nodes()
    last_use = {}
    if keep is not None:
        keep = set(keep)
        for i, n in enumerate(order):
            for s in graph.node(n)["operands"]:
                last_use[s] = i
    for i, n in enumerate(order):
        node = graph.node(n)
        if node["op"] == "input":
            if n not in inputs:
                raise IRError(f"missing input {n!r}")
            vals[n] = np.asarray(inputs[n], dtype=np.int64 if mode == "int" else np.float64)
            if observe is not None:
                observe(n, vals[n])
            continue
        args = [vals[s] for s in node["operands"]]
        op = OPS[node["op"]]
        if mode == "int":
            if op.integer is None:
                raise IRError(f"{n}: op {node['op']} has no integer semantics; lower the graph first")
            vals[n] = np.asarray(op.integer(nm, node["attrs"], *args), dtype=np.int64)
        else:
            vals[n] = np.asarray(op.real(node["attrs"], *args), dtype=np.float64)
        if observe is not None:
            observe(n, vals[n])
        if keep is not None:
            del args
            for s in set(node["operands"]):
                if last_use[s] == i and s not in keep:
                    del vals[s]
    if keep is not None:
        return {n: v for n, v in vals.items() if n in keep}
    return vals

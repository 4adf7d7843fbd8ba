"""Front-end and passes: spec -> IR graph -> lowered IR graph.

Passes are plain functions ``graph -> graph``.
"""
from __future__ import annotations

from .graph import Graph, IRError, infer_types
from .numerics import AttentionNumerics, attention_numerics
from .types import TensorType

VARIANTS = ("naive", "online")


def numerics_from_spec(spec) -> AttentionNumerics:
    m, f = spec.model, spec.formats
    return attention_numerics(m.seq_len, m.head_dim, f.q, f.k, f.v, f.out,
                              f.score_frac, f.prob_frac)


def attention_head_graph(nm: AttentionNumerics, name: str = "head") -> Graph:
    """One attention head: inputs q, k, v (N x d), output o = sdpa(q, k, v)."""
    g = Graph(name, nm)
    n, d = nm.seq_len, nm.head_dim
    g.add_input("q", TensorType((n, d), nm.q))
    g.add_input("k", TensorType((n, d), nm.k))
    g.add_input("v", TensorType((n, d), nm.v))
    g.add_op("o", "sdpa", ("q", "k", "v"))
    g.mark_output("o")
    return infer_types(g)


def lower_attention(graph: Graph, variant: str) -> Graph:
    """Replace each ``sdpa`` node by the op sequence of the chosen streaming variant.

    naive:  scores -> row_max -> exp_sub -> row_sum -> reciprocal -> scale_rows -> matmul
            -> requant (two row-long bypasses in hardware)
    online: scores -> online_rowsum / online_pv (running max, sum and output) -> normalize
    """
    if variant not in VARIANTS:
        raise IRError(f"unsupported attention variant {variant!r}; allowed: {', '.join(VARIANTS)}")
    nm = graph.numerics
    out = Graph(graph.name, nm)
    for n in graph.nodes():
        node = graph.node(n)
        if node["op"] == "input":
            out.add_input(n, node["type"])
        elif node["op"] != "sdpa":
            out.add_op(n, node["op"], node["operands"], **node["attrs"])
        else:
            q, k, v = node["operands"]
            x = out.add_op(f"{n}.scores", "scores", (q, k))
            if variant == "naive":
                m = out.add_op(f"{n}.row_max", "row_max", (x,))
                e = out.add_op(f"{n}.exp", "exp_sub", (x, m))
                l = out.add_op(f"{n}.row_sum", "row_sum", (e,))
                r = out.add_op(f"{n}.recip", "reciprocal", (l,))
                p = out.add_op(f"{n}.probs", "scale_rows", (e, r))
                o = out.add_op(f"{n}.pv", "matmul", (p, v))
                out.add_op(n, "requant", (o,), shift=nm.out_shift_naive)
            else:
                l = out.add_op(f"{n}.rowsum", "online_rowsum", (x,))
                o = out.add_op(f"{n}.pv", "online_pv", (x, v))
                out.add_op(n, "normalize", (o, l))
    out.outputs = list(graph.outputs)
    return infer_types(out)

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


#: the attributes of an ``sdpa`` node: which keys each query attends to and how the
#: keys are split; the spec's ``model.attention`` fields of the same names
ATTENTION_ATTRS = ("kind", "window", "split", "decode")


def attention_attrs(att=None) -> dict:
    """An ``sdpa`` node's attributes from a spec's ``model.attention`` (None: full)."""
    if att is None:
        return {"kind": "full", "window": None, "split": None, "decode": None}
    return {a: getattr(att, a) for a in ATTENTION_ATTRS}


def attention_head_graph(nm: AttentionNumerics, name: str = "head", att=None) -> Graph:
    """One attention head: inputs q, k, v (N x d; decode: q holds the S new tokens'
    rows), output o = sdpa(q, k, v) with ``att``'s attributes (``attention_attrs``)."""
    g = Graph(name, nm)
    n, d = nm.seq_len, nm.head_dim
    attrs = attention_attrs(att)
    g.add_input("q", TensorType((attrs["decode"] or n, d), nm.q))
    g.add_input("k", TensorType((n, d), nm.k))
    g.add_input("v", TensorType((n, d), nm.v))
    g.add_op("o", "sdpa", ("q", "k", "v"), **attrs)
    g.mark_output("o")
    return infer_types(g)


def attention_node(graph: Graph) -> dict:
    """The attributes of the one attention node of a head graph, as written or lowered
    (the mappers read the kind's parameters here, not from the spec)."""
    for op in ("sdpa",) + STREAMING:
        found = graph.find(op)
        if found:
            return graph.node(found[0])["attrs"]
    # a full head lowered to its fine-grained ops keeps no attention node
    return attention_attrs()


#: the lowered ops of the kinds that stream as one block of templates (their integer
#: semantics: ``ir.window``, ``ir.split``, ``ir.decode``)
STREAMING = ("masked_online", "split_online", "decode_online")


def _streaming_op(attrs) -> str | None:
    """The lowered op of an ``sdpa`` node that is not full attention, else None."""
    if attrs.get("split"):
        return "split_online"
    if attrs.get("decode"):
        return "decode_online"
    if attrs.get("kind", "full") != "full":
        return "masked_online"
    return None


def lower_attention(graph: Graph, variant: str) -> Graph:
    """Replace each ``sdpa`` node by the op sequence of the chosen streaming variant.

    naive:  scores -> row_max -> exp_sub -> row_sum -> reciprocal -> scale_rows -> matmul
            -> requant (two row-long bypasses in hardware)
    online: scores -> online_rowsum / online_pv (running max, sum and output) -> normalize

    A window / causal, split or decode node (its attributes) becomes one streaming op
    (``masked_online``, ``split_online``, ``decode_online``), online variant only.
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
        elif _streaming_op(node["attrs"]):
            if variant != "online":
                raise IRError(f"{n}: {_streaming_op(node['attrs'])} attention is built with "
                              "the online variant only")
            out.add_op(n, _streaming_op(node["attrs"]), node["operands"], **node["attrs"])
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

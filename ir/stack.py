"""The IR of an encoder / decoder stack, its lowering, and the matcher the stack mapper
reads its layers from.

``stack_graph`` writes the model as the spec loaders describe it (``ir.encoder_golden``
plans: formats and quantized weights): per layer full-width ``linear`` Q/K/V projections,
one ``mha`` node (heads, attention kind and window), the out-projection, ``residual_add``,
``norm`` and the FFN (``linear``, ``activation``, ``linear``), post- or pre-norm, then an
optional final ``norm``. Passes, ``graph -> graph``:

* :func:`split_heads`: each ``mha`` and its Q/K/V linears -> per head a Q, K and V
  linear over that head's output features, an ``sdpa`` node (the kind's attributes) and
  one ``concat``;
* ``ir.lower.lower_attention`` (online): each ``sdpa`` -> the streaming ops of its kind.

:func:`lower_stack` is both. The golden model is the lowered graph interpreted
(``ir.graph.interpret``), the float reference the graph as written interpreted in floats.
:func:`match_layers` walks the graph as written and recovers, op by op, each layer's
structure (norm position, heads, kind, activation) and parameters: the stack mapper
(``mappers.encoder.map_encoder_graph``) maps what it finds, so any front-end that writes
this IR (the YAML and HF loaders today) gets the same hardware.

Node names: layer i's nodes are ``l{i}.<name>``: ``a`` (pre-norm ln1), ``attn_q/k/v``,
``att`` (the ``mha``, after split_heads its ``concat``), ``q{h}``, ``k{h}``, ``v{h}``,
``o{h}`` (after split_heads), ``proj``, ``r1``, ``h1`` (post-norm ln1), ``f`` (pre-norm
ln2), ``up``, ``act``, ``down``, ``r2``, ``y`` (post-norm ln2); the final norm is
``final_ln``.
"""
from __future__ import annotations

import numpy as np

from .graph import Graph, IRError, infer_types, interpret
from .lower import attention_attrs, lower_attention
from .types import TensorType

#: the linear ops of one layer, in data order (``ir.encoder_golden.OPS``)
_QKV = ("attn_q", "attn_k", "attn_v")


def layer_prefix(i: int) -> str:
    return f"l{i}."


def stack_graph(plans: list, final=None, name: str = "encoder") -> Graph:
    """Layer plans (``ir.encoder_golden.layer_plan``) and an optional final norm -> the
    stack's IR as written (input ``x``: N x d_model of the act format)."""
    if not plans:
        raise IRError("stack_graph: no layers")
    p0 = plans[0]
    g = Graph(name, p0.attn)
    x = g.add_input("x", TensorType((p0.n, p0.d_model), p0.act_fmt))
    outs = []
    for i, plan in enumerate(plans):
        x = _layer(g, plan, x, layer_prefix(i))
        outs.append(x)
    if final is not None:
        x = g.add_op("final_ln", "norm", (x,), q=final)
    g.mark_output(x)
    g.g.graph["layer_outputs"] = tuple(outs)
    return infer_types(g)


def spec_graph(spec, weights: dict) -> Graph:
    """The loaders' IR of an encoder / decoder spec (YAML or HF config, ``ir.spec``) and
    its float weights (``ir.weights.load_weights``): the layer plans (formats, quantized
    weights) written as the stack's ops."""
    from .encoder_golden import encoder_plans, final_norm_plan
    from .quantize import stack_formats
    formats = stack_formats(spec, weights)
    g = stack_graph(encoder_plans(spec, weights, formats),
                    final_norm_plan(spec, weights, formats), spec.name)
    g.g.graph["formats"] = formats
    return g


def _layer(g: Graph, plan, x: str, p: str) -> str:
    a = g.add_op(p + "a", "norm", (x,), q=plan.norm1) if plan.pre else x
    qkv = [g.add_op(p + op, "linear", (a,), q=plan.lin[op]) for op in _QKV]
    att = g.add_op(p + "att", "mha", qkv, heads=plan.heads, kind=plan.kind,
                   window=plan.window)
    proj = g.add_op(p + "proj", "linear", (att,), q=plan.lin["attn_out"])
    r1 = g.add_op(p + "r1", "residual_add", (x, proj), numerics=plan.res1)
    h1 = r1 if plan.pre else g.add_op(p + "h1", "norm", (r1,), q=plan.norm1)
    f = g.add_op(p + "f", "norm", (h1,), q=plan.norm2) if plan.pre else h1
    up = g.add_op(p + "up", "linear", (f,), q=plan.lin["ffn_up"])
    act = g.add_op(p + "act", "activation", (up,), fn=plan.act_fn, numerics=plan.act_num)
    down = g.add_op(p + "down", "linear", (act,), q=plan.lin["ffn_down"])
    r2 = g.add_op(p + "r2", "residual_add", (h1, down), numerics=plan.res2)
    return r2 if plan.pre else g.add_op(p + "y", "norm", (r2,), q=plan.norm2)


def _copy_frame(graph: Graph) -> Graph:
    out = Graph(graph.name, graph.numerics)
    out.g.graph.update(graph.g.graph)
    return out


def split_heads(graph: Graph) -> Graph:
    """Each ``mha`` node -> per head h: linears ``q{h}``, ``k{h}``, ``v{h}`` (the Q/K/V
    linears' output features h*d_head .. (h+1)*d_head - 1, same input), an ``sdpa``
    ``o{h}`` with the mha's kind and window, and a ``concat`` under the mha's name. The
    Q/K/V linears must feed only the mha."""
    out = _copy_frame(graph)
    dh = graph.numerics.head_dim
    replaced = set()
    for n in graph.nodes():
        node = graph.node(n)
        if node["op"] != "mha":
            continue
        for src in node["operands"]:
            if graph.node(src)["op"] != "linear" or set(graph.g.successors(src)) != {n}:
                raise IRError(f"{n}: mha operand {src} must be a linear feeding only the "
                              "mha (split_heads slices its weights per head)")
            replaced.add(src)
    for n in graph.nodes():
        node = graph.node(n)
        if node["op"] == "input":
            out.add_input(n, node["type"])
        elif n in replaced:
            continue
        elif node["op"] == "mha":
            p = n.rsplit(".", 1)[0] + "." if "." in n else ""
            a = node["attrs"]
            heads = []
            for h in range(a["heads"]):
                lo, hi = h * dh, (h + 1) * dh
                names = []
                for src, role in zip(node["operands"], "qkv"):
                    lin = graph.node(src)
                    names.append(out.add_op(f"{p}{role}{h}", "linear", lin["operands"],
                                            q=lin["attrs"]["q"].rows(lo, hi)))
                attrs = attention_attrs()
                attrs.update(kind=a["kind"], window=a["window"])
                heads.append(out.add_op(f"{p}o{h}", "sdpa", names, **attrs))
            out.add_op(n, "concat", heads)
        else:
            out.add_op(n, node["op"], node["operands"], **node["attrs"])
    out.outputs = list(graph.outputs)
    return infer_types(out)


def lower_stack(graph: Graph) -> Graph:
    """The stack's IR as written -> per-head streaming attention ops (the golden model's
    graph)."""
    low = lower_attention(split_heads(graph), "online")
    low.g.graph.update({k: v for k, v in graph.g.graph.items() if k != "numerics"})
    return low


# ---------------------------------------------------------------- evaluation

#: the names a layer trace holds (``ir.encoder_golden.layer_golden``)
TRACE = ("att", "proj", "r1", "h1", "up", "act", "down", "r2", "y")


def _trace(vals: dict, p: str, heads: int) -> dict:
    """Layer ``p``'s intermediates by trace name; a pre-norm layer's h1 is r1 and its y
    is r2 (the residual stream)."""
    t = {}
    for h in range(heads):
        for k in ("q", "k", "v", "o"):
            t[f"{k}{h}"] = vals[f"{p}{k}{h}"]
    alias = {"h1": "r1", "y": "r2"}
    for k in TRACE:
        t[k] = vals[p + k] if p + k in vals else vals[p + alias[k]]
    return t


def stack_golden(plans: list, x_ints, traces: list | None = None, final=None) -> np.ndarray:
    """The lowered stack interpreted, bit-exact; ``traces`` receives one intermediate
    dict per layer."""
    g = lower_stack(stack_graph(plans, final))
    p0 = plans[0]
    x = {"x": np.asarray(x_ints, np.int64).reshape(p0.n, p0.d_model)}
    if traces is None:
        return interpret(g, x, keep=g.outputs)[g.outputs[0]]
    vals = interpret(g, x)
    traces.extend(_trace(vals, layer_prefix(i), p.heads) for i, p in enumerate(plans))
    return vals[g.outputs[0]]


def stack_float(plans: list, x, final=None) -> np.ndarray:
    """The stack as written, interpreted in floats on real inputs x."""
    g = stack_graph(plans, final)
    return interpret(g, {"x": np.asarray(x, np.float64)}, "float",
                     keep=g.outputs)[g.outputs[0]]


def layer_outputs(graph: Graph) -> list[str]:
    """The node after every layer (the last one: the final norm, if any)."""
    outs = list(graph.g.graph["layer_outputs"])
    if outs[-1] != graph.outputs[0]:
        outs[-1] = graph.outputs[0]
    return outs


def stack_accuracy(plans: list, x_ints, final=None, graph: Graph | None = None,
                   lowered: Graph | None = None, ints: dict | None = None) -> list:
    """Per layer: the integer stack (lowered graph) after that layer against the float
    stack (graph as written) on the same dequantized input; the final norm, if any, in
    the last layer's figures. Errors accumulate from layer to layer. ``graph`` /
    ``lowered``: the stack's IR when already built (else built from the plans); ``ints``:
    the integer values of :func:`layer_outputs` when already computed."""
    graph = graph if graph is not None else stack_graph(plans, final)
    x_fmt = graph.node("x")["type"].fmt
    x = np.asarray(x_ints, np.int64)
    outs = layer_outputs(graph)
    if ints is None:
        lowered = lowered if lowered is not None else lower_stack(graph)
        ints = interpret(lowered, {"x": x}, keep=outs)
    flts = interpret(graph, {"x": x * x_fmt.lsb}, "float", keep=outs)
    res = []
    for i, n in enumerate(outs):
        lsb = graph.node(n)["type"].fmt.lsb
        got, ref = ints[n] * lsb, flts[n]
        cos = float((ref * got).sum() / (np.linalg.norm(ref) * np.linalg.norm(got)))
        res.append({"layer": i, "max_abs_error": float(np.abs(ref - got).max()),
                    "cosine": cos, "out_lsb": lsb, "max_abs_float": float(np.abs(ref).max())})
    return res


class TensorLosses:
    """The error each op of a stack adds, measured on the integer model as it runs: for
    every node of the IR as written, its integer value (dequantized) against the op's
    float semantics applied to its *integer* inputs (dequantized), as a relative RMS
    error ``||int - float(int inputs)|| / ||float(int inputs)||``: the loss that op's
    format, weights and arithmetic add, not the loss it inherits. Q, K and V (per head in
    the lowered IR) are measured whole, as the written linears. Use :meth:`observe` as
    ``interpret``'s ``observe`` on the lowered graph; values are kept only until their
    last reader here has been measured."""

    def __init__(self, graph: Graph, lowered: Graph):
        from .graph import OPS
        self.graph, self.lowered, self.ops = graph, lowered, OPS
        self.parts: dict[str, list[str]] = {}      # written node -> lowered nodes (concat)
        self.users: dict[str, int] = {}            # written node -> measurements that read it
        for n in graph.nodes():
            node = graph.node(n)
            self.parts[n] = [n] if n in lowered.g else self._heads(n)
            if node["op"] == "input":
                continue
            for src in node["operands"] + (n,):
                self.users[src] = self.users.get(src, 0) + 1
        self.owner = {part: n for n, parts in self.parts.items() for part in parts}
        self.seen: dict[str, np.ndarray] = {}
        self.values: dict[str, np.ndarray] = {}
        self.results: list[dict] = []

    def _heads(self, n: str) -> list[str]:
        p, op = n.rsplit(".", 1)
        role = {"attn_q": "q", "attn_k": "k", "attn_v": "v"}.get(op)
        if role is None:
            return []
        heads = self.graph.node(next(iter(self.graph.g.successors(n))))["attrs"]["heads"]
        return [f"{p}.{role}{h}" for h in range(heads)]

    def _real(self, name: str) -> np.ndarray:
        fmt = self.lowered.node(self.parts[name][0])["type"].fmt
        return self.values[name] * fmt.lsb

    def observe(self, name: str, value: np.ndarray) -> None:
        w = self.owner.get(name)
        if w is None:
            return
        self.seen[name] = value
        parts = self.parts[w]
        if not all(p in self.seen for p in parts):
            return
        self.values[w] = (np.concatenate([self.seen.pop(p) for p in parts], axis=1)
                          if len(parts) > 1 else self.seen.pop(parts[0]))
        node = self.graph.node(w)
        if node["op"] != "input":
            self._measure(w, node)

    def _measure(self, w: str, node: dict) -> None:
        args = [self._real(s) for s in node["operands"]]
        ref = np.asarray(self.ops[node["op"]].real(node["attrs"], *args), np.float64)
        got = self._real(w)
        norm = float(np.linalg.norm(ref))
        self.results.append({
            "tensor": w, "format": str(self.graph.node(w)["type"].fmt),
            "added": float(np.linalg.norm(got - ref) / norm) if norm else 0.0})
        for src in node["operands"] + (w,):
            self.users[src] -= 1
            if not self.users[src]:
                self.values.pop(src, None)

    def worst(self, count: int = 3) -> list[dict]:
        """The ``count`` tensors that add the most error, most first."""
        return sorted(self.results, key=lambda r: -r["added"])[:count]


# ---------------------------------------------------------------- the mapper's view

def _users(graph: Graph, n: str, op: str, what: str) -> list:
    return [s for s in graph.g.successors(n) if graph.node(s)["op"] == op]


def _one(graph: Graph, n: str, op: str, what: str) -> str:
    found = _users(graph, n, op, what)
    if len(found) != 1:
        raise IRError(f"{n}: expected one {op} ({what}) reading it, found "
                      f"{len(found) or 'none'}; the stack mapper maps post- and pre-norm "
                      "transformer layers only")
    return found[0]


def _linear(graph, n):
    return graph.node(n)["attrs"]["q"]


def match_layers(graph: Graph) -> tuple[list, object]:
    """Walk the stack's IR as written (:func:`stack_graph`'s ops, from any front-end) and
    return (one ``LayerPlan`` per layer, the final norm's ``QNorm`` or None): the layer
    structure is read from the ops (a norm before the attention: pre-norm; the mha's
    heads, kind and window; the activation), not from the spec. A structure the stack
    templates can't build is an IRError naming the node."""
    from .encoder_golden import OPS, LayerPlan
    (x,) = [n for n in graph.nodes() if graph.node(n)["op"] == "input"]
    out = graph.outputs[0]
    nm = graph.numerics
    plans, final = [], None
    while x != out:
        nxt = list(graph.g.successors(x))
        if len(nxt) == 1 and graph.node(nxt[0])["op"] == "norm" and nxt[0] == out:
            final = graph.node(out)["attrs"]["q"]
            break
        norms = _users(graph, x, "norm", "ln1")
        pre = bool(norms)
        a = _one(graph, x, "norm", "ln1 of a pre-norm layer") if pre else x
        qkv = _users(graph, a, "linear", "Q/K/V")
        mha = _one(graph, qkv[0] if qkv else a, "mha", "the attention")
        q, k, v = graph.node(mha)["operands"]
        if any(graph.node(s)["operands"] != (a,) for s in (q, k, v)):
            raise IRError(f"{mha}: Q, K and V must be linears of the layer input {a}")
        ma = graph.node(mha)["attrs"]
        proj = _one(graph, mha, "linear", "the out-projection")
        r1 = _one(graph, proj, "residual_add", "the attention residual")
        if graph.node(r1)["operands"] != (x, proj):
            raise IRError(f"{r1}: the attention residual must add the layer input {x} "
                          f"and {proj}")
        h1 = r1 if pre else _one(graph, r1, "norm", "ln1")
        f = _one(graph, h1, "norm", "ln2 of a pre-norm layer") if pre else h1
        up = _one(graph, f, "linear", "the FFN up-projection")
        act = _one(graph, up, "activation", "the FFN activation")
        down = _one(graph, act, "linear", "the FFN down-projection")
        r2 = _one(graph, down, "residual_add", "the FFN residual")
        if graph.node(r2)["operands"] != (h1, down):
            raise IRError(f"{r2}: the FFN residual must add {h1} and {down}")
        y = r2 if pre else _one(graph, r2, "norm", "ln2")
        norm1 = graph.node(a if pre else h1)["attrs"]["q"]
        norm2 = graph.node(f if pre else y)["attrs"]["q"]
        lin = dict(zip(OPS, (_linear(graph, s) for s in (q, k, v, proj, up, down))))
        xt = graph.node(x)["type"]
        aa = graph.node(act)["attrs"]
        plans.append(LayerPlan(
            xt.shape[0], xt.shape[1], ma["heads"], lin["attn_q"].numerics.m // ma["heads"],
            lin["ffn_up"].numerics.m, xt.fmt, nm, lin, norm1, norm2, aa["fn"],
            aa["numerics"], graph.node(r1)["attrs"]["numerics"],
            graph.node(r2)["attrs"]["numerics"], pre, ma["kind"] == "causal", ma["window"]))
        x = y
    if not plans:
        raise IRError(f"{graph.name}: no transformer layer between the input and {out}")
    return plans, final

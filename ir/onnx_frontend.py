"""ONNX front-end: a ``.onnx`` transformer graph -> the same encoder :class:`Spec` and
weights a Hugging Face checkpoint gives (``ir.hf_config``), so quantization, the golden
model, the simulator and the RTL are shared.

:func:`recognise` reads the model (``ir.onnx_graph``: external data, shape inference, one
evaluation on a dummy input), finds every ``Softmax`` and recognises the layer around it
by pattern (``ir.onnx_patterns``, never by node names): the attention (Q/K/V linears,
head split, scale, mask, P V, head merge, output linear), the residual Adds, the
LayerNorms or RMSNorms (op or decomposed) before (pre-norm: ViT, GPT-2) or after
(post-norm: BERT, DistilBERT) each sublayer, the feed-forward linears and their
activation, and a final norm after the last pre-norm layer. Layer i + 1 must read layer
i's output. The mask decides the attention kind: none (or all zeros) is ``full``, a
lower-triangular one ``causal``, a band ``window`` (a causal band: ``causal`` with a
window); a mask built from a graph input (``attention_mask``) is evaluated with that input
all ones (no padding), and a note says so.

Quantized graphs: QDQ (``QuantizeLinear``/``DequantizeLinear``) and QONNX (``Quant``)
nodes on constant weights give their dequantized values and, when every linear has the
same one, their bit width (``formats.weight.bits``); on activations they are looked
through, and attnflow's calibrated formats replace their scales (a note says how many,
and in how many linears the design's per-channel integers are the graph's).

Everything outside the stack (embeddings before it, the mask construction, pooler and
heads after it) is skipped and listed (:func:`skipped_lines`); an unrecognised node inside
it is one :class:`SpecError` line naming the node, its op type, where it sits and what
is supported there. The sequence length is the graph's when its shapes are static, else
``--seq-len`` / ``--set model.seq_len=N``.

The spec reads the weights back from the model: ``model.weights: {source: file, path:
MODEL.onnx, naming: onnx}`` (:func:`onnx_weights`, called by ``ir.weights.load_weights``).
Quantization is the checkpoint one (per-channel weight scales, calibrated activations).
"""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np

from .onnx_graph import OnnxGraph, Unrecognised, read_model
from .onnx_patterns import (Norm, activation_between, attention_at, linear_after, norm_after,
                            norm_at, weight_bits)
from .spec import Spec, SpecError, parse_override, spec_from_dict

__all__ = ["recognise", "spec_from_onnx", "onnx_weights", "skipped_lines", "OnnxStack"]

#: the checkpoint quantization of ``ir.hf_config``
ONNX_QUANTIZATION = {"weights": "per_channel", "activations": "calibrated"}


@dataclass(frozen=True)
class OnnxStack:
    """The layer stack found in an ONNX model."""
    source: str
    model: dict                 # the spec's model fields (without weights)
    weights: dict               # attnflow tensor name -> float64 array
    input: str                  # the stack's input tensor (hidden states after embeddings)
    output: str                 # its output tensor
    nodes: frozenset            # names of the nodes the stack is built from
    skipped: tuple              # (where, node count, "op x count, ...")
    mask_inputs: tuple          # graph inputs a mask is built from (evaluated as all ones)
    qdq: tuple = (0, 0)         # (QDQ pairs on activations looked through, dequantized weights)
    weight_bits: int | None = None  # the graph's weight bit width (every linear alike)
    exact: tuple = (0, 0)       # (linears whose per-channel integers are the graph's, linears)
    input_shape: tuple = ()     # the stack input's shape in the evaluated graph (batch 1)
    act_ranges: tuple = ()      # (ir.quantize tensor name, max |value| its quantizer holds)


def _where_text(node) -> str:
    if node is None:
        return "a graph input"
    return f"node {node.name or '(unnamed)'!r} (op {node.op_type})"


def _layer(g: OnnxGraph, i: int, att) -> dict:
    """Layer ``i`` around its attention: its tensors, nodes and weights."""
    where = f"layer {i}, after the attention output projection"
    add, other, s1 = _residual(g, att.out.y, where)
    nodes = [*att.nodes, add]
    before = norm_at(g, att.x)
    if other == att.x:                                      # post-norm (BERT)
        ln1 = _norm_needed(g, s1, f"layer {i}, after the attention residual Add", "post")
        h, x, position = ln1.y, att.x, "post"
    elif before is not None and before.x == other:          # pre-norm (ViT, GPT-2)
        ln1, h, x, position = before, s1, before.x, "pre"
    else:
        raise Unrecognised(g.producer.get(att.x), f"layer {i}, before the attention",
                           "a LayerNorm or RMSNorm (pre-norm) or the layer input that the residual "
                           "Add also reads (post-norm)")
    ffn_in, ln2 = h, None
    if position == "pre":
        ln2 = _norm_needed(g, h, f"layer {i}, before the feed-forward", "pre")
        ffn_in = ln2.y
    up = linear_after(g, ffn_in, f"layer {i}'s feed-forward up projection")
    act, a_out, region = activation_between(
        g, up.y, f"layer {i}'s feed-forward activation (between the up and down projections)")
    down = linear_after(g, a_out, f"layer {i}'s feed-forward down projection")
    add2, other2, s2 = _residual(g, down.y, f"layer {i}, after the feed-forward")
    if other2 != h:
        raise Unrecognised(add2, f"layer {i}, after the feed-forward",
                           "a residual Add of the feed-forward output and its sublayer input")
    y = s2
    if position == "post":
        ln2 = _norm_needed(g, s2, f"layer {i}, after the feed-forward residual Add", "post")
        y = ln2.y
    nodes += [*ln1.nodes, *ln2.nodes, *up.nodes, *region, *down.nodes, add2]
    weights, bits = {}, []
    for key, lin in (("attn.q", att.q), ("attn.k", att.k), ("attn.v", att.v),
                     ("attn.out", att.out), ("ffn.up", up), ("ffn.down", down)):
        weights[f"layers.{i}.{key}.weight"] = lin.weight
        weights[f"layers.{i}.{key}.bias"] = lin.bias
        bits.append(weight_bits(g, lin))
    for key, norm in (("ln1", ln1), ("ln2", ln2)):
        weights[f"layers.{i}.{key}.gamma"] = norm.gamma
        if norm.kind == "layernorm":
            weights[f"layers.{i}.{key}.beta"] = norm.beta
    attention = {"kind": att.kind, **({"window": att.window} if att.window else {})}
    # the tensors ir.quantize names (l{i}.<name>; q, k, v, att shared by the layers)
    tensors = {"proj": att.out.y, "r1": s1, "up": up.y, "act": a_out, "down": down.y,
               "r2": s2, ("a" if position == "pre" else "h1"): ln1.y,
               ("f" if position == "pre" else "y"): ln2.y,
               "q": att.q.y, "k": att.k.y, "v": att.v.y, "att": att.out.x}
    return {"x": x, "y": y, "position": position, "heads": att.heads, "kind": attention,
            "d_model": att.q.weight.shape[1], "d_ff": up.weight.shape[0], "activation": act,
            "eps": {ln1.eps, ln2.eps}, "norm": {ln1.kind, ln2.kind}, "nodes": nodes,
            "weights": weights, "bits": bits, "tensors": tensors,
            "mask_inputs": att.mask_inputs}


def _stop(g: OnnxGraph, t: str, where: str, expected: str):
    users = [n for n, _ in g.uses(t)]
    raise Unrecognised(users[0] if users else g.producer.get(t), where, expected)


def _norm_needed(g: OnnxGraph, t: str, where: str, position: str):
    """The norm reading ``t``, which a ``position``-norm layer has there (else one line)."""
    norm = norm_after(g, t)
    if norm is None:
        _stop(g, t, where, f"a LayerNorm or RMSNorm ({position}-norm layer)")
    return norm


def _residual(g: OnnxGraph, y: str, where: str):
    """(Add node, root of its other operand, its output) of the residual Add reading y."""
    for n, read in g.uses(y):
        if n.op_type == "Add" and not any(g.constant(i) for i in n.input):
            other = n.input[1] if n.input[0] == read else n.input[0]
            return n, g.root(other), n.output[0]
    _stop(g, y, where, "a residual Add")


def _uniform(source: str, layers: list, key: str, field: str, show=lambda v: v):
    first = layers[0][key]
    for i, layer in enumerate(layers[1:], 1):
        if layer[key] != first:
            raise SpecError(source, field, f"layer {i} has {show(layer[key])}, layer 0 "
                                           f"{show(first)}; every layer must be alike")
    return first


def _norm_kind(source: str, layers: list, final: Norm | None) -> str:
    kinds = set().union(*(layer["norm"] for layer in layers)) | ({final.kind} if final else set())
    if len(kinds) != 1:
        raise SpecError(source, "model.norm", "the stack mixes LayerNorm and RMSNorm; "
                                              "attnflow builds one norm kind")
    return kinds.pop()


def _eps(source: str, layers: list, final: Norm | None) -> float:
    eps = set().union(*(layer["eps"] for layer in layers)) | ({final.eps} if final else set())
    # float32 constants: 1e-12 is stored as 9.99999996e-13; keep 7 significant digits
    eps = {float(f"{e:.7g}") for e in eps}
    if len(eps) != 1:
        raise SpecError(source, "model.norm_eps", f"the LayerNorms use different epsilons "
                                                  f"({', '.join(map(str, sorted(eps)))}); "
                                                  "attnflow builds one")
    return eps.pop()


def _stack_from_graph(g: OnnxGraph) -> OnnxStack:
    source = g.source
    softmaxes = [n for n in g.nodes if n.op_type == "Softmax"]
    if not softmaxes:
        raise SpecError(source, "<graph>", "no attention (Softmax) in the graph: not a "
                                           "transformer layer stack")
    layers = []
    for i, sm in enumerate(softmaxes):
        layers.append(_layer(g, i, attention_at(g, sm, f"layer {i}'s attention")))
        if i and layers[i]["x"] != layers[i - 1]["y"]:
            raise Unrecognised(g.producer.get(layers[i]["x"]), f"between layers {i - 1} and {i}",
                               f"layer {i} reading layer {i - 1}'s output directly")
    position = _uniform(source, layers, "position", "model.norm_position")
    final = norm_after(g, layers[-1]["y"]) if position == "pre" else None
    model = {"type": "encoder", "layers": len(layers),
             "d_model": _uniform(source, layers, "d_model", "model.d_model"),
             "heads": _uniform(source, layers, "heads", "model.heads"),
             "d_ff": _uniform(source, layers, "d_ff", "model.d_ff"),
             "seq_len": int(g.shape(layers[0]["x"])[-2]),
             "attention": _uniform(source, layers, "kind", "model.attention"),
             "norm": _norm_kind(source, layers, final), "norm_position": position,
             "final_norm": final is not None,
             "norm_eps": _eps(source, layers, final),
             "activation": _uniform(source, layers, "activation", "model.activation")}
    weights = {k: _compact(v) for layer in layers for k, v in layer["weights"].items()}
    nodes = [n for layer in layers for n in layer["nodes"]]
    out = layers[-1]["y"]
    if final is not None:
        weights["final_norm.gamma"] = _compact(final.gamma)
        if final.kind == "layernorm":
            weights["final_norm.beta"] = _compact(final.beta)
        nodes += final.nodes
        out = final.y
    masks = frozenset().union(*(layer["mask_inputs"] for layer in layers))
    ids = _with_views(g, {id(n) for n in nodes}, layers[0]["x"])
    inside = [n for n in g.nodes if id(n) in ids]
    qdq = (sum(n.op_type in ("QuantizeLinear", "Quant") and not g.constant(n.input[0])
               for n in inside),
           sum(n.op_type in ("DequantizeLinear", "Quant") and g.constant(n.input[0])
               for n in inside))
    bits = {b for layer in layers for b in layer["bits"]}
    wbits = bits.pop() if len(bits) == 1 and None not in bits else None
    ranges = _activation_ranges(g, layers, final)
    return OnnxStack(source, model, weights, layers[0]["x"], out,
                     frozenset(n.name for n in inside), _skipped(g, ids, layers[0]["x"]),
                     tuple(sorted(masks)), qdq, wbits, _exact(weights, wbits),
                     g.shape(layers[0]["x"]), ranges)


def _quantizer_range(g: OnnxGraph, t: str) -> float | None:
    """max |value| the per-tensor quantizer reading ``t`` represents (QuantizeLinear:
    (qmin - zp) s .. (qmax - zp) s; QONNX Quant likewise), None without one."""
    todo = [t]
    while todo:
        cur = todo.pop()
        for n in g.consumers.get(cur, ()):
            if n.op_type in ("Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"):
                todo.append(n.output[0])
            elif n.op_type in ("QuantizeLinear", "Quant") and n.input[0] == cur:
                scale = g.value(n.input[1])
                if scale.size != 1:
                    return None
                zp = (g.value(n.input[2]) if len(n.input) > 2 and n.input[2]
                      else np.zeros((), np.uint8))
                if n.op_type == "Quant":
                    b = int(np.asarray(g.value(n.input[3])).reshape(()))
                    lo, hi = ((-(1 << (b - 1)), (1 << (b - 1)) - 1) if g.attr(n, "signed", 1)
                              else (0, (1 << b) - 1))
                else:
                    info = np.iinfo(zp.dtype)
                    lo, hi = info.min, info.max
                z = float(np.asarray(zp, np.float64).reshape(-1)[0])
                s = float(scale.reshape(()))
                return max(abs((lo - z) * s), abs((hi - z) * s))
    return None


def _activation_ranges(g: OnnxGraph, layers: list, final: Norm | None) -> tuple:
    """(tensor name, range) for every stack tensor a quantized graph quantizes."""
    ranges = {}

    def put(name, t):
        r = _quantizer_range(g, t)
        if r is not None:
            ranges[name] = max(ranges.get(name, 0.0), r)
    put("x", layers[0]["x"])
    for i, layer in enumerate(layers):
        for name, t in layer["tensors"].items():
            put(name if name in ("q", "k", "v", "att") else f"l{i}.{name}", t)
    if final is not None:
        put("final_ln", final.y)
    return tuple(sorted(ranges.items()))


def _exact(weights: dict, bits: int | None) -> tuple:
    """(linears whose weights are integers times the design's per-channel steps, linears)
    for a quantized graph of ``bits``-bit weights."""
    if bits is None:
        return (0, 0)
    from .quantize import weight_scales
    mats = [w for k, w in weights.items() if k.endswith(".weight")]
    exact = 0
    for w in mats:
        q = w / np.asarray(weight_scales(w, bits, "per_channel"))[:, None]
        exact += bool(np.allclose(q, np.rint(q), rtol=0, atol=1e-3))
    return exact, len(mats)


def _compact(w: np.ndarray) -> np.ndarray:
    """``w`` as float32 when that holds it exactly (a float32 graph's weights): half the
    memory, like ``ir.weights`` keeps a checkpoint's float32 tensors."""
    w32 = np.ascontiguousarray(w, dtype=np.float32)
    return w32 if np.array_equal(w32, w) else w


def _ancestors(g: OnnxGraph, t: str) -> set:
    """ids of every node behind ``t``."""
    return {id(n) for _, n in g.upstream(t, lambda _, n: [i for i in n.input if i])}


def _with_views(g: OnnxGraph, stack: set, x: str) -> set:
    """``stack`` plus the view nodes between its nodes (reshapes the patterns look through)."""
    stack = set(stack)
    views = ("Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Transpose", "Concat",
             "QuantizeLinear", "DequantizeLinear", "Quant")
    for n in reversed(g.nodes):
        if n.op_type in views and id(n) not in stack:
            if any(id(c) in stack for c in g.consumers.get(n.output[0], ())):
                src = g.producer.get(n.input[0])
                if src is None or id(src) in stack or src.op_type in views \
                        or g.root(n.input[0]) == x:
                    stack.add(id(n))
    return stack


def _skipped(g: OnnxGraph, stack: set, x: str) -> tuple:
    before = _ancestors(g, x)
    groups: dict[str, Counter] = {}
    for n in g.nodes:
        if id(n) in stack or n.op_type == "Constant":
            continue
        outs = [o for o in n.output if o]
        folded = all(g.constant(o) for o in outs)
        if folded and (id(n) not in before or all(o in g.values and g.values[o].dtype.kind
                                                  in "iub" for o in outs)):
            where = "constant or shape computations (folded)"
        elif id(n) in before:
            where = "before the stack (embeddings)"
        elif all(not (g.taint.get(o, frozenset()) & g.taint.get(x, frozenset()))
                 for o in n.output if o):
            where = "mask construction (from graph inputs)"
        else:
            where = "after the stack (pooler, heads, extra outputs)"
        groups.setdefault(where, Counter())[n.op_type] += 1
    return tuple((w, sum(c.values()), ", ".join(f"{op} x{k}" for op, k in c.most_common()))
                 for w, c in groups.items())


def skipped_lines(stack: OnnxStack) -> list[str]:
    """One line per group of nodes outside the layer stack."""
    lines = [f"skipped {count} nodes {where}: {ops}" for where, count, ops in stack.skipped]
    acts, weights = stack.qdq
    if acts or weights:
        exact, total = stack.exact
        bits = (f"{stack.weight_bits}-bit weights per output channel (formats.weight.bits "
                f"{stack.weight_bits}): the design's integers are the graph's in {exact} of "
                f"{total} linears" if stack.weight_bits else "float weights")
        ranged = len(stack.act_ranges)
        lines.append(f"quantized graph: {weights} constant tensors (weights, biases, norm "
                     f"parameters) read as their dequantized values; {bits}; {acts} "
                     "activation quantizers (QuantizeLinear/DequantizeLinear, Quant) looked "
                     f"through; {ranged} activation formats hold their quantizer's range "
                     "(power-of-two steps of the formats' bits, not the graph's scales), "
                     "the others are calibrated")
    if stack.mask_inputs:
        lines.append(f"attention mask built from graph input(s) {', '.join(stack.mask_inputs)}"
                     " taken as all ones (no padding)")
    return lines


@lru_cache(maxsize=2)
def _recognise(path: str, stamp: tuple, seq_len: int | None) -> OnnxStack:
    g = OnnxGraph(read_model(path), path, seq_len)
    try:
        stack = _stack_from_graph(g)
    except Unrecognised as e:
        raise SpecError(path, "<graph>", f"{_where_text(e.node)} in {e.where}: not "
                                         f"supported; expected there: {e.expected}") from None
    n = stack.model["seq_len"]
    if seq_len is not None and n != seq_len:
        raise SpecError(path, "model.seq_len", f"{seq_len} tokens asked, but this graph is "
                                               f"exported for {n} (static shapes); use "
                                               f"--seq-len {n}, or export it with a dynamic "
                                               "sequence axis")
    return stack


def recognise(path: str | Path, seq_len: int | None = None) -> OnnxStack:
    """The layer stack of the ONNX model at ``path`` (cached per file version)."""
    path = os.path.abspath(path)
    try:
        st = os.stat(path)
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = None
    return _recognise(path, stamp, seq_len)


def _override_seq_len(source: str, overrides: list) -> int | None:
    seq_len = None
    for ov in overrides:
        key, value = parse_override(ov) if isinstance(ov, str) else ov
        if key.replace(" ", "") == "model.seq_len":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SpecError(source, "model.seq_len", f"must be an integer >= 1, got {value!r}")
            seq_len = value
    return seq_len


def _spec_name(path: Path) -> str:
    name = re.sub(r"\W", "_", path.stem, flags=re.ASCII) or "onnx_model"
    return name if re.match(r"[A-Za-z_]", name) else f"m_{name}"


def spec_from_onnx(path: str | Path, overrides: Iterable = ()) -> Spec:
    """The encoder spec of the ONNX model at ``path`` (``--set``-style ``overrides``)."""
    overrides = list(overrides)
    source = str(path)
    stack = recognise(path, _override_seq_len(source, overrides))
    model = dict(stack.model, weights={"source": "file", "path": os.path.abspath(path),
                                       "naming": "onnx"})
    data = {"name": _spec_name(Path(path)), "model": model,
            "quantization": dict(ONNX_QUANTIZATION)}
    if stack.weight_bits is not None and 2 <= stack.weight_bits <= 16:
        data["formats"] = {"weight": {"bits": stack.weight_bits,
                                      "frac": min(6, stack.weight_bits - 1)}}
    spec = spec_from_dict(data, source, overrides, base_dir=Path(path).parent)
    if not stack.act_ranges:
        return spec
    data["quantization"]["formats"] = _graph_formats(spec, stack.act_ranges)
    return spec_from_dict(data, source, overrides, base_dir=Path(path).parent)


def _graph_formats(spec: Spec, ranges: tuple) -> dict:
    """quantization.formats for the tensors the graph quantizes: the spec's bits for each
    (formats.act, or formats.q/k/v/out), the fractional bits that hold the range of the
    graph's quantizer (its clipping range, with a power-of-two step)."""
    from .quantize import ATTENTION_TENSORS, frac_for
    out = {}
    for name, peak in ranges:
        fmt = getattr(spec.formats, ATTENTION_TENSORS.get(name, "act"))
        out[name] = {"bits": fmt.bits, "frac": frac_for(peak, fmt.bits)}
    return out


def onnx_weights(path: str, model) -> dict[str, np.ndarray]:
    """The attnflow weights of the encoder ``model`` (an EncoderSpec) from the ONNX model
    at ``path``; a stack that does not match ``model`` is a SpecError."""
    stack = recognise(path, model.seq_len)
    dims = ("layers", "d_model", "heads", "d_ff")
    for dim in dims:
        if stack.model[dim] != getattr(model, dim):
            raise SpecError(path, f"model.{dim}", f"{getattr(model, dim)} in the spec, "
                                                  f"{stack.model[dim]} in the ONNX graph")
    out = dict(stack.weights)
    if not model.final_norm:
        out = {k: v for k, v in out.items() if not k.startswith("final_norm.")}
    elif "final_norm.gamma" not in out:
        raise SpecError(path, "model.final_norm", "true, but the ONNX graph has no LayerNorm "
                                                  "after the last layer")
    return out

"""An ONNX model read for the front-end (:mod:`attnflow.ir.onnx_frontend`): loading with
one-line errors, shape inference, one evaluation of every tensor on a dummy input, value
dependence, and the element layout of view chains.

* :func:`read_model` loads a ``.onnx`` file (external data from files next to it) and runs
  ``onnx.shape_inference``; a file that is not ONNX, a missing external-data file or a
  graph that fails shape inference is one :class:`~attnflow.ir.spec.SpecError` line.
* :class:`OnnxGraph` evaluates the whole graph once with ``onnx.reference`` (numpy) on a
  dummy input of batch 1 and ``seq_len`` tokens (integer inputs all ones: token ids 1 and
  an attention mask without padding; float inputs zero), so every tensor has a concrete
  shape and every constant (weights, reshape targets, masks, scales) a value. Dynamic
  dimensions other than the first (the batch) take ``seq_len``.
* ``taint[t]``: the graph inputs whose *values* tensor ``t`` depends on (``Shape`` and
  ``Size`` depend on shapes only): a weight has none, a hidden state the token inputs, an
  attention mask built from an ``attention_mask`` input only that input.
* :meth:`OnnxGraph.layout`: which element of a base tensor each element of a tensor is,
  through a chain of view ops (Reshape, Transpose, Split, Slice, ...), computed by applying
  the chain to an index array; head splits and merges are checked against it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .spec import SpecError

__all__ = ["read_model", "OnnxGraph", "VIEW_OPS", "ORDER_VIEWS", "Unrecognised"]

#: ops that move elements without changing them (one data input)
VIEW_OPS = ("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Split", "Slice",
            "Identity", "QuantizeLinear", "DequantizeLinear", "Quant")
#: QDQ fake quantization: QuantizeLinear -> DequantizeLinear pairs on activations are
#: looked through like views (the design's own activation formats replace them)
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear", "Quant")      # Quant: QONNX
#: view ops that keep the row-major order of the elements (the same data, or QDQ's
#: rounded copy of it)
ORDER_VIEWS = ("Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity") + QDQ_OPS
_SHAPE_ONLY = ("Shape", "Size")


class Unrecognised(Exception):
    """A node the front-end cannot place in the layer stack: (node, where, expected)."""

    def __init__(self, node, where: str, expected: str):
        super().__init__(node, where, expected)
        self.node, self.where, self.expected = node, where, expected


def _onnx():
    try:
        import onnx
    except ImportError:         # pragma: no cover - onnx is in the test extra
        raise SpecError("<onnx>", "<file>", "reading .onnx models needs the onnx package: "
                                            "pip install onnx") from None
    return onnx


def _external_files(model, base: Path):
    """(tensor name, location) of every initializer whose external data file is missing."""
    from onnx.external_data_helper import _get_all_tensors, uses_external_data
    missing = []
    for t in _get_all_tensors(model):
        if not uses_external_data(t):
            continue
        loc = {e.key: e.value for e in t.external_data}.get("location", "")
        if not (base / loc).is_file():
            missing.append((t.name, loc))
    return missing


def read_model(path: str | Path):
    """The ModelProto at ``path`` with its external data and inferred shapes."""
    onnx = _onnx()
    source = str(path)
    path = Path(path)
    if not path.is_file():
        raise SpecError(source, "<file>", "file not found")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:          # protobuf DecodeError and friends
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SpecError(source, "<file>", f"not an ONNX model (cannot parse it: {why}); give "
                                          "a .onnx file written by onnx.save or "
                                          "torch.onnx.export") from None
    if model.ir_version < 1 or not model.graph.node:
        raise SpecError(source, "<file>", "not an ONNX model (no ir_version or no graph nodes); "
                                          "give a .onnx file written by onnx.save or "
                                          "torch.onnx.export")
    missing = _external_files(model, path.parent)
    if missing:
        name, loc = missing[0]
        more = f" (and {len(missing) - 1} more tensors)" if len(missing) > 1 else ""
        raise SpecError(source, "<file>",
                        f"initializer {name!r}{more} keeps its data in the external file "
                        f"{loc!r}, which is missing ({path.parent / loc}); put it next to the "
                        "model, or save the model with its weights inside")
    from onnx.external_data_helper import load_external_data_for_model
    try:
        load_external_data_for_model(model, str(path.parent))
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as e:
        raise SpecError(source, "<file>", f"ONNX shape inference failed: "
                                          f"{str(e).splitlines()[0]}") from None
    if any(n.op_type in ("If", "Loop", "Scan") for n in model.graph.node):
        node = next(n for n in model.graph.node if n.op_type in ("If", "Loop", "Scan"))
        raise SpecError(source, "<file>", f"node {node.name!r} (op {node.op_type}): control "
                                          "flow is not supported; export the model traced "
                                          "for one input shape")
    return model


def _gather_elements():
    """GatherElements as numpy's take_along_axis (onnx 1.23's reference implementation
    fails when the indices are smaller than the data along another axis, as in BERT's
    token-type buffer)."""
    from onnx.reference.op_run import OpRun

    class GatherElements(OpRun):
        def _run(self, data, indices, axis=None):
            return (np.take_along_axis(data, indices.astype(np.int64), axis=axis or 0),)
    return GatherElements


def _per_axis(v, x, axis):
    v = np.asarray(v)
    if v.ndim == 0 or v.size == 1:
        return v.reshape(())
    shape = [1] * x.ndim
    shape[axis % x.ndim] = v.size
    return v.reshape(shape)


def _qdq_ops():
    """QuantizeLinear / DequantizeLinear (per tensor or per axis, 8-bit) for every opset:
    onnx 1.23's reference evaluator has them only from opset 19."""
    from onnx.reference.op_run import OpRun

    class QuantizeLinear(OpRun):
        def _run(self, x, scale, zero_point=None, axis=1, saturate=1, block_size=0,
                 output_dtype=0, precision=0):
            dtype = np.asarray(zero_point).dtype if zero_point is not None else np.uint8
            zp = 0 if zero_point is None else _per_axis(zero_point, x, axis).astype(np.int64)
            q = np.rint(x / _per_axis(scale, x, axis)) + zp
            info = np.iinfo(dtype)
            return (np.clip(q, info.min, info.max).astype(dtype),)

    class DequantizeLinear(OpRun):
        def _run(self, x, scale, zero_point=None, axis=1, block_size=0, output_dtype=0):
            zp = 0 if zero_point is None else _per_axis(zero_point, x, axis).astype(np.int64)
            s = _per_axis(scale, x, axis)
            return (((x.astype(np.int64) - zp) * s).astype(np.asarray(scale).dtype),)
    return QuantizeLinear, DequantizeLinear


#: the domains of QONNX's (and FINN's) custom ops
QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general")


def quant_int(x, scale, zero_point, bits, signed=1, narrow=0, rounding_mode="ROUND"):
    """QONNX ``Quant``: the integers of x / scale + zero_point, clipped to the signed or
    unsigned (narrow) range of ``bits`` bits, then rounded (QONNX's order)."""
    bits = int(np.asarray(bits).reshape(()))
    if signed:
        lo, hi = -(1 << (bits - 1)) + (1 if narrow else 0), (1 << (bits - 1)) - 1
    else:
        lo, hi = 0, (1 << bits) - (2 if narrow else 1)
    mode = rounding_mode.decode() if isinstance(rounding_mode, bytes) else rounding_mode
    rounding = {"ROUND": np.round, "HALF_EVEN": np.round, "CEIL": np.ceil,
                "FLOOR": np.floor}[mode.upper()]
    return rounding(np.clip(x / scale + zero_point, lo, hi))


def _qonnx_ops():
    """QONNX's ``Quant`` op (both domains) for the evaluator."""
    from onnx.reference.op_run import OpRun
    ops = []
    for domain in QONNX_DOMAINS:
        class Quant(OpRun):
            op_domain = domain

            def _run(self, x, scale, zero_point, bits, signed=1, narrow=0,
                     rounding_mode="ROUND"):
                q = quant_int(x, scale, zero_point, bits, signed, narrow, rounding_mode)
                return (((q - zero_point) * scale).astype(x.dtype),)
        ops.append(Quant)
    return ops


class OnnxGraph:
    """A loaded model with every tensor evaluated once (see the module docstring)."""

    def __init__(self, model, source: str, seq_len: int | None):
        self.model, self.source = model, source
        g = model.graph
        self.nodes = list(g.node)
        self.inits = {t.name for t in g.initializer}
        self.inputs = [i for i in g.input if i.name not in self.inits]
        self.producer = {o: n for n in self.nodes for o in n.output if o}
        self.consumers: dict[str, list] = {}
        for n in self.nodes:        # shape reads are not uses of the values
            for i in n.input if n.op_type not in _SHAPE_ONLY else ():
                if i:
                    self.consumers.setdefault(i, []).append(n)
        self.feeds, self.seq_len = self._feeds(seq_len)
        self.values = self._evaluate()
        self.taint = self._taint()

    # ------------------------------------------------------------------ evaluation

    def _feeds(self, seq_len):
        from onnx import helper
        feeds = {}
        for inp in self.inputs:
            t = inp.type.tensor_type
            dims = []
            for k, d in enumerate(t.shape.dim):
                if d.HasField("dim_value"):
                    dims.append(d.dim_value)
                elif k == 0:
                    dims.append(1)              # the batch
                elif seq_len is None:
                    what = d.dim_param or "unnamed"
                    raise SpecError(self.source, "model.seq_len",
                                    f"input {inp.name!r} has a dynamic dimension {k} ({what}): "
                                    "give the sequence length, e.g. --seq-len 128")
                else:
                    dims.append(seq_len)
            dtype = helper.tensor_dtype_to_np_dtype(t.elem_type)
            fill = 1 if np.issubdtype(dtype, np.integer) or dtype == np.bool_ else 0
            feeds[inp.name] = np.full(dims, fill, dtype=dtype)
        return feeds, seq_len

    def _evaluate(self) -> dict:
        from onnx.reference import ReferenceEvaluator
        try:
            ev = ReferenceEvaluator(self.model, new_ops=[_gather_elements(), *_qdq_ops(),
                                                         *_qonnx_ops()])
            values = ev.run(None, self.feeds, intermediate=True)
        except Exception as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise SpecError(self.source, "<file>", f"cannot evaluate the graph on a dummy "
                                                   f"input ({first[:300]})") from None
        values = {k: np.asarray(v) for k, v in values.items()}
        for t in self.model.graph.initializer:
            if t.name not in values:
                from onnx import numpy_helper
                values[t.name] = numpy_helper.to_array(t)
        return values

    def _taint(self) -> dict:
        taint = {i.name: frozenset([i.name]) for i in self.inputs}
        empty = frozenset()
        for n in self.nodes:
            if n.op_type in _SHAPE_ONLY:
                got = empty
            else:
                got = empty.union(*(taint.get(i, empty) for i in n.input if i))
            for o in n.output:
                taint[o] = got
        return taint

    # ------------------------------------------------------------------ queries

    def constant(self, t: str) -> bool:
        """``t`` depends on no input value (a weight, a shape, a constant)."""
        return not self.taint.get(t, frozenset())

    def value(self, t: str) -> np.ndarray:
        return self.values[t]

    def shape(self, t: str) -> tuple:
        return tuple(self.values[t].shape)

    def scalar(self, t: str) -> float | None:
        """The value of a constant one-element tensor, else None."""
        if t in self.values and self.constant(t) and self.values[t].size == 1:
            return float(self.values[t].reshape(()))
        return None

    def root(self, t: str) -> str:
        """``t`` before any order-keeping views (the same elements in the same order)."""
        while True:
            n = self.producer.get(t)
            if n is None or n.op_type not in ORDER_VIEWS or n.input[0] == "":
                return t
            t = n.input[0]

    def upstream(self, t: str, follow):
        """(tensor, its producer) for ``t`` and every tensor behind it, each once, depth
        first; ``follow(tensor, node)`` names the inputs to walk on from there (called when
        the caller asks for the next one, so it may stop early)."""
        seen, todo = set(), [t]
        while todo:
            cur = todo.pop()
            n = self.producer.get(cur)
            if n is None or cur in seen:
                continue
            seen.add(cur)
            yield cur, n
            todo += follow(cur, n)

    def uses(self, t: str) -> list:
        """(node, tensor it reads) for every consumer of ``t`` or of an order-keeping view
        of it."""
        out, todo = [], [t]
        while todo:
            cur = todo.pop()
            for n in self.consumers.get(cur, ()):
                if n.op_type in ORDER_VIEWS and n.input[0] == cur:
                    todo.append(n.output[0])
                else:
                    out.append((n, cur))
        return out

    def attr(self, node, name: str, default=None):
        from onnx import helper
        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    # ------------------------------------------------------------------ layouts

    def trace_views(self, t: str, scales: bool = False):
        """Walk back from ``t`` through view ops (and, with ``scales``, multiplications
        or divisions by a constant scalar): ``(base, chain, factor)`` with ``chain`` the
        view nodes from the base forward and ``factor`` the product of the scales."""
        chain, factor, used = [], 1.0, []
        while True:
            n = self.producer.get(t)
            if n is None:
                break
            single_concat = n.op_type == "Concat" and len([i for i in n.input if i]) == 1
            if (n.op_type in VIEW_OPS or single_concat) and n.input[0]:
                chain.append((n, t))
                used.append(n)
                t = n.input[0]
                continue
            if scales and n.op_type in ("Mul", "Div") and len(n.input) == 2:
                a, b = n.input
                sb, sa = self.scalar(b), self.scalar(a)
                if sb is not None and not self.constant(a):
                    factor *= sb if n.op_type == "Mul" else 1.0 / sb
                    used.append(n)
                    t = a
                    continue
                if n.op_type == "Mul" and sa is not None and not self.constant(b):
                    factor *= sa
                    used.append(n)
                    t = b
                    continue
            break
        return t, chain[::-1], factor, used

    def layout(self, base: str, chain) -> np.ndarray:
        """The index (into ``base``, row-major) of every element of the chain's end."""
        idx = np.arange(self.values[base].size).reshape(self.shape(base))
        for node, out in chain:
            op = node.op_type
            if op == "Transpose":
                perm = self.attr(node, "perm")
                idx = np.transpose(idx, perm) if perm is not None else idx.T
            elif op == "Split":
                axis = self.attr(node, "axis", 0) % idx.ndim
                sizes = [self.shape(o)[axis] for o in node.output]
                k = list(node.output).index(out)
                start = sum(sizes[:k])
                idx = np.take(idx, range(start, start + sizes[k]), axis=axis)
            elif op == "Slice":
                starts, ends = (self.values[node.input[1]], self.values[node.input[2]])
                axes = (self.values[node.input[3]] if len(node.input) > 3 and node.input[3]
                        else range(len(starts)))
                steps = (self.values[node.input[4]] if len(node.input) > 4 and node.input[4]
                         else [1] * len(starts))
                sl = [slice(None)] * idx.ndim
                for s, e, a, st in zip(starts, ends, axes, steps):
                    sl[int(a) % idx.ndim] = slice(int(s), int(e), int(st))
                idx = idx[tuple(sl)]
            else:                   # order-keeping: the evaluated output shape says it
                idx = idx.reshape(self.shape(out))
            if idx.shape != self.shape(out):
                raise Unrecognised(node, "a view of a tensor", "a view the front-end can follow")
        return idx

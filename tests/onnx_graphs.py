"""Hand-built ONNX graphs (onnx.helper) in the shapes torch.onnx.export gives for
transformers' blocks, for the ONNX front-end tests (no torch needed).

:func:`bert_like` is post-norm BERT: MatMul + Add linears, Reshape/Transpose head split,
scores Div by sqrt(d_head), an additive mask from an ``attention_mask`` input, Softmax,
MatMul, head merge, output linear, residual Add, LayerNorm (decomposed at opset < 17,
the op at 17+), erf GELU (Div, Erf, Add, Mul, Mul), FFN, residual, LayerNorm.
:func:`gpt2_like` is pre-norm GPT-2: LayerNorm, a fused QKV Gemm on [N, d] (Conv1D) with
Reshape and Split, K transposed straight to [heads, d_head, N], scale Mul on Q and K,
a constant causal mask (Where), tanh GELU (gelu_new, term for term), final LayerNorm.
Both have embeddings before the stack (a Gather) and something after it.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


QONNX = "qonnx.custom_op.general"


class _Builder:
    def __init__(self, seed: int, qonnx_bits: int | None = None):
        self.nodes, self.inits, self.rng, self.k = [], [], np.random.default_rng(seed), 0
        self.qonnx_bits = qonnx_bits

    def name(self, stem: str) -> str:
        self.k += 1
        return f"{stem}_{self.k}"

    def const(self, value, stem="c") -> str:
        name = self.name(stem)
        arr = np.asarray(value)
        arr = arr.astype(np.int64 if arr.dtype.kind in "iu" else np.float32)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, inputs, n_out: int = 1, **attrs):
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs,
                                           name=self.name("n"), **attrs))
        return outs[0] if n_out == 1 else outs

    def weight(self, shape, std):
        return self.const(self.rng.normal(0, std, shape).astype(np.float32), "w")

    def quant(self, t, scale, bits):
        """QONNX Quant (signed, narrow, round half even) of ``t``."""
        name = self.name("quant")
        self.nodes.append(helper.make_node(
            "Quant", [t, self.const(np.float32(scale) if np.ndim(scale) == 0 else scale),
                      self.const(np.float32(0)), self.const(np.float32(bits))], [name],
            name=self.name("n"), domain=QONNX, signed=1, narrow=1, rounding_mode="ROUND"))
        return name

    def linear(self, x, d_in, d_out):
        w = self.weight((d_in, d_out), 1 / math.sqrt(d_in))
        if self.qonnx_bits:         # per output channel: each column reaches the top integer
            top = (1 << (self.qonnx_bits - 1)) - 1
            arr = numpy_helper.to_array(next(t for t in self.inits if t.name == w))
            scale = (np.abs(arr).max(axis=0, keepdims=True) / top).astype(np.float32)
            w = self.quant(w, scale, self.qonnx_bits)
            x = self.quant(x, np.float32(4.0 / 127), 8)
        y = self.op("MatMul", [x, w])
        return self.op("Add", [self.weight((d_out,), 0.1), y])

    def rmsnorm(self, x, d, opset):
        gamma = self.const(1 + self.rng.normal(0, 0.1, d), "gamma")
        if opset >= 23:
            return self.op("RMSNormalization", [x, gamma], axis=-1, epsilon=1e-6)
        ms = self.op("ReduceMean", [self.op("Pow", [x, self.const(2.0)])], axes=[-1]) \
            if opset < 18 else self.op("ReduceMean", [self.op("Pow", [x, self.const(2.0)]),
                                                      self.const([-1])])
        inv = self.op("Reciprocal", [self.op("Sqrt", [self.op("Add", [ms, self.const(1e-6)])])])
        return self.op("Mul", [gamma, self.op("Mul", [x, inv])])

    def layernorm(self, x, d, opset):
        if getattr(self, "rms", False):
            return self.rmsnorm(x, d, opset)
        gamma = self.const(1 + self.rng.normal(0, 0.1, d), "gamma")
        beta = self.const(self.rng.normal(0, 0.1, d), "beta")
        if opset >= 17:
            return self.op("LayerNormalization", [x, gamma, beta], axis=-1, epsilon=1e-5)
        axes = {"axes": [-1]}
        mean = self.op("ReduceMean", [x], **axes)
        centred = self.op("Sub", [x, mean])
        var = self.op("ReduceMean", [self.op("Pow", [centred, self.const(2.0)])], **axes)
        std = self.op("Sqrt", [self.op("Add", [var, self.const(1e-5)])])
        return self.op("Add", [self.op("Mul", [self.op("Div", [centred, std]), gamma]), beta])

    def heads(self, t, n, h, dh, perm):
        return self.op("Transpose", [self.op("Reshape", [t, self.const([1, n, h, dh])])],
                       perm=perm)

    def merge(self, o, n, d):
        t = self.op("Transpose", [o], perm=[0, 2, 1, 3])
        return self.op("Reshape", [t, self.const([1, n, d])])

    def model(self, inputs, outputs, opset):
        graph = helper.make_graph(self.nodes, "stack", inputs, outputs, self.inits)
        opsets = [helper.make_opsetid("", opset)]
        if self.qonnx_bits:
            opsets.append(helper.make_opsetid(QONNX, 1))
        m = helper.make_model(graph, opset_imports=opsets)
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m


def _embeddings(b: _Builder, n: int, d: int, vocab: int = 50) -> str:
    table = b.const(b.rng.normal(0, 1, (vocab, d)).astype(np.float32), "wte")
    return b.op("Gather", [table, "input_ids"], axis=0)


def bert_like(n=8, d=16, heads=2, d_ff=32, layers=1, opset=14, act="erf", seed=0,
              scale=None, between=None, qonnx_bits=None):
    """A post-norm BERT-like stack; ``act``: erf | gelu_op | relu | sin (unsupported);
    ``scale``: the scores' divisor (default sqrt(d_head)); ``between``: an op put on the
    residual stream between the layers (unsupported); ``qonnx_bits``: QONNX ``Quant``
    nodes on every linear's weights (that many bits, per output channel) and inputs (8
    bits, per tensor), as Brevitas exports them."""
    b = _Builder(seed, qonnx_bits)
    opset = 20 if act == "gelu_op" else opset       # the Gelu op is opset 20
    dh = d // heads
    x = _embeddings(b, n, d)
    mask_in = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, n])
    m = b.op("Cast", [b.op("Unsqueeze", ["attention_mask", b.const([1, 2])])], to=1)
    mask = b.op("Mul", [b.op("Sub", [b.const(1.0), m]), b.const(-10000.0)])
    for i in range(layers):
        if i and between:
            x = b.op(between, [x])
        q = b.heads(b.linear(x, d, d), n, heads, dh, [0, 2, 1, 3])
        k = b.heads(b.linear(x, d, d), n, heads, dh, [0, 2, 3, 1])
        v = b.heads(b.linear(x, d, d), n, heads, dh, [0, 2, 1, 3])
        s = b.op("Div", [b.op("MatMul", [q, k]), b.const(scale or math.sqrt(dh))])
        p = b.op("Softmax", [b.op("Add", [s, mask])], axis=-1)
        att = b.linear(b.merge(b.op("MatMul", [p, v]), n, d), d, d)
        h = b.layernorm(b.op("Add", [att, x]), d, opset)
        u = b.linear(h, d, d_ff)
        if act == "erf":
            e = b.op("Erf", [b.op("Div", [u, b.const(math.sqrt(2.0))])])
            a = b.op("Mul", [b.op("Mul", [u, b.op("Add", [e, b.const(1.0)])]), b.const(0.5)])
        elif act == "gelu_op":
            a = b.op("Gelu", [u])
        elif act == "relu":
            a = b.op("Relu", [u])
        else:
            a = b.op("Sin", [u])
        x = b.layernorm(b.op("Add", [b.linear(a, d_ff, d), h]), d, opset)
    pooled = b.op("Tanh", [b.linear(b.op("Gather", [x, b.const(0)], axis=1), d, d)])
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, n])
    outs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, n, d]),
            helper.make_tensor_value_info(pooled, TensorProto.FLOAT, [1, d])]
    return b.model([ids, mask_in], outs, opset)


def gpt2_like(n=8, d=16, heads=2, layers=2, opset=18, seed=1, dynamic=False, rms=False,
              keep=None):
    """A pre-norm GPT-2-like causal stack (``dynamic``: a symbolic sequence axis; ``rms``:
    RMSNorm instead of LayerNorm, decomposed as torch exports it, or the opset-23 op;
    ``keep``: the [n, n] boolean mask of the keys each query sees, default causal)."""
    b = _Builder(seed)
    b.rms = rms
    dh = d // heads
    x = _embeddings(b, n, d)
    keep = np.tril(np.ones((n, n), bool)) if keep is None else np.asarray(keep, bool)
    causal = b.const(keep.reshape(1, 1, n, n).astype(np.int64), "tril")
    cond = b.op("Cast", [causal], to=TensorProto.BOOL)
    for _ in range(layers):
        a = b.op("Reshape", [b.layernorm(x, d, opset), b.const([n, d])])
        qkv = b.op("Gemm", [a, b.weight((d, 3 * d), 1 / math.sqrt(d)),
                            b.weight((3 * d,), 0.1)])
        q, k, v = b.op("Split", [b.op("Reshape", [qkv, b.const([1, n, 3 * d])])], 3,
                       axis=2, **({"num_outputs": 3} if opset >= 18 else {}))
        scale = b.const(dh ** -0.25)
        q = b.op("Mul", [b.heads(q, n, heads, dh, [0, 2, 1, 3]), scale])
        k = b.op("Mul", [b.heads(k, n, heads, dh, [0, 2, 3, 1]), scale])
        v = b.heads(v, n, heads, dh, [0, 2, 1, 3])
        s = b.op("Where", [cond, b.op("MatMul", [q, k]), b.const(np.float32(-3.4e38))])
        o = b.merge(b.op("MatMul", [b.op("Softmax", [s], axis=-1), v]), n, d)
        proj = b.op("Gemm", [b.op("Reshape", [o, b.const([n, d])]),
                             b.weight((d, d), 1 / math.sqrt(d)), b.weight((d,), 0.1)])
        h = b.op("Add", [x, b.op("Reshape", [proj, b.const([1, n, d])])])
        u = b.linear(b.layernorm(h, d, opset), d, 4 * d)
        inner = b.op("Mul", [b.op("Add", [u, b.op("Mul", [b.const(0.044715),
                                                           b.op("Pow", [u, b.const(3.0)])])]),
                             b.const(math.sqrt(2.0 / math.pi))])
        g = b.op("Mul", [b.op("Mul", [b.const(0.5), u]),
                         b.op("Add", [b.const(1.0), b.op("Tanh", [inner])])])
        x = b.op("Add", [h, b.linear(g, 4 * d, d)])
    y = b.layernorm(x, d, opset)
    logits = b.op("MatMul", [y, b.weight((d, 50), 0.1)])
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64,
                                        [1, "seq" if dynamic else n])
    out = helper.make_tensor_value_info(logits, TensorProto.FLOAT,
                                        [1, "seq" if dynamic else n, 50])
    return b.model([ids], [out], opset)

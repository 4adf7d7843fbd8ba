"""Integer golden model and float reference of transformer encoder layers.

A post-norm layer (``norm_position: post``, BERT)::

    h = norm1(x + attn_out(concat_h SDPA(attn_q(x)_h, attn_k(x)_h, attn_v(x)_h)))
    y = norm2(h + ffn_down(act(ffn_up(h))))

A pre-norm layer (``norm_position: pre``, ViT), with ``a = norm1(x)``::

    h = x + attn_out(concat_h SDPA(attn_q(a)_h, attn_k(a)_h, attn_v(a)_h))
    y = h + ffn_down(act(ffn_up(norm2(h))))

and, with ``final_norm: true``, one more norm (``final_norm.*`` weights) after the last
layer (:func:`final_norm_plan`). ``attention.kind: window`` gives every head the
symmetric sliding window (keys |i - j| <= window, ``ir.window`` kind window: its
``window_golden`` and ``window_float``). ``attention.kind: causal`` masks every head (query i
sees keys j <= i): a pre-norm causal stack with a final norm is a GPT-2-style decoder
(without the embeddings and the LM head). A causal head's arithmetic is
``ir.window.window_golden`` (kind causal) and its float reference ``window_float``, the
one-head causal model's own functions.

:func:`layer_plan` fixes the integer datapath once from the spec: every format, every
numerics object and every quantized weight; the plans are what the spec loaders hand
to the stack's IR (``ir.stack.stack_graph``), whose ops carry them. :func:`layer_golden`,
:func:`encoder_golden` and the float references (:func:`layer_float`,
:func:`encoder_accuracy`) interpret that IR: its ops' semantics are the golden kernels on
whole (N, D) arrays -- ``linear_golden``, the attention head's ``AttentionNumerics``
(the online variant's arithmetic, the one the streaming templates implement),
``layernorm_golden`` / ``rmsnorm_golden``, ``gelu_golden`` / ``gate_golden`` /
``relu_golden``,
``residual_golden`` -- and know nothing about the HwGraph wiring (which channel, which
fork output, which FIFO).

Formats: the encoder input, the residual stream, the projections and the FFN values are
``formats.act``; Q, K, V projections write ``formats.q/k/v`` (the attention head's
input formats), the concatenated attention output is ``formats.out`` and is the
out-projection's input format; weights ``formats.weight``, biases at accumulator scale;
norm parameters ``formats.gamma/beta``. One :class:`AttentionNumerics` serves every head
(same formats, same head width ``d_model / heads``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .numerics import AttentionNumerics, quantize
from .numerics_act import GateNumerics
from .numerics_linear import LinearNumerics, linear_golden, quantize_bias, quantize_weights
from .numerics_norm import (GeluNumerics, LayerNormNumerics, RescaleNumerics,
                            layernorm_float, layernorm_golden, rmsnorm_float, rmsnorm_golden)
from .types import FixedFormat

#: the linear ops of one layer, in data order
OPS = ("attn_q", "attn_k", "attn_v", "attn_out", "ffn_up", "ffn_down")
#: the attention kinds an encoder/decoder layer is built with
LAYER_KINDS = ("full", "causal", "window")
#: op -> weight tensor name stem (``layers.{i}.<stem>.weight``)
STEM = {"attn_q": "attn.q", "attn_k": "attn.k", "attn_v": "attn.v", "attn_out": "attn.out",
        "ffn_up": "ffn.up", "ffn_down": "ffn.down"}


@dataclass(frozen=True)
class QLinear:
    """A quantized linear layer: numerics plus stored-integer weights (M, K) and bias (M,)
    (None in a float-only plan: ``layer_plan(quantized=False)``)."""
    numerics: LinearNumerics
    w: np.ndarray
    b: np.ndarray
    w_float: np.ndarray
    b_float: np.ndarray

    def golden(self, x):
        return linear_golden(x, self.w, self.b, self.numerics)

    def rows(self, lo: int, hi: int) -> "QLinear":
        """Output features lo..hi-1 only (a head's slice of Q/K/V)."""
        n = self.numerics
        num = dataclasses.replace(n, m=hi - lo, w_scales=None if n.w_scales is None
                                  else n.w_scales[lo:hi])
        return QLinear(num, self.w[lo:hi], self.b[lo:hi], self.w_float[lo:hi],
                       self.b_float[lo:hi])


@dataclass(frozen=True)
class QNorm:
    numerics: LayerNormNumerics
    gamma: np.ndarray
    beta: np.ndarray
    gamma_float: np.ndarray
    beta_float: np.ndarray
    rms: bool

    def golden(self, x):
        if self.rms:
            return rmsnorm_golden(x, self.gamma, self.numerics)
        return layernorm_golden(x, self.gamma, self.beta, self.numerics)

    def float(self, x):
        if self.rms:
            return rmsnorm_float(x, self.gamma_float, self.numerics.eps)
        return layernorm_float(x, self.gamma_float, self.beta_float, self.numerics.eps)


@dataclass(frozen=True)
class LayerPlan:
    """Everything the integer layer needs (shared by the golden model and the mapper)."""
    n: int
    d_model: int
    heads: int
    d_head: int
    d_ff: int
    act_fmt: FixedFormat
    attn: AttentionNumerics
    lin: dict            # op -> QLinear (full width)
    norm1: QNorm
    norm2: QNorm
    act_fn: str          # model.activation: gelu | gelu_tanh | ... | relu
    act_num: object      # GeluNumerics | GateNumerics | RescaleNumerics
    res1: object         # ResidualNumerics (templates.residual)
    res2: object
    pre: bool = False    # norm_position pre: the norms sit at the sublayer inputs
    causal: bool = False  # attention.kind causal: query i sees keys j <= i
    #: causal: the causal sliding window (keys i - window <= j <= i), None: plain causal;
    #: not causal: the symmetric sliding window (kind window, keys |i - j| <= window),
    #: None: full attention
    window: int | None = None

    @property
    def kind(self) -> str:
        """The attention kind: full, causal or window (``ir.window``)."""
        return "causal" if self.causal else "full" if self.window is None else "window"

    def head_linear(self, op: str, h: int) -> QLinear:
        return self.lin[op].rows(h * self.d_head, (h + 1) * self.d_head)


def layer_plan(spec, weights: dict, layer: int = 0, formats=None,
               quantized: bool = True) -> LayerPlan:
    """The integer datapath of encoder layer ``layer`` of ``spec``: every tensor in its
    format from ``formats`` (``ir.quantize.StackFormats``; None: the spec's, calibrated
    if it asks), the weights quantized as ``quantization.weights`` says (``quantized``
    False: the linears' weight and bias integers are not made, ``w`` and ``b`` are None:
    plans for the float stack only, the calibration run's)."""
    from ..templates.residual import ResidualNumerics   # the residual numerics live there
    from .quantize import stack_formats
    m, f = spec.model, spec.formats
    if m.attention.kind not in LAYER_KINDS or m.attention.variant != "online":
        raise ValueError(f"model.attention: only kind {' or '.join(LAYER_KINDS)}, variant "
                         "online is mapped so far")
    formats = formats if formats is not None else stack_formats(spec, weights)
    n, d, dff, pre = m.seq_len, m.d_model, m.d_ff, m.norm_position == "pre"
    t = {name: formats[f"l{layer}.{name}"] for name in _layer_names(pre)}
    xin = formats.layer_input(layer, pre)
    attn = AttentionNumerics(n, m.d_head, formats["q"], formats["k"], formats["v"],
                             formats["att"], f.score_frac, f.prob_frac)
    problems = attn.check()
    if problems:
        raise ValueError(f"{problems[0][0]}: {problems[0][1]}")
    a_in = t["a"] if pre else xin                   # the Q/K/V linears' input
    f_in = t["f"] if pre else t["h1"]               # the FFN's input
    io = {"attn_q": (a_in, attn.q), "attn_k": (a_in, attn.k), "attn_v": (a_in, attn.v),
          "attn_out": (attn.out, t["proj"]), "ffn_up": (f_in, t["up"]),
          "ffn_down": (t["act"], t["down"])}
    lin = {op: linear_plan(spec, weights, layer, op, *io[op], quantized) for op in OPS}
    prefix = f"layers.{layer}."
    if pre:
        n1 = norm_plan(spec, weights, prefix + "ln1", xin, t["a"])
        n2 = norm_plan(spec, weights, prefix + "ln2", t["r1"], t["f"])
        res1 = ResidualNumerics(xin, t["proj"], t["r1"])
    else:
        n1 = norm_plan(spec, weights, prefix + "ln1", t["r1"], t["h1"])
        n2 = norm_plan(spec, weights, prefix + "ln2", t["r2"], t["y"])
        res1 = ResidualNumerics(xin, t["proj"], t["r1"])
    res2 = ResidualNumerics(t["r1"] if pre else t["h1"], t["down"], t["r2"])
    act_num = activation_numerics(m.activation, t["up"], t["act"])
    return LayerPlan(n, d, m.heads, m.d_head, dff, xin, attn, lin, n1, n2,
                     m.activation, act_num, res1, res2, pre,
                     m.attention.kind == "causal",
                     m.attention.window if m.attention.kind in ("causal", "window") else None)


def _layer_names(pre: bool) -> tuple[str, ...]:
    from .quantize import layer_tensors
    return layer_tensors(pre)


def linear_plan(spec, weights: dict, layer: int, op: str, x: FixedFormat,
                y: FixedFormat, quantized: bool = True) -> QLinear:
    """Linear ``op`` of layer ``layer`` from input format ``x`` to ``y``: weights in
    ``formats.weight`` (``quantization.weights: fixed``) or scaled per tensor / per output
    channel (``ir.quantize.weight_scales``), bias at accumulator scale."""
    from .quantize import weight_scales
    m, f = spec.model, spec.formats
    mm, kk = m.linear_dims(op)
    # float32 file weights stay float32 (exact; promoted to float64 where used)
    wf = np.asarray(weights[f"layers.{layer}.{STEM[op]}.weight"])
    bf = np.asarray(weights[f"layers.{layer}.{STEM[op]}.bias"], dtype=np.float64)
    mode = spec.quantization.weights
    if mode == "fixed":
        num = LinearNumerics(kk, mm, x, f.weight, y, 1.0, f.acc_bits)
    else:
        num = LinearNumerics(kk, mm, x, FixedFormat(f.weight.bits, 0), y, 1.0, f.acc_bits,
                             w_scales=weight_scales(wf, f.weight.bits, mode))
    if not quantized:
        return QLinear(num, None, None, wf, bf)
    return QLinear(num, quantize_weights(wf, num), quantize_bias(bf, num), wf, bf)


def activation_numerics(fn: str, x: FixedFormat, out: FixedFormat):
    """The integer definition of activation ``fn`` from ``x`` to ``out``: the erf GELU's
    ``GeluNumerics``, ReLU's ``RescaleNumerics``, the other gated functions'
    ``GateNumerics`` (``ir.numerics_act``)."""
    if fn == "gelu":
        return GeluNumerics(x, out)
    if fn == "relu":
        return RescaleNumerics(x, out, 1.0)
    return GateNumerics(fn, x, out)


def norm_plan(spec, weights: dict, prefix: str, x: FixedFormat | None = None,
              out: FixedFormat | None = None) -> QNorm:
    """The norm whose weights are ``<prefix>.gamma`` (and ``.beta`` for LayerNorm), from
    format ``x`` to ``out`` (default ``formats.act``)."""
    m, f = spec.model, spec.formats
    d, rms = m.d_model, m.norm == "rmsnorm"
    num = LayerNormNumerics(d, x or f.act, f.gamma, f.beta, out or f.act, m.norm_eps)
    g = np.asarray(weights[f"{prefix}.gamma"], dtype=np.float64)
    b = np.zeros(d) if rms else np.asarray(weights[f"{prefix}.beta"], dtype=np.float64)
    return QNorm(num, quantize(g, f.gamma), quantize(b, f.beta), g, b, rms)


def final_norm_plan(spec, weights: dict, formats=None) -> QNorm | None:
    """The norm after the last layer (``model.final_norm``), or None."""
    if not spec.model.final_norm:
        return None
    from .quantize import stack_formats
    formats = formats if formats is not None else stack_formats(spec, weights)
    m = spec.model
    return norm_plan(spec, weights, "final_norm",
                     formats.layer_input(m.layers, m.norm_position == "pre"),
                     formats["final_ln"])


# ---------------------------------------------------------------- golden and float
# One definition: the stack's IR (``ir.stack``), whose ops' semantics are the kernels
# above (``linear_golden``, ``AttentionNumerics``, the norms, GELU, the residual).

def layer_golden(plan: LayerPlan, x_ints, trace: dict | None = None) -> np.ndarray:
    """(N, d_model) stored ints of ``formats.act`` -> the layer output, bit-exact: the
    layer's lowered IR interpreted (``ir.stack.stack_golden``). ``trace`` (a dict), when
    given, receives every intermediate by name (``q{h}``, ``k{h}``, ``v{h}``, ``o{h}``,
    ``att``, ``proj``, ``r1``, ``h1``, ``up``, ``act``, ``down``, ``r2``, ``y``)."""
    from .stack import stack_golden
    traces = [] if trace is not None else None
    y = stack_golden([plan], x_ints, traces)
    if trace is not None:
        trace.update(traces[0])
    return y


def layer_float(plan: LayerPlan, x) -> np.ndarray:
    """The float layer on real inputs x (N, d_model) with the float weights: the layer's
    IR as written, interpreted in floats (float softmax attention, float norm, exact
    GELU)."""
    from .stack import stack_float
    return stack_float([plan], x)


def accuracy(plan: LayerPlan, x_ints, y_ints) -> dict:
    """Integer layer output vs the float layer on the same (dequantized) input."""
    xr = np.asarray(x_ints, dtype=np.float64) * 2.0 ** -plan.act_fmt.frac
    ref = layer_float(plan, xr)
    got = np.asarray(y_ints, dtype=np.float64) * 2.0 ** -plan.act_fmt.frac
    cos = float((ref * got).sum() / (np.linalg.norm(ref) * np.linalg.norm(got)))
    return {"max_abs_error": float(np.abs(ref - got).max()), "cosine": cos,
            "out_lsb": 2.0 ** -plan.act_fmt.frac}


def random_input(spec, fmt: FixedFormat | None = None) -> np.ndarray:
    """The encoder input X (N, d_model) from ``spec.inputs``, as stored ints of ``fmt``
    (the stack's input format; default ``formats.act``)."""
    fmt = fmt or spec.formats.act
    if spec.inputs.file:   # user vectors instead (inputs.file / --inputs)
        from .user_inputs import load_user_inputs
        return load_user_inputs(spec, fmt)["x"]
    rng = np.random.default_rng(spec.inputs.seed)
    r = spec.inputs.range
    x = rng.uniform(-r, r, (spec.model.seq_len, spec.model.d_model))
    return quantize(x, fmt)


# ---------------------------------------------------------------- whole encoder

def encoder_plans(spec, weights: dict, formats=None, quantized: bool = True) -> list:
    """One :class:`LayerPlan` per layer of ``spec`` (``formats``, ``quantized``: as
    ``layer_plan``)."""
    from .quantize import stack_formats
    formats = formats if formats is not None else stack_formats(spec, weights)
    return [layer_plan(spec, weights, i, formats, quantized)
            for i in range(spec.model.layers)]


def encoder_golden(plans: list, x_ints, traces: list | None = None,
                   final: QNorm | None = None) -> np.ndarray:
    """The stacked layers (then the ``final`` norm, if any), bit-exact (the stack's
    lowered IR interpreted); ``traces`` (a list), when given, receives one intermediate
    dict per layer (see :func:`layer_golden`)."""
    from .stack import stack_golden
    return stack_golden(plans, x_ints, traces, final)


def encoder_accuracy(plans: list, x_ints, final: QNorm | None = None) -> list:
    """Per layer: the integer stack's output after that layer against the float stack's
    (float weights, float softmax and norm, exact GELU) on the same dequantized input;
    the ``final`` norm, if any, is applied to the last layer's figures. Errors
    accumulate: layer i's figures include every earlier layer's (``ir.stack``)."""
    from .stack import stack_accuracy
    return stack_accuracy(plans, x_ints, final)

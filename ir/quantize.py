"""Quantization of a stack from the checkpoint: weight scales from the weights, activation
formats from a calibration run, any format fixed by hand (``quantization`` and
``calibration`` in the spec, ``ir.spec``).

Weights (``quantization.weights``):

* ``fixed``: every linear's weights in ``formats.weight`` (a power-of-two step);
* ``per_tensor``: one real step per weight tensor, ``s = max |W| / (2**(b-1) - 1)``
  with b = ``formats.weight.bits`` (symmetric: the largest weight is the largest
  integer, nothing is clipped);
* ``per_channel``: one step per output channel (row j of W): ``s_j = max_k |W[j, k]| /
  (2**(b-1) - 1)``.

A scaled linear's integers stand for ``W[j, k] ~= W_int[j, k] * s_j``; its output
channel j is requantized by the integer multiplier ``mult_j`` and the layer's shift
(``ir.numerics_linear``: ``mult_j * 2**-shift ~= s_j * 2**(y.frac - x.frac)``), and its
bias is held in the accumulator's units of that channel.

Activations (``quantization.activations``) stay fixed point: every tensor has its own
format (bits from ``formats``, fractional bits chosen here):

* ``fixed``: ``formats.act`` for every tensor between ops, ``formats.q/k/v/out`` for the
  attention's;
* ``calibrated``: the float stack runs on the calibration inputs (``calibration.file``, a
  .npy of hidden states, or random inputs drawn like ``inputs`` with ``calibration.seed``)
  and each tensor gets the most fractional bits with which ``headroom * max |x|`` still
  fits its bits (0 .. bits - 1). Q, K, V and the attention output are one format each for
  all layers (one attention numerics serves every head);
* ``quantization.formats`` (tensor name -> ``{bits, frac}``) fixes any tensor by hand,
  whatever the two above say.

Tensor names (:func:`tensor_names`): ``x`` (the stack's input), ``q``, ``k``, ``v``,
``att`` (the attention's Q, K, V and concatenated output), and per layer i
``l{i}.<t>``, the IR's node names (``ir.stack``): ``a`` (pre-norm: ln1's output),
``proj`` (the out-projection), ``r1`` (the attention residual), ``h1`` (post-norm: ln1's
output), ``f`` (pre-norm: ln2's output), ``up``, ``act``, ``down`` (the FFN), ``r2`` (the
FFN residual), ``y`` (post-norm: ln2's output); ``final_ln`` (the final norm).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .types import FixedFormat

WEIGHT_MODES = ("fixed", "per_tensor", "per_channel")
ACTIVATION_MODES = ("fixed", "calibrated")
#: the attention's tensors, one format each for the whole stack (-> formats.q/k/v/out)
ATTENTION_TENSORS = {"q": "q", "k": "k", "v": "v", "att": "out"}


def layer_tensors(pre: bool) -> tuple[str, ...]:
    """The activation tensors of one layer (their ``ir.stack`` node names)."""
    if pre:
        return ("a", "proj", "r1", "f", "up", "act", "down", "r2")
    return ("proj", "r1", "h1", "up", "act", "down", "r2", "y")


def tensor_names(layers: int, pre: bool, final_norm: bool) -> list[str]:
    """Every tensor a stack's formats name (see the module docstring)."""
    names = ["x", *ATTENTION_TENSORS]
    for i in range(layers):
        names += [f"l{i}.{t}" for t in layer_tensors(pre)]
    return names + (["final_ln"] if final_norm else [])


@dataclass(frozen=True)
class StackFormats:
    """The format of every tensor of a stack, by name (:func:`tensor_names`), and how
    each was chosen (``fixed``, ``calibrated`` or ``by hand``)."""
    formats: tuple[tuple[str, FixedFormat], ...]
    sources: tuple[tuple[str, str], ...] = ()

    def __getitem__(self, name: str) -> FixedFormat:
        return dict(self.formats)[name]

    def source(self, name: str) -> str:
        return dict(self.sources).get(name, "fixed")

    def layer_input(self, i: int, pre: bool) -> FixedFormat:
        """The format of layer i's input: x, or the previous layer's output."""
        return self["x"] if i == 0 else self[f"l{i - 1}.{'r2' if pre else 'y'}"]


def fixed_formats(spec) -> StackFormats:
    """``formats.act`` for every tensor between ops, ``formats.q/k/v/out`` for the
    attention's."""
    m, f = spec.model, spec.formats
    out = []
    for name in tensor_names(m.layers, m.norm_position == "pre", m.final_norm):
        attn = ATTENTION_TENSORS.get(name)
        out.append((name, getattr(f, attn) if attn else f.act))
    return StackFormats(tuple(out), tuple((n, "fixed") for n, _ in out))


def frac_for(max_abs: float, bits: int, headroom: float = 1.0) -> int:
    """The most fractional bits (0 .. bits - 1) with which ``headroom * max_abs`` rounds
    to an integer of a signed ``bits``-wide format."""
    top = (1 << (bits - 1)) - 1
    need = max_abs * headroom
    if not need > 0:
        return bits - 1
    frac = math.floor(math.log2((top + 0.5) / need))
    while frac > 0 and need * 2.0 ** frac >= top + 0.5:     # log2 rounding at the edge
        frac -= 1
    return min(bits - 1, max(0, frac))


def weight_scales(w, bits: int, mode: str) -> tuple[float, ...]:
    """The real step of each output channel's weight integers (``per_tensor``: one for
    all rows): max |W| over the row (tensor) / (2**(bits-1) - 1); 1.0 for an all-zero
    row."""
    w = np.asarray(w)
    if w.dtype.kind != "f":
        w = w.astype(np.float64)
    w = np.abs(w)           # |.| and max are exact in the array's own float type
    top = (1 << (bits - 1)) - 1
    peak = (w.max(axis=1) if mode == "per_channel"
            else np.full(len(w), w.max(initial=0.0))).astype(np.float64)
    return tuple(float(p / top) if p > 0 else 1.0 for p in peak)


def _by_hand(spec, formats: dict, sources: dict) -> None:
    for name, fmt in spec.quantization.formats:
        formats[name] = fmt
        sources[name] = "by hand"


def stack_formats(spec, weights: dict) -> StackFormats:
    """The formats ``spec`` asks for: fixed, or calibrated on ``weights``' float stack,
    then the tensors fixed by hand."""
    base = fixed_formats(spec)
    formats, sources = dict(base.formats), dict(base.sources)
    if spec.quantization.activations == "calibrated":
        peaks = calibration_peaks(spec, weights)
        headroom = spec.calibration.headroom
        for name, fmt in formats.items():
            formats[name] = FixedFormat(fmt.bits, frac_for(peaks[name], fmt.bits, headroom))
            sources[name] = "calibrated"
    _by_hand(spec, formats, sources)
    names = tensor_names(spec.model.layers, spec.model.norm_position == "pre",
                         spec.model.final_norm)
    return StackFormats(tuple((n, formats[n]) for n in names),
                        tuple((n, sources[n]) for n in names))


# ---------------------------------------------------------------- calibration

def calibration_inputs(spec) -> np.ndarray:
    """The calibration run's inputs, real values, shape (samples, N, d_model): the
    ``calibration.file`` (.npy, (N, d_model) or (samples, N, d_model)), or the design's
    ``inputs.file``, or random inputs drawn like ``inputs`` with ``calibration.seed``
    (default ``inputs.seed``)."""
    from .user_inputs import read_hidden_states
    m, cal = spec.model, spec.calibration
    if cal.file:
        return read_hidden_states(cal.file, m.seq_len, m.d_model, "calibration.file")
    if spec.inputs.file:
        return read_hidden_states(spec.inputs.file, m.seq_len, m.d_model, "inputs.file")
    seed = spec.inputs.seed if cal.seed is None else cal.seed
    r = spec.inputs.range
    return np.random.default_rng(seed).uniform(-r, r, (1, m.seq_len, m.d_model))


def calibration_peaks(spec, weights: dict) -> dict[str, float]:
    """max |value| of every tensor (:func:`tensor_names`) over the calibration inputs,
    the float stack (the IR as written, interpreted in floats) on each sample."""
    from .encoder_golden import encoder_plans, final_norm_plan
    from .graph import interpret
    from .stack import stack_graph
    # float plans: the run reads the float weights only, not their integers
    graph = stack_graph(encoder_plans(spec, weights, fixed_formats(spec), quantized=False),
                        final_norm_plan(spec, weights, fixed_formats(spec)), spec.name)
    peaks: dict[str, float] = {}

    def observe(node: str, value: np.ndarray) -> None:
        name = node
        if node.endswith((".attn_q", ".attn_k", ".attn_v")):
            name = node[-1]
        elif node.endswith(".att"):
            name = "att"
        peaks[name] = max(peaks.get(name, 0.0), float(np.abs(value).max(initial=0.0)))

    for sample in calibration_inputs(spec):
        interpret(graph, {"x": sample}, "float", keep=(), observe=observe)
    return peaks

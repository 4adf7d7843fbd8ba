"""Model specs: the YAML file that says what hardware to build and how to test it.

A spec is a YAML mapping with the sections below. ``model.type`` chooses what to build:
one attention head (``attention_head``, the default) or a whole transformer encoder
(``encoder``). The value shown is the default; ``<required>`` marks the fields without
one.

One attention head
------------------

.. code-block:: yaml

    name: attnflow_top        # identifier [A-Za-z_][A-Za-z0-9_]*, used as the Verilog name prefix
    model:
      type: attention_head    # attention_head (one attention head) | encoder (below)
      seq_len: <required>     # N, number of tokens: integer >= 1
      head_dim: <required>    # d, width of each Q/K/V row: integer >= 1
      attention:
        kind: full            # which keys each query sees: full | window (|i - j| <= window) | causal (j <= i)
        window: <required for kind window; optional for causal (i - window <= j <= i); not allowed for full>   # integer >= 1
        split: null           # kind full, online: P >= 2 engines over K/V slices, combined (<= N)
        decode: null          # kind causal: S generated tokens after an N - S prefill (KV cache)
        lanes: null           # online full/window/causal: scores per cycle, 1..N (or 1..slots); the last group is padded; null: 1, or chosen for hardware.target_cycles / multiplier_budget (full heads, encoder/decoder stacks)
        variant: online       # online (running max and sum, one pass) | naive (full softmax first)
    formats:                  # signed fixed point: `bits` in 2..32 total, `frac` in 0..bits-1 fractional
      q:   {bits: 8, frac: 4}     # query inputs
      k:   {bits: 8, frac: 4}     # key inputs
      v:   {bits: 8, frac: 4}     # value inputs
      out: {bits: 16, frac: 8}    # attention outputs
      score_frac: 8           # fractional bits of the scaled score x = q.k / sqrt(d): 1..12
      prob_frac: 15           # fractional bits of exp() results and probabilities: 4..24
    inputs:                   # the random test inputs
      seed: 1                 # RNG seed for Q, K, V: integer >= 0
      range: 2.0              # values are uniform in [-range, range]: number > 0
      file: null              # or user vectors: .npz with q, k, v (N x d each), relative to the spec (ir/user_inputs.py)
    schedule:                 # stall pattern shared by the simulator and the RTL testbench
      seed: 0                 # RNG seed of the pattern: integer >= 0
      input_gap_prob: 0.0     # chance an input stream idles before a token: number in [0, 1)
      input_gap_max: 3        # idle length is uniform in 1..input_gap_max: integer >= 1
      output_ready_prob: 1.0  # chance the output is ready on a cycle: number in (0, 1]
    hardware:
      clock_mhz: 200.0        # target clock: number > 0
      fifo_depths: {}         # channel name -> FIFO depth (integer >= 1), overriding the mapper
      sequences: 1            # sequences the design processes back to back, then stops: integer in 1..4096
                              # (sequence s > 0 draws its inputs with seed inputs.seed + s)
      stream: false           # true: the RTL never stops, it runs sequences as long as inputs come
                              # (the simulator and testbench run hardware.sequences of them)
      target_cycles: null     # kind full, online, no lanes given: the fewest lanes meeting this
      multiplier_budget: null # ... or the fastest lanes within this many multipliers

Cross-field rules: ``formats.q``, ``formats.k``, ``formats.v`` and ``formats.out`` must
each hold every value in ``[-inputs.range, inputs.range]`` (the attention output is a
convex combination of V rows, so it stays in that range too).

A transformer encoder
---------------------

``model.type: encoder`` builds ``layers`` identical encoder layers (own weights each) on
a sequence of ``seq_len`` tokens of width ``d_model``. The input is the sequence *after*
the embeddings (token, position and segment embeddings, patch projection and the like are
not part of the encoder); the output is the last layer's output. ``name``, ``inputs``,
``schedule`` and ``hardware.clock_mhz``/``fifo_depths`` mean what they mean above
(``inputs`` draws the encoder input X, ``seq_len x d_model``); the sections differ in:

.. code-block:: yaml

    model:
      type: encoder
      layers: <required>      # L, encoder layers: integer >= 1
      d_model: <required>     # model width: integer >= 1
      heads: <required>       # attention heads: integer >= 1 dividing d_model (head width d_model / heads)
      d_ff: <required>        # width of the feed-forward hidden layer: integer >= 1
      seq_len: <required>     # N, tokens: integer >= 1
      attention:
        kind: full            # full | window | causal (see below); layers are built with all three
        variant: online       # online (layers are built with the online variant only)
        window: <required for kind window; optional for causal (i - window <= j <= i); not allowed for full>   # integer >= 1
        lanes: null           # scores per cycle in every head, 1..slots per row (N, 2w'+1 or w'+1); null: 1, or chosen with the period for a goal
      norm: layernorm         # layernorm | rmsnorm (RMSNorm: no mean subtraction, no beta)
      norm_position: post     # post (BERT: x = norm(x + sublayer(x))) | pre (ViT: x = x + sublayer(norm(x)))
      final_norm: false       # true: one more norm after the last layer (pre-norm models such as ViT)
      norm_eps: 1.0e-05       # epsilon under the norm's square root: number > 0
      activation: gelu        # the feed-forward activation: gelu (exact, erf-based GELU) |
                              # gelu_tanh (tanh form: HF gelu_new, gelu_pytorch_tanh) | gelu_fast |
                              # quick_gelu | silu | relu (ir/numerics_act.py)
      weights:                # where the weights come from: random ...
        source: random        # random | file
        seed: 0               # RNG seed: integer >= 0
        std: null             # standard deviation of linear weights and biases: number > 0;
                              # null: 1/sqrt(fan_in) of each linear layer
      # ... or a file:  weights: {source: file, path: weights.npz}   (.npz or .safetensors;
      #                 a relative path is relative to the spec file's folder; naming:
      #                 attnflow (default) | bert | distilbert | vit | gpt2: the tensor
      #                 names of a Hugging Face checkpoint of that family, ir/weights.py;
      #                 onnx with an .onnx model: its recognised layer stack,
      #                 ir/onnx_frontend.py)
    formats:                  # q, k, v, out, score_frac, prob_frac as for one head, plus:
      act:    {bits: 16, frac: 8}   # activations between ops (encoder input, residual stream,
                                    # norm outputs, projections, FFN hidden values, layer outputs)
      weight: {bits: 8, frac: 6}    # linear-layer weights (biases are kept at accumulator scale)
      gamma:  {bits: 16, frac: 12}  # norm scale gamma
      beta:   {bits: 16, frac: 12}  # norm shift beta (LayerNorm only)
      acc_bits: null                # linear accumulators: integer in 2..62; null: wide enough for every sum
    hardware:                 # clock_mhz and fifo_depths as for one head, plus:
      parallelism: {}         # PE x SIMD folding hints of the linear layers (below)
      target_cycles: null     # integer >= 1: automatic folding aims at this many cycles for the encoder
      multiplier_budget: null # integer >= 1: automatic folding uses at most this many linear +
                              # attention multipliers (mappers.folding.multipliers)
      target_interval: null   # integer >= 1: ... and at most this many cycles between sequences
                              # back to back (hardware.sequences; the slowest template's firings)

Encoder layer (``norm_position: post``, BERT, RoBERTa, DistilBERT)::

    h = norm1(x + attn_out(MHA(attn_q(x), attn_k(x), attn_v(x))))
    y = norm2(h + ffn_down(activation(ffn_up(h))))

and with ``norm_position: pre`` (ViT, DeiT)::

    h = x + attn_out(MHA(attn_q(norm1(x)), attn_k(norm1(x)), attn_v(norm1(x))))
    y = h + ffn_down(activation(ffn_up(norm2(h))))

where every ``attn_*``/``ffn_*`` is a linear layer ``W x + b`` and MHA splits Q, K and V
into ``heads`` slices of ``d_model / heads`` columns, runs scaled dot-product attention
(scale ``1/sqrt(d_model / heads)``) on each and concatenates the results. In the encoder,
``formats.q``/``k``/``v`` are the formats of the Q, K, V projections and ``formats.out``
that of the concatenated attention output (before ``attn_out``); ``formats.act`` must hold
``[-inputs.range, inputs.range]``.

Attention kinds (query i, key j, both 0-based token positions): ``full``: every j;
``causal``: j <= i; ``window``: |i - j| <= window (a band of 2 * window + 1 keys, fewer at
the ends).

Decoders (GPT-2-style, decoder-only): ``attention.kind: causal`` with ``norm_position:
pre`` and ``final_norm: true`` is GPT-2's block stack (``ln_1`` -> causal attention ->
residual, ``ln_2`` -> MLP -> residual, ``ln_f`` after the last block), without the
embeddings and the LM head; a GPT-2 ``config.json`` reads to exactly that. There is no
separate ``model.type: decoder``: the stack is the encoder's with every head masked.

Weights (``model.weights``). ``source: file`` reads a numpy ``.npz`` archive or a
``.safetensors`` file (loaded by :func:`attnflow.ir.weights.load_weights`; the path is
resolved when the spec is read and must exist; extra tensors in the file are ignored).
Tensors are real values (float16/32/64, or BF16 in safetensors); linear weights are
``[out_features, in_features]`` as in PyTorch's ``nn.Linear``. For every layer i in
0..layers-1:

=================================  ====================  =================================
tensor                             shape                 what
=================================  ====================  =================================
``layers.{i}.attn.q.weight``       [d_model, d_model]    query projection (``attn_q``)
``layers.{i}.attn.q.bias``         [d_model]
``layers.{i}.attn.k.weight/bias``  as q                  key projection (``attn_k``)
``layers.{i}.attn.v.weight/bias``  as q                  value projection (``attn_v``)
``layers.{i}.attn.out.weight``     [d_model, d_model]    attention output projection
``layers.{i}.attn.out.bias``       [d_model]
``layers.{i}.ln1.gamma``           [d_model]             norm1 (after attention when post)
``layers.{i}.ln1.beta``            [d_model]             LayerNorm only
``layers.{i}.ffn.up.weight``       [d_ff, d_model]       feed-forward up projection
``layers.{i}.ffn.up.bias``         [d_ff]
``layers.{i}.ffn.down.weight``     [d_model, d_ff]       feed-forward down projection
``layers.{i}.ffn.down.bias``       [d_model]
``layers.{i}.ln2.gamma``           [d_model]             norm2
``layers.{i}.ln2.beta``            [d_model]             LayerNorm only
``final_norm.gamma`` / ``.beta``   [d_model]             only with ``final_norm: true``
=================================  ====================  =================================

Heads are column slices of the Q/K/V outputs: head h uses outputs
``h * d_model/heads .. (h + 1) * d_model/heads - 1`` (rows of the q/k/v weights) and the
same columns of ``attn.out.weight``. ``source: random`` draws every tensor from its own
generator, seeded with (seed, layer, tensor index), so layer 0's weights do not change
with ``layers``: linear weights and biases from N(0, std**2) (std: ``weights.std`` or
1/sqrt(in_features) of that layer), gamma from 1 + N(0, 0.1**2), beta from N(0, 0.1**2).

Parallelism (``hardware.parallelism``): a mapping from a linear layer to ``{pe, simd}``
(integers >= 1): PE output features and SIMD input features per cycle, so the layer
takes (out / PE) * (in / SIMD) cycles per token. Keys: ``default`` (every linear layer),
an op ``attn_q``, ``attn_k``, ``attn_v``, ``attn_out``, ``ffn_up``, ``ffn_down`` (that op
in every layer; its weight is ``layers.{i}.<op with _ as .>.weight``), or
``layers_<i>_<op>`` (that op in layer i only). The most specific key wins, and a missing
``pe`` or ``simd`` is taken from the next more general key (``layers_<i>_<op>``, then
``<op>``, then ``default``, then 1). PE must divide the op's output features and SIMD its
input features (d_model or d_ff); Q, K and V are built as one linear per head, so their
PE must divide d_model / heads. Ops no key covers are folded automatically
(``mappers.folding``): the cheapest folding (fewest multipliers) whose firings per token
fit one period, with the period chosen to meet ``target_cycles`` (cycles per sequence) or
``multiplier_budget`` (the linear PE x SIMD arrays plus the attention's
lanes * (3 d_head + 1) + d_head per head; norms, GELU lanes and constant rescales are not
counted), or, with neither, equal to the attention's own period (ceil(W / lanes) cycles
per token, W the score slots of a row: N, 2w'+1 for a window, w'+1 for a causal window;
``model.attention.lanes`` scores per cycle, default 1), which balances the pipeline. Without
``model.attention.lanes``, a goal also chooses the attention lanes with the period.

Encoder-only fields (``formats.act`` and the rest, ``hardware.parallelism``) are
rejected in an ``attention_head`` spec, and ``head_dim`` in an encoder spec. In an
``attention_head`` spec, ``target_cycles`` and ``multiplier_budget`` choose the lanes of a
full online head (``mappers.sdpa.choose_lanes``).

General rules
-------------

Integers are accepted where numbers are expected; booleans are never accepted as
integers. Exponent-only floats such as ``1e-12`` are read as numbers (YAML 1.2 style; plain
YAML 1.1 would read them as strings). ``--set key.sub=value`` overrides (see
:func:`parse_override`) are applied to the raw YAML data before validation, so they are
checked like the file itself. :func:`load_spec` also reads a Hugging Face ``config.json``
(a ``.json`` file without a top-level ``model`` mapping, or a folder holding
``config.json``) through
:func:`attnflow.ir.hf_config.spec_from_hf_config`; ``--set model.seq_len=N`` then gives
the sequence length.

Every problem raises :class:`SpecError` with a one-line message
``<source>: <dotted.field>: <what is wrong and what is allowed>``.

Python objects: :func:`load_spec` returns a frozen, hashable :class:`Spec`.
``Spec.model`` is a :class:`ModelSpec` (attention_head) or an :class:`EncoderSpec`
(encoder); dispatch on ``spec.model.type`` (or ``spec.is_encoder``). Both have ``type``,
``seq_len`` and ``attention``; only an encoder has ``layers``, ``d_model``, ``heads``,
``d_ff``, ``d_head`` (= d_model / heads), ``linear_dims(op)`` and the rest, so
attention-head code given an encoder fails loudly instead of building the wrong thing.
``FormatsSpec`` and ``HardwareSpec`` are shared; their encoder-only fields keep their
defaults in an attention-head spec. ``HardwareSpec.folding(op, layer)`` answers the
parallelism lookup. :func:`spec_to_dict` writes the fully resolved spec (the weights path
absolute), which :func:`spec_from_dict` reads back to an equal spec.
"""
from __future__ import annotations

import copy
import difflib
import math
import os
import re
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Union

import yaml

from .numerics_act import ACTIVATIONS  # gelu, gelu_tanh, gelu_fast, quick_gelu, silu, relu
from .readers import json_load, yaml_load
from .types import FixedFormat
from .verilog_names import name_problem

__all__ = [
    "AttentionSpec", "ModelSpec", "EncoderSpec", "WeightsSpec", "FormatsSpec", "InputsSpec",
    "ScheduleSpec", "QuantizationSpec", "CalibrationSpec", "Folding", "HardwareSpec", "Spec", "SpecError", "LINEAR_OPS",
    "load_spec", "parse_override", "spec_from_dict", "spec_to_dict",
]

DEFAULT_NAME = "attnflow_top"
MODEL_TYPES = ("attention_head", "encoder")
ATTENTION_KINDS = ("full", "window", "causal")    # one attention head
ENCODER_ATTENTION_KINDS = ("full", "window", "causal")
ATTENTION_VARIANTS = ("naive", "online")
NORMS = ("layernorm", "rmsnorm")
NORM_POSITIONS = ("post", "pre")
WEIGHT_SOURCES = ("random", "file")
WEIGHT_SUFFIXES = (".npz", ".safetensors", ".onnx")
#: the tensor names a weights file uses: attnflow's, or a Hugging Face family's checkpoint
#: names (``ir.weights``), or ``onnx``: the layer stack recognised in an ONNX model
#: (``ir.onnx_frontend``)
WEIGHT_NAMINGS = ("attnflow", "bert", "distilbert", "vit", "gpt2", "onnx")
MAX_ACC_BITS = 62                                 # int64 golden model and simulator
#: the linear layers of an encoder layer: op name -> (output features, input features),
#: named by the model dimension they equal
LINEAR_OPS: dict[str, tuple[str, str]] = {
    "attn_q": ("d_model", "d_model"),
    "attn_k": ("d_model", "d_model"),
    "attn_v": ("d_model", "d_model"),
    "attn_out": ("d_model", "d_model"),
    "ffn_up": ("d_ff", "d_model"),
    "ffn_down": ("d_model", "d_ff"),
}
#: linear ops mapped as one instance per head
HEAD_OPS = ("attn_q", "attn_k", "attn_v")
_NAME_RE = r"[A-Za-z_][A-Za-z0-9_]*"
_HEAD_FIELDS = ("type", "seq_len", "head_dim", "attention")
_ENCODER_FIELDS = ("type", "layers", "d_model", "heads", "d_ff", "seq_len", "attention",
                   "norm", "norm_position", "final_norm", "norm_eps", "activation", "weights")
_ENCODER_REQUIRED = ("layers", "d_model", "heads", "d_ff", "seq_len")
_FORMAT_FIELDS = ("q", "k", "v", "out", "score_frac", "prob_frac")
_ENCODER_FORMAT_FIELDS = ("act", "weight", "gamma", "beta", "acc_bits")
_HARDWARE_FIELDS = ("clock_mhz", "fifo_depths", "sequences", "stream")
#: most sequences a design runs back to back (the simulator and testbench hold them all)
MAX_SEQUENCES = 4096
#: deepest FIFO a spec may ask for (its address counter is a hardware register)
MAX_FIFO_DEPTH = 2 ** 31
#: longest idle gap a stall schedule may draw (the testbench counts gaps in 32-bit
#: cycles; the cycle budget refuses what would run long, this refuses what can't be drawn)
MAX_GAP = 2 ** 31
_ENCODER_HARDWARE_FIELDS = ("parallelism", "target_interval")
#: the design goals: encoders fold their linears to them, one head picks its lanes
_GOAL_FIELDS = ("target_cycles", "multiplier_budget")
_LAYER_OP_RE = re.compile(r"layers_(\d+)_(" + "|".join(LINEAR_OPS) + r")")


class SpecError(ValueError):
    """A problem in a spec: ``str(e)`` is ``"<source>: <field>: <message>"`` on one line."""

    def __init__(self, source: str, field: str, message: str):
        super().__init__(source, field, message)
        self.source, self.field, self.message = source, field, message

    def __str__(self) -> str:
        return re.sub(r"\s*\n\s*", " ", f"{self.source}: {self.field}: {self.message}")


# ----------------------------------------------------------------------------- dataclasses

@dataclass(frozen=True)
class AttentionSpec:
    kind: str = "full"
    variant: str = "online"
    window: int | None = None  # kind "window" (always), "causal" (optional: sliding window)
    split: int | None = None   # one head, kind full: P engines over K/V slices (ir.split)
    decode: int | None = None  # one head, kind causal: generated tokens S (ir.decode)
    #: one head, online, kind full/window/causal (no split/decode): scores per cycle
    #: (1..seq_len, or 1..slots per row); None: not given (1, or
    #: chosen by the mapper for hardware.target_cycles / multiplier_budget)
    lanes: int | None = None


@dataclass(frozen=True)
class ModelSpec:
    """``model.type: attention_head``: one attention head."""
    type: str
    seq_len: int
    head_dim: int
    attention: AttentionSpec = AttentionSpec()


@dataclass(frozen=True)
class WeightsSpec:
    """Where an encoder's weights come from. ``path`` is absolute (resolved at load)."""
    source: str = "random"
    seed: int = 0              # source random
    std: float | None = None   # source random; None: 1/sqrt(fan_in) per linear layer
    path: str | None = None    # source file
    naming: str = "attnflow"   # source file: the file's tensor names (WEIGHT_NAMINGS)


@dataclass(frozen=True)
class EncoderSpec:
    """``model.type: encoder``: ``layers`` transformer encoder layers."""
    layers: int
    d_model: int
    heads: int
    d_ff: int
    seq_len: int
    attention: AttentionSpec = AttentionSpec()
    norm: str = "layernorm"
    norm_position: str = "post"
    final_norm: bool = False
    norm_eps: float = 1e-5
    activation: str = "gelu"
    weights: WeightsSpec = WeightsSpec()
    type: str = field(default="encoder", init=False)

    @property
    def d_head(self) -> int:
        """Width of one head's Q/K/V rows: d_model / heads."""
        return self.d_model // self.heads

    def linear_dims(self, op: str) -> tuple[int, int]:
        """(output features M, input features K) of linear op ``op`` (a LINEAR_OPS key)."""
        m, k = LINEAR_OPS[op]
        return getattr(self, m), getattr(self, k)

    def fold_dims(self, op: str) -> tuple[int, int]:
        """(M, K) of one hardware instance of ``op``: Q/K/V are mapped as one linear per
        head (M = d_head), the others whole."""
        m, k = self.linear_dims(op)
        return (self.d_head if op in HEAD_OPS else m), k


#: what ``Spec.model`` holds; dispatch on ``spec.model.type`` (or isinstance)
Model = Union[ModelSpec, EncoderSpec]


@dataclass(frozen=True)
class FormatsSpec:
    q: FixedFormat = FixedFormat(8, 4)
    k: FixedFormat = FixedFormat(8, 4)
    v: FixedFormat = FixedFormat(8, 4)
    out: FixedFormat = FixedFormat(16, 8)
    score_frac: int = 8
    prob_frac: int = 15
    # encoder only (an attention_head spec keeps these defaults and never reads them)
    act: FixedFormat = FixedFormat(16, 8)
    weight: FixedFormat = FixedFormat(8, 6)
    gamma: FixedFormat = FixedFormat(16, 12)
    beta: FixedFormat = FixedFormat(16, 12)
    acc_bits: int | None = None


@dataclass(frozen=True)
class InputsSpec:
    seed: int = 1
    range: float = 2.0
    file: str | None = None    # .npy/.npz of user vectors (ir.user_inputs), absolute path


@dataclass(frozen=True)
class ScheduleSpec:
    seed: int = 0
    input_gap_prob: float = 0.0
    input_gap_max: int = 3
    output_ready_prob: float = 1.0

    @property
    def has_stalls(self) -> bool:
        return self.input_gap_prob > 0 or self.output_ready_prob < 1


@dataclass(frozen=True)
class Folding:
    """PE output features x SIMD input features per cycle of one linear layer."""
    pe: int
    simd: int


@dataclass(frozen=True)
class HardwareSpec:
    clock_mhz: float = 200.0
    fifo_depths: tuple[tuple[str, int], ...] = ()  # sorted by channel name
    # encoder only: hardware.parallelism keys with pe and simd both resolved, sorted by key
    parallelism: tuple[tuple[str, Folding], ...] = ()
    target_cycles: int | None = None
    multiplier_budget: int | None = None
    #: encoder only: automatic folding aims at this many cycles between sequences back to
    #: back (the slowest template's firings per sequence, mappers.sequences)
    target_interval: int | None = None
    sequences: int = 1      # sequences run back to back (Contract.sequences)
    stream: bool = False    # the RTL never stops (Contract.stream); sequences: simulated

    def fifo_depth(self, name: str) -> int | None:
        """The depth the spec forces for channel ``name``, or None to let the mapper choose."""
        return dict(self.fifo_depths).get(name)

    def folding(self, op: str, layer: int) -> Folding | None:
        """The folding the spec fixes for linear ``op`` (a LINEAR_OPS key) of layer
        ``layer``: from ``layers_<layer>_<op>``, ``<op>`` or ``default``, the most specific
        present; None when no key covers it (the mapper chooses)."""
        par = dict(self.parallelism)
        for key in (f"layers_{layer}_{op}", op, "default"):
            if key in par:
                return par[key]
        return None


@dataclass(frozen=True)
class CalibrationSpec:
    """``calibration``: the inputs of the run that calibrates activation formats."""
    file: str | None = None      # .npy of real hidden states, absolute path
    seed: int | None = None      # random inputs like ``inputs`` with this seed (None: inputs.seed)
    headroom: float = 1.0        # headroom * max |x| must fit each calibrated format


@dataclass(frozen=True)
class QuantizationSpec:
    """``quantization``: where the stack's integer formats come from (``ir.quantize``)."""
    weights: str = "fixed"           # fixed | per_tensor | per_channel
    activations: str = "fixed"       # fixed | calibrated
    formats: tuple = ()              # ((tensor name, FixedFormat), ...) fixed by hand


@dataclass(frozen=True)
class Spec:
    name: str
    model: Model
    formats: FormatsSpec
    inputs: InputsSpec
    schedule: ScheduleSpec
    hardware: HardwareSpec
    quantization: QuantizationSpec = QuantizationSpec()
    calibration: CalibrationSpec = CalibrationSpec()
    source: str = field(default="<dict>", compare=False)  # where the spec came from

    @property
    def is_encoder(self) -> bool:
        return self.model.type == "encoder"


# ----------------------------------------------------------------------------- checking

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 3, 40, 40, 40


def _show(value: Any) -> str:
    """A short one-line rendering of a bad value for an error message."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, (int, float)):
        return _SHORT.repr(value)
    text = _SHORT.repr(value)    # bounded: a shared (aliased) structure is never expanded
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"


def _num(x: float) -> str:
    return f"{x:.4g}"


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


class _Checker:
    """Validation helpers that raise SpecError tagged with the spec's source."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, field: str, message: str):
        raise SpecError(self.source, field, message)

    def section(self, data: Any, path: str, allowed: Iterable[str],
                hints: Mapping[str, str] | None = None) -> dict:
        """``data`` as a mapping with only ``allowed`` keys (None counts as empty).
        ``hints``: key -> message for keys known to belong elsewhere."""
        allowed = list(allowed)
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            self.fail(path, f"must be a mapping with fields {', '.join(allowed)}; got {_show(data)}")
        for key in data:
            if key not in allowed:
                if hints and key in hints:
                    self.fail(_join(path, key), f"{hints[key]}; allowed fields: {', '.join(allowed)}")
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                maybe = f" did you mean '{hint[0]}'?" if hint else ""
                self.fail(_join(path, key), f"unknown field;{maybe} allowed fields: {', '.join(allowed)}")
        return dict(data)

    def integer(self, value: Any, path: str, lo: int, hi: int | None = None, why: str = "") -> int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok or value < lo or (hi is not None and value > hi):
            want = f">= {lo}" if hi is None else f"in {lo}..{hi}"
            self.fail(path, f"must be an integer {want}{why}, got {_show(value)}")
        return value

    def number(self, value: Any, path: str, lo: float, hi: float | None = None,
              lo_open: bool = False, hi_open: bool = False) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if ok:
            ok = (value > lo if lo_open else value >= lo)
            if hi is not None:
                ok = ok and (value < hi if hi_open else value <= hi)
        if not ok:
            if hi is None:
                want = f"> {lo:g}" if lo_open else f">= {lo:g}"
            else:
                want = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
            self.fail(path, f"must be a number {want}, got {_show(value)}")
        return float(value)

    def choice(self, value: Any, path: str, allowed: Iterable[str]) -> str:
        allowed = sorted(allowed)
        if not isinstance(value, str) or value not in allowed:
            shown = repr(value) if isinstance(value, str) else _show(value)
            self.fail(path, f"unsupported value {shown}; allowed: {', '.join(allowed)}")
        return value

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            self.fail(path, f"must be true or false, got {_show(value)}")
        return value

    def required(self, d: Mapping, path: str, keys: Iterable[str]) -> None:
        for key in keys:
            if key not in d:
                self.fail(_join(path, key), "required field is missing; give an integer >= 1")


def _parse_format(c: _Checker, data: Any, path: str, default: FixedFormat) -> FixedFormat:
    d = c.section(data, path, ("bits", "frac"))
    bits = c.integer(d.get("bits", default.bits), f"{path}.bits", 2, 32)
    frac = c.integer(d.get("frac", default.frac), f"{path}.frac", 0, bits - 1,
                 why=f" (less than {path}.bits = {bits})")
    return FixedFormat(bits, frac)


def _elsewhere(keys: Iterable[str], what: str) -> dict[str, str]:
    return {k: what for k in keys}


_ONLY_ENCODER = "only for model.type encoder"


def _parse_attention_head(c: _Checker, m: Mapping) -> ModelSpec:
    m = c.section(m, "model", _HEAD_FIELDS, hints=_elsewhere(
        [k for k in _ENCODER_FIELDS if k not in _HEAD_FIELDS],
        "an encoder field: set model.type: encoder"))
    for key in ("seq_len", "head_dim"):
        if key not in m:
            c.fail(f"model.{key}", "required field is missing; give an integer >= 1")
    return ModelSpec(
        type="attention_head",
        seq_len=c.integer(m["seq_len"], "model.seq_len", 1),
        head_dim=c.integer(m["head_dim"], "model.head_dim", 1),
        attention=_parse_attention(c, m.get("attention"), ATTENTION_KINDS, split_ok=True),
    )


def _parse_attention(c: _Checker, data: Any, kinds: tuple,
                     split_ok: bool = False) -> AttentionSpec:
    """``model.attention``: kind (one of ``kinds``), variant, window (kind window) and,
    for one head (``split_ok``), split (kind full) and decode (kind causal)."""
    fields = ("kind", "variant", "window", "lanes") + (("split", "decode") if split_ok else ())
    a = c.section(data, "model.attention", fields,
                  hints={} if split_ok else {"split": "only for model.type attention_head",
                                             "decode": "only for model.type attention_head"})
    dflt = AttentionSpec()
    kind = c.choice(a.get("kind", dflt.kind), "model.attention.kind", kinds)
    window = a.get("window")
    if kind == "window":
        if window is None:
            c.fail("model.attention.window", "required for kind window: give an integer >= 1 "
                   "(query i sees keys j with |i - j| <= window)")
        window = c.integer(window, "model.attention.window", 1)
    elif window is not None:
        if kind != "causal":
            c.fail("model.attention.window", f"only for kind window or causal (kind is "
                                             f"{kind}); remove it or set "
                                             "model.attention.kind: window or causal")
        window = c.integer(window, "model.attention.window", 1)

    def only_for(key: str, needed: str, lo: int) -> int | None:
        """An optional integer field (>= lo) allowed only with kind ``needed``."""
        value = a.get(key)
        if value is None:
            return None
        value = c.integer(value, f"model.attention.{key}", lo)
        if kind != needed:
            c.fail(f"model.attention.{key}", f"only for kind {needed} (kind is {kind}); "
                                             f"remove it or set model.attention.kind: {needed}")
        return value

    split, decode = only_for("split", "full", 2), only_for("decode", "causal", 1)
    if decode is not None and window is not None:
        c.fail("model.attention.window", "decode mode is built for plain causal attention "
                                         "only (the KV cache keeps every row); remove window")
    variant = c.choice(a.get("variant", dflt.variant), "model.attention.variant",
                       ATTENTION_VARIANTS)
    lanes = a.get("lanes")
    lanes = None if lanes is None else c.integer(lanes, "model.attention.lanes", 1)
    if lanes is not None and lanes > 1:
        other = ("split" if split else "decode" if decode else
                 "variant naive" if variant == "naive" else None)
        if other:
            c.fail("model.attention.lanes", f"{lanes} lanes: lanes are built for the online "
                                            f"full, window and causal heads, not with {other}; "
                                            "remove lanes (or set lanes: 1)")
    return AttentionSpec(kind=kind, variant=variant, window=window, split=split,
                         decode=decode, lanes=lanes)


def _parse_weights(c: _Checker, data: Any, base_dir: Path) -> WeightsSpec:
    path = "model.weights"
    w = c.section(data, path, ("source", "seed", "std", "path", "naming"))
    source = c.choice(w.get("source", "random"), f"{path}.source", WEIGHT_SOURCES)
    if source == "random":
        for key in ("path", "naming"):
            if w.get(key) is not None:
                c.fail(f"{path}.{key}", "only for source file; set model.weights.source: "
                                        "file to read weights from a file")
        std = w.get("std")
        return WeightsSpec(
            source="random",
            seed=c.integer(w.get("seed", WeightsSpec().seed), f"{path}.seed", 0),
            std=None if std is None else c.number(std, f"{path}.std", 0, lo_open=True))
    for key in ("seed", "std"):
        if w.get(key) is not None:
            c.fail(f"{path}.{key}", "only for source random (a weights file fixes every value)")
    p = w.get("path")
    if p is None:
        c.fail(f"{path}.path", "required for source file: the .npz or .safetensors file "
                               "(relative to the spec file's folder)")
    if not isinstance(p, str) or not p.strip():
        c.fail(f"{path}.path", f"must be a file path (text), got {_show(p)}")
    if not p.lower().endswith(WEIGHT_SUFFIXES):
        c.fail(f"{path}.path", f"unsupported file type {Path(p).suffix or '(none)'!r} of {p!r}; "
                               "allowed: .npz, .safetensors, .onnx (naming onnx)")
    full = os.path.normpath(os.path.join(base_dir, os.path.expanduser(p)))
    if not os.path.isfile(full):
        c.fail(f"{path}.path", f"file not found: {full}")
    naming = c.choice(w.get("naming", "attnflow"), f"{path}.naming", WEIGHT_NAMINGS)
    if (naming == "onnx") != p.lower().endswith(".onnx"):
        c.fail(f"{path}.naming", "naming onnx goes with an .onnx file (the weights of the "
                                 "layer stack recognised in it), and only with one")
    return WeightsSpec(source="file", path=full, naming=naming)


def _parse_encoder(c: _Checker, m: Mapping, base_dir: Path) -> EncoderSpec:
    m = c.section(m, "model", _ENCODER_FIELDS, hints={
        "head_dim": "not an encoder field: an encoder's head width is d_model / heads"})
    c.required(m, "model", _ENCODER_REQUIRED)
    layers = c.integer(m["layers"], "model.layers", 1)
    d_model = c.integer(m["d_model"], "model.d_model", 1)
    heads = c.integer(m["heads"], "model.heads", 1)
    if d_model % heads:
        c.fail("model.heads", f"{heads} heads do not divide model.d_model = {d_model}; "
                              f"valid head counts: {', '.join(map(str, _divisors(d_model)))}")
    d_ff = c.integer(m["d_ff"], "model.d_ff", 1)
    seq_len = c.integer(m["seq_len"], "model.seq_len", 1)

    attention = _parse_attention(c, m.get("attention"), ENCODER_ATTENTION_KINDS)
    dflt = EncoderSpec(1, 1, 1, 1, 1)

    return EncoderSpec(
        layers=layers, d_model=d_model, heads=heads, d_ff=d_ff, seq_len=seq_len,
        attention=attention,
        norm=c.choice(m.get("norm", dflt.norm), "model.norm", NORMS),
        norm_position=c.choice(m.get("norm_position", dflt.norm_position),
                               "model.norm_position", NORM_POSITIONS),
        final_norm=c.boolean(m.get("final_norm", dflt.final_norm), "model.final_norm"),
        norm_eps=c.number(m.get("norm_eps", dflt.norm_eps), "model.norm_eps", 0, lo_open=True),
        activation=c.choice(m.get("activation", dflt.activation), "model.activation", ACTIVATIONS),
        weights=_parse_weights(c, m.get("weights"), base_dir),
    )


def _parse_model(c: _Checker, data: Any, base_dir: Path) -> Model:
    if data is not None and not isinstance(data, Mapping):
        c.fail("model", f"must be a mapping with fields {', '.join(_HEAD_FIELDS)} "
                        f"(or, with type encoder, {', '.join(_ENCODER_FIELDS[1:])}); "
                        f"got {_show(data)}")
    m = dict(data or {})
    mtype = c.choice(m.get("type", MODEL_TYPES[0]), "model.type", MODEL_TYPES)
    if mtype == "encoder":
        return _parse_encoder(c, m, base_dir)
    return _parse_attention_head(c, m)


def _parse_parallelism(c: _Checker, data: Any, model: EncoderSpec) -> tuple:
    path = "hardware.parallelism"
    if data is None:
        return ()
    ops = list(LINEAR_OPS)
    allowed = ["default", *ops]
    if not isinstance(data, Mapping):
        c.fail(path, f"must be a mapping of layer op -> {{pe, simd}} with keys "
                     f"{', '.join(allowed)} or layers_<i>_<op>; got {_show(data)}")
    raw: dict[str, dict] = {}
    for key, entry in data.items():
        if not isinstance(key, str):
            c.fail(path, f"keys must be layer op names ({', '.join(allowed)} or "
                         f"layers_<i>_<op>), got {_show(key)}")
        mt = _LAYER_OP_RE.fullmatch(key)
        if key not in allowed and not mt:
            hint = difflib.get_close_matches(key, allowed, n=1)
            maybe = f" did you mean '{hint[0]}'?" if hint else ""
            c.fail(_join(path, key), f"unknown layer op;{maybe} allowed: {', '.join(allowed)}, "
                                     f"or layers_<i>_<op> with i in 0..{model.layers - 1}")
        if mt and int(mt.group(1)) >= model.layers:
            c.fail(_join(path, key), f"layer {int(mt.group(1))} does not exist: model.layers = "
                                     f"{model.layers} (layers 0..{model.layers - 1})")
        e = c.section(entry, _join(path, key), ("pe", "simd"))
        raw[key] = {f: c.integer(e[f], f"{path}.{key}.{f}", 1) for f in ("pe", "simd")
                    if e.get(f) is not None}

    def chain(key: str) -> list[str]:
        mt = _LAYER_OP_RE.fullmatch(key)
        if mt:
            return [key, mt.group(2), "default"]
        return [key, "default"] if key != "default" else ["default"]

    def resolve(key: str, fld: str) -> tuple[int, str | None]:
        for k in chain(key):
            if fld in raw.get(k, {}):
                return raw[k][fld], k
        return 1, None

    # every (layer, op) a key decides: check that its PE and SIMD divide the op's sizes
    for layer in range(model.layers):
        for op in ops:
            key = next((k for k in (f"layers_{layer}_{op}", op, "default") if k in raw), None)
            if key is None:
                continue
            m, k = model.fold_dims(op)
            mname, kname = LINEAR_OPS[op]
            if op in HEAD_OPS:
                mname = "d_model / heads: one linear per head"
            for fld, total, tname, dname in (("pe", m, "M", mname), ("simd", k, "K", kname)):
                value, origin = resolve(key, fld)
                if total % value:
                    c.fail(f"{path}.{origin}.{fld}",
                           f"{fld.upper()} {value} does not divide {tname} = {total} ({dname}) "
                           f"of {op}{f' in layer {layer}' if origin != op and origin != 'default' else ''}"
                           f"; allowed {fld.upper()} values for {op}: "
                           f"{', '.join(map(str, _divisors(total)))}")
    return tuple(sorted((key, Folding(resolve(key, "pe")[0], resolve(key, "simd")[0]))
                        for key in raw))


def _parse_quantization(c: _Checker, top: Mapping, model: Model,
                        base_dir: Path) -> tuple[QuantizationSpec, CalibrationSpec]:
    """``quantization`` and ``calibration`` (encoder specs only)."""
    from .quantize import ACTIVATION_MODES, WEIGHT_MODES, tensor_names
    encoder = model.type == "encoder"
    hints = None if encoder else _elsewhere(("weights", "activations", "formats"),
                                            _ONLY_ENCODER)
    q = c.section(top.get("quantization"), "quantization",
                  ("weights", "activations", "formats") if encoder else (), hints=hints)
    cal = c.section(top.get("calibration"), "calibration",
                    ("file", "seed", "headroom") if encoder else (),
                    hints=None if encoder else _elsewhere(("file", "seed", "headroom"),
                                                          _ONLY_ENCODER))
    if not encoder:
        return QuantizationSpec(), CalibrationSpec()
    dq = QuantizationSpec()
    by_hand = q.get("formats") or {}
    if not isinstance(by_hand, Mapping):
        c.fail("quantization.formats", f"must be a mapping of tensor name -> {{bits, frac}}, "
                                       f"got {_show(by_hand)}")
    names = tensor_names(model.layers, model.norm_position == "pre", model.final_norm)
    fixed = []
    for name, fmt in by_hand.items():
        if name not in names:
            near = difflib.get_close_matches(str(name), names, 3)
            c.fail(f"quantization.formats.{name}",
                   f"unknown tensor; tensors are x, q, k, v, att, l<i>.<name> and final_ln "
                   f"(ir/quantize.py){'; did you mean ' + ', '.join(near) + '?' if near else ''}")
        fixed.append((name, _parse_format(c, fmt, f"quantization.formats.{name}",
                                          FixedFormat(16, 8))))
    cfile = cal.get("file")
    if cfile is not None and (not isinstance(cfile, str) or not cfile):
        c.fail("calibration.file", f"must be the path of a .npy file, got {_show(cfile)}")
    seed = cal.get("seed")
    quant = QuantizationSpec(
        weights=c.choice(q.get("weights", dq.weights), "quantization.weights", WEIGHT_MODES),
        activations=c.choice(q.get("activations", dq.activations),
                             "quantization.activations", ACTIVATION_MODES),
        formats=tuple(sorted(fixed)))
    return quant, CalibrationSpec(
        file=None if cfile is None else os.path.abspath(os.path.join(base_dir, cfile)),
        seed=None if seed is None else c.integer(seed, "calibration.seed", 0),
        headroom=c.number(cal.get("headroom", CalibrationSpec().headroom),
                          "calibration.headroom", 1.0, 1e6))


def _parse(c: _Checker, data: Mapping, base_dir: Path) -> Spec:
    top = c.section(data, "", ("name", "model", "formats", "inputs", "schedule", "hardware",
                               "quantization", "calibration"))

    name = top.get("name", DEFAULT_NAME)
    if not isinstance(name, str) or not re.fullmatch(_NAME_RE, name):
        c.fail("name", f"must be an identifier matching {_NAME_RE} (it prefixes Verilog names), "
                       f"got {_show(name)}")
    if name_problem(name):
        c.fail("name", name_problem(name))

    model = _parse_model(c, top.get("model"), base_dir)
    encoder = model.type == "encoder"

    fields = _FORMAT_FIELDS + (_ENCODER_FORMAT_FIELDS if encoder else ())
    f = c.section(top.get("formats"), "formats", fields,
                  hints=None if encoder else _elsewhere(_ENCODER_FORMAT_FIELDS, _ONLY_ENCODER))
    df = FormatsSpec()
    acc_bits = f.get("acc_bits")
    formats = FormatsSpec(
        q=_parse_format(c, f.get("q"), "formats.q", df.q),
        k=_parse_format(c, f.get("k"), "formats.k", df.k),
        v=_parse_format(c, f.get("v"), "formats.v", df.v),
        out=_parse_format(c, f.get("out"), "formats.out", df.out),
        score_frac=c.integer(f.get("score_frac", df.score_frac), "formats.score_frac", 1, 12),
        prob_frac=c.integer(f.get("prob_frac", df.prob_frac), "formats.prob_frac", 4, 24),
        act=_parse_format(c, f.get("act"), "formats.act", df.act),
        weight=_parse_format(c, f.get("weight"), "formats.weight", df.weight),
        gamma=_parse_format(c, f.get("gamma"), "formats.gamma", df.gamma),
        beta=_parse_format(c, f.get("beta"), "formats.beta", df.beta),
        acc_bits=None if acc_bits is None else c.integer(acc_bits, "formats.acc_bits", 2,
                                                         MAX_ACC_BITS),
    )

    i = c.section(top.get("inputs"), "inputs", ("seed", "range", "file"))
    di = InputsSpec()
    ifile = i.get("file")
    if ifile is not None and (not isinstance(ifile, str) or not ifile):
        c.fail("inputs.file", f"must be the path of a .npy or .npz file, got {_show(ifile)}")
    inputs = InputsSpec(
        seed=c.integer(i.get("seed", di.seed), "inputs.seed", 0),
        range=c.number(i.get("range", di.range), "inputs.range", 0, lo_open=True),
        file=None if ifile is None else os.path.abspath(os.path.join(base_dir, ifile)),
    )

    s = c.section(top.get("schedule"), "schedule",
                  ("seed", "input_gap_prob", "input_gap_max", "output_ready_prob"))
    ds = ScheduleSpec()
    schedule = ScheduleSpec(
        seed=c.integer(s.get("seed", ds.seed), "schedule.seed", 0),
        input_gap_prob=c.number(s.get("input_gap_prob", ds.input_gap_prob),
                               "schedule.input_gap_prob", 0, 1, hi_open=True),
        input_gap_max=c.integer(s.get("input_gap_max", ds.input_gap_max), "schedule.input_gap_max", 1,
                                MAX_GAP),
        output_ready_prob=c.number(s.get("output_ready_prob", ds.output_ready_prob),
                                  "schedule.output_ready_prob", 0, 1, lo_open=True),
    )

    fields = _HARDWARE_FIELDS + _GOAL_FIELDS + (_ENCODER_HARDWARE_FIELDS if encoder else ())
    h = c.section(top.get("hardware"), "hardware", fields,
                  hints=None if encoder else _elsewhere(_ENCODER_HARDWARE_FIELDS, _ONLY_ENCODER))
    depths = h.get("fifo_depths")
    if depths is not None and not isinstance(depths, Mapping):
        c.fail("hardware.fifo_depths", f"must be a mapping of channel name -> depth, got {_show(depths)}")
    for chan, depth in (depths or {}).items():
        if not isinstance(chan, str) or not chan:
            c.fail("hardware.fifo_depths", f"channel names must be non-empty strings, got {_show(chan)}")
        c.integer(depth, f"hardware.fifo_depths.{chan}", 1, MAX_FIFO_DEPTH)
    optional = {key: None if h.get(key) is None else c.integer(h[key], f"hardware.{key}", 1)
                for key in ("target_cycles", "multiplier_budget")}
    hardware = HardwareSpec(
        clock_mhz=c.number(h.get("clock_mhz", HardwareSpec().clock_mhz), "hardware.clock_mhz", 0,
                          lo_open=True),
        fifo_depths=tuple(sorted((depths or {}).items())),
        sequences=c.integer(h.get("sequences", 1), "hardware.sequences", 1, MAX_SEQUENCES),
        stream=c.boolean(h.get("stream", False), "hardware.stream"),
        target_interval=None if h.get("target_interval") is None else
        c.integer(h["target_interval"], "hardware.target_interval", 1),
        parallelism=_parse_parallelism(c, h.get("parallelism"), model) if encoder else (),
        **optional,
    )

    quantization, calibration = _parse_quantization(c, top, model, base_dir)
    r = inputs.range
    if encoder and quantization.activations == "fixed":
        fmt = formats.act
        if not fmt.holds(-r, r):
            c.fail("formats.act",
                   f"{fmt} holds [{_num(fmt.min_value)}, {_num(fmt.max_value)}]; inputs.range {r!r} "
                   "does not fit (the encoder input X is in formats.act): raise formats.act.bits "
                   "or lower formats.act.frac")
    else:
        for key in ("q", "k", "v", "out"):
            fmt = getattr(formats, key)
            if not fmt.holds(-r, r):
                why = " (the output is a convex combination of V rows)" if key == "out" else ""
                c.fail(f"formats.{key}",
                       f"{fmt} holds [{_num(fmt.min_value)}, {_num(fmt.max_value)}]; inputs.range "
                       f"{r!r} does not fit{why}: raise formats.{key}.bits or lower "
                       f"formats.{key}.frac")

    return Spec(name, model, formats, inputs, schedule, hardware, quantization, calibration,
                source=c.source)


# ----------------------------------------------------------------------------- YAML

def _yaml_load(text: str) -> Any:
    """YAML 1.2 numbers and booleans, no repeated keys or non-finite numbers (ir.readers)."""
    return yaml_load(text)


# ----------------------------------------------------------------------------- public API

def parse_override(text: str) -> tuple[str, Any]:
    """Split a ``--set key.sub=value`` string; the value is read as a YAML scalar or flow value."""
    key, eq, raw = text.partition("=")
    key = key.strip()
    if not eq or not key or not all(part.strip() for part in key.split(".")):
        raise SpecError("<command line>", "--set",
                        f"expected key.sub=value (e.g. model.seq_len=64), got {text!r}")
    try:
        value = _yaml_load(raw)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or e
        raise SpecError("<command line>", "--set",
                        f"value of {key} is not valid YAML: {problem}") from None
    return key, value


def _apply_overrides(data: dict, overrides: Iterable, source: str) -> dict:
    """A copy of ``data`` with each override (``"k.s=v"`` text or ``(key, value)``) applied."""
    data = copy.deepcopy(data)
    for ov in overrides:
        key, value = parse_override(ov) if isinstance(ov, str) else ov
        parts = [p.strip() for p in key.split(".")]
        node = data
        for depth, part in enumerate(parts[:-1]):
            if node.get(part) is None:
                node[part] = {}
            elif isinstance(node[part], Mapping):
                node[part] = dict(node[part])
            else:
                where = ".".join(parts[:depth + 1])
                raise SpecError(source, "--set", f"cannot set {key}: {where} is "
                                                 f"{_show(node[part])}, not a mapping")
            node = node[part]
        node[parts[-1]] = value
    return data


def spec_from_dict(d: Any, source: str = "<dict>", overrides: Iterable = (),
                   base_dir: str | Path | None = None) -> Spec:
    """Validate raw spec data (as read from YAML) after applying ``overrides``.

    ``base_dir``: the folder a relative ``model.weights.path`` is relative to (default:
    the current directory); :func:`load_spec` passes the spec file's folder.
    """
    c = _Checker(source)
    if not isinstance(d, Mapping):
        c.fail("<file>", "top level must be a mapping with sections name, model, formats, inputs, "
                         f"schedule, hardware; got {_show(d)}")
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    return _parse(c, _apply_overrides(dict(d), overrides, source), Path(os.path.abspath(base)))


def _is_hf_config(path: Path) -> bool:
    """A folder, or a .json file that is not an attnflow spec written as JSON (one with a
    top-level ``model`` mapping)."""
    if path.is_dir():
        return True
    if path.suffix.lower() != ".json":
        return False
    try:
        data = json_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return True  # let the config reader report it
    return not (isinstance(data, dict) and isinstance(data.get("model"), dict))


def read_text_file(path, source: str) -> str:
    """A spec or config file's text; problems become one-line SpecErrors on ``<file>``."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(source, "<file>", "file not found") from None
    except UnicodeDecodeError:
        raise SpecError(source, "<file>", "file is not UTF-8 text") from None
    except OSError as e:
        raise SpecError(source, "<file>", f"cannot read file: {e.strerror or e}") from None


def load_spec(path: str | Path, overrides: Iterable = ()) -> Spec:
    """Read, override and validate the YAML spec at ``path``.

    A folder, or a ``.json`` file without a top-level ``model`` mapping, is a Hugging Face
    ``config.json`` (or the folder holding one): see
    :func:`attnflow.ir.hf_config.spec_from_hf_config`; the sequence length then comes from
    the override ``model.seq_len``. (JSON is YAML, so a spec may be written as JSON.)
    A ``.onnx`` file is a transformer graph: see
    :func:`attnflow.ir.onnx_frontend.spec_from_onnx`.
    """
    if str(path).lower().endswith(".onnx"):
        from .onnx_frontend import spec_from_onnx
        return spec_from_onnx(path, overrides)
    if _is_hf_config(Path(path)):
        from .hf_config import spec_from_hf_config
        return spec_from_hf_config(path, None, overrides)
    source = str(path)
    text = read_text_file(path, source)
    try:
        data = _yaml_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(source, "<file>",
                        f"invalid YAML: {getattr(e, 'problem', None) or e}{where}") from None
    if data is None:
        raise SpecError(source, "<file>", "file is empty; a spec needs at least model.seq_len "
                                          "and model.head_dim")
    return spec_from_dict(data, source, overrides, base_dir=Path(path).parent)


def _fmt(f: FixedFormat) -> dict:
    return {"bits": f.bits, "frac": f.frac}


def _model_to_dict(m: Model) -> dict:
    att = {"kind": m.attention.kind, "variant": m.attention.variant}
    if m.attention.window is not None:
        att["window"] = m.attention.window
    if m.attention.split is not None:
        att["split"] = m.attention.split
    if m.attention.decode is not None:
        att["decode"] = m.attention.decode
    if m.attention.lanes is not None:
        att["lanes"] = m.attention.lanes
    if m.type != "encoder":
        return {"type": m.type, "seq_len": m.seq_len, "head_dim": m.head_dim, "attention": att}
    w = m.weights
    weights = ({"source": "random", "seed": w.seed, "std": w.std} if w.source == "random"
               else {"source": "file", "path": w.path, "naming": w.naming})
    return {"type": "encoder", "layers": m.layers, "d_model": m.d_model, "heads": m.heads,
            "d_ff": m.d_ff, "seq_len": m.seq_len, "attention": att, "norm": m.norm,
            "norm_position": m.norm_position, "final_norm": m.final_norm,
            "norm_eps": m.norm_eps, "activation": m.activation, "weights": weights}


def spec_to_dict(spec: Spec) -> dict:
    """The fully resolved spec as plain YAML-able data (``source`` is not included).
    Encoder-only fields appear only in encoder specs."""
    f, i, s, h = spec.formats, spec.inputs, spec.schedule, spec.hardware
    encoder = spec.model.type == "encoder"
    formats = {"q": _fmt(f.q), "k": _fmt(f.k), "v": _fmt(f.v), "out": _fmt(f.out),
               "score_frac": f.score_frac, "prob_frac": f.prob_frac}
    hardware = {"clock_mhz": h.clock_mhz, "fifo_depths": dict(h.fifo_depths),
                **({"sequences": h.sequences} if h.sequences != 1 else {}),
                **({"stream": True} if h.stream else {})}
    goals = {"target_cycles": h.target_cycles, "multiplier_budget": h.multiplier_budget}
    hardware.update(goals if encoder else {k: v for k, v in goals.items() if v is not None})
    if encoder:
        formats.update(act=_fmt(f.act), weight=_fmt(f.weight), gamma=_fmt(f.gamma),
                       beta=_fmt(f.beta), acc_bits=f.acc_bits)
        hardware.update(parallelism={k: {"pe": v.pe, "simd": v.simd} for k, v in h.parallelism})
        if h.target_interval is not None:
            hardware["target_interval"] = h.target_interval
    out = {
        "name": spec.name,
        "model": _model_to_dict(spec.model),
        "formats": formats,
        "inputs": {"seed": i.seed, "range": i.range, **({"file": i.file} if i.file else {})},
        "schedule": {"seed": s.seed, "input_gap_prob": s.input_gap_prob,
                     "input_gap_max": s.input_gap_max, "output_ready_prob": s.output_ready_prob},
        "hardware": hardware,
    }
    if encoder:
        q, cal = spec.quantization, spec.calibration
        out["quantization"] = {"weights": q.weights, "activations": q.activations,
                               "formats": {n: _fmt(f) for n, f in q.formats}}
        out["calibration"] = {"file": cal.file, "seed": cal.seed, "headroom": cal.headroom}
    return out

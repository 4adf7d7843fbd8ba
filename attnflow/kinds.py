"""One strategy per attention kind of a single head.

A :class:`HeadKind` holds everything that differs between the kinds of one attention
head: which spec it applies to, how the head is lowered and mapped (templates, read from
the lowered IR's attention node), its inputs and what the build summary says about it
(the cycle model included). The golden model and the float reference are the IR's
(``ir.graph.interpret``) for every kind. ``api.prepare``, ``api.Design`` and the build summary ask the
kind of the spec (:func:`kind_of`) and hold no kind-specific branches.

Kinds, in the order :func:`kind_of` tries them:

* :class:`SplitHead`  ``attention.split: P`` (``ir.split``, ``mappers.split``)
* :class:`DecodeHead` ``attention.decode: S`` (``ir.decode``, ``mappers.decode``)
* :class:`MaskedHead` ``attention.kind: window | causal``, the blocked triangle and the
  causal window included (``ir.window``, ``mappers.window``)
* :class:`FullHead`   ``kind: full``, variant online (lanes) or naive (``mappers.sdpa``)

and :class:`StackKind` (``STACK``) for a stack of layers (``model.type: encoder``,
``ir.stack``, ``mappers.encoder``), chosen by the model type.

A new kind is one subclass here and one entry in :data:`KINDS`.
"""
from __future__ import annotations

import numpy as np

from .ir.graph import interpret
from .ir.lower import attention_node, lower_attention
from .ir.numerics import dequantize, quantize
from .ir.spec import SpecError
from .mappers.sdpa import MappingError


def random_inputs(spec) -> dict:
    """Q, K and V (N x d stored integers) drawn from ``inputs: {seed, range}``, or the
    user's vectors (``inputs.file`` / ``--inputs``)."""
    if spec.inputs.file:
        from .ir.user_inputs import load_user_inputs
        return load_user_inputs(spec)
    m, f = spec.model, spec.formats
    rng = np.random.default_rng(spec.inputs.seed)
    shape = (m.seq_len, m.head_dim)
    return {name: quantize(rng.uniform(-spec.inputs.range, spec.inputs.range, shape), fmt)
            for name, fmt in (("q", f.q), ("k", f.k), ("v", f.v))}


def float_inputs(design) -> dict:
    """The design's inputs dequantised by their IR types (the float reference's inputs)."""
    g = design.graph
    return {n: dequantize(design.inputs[n], g.node(n)["type"].fmt.frac)
            for n in g.nodes() if g.node(n)["op"] == "input"}


class HeadKind:
    """The strategy of one attention kind (see the module docstring). Subclasses set
    ``name`` (the summary's ``kind``) and ``what`` (how errors name it) and override
    :meth:`applies`, :meth:`map` and :meth:`fields`. Golden and reference are the same
    for every kind: the IR interpreted (the lowered graph bit-exactly, the graph as
    written in floats), whose ``sdpa`` node carries the kind (``ir.lower``)."""
    name = "attention_head"
    what = "attention"
    #: a stack of layers (model.type encoder), not one head
    stack = False
    #: whether the mapper may choose lanes for hardware.target_cycles / multiplier_budget
    chooses_lanes = False

    def applies(self, att) -> bool:
        raise NotImplementedError

    def goal_refusal(self, att) -> tuple[str, str]:
        """(what the head is, how to fix it) when a lanes goal is set for this kind."""
        return f"kind {att.kind}", "set model.attention.lanes instead and remove it"

    def check(self, spec, goal: str | None) -> None:
        """Refuse what the spec asks that this kind can't build (one line, a field)."""
        att = spec.model.attention
        if goal and not self.chooses_lanes:
            what, fix = self.goal_refusal(att)
            raise SpecError(spec.source, f"hardware.{goal}",
                            f"the mapper chooses lanes only for a full online head, not for "
                            f"{what}; {fix}")

    def describe(self, att) -> str:
        """How an error message names this kind."""
        return self.what

    def online_only(self, spec) -> None:
        att = spec.model.attention
        if att.variant != "online":
            raise SpecError(spec.source, "model.attention.variant",
                            f"{att.variant!r}: {self.describe(att)} is built with the online "
                            "variant only; set variant: online")

    def map(self, spec, nm, graph, depths) -> tuple:
        """(lowered graph, HwGraph); MappingError -> SpecError on the field it names."""
        raise NotImplementedError

    def inputs(self, spec, nm) -> dict:
        return random_inputs(spec)

    def golden(self, design) -> np.ndarray:
        """Bit-exact integer output: the lowered graph interpreted (every kind)."""
        return interpret(design.lowered, design.inputs, "int")[design.lowered.outputs[0]]

    def reference(self, design) -> np.ndarray:
        """Float attention on the (dequantised) same inputs, in output units: the graph
        as written interpreted (``sdpa``'s float semantics read its attributes)."""
        return interpret(design.graph, float_inputs(design), "float")[design.graph.outputs[0]]

    def accuracy(self, design) -> dict:
        """The golden output against the float reference (max error, cosine, LSB)."""
        got = dequantize(self.golden(design), design.numerics.out.frac)
        ref = self.reference(design)
        cos = float((got * ref).sum() / (np.linalg.norm(got) * np.linalg.norm(ref) or 1.0))
        return {"max_abs_error": float(np.abs(got - ref).max()), "cosine": cos,
                "out_lsb": design.numerics.out.lsb}

    def fields(self, design) -> dict:
        """What the build summary says about the model and the cycles to expect."""
        raise NotImplementedError


def _mapped(spec, mapper, *args, **kw):
    try:
        return mapper(*args, **kw)
    except MappingError as e:
        raise SpecError(spec.source, e.field, e.message) from None


class FullHead(HeadKind):
    """Full attention, lowered by ``attention.variant``: online (running max and sum,
    O(1) state per row, optionally with lanes) or naive (row max, exp, row sum and
    reciprocal as separate templates over a buffered score row)."""
    name = "attention_head"
    chooses_lanes = True

    def applies(self, att) -> bool:
        return att.kind == "full"

    def map(self, spec, nm, graph, depths):
        from .api import head_lanes
        from .mappers.sdpa import map_attention_head
        variant = spec.model.attention.variant
        lowered = lower_attention(graph, variant)

        def build():
            return map_attention_head(lowered, variant, depths, spec.name,
                                      lanes=head_lanes(spec, lowered))
        return lowered, _mapped(spec, build)

    def fields(self, design) -> dict:
        from .mappers.sdpa import online_fill, online_head_cycles, online_rows
        from .templates.online import groups
        nm = design.numerics
        n = nm.seq_len
        lanes = design.hw.instances["qk"].param("lanes") or 1
        ideal = n * groups(n, lanes) + n
        variant = design.spec.model.attention.variant
        online = variant == "online"
        out = {"kind": self.name, "variant": variant,
               "seq_len": n, "head_dim": nm.head_dim, "ideal_cycles": ideal,
               "model_text": f"one attention head, N = {n}, d = {nm.head_dim}, "
                             f"SDPA variant {variant}",
               "expected_cycles": online_head_cycles(nm, lanes) if online else ideal,
               "expected_text": "N*N + N: K/V load plus one score per cycle (ideal; "
                                "the naive variant's row reductions add more)"}
        if online:
            rows = online_rows(nm, lanes)
            per = "one score" if lanes == 1 else f"{lanes} scores"
            tail = n % rows
            out["expected_text"] = (
                f"N + ceil(N/{rows})*{rows}*ceil(N/{lanes})"
                + (f" - {rows - tail}" if tail else "") + f" + {online_fill(nm, lanes)}: "
                f"K/V load, {per} per cycle with {rows} query rows interleaved "
                + ("(the last block's missing rows as bubbles), " if tail else "")
                + "pipeline fill")
        if lanes > 1:
            out.update(lanes=lanes, model_text=out["model_text"] + f", {lanes} lanes")
        return out


class MaskedHead(HeadKind):
    """A sliding-window or causal head (``ir.window``): lowered to one ``masked_online``
    op (its integer semantics ``window_golden``, its float one ``window_float``). Causal
    rows run as the blocked triangle when lanes allow it."""
    name = "masked_head"     # the summary says f"{kind}_head"

    def applies(self, att) -> bool:
        return att.kind in ("window", "causal")

    def describe(self, att) -> str:
        return f"{att.kind} attention"

    def map(self, spec, nm, graph, depths):
        from .mappers.window import map_window_head
        self.online_only(spec)
        lowered = lower_attention(graph, "online")
        a = attention_node(lowered)
        return lowered, _mapped(spec, map_window_head, nm, a["window"], depths, spec.name,
                                kind=a["kind"], lanes=spec.model.attention.lanes or 1)

    def fields(self, design) -> dict:
        from .ir.window import causal_blocks, lookahead, row_slots
        from .mappers.window import window_fill, window_head_cycles
        nm = design.numerics
        a = attention_node(design.lowered)
        fill = window_fill(nm)
        n, kind, w = nm.seq_len, a["kind"], a["window"]
        slots, ahead = row_slots(n, kind, w), lookahead(w, n, kind)
        lanes = design.hw.instances["qk"].param("lanes") or 1
        blocks = causal_blocks(n, lanes) if design.hw.instances["qk"].param("triangle") else ()
        what = (f"window {w} (|i - j| <= {w}" if kind == "window" else "causal (j <= i"
                if w is None else f"causal window {w} ({'i' if w == 0 else f'i - {w}'} <= j <= i")
        return {"kind": f"{kind}_head", "variant": "online", "seq_len": n,
                "head_dim": nm.head_dim, "window": w,
                "lanes": lanes,
                "model_text": f"one {kind}-attention head, N = {n}, d = {nm.head_dim}, "
                              + (f"{what}, {slots} slots per row)" if not blocks else
                                 f"{what}, row i over the keys up to its block's end)")
                              + (f", {lanes} lanes" if lanes > 1 else ""),
                "expected_cycles": window_head_cycles(nm, w, kind, lanes),
                "expected_text": (
                    f"sum over the {len(blocks)} row blocks of rows * ceil(block end/"
                    f"{lanes}) + {fill}: the blocked triangle (blocks of "
                    f"{blocks[0][0]} rows), {lanes} slot(s) per cycle" if blocks else
                    f"{'w' + chr(39) + ' + ' if ahead else ''}"
                    + (f"N*W + {fill}: one slot per cycle" if lanes == 1
                       else f"N*ceil(W/{lanes}) + {fill}: {lanes} slots per cycle"))}


class SplitHead(HeadKind):
    """A split-context head (``attention.split: P``, ``ir.split``): P online-softmax
    engines over K/V slices and a combine tree, lowered to one ``split_online`` op (its
    integer semantics ``split_golden``; its float one plain attention)."""
    name = "split_head"
    what = "split-context attention"

    def applies(self, att) -> bool:
        return att.split is not None

    def goal_refusal(self, att):
        return f"split {att.split}", "remove it"

    def map(self, spec, nm, graph, depths):
        from .mappers.split import map_split_head
        self.online_only(spec)
        lowered = lower_attention(graph, "online")
        return lowered, _mapped(spec, map_split_head, nm, attention_node(lowered)["split"],
                                depths, spec.name)

    def fields(self, design) -> dict:
        from .ir.split import leaf_depth
        from .mappers.split import split_fill
        nm = design.numerics
        n, p = nm.seq_len, attention_node(design.lowered)["split"]
        longest = -(-n // p)
        exact = n % p == 0 and p & (p - 1) == 0      # equal slices, every leaf equally deep
        fill = split_fill(p, nm)
        return {"kind": self.name, "variant": "online", "seq_len": n,
                "head_dim": nm.head_dim, "split": p,
                "model_text": f"one split-context attention head, N = {n}, d = "
                              f"{nm.head_dim}, {p} engines over K/V slices, combine tree",
                "expected_cycles": n + n * longest + fill if exact else None,
                "expected_text": (f"N + N*N/P + {fill}: the K rows stream in, then the "
                                  f"engines run in lockstep; the last engine's state passes "
                                  f"{leaf_depth(p, p - 1)} combines" if exact else
                                  "closed form only for P a power of two dividing N: other "
                                  "trees let early engines run ahead by up to the FIFO slack")}


class DecodeHead(HeadKind):
    """Decode mode of one causal head (``attention.decode: S``, ``ir.decode``): the KV
    cache holds all N positions' K/V rows (prefill, then one per step); ``inputs["q"]``
    holds only the S new tokens' queries (the last S rows of the random Q). Lowered to
    one ``decode_online`` op (its integer semantics ``decode_golden``)."""
    name = "decode_head"
    what = "decode"

    def applies(self, att) -> bool:
        return att.decode is not None

    def map(self, spec, nm, graph, depths):
        from .mappers.decode import map_decode_head
        self.online_only(spec)
        lowered = lower_attention(graph, "online")
        return lowered, _mapped(spec, map_decode_head, nm, attention_node(lowered)["decode"],
                                depths, spec.name)

    def inputs(self, spec, nm) -> dict:
        inputs = random_inputs(spec)
        inputs["q"] = inputs["q"][nm.seq_len - spec.model.attention.decode:]
        return inputs


    def fields(self, design) -> dict:
        from .mappers.decode import decode_fill
        nm = design.numerics
        n, steps = nm.seq_len, attention_node(design.lowered)["decode"]
        c = n - steps
        fill = decode_fill(nm)
        return {"kind": self.name, "variant": "online", "seq_len": n,
                "head_dim": nm.head_dim, "decode": steps,
                "model_text": f"one causal head in decode mode, d = {nm.head_dim}: a "
                              f"{c}-token prefill into the KV cache, then {steps} generated "
                              f"tokens (context {c + 1}..{n})",
                "expected_cycles": c + sum(c + t + 1 for t in range(steps)) + fill,
                "expected_text": f"C + sum over steps of (C + t + 1) + {fill}: one "
                                 f"score per cycle, C + t + 1 per generated token"}


class StackKind(HeadKind):
    """A stack of encoder / decoder layers (``model.type: encoder``, ``ir.stack``): built
    by ``api.prepare_encoder`` (folding, then the layers the IR holds mapped by
    ``mappers.encoder``); input ``x``; its accuracy is reported after every layer."""
    name = "encoder"
    stack = True

    def applies(self, att) -> bool:
        return False        # chosen by model.type, not by model.attention

    def inputs(self, spec, nm, x_fmt=None) -> dict:
        """The input X in the stack's input format ``x_fmt`` (default formats.act)."""
        from .ir.encoder_golden import random_input
        return {"x": random_input(spec, x_fmt)}

    def layer_ints(self, design) -> dict:
        """The integer stack's value after every layer (``ir.stack.layer_outputs``), the
        lowered graph interpreted once per design (intermediates dropped as it goes)."""
        from .ir.stack import TensorLosses, layer_outputs
        if "layer_ints" not in design.memo:
            losses = TensorLosses(design.graph, design.lowered)
            design.memo["layer_ints"] = interpret(design.lowered, design.inputs, "int",
                                                  keep=layer_outputs(design.graph),
                                                  observe=losses.observe)
            design.memo["tensor_losses"] = losses
        return design.memo["layer_ints"]

    def golden(self, design) -> np.ndarray:
        return self.layer_ints(design)[design.lowered.outputs[0]]

    def accuracy(self, design) -> dict:
        """The integer stack against the float stack after the last layer (the figures)
        and after every layer (``layers``)."""
        from .ir.stack import stack_accuracy
        per = stack_accuracy(design.plans, design.x, design.final, design.graph,
                             design.lowered, self.layer_ints(design))
        losses = design.memo["tensor_losses"]
        return {**{k: per[-1][k] for k in ("max_abs_error", "cosine", "out_lsb")},
                "layers": per, "tensors": losses.results, "worst": losses.worst()}

    def fields(self, design) -> dict:
        from .build import _encoder_fields
        return _encoder_fields(design)


STACK = StackKind()

#: every head kind, in the order :func:`kind_of` tries them (split and decode are options
#: on top of ``attention.kind``, so they come first)
KINDS = (SplitHead(), DecodeHead(), MaskedHead(), FullHead())


def kind_of(att) -> HeadKind:
    """The strategy for a spec's ``model.attention``."""
    return next(k for k in KINDS if k.applies(att))

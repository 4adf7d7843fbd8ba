"""One strategy per attention kind of a single head.

A :class:`HeadKind` holds everything that differs between the kinds of one attention
head: which spec it applies to, how the head is mapped (templates, lowered graph), its
inputs, its golden model, its float reference and what the build summary says about it
(the cycle model included). ``api.prepare``, ``api.Design`` and the build summary ask the
kind of the spec (:func:`kind_of`) and hold no kind-specific branches.

Kinds, in the order :func:`kind_of` tries them:

* :class:`SplitHead`  ``attention.split: P`` (``ir.split``, ``mappers.split``)
* :class:`DecodeHead` ``attention.decode: S`` (``ir.decode``, ``mappers.decode``)
* :class:`MaskedHead` ``attention.kind: window | causal``, the blocked triangle and the
  causal window included (``ir.window``, ``mappers.window``)
* :class:`FullHead`   ``kind: full``, variant online (lanes) or naive (``mappers.sdpa``)

A new kind is one subclass here and one entry in :data:`KINDS`.
"""
from __future__ import annotations

import numpy as np

from .ir.graph import interpret
from .ir.lower import lower_attention
from .ir.numerics import attention_float, dequantize, quantize
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


def float_qkv(design) -> list:
    """The design's Q, K, V dequantised (the float reference's inputs)."""
    nm = design.numerics
    return [dequantize(design.inputs[n], fmt.frac)
            for n, fmt in (("q", nm.q), ("k", nm.k), ("v", nm.v))]


class HeadKind:
    """The strategy of one attention kind (see the module docstring). Subclasses set
    ``name`` (the summary's ``kind``) and ``what`` (how errors name it) and override
    :meth:`applies`, :meth:`map` and :meth:`fields`; golden, reference and inputs default
    to the full head's."""
    name = "attention_head"
    what = "attention"
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
        """Bit-exact integer output of the lowered graph."""
        return interpret(design.lowered, design.inputs, "int")[design.lowered.outputs[0]]

    def reference(self, design) -> np.ndarray:
        """Float attention on the (dequantised) same inputs, in output units."""
        fl = dict(zip("qkv", float_qkv(design)))
        return interpret(design.graph, fl, "float")[design.graph.outputs[0]]

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
        from .mappers.sdpa import online_fill, online_head_cycles
        from .mappers.templates import groups
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
               "expected_cycles": online_head_cycles(n, lanes) if online else ideal,
               "expected_text": (f"N + N*N + {online_fill()}: K/V load, one score per cycle, "
                                 "pipeline fill" if online else
                                 "N*N + N: K/V load plus one score per cycle (ideal; "
                                 "the naive variant's row reductions add more)")}
        if lanes > 1:
            out.update(lanes=lanes, model_text=out["model_text"] + f", {lanes} lanes",
                       expected_text=f"N + N*ceil(N/{lanes}) + {online_fill()}: K/V load, "
                                     f"{lanes} scores per cycle, pipeline fill")
        return out


class MaskedHead(HeadKind):
    """A sliding-window or causal head (``ir.window``): ``graph``/``lowered`` are the full
    head's (the IR has no masked attention op); golden and float reference are
    ``ir.window``'s. Causal rows run as the blocked triangle when lanes allow it."""
    name = "masked_head"     # the summary says f"{kind}_head"

    def applies(self, att) -> bool:
        return att.kind in ("window", "causal")

    def describe(self, att) -> str:
        return f"{att.kind} attention"

    def map(self, spec, nm, graph, depths):
        from .mappers.window import map_window_head
        att = spec.model.attention
        self.online_only(spec)
        return graph, _mapped(spec, map_window_head, nm, att.window, depths, spec.name,
                              kind=att.kind, lanes=att.lanes or 1)

    def golden(self, design):
        from .ir.window import window_golden
        att = design.spec.model.attention
        return window_golden(design.numerics, design.inputs["q"], design.inputs["k"],
                             design.inputs["v"], att.window, att.kind)

    def reference(self, design):
        from .ir.window import window_float
        att = design.spec.model.attention
        return window_float(*float_qkv(design), att.window, att.kind)

    def fields(self, design) -> dict:
        from .ir.window import causal_blocks, lookahead, row_slots
        from .mappers.window import window_fill, window_head_cycles
        nm = design.numerics
        att = design.spec.model.attention
        fill = window_fill()
        n, kind, w = nm.seq_len, att.kind, att.window
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
                "expected_cycles": window_head_cycles(n, w, kind, lanes),
                "expected_text": (
                    f"sum over the {len(blocks)} row blocks of rows * ceil(block end/"
                    f"{lanes}) + {fill}: the blocked triangle (blocks of "
                    f"{blocks[0][0]} rows), {lanes} slot(s) per cycle" if blocks else
                    f"{'w' + chr(39) + ' + ' if ahead else ''}"
                    + (f"N*W + {fill}: one slot per cycle" if lanes == 1
                       else f"N*ceil(W/{lanes}) + {fill}: {lanes} slots per cycle"))}


class SplitHead(HeadKind):
    """A split-context head (``attention.split: P``, ``ir.split``): P online-softmax
    engines over K/V slices and a combine tree; the golden model is ``ir.split``'s, the
    float reference plain attention."""
    name = "split_head"
    what = "split-context attention"

    def applies(self, att) -> bool:
        return att.split is not None

    def goal_refusal(self, att):
        return f"split {att.split}", "remove it"

    def map(self, spec, nm, graph, depths):
        from .mappers.split import map_split_head
        self.online_only(spec)
        hw = _mapped(spec, map_split_head, nm, spec.model.attention.split, depths, spec.name)
        return lower_attention(graph, "online"), hw

    def golden(self, design):
        from .ir.split import split_golden
        return split_golden(design.numerics, design.inputs["q"], design.inputs["k"],
                            design.inputs["v"], design.spec.model.attention.split)

    def fields(self, design) -> dict:
        from .ir.split import leaf_depth
        from .mappers.split import split_fill
        nm = design.numerics
        n, p = nm.seq_len, design.spec.model.attention.split
        longest = -(-n // p)
        exact = n % p == 0 and p & (p - 1) == 0      # equal slices, every leaf equally deep
        fill = split_fill(p)
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
    holds only the S new tokens' queries (the last S rows of the random Q)."""
    name = "decode_head"
    what = "decode"

    def applies(self, att) -> bool:
        return att.decode is not None

    def map(self, spec, nm, graph, depths):
        from .mappers.decode import map_decode_head
        self.online_only(spec)
        return graph, _mapped(spec, map_decode_head, nm, spec.model.attention.decode,
                              depths, spec.name)

    def inputs(self, spec, nm) -> dict:
        inputs = random_inputs(spec)
        inputs["q"] = inputs["q"][nm.seq_len - spec.model.attention.decode:]
        return inputs

    def golden(self, design):
        from .ir.decode import decode_golden
        return decode_golden(design.numerics, design.inputs["q"], design.inputs["k"],
                             design.inputs["v"], design.spec.model.attention.decode)

    def reference(self, design):
        nm, steps = design.numerics, design.spec.model.attention.decode
        n, c = nm.seq_len, nm.seq_len - steps   # step t's query sees keys 0 .. c + t
        keep = np.arange(n)[None, :] <= (c + np.arange(steps))[:, None]
        return attention_float(*float_qkv(design), keep)

    def fields(self, design) -> dict:
        from .mappers.decode import decode_fill
        nm = design.numerics
        n, steps = nm.seq_len, design.spec.model.attention.decode
        c = n - steps
        fill = decode_fill()
        return {"kind": self.name, "variant": "online", "seq_len": n,
                "head_dim": nm.head_dim, "decode": steps,
                "model_text": f"one causal head in decode mode, d = {nm.head_dim}: a "
                              f"{c}-token prefill into the KV cache, then {steps} generated "
                              f"tokens (context {c + 1}..{n})",
                "expected_cycles": c + sum(c + t + 1 for t in range(steps)) + fill,
                "expected_text": f"C + sum over steps of (C + t + 1) + {fill}: one "
                                 f"score per cycle, C + t + 1 per generated token"}


#: every head kind, in the order :func:`kind_of` tries them (split and decode are options
#: on top of ``attention.kind``, so they come first)
KINDS = (SplitHead(), DecodeHead(), MaskedHead(), FullHead())


def kind_of(att) -> HeadKind:
    """The strategy for a spec's ``model.attention``."""
    return next(k for k in KINDS if k.applies(att))

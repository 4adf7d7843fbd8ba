"""The public Python API: spec -> design -> simulation (-> RTL and testbench in build)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ir.graph import Graph, interpret
from .ir.lower import attention_head_graph, lower_attention, numerics_from_spec
from .ir.numerics import AttentionNumerics, dequantize, quantize
from .ir.spec import ScheduleSpec, Spec, SpecError, load_spec
from .mappers.hwgraph import HwGraph
from .mappers.sdpa import MappingError, map_attention_head
from .sim import SimResult, schedule_from_spec, simulate


@dataclass
class Design:
    spec: Spec
    numerics: AttentionNumerics
    graph: Graph          # the model as written (sdpa)
    lowered: Graph        # after attention lowering
    hw: HwGraph
    inputs: dict          # tensor name -> stored integers (N x d)

    def golden(self) -> np.ndarray:
        """Bit-exact integer output of the lowered graph."""
        return interpret(self.lowered, self.inputs, "int")[self.lowered.outputs[0]]

    def reference(self) -> np.ndarray:
        """Float attention on the (dequantised) same inputs, in output units."""
        nm = self.numerics
        fl = {n: dequantize(self.inputs[n], fmt.frac)
              for n, fmt in (("q", nm.q), ("k", nm.k), ("v", nm.v))}
        return interpret(self.graph, fl, "float")[self.graph.outputs[0]]

    def accuracy(self) -> dict:
        got = dequantize(self.golden(), self.numerics.out.frac)
        ref = self.reference()
        cos = float((got * ref).sum() / (np.linalg.norm(got) * np.linalg.norm(ref) or 1.0))
        return {"max_abs_error": float(np.abs(got - ref).max()), "cosine": cos,
                "out_lsb": self.numerics.out.lsb}

    def stream_inputs(self) -> dict:
        """The graph input channels' token values."""
        return {name: {"x": self.inputs[name]} for name in self.hw.inputs}

    def simulate(self, schedule: ScheduleSpec | None = None, order=None,
                 engine: str = "auto") -> SimResult:
        sched = schedule_from_spec(schedule or self.spec.schedule, self.hw)
        return simulate(self.hw, self.stream_inputs(), sched, order, engine)


@dataclass
class WindowDesign(Design):
    """One sliding-window or causal attention head (``attention.kind: window | causal``,
    ``ir.window``): ``graph``/``lowered`` are the full head's (the IR has no masked
    attention op); the golden model and the float reference are ``ir.window``'s."""
    window: int | None = 1
    attn_kind: str = "window"

    def golden(self) -> np.ndarray:
        from .ir.window import window_golden
        return window_golden(self.numerics, self.inputs["q"], self.inputs["k"],
                             self.inputs["v"], self.window, self.attn_kind)

    def reference(self) -> np.ndarray:
        from .ir.window import window_float
        nm = self.numerics
        fl = [dequantize(self.inputs[n], fmt.frac)
              for n, fmt in (("q", nm.q), ("k", nm.k), ("v", nm.v))]
        return window_float(*fl, self.window, self.attn_kind)


@dataclass
class SplitDesign(Design):
    """One split-context head (``attention.split: P``, ``ir.split``): P online-softmax
    engines over K/V slices and a combine tree; the golden model is ``ir.split``'s, the
    float reference plain attention."""
    split: int = 2

    def golden(self) -> np.ndarray:
        from .ir.split import split_golden
        return split_golden(self.numerics, self.inputs["q"], self.inputs["k"],
                            self.inputs["v"], self.split)


@dataclass
class DecodeDesign(Design):
    """Decode mode of one causal head (``attention.decode: S``, ``ir.decode``): the KV
    cache holds all N positions' K/V rows (prefill, then one per step); ``inputs["q"]``
    holds only the S new tokens' queries (the last S rows of the random Q)."""
    steps: int = 1

    def golden(self) -> np.ndarray:
        from .ir.decode import decode_golden
        return decode_golden(self.numerics, self.inputs["q"], self.inputs["k"],
                             self.inputs["v"], self.steps)

    def reference(self) -> np.ndarray:
        import math
        nm = self.numerics
        q, k, v = (dequantize(self.inputs[n], f.frac)
                   for n, f in (("q", nm.q), ("k", nm.k), ("v", nm.v)))
        n, c = nm.seq_len, nm.seq_len - self.steps
        s = q @ k.T / math.sqrt(nm.head_dim)
        s = np.where(np.arange(n)[None, :] <= (c + np.arange(self.steps))[:, None], s, -np.inf)
        p = np.exp(s - s.max(axis=1, keepdims=True))
        return (p / p.sum(axis=1, keepdims=True)) @ v


def random_inputs(spec: Spec) -> dict:
    if spec.inputs.file:   # user vectors instead (inputs.file / --inputs)
        from .ir.user_inputs import load_user_inputs
        return load_user_inputs(spec)
    m, f = spec.model, spec.formats
    rng = np.random.default_rng(spec.inputs.seed)
    shape = (m.seq_len, m.head_dim)
    return {name: quantize(rng.uniform(-spec.inputs.range, spec.inputs.range, shape), fmt)
            for name, fmt in (("q", f.q), ("k", f.k), ("v", f.v))}


@dataclass
class EncoderDesign:
    """A whole encoder (``model.type: encoder``): the per-layer integer plans (formats,
    numerics, quantized weights), the folding, the HwGraph and the input X."""
    spec: Spec
    plans: list           # ir.encoder_golden.LayerPlan per layer
    folding: object       # mappers.folding.FoldPlan
    hw: HwGraph
    x: np.ndarray         # (N, d_model) stored ints of formats.act
    final: object = None  # ir.encoder_golden.QNorm after the last layer (final_norm), or None

    @property
    def numerics(self) -> AttentionNumerics:
        """The attention numerics every head of every layer shares."""
        return self.hw.numerics

    def golden(self, traces: list | None = None) -> np.ndarray:
        """Bit-exact integer output of the stacked layers."""
        from .ir.encoder_golden import encoder_golden
        return encoder_golden(self.plans, self.x, traces, self.final)

    def accuracy(self) -> dict:
        """The integer design against the float model, after the last layer (the
        figures) and after every layer (``layers``)."""
        from .ir.encoder_golden import encoder_accuracy
        per = encoder_accuracy(self.plans, self.x, self.final)
        return {**{k: per[-1][k] for k in ("max_abs_error", "cosine", "out_lsb")},
                "layers": per}

    def stream_inputs(self) -> dict:
        return {"x": {"x": self.x}}

    def simulate(self, schedule: ScheduleSpec | None = None, order=None,
                 engine: str = "auto") -> SimResult:
        sched = schedule_from_spec(schedule or self.spec.schedule, self.hw)
        return simulate(self.hw, self.stream_inputs(), sched, order, engine)


def prepare_encoder(spec: Spec, multiplier_budget: int | None = None) -> EncoderDesign:
    """Encoder spec -> per-layer plans, folding (automatic where the spec leaves it open;
    ``multiplier_budget``: a device's, used when the spec sets none), HwGraph, input."""
    from .ir.encoder_golden import encoder_plans, final_norm_plan, random_input
    from .ir.weights import load_weights
    from .mappers.encoder import map_encoder
    from .mappers.folding import FoldingError, plan_folding
    from .ir.encoder_golden import LAYER_KINDS
    m = spec.model
    if m.attention.kind not in LAYER_KINDS:
        raise SpecError(spec.source, "model.attention.kind",
                        f"{m.attention.kind!r}: encoder/decoder layers are built with kind "
                        f"{' or '.join(LAYER_KINDS)} only so far")
    if m.attention.variant != "online":
        raise SpecError(spec.source, "model.attention.variant",
                        f"{m.attention.variant!r}: encoder/decoder layers are built with "
                        "variant online only; set variant: online")
    weights = load_weights(spec)
    plans = encoder_plans(spec, weights)
    final = final_norm_plan(spec, weights)
    for fld, msg in plans[0].attn.check():
        raise SpecError(spec.source, fld, msg)
    try:
        fold = plan_folding(spec, multiplier_budget)
        hw = map_encoder(plans, fold.foldings, dict(spec.hardware.fifo_depths), spec.name,
                         final=final, lanes=fold.lanes)
    except (FoldingError, MappingError) as e:
        raise SpecError(spec.source, e.field, e.message) from None
    design = EncoderDesign(spec, plans, fold, hw, random_input(spec), final)
    if fold.cycles_source == "lower bound":
        # a window stack with Q/K/V folded differently: the model is a lower bound only
        # (mappers.folding.window_stack_cycles); count on the simulator, no stalls
        fold.cycles = design.simulate(ScheduleSpec(), engine="fast").total_cycles
        fold.cycles_source = "simulator"
        target = spec.hardware.target_cycles
        if target is not None and fold.cycles > target:
            raise SpecError(spec.source, "hardware.target_cycles",
                            f"{target} cycles per sequence are not met: the chosen folding "
                            f"takes {fold.cycles} cycles on the simulator (Q/K/V folded "
                            f"differently in a window stack); fold attn_q/k/v alike or "
                            f"raise target_cycles")
    return design


def prepare(spec: Spec | str, multiplier_budget: int | None = None) -> Design | EncoderDesign:
    """Spec (object or YAML path) -> IR, lowered IR, HwGraph and random inputs.
    Raises SpecError (one line, naming the field) for anything the spec asks that can't be built."""
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    if spec.model.type == "encoder":
        return prepare_encoder(spec, multiplier_budget)
    nm = numerics_from_spec(spec)
    for fld, msg in nm.check():
        raise SpecError(spec.source, fld, msg)
    graph = attention_head_graph(nm, spec.name)
    variant = spec.model.attention.variant
    att = spec.model.attention
    depths = dict(spec.hardware.fifo_depths)

    def online_only(what: str, mapper, *args, **kw):
        """Map a masked/split/decode head (online arithmetic only); MappingError -> one
        line on the spec field it names."""
        if variant != "online":
            raise SpecError(spec.source, "model.attention.variant",
                            f"{variant!r}: {what} is built with the online variant only; "
                            "set variant: online")
        try:
            return mapper(nm, *args, depths, spec.name, **kw)
        except MappingError as e:
            raise SpecError(spec.source, e.field, e.message) from None

    goal = next((k for k in ("target_cycles", "multiplier_budget")
                 if getattr(spec.hardware, k) is not None), None)
    if goal and (att.kind != "full" or att.split is not None):
        what = f"split {att.split}" if att.split is not None else f"kind {att.kind}"
        fix = ("remove it" if att.split is not None else
               "set model.attention.lanes instead and remove it")
        raise SpecError(spec.source, f"hardware.{goal}",
                        f"the mapper chooses lanes only for a full online head, not for "
                        f"{what}; {fix}")
    if att.split is not None:
        from .mappers.split import map_split_head
        hw = online_only("split-context attention", map_split_head, att.split)
        return SplitDesign(spec, nm, graph, lower_attention(graph, "online"), hw,
                           random_inputs(spec), split=att.split)
    if att.decode is not None:
        from .mappers.decode import map_decode_head
        hw = online_only("decode", map_decode_head, att.decode)
        inputs = random_inputs(spec)
        inputs["q"] = inputs["q"][nm.seq_len - att.decode:]
        return DecodeDesign(spec, nm, graph, graph, hw, inputs, steps=att.decode)
    if att.kind in ("window", "causal"):
        from .mappers.window import map_window_head
        hw = online_only(f"{att.kind} attention", map_window_head, att.window, kind=att.kind,
                         lanes=att.lanes or 1)
        return WindowDesign(spec, nm, graph, graph, hw, random_inputs(spec), window=att.window,
                            attn_kind=att.kind)
    lowered = lower_attention(graph, variant)
    try:
        hw = map_attention_head(lowered, variant, depths, spec.name,
                                lanes=head_lanes(spec, lowered))
    except MappingError as e:
        raise SpecError(spec.source, e.field, e.message) from None
    return Design(spec, nm, graph, lowered, hw, random_inputs(spec))


def head_lanes(spec: Spec, lowered) -> int:
    """A full head's lanes: the spec's, else chosen for ``hardware.target_cycles`` or
    ``multiplier_budget`` (``mappers.sdpa.choose_lanes``, multipliers counted as the
    report counts them), else 1."""
    from .build import node_costs
    from .mappers.sdpa import choose_lanes
    att, h = spec.model.attention, spec.hardware
    goal = ("target_cycles" if h.target_cycles is not None else
            "multiplier_budget" if h.multiplier_budget is not None else None)
    if goal is None:
        return att.lanes or 1
    if h.target_cycles is not None and h.multiplier_budget is not None:
        raise MappingError("hardware.multiplier_budget", "a head's lanes follow one goal: "
                           "set target_cycles or multiplier_budget, not both")
    if att.lanes is not None:
        raise MappingError(f"hardware.{goal}", f"model.attention.lanes is given "
                           f"({att.lanes}); remove one of the two")
    if att.variant != "online":
        raise MappingError(f"hardware.{goal}", "chooses lanes, which only the online "
                           "variant has; set model.attention.variant: online")
    n = spec.model.seq_len

    def multipliers(lanes):
        hw = map_attention_head(lowered, "online", name=spec.name, lanes=lanes)
        return sum(c["multipliers"] for c in node_costs(hw).values())
    return choose_lanes(n, multipliers, h.target_cycles, h.multiplier_budget)


def prepare_for(spec: Spec | str, target=None) -> Design | EncoderDesign:
    """:func:`prepare` for a device (None, a bundled device name or a device file).

    An encoder whose folding is (partly) automatic and whose spec sets no
    ``hardware.multiplier_budget`` is folded to fit the device: the largest multiplier
    budget whose design passes the resource estimate's fit check (every resource, not
    only DSPs), found by bisection; the fastest folding within it is built. When even the
    most folded design does not fit, the error names what overflows."""
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    if target is None:
        return prepare(spec)
    from .targets import estimate, fit, load_device
    device = load_device(target)
    design = prepare(spec)
    if (not isinstance(design, EncoderDesign) or design.folding.mode == "spec"
            or spec.hardware.multiplier_budget is not None):
        return design
    if not fit(estimate(design.hw, device)):
        return design

    def attempt(budget):
        """(design, overflows) within ``budget``; (None, None) when the budget is below
        the most folded design; (None, [...]) when the spec's target_cycles can't be met
        within it (a larger budget might)."""
        try:
            d = prepare(spec, multiplier_budget=budget)
        except SpecError as e:
            if e.field == "hardware.multiplier_budget":
                return None, None
            if e.field == "hardware.target_cycles":
                return None, [e.message]
            raise
        return d, fit(estimate(d.hw, device))

    # budgets below the most folded design's count raise (too few): search upwards
    lo, hi = 0, design.folding.multipliers       # lo: fits or too few; hi: overflows
    best, smallest = None, None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        d, over = attempt(mid)
        if over is None or (d is not None and not over):
            lo, best = mid, d or best
        elif d is None:                    # target_cycles needs more multipliers
            lo, smallest = mid, over
        else:
            hi, smallest = mid, over
    if best is None:
        what = ("meets hardware.target_cycles and " if spec.hardware.target_cycles else "")
        raise SpecError(spec.source, "--target",
                        f"no folding of this encoder {what}fits {device.name}; the last "
                        f"design tried: {'; '.join(str(o) for o in smallest or [])}")
    return best


def resolved_spec(design) -> Spec:
    """The design's spec with every linear's folding written out
    (``hardware.parallelism.layers_<i>_<op>``), so it rebuilds the same design whatever
    chose the folding (a --target budget, target_cycles)."""
    import dataclasses
    from .ir.spec import Folding
    if isinstance(design, EncoderDesign) and design.folding.lanes_auto:
        att = dataclasses.replace(design.spec.model.attention, lanes=design.folding.lanes)
        design = dataclasses.replace(design, spec=dataclasses.replace(
            design.spec, model=dataclasses.replace(design.spec.model, attention=att)))
    if not isinstance(design, EncoderDesign):
        lanes = design.hw.instances["qk"].param("lanes") if "qk" in design.hw.instances else None
        if lanes is None or design.spec.model.attention.lanes is not None:
            return design.spec
        # a goal chose the lanes: write them out instead of the goal
        att = dataclasses.replace(design.spec.model.attention, lanes=lanes)
        hw = dataclasses.replace(design.spec.hardware, target_cycles=None,
                                 multiplier_budget=None)
        return dataclasses.replace(design.spec, hardware=hw, model=dataclasses.replace(
            design.spec.model, attention=att))
    par = dict(design.spec.hardware.parallelism)
    for i, fl in enumerate(design.folding.foldings):
        for op, (pe, simd) in fl.items():
            par[f"layers_{i}_{op}"] = Folding(pe, simd)
    hw = dataclasses.replace(design.spec.hardware, parallelism=tuple(sorted(par.items())))
    return dataclasses.replace(design.spec, hardware=hw)

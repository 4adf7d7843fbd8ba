"""The public Python API: spec -> design -> simulation (-> RTL and testbench in build)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .ir.graph import Graph
from .ir.lower import attention_head_graph, numerics_from_spec
from .ir.numerics import AttentionNumerics, dequantize
from .ir.spec import ScheduleSpec, Spec, SpecError, load_spec
from .mappers.hwgraph import HwGraph
from .mappers.sdpa import MappingError, map_attention_head
from .kinds import HeadKind, kind_of, random_inputs  # noqa: F401  (random_inputs: API)
from .sim import SimResult, schedule_from_spec, simulate


@dataclass
class Design:
    """One design of any kind, a head or a stack of layers: what differs between kinds
    (mapping, inputs, the summary's cycle model, a stack's per-layer accuracy) is its
    ``kind``'s (``attnflow.kinds``). The golden model is ``lowered`` interpreted, the
    float reference ``graph`` interpreted in floats, for every kind."""
    spec: Spec
    numerics: AttentionNumerics   # the attention numerics (a stack's heads share one)
    graph: Graph          # the model's IR as written (``sdpa``; a stack's ``mha`` layers)
    lowered: Graph        # after the lowering passes (``ir.lower``, ``ir.stack``)
    hw: HwGraph
    inputs: dict          # graph input name -> stored integers (head: q, k, v; stack: x)
    kind: HeadKind = None
    folding: object = None  # a stack's mappers.folding.FoldPlan
    plans: list = None      # a stack's layers as the mapper read them from the IR
    final: object = None    # a stack's final norm (ir.encoder_golden.QNorm), or None
    #: values computed once per design (a stack's golden layer outputs); not copied by
    #: dataclasses.replace, so a replaced design computes its own
    memo: dict = dataclasses.field(default_factory=dict, init=False, repr=False,
                                   compare=False)

    @property
    def x(self) -> np.ndarray:
        """A stack's input X (N, d_model) of formats.act."""
        return self.inputs["x"]

    def golden(self) -> np.ndarray:
        """Bit-exact integer output of the design."""
        return self.kind.golden(self)

    def reference(self) -> np.ndarray:
        """The float model on the (dequantised) same inputs, in output units."""
        return self.kind.reference(self)

    def accuracy(self) -> dict:
        return self.kind.accuracy(self)

    @property
    def sequences(self) -> int:
        """Sequences the design runs back to back (``hardware.sequences``)."""
        return self.hw.sequences

    def sequence_designs(self) -> list:
        """One design per sequence, in order: this one, then copies whose inputs are drawn
        with seed ``inputs.seed + s`` (sequence s), every other field the same."""
        if self.sequences == 1:
            return [self]
        if "sequence_designs" not in self.memo:
            spec = self.spec
            x_fmt = (self.graph.node("x")["type"].fmt,) if self.kind.stack else ()
            out = [self]
            for s in range(1, self.sequences):
                spec_s = dataclasses.replace(spec, inputs=dataclasses.replace(
                    spec.inputs, seed=spec.inputs.seed + s, file=None))
                out.append(dataclasses.replace(
                    self, inputs=self.kind.inputs(spec_s, self.numerics, *x_fmt)))
            self.memo["sequence_designs"] = out
        return self.memo["sequence_designs"]

    def golden_run(self) -> np.ndarray:
        """The bit-exact output of every sequence, in order (tokens concatenated)."""
        runs = [d.golden() for d in self.sequence_designs()]
        return runs[0] if len(runs) == 1 else np.concatenate(runs)

    def stream_inputs(self):
        """The graph input channels' token values: a dict, or a list of them, one per
        sequence, when the design runs several."""
        runs = [{name: {"x": d.inputs[name]} for name in self.hw.inputs}
                for d in self.sequence_designs()]
        return runs[0] if len(runs) == 1 else runs

    def simulate(self, schedule: ScheduleSpec | None = None, order=None,
                 engine: str = "auto") -> SimResult:
        sched = schedule_from_spec(schedule or self.spec.schedule, self.hw)
        return simulate(self.hw, self.stream_inputs(), sched, order, engine)


def prepare_encoder(spec: Spec, multiplier_budget: int | None = None) -> Design:
    """Encoder spec -> the stack's IR (``ir.stack``: per-layer plans with the quantized
    weights), its lowering, folding (automatic where the spec leaves it open;
    ``multiplier_budget``: a device's, used when the spec sets none), the HwGraph mapped
    from the IR's layers, and the input."""
    from .guards import numerics_errors
    from .ir.stack import lower_stack, match_layers, spec_graph
    from .ir.weights import load_weights
    from .kinds import STACK
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
    with numerics_errors(spec):     # width checks of the datapath: one line on the field
        graph = spec_graph(spec, load_weights(spec))
    for fld, msg in graph.numerics.check():
        raise SpecError(spec.source, fld, msg)
    plans, final = match_layers(graph)      # the mapper maps what the IR holds
    try:
        fold = plan_folding(spec, multiplier_budget, plans[0].attn)
        with numerics_errors(spec):
            hw = map_encoder(plans, fold.foldings, dict(spec.hardware.fifo_depths), spec.name,
                             final=final, lanes=fold.lanes)
    except (FoldingError, MappingError) as e:
        raise SpecError(spec.source, e.field, e.message) from None
    design = Design(spec, graph.numerics, graph, lower_stack(graph), hw,
                    STACK.inputs(spec, graph.numerics, graph.node("x")["type"].fmt), STACK,
                    fold, plans, final)
    if fold.cycles_source == "lower bound":
        # a window stack with Q/K/V folded differently: the model is a lower bound only
        # (mappers.folding.window_stack_cycles); count on the simulator, no stalls
        fold = dataclasses.replace(fold, cycles_source="simulator", cycles=design.simulate(
            ScheduleSpec(), engine="fast").total_cycles)
        design = dataclasses.replace(design, folding=fold)
        target = spec.hardware.target_cycles
        if target is not None and fold.cycles > target:
            raise SpecError(spec.source, "hardware.target_cycles",
                            f"{target} cycles per sequence are not met: the chosen folding "
                            f"takes {fold.cycles} cycles on the simulator (Q/K/V folded "
                            f"differently in a window stack); fold attn_q/k/v alike or "
                            f"raise target_cycles")
    return _sequenced(design)


def _sequenced(design: Design) -> Design:
    """The design running ``hardware.sequences`` sequences back to back (its HwGraph's
    contracts say so, its residual skips deepened: ``mappers.sequences``)."""
    from .mappers.sequences import with_sequences
    n, stream = design.spec.hardware.sequences, design.spec.hardware.stream
    if n == 1 and not stream:
        return design
    return dataclasses.replace(design, hw=with_sequences(design.hw, n, stream))


def prepare(spec: Spec | str, multiplier_budget: int | None = None) -> Design:
    """Spec (object or YAML path) -> IR, lowered IR, HwGraph and random inputs.
    Raises SpecError (one line, naming the field) for anything the spec asks that can't be built."""
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    if spec.model.type == "encoder":
        return prepare_encoder(spec, multiplier_budget)
    nm = numerics_from_spec(spec)
    for fld, msg in nm.check():
        raise SpecError(spec.source, fld, msg)
    kind = kind_of(spec.model.attention)
    goal = next((k for k in ("target_cycles", "multiplier_budget")
                 if getattr(spec.hardware, k) is not None), None)
    kind.check(spec, goal)
    graph = attention_head_graph(nm, spec.name, spec.model.attention)
    lowered, hw = kind.map(spec, nm, graph, dict(spec.hardware.fifo_depths))
    return _sequenced(Design(spec, nm, graph, lowered, hw, kind.inputs(spec, nm), kind))


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
    def multipliers(lanes):
        hw = map_attention_head(lowered, "online", name=spec.name, lanes=lanes)
        return sum(c["multipliers"] for c in node_costs(hw).values())
    return choose_lanes(lowered.numerics, multipliers, h.target_cycles, h.multiplier_budget)


def prepare_for(spec: Spec | str, target=None) -> Design:
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
    if (not design.kind.stack or design.folding.mode == "spec"
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
    from .ir.spec import Folding
    if design.kind.stack and design.folding.lanes_auto:
        att = dataclasses.replace(design.spec.model.attention, lanes=design.folding.lanes)
        design = dataclasses.replace(design, spec=dataclasses.replace(
            design.spec, model=dataclasses.replace(design.spec.model, attention=att)))
    if not design.kind.stack:
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

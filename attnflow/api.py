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


def random_inputs(spec: Spec) -> dict:
    m, f = spec.model, spec.formats
    rng = np.random.default_rng(spec.inputs.seed)
    shape = (m.seq_len, m.head_dim)
    return {name: quantize(rng.uniform(-spec.inputs.range, spec.inputs.range, shape), fmt)
            for name, fmt in (("q", f.q), ("k", f.k), ("v", f.v))}


def prepare(spec: Spec | str) -> Design:
    """Spec (object or YAML path) -> IR, lowered IR, HwGraph and random inputs.
    Raises SpecError (one line, naming the field) for anything the spec asks that can't be built."""
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    if spec.model.type != "attention_head":
        raise SpecError(spec.source, "model.type",
                        f"{spec.model.type!r} specs load and validate, but only "
                        "attention_head can be built yet (whole-encoder lowering and "
                        "mapping are not implemented)")
    nm = numerics_from_spec(spec)
    for fld, msg in nm.check():
        raise SpecError(spec.source, fld, msg)
    graph = attention_head_graph(nm, spec.name)
    variant = spec.model.attention.variant
    lowered = lower_attention(graph, variant)
    try:
        hw = map_attention_head(lowered, variant, dict(spec.hardware.fifo_depths), spec.name)
    except MappingError as e:
        raise SpecError(spec.source, e.field, e.message) from None
    return Design(spec, nm, graph, lowered, hw, random_inputs(spec))

"""Amaranth components of the row templates (``mappers.rowops``).

Every template fires once per row (the sequencer from its contract: one phase, every
port used on every firing) and computes the whole row combinationally in the firing
cycle, except a folded ``activation`` / ``residual_add`` (``lanes`` < D), which takes
D / lanes firings per row (:func:`lane_rows`); its latency is carried by the output channel's register line, as for every
template. Numerics and constants come from the instance params (``NormParams``,
``ActivationParams``, ``ResidualParams``, ``ForkParams``); the arithmetic is
``hdl.norm_hw``'s, which is bit-exact with ``ir.numerics_norm``.
"""
from __future__ import annotations

from amaranth.hdl import Signal, signed

from ..mappers.rowops import ForkParams, ResidualParams
from .datapath import lane_rows, rescale_hw, saturate_hw
from .templates import Template


class ResidualAdd(Template):
    """``residual_add``: y = saturate(ra(a) + rb(b), out) per element."""

    def __init__(self, inst, nm, ports):
        self.params = ResidualParams.of(inst)
        super().__init__(inst, nm, ports)

    def datapath(self, m, seq):
        num = self.params.numerics

        def add(chunks):
            ys = []
            for i, (a, b) in enumerate(zip(*chunks)):
                ra = rescale_hw(m, num.rescale_a, a, name=f"ra{i}")
                rb = rescale_hw(m, num.rescale_b, b, name=f"rb{i}")
                s = Signal(signed(num.sum_bits), name=f"sum{i}")
                y = Signal(signed(num.out.bits), name=f"y{i}")
                m.d.comb += [s.eq(ra + rb), y.eq(saturate_hw(s, num.out))]
                ys.append(y)
            return ys

        lane_rows(self, m, seq, ("a", "b"), self.params.fires, add)


class Fork(Template):
    """``fork``: the input row on every output (the sequencer fires only when every
    output has a slot)."""

    def __init__(self, inst, nm, ports):
        self.params = ForkParams.of(inst)
        super().__init__(inst, nm, ports)

    def datapath(self, m, seq):
        for o in self.params.outputs:
            m.d.comb += getattr(self, o).payload.eq(self.x.payload)

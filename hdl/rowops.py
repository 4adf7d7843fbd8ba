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

from ..mappers.rowops import ForkParams
from .templates import Template


class Fork(Template):
    """``fork``: the input row on every output (the sequencer fires only when every
    output has a slot)."""

    def __init__(self, inst, nm, ports):
        self.params = ForkParams.of(inst)
        super().__init__(inst, nm, ports)

    def datapath(self, m, seq):
        for o in self.params.outputs:
            m.d.comb += getattr(self, o).payload.eq(self.x.payload)

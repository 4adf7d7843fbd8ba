"""Amaranth components of the encoder-only templates (``mappers.encoder``).

``concat``: H head rows in, one row out; one firing per row (the sequencer from
``mappers.encoder.concat_contract``: one phase, every port on every firing). The output
row is the heads side by side, head 0 first (lowest elements), as
``sim.models_encoder.concat``; computed combinationally in the firing cycle, its latency
(``latency("concat")`` in ``mappers.catalog``, one register) carried by the output channel as for every template.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Signal, signed

from .datapath import elems
from .templates import Template


class Concat(Template):
    """``concat``: y = x0 | x1 | ... | x{ways-1}, element by element (each element cast to
    the y field's width, two's complement, which is what ``Layout.pack`` does with the
    simulator's integers)."""

    def __init__(self, inst, nm, ports):
        self.ways, self.dim = inst.param("ways"), inst.param("D")
        super().__init__(inst, nm, ports)

    def datapath(self, m, seq):
        yf = next(f for f in self.layout("y").fields if f.name == "x")
        if yf.count != self.ways * self.dim:
            raise ValueError(f"{self.inst.name}: y has {yf.count} elements, "
                             f"expected ways * D = {self.ways * self.dim}")
        ys = []
        for h in range(self.ways):
            port = f"x{h}"
            xs = elems(getattr(self, port).payload, self.layout(port), "x")
            if len(xs) != self.dim:
                raise ValueError(f"{self.inst.name}.{port}: {len(xs)} elements, "
                                 f"expected D = {self.dim}")
            for i, x in enumerate(xs):
                y = Signal(signed(yf.bits), name=f"y{h}_{i}")
                m.d.comb += y.eq(x)
                ys.append(y)
        m.d.comb += self.y.payload.eq(Cat(*ys))

"""Amaranth components of the row templates (``mappers.rowops``).

Every template fires once per row (the sequencer from its contract: one phase, every
port used on every firing) and computes the whole row combinationally in the firing
cycle; its latency is carried by the output channel's register line, as for every
template. Numerics and constants come from the instance params (``NormParams``,
``ActivationParams``, ``ResidualParams``, ``ForkParams``); the arithmetic is
``hdl.norm_hw``'s, which is bit-exact with ``ir.numerics_norm``.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Signal, signed

from ..mappers.rowops import ActivationParams, ForkParams, NormParams, ResidualParams
from .norm_hw import gelu_hw, layernorm_row_hw, relu_hw, rescale_hw, rmsnorm_row_hw
from .templates import Template, elems, saturate_hw


class LayerNorm(Template):
    """``layernorm`` and ``rmsnorm``: one row in, one normalized row out; gamma and beta
    are constants of the datapath."""

    def __init__(self, inst, hw):
        self.params = NormParams.of(inst)
        super().__init__(inst, hw)

    def datapath(self, m, seq):
        p = self.params
        xs = elems(self.x.payload, self.layout("x"), "x")
        if p.rms:
            ys = rmsnorm_row_hw(m, p.numerics, xs, list(p.gamma), name="rms")
        else:
            ys = layernorm_row_hw(m, p.numerics, xs, list(p.gamma), list(p.beta), name="ln")
        m.d.comb += self.y.payload.eq(Cat(*ys))


class Activation(Template):
    """``activation``: GELU (ROM or polynomial), ReLU or a rescale on every element."""

    def __init__(self, inst, hw):
        self.params = ActivationParams.of(inst)
        super().__init__(inst, hw)

    def datapath(self, m, seq):
        p = self.params
        xs = elems(self.x.payload, self.layout("x"), "x")
        fn = {"gelu": gelu_hw, "relu": relu_hw, "rescale": rescale_hw}[p.fn]
        ys = [fn(m, p.numerics, x, name=f"{p.fn}{i}") for i, x in enumerate(xs)]
        m.d.comb += self.y.payload.eq(Cat(*ys))


class ResidualAdd(Template):
    """``residual_add``: y = saturate(ra(a) + rb(b), out) per element."""

    def __init__(self, inst, hw):
        self.params = ResidualParams.of(inst)
        super().__init__(inst, hw)

    def datapath(self, m, seq):
        num = self.params.numerics
        as_ = elems(self.a.payload, self.layout("a"), "x")
        bs = elems(self.b.payload, self.layout("b"), "x")
        ys = []
        for i, (a, b) in enumerate(zip(as_, bs)):
            ra = rescale_hw(m, num.rescale_a, a, name=f"ra{i}")
            rb = rescale_hw(m, num.rescale_b, b, name=f"rb{i}")
            s = Signal(signed(num.sum_bits), name=f"sum{i}")
            y = Signal(signed(num.out.bits), name=f"y{i}")
            m.d.comb += [s.eq(ra + rb), y.eq(saturate_hw(s, num.out))]
            ys.append(y)
        m.d.comb += self.y.payload.eq(Cat(*ys))


class Fork(Template):
    """``fork``: the input row on every output (the sequencer fires only when every
    output has a slot)."""

    def __init__(self, inst, hw):
        self.params = ForkParams.of(inst)
        super().__init__(inst, hw)

    def datapath(self, m, seq):
        for o in self.params.outputs:
            m.d.comb += getattr(self, o).payload.eq(self.x.payload)

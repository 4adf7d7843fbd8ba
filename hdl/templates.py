"""Amaranth components of the templates.

Each component's ports are valid/ready streams named after its contract's ports, with
flat payloads laid out as ``mappers.hwgraph.Layout`` says. Fire control comes from
:class:`~attnflow.hdl.sequencer.Sequencer` (the contract); the datapath below computes,
in the firing cycle, the values ``ir.numerics`` defines, with constants and ROM contents
taken from there. The latency of a template is carried by its output channel.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .datapath import elems, exp_hw, recip_hw, requant_hw, saturate_hw
from .sequencer import Sequencer


# ---------------------------------------------------------------- base component

class Template(wiring.Component):
    """A template instance built from its parameters alone: the instance (template,
    contract, params), the attention numerics ``nm`` (``ir.numerics.AttentionNumerics``;
    the encoder templates carry their own in their params) and ``ports``: port -> token
    Layout (``mappers.hwgraph.Layout``). Stream ports follow the contract; a port the
    contract names but ``ports`` lacks is an error. :func:`of_graph` builds one from a
    mapped HwGraph."""

    def __init__(self, inst, nm, ports: dict):
        self.inst, self.nm = inst, nm
        self.contract = c = inst.contract
        missing = [p for p in c.inputs + c.outputs if p not in ports]
        if missing:
            self._MustUse__silence = True     # refused: no "created but never used"
            raise ValueError(f"{inst.name} ({inst.template}): no layout for port(s) "
                             f"{', '.join(missing)}")
        self.ports = dict(ports)
        members = {}
        for p in c.inputs:
            members[p] = In(stream.Signature(self.ports[p].width))
        for p in c.outputs:
            members[p] = Out(stream.Signature(self.ports[p].width))
        super().__init__(members)

    def layout(self, port):
        return self.ports[port]

    def elaborate(self, platform):
        m = Module()
        m.submodules.seq = seq = Sequencer(self.contract)
        for p in self.contract.inputs:
            port = getattr(self, p)
            m.d.comb += [seq.avail[p].eq(port.valid), port.ready.eq(seq.fire & seq.use[p])]
        for p in self.contract.outputs:
            port = getattr(self, p)
            m.d.comb += [seq.avail[p].eq(port.ready), port.valid.eq(seq.fire & seq.use[p])]
        self.datapath(m, seq)
        return m

    def datapath(self, m, seq):
        raise NotImplementedError


def of_graph(inst, hw):
    """The instance's component, its numerics and port layouts read from the mapped
    HwGraph ``hw`` (the channels at its ports)."""
    from ..mappers.catalog import facet
    ports = {p: c.layout for p, c in hw.port_channels(inst.name).items()}
    return facet(inst.template, "component")(inst, hw.numerics, ports)


class RowMax(Template):
    def datapath(self, m, seq):
        x = self.s.payload.as_signed()
        mx = Signal(signed(self.nm.score_bits))
        new = Signal.like(mx)
        m.d.comb += new.eq(Mux(seq.first | (x > mx), x, mx))
        with m.If(seq.fire):
            m.d.sync += mx.eq(new)
        m.d.comb += self.m.payload.eq(new)


class SubExp(Template):
    def datapath(self, m, seq):
        nm = self.nm
        x = self.s.payload.as_signed()
        m_reg = Signal(signed(nm.score_bits))
        with m.If(seq.fire & seq.use["m"]):
            m.d.sync += m_reg.eq(self.m.payload.as_signed())
        m_cur = Mux(seq.first, self.m.payload.as_signed(), m_reg)
        z = Signal(nm.score_bits + 1)
        m.d.comb += z.eq(m_cur - x)
        e = exp_hw(m, nm, z, "exp")
        m.d.comb += [self.e_a.payload.eq(e), self.e_b.payload.eq(e)]


class RowSum(Template):
    def datapath(self, m, seq):
        e = self.e.payload
        l = Signal(self.nm.sum_bits)
        new = Signal.like(l)
        m.d.comb += new.eq(Mux(seq.first, e, l + e))
        with m.If(seq.fire):
            m.d.sync += l.eq(new)
        m.d.comb += self.l.payload.eq(new)


class RecipMul(Template):
    def datapath(self, m, seq):
        nm = self.nm
        r_reg = Signal(nm.recip_width)
        r_new = Signal(nm.recip_width)
        m.d.comb += r_new.eq(recip_hw(nm, self.l.payload))
        with m.If(seq.fire & seq.use["l"]):
            m.d.sync += r_reg.eq(r_new)
        r = Mux(seq.first, r_new, r_reg)
        p = Signal(nm.exp_bits)
        m.d.comb += [p.eq(requant_hw(self.e.payload * r, nm.p_shift)), self.p.payload.eq(p)]


class PVAccum(Template):
    def datapath(self, m, seq):
        nm = self.nm
        p = self.p.payload
        vs = elems(self.vr.payload, self.layout("vr"), "x")
        outs = []
        for i, v in enumerate(vs):
            acc = Signal(signed(nm.acc_bits), name=f"acc{i}")
            new = Signal.like(acc, name=f"acc{i}_new")
            m.d.comb += new.eq(Mux(seq.first, 0, acc) + p * v)
            with m.If(seq.fire):
                m.d.sync += acc.eq(new)
            y = Signal(signed(nm.out.bits), name=f"y{i}")
            m.d.comb += y.eq(saturate_hw(requant_hw(new, nm.out_shift_naive), nm.out))
            outs.append(y)
        m.d.comb += self.o.payload.eq(Cat(*outs))

"""Amaranth components of the split-context templates (``mappers.split``).

``split_rows`` passes every row to the output of the slice it belongs to (the sequencer's
phases select the output); ``qk_slice`` and ``kv_slice`` are ``qk_scores`` and
``kv_replay`` on their slice's keys (the stores sized from the ``keys`` param);
``softmax_slice`` is ``online_softmax_pv`` emitting the partial state (o, l, m); ``combine``
merges two states with ``ir.split.combine``'s arithmetic: one exp of |m_a - m_b|, the
smaller-max side's l and O scaled by it and rounded, then added.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Mux, Signal, signed

from .datapath import elems, exp_hw, requant_hw
from ..templates.online import OnlineSoftmaxPV
from .templates import Template


class SplitRows(Template):
    def datapath(self, m, seq):
        for p in self.contract.outputs:
            m.d.comb += getattr(self, p).payload.eq(self.x.payload)


class SoftmaxSlice(OnlineSoftmaxPV):
    out_port = "st"


class Combine(Template):
    def datapath(self, m, seq):
        nm = self.nm
        pf = nm.prob_frac
        lay = self.layout("a")
        oa, ob = elems(self.a.payload, lay, "o"), elems(self.b.payload, lay, "o")
        la, lb = elems(self.a.payload, lay, "l")[0], elems(self.b.payload, lay, "l")[0]
        ma, mb = elems(self.a.payload, lay, "m")[0], elems(self.b.payload, lay, "m")[0]
        le = Signal(name="b_le_a")
        z = Signal(nm.score_bits + 1)
        m.d.comb += [le.eq(mb <= ma), z.eq(Mux(le, ma - mb, mb - ma))]
        e = exp_hw(m, nm, z, "exp")
        mm = Signal(signed(nm.score_bits))
        ll = Signal(nm.sum_bits)
        m.d.comb += [mm.eq(Mux(le, ma, mb)),
                     ll.eq(Mux(le, la + requant_hw(lb * e, pf), requant_hw(la * e, pf) + lb))]
        outs = []
        for i, (a, b) in enumerate(zip(oa, ob)):
            o = Signal(signed(nm.acc_bits), name=f"o{i}")
            m.d.comb += o.eq(Mux(le, a + requant_hw(b * e, pf), requant_hw(a * e, pf) + b))
            outs.append(o)
        m.d.comb += self.y.payload.eq(Cat(*outs, ll, mm))

"""The naive attention head's templates: ``row_max``, ``sub_exp``, ``row_sum``,
``recip_mul`` and ``pv_accum``, one score (or probability) a firing, N x N firings each.
With ``qk_scores`` and ``kv_replay`` (``templates.online``) they compute softmax(QK^T) V
in three passes over each row: the max, exp(x - m) and its sum, then p = e / l times V.

* ``row_max`` (s -> m): the row's max, emitted on its last score;
* ``sub_exp`` (m, s -> e_a, e_b): e = exp(x - m) (``ir.numerics.exp_neg``), taking m on a
  row's first firing; e goes to the sum and to the row bypass;
* ``row_sum`` (e -> l): the row's sum, emitted on its last element;
* ``recip_mul`` (l, e -> p): p = e * (1 / l), one reciprocal a row (on its first element);
* ``pv_accum`` (p, vr -> o): o = sum_j p_j v_j, rounded to the output format on the row's
  last element.

Facets below in this order: contracts and layouts, behavioural models, Amaranth
components, resource models, then :data:`TEMPLATE_DEFS`.
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Mux, Signal, signed

from ..hdl.datapath import elems, exp_hw, recip_hw, requant_hw, saturate_hw
from ..hdl.templates import Template
from ..ir.numerics import requant, saturate
from ..mappers.catalog import TemplateDef, latency
from ..mappers.contracts import ALWAYS, FIRST, LAST, Contract, Phase
from ..mappers.hwgraph import Field, Layout
from ..targets.estimate import Mult, NodeModel, exp_cost


# ---------------------------------------------------------------- contracts and layouts

def row_max(n: int) -> Contract:
    return Contract("row_max", ("s",), ("m",), (
        Phase("rows", (("i", n), ("j", n)), (("s", ALWAYS), ("m", LAST))),
    ), latency=latency("row_max"))


def sub_exp(n: int) -> Contract:
    """e = exp(x - m): takes the row max once per row, forks e to the sum and the bypass."""
    return Contract("sub_exp", ("m", "s"), ("e_a", "e_b"), (
        Phase("rows", (("i", n), ("j", n)),
              (("m", FIRST), ("s", ALWAYS), ("e_a", ALWAYS), ("e_b", ALWAYS))),
    ), latency=latency("sub_exp"))


def row_sum(n: int) -> Contract:
    return Contract("row_sum", ("e",), ("l",), (
        Phase("rows", (("i", n), ("j", n)), (("e", ALWAYS), ("l", LAST))),
    ), latency=latency("row_sum"))


def recip_mul(n: int) -> Contract:
    """p = e * (1 / l): one reciprocal per row (on its first element), one multiply per e."""
    return Contract("recip_mul", ("l", "e"), ("p",), (
        Phase("rows", (("i", n), ("j", n)), (("l", FIRST), ("e", ALWAYS), ("p", ALWAYS))),
    ), latency=latency("recip_mul"))


def pv_accum(n: int) -> Contract:
    """o = sum_j p_j v_j, rounded to the output format on the row's last element."""
    return Contract("pv_accum", ("p", "vr"), ("o",), (
        Phase("rows", (("i", n), ("j", n)), (("p", ALWAYS), ("vr", ALWAYS), ("o", LAST))),
    ), latency=latency("pv_accum"))


# ---- token layouts (widths from AttentionNumerics)

def max_layout(nm) -> Layout:
    return Layout((Field("m", nm.score_bits, True),))


def prob_layout(nm, name="e") -> Layout:
    return Layout((Field(name, nm.exp_bits, False),))


def sum_layout(nm) -> Layout:
    return Layout((Field("l", nm.sum_bits, False),))


# ---------------------------------------------------------------- behavioural models

def _rows(a, n):
    return a.reshape((n, n) + a.shape[1:])


def row_max_model(inst, nm, ins):
    return {"m": {"m": _rows(ins["s"]["x"], nm.seq_len).max(axis=1)}}


def sub_exp_model(inst, nm, ins):
    e = nm.exp(ins["m"]["m"][:, None] - _rows(ins["s"]["x"], nm.seq_len)).reshape(-1)
    return {"e_a": {"e": e}, "e_b": {"e": e}}


def row_sum_model(inst, nm, ins):
    return {"l": {"l": _rows(ins["e"]["e"], nm.seq_len).sum(axis=1)}}


def recip_mul_model(inst, nm, ins):
    e = _rows(ins["e"]["e"], nm.seq_len)
    p = requant(e * nm.recip(ins["l"]["l"])[:, None], nm.p_shift)
    return {"p": {"p": p.reshape(-1)}}


def pv_accum_model(inst, nm, ins):
    p = _rows(ins["p"]["p"], nm.seq_len)
    v = _rows(ins["vr"]["x"], nm.seq_len)
    acc = np.einsum("ij,ijd->id", p, v)
    return {"o": {"x": saturate(requant(acc, nm.out_shift_naive), nm.out)}}


# ---------------------------------------------------------------- components

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


# ---------------------------------------------------------------- resource models

def row_max_resources(m: NodeModel, inst, hw) -> None:
    nm = hw.numerics
    m.ffs += nm.score_bits
    m.logic.add("cmp", nm.score_bits).add("mux", nm.score_bits)


def sub_exp_resources(m: NodeModel, inst, hw) -> None:
    nm = hw.numerics
    m.ffs += nm.score_bits
    m.logic.add("mux", nm.score_bits).add("add", nm.score_bits + 1)
    exp_cost(m, nm, nm.score_bits + 1)


def row_sum_resources(m: NodeModel, inst, hw) -> None:
    nm = hw.numerics
    m.ffs += nm.sum_bits
    m.logic.add("add", nm.sum_bits).add("mux", nm.sum_bits)


def recip_mul_resources(m: NodeModel, inst, hw) -> None:
    nm = hw.numerics
    m.ffs += nm.recip_width
    m.logic.add("div", nm.recip_bits + 1, 1, nm.sum_bits).add("mux", nm.recip_width)
    m.mults.append(Mult("e*r", nm.exp_bits, False, nm.recip_width, False,
                        post_add=nm.exp_bits + nm.recip_width))
    m.logic.add("add", nm.exp_bits + nm.recip_width - nm.p_shift)


def pv_accum_resources(m: NodeModel, inst, hw) -> None:
    nm, d = hw.numerics, hw.numerics.head_dim
    ab = nm.acc_bits
    m.ffs += d * ab
    m.mults.append(Mult("p*v", nm.exp_bits, False, nm.v.bits, True, d, post_add=2 * ab))
    m.logic.add("add", ab, d).add("mux", ab, d)
    rest = ab - nm.out_shift_naive
    m.logic.add("add", rest, d).add("cmpc", rest, 2 * d).add("mux", nm.out.bits, 2 * d)


TEMPLATE_DEFS = (
    TemplateDef("row_max", 1, row_max, row_max_model, RowMax, row_max_resources),
    TemplateDef("sub_exp", 2, sub_exp, sub_exp_model, SubExp, sub_exp_resources,
                "subtract, log2e multiply, ROM, shift"),
    TemplateDef("row_sum", 1, row_sum, row_sum_model, RowSum, row_sum_resources),
    TemplateDef("recip_mul", 4, recip_mul, recip_mul_model, RecipMul, recip_mul_resources,
                "reciprocal (first score of a row), multiply, round"),
    TemplateDef("pv_accum", 2, pv_accum, pv_accum_model, PVAccum, pv_accum_resources,
                "d multipliers, accumulate, round on the last score"),
)

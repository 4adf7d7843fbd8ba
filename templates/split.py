"""The split-context head's templates (``ir.split``): P engines over contiguous slices
of the keys, their partial states merged by a tree of ``combine``.

* ``qk_slice`` / ``kv_slice`` / ``softmax_slice``: ``qk_scores`` / ``kv_replay`` /
  ``online_softmax_pv`` (``templates.online``) over a slice of n_p keys (load n_p rows,
  then N rows x n_p scores; the stores sized from the ``keys`` param); the softmax emits
  the row's partial state (o, l, m) on its last firing;
* ``combine`` (a, b -> y): one row's two partial states in, the combined state out, with
  ``ir.split.combine``'s arithmetic: one exp of |m_a - m_b|, the smaller-max side's l and
  O scaled by it and rounded, then added.

The K and V rows reach the engines through ``split_rows`` (``templates.wires``), Q
through a ``fork``; ``normalize`` reads the root state's o and l fields. The models are
``ir.split``'s (the golden model's own functions).
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Mux, Signal, signed

from ..hdl.datapath import elems, exp_hw, requant_hw
from ..hdl.templates import Template
from ..ir.numerics import AttentionNumerics
from ..ir.split import combine as combine_states
from ..ir.split import slice_state
from ..mappers.catalog import TemplateDef, latency
from ..mappers.contracts import (ALWAYS, FIRST, GROUP, LAST, LOAD, LOAD_ROW, REPLAY, ROW, ROWS,
                                 SCORES, Contract, Phase)
from ..mappers.hwgraph import Field, Layout
from ..targets.estimate import Mult, NodeModel, exp_cost
from .online import (OneCycleKV, OneCycleQK, OneCycleSoftmax, one_cycle_kv_resources,
                     one_cycle_qk_resources, one_cycle_softmax_resources)


# ---------------------------------------------------------------- contracts and layouts

def qk_slice(n: int, keys: int) -> Contract:
    return Contract("qk_slice", ("k", "q"), ("s",), (
        Phase(LOAD, ((LOAD_ROW, keys),), (("k", ALWAYS),)),
        Phase(SCORES, ((ROW, n), (GROUP, keys)), (("q", FIRST), ("s", ALWAYS))),
    ), latency=latency("qk_slice"))


def kv_slice(n: int, keys: int) -> Contract:
    return Contract("kv_slice", ("v",), ("vr",), (
        Phase(LOAD, ((LOAD_ROW, keys),), (("v", ALWAYS),)),
        Phase(REPLAY, ((ROW, n), (GROUP, keys)), (("vr", ALWAYS),)),
    ), latency=latency("kv_slice"))


def softmax_slice(n: int, keys: int) -> Contract:
    return Contract("softmax_slice", ("s", "vr"), ("st",), (
        Phase(ROWS, ((ROW, n), (GROUP, keys)), (("s", ALWAYS), ("vr", ALWAYS), ("st", LAST))),
    ), latency=latency("softmax_slice"))


def combine_contract(n: int) -> Contract:
    return Contract("combine", ("a", "b"), ("y",), (
        Phase("rows", (("i", n),), (("a", ALWAYS), ("b", ALWAYS), ("y", ALWAYS))),
    ), latency=latency("combine"))


def state_layout(nm: AttentionNumerics) -> Layout:
    """A row's partial state: O (acc_bits x d), l (sum_bits), m (score_bits)."""
    return Layout((Field("o", nm.acc_bits, True, nm.head_dim), Field("l", nm.sum_bits, False),
                   Field("m", nm.score_bits, True)))


# ---------------------------------------------------------------- behavioural models

def qk_slice_model(inst, nm, ins):
    return {"s": {"x": nm.scores(ins["q"]["x"], ins["k"]["x"]).reshape(-1)}}


def kv_slice_model(inst, nm, ins):
    return {"vr": {"x": np.tile(np.asarray(ins["v"]["x"], np.int64), (nm.seq_len, 1))}}


def softmax_slice_model(inst, nm, ins):
    n, keys = nm.seq_len, inst.param("keys")
    x = np.asarray(ins["s"]["x"], np.int64).reshape(n, keys)
    v = np.asarray(ins["vr"]["x"], np.int64).reshape(n, keys, -1)[0]
    m, l, o = slice_state(nm, x, v)
    return {"st": {"o": o, "l": l, "m": m}}


def combine_model(inst, nm, ins):
    a, b = ins["a"], ins["b"]
    m, l, o = combine_states(nm, (a["m"], a["l"], a["o"]), (b["m"], b["l"], b["o"]))
    return {"y": {"o": o, "l": l, "m": m}}


# ---------------------------------------------------------------- components

class SoftmaxSlice(OneCycleSoftmax):
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


# ---------------------------------------------------------------- resource models

def combine_resources(m: NodeModel, inst, hw) -> None:
    """:class:`Combine`: the (m, l, O) merge of two partial states, both sides of the
    ``b <= a`` choice built (each a product by e = 2**-(|m_a - m_b|) and a rounding)."""
    nm, d = hw.numerics, hw.numerics.head_dim
    sb, lb, ab, eb = nm.score_bits, nm.sum_bits, nm.acc_bits, nm.exp_bits
    m.logic.add("cmp", sb).add("add", sb + 1, 2).add("mux", sb + 1)       # |m_a - m_b|
    exp_cost(m, nm, sb + 1)
    m.logic.add("mux", sb)                                                # max(m_a, m_b)
    m.mults.append(Mult("l*e", lb, False, eb, False, 2, post_add=lb + eb))
    m.logic.add("add", lb, 4).add("mux", lb)                              # round, add
    m.mults.append(Mult("o*e", ab, True, eb, False, 2 * d, post_add=ab + eb))
    m.logic.add("add", ab, 4 * d).add("mux", ab, d)


TEMPLATE_DEFS = (
    TemplateDef("qk_slice", 3, qk_slice, qk_slice_model, OneCycleQK, one_cycle_qk_resources,
                "qk_scores over a slice of keys"),
    TemplateDef("kv_slice", 1, kv_slice, kv_slice_model, OneCycleKV, one_cycle_kv_resources,
                "memory read"),
    TemplateDef("softmax_slice", 1, softmax_slice, softmax_slice_model, SoftmaxSlice,
                one_cycle_softmax_resources,
                "online_softmax_pv's step; emits the partial state (o, l, m)"),
    TemplateDef("combine", 2, combine_contract, combine_model, Combine, combine_resources,
                "max, two exps, d + 1 scaled adds of the (m, l, O) combine"),
)

"""The full attention head's templates (online variant): ``qk_scores``, ``kv_replay``,
``online_softmax_pv`` and ``normalize``; with them the attention token layouts and
:func:`groups`, which the naive, window, split and decode families reuse.

* ``qk_scores`` (k, q -> s): loads K (N rows), then for each Q row emits the N scaled
  scores q.k_j, ``lanes`` a firing (one token per key group, :func:`groups`);
* ``kv_replay`` (v -> vr): stores N V rows, then replays them once per Q row, ``lanes``
  rows a token;
* ``online_softmax_pv`` (s, vr -> ol): running max m, sum l and output o over a row's
  scores in key order (``ir.numerics.online_step``), ``lanes`` scores a firing chained;
  emits (o, l) on the row's last firing;
* ``normalize`` (ol -> o): o / l per row, one reciprocal and d multipliers.

Each template's facets sit below in this order: contract (its latency read through
``mappers.catalog.latency`` from :data:`TEMPLATE_DEFS`), behavioural model (token values
in stream order, a dict field -> array per port, from ``ir.numerics``), Amaranth
component (fire control from the contract's :class:`~attnflow.hdl.sequencer.Sequencer`,
the datapath computing in the firing cycle the values ``ir.numerics`` defines; the
latency is carried by the output channel), resource model; :data:`TEMPLATE_DEFS` ties
them together.
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Mux, Signal, signed

from ..hdl.datapath import (elems, exp_hw, lane_store, lanes_of, recip_hw, requant_hw,
                            saturate_hw, tree_sum)
from ..hdl.templates import Template
from ..ir.window import offsets
from ..mappers.catalog import TemplateDef, latency
from ..mappers.contracts import (ALWAYS, FIRST, GROUP, LAST, LOAD, LOAD_ROW, REPLAY, ROW,
                                 ROWS, SCORES, Contract, Phase)
from ..mappers.hwgraph import Field, Layout
from ..targets.estimate import Mem, Mult, NodeModel, exp_cost


# ---------------------------------------------------------------- contracts and layouts

def groups(n: int, lanes: int) -> int:
    """Firings per query row of an attention template with ``lanes`` scores per firing:
    key groups of ``lanes`` keys (group j: keys j*lanes .. j*lanes + lanes - 1); the last
    group's lanes past key n - 1 are padding (score and V row 0, skipped by the softmax)."""
    return -(-n // lanes)


def qk_scores(n: int, outs=("s",), lanes: int = 1) -> Contract:
    """Loads K (n rows), then for each q row emits the n scaled scores q.k_j, ``lanes``
    per cycle (one token of ``lanes`` scores per key group, see :func:`groups`)."""
    return Contract("qk_scores", ("k", "q"), tuple(outs), (
        Phase(LOAD, ((LOAD_ROW, n),), (("k", ALWAYS),)),
        Phase(SCORES, ((ROW, n), (GROUP, groups(n, lanes))),
              (("q", FIRST),) + tuple((o, ALWAYS) for o in outs)),
    ), latency=latency("qk_scores"))


def kv_replay(n: int, lanes: int = 1) -> Contract:
    """Stores n V rows, then replays all n rows once per query row, ``lanes`` rows a token
    (n * groups(n, lanes) tokens)."""
    return Contract("kv_replay", ("v",), ("vr",), (
        Phase(LOAD, ((LOAD_ROW, n),), (("v", ALWAYS),)),
        Phase(REPLAY, ((ROW, n), (GROUP, groups(n, lanes))), (("vr", ALWAYS),)),
    ), latency=latency("kv_replay"))


def online_softmax_pv(n: int, lanes: int = 1) -> Contract:
    """Running max m, sum l and output o over a row of scores, ``lanes`` scores (and V
    rows) a firing, applied in key order; emits (o, l) per row."""
    return Contract("online_softmax_pv", ("s", "vr"), ("ol",), (
        Phase(ROWS, ((ROW, n), (GROUP, groups(n, lanes))),
              (("s", ALWAYS), ("vr", ALWAYS), ("ol", LAST))),
    ), latency=latency("online_softmax_pv"))


def normalize(n: int) -> Contract:
    """o / l per row: one reciprocal per row, d multipliers."""
    return Contract("normalize", ("ol",), ("o",), (
        Phase("rows", (("i", n),), (("ol", ALWAYS), ("o", ALWAYS))),
    ), latency=latency("normalize"))


# ---- token layouts of the attention datapath (widths from AttentionNumerics)

def vec_layout(fmt, d, name="x") -> Layout:
    return Layout((Field(name, fmt.bits, True, d),))


def score_layout(nm, lanes: int = 1) -> Layout:
    return Layout((Field("x", nm.score_bits, True, lanes),))


def ol_layout(nm) -> Layout:
    return Layout((Field("o", nm.acc_bits, True, nm.head_dim), Field("l", nm.sum_bits, False)))


# ---------------------------------------------------------------- behavioural models

def _lane_groups(a, lanes: int):
    """(rows, keys, ...) -> (rows * groups, lanes, ...): each row's keys (or slots) in
    groups of ``lanes``, the last group padded with zeros."""
    pad = -a.shape[1] % lanes
    a = np.pad(a, ((0, 0), (0, pad)) + ((0, 0),) * (a.ndim - 2))
    return a.reshape((-1, lanes) + a.shape[2:])


def qk_scores_model(inst, nm, ins):
    x = nm.scores(ins["q"]["x"], ins["k"]["x"])
    lanes = inst.param("lanes") or 1
    s = {"x": x.reshape(-1) if lanes == 1 else _lane_groups(x, lanes)}
    return {o: s for o in inst.contract.outputs}


def kv_replay_model(inst, nm, ins):
    v = np.asarray(ins["v"]["x"], np.int64)
    n, lanes = nm.seq_len, inst.param("lanes") or 1
    if lanes == 1:
        return {"vr": {"x": np.tile(v, (n, 1))}}
    g = _lane_groups(np.broadcast_to(v, (n,) + v.shape), lanes)    # (n * groups, lanes, d)
    return {"vr": {"x": g.reshape(len(g), -1)}}


def online_softmax_pv_model(inst, nm, ins):
    n = nm.seq_len
    # lanes: a row's tokens hold its keys in order, then padding (dropped here)
    x = np.asarray(ins["s"]["x"], np.int64).reshape(n, -1)[:, :n]
    v = np.asarray(ins["vr"]["x"], np.int64).reshape(n, -1, nm.head_dim)[:, :n]
    _, l, o = nm.online_rows(x, v)    # one score per row per step, rows in parallel
    return {"ol": {"o": o, "l": l}}


def normalize_model(inst, nm, ins):
    return {"o": {"x": nm.normalize(ins["ol"]["o"], ins["ol"]["l"])}}


# ---------------------------------------------------------------- components

class QKScores(Template):
    """Stores K; for each q row emits the scaled scores q.k_j, ``lanes`` per cycle (padding
    lanes of a row's last key group: 0)."""

    def datapath(self, m, seq):
        nm = self.nm
        n = self.inst.param("keys") or nm.seq_len       # a split-context slice: its keys
        lanes = lanes_of(self.inst)
        kl = self.layout("k")
        rows = lane_store(m, "kmem", kl.width, n, lanes, seq, LOAD, self.k.payload,
                           seq.counter[(SCORES, GROUP)])
        xs = [self.score(m, seq, row) for row in rows]
        for p in self.contract.outputs:
            m.d.comb += getattr(self, p).payload.eq(Cat(*xs))

    def score(self, m, seq, k_row):
        """The scaled score of the current Q row (the live ``q`` payload on a row's first
        firing, then a register) against the K row ``k_row``: one dot product a firing.
        Shared by the window, causal and decode score templates (and by every lane)."""
        nm = self.nm
        if getattr(self, "_q_cur", None) is None:
            q_reg = Signal(self.layout("q").width)
            with m.If(seq.fire & seq.use["q"]):
                m.d.sync += q_reg.eq(self.q.payload)
            q_cur = Signal(len(q_reg))          # named: see templates.linear's x_row
            m.d.comb += q_cur.eq(Mux(seq.first, self.q.payload, q_reg))
            self._q_cur = q_cur
        qs = elems(self._q_cur, self.layout("q"), "x")
        ks = elems(k_row, self.layout("k"), "x")
        dot = Signal(signed(nm.dot_bits))
        m.d.comb += dot.eq(tree_sum(a * b for a, b in zip(qs, ks)))
        x = Signal(signed(nm.score_bits))
        m.d.comb += x.eq(requant_hw(dot * nm.scale_mult, nm.scale_shift))
        return x


class KVReplay(Template):
    """Stores V rows, replays them once per query row, ``lanes`` rows a token."""

    def datapath(self, m, seq):
        vl = self.layout("v")
        rows = self.inst.param("keys") or self.nm.seq_len   # a split-context slice: its keys
        out = lane_store(m, "vmem", vl.width, rows, lanes_of(self.inst), seq, LOAD,
                          self.v.payload, seq.counter[(REPLAY, GROUP)])
        m.d.comb += self.vr.payload.eq(Cat(*out))


class OnlineSoftmaxPV(Template):
    """Running max, sum and output; one exp (of |x - m|) per score, ``lanes`` scores a
    firing chained in key order (the same arithmetic as one a cycle); emits (o, l) per
    row."""

    def datapath(self, m, seq):
        nm, lanes = self.nm, lanes_of(self.inst)
        xs = elems(self.s.payload, self.layout("s"), "x")
        vs = elems(self.vr.payload, self.layout("vr"), "x")
        if lanes == 1:       # (also the decode and split-slice softmax: their own loops)
            self.online(m, seq, [(xs[0], vs, None)])
            return
        d = nm.head_dim
        g = self.contract.extent(ROWS, GROUP)         # a row's key groups
        rem = nm.seq_len - (g - 1) * lanes           # real keys in a row's last group
        last = seq.counter[(ROWS, GROUP)] == g - 1
        self.online(m, seq, [(x, vs[k * d:(k + 1) * d], None if k < rem else ~last)
                             for k, x in enumerate(xs)])

    #: the output port of the row's state (``softmax_slice``: "st", with m)
    out_port = "ol"

    def online(self, m, seq, steps):
        """The online-softmax steps of one firing, in order: ``steps`` is a list of
        (score x, V row vs, take), ``take`` a 1-bit Value or None (always) saying whether
        the score counts: when it does not (a masked window slot or a padding lane, never
        a row's first), the state passes unchanged. The first step of a row's first firing
        starts the row. The state after the last step is registered, and is the row's
        (o, l) output on the row's last firing."""
        nm = self.nm
        mx = Signal(signed(nm.score_bits))
        l = Signal(nm.sum_bits)
        o = [Signal(signed(nm.acc_bits), name=f"o{i}") for i in range(nm.head_dim)]
        state = (mx, l, o)
        for k, (x, vs, take) in enumerate(steps):
            sfx = "" if k == 0 else f"_{k}"
            state = self._step(m, state, x, vs, seq.first if k == 0 else None, take, sfx)
        m_new, l_new, o_new = state
        with m.If(seq.fire):
            m.d.sync += [mx.eq(m_new), l.eq(l_new)] + [oi.eq(on) for oi, on in zip(o, o_new)]
        fields = [on[:nm.acc_bits] for on in o_new] + [l_new]
        if self.out_port == "st":                          # (o, l, m): a partial state
            fields.append(m_new)
        m.d.comb += getattr(self, self.out_port).payload.eq(Cat(*fields))

    def _step(self, m, state, x, vs, first, take, sfx):
        """One score: ``ir.numerics.online_step`` (``first``: a 1-bit Value, or None for a
        step that never starts a row)."""
        nm = self.nm
        pf, one = nm.prob_frac, nm.one
        mx, l, o = state
        le = Signal(name=f"le{sfx}")
        z = Signal(nm.score_bits + 1, name=f"z{sfx}")
        m.d.comb += [le.eq(x <= mx), z.eq(Mux(le, mx - x, x - mx))]
        e = exp_hw(m, nm, z, f"exp{sfx}")
        m_new = Signal.like(mx, name=f"m_new{sfx}")
        l_new = Signal.like(l, name=f"l_new{sfx}")
        o_new = [Signal.like(oi, name=f"o{i}_new{sfx}") for i, oi in enumerate(o)]
        use = take if first is None or take is None else (first | take)

        def keep(new, old):
            return new if use is None else Mux(use, new, old)

        def start(row_start, update):
            return update if first is None else Mux(first, row_start, update)

        m.d.comb += [
            m_new.eq(keep(Mux(le, mx, x) if first is None else Mux(first | ~le, x, mx), mx)),
            l_new.eq(keep(start(one, Mux(le, l + e, requant_hw(l * e, pf) + one)), l)),
        ]
        for oi, on, v in zip(o, o_new, vs):
            m.d.comb += on.eq(keep(start(v * one, Mux(le, oi + e * v,
                                                      requant_hw(oi * e, pf) + v * one)), oi))
        return m_new, l_new, o_new


class Normalize(Template):
    """o / l: one reciprocal per row and d multipliers, saturated to the output format."""

    def datapath(self, m, seq):
        nm = self.nm
        ol = self.layout("ol")
        os_ = elems(self.ol.payload, ol, "o")
        l = elems(self.ol.payload, ol, "l")[0]
        r = Signal(nm.recip_width)
        m.d.comb += r.eq(recip_hw(nm, l))
        outs = []
        for i, oi in enumerate(os_):
            y = Signal(signed(nm.out.bits), name=f"y{i}")
            m.d.comb += y.eq(saturate_hw(requant_hw(oi * r, nm.out_shift_online), nm.out))
            outs.append(y)
        m.d.comb += self.o.payload.eq(Cat(*outs))


# ---------------------------------------------------------------- resource models
#
# Widths come from hw.numerics; the window (templates.window), split (templates.split) and
# decode (templates.decode) score, V and softmax templates reuse these models: on rings of
# W rows, on slices of n_p keys, on the KV cache.

def _head(inst, hw):
    """(numerics, d, the instance's channels, rows stored, lanes, banks per lane)."""
    nm = hw.numerics
    n = nm.seq_len
    rows = n
    lanes = inst.param("lanes") or 1       # scores a cycle (groups)
    window = inst.template.endswith("_window")
    if window:
        rows = len(offsets(inst.param("window"), n, inst.param("kind", "window")))
    elif inst.template.endswith("_slice"):
        rows = inst.param("keys")
    # full head: one bank of ceil(rows / lanes) rows per lane; a window ring has one read
    # port per lane instead: a copy of the whole ring per lane
    banks = rows if window else -(-rows // lanes)
    return nm, nm.head_dim, hw.port_channels(inst.name), rows, lanes, banks


def qk_resources(m: NodeModel, inst, hw) -> None:
    nm, d, ch, rows, lanes, banks = _head(inst, hw)
    kw = ch["k"].layout.width
    for _ in range(lanes):
        m.mems.append(Mem("K store" if rows == nm.seq_len else "K ring/slice", banks, kw))
    m.ffs += ch["q"].layout.width                               # the current q row
    m.logic.add("mux", ch["q"].layout.width)
    m.mults.append(Mult("q*k", nm.q.bits, True, nm.k.bits, True, d * lanes))
    m.logic.add("add", nm.dot_bits, (d - 1) * lanes)            # dot-product adders
    for _ in range(lanes):
        m.mults.append(Mult("dot*scale", nm.dot_bits, True, nm.scale_mult.bit_length(),
                            False, const=nm.scale_mult, post_add=nm.dot_bits + 17))
    m.logic.add("add", nm.score_bits, lanes)                    # rounding


def kv_resources(m: NodeModel, inst, hw) -> None:
    nm, d, ch, rows, lanes, banks = _head(inst, hw)
    for _ in range(lanes):
        m.mems.append(Mem("V store" if rows == nm.seq_len else "V ring/slice", banks,
                          ch["v"].layout.width))


def softmax_resources(m: NodeModel, inst, hw) -> None:
    nm, d, ch, rows, lanes, banks = _head(inst, hw)
    sb, lb, ab, eb = nm.score_bits, nm.sum_bits, nm.acc_bits, nm.exp_bits
    m.ffs += sb + lb + d * ab                                   # m, l, o
    for _ in range(lanes):          # lanes: the same step chained, once per lane
        m.logic.add("cmp", sb).add("add", sb + 1, 2).add("mux", sb + 1)   # |x - m|
        exp_cost(m, nm, sb + 1)
        m.logic.add("mux", sb)                                  # m_new
        # l*e (used when x > m) and e*v (when x <= m) are never needed in the same cycle
        m.mults.append(Mult("l*e", lb, False, eb, False, post_add=lb + eb,
                            exclusive_with="e*v"))
        m.logic.add("add", lb, 3).add("mux", lb, 2)             # l + e, round, + 1
        m.mults.append(Mult("e*v", eb, False, nm.v.bits, True, d, post_add=ab))
        m.mults.append(Mult("o*e", ab, True, eb, False, d, post_add=ab + eb))
        m.mults.append(Mult("v*one", nm.v.bits, True, nm.prob_frac + 1, False, d,
                            const=nm.one))
        m.logic.add("add", ab, 3 * d).add("mux", ab, 2 * d)     # o + e*v, round, + v


def normalize_resources(m: NodeModel, inst, hw) -> None:
    nm, d = hw.numerics, hw.numerics.head_dim
    m.logic.add("div", nm.recip_bits + 1, 1, nm.sum_bits)       # floor(2**R / l)
    prod = nm.acc_bits + nm.recip_width + 1
    m.mults.append(Mult("o*r", nm.acc_bits, True, nm.recip_width, False, d, post_add=prod))
    rest = prod - nm.out_shift_online
    m.logic.add("add", rest, d).add("cmpc", rest, 2 * d).add("mux", nm.out.bits, 2 * d)


TEMPLATE_DEFS = (
    TemplateDef("qk_scores", 3, qk_scores, qk_scores_model, QKScores, qk_resources,
                "d multipliers, adder tree, scale multiplier"),
    TemplateDef("kv_replay", 1, kv_replay, kv_replay_model, KVReplay, kv_resources,
                "memory read"),
    TemplateDef("online_softmax_pv", 1, online_softmax_pv, online_softmax_pv_model,
                OnlineSoftmaxPV, softmax_resources,
                "state update registered; row result written on the last score"),
    TemplateDef("normalize", 4, normalize, normalize_model, Normalize, normalize_resources,
                "reciprocal, d multipliers, rounding"),
)

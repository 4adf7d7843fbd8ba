"""The full attention head's templates (online variant), pipelined: ``qk_scores``,
``kv_replay``, ``online_softmax_pv`` and ``normalize``; with them the attention token
layouts and :func:`groups`, which the naive, window, split and decode families reuse.

* ``qk_scores`` (k, q -> s): loads K (N rows), then emits the scaled scores q_i.k_j,
  ``lanes`` a firing (one token per key group, :func:`groups`), ``rows`` query rows
  interleaved (for each block of rows, for each key group, for each row);
* ``kv_replay`` (v -> vr): stores N V rows, then replays the key group of every score in
  the same order;
* ``online_softmax_pv`` (s, vr -> ol): running max m, sum l and output o of each query
  row over its scores in key order (``ir.numerics.online_step``), ``lanes`` scores a
  firing; emits (o, l) on the row's last key group;
* ``normalize`` (ol -> o): o / l per row, a pipelined restoring divider and d products.

Every datapath is registered stages (``hdl.pipeline``): a firing reserves its output slot
and its token follows :meth:`~attnflow.hdl.templates.Template.stages` cycles later, the
stage count being the template's latency less the output channel's visibility cycle
(:func:`qk_latency` ...: functions of the numerics and the lanes). K and V live in
memories read through registered ports (block RAM), the exp table in a logic ROM with a
registered read.

The online softmax's state of a query row is updated once per key group by a recurrence
through multipliers, which cannot close in one cycle: :func:`interleave` query rows
(``lanes * step_stages``) run interleaved, and a row's state lives in a small register
file between its updates, which come that many firings apart; the lanes of one firing
are a chain of update units, ``step_stages`` deep each. A last partial block of rows runs
with bubbles in place of its missing rows. Every row's arithmetic is that of
``online_step`` in key order, so the bits equal those of one score a cycle, for every
lanes and rows.

The window family's softmax and the split and decode families still compute in the
firing cycle and build on the one-cycle datapaths kept here (:class:`OneCycleQK`,
:class:`OneCycleKV`, :class:`OneCycleSoftmax`) until they are pipelined the same way;
the window family's score and V templates reuse the pipelined score datapath
(:func:`scaled_scores`).

Each template's facets sit below in this order: stage counts and latencies, contract,
behavioural model, Amaranth component, resource model; :data:`TEMPLATE_DEFS` ties them
together.
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Const, Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory

from ..hdl import pipeline as P
from ..hdl.datapath import (elems, exp_hw, lane_store, lanes_of, recip_hw, requant_hw,
                            saturate_hw, tree_sum)
from ..hdl.templates import Template
from ..ir.numerics import LOG2E_BITS, LOG2E_MULT, exp2_table
from ..ir.window import offsets
from ..mappers.catalog import TemplateDef, latency
from ..mappers.contracts import (ALWAYS, BELOW, BLOCK, FIRST, GROUP, LAST, LOAD, LOAD_ROW,
                                 REPLAY, ROW, ROWS, SCORES, TAIL, Contract, Phase, when)
from ..mappers.hwgraph import Field, Layout
from ..ir.numerics import clog2
from ..targets.estimate import Mem, Mult, NodeModel, exp_cost, saturate_cost
from ..targets.pipeline_cost import (CONSTANT, Span, mul_cost, recip_cost, staged_valid,
                                     tree_cost)


# ---------------------------------------------------------------- stage counts

def score_stages(nm) -> int:
    """(Q row, K row) -> scaled score (:func:`scaled_scores`): d products, the adder
    tree, the scale product, the rounding."""
    return (P.mul_stages(nm.q.bits, nm.k.bits) + P.tree_stages(nm.head_dim)
            + P.mul_stages(nm.dot_bits, nm.scale_mult.bit_length()) + 1)


def qk_stages(nm) -> int:
    """Firing -> score: the K row read from its memory, then :func:`score_stages`."""
    return READ_STAGES + score_stages(nm)


def _exp_stages(nm) -> int:
    """|x - m| -> e: the log2(e) product, its rounding, the ROM read (address and data
    registered), the shift."""
    return P.mul_stages(nm.score_bits + 1, LOG2E_MULT.bit_length()) + 1 + READ_STAGES + 1


def step_stages(nm) -> int:
    """Cycles of one lane's state update: the products l*e and O*e, then the add."""
    return max(P.mul_stages(nm.sum_bits, nm.exp_bits),
               P.mul_stages(nm.acc_bits, nm.exp_bits)) + 1


#: stages of the running max: the row's max read from its register file (registered),
#: the comparisons with the group's prefix maxima, the choices (written back)
MAX_STAGES = 3


def interleave(nm, lanes: int = 1) -> int:
    """Query rows interleaved by the online head: a row's next key group must find the
    state its previous one left after ``lanes`` chained updates (and its running max,
    written back MAX_STAGES cycles after it was read)."""
    return max(lanes * step_stages(nm), MAX_STAGES)


def _max_stages(lanes: int) -> int:
    return P.tree_stages(lanes)


def _update_start(nm, lanes: int) -> int:
    """Stage at which the first lane's update takes the row state."""
    return 1 + _max_stages(lanes) + MAX_STAGES + 2 + _exp_stages(nm)


def softmax_stages(nm, lanes: int = 1) -> int:
    return _update_start(nm, lanes) + lanes * step_stages(nm)


def normalize_stages(nm) -> int:
    """(o, l) -> output row: registered, the reciprocal (one quotient bit a stage), the d
    products, rounding (with the saturation's comparisons beside it), the saturation."""
    return 1 + P.recip_stages(nm.recip_width) + P.mul_stages(nm.acc_bits, nm.recip_width) + 2


# latencies (``mappers.catalog``): the stages and the output channel's visibility cycle
def qk_latency(nm, lanes: int = 1) -> int:
    return qk_stages(nm) + 1


def kv_latency(nm=None, lanes: int = 1) -> int:
    return READ_STAGES + 1


def softmax_latency(nm, lanes: int = 1) -> int:
    return softmax_stages(nm, lanes) + 1


def normalize_latency(nm, lanes: int = 1) -> int:
    return normalize_stages(nm) + 1


# ---------------------------------------------------------------- contracts and layouts

def groups(n: int, lanes: int) -> int:
    """Firings per query row of an attention template with ``lanes`` scores per firing:
    key groups of ``lanes`` keys (group j: keys j*lanes .. j*lanes + lanes - 1); the last
    group's lanes past key n - 1 are padding (score and V row 0, skipped by the softmax)."""
    return -(-n // lanes)


def blocks(n: int, rows: int) -> tuple[int, int]:
    """(full blocks, rows of the last partial block) when a head's query rows are
    interleaved ``rows`` at a time (:func:`online_softmax_pv`)."""
    return divmod(n, rows)


def _interleaved(name, n, lanes, rows, ports, tail_ports=None):
    """The score phases of the full head with ``rows`` query rows interleaved: for each
    block of ``rows`` rows, for each key group j, for each row i of the block (innermost);
    the rows of a last partial block in a phase of their own (``tail_ports``: its ports,
    default ``ports``). ``rows`` = 1: one row after another (loops i, j)."""
    g = groups(n, lanes)
    if rows == 1:
        return (Phase(name, ((ROW, n), (GROUP, g)), ports),)
    full, tail = blocks(n, rows)
    out = ()
    if full:
        out += (Phase(name, ((BLOCK, full), (GROUP, g), (ROW, rows)), ports),)
    if tail:
        out += (Phase(TAIL, ((GROUP, g), (ROW, rows if tail_ports else tail)),
                      tail_ports or ports),)
    return out


def qk_scores(n: int, outs=("s",), lanes: int = 1, rows: int = 1, **lat) -> Contract:
    """Loads K (n rows), then emits the n scaled scores q_i.k_j of each query row,
    ``lanes`` per cycle (one token of ``lanes`` scores per key group, see :func:`groups`),
    ``rows`` query rows interleaved (:func:`_interleaved`): Q row i is taken on its first
    key group. ``lat``: the latency's parameters (``mappers.catalog``)."""
    q = ("q", FIRST) if rows == 1 else ("q", when((FIRST, GROUP)))
    return Contract("qk_scores", ("k", "q"), tuple(outs), (
        Phase(LOAD, ((LOAD_ROW, n),), (("k", ALWAYS),)),
    ) + _interleaved(SCORES, n, lanes, rows, (q,) + tuple((o, ALWAYS) for o in outs)),
        latency=latency("qk_scores", lanes=lanes, **lat))


def kv_replay(n: int, lanes: int = 1, rows: int = 1, **lat) -> Contract:
    """Stores n V rows, then replays the key group of every score of
    :func:`qk_scores` (same order), ``lanes`` rows a token."""
    return Contract("kv_replay", ("v",), ("vr",), (
        Phase(LOAD, ((LOAD_ROW, n),), (("v", ALWAYS),)),
    ) + _interleaved(REPLAY, n, lanes, rows, (("vr", ALWAYS),)),
        latency=latency("kv_replay", lanes=lanes, **lat))


def online_softmax_pv(n: int, lanes: int = 1, rows: int = 1, **lat) -> Contract:
    """Running max m, sum l and output o of each query row over its scores, ``lanes``
    scores (and V rows) a firing, applied in key order; emits (o, l) per row on its last
    key group. ``rows`` rows interleaved (the order of :func:`qk_scores`), so a row's state
    is updated once every ``rows`` firings, the depth of the pipelined recurrence; the
    rows of a last partial block run with bubbles (firings that take nothing) in the
    places of the missing rows, keeping that distance."""
    if rows == 1:
        ports = (("s", ALWAYS), ("vr", ALWAYS), ("ol", LAST))
        return Contract("online_softmax_pv", ("s", "vr"), ("ol",), (
            Phase(ROWS, ((ROW, n), (GROUP, groups(n, lanes))), ports),
        ), latency=latency("online_softmax_pv", lanes=lanes, **lat))
    _, tail = blocks(n, rows)
    last = (LAST, GROUP)
    real = (BELOW, ROW, tail)
    return Contract("online_softmax_pv", ("s", "vr"), ("ol",), _interleaved(
        ROWS, n, lanes, rows, (("s", ALWAYS), ("vr", ALWAYS), ("ol", when(last))),
        (("s", when(real)), ("vr", when(real)), ("ol", when(last, real))) if tail else None),
        latency=latency("online_softmax_pv", lanes=lanes, **lat))


def normalize(n: int, **lat) -> Contract:
    """o / l per row: one reciprocal per row, d multipliers."""
    return Contract("normalize", ("ol",), ("o",), (
        Phase("rows", (("i", n),), (("ol", ALWAYS), ("o", ALWAYS))),
    ), latency=latency("normalize", **lat))


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


def interleave_rows(a, rows: int):
    """(n, groups, ...) per query row and key group -> the tokens in the order of the full
    head's interleaved contracts (``mappers.templates._interleaved``): for each block of
    ``rows`` rows, for each key group, for each row of the block; a last partial block
    likewise with its own rows."""
    if rows == 1:
        return a.reshape((-1,) + a.shape[2:])
    n, g = a.shape[:2]
    full = n // rows * rows
    head = a[:full].reshape((-1, rows, g) + a.shape[2:]).swapaxes(1, 2)
    tail = a[full:].swapaxes(0, 1)
    return np.concatenate([head.reshape((-1,) + a.shape[2:]),
                           tail.reshape((-1,) + a.shape[2:])])


def deinterleave_rows(tokens, n: int, rows: int):
    """The inverse of :func:`interleave_rows`: tokens -> (n, groups, ...)."""
    tokens = np.asarray(tokens)
    g = len(tokens) // n
    if rows == 1:
        return tokens.reshape((n, g) + tokens.shape[1:])
    full = n // rows * rows
    head = tokens[:full * g].reshape((-1, g, rows) + tokens.shape[1:]).swapaxes(1, 2)
    tail = tokens[full * g:].reshape((g, n - full) + tokens.shape[1:]).swapaxes(0, 1)
    return np.concatenate([head.reshape((full, g) + tokens.shape[1:]), tail])


def qk_scores_model(inst, nm, ins):
    x = nm.scores(ins["q"]["x"], ins["k"]["x"])
    lanes, rows = inst.param("lanes") or 1, inst.param("rows") or 1
    g = _lane_groups(x, lanes).reshape((nm.seq_len, -1, lanes))      # (rows, groups, lanes)
    tok = interleave_rows(g, rows)
    s = {"x": tok.reshape(-1) if lanes == 1 else tok}
    return {o: s for o in inst.contract.outputs}


def kv_replay_model(inst, nm, ins):
    v = np.asarray(ins["v"]["x"], np.int64)
    n, lanes, rows = nm.seq_len, inst.param("lanes") or 1, inst.param("rows") or 1
    g = _lane_groups(v[None], lanes)                                   # (groups, lanes, d)
    per_row = np.broadcast_to(g.reshape(1, len(g), -1), (n, len(g), lanes * v.shape[1]))
    return {"vr": {"x": interleave_rows(per_row, rows)}}


def online_softmax_pv_model(inst, nm, ins):
    n, rows = nm.seq_len, inst.param("rows") or 1
    # lanes: a row's tokens hold its keys in order, then padding (dropped here)
    x = deinterleave_rows(np.asarray(ins["s"]["x"], np.int64), n, rows).reshape(n, -1)[:, :n]
    v = deinterleave_rows(np.asarray(ins["vr"]["x"], np.int64), n, rows)
    v = v.reshape(n, -1, nm.head_dim)[:, :n]
    _, l, o = nm.online_rows(x, v)    # one score per row per step, rows in parallel
    return {"ol": {"o": o, "l": l}}


def normalize_model(inst, nm, ins):
    return {"o": {"x": nm.normalize(ins["ol"]["o"], ins["ol"]["l"])}}


# ---------------------------------------------------------------- components

#: a memory read: the address registered (the read port), then the data (the block RAM's
#: output register), so nothing follows a RAM's slow clock-to-output in the same cycle
READ_STAGES = 2

def rows_of(inst) -> int:
    return inst.param("rows") or 1


def loop_value(seq, contract, var, shape):
    """The current index of loop ``var`` in whichever phase is active (0 in a phase
    without it)."""
    v = Const(0, shape)
    for ph in contract.phases:
        if var in dict(ph.loops):
            v = Mux(seq.in_phase[ph.name], seq.counter[(ph.name, var)], v)
    return v


def group_and_row(m, tpl, seq, lanes: int, rows: int):
    """(key group j, row of the block i) of the current firing, as named signals."""
    g = -(-tpl.n // lanes)
    j = Signal(range(max(g, 2)), name="grp")
    m.d.comb += j.eq(loop_value(seq, tpl.contract, GROUP, j.shape()))
    i = Signal(range(max(rows, 2)), name="row")
    if rows > 1:
        m.d.comb += i.eq(loop_value(seq, tpl.contract, ROW, i.shape()))
    return j, i


def read_store(m, name, width, n, lanes, seq, data, group):
    """n rows in ``lanes`` banks (row r in bank r % lanes at address r // lanes), written
    once per firing of the load phase; read at key group ``group``: returns each lane's
    row of the group READ_STAGES cycles later (address and data registered)."""
    g = -(-n // lanes)
    write = seq.fire & seq.in_phase[LOAD]
    r = seq.counter[(LOAD, LOAD_ROW)]
    if lanes == 1:
        bank_cur, addr_cur = Const(0, 1), r
    else:
        bank = Signal(range(lanes), name=f"{name}_bank")
        addr = Signal(range(max(g, 2)), name=f"{name}_addr")
        bank_cur = Signal.like(bank, name=f"{name}_bank_cur")
        addr_cur = Signal.like(addr, name=f"{name}_addr_cur")
        m.d.comb += [bank_cur.eq(Mux(r == 0, 0, bank)), addr_cur.eq(Mux(r == 0, 0, addr))]
        wrap = bank_cur == lanes - 1
        with m.If(write):
            m.d.sync += [bank.eq(Mux(wrap, 0, bank_cur + 1)), addr.eq(addr_cur + wrap)]
    out = []
    for k in range(lanes):
        mem = Memory(shape=unsigned(width), depth=max(g, 2), init=[])
        m.submodules[f"{name}{k}"] = mem
        wp, rp = mem.write_port(), mem.read_port()
        m.d.comb += [wp.addr.eq(addr_cur), wp.data.eq(data),
                     wp.en.eq(write & (bank_cur == k)), rp.addr.eq(group)]
        out.append(P.reg(m, rp.data, f"{name}{k}_q"))
    return out


def padded(m, rows, n, lanes, last, name):
    """The lanes' rows with the padding lanes of a row's last key group (keys past n - 1)
    set to 0; ``last``: 'last group', delayed like the rows."""
    g = -(-n // lanes)
    out = []
    for k, row in enumerate(rows):
        r = Signal(len(row), name=f"{name}{k}")
        m.d.comb += r.eq(row if k < n - (g - 1) * lanes else Mux(last, 0, row))
        out.append(r)
    return out


class _Pipe(Template):
    """A pipelined full-head template: ``self.n`` keys, one output port staged."""

    def __init__(self, inst, nm, ports):
        self.n = inst.param("keys") or nm.seq_len
        super().__init__(inst, nm, ports)

    def stages(self, port) -> int:
        return self.pipeline_stages()

    def pipeline_stages(self) -> int:
        raise NotImplementedError

    def output(self, m, seq, port, payload):
        out = getattr(self, port)
        m.d.comb += [out.payload.eq(payload), out.data_valid.eq(self.staged_valid(m, seq, port))]


# ---------------------------------------------------------------- qk_scores

class QKScores(_Pipe):
    """Stores K; emits the scaled scores q_i.k_j in the contract's order, ``lanes`` a
    token (padding lanes of a row's last key group: 0); holds the ``rows`` interleaved
    query rows of a block in a register file (written from the live q token)."""

    def pipeline_stages(self):
        return qk_stages(self.nm)

    def datapath(self, m, seq):
        nm, lanes, rows = self.nm, lanes_of(self.inst), rows_of(self.inst)
        n, g = self.n, -(-self.n // lanes)
        j, i = group_and_row(m, self, seq, lanes, rows)
        krows = read_store(m, "kmem", self.layout("k").width, n, lanes, seq, self.k.payload, j)
        last = P.delay(m, j == g - 1, READ_STAGES, "last")
        krows = padded(m, krows, n, lanes, last, "krow")
        # the block's query rows: the live token on a row's first group, else the file
        qw = self.layout("q").width
        qfile = Memory(shape=unsigned(qw), depth=max(rows, 2), init=[])
        m.submodules.qfile = qfile
        qwp, qrp = qfile.write_port(), qfile.read_port(domain="comb")
        use_q = seq.use["q"]
        m.d.comb += [qwp.addr.eq(i), qwp.data.eq(self.q.payload), qwp.en.eq(seq.fire & use_q),
                     qrp.addr.eq(i)]
        q1 = P.delay(m, Mux(use_q, self.q.payload, qrp.data), READ_STAGES, "q", unsigned(qw))
        xs = scaled_scores(m, nm, q1, krows, self.layout("q"), self.layout("k"))
        for p in self.contract.outputs:
            self.output(m, seq, p, Cat(*xs))


def scaled_scores(m, nm, q_row, k_rows, q_layout, k_layout):
    """The scaled scores of the Q row ``q_row`` against each K row of ``k_rows`` (one per
    lane), :func:`score_stages` cycles later: d products, the dot product's adder tree,
    the scale product, the rounding, each registered. The full head's ``qk_scores`` and
    the window/causal heads' ``qk_window``."""
    qs = elems(q_row, q_layout, "x")
    xs = []
    for k, krow in enumerate(k_rows):
        ks = elems(krow, k_layout, "x")
        prods = [P.mul(m, a, b, f"qk{k}_{t}") for t, (a, b) in enumerate(zip(qs, ks))]
        dot = Signal(signed(nm.dot_bits), name=f"dot{k}")
        m.d.comb += dot.eq(P.tree_sum(m, prods, f"dot{k}"))
        sp = P.mul(m, dot, Const(nm.scale_mult), f"scale{k}")
        xs.append(P.reg(m, requant_hw(sp, nm.scale_shift), f"x{k}", signed(nm.score_bits)))
    return xs


# ---------------------------------------------------------------- kv_replay

class KVReplay(_Pipe):
    """Stores V; replays the key group of every score (same order as qk_scores), ``lanes``
    rows a token, read with a registered read port."""

    def pipeline_stages(self):
        return READ_STAGES

    def datapath(self, m, seq):
        lanes, rows, n = lanes_of(self.inst), rows_of(self.inst), self.n
        g = -(-n // lanes)
        j, _ = group_and_row(m, self, seq, lanes, rows)
        vrows = read_store(m, "vmem", self.layout("v").width, n, lanes, seq, self.v.payload, j)
        last = P.delay(m, j == g - 1, READ_STAGES, "last")
        self.output(m, seq, "vr", Cat(*padded(m, vrows, n, lanes, last, "vrow")))


# ---------------------------------------------------------------- online_softmax_pv

def prefix_max(m, xs, name):
    """[max(x_0..x_k) for each k], by doubling (ceil(log2 L) levels), registered like
    ``hdl.pipeline.tree_sum`` (``tree_stages(L)`` stages)."""
    pre = list(xs)
    level, d = 0, 1
    while d < len(pre):
        pre = [p if k < d else Mux(p >= pre[k - d], p, pre[k - d]) for k, p in enumerate(pre)]
        d *= 2
        level += 1
        if level % P.ADDS_PER_STAGE == 0 or d >= len(pre):
            pre = [P.reg(m, p, f"{name}_l{level}_{k}", xs[0].shape()) for k, p in enumerate(pre)]
    return pre


class OnlineSoftmaxPV(_Pipe):
    """Running max, sum and output of the interleaved query rows (see the module
    docstring); emits (o, l) of a row on its last key group."""

    def pipeline_stages(self):
        return softmax_stages(self.nm, lanes_of(self.inst))

    def datapath(self, m, seq):
        nm, lanes, rows, n = self.nm, lanes_of(self.inst), rows_of(self.inst), self.n
        g, d = -(-n // lanes), nm.head_dim
        j, i = group_and_row(m, self, seq, lanes, rows)
        rem = n - (g - 1) * lanes                      # real keys in a row's last group
        xs0 = elems(self.s.payload, self.layout("s"), "x")
        vs0 = elems(self.vr.payload, self.layout("vr"), "x")
        # stage 1: everything the firing brings, registered
        x = [P.reg(m, v, f"x{k}") for k, v in enumerate(xs0)]
        v = [[P.reg(m, e, f"v{k}_{t}") for t, e in enumerate(vs0[k * d:(k + 1) * d])]
             for k in range(lanes)]
        ctl = {"valid": seq.fire & seq.use["s"], "first": j == 0, "lastg": j == g - 1,
               "row": i}
        ctl = {k: P.reg(m, val, f"c_{k}") for k, val in ctl.items()}
        take = [Const(1, 1) if k < rem else ~ctl["lastg"] for k in range(lanes)]
        stage = 1
        # prefix maxima of the group's scores (a padding lane's max is never used)
        pre = prefix_max(m, x, "pmax")
        ms = _max_stages(lanes)
        x = [P.delay(m, e, ms, f"x{k}m") for k, e in enumerate(x)]
        ctl = {k: P.delay(m, val, ms, f"c_{k}m") for k, val in ctl.items()}
        stage += ms
        # the row's running max: read from its register file (registered), compared with
        # the group's prefix maxima (registered), chosen and written back (MAX_STAGES);
        # the row's next group reads it back at least ``rows`` firings later
        mfile = Memory(shape=signed(nm.score_bits), depth=max(rows, 2), init=[])
        m.submodules.mfile = mfile
        mwp, mrp = mfile.write_port(), mfile.read_port(domain="comb")
        m.d.comb += mrp.addr.eq(ctl["row"])
        m_rf = P.reg(m, mrp.data, "m_rf")
        cands = [P.reg(m, p, f"pm{k}") for k, p in enumerate(pre)]
        x = [P.reg(m, e, f"x{k}q") for k, e in enumerate(x)]
        ctl = {k: P.reg(m, val, f"c_{k}q") for k, val in ctl.items()}
        ge = [P.reg(m, m_rf >= c, f"ge{k}") for k, c in enumerate(cands)]
        m_rf = P.reg(m, m_rf, "m_rf2")
        cands = [P.reg(m, c, f"pm{k}b") for k, c in enumerate(cands)]
        x = [P.reg(m, e, f"x{k}g") for k, e in enumerate(x)]
        ctl = {k: P.reg(m, val, f"c_{k}g") for k, val in ctl.items()}

        def running(k):     # max(m, cand_k), or cand_k on a row's first group
            return Mux(ctl["first"] | ~ge[k], cands[k], m_rf)
        m_next = Signal(signed(nm.score_bits), name="m_next")
        m.d.comb += [m_next.eq(running(lanes - 1)), mwp.addr.eq(ctl["row"]),
                     mwp.data.eq(m_next), mwp.en.eq(ctl["valid"])]
        m_old = [m_rf] + [running(k - 1) for k in range(1, lanes)]
        m_old = [P.reg(m, mo, f"mold{k}", signed(nm.score_bits)) for k, mo in enumerate(m_old)]
        x = [P.reg(m, e, f"x{k}r") for k, e in enumerate(x)]
        ctl = {k: P.reg(m, val, f"c_{k}r") for k, val in ctl.items()}
        stage += MAX_STAGES
        # |x - m| and x <= m, two stages
        diff = [P.reg(m, mo - xe, f"diff{k}", signed(nm.score_bits + 1))
                for k, (mo, xe) in enumerate(zip(m_old, x))]
        le = [P.reg(m, df >= 0, f"le{k}", unsigned(1)) for k, df in enumerate(diff)]
        z = [P.reg(m, Mux(df >= 0, df, -df), f"z{k}", unsigned(nm.score_bits + 1))
             for k, df in enumerate(diff)]
        ctl_stage, stage = stage, stage + 2
        es = [self._exp(m, zk, f"exp{k}") for k, zk in enumerate(z)]
        stage += _exp_stages(nm)
        le = [P.delay(m, e, _exp_stages(nm), f"le{k}e") for k, e in enumerate(le)]
        ctl = {k: P.delay(m, val, stage - ctl_stage, f"c_{k}u") for k, val in ctl.items()}
        u0 = stage
        assert u0 == _update_start(nm, lanes)
        # the lanes' updates, a chain; the row's (l, O) from / back to its register file
        lw, ow = nm.sum_bits, nm.acc_bits
        lfile = Memory(shape=unsigned(lw + d * ow), depth=max(rows, 2), init=[])
        m.submodules.lofile = lfile
        lwp, lrp = lfile.write_port(), lfile.read_port(domain="comb")
        m.d.comb += lrp.addr.eq(ctl["row"])
        l_in = Signal(lw, name="l_in")
        o_in = [Signal(signed(ow), name=f"o_in{t}") for t in range(d)]
        m.d.comb += Cat(l_in, *o_in).eq(lrp.data)
        step = step_stages(nm)
        take_u = [P.delay(m, t, u0 - 1, f"take{k}") if k >= rem else t for k, t in enumerate(take)]
        vv = [[P.delay(m, e, u0 - 1, f"v{k}_{t}u") for t, e in enumerate(row)]
              for k, row in enumerate(v)]
        for k in range(lanes):
            s0 = u0 + k * step
            first_k = P.delay(m, ctl["first"], k * step, f"first{k}") if k == 0 else Const(0, 1)
            l_next, o_next, l_in, o_in = self._update(
                m, k, l_in, o_in, P.delay(m, es[k], k * step, f"e{k}s"),
                P.delay(m, le[k], k * step, f"le{k}s"), first_k,
                P.delay(m, take_u[k], k * step, f"take{k}s"),
                [P.delay(m, e, k * step, f"v{k}_{t}s") for t, e in enumerate(vv[k])])
            if k == lanes - 1:
                row_w = P.delay(m, ctl["row"], s0 + step - 1 - u0, "row_w")
                val_w = P.delay(m, ctl["valid"], s0 + step - 1 - u0, "valid_w")
                m.d.comb += [lwp.addr.eq(row_w), lwp.data.eq(Cat(l_next, *o_next)),
                             lwp.en.eq(val_w)]
        # the state after the last lane: the row's (o, l) on its last group
        self.output(m, seq, "ol", Cat(*o_in, l_in))

    def _exp(self, m, z, name):
        """``ir.numerics.exp_neg``: log2(e) product, rounding, ROM (registered read),
        shift (``_exp_stages``)."""
        nm = self.nm
        sf, pf = nm.score_frac, nm.prob_frac
        p = P.mul(m, z, Const(LOG2E_MULT, LOG2E_MULT.bit_length()), f"{name}_p")
        u = P.reg(m, requant_hw(p, LOG2E_BITS), f"{name}_u", unsigned(len(z) + 2))
        # in logic: a block RAM's clock-to-output (5.6 ns on ECP5, whose inferred block RAMs
        # have no output register) would leave no time for the next stage's routing
        rom = Memory(shape=unsigned(nm.exp_bits), depth=1 << sf, init=exp2_table(sf, pf),
                     attrs={"rom_style": "logic"})
        m.submodules[f"{name}_rom"] = rom
        rp = rom.read_port()
        m.d.comb += rp.addr.eq(u[:sf])
        word = P.reg(m, rp.data, f"{name}_word")
        ipart = P.delay(m, u[sf:], READ_STAGES, f"{name}_ip")
        e = Mux(ipart >= pf + 1, 0, word >> ipart[:max(1, (pf + 1).bit_length())])
        return P.reg(m, e, f"{name}_e", unsigned(nm.exp_bits))

    def _update(self, m, k, l_in, o_in, e, le, first, take, vs):
        """One lane's update of (l, O) (``online_step`` without the max, which is ahead):
        products in :func:`step_stages` - 1 stages, then the add and the choice; returns
        the new state (l, O) before its register (the register file's write) and after."""
        nm = self.nm
        pf, one, ow, lw = nm.prob_frac, nm.one, nm.acc_bits, nm.sum_bits
        ms = step_stages(nm) - 1
        half = 1 << (pf - 1)
        pl = P.delay(m, P.mul(m, l_in, e, f"pl{k}"), ms - P.mul_stages(lw, nm.exp_bits),
                     f"pl{k}")
        pos = [P.delay(m, P.mul(m, o, e, f"po{k}_{t}"), ms - P.mul_stages(ow, nm.exp_bits),
                       f"po{k}_{t}") for t, o in enumerate(o_in)]
        evs = [P.delay(m, P.mul(m, e, vt.as_signed(), f"ev{k}_{t}"),
                       ms - P.mul_stages(nm.exp_bits, len(vt)), f"ev{k}_{t}")
               for t, vt in enumerate(vs)]
        l_d = P.delay(m, l_in, ms, f"l{k}d")
        o_d = [P.delay(m, o, ms, f"o{k}_{t}d") for t, o in enumerate(o_in)]
        e_d, le_d = P.delay(m, e, ms, f"e{k}d"), P.delay(m, le, ms, f"le{k}d")
        first_d, take_d = P.delay(m, first, ms, f"first{k}d"), P.delay(m, take, ms, f"take{k}d")
        vs_d = [P.delay(m, vt, ms, f"v{k}_{t}d") for t, vt in enumerate(vs)]
        l_new = Mux(take_d, Mux(first_d, one,
                                Mux(le_d, l_d + e_d, (pl + (half + (one << pf))) >> pf)), l_d)
        l_next = Signal(lw, name=f"l{k}_next")
        m.d.comb += l_next.eq(l_new)
        o_next = []
        for t, (po, od, ev, vt) in enumerate(zip(pos, o_d, evs, vs_d)):
            start = vt.as_signed() << pf
            mulc = (po + Cat(Const(half, 2 * pf), vt).as_signed()) >> pf
            new = Signal(signed(ow), name=f"o{k}_{t}_next")
            m.d.comb += new.eq(Mux(take_d, Mux(first_d, start, Mux(le_d, od + ev, mulc)), od))
            o_next.append(new)
        return (l_next, o_next, P.reg(m, l_next, f"l{k}"),
                [P.reg(m, o, f"o{k}_{t}") for t, o in enumerate(o_next)])


# ---------------------------------------------------------------- normalize

class Normalize(_Pipe):
    """o / l per row: the reciprocal floor(2**R / l) by a pipelined restoring divider, d
    products, rounding and saturation to the output format."""

    def __init__(self, inst, nm, ports):
        Template.__init__(self, inst, nm, ports)
        self.n = nm.seq_len

    def pipeline_stages(self):
        return normalize_stages(self.nm)

    def datapath(self, m, seq):
        nm = self.nm
        ol = P.reg(m, self.ol.payload, "ol1")
        os_ = elems(ol, self.layout("ol"), "o")
        l = elems(ol, self.layout("ol"), "l")[0]
        q = nm.recip_width
        r = P.recip(m, l, nm.recip_bits, q, "recip")
        o_packed = P.delay_line(m, Cat(*os_), P.recip_stages(q), "o_wait")
        owid = nm.acc_bits
        ys = []
        for t in range(nm.head_dim):
            o_t = o_packed[t * owid:(t + 1) * owid].as_signed()
            p = P.mul(m, o_t, r, f"or{t}")
            s = nm.out_shift_online
            y = P.reg(m, requant_hw(p, s), f"yr{t}", signed(len(p) + 1 - s))
            # the saturation's comparisons on the product, beside the rounding's add:
            # floor((p + h) / 2**s) > max  <=>  p >= (max + 1) 2**s - h, likewise < min
            half = 1 << (s - 1)
            hi = P.reg(m, p >= ((nm.out.max_int + 1) << s) - half, f"hi{t}")
            lo = P.reg(m, p < (nm.out.min_int << s) - half, f"lo{t}")
            ys.append(P.reg(m, Mux(hi, nm.out.max_int, Mux(lo, nm.out.min_int, y)), f"y{t}",
                            signed(nm.out.bits)))
        self.output(m, seq, "o", Cat(*ys))


# ---------------------------------------------------------------- one-cycle datapaths
# (the split and decode families' score, V and softmax templates and the window softmax
# build on these)

class OneCycleQK(Template):
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
        Shared by the split and decode score templates (and by every lane)."""
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


class OneCycleKV(Template):
    """Stores V rows, replays them once per query row, ``lanes`` rows a token."""

    def datapath(self, m, seq):
        vl = self.layout("v")
        rows = self.inst.param("keys") or self.nm.seq_len   # a split-context slice: its keys
        out = lane_store(m, "vmem", vl.width, rows, lanes_of(self.inst), seq, LOAD,
                          self.v.payload, seq.counter[(REPLAY, GROUP)])
        m.d.comb += self.vr.payload.eq(Cat(*out))


class OneCycleSoftmax(Template):
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


# ---------------------------------------------------------------- resource models
#
# Of the pipelined components above, stage by stage: the same stage-count functions, the
# widths from hw.numerics and the ports' layouts, each block of hdl.pipeline costed by
# targets.pipeline_cost (what Yosys keeps of it). Registers of one value are held once
# (NodeModel.hold: Yosys merges registers with the same input), counted in stages from
# the point named; memories with a registered read port count their data register in
# their mapping (Mem read "sync"), so a value read from one is held READ_STAGES - 1
# stages more by the component.

def _key_lanes(inst, hw):
    """(numerics, keys n, lanes, rows interleaved, key groups g, real keys in the last
    group) of a full-head template."""
    nm = hw.numerics
    n, lanes = inst.param("keys") or nm.seq_len, lanes_of(inst)
    g = groups(n, lanes)
    return nm, n, lanes, rows_of(inst), g, n - (g - 1) * lanes


def _store_cost(m: NodeModel, what: str, n: int, lanes: int, width: int) -> int:
    """``read_store``: a memory of ceil(n / lanes) rows per lane, read through a
    registered port and registered once more (READ_STAGES); written in order (lanes > 1:
    bank and address counters); the padding lanes of a row's last group set to 0 (the
    caller's logic: ``padded``). Returns the padding lanes."""
    g = groups(n, lanes)
    for k in range(lanes):
        m.mems.append(Mem(what, g, width, read="sync"))
        m.hold(f"{what} row {k}", width, READ_STAGES - 1)
    if lanes > 1:
        m.ffs += clog2(lanes) + clog2(max(g, 2))
        m.logic.add("add", clog2(max(g, 2))).add("cmpc", clog2(lanes)).add("mux", clog2(lanes))
    padding = lanes - (n - (g - 1) * lanes)
    if padding:
        m.hold("last group", 1, READ_STAGES)
    return padding


def qk_resources(m: NodeModel, inst, hw) -> None:
    """``QKScores``: K store, q file, the d products, the dot-product tree, the scale
    product and its rounding, per lane."""
    nm, n, lanes, rows, g, rem = _key_lanes(inst, hw)
    ch = hw.port_channels(inst.name)
    qw, kw = ch["q"].layout.width, ch["k"].layout.width
    # a padding lane's zeroed K row goes into the products' operand registers: their
    # synchronous reset, no LUT (Yosys 0.70, N = 9 with 4 lanes)
    _store_cost(m, "K", n, lanes, kw)
    for k in range(lanes):
        m.hold(f"K row {k}", kw, READ_STAGES)             # + each product's operand register
    # the block's query rows (one address: the row's slot), the live token or the file,
    # READ_STAGES registers and each product's operand register (shared by the lanes)
    m.mems.append(Mem("q file", rows, qw, one_address=True))
    m.logic.add("mux", qw)
    m.hold("q row", qw, READ_STAGES + 1)
    score_cost(m, nm, lanes)
    staged_valid(m, qk_stages(nm), len(inst.contract.outputs))


def score_cost(m: NodeModel, nm, lanes: int) -> None:
    """:func:`scaled_scores` for ``lanes`` K rows (operand registers not included): the d
    products, the dot-product tree, the scale product and its rounding, per lane."""
    d = nm.head_dim
    mul_cost(m, "q*k", (nm.q.bits, True), (nm.k.bits, True), d * lanes)
    tree_cost(m, [Span(0, nm.q.bits + nm.k.bits, True)] * d, lanes, high=nm.dot_bits)
    m.hold("dot", nm.dot_bits, 1, lanes)                 # the scale product's operand
    mul_cost(m, "dot*scale", (nm.dot_bits, True), (nm.scale_mult.bit_length(), False), lanes,
             low=nm.scale_shift - 1, high=nm.scale_shift + nm.score_bits,
             const=nm.scale_mult)
    m.logic.add("addc", nm.score_bits + 1, lanes)       # the rounding
    m.hold("scores", nm.score_bits * lanes, 1)


def kv_resources(m: NodeModel, inst, hw) -> None:
    """``KVReplay``: the V store, read through a registered port (READ_STAGES)."""
    nm, n, lanes, rows, g, rem = _key_lanes(inst, hw)
    vw = hw.port_channels(inst.name)["v"].layout.width
    padding = _store_cost(m, "V", n, lanes, vw)
    m.logic.add("mux", vw, padding)                 # a padding lane's row zeroed
    staged_valid(m, READ_STAGES)


def _max_cost(m: NodeModel, nm, lanes: int, rows: int) -> None:
    """The running max: the group's prefix maxima (registered every level), the row's max
    from its register file against them, the choices written back (MAX_STAGES), then
    |x - m| and x <= m (two stages)."""
    sb = nm.score_bits
    levels = _max_stages(lanes)
    # lane 0's prefix maximum is its score: those registers, and its candidate's two,
    # are the score's own (x is held alongside: softmax_resources)
    m.ffs += (lanes - 1) * sb * levels
    for level in range(levels):
        moved = lanes - (1 << level)                    # values taking a max this level
        m.logic.add("cmp", sb, moved).add("mux", sb, moved)
    m.mems.append(Mem("m file", rows, sb))
    # m_rf, m_rf2; per lane x >= m and the old max, the candidate twice (lanes past 0)
    m.ffs += 2 * sb + lanes * (sb + 1) + (lanes - 1) * 2 * sb
    m.logic.add("cmp", sb, lanes).add("mux", sb, lanes)
    m.ffs += lanes * (2 * (sb + 1) + 1)                 # x - m, x <= m, |x - m|
    m.logic.add("add", sb + 1, 2 * lanes).add("mux", sb + 1, lanes)


def _exp_cost(m: NodeModel, nm, lanes: int) -> None:
    """``OnlineSoftmaxPV._exp`` per lane: z * log2(e) (z held once more as the operand),
    its rounding registered, the ROM (logic) with its registered read and data register,
    the integer part delayed alongside, the shift registered."""
    sf, pf, zb, eb = nm.score_frac, nm.prob_frac, nm.score_bits + 1, nm.exp_bits
    ub = zb + 2
    for k in range(lanes):
        m.hold(f"z {k}", zb, 1)
    mul_cost(m, "z*log2e", (zb, False), (LOG2E_MULT.bit_length(), False), lanes,
             low=LOG2E_BITS - 1, high=LOG2E_BITS + ub, const=LOG2E_MULT)
    m.logic.add("addc", ub + 1, lanes)
    m.mems.append(Mem("exp ROM", 1 << sf, eb, rom=True, read="sync", copies=lanes))
    shift_bits = max(1, (pf + 1).bit_length())
    m.logic.add("shift", eb, lanes, shift_bits).add("cmpc", ub - sf, lanes)
    m.ffs += lanes * (ub + eb + READ_STAGES * (ub - sf) + eb)   # u, word, integer part, e


def _update_cost(m: NodeModel, nm, lanes: int) -> None:
    """The lanes' chained (l, O) updates: per lane the products l*e, O*e (each rounded by
    prob_frac) and e*v, each delayed to the update's last stage; l, O, e and x <= m held
    alongside; the choices; the new state registered."""
    d, pf, lw, ow, eb, vb = (nm.head_dim, nm.prob_frac, nm.sum_bits, nm.acc_bits,
                             nm.exp_bits, nm.v.bits)
    step = step_stages(nm)
    ms = step - 1
    for k in range(lanes):
        m.hold(f"l {k}", lw, ms).hold(f"O {k}", d * ow, ms).hold(f"e {k}", eb, k * step + ms)
    for what, a, b, count, low, high in (
            ("l*e", (lw, False), (eb, False), lanes, pf - 1, pf + lw),
            ("o*e", (ow, True), (eb, False), d * lanes, pf - 1, pf + ow),
            ("e*v", (eb, False), (vb, True), d * lanes, 0, None)):
        width = mul_cost(m, what, a, b, count, low=low, high=high)
        live = min(width, width if high is None else high) - low
        m.hold(f"{what} product", live * count, ms - P.mul_stages(a[0], b[0]))
    # l: l + e, the rounding (+ half + one: constants); O: O + e*v, the rounding (+ half
    # + v << 2 prob_frac: v's bits from 2 prob_frac up, the half below); each bit a
    # choice among the row's start, the two updates and the old state (one LUT6)
    m.logic.add("add", lw, lanes).add("addc", lw + 1, lanes).add("muxn", lw, lanes, 3)
    m.logic.add("add", ow, d * lanes).add("add", ow - pf, d * lanes)
    m.logic.add("addc", pf + 1, d * lanes).add("muxn", ow, d * lanes, 3)
    m.ffs += lanes * (lw + d * ow)


def softmax_resources(m: NodeModel, inst, hw) -> None:
    """``OnlineSoftmaxPV``: the scores, V rows and control registered at stage 1 and
    carried to where they are used; the running max; the exps; the lanes' updates with
    the rows' (l, O) in a register file."""
    nm, n, lanes, rows, g, rem = _key_lanes(inst, hw)
    d, sb = nm.head_dim, nm.score_bits
    step, u0 = step_stages(nm), _update_start(nm, lanes)
    last = softmax_stages(nm, lanes) - 1     # the (l, O) write: the last lane's last stage
    for k in range(lanes):
        m.hold(f"x {k}", sb, 1 + _max_stages(lanes) + MAX_STAGES)
        m.hold(f"v {k}", d * nm.v.bits, u0 + k * step + step - 1)
        m.hold(f"x <= m {k}", 1, _exp_stages(nm) + k * step + step - 1)
    m.hold("valid", 1, last).hold("row", clog2(max(rows, 2)), last)
    m.hold("first group", 1, u0 + step - 1)
    # the take flag: 1 for a lane with a real key (constant registers), ~last group for
    # a padding lane of a row's last group
    m.hold(CONSTANT, 1, (min(rem, lanes) - 1) * step + step - 1)
    if rem < lanes:
        m.hold("last group", 1, u0 + (lanes - 1) * step + step - 1)
    _max_cost(m, nm, lanes, rows)
    _exp_cost(m, nm, lanes)
    _update_cost(m, nm, lanes)
    m.mems.append(Mem("(l, O) file", rows, nm.sum_bits + d * nm.acc_bits))
    staged_valid(m, softmax_stages(nm, lanes))


def normalize_resources(m: NodeModel, inst, hw) -> None:
    """``Normalize``: (o, l) registered, the restoring divider, o carried through a delay
    line meanwhile, d products o * r rounded by out_shift_online, saturation."""
    nm = hw.numerics
    d, ow, q = nm.head_dim, nm.acc_bits, nm.recip_width
    m.ffs += d * ow + nm.sum_bits
    recip_cost(m, nm.sum_bits, q)
    wait = P.recip_stages(q)
    if wait >= 3:                      # hdl.pipeline.delay_line: a ring of 2**k words
        depth = 1 << (wait - 1).bit_length()
        m.mems.append(Mem("o delay line", depth, d * ow, read="sync"))
        m.ffs += clog2(depth)
        m.logic.add("add", clog2(depth))
        m.hold("o delayed", d * ow, 1)                  # the products' operand registers
    else:
        m.hold("o", d * ow, wait + 1)
    m.hold("r", q, 1)
    width = mul_cost(m, "o*r", (ow, True), (q, False), d, low=nm.out_shift_online - 1)
    rounded = width + 1 - nm.out_shift_online
    m.logic.add("addc", rounded, d)
    m.ffs += d * (rounded + nm.out.bits)
    saturate_cost(m, rounded, nm.out, d)
    staged_valid(m, normalize_stages(nm))


# ---------------------------------------------------------------- one-cycle resource models
#
# Of the one-cycle datapaths (OneCycleQK, OneCycleKV, OneCycleSoftmax): the split
# (templates.split) and decode (templates.decode) score, V and softmax templates and the
# window softmax (templates.window) use these models: on slices of n_p keys, on the KV
# cache, on rings of W rows. Widths come from hw.numerics.

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


def one_cycle_qk_resources(m: NodeModel, inst, hw) -> None:
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


def one_cycle_kv_resources(m: NodeModel, inst, hw) -> None:
    nm, d, ch, rows, lanes, banks = _head(inst, hw)
    for _ in range(lanes):
        m.mems.append(Mem("V store" if rows == nm.seq_len else "V ring/slice", banks,
                          ch["v"].layout.width))


def one_cycle_softmax_resources(m: NodeModel, inst, hw) -> None:
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


TEMPLATE_DEFS = (
    TemplateDef("qk_scores", qk_latency, qk_scores, qk_scores_model, QKScores, qk_resources,
                "K memory read, d products, adder tree, scale product, rounding: each "
                "registered"),
    TemplateDef("kv_replay", kv_latency, kv_replay, kv_replay_model, KVReplay, kv_resources,
                "V memory read (address and data registered)"),
    TemplateDef("online_softmax_pv", softmax_latency, online_softmax_pv,
                online_softmax_pv_model, OnlineSoftmaxPV, softmax_resources,
                "prefix maxima, the running max, |x - m|, exp, then per lane the products "
                "and the add; rows interleaved so a row's state comes round once per its "
                "update's depth"),
    TemplateDef("normalize", normalize_latency, normalize, normalize_model, Normalize,
                normalize_resources,
                "restoring divider (a quotient bit a stage), d products, rounding, "
                "saturation"),
)

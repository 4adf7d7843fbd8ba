"""The full online head's templates as pipelined datapaths (issue: RTL that closes
timing): ``qk_scores``, ``kv_replay``, ``online_softmax_pv`` and ``normalize``.

Each fires as its contract says (``mappers.templates``), reserves its output slot in the
firing cycle and delivers the token :meth:`stages` cycles later through registered
stages (``hdl.pipeline``); the rest of its latency, if any, is its output channel's
register line. K and V live in memories with registered read ports (block RAM); the exp
table is a ROM with a registered read port.

The online softmax's state (m, l, O) of a query row is updated once per key group by a
recurrence through multipliers, so it cannot close in one cycle: ``rows`` =
``lanes * step_stages`` query rows are interleaved (the contract's order: for each block
of rows, for each key group, for each row), and a row's state lives in a small register
file between its updates, which come ``rows`` firings apart. The lanes of one firing are
a chain of ``lanes`` update units, each ``step_stages`` deep. The arithmetic of every
row is that of ``ir.numerics.AttentionNumerics.online_step`` in key order, so the bits
are those of the one-score-a-cycle definition, for every lanes and rows.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory

from ..ir.numerics import LOG2E_BITS, LOG2E_MULT, exp2_table
from ..mappers.contracts import GROUP, LOAD, LOAD_ROW, ROW
from . import pipeline as P
from .templates import Template, elems, requant_hw, saturate_hw


# ---------------------------------------------------------------- stage counts

def qk_stages(nm) -> int:
    """Firing -> score: operands registered (the K row from its memory), d products,
    the adder tree, the scale product, the rounding."""
    return (READ_STAGES + P.mul_stages(nm.q.bits, nm.k.bits) + P.tree_stages(nm.head_dim)
            + P.mul_stages(nm.dot_bits, nm.scale_mult.bit_length()) + 1)


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
    products, rounding, saturation."""
    return 1 + P.recip_stages(nm.recip_width) + P.mul_stages(nm.acc_bits, nm.recip_width) + 2


# latencies (``mappers.catalog``): the stages and the output channel's visibility cycle
def qk_latency(nm, lanes: int = 1) -> int:
    return qk_stages(nm) + 1


def kv_latency(nm=None, lanes: int = 1) -> int:
    return READ_STAGES + 1


def softmax_latency(nm, lanes: int = 1) -> int:
    return softmax_stages(nm, lanes) + 1


def normalize_latency(nm) -> int:
    return normalize_stages(nm) + 1


# ---------------------------------------------------------------- shared pieces

#: a memory read: the address registered (the read port), then the data (the block RAM's
#: output register), so nothing follows a RAM's slow clock-to-output in the same cycle
READ_STAGES = 2

def lanes_of(inst) -> int:
    return inst.param("lanes") or 1


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


def lane_store(m, name, width, n, lanes, seq, data, group):
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
        krows = lane_store(m, "kmem", self.layout("k").width, n, lanes, seq, self.k.payload, j)
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
        qs = elems(q1, self.layout("q"), "x")
        xs = []
        for k, krow in enumerate(krows):
            ks = elems(krow, self.layout("k"), "x")
            prods = [P.mul(m, a, b, f"qk{k}_{t}") for t, (a, b) in enumerate(zip(qs, ks))]
            dot = Signal(signed(nm.dot_bits), name=f"dot{k}")
            m.d.comb += dot.eq(P.tree_sum(m, prods, f"dot{k}"))
            sp = P.mul(m, dot, Const(nm.scale_mult), f"scale{k}")
            xs.append(P.reg(m, requant_hw(sp, nm.scale_shift), f"x{k}", signed(nm.score_bits)))
        for p in self.contract.outputs:
            self.output(m, seq, p, Cat(*xs))


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
        vrows = lane_store(m, "vmem", self.layout("v").width, n, lanes, seq, self.v.payload, j)
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
            y = P.reg(m, requant_hw(p, nm.out_shift_online), f"yr{t}",
                      signed(len(p) + 1 - nm.out_shift_online))
            ys.append(P.reg(m, saturate_hw(y, nm.out), f"y{t}", signed(nm.out.bits)))
        self.output(m, seq, "o", Cat(*ys))

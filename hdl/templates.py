"""Amaranth components of the templates.

Each component's ports are valid/ready streams named after its contract's ports, with
flat payloads laid out as ``mappers.hwgraph.Layout`` says. Fire control comes from
:class:`~attnflow.hdl.sequencer.Sequencer` (the contract); the datapath below computes,
in the firing cycle, the values ``ir.numerics`` defines, with constants and ROM contents
taken from there. The latency of a template is carried by its output channel.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..ir.numerics import LOG2E_BITS, LOG2E_MULT, exp2_table
from ..mappers.contracts import GROUP, LOAD, LOAD_ROW, REPLAY, ROWS, SCORES
from .channel import port_signature
from .sequencer import Sequencer


# ---------------------------------------------------------------- arithmetic helpers

def requant_hw(x, n: int):
    """``ir.numerics.requant`` in hardware: round half up for n > 0, exact shift left else."""
    if n > 0:
        return (x + (1 << (n - 1))).shift_right(n)
    return x.shift_left(-n)


def saturate_hw(x, fmt):
    return Mux(x > fmt.max_int, fmt.max_int, Mux(x < fmt.min_int, fmt.min_int, x))


def tree_sum(values):
    """Sum of Values as a balanced adder tree: log2(n) adder levels, and each level widens
    the result by one bit (a chain would add one bit per term: n - 1 for n terms)."""
    vals = list(values)
    if not vals:
        return 0
    while len(vals) > 1:
        vals = [vals[i] + vals[i + 1] if i + 1 < len(vals) else vals[i]
                for i in range(0, len(vals), 2)]
    return vals[0]


def elems(payload, layout, field):
    """Elements of one field of a flat payload, as Values (signed when the field is)."""
    off = 0
    for f in layout.fields:
        if f.name == field:
            out = []
            for i in range(f.count):
                bits = payload[off + i * f.bits: off + (i + 1) * f.bits]
                out.append(bits.as_signed() if f.signed else bits)
            return out
        off += f.width
    raise KeyError(field)


def exp_hw(m, nm, z, name):
    """``ir.numerics.exp_neg`` in hardware: log2(e) multiply, ROM of 2**-frac, shift."""
    sf, pf = nm.score_frac, nm.prob_frac
    rom = Memory(shape=unsigned(nm.exp_bits), depth=1 << sf, init=exp2_table(sf, pf))
    m.submodules[f"{name}_rom"] = rom
    rp = rom.read_port(domain="comb")
    u = Signal(len(z) + LOG2E_MULT.bit_length() + 1, name=f"{name}_u")
    m.d.comb += u.eq(requant_hw(z * LOG2E_MULT, LOG2E_BITS))
    ipart = u[sf:]
    m.d.comb += rp.addr.eq(u[:sf])
    e = Signal(nm.exp_bits, name=f"{name}_e")
    m.d.comb += e.eq(Mux(ipart >= pf + 1, 0, rp.data >> ipart[:max(1, (pf + 1).bit_length())]))
    return e


def recip_hw(nm, l):
    """``ir.numerics.recip``: floor(2**R / l)."""
    return Const(1 << nm.recip_bits, nm.recip_bits + 1) // l


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
            members[p] = Out(port_signature(self.ports[p].width, self.stages(p)))
        super().__init__(members)

    def layout(self, port):
        return self.ports[port]

    def stages(self, port) -> int:
        """Pipeline stages between a firing and its token on output ``port`` (0: the
        token is computed in the firing cycle). A staged port reserves its slot in the
        firing cycle and delivers the data ``stages`` cycles later
        (``hdl.channel.StagedSignature``); the output channel's register line makes up
        the rest of the template's latency."""
        return 0

    def staged_valid(self, m, seq, port):
        """The reservation of ``port``'s firings delayed by its :meth:`stages`: the
        ``data_valid`` the port must show with the firing's token."""
        v = seq.fire & seq.use[port]
        for k in range(self.stages(port)):
            r = Signal(name=f"{port}_v{k + 1}")
            m.d.sync += r.eq(v)
            v = r
        return v

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


def _store(m, name, width, depth, seq, phase, data):
    """A row memory written once per firing of ``phase`` at its row counter."""
    # depth >= 2 keeps the address at least one bit wide (see Sequencer.counter)
    mem = Memory(shape=unsigned(width), depth=max(depth, 2), init=[])
    m.submodules[name] = mem
    wp = mem.write_port()
    rp = mem.read_port(domain="comb")
    m.d.comb += [wp.addr.eq(seq.counter[(phase, LOAD_ROW)]), wp.data.eq(data),
                 wp.en.eq(seq.fire & seq.in_phase[phase])]
    return rp


def _lane_store(m, name, width, n, lanes, seq, phase, data, group):
    """n rows in ``lanes`` banks (row r in bank r % lanes, at address r // lanes), written
    once per firing of ``phase``; read a key group a cycle (``mappers.templates.groups``).
    Returns lane k's row of group ``group`` (row group * lanes + k), 0 for a padding lane
    of the last group. ``lanes`` = 1 is :func:`_store`."""
    if lanes == 1:
        rp = _store(m, name, width, n, seq, phase, data)
        m.d.comb += rp.addr.eq(group)
        return [rp.data]
    g = -(-n // lanes)
    r = seq.counter[(phase, LOAD_ROW)]
    bank, addr = Signal(range(lanes), name=f"{name}_bank"), Signal(range(max(g, 2)),
                                                                   name=f"{name}_addr")
    bank_cur = Signal.like(bank, name=f"{name}_bank_cur")
    addr_cur = Signal.like(addr, name=f"{name}_addr_cur")
    m.d.comb += [bank_cur.eq(Mux(r == 0, 0, bank)), addr_cur.eq(Mux(r == 0, 0, addr))]
    write = seq.fire & seq.in_phase[phase]
    wrap = bank_cur == lanes - 1
    with m.If(write):
        m.d.sync += [bank.eq(Mux(wrap, 0, bank_cur + 1)), addr.eq(addr_cur + wrap)]
    last = group == g - 1
    rows = []
    for k in range(lanes):
        mem = Memory(shape=unsigned(width), depth=max(g, 2), init=[])
        m.submodules[f"{name}{k}"] = mem
        wp, rp = mem.write_port(), mem.read_port(domain="comb")
        m.d.comb += [wp.addr.eq(addr_cur), wp.data.eq(data), wp.en.eq(write & (bank_cur == k)),
                     rp.addr.eq(group)]
        row = Signal(width, name=f"{name}_row{k}")
        # padding lanes exist only in the last group (keys (g-1)*lanes + k >= n)
        m.d.comb += row.eq(rp.data if k < n - (g - 1) * lanes else Mux(last, 0, rp.data))
        rows.append(row)
    return rows


def lanes_of(inst) -> int:
    return inst.param("lanes") or 1


class QKScores(Template):
    """Stores K; for each q row emits the scaled scores q.k_j, ``lanes`` per cycle (padding
    lanes of a row's last key group: 0)."""

    def datapath(self, m, seq):
        nm = self.nm
        n = self.inst.param("keys") or nm.seq_len       # a split-context slice: its keys
        lanes = lanes_of(self.inst)
        kl = self.layout("k")
        rows = _lane_store(m, "kmem", kl.width, n, lanes, seq, LOAD, self.k.payload,
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
            q_cur = Signal(len(q_reg))          # named: see hdl.linear's x_row
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
        out = _lane_store(m, "vmem", vl.width, rows, lanes_of(self.inst), seq, LOAD,
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

"""Amaranth components of the window-attention templates (``mappers.window``).

K and V live in rings of W rows (window: 2 w' + 1; causal: N). Loads (phase ``fill``, then the first firing
of every ``main`` row, or of every row of a triangle's ``b<k>`` phases) write the next row at a write pointer that steps mod W. Row i's
slot t reads key row ``j = i + offset(t)`` (``ir.window.offsets``: 0, -1, +1, -2, ...;
causal 0, -1, -2, ...)
at ring index ``(base + offset(t)) mod W``, ``base`` being i mod W (a pointer stepping at
every row end); the slot is valid when ``0 <= j < N``. A read of the slot written in the
same firing (w' = 0, and every causal row's slot 0) takes the live input row instead of
the memory.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory

from ..ir.window import offsets
from ..mappers.contracts import FILL, SLOT
from .datapath import elems
from ..templates.online import OnlineSoftmaxPV, QKScores
from .templates import Template


class RowStore:
    """``depth`` rows of port ``load``'s payload, written at a pointer that steps (mod
    depth) with every row the template takes on that port; :meth:`read` returns a row,
    the live input row when it is the one written in the same firing. The window's K/V
    rings and the decode KV cache."""

    def __init__(self, tpl: Template, m, seq, load: str, depth: int, name: str):
        self.width = width = tpl.layout(load).width
        self.mem = mem = Memory(shape=unsigned(width), depth=max(depth, 2), init=[])
        m.submodules[f"{load}_{name}"] = mem
        wp = mem.write_port()
        self.port, self.load = getattr(tpl, load), load
        self.write = seq.fire & seq.use[load]
        self.wptr = wptr = Signal(range(max(depth, 2)), name=f"{load}_wptr")
        with m.If(self.write):
            m.d.sync += wptr.eq(Mux(wptr == depth - 1, 0, wptr + 1))
        m.d.comb += [wp.addr.eq(wptr), wp.data.eq(self.port.payload), wp.en.eq(self.write)]

    def read(self, m, addr, name: str) -> Signal:
        """One read port (each call adds one)."""
        rp = self.mem.read_port(domain="comb")
        data = Signal(self.width, name=f"{self.load}_{name}")
        m.d.comb += [rp.addr.eq(addr),
                     data.eq(Mux(self.write & (addr == self.wptr), self.port.payload,
                                 rp.data))]
        return data


class _Ring:
    """The ring of one stream (port ``load``) and the addressing of the current slots:
    ``lanes`` slots a firing (group g: slots g * lanes + k), one read port per lane;
    ``data``/``valid`` per lane (a padding lane past the row's last slot: invalid)."""

    def __init__(self, tpl: Template, m, seq, load: str):
        n = tpl.nm.seq_len
        kind = tpl.inst.param("kind", "window")
        lanes = tpl.inst.param("lanes") or 1
        offs = offsets(tpl.inst.param("window"), n, kind)
        self.slots = slots = len(offs)
        store = RowStore(tpl, m, seq, load, slots, "ring")

        # the current query row i (row) and its ring index (base), stepping at row ends
        # every phase but the lookahead fill scores rows (main, tail; a triangle's blocks)
        phases = [p for p in seq.in_phase if p != FILL]
        scoring = Signal(name="scoring")
        m.d.comb += scoring.eq(Cat(*[seq.in_phase[p] for p in phases]).any())
        row_end = seq.fire & seq.last & scoring
        row = Signal(range(n + 1), name="row")
        base = Signal(range(max(slots, 2)), name="base")
        with m.If(row_end):
            m.d.sync += [row.eq(row + 1), base.eq(Mux(base == slots - 1, 0, base + 1))]
        # the group of the active scoring phase
        grp = Signal(range(max(slots, 2)), name="group")
        for p in phases:
            with m.If(seq.in_phase[p]):
                m.d.comb += grp.eq(seq.counter[(p, SLOT)])
        span = max(abs(o) for o in offs) + 1
        self.data, self.valid = [], []
        for k in range(lanes):
            sfx = "" if lanes == 1 else f"_{k}"
            # slot t -> offset 0, -1, +1, -2, +2, ... (causal: 0, -1, ..., -(N-1))
            t = Signal(range(max(slots + lanes, 2)), name=f"slot{sfx}")
            m.d.comb += t.eq(grp * lanes + k if lanes > 1 else grp)
            off = Signal(signed(span.bit_length() + 2), name=f"offset{sfx}")
            if kind == "causal":
                m.d.comb += off.eq(-t)
            else:
                half = Signal(range(span + lanes + 1), name=f"half{sfx}")
                m.d.comb += half.eq((t + 1) >> 1)
                m.d.comb += off.eq(Mux(t == 0, 0, Mux(t[0], -half, half)))
            at = Signal(signed(max(slots, n).bit_length() + 3), name=f"at{sfx}")
            m.d.comb += at.eq(base + off)
            idx = Signal(range(max(slots, 2)), name=f"ring_idx{sfx}")
            m.d.comb += idx.eq(Mux(at < 0, at + slots, Mux(at >= slots, at - slots, at)))
            key = Signal(signed(n.bit_length() + 3), name=f"key{sfx}")
            m.d.comb += key.eq(row + off)
            valid = Signal(name=f"valid{sfx}")
            real = (key >= 0) & (key < n)
            data = store.read(m, idx, f"slot{sfx}")
            if lanes > 1 and k >= slots - (-(-slots // lanes) - 1) * lanes:
                # a padding lane in the last group: invalid, V row 0 (as the models)
                pad = t >= slots
                m.d.comb += valid.eq(real & ~pad)
                padded = Signal(len(data), name=f"{load}_lane{sfx}")
                m.d.comb += padded.eq(Mux(pad, 0, data))
                data = padded
            else:
                m.d.comb += valid.eq(real)
            self.data.append(data)
            self.valid.append(valid)


class QKWindow(QKScores):
    """Scores of the query row against its window's K rows, one slot per firing."""

    def datapath(self, m, seq):
        ring = _Ring(self, m, seq, "k")
        xs = [self.score(m, seq, row) for row in ring.data]
        m.d.comb += self.s.payload.eq(Cat(*xs, *ring.valid))


class KVWindow(Template):
    """The V row of every slot, from the V ring."""

    def datapath(self, m, seq):
        ring = _Ring(self, m, seq, "v")
        m.d.comb += self.vr.payload.eq(Cat(*ring.data))


class SoftmaxWindow(OnlineSoftmaxPV):
    """``online_softmax_pv`` that skips masked slots (the score's valid bit)."""

    def datapath(self, m, seq):
        d = self.nm.head_dim
        xs = elems(self.s.payload, self.layout("s"), "x")
        oks = elems(self.s.payload, self.layout("s"), "ok")
        vs = elems(self.vr.payload, self.layout("vr"), "x")
        self.online(m, seq, [(x, vs[k * d:(k + 1) * d], ok)
                             for k, (x, ok) in enumerate(zip(xs, oks))])

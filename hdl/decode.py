"""Amaranth components of the decode templates (``mappers.decode``).

The KV cache is a memory of N rows written at a pointer that steps with every load
(prefill rows, then each step's new row on its first firing); step t's firing j reads
row j. Step t's last key is the row it appends; a read of the row written in the same
firing (C = 0, step 0) takes the live input row.
"""
from __future__ import annotations

from amaranth.hdl import Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory

from .templates import OnlineSoftmaxPV, Template, elems, requant_hw, tree_sum


class _Cache:
    def __init__(self, tpl: Template, m, seq, load: str):
        n = tpl.nm.seq_len
        width = tpl.layout(load).width
        mem = Memory(shape=unsigned(width), depth=max(n, 2), init=[])
        m.submodules[f"{load}_cache"] = mem
        wp, rp = mem.write_port(), mem.read_port(domain="comb")
        port = getattr(tpl, load)
        write = seq.fire & seq.use[load]
        wptr = Signal(range(max(n, 2)), name=f"{load}_wptr")
        with m.If(write):
            m.d.sync += wptr.eq(wptr + 1)
        m.d.comb += [wp.addr.eq(wptr), wp.data.eq(port.payload), wp.en.eq(write)]
        j = Signal(range(max(n, 2)), name="key")
        for name in seq.in_phase:
            if name.startswith("step"):
                with m.If(seq.in_phase[name]):
                    m.d.comb += j.eq(seq.counter[(name, "j")])
        m.d.comb += rp.addr.eq(j)
        self.data = Signal(width, name=f"{load}_key")
        m.d.comb += self.data.eq(Mux(write & (j == wptr), port.payload, rp.data))


class QKDecode(Template):
    def datapath(self, m, seq):
        nm = self.nm
        cache = _Cache(self, m, seq, "k")
        q_reg = Signal(self.layout("q").width)
        with m.If(seq.fire & seq.use["q"]):
            m.d.sync += q_reg.eq(self.q.payload)
        q_cur = Signal(len(q_reg))
        m.d.comb += q_cur.eq(Mux(seq.first, self.q.payload, q_reg))
        qs = elems(q_cur, self.layout("q"), "x")
        ks = elems(cache.data, self.layout("k"), "x")
        dot = Signal(signed(nm.dot_bits))
        m.d.comb += dot.eq(tree_sum(a * b for a, b in zip(qs, ks)))
        x = Signal(signed(nm.score_bits))
        m.d.comb += x.eq(requant_hw(dot * nm.scale_mult, nm.scale_shift))
        m.d.comb += self.s.payload.eq(x)


class KVDecode(Template):
    def datapath(self, m, seq):
        m.d.comb += self.vr.payload.eq(_Cache(self, m, seq, "v").data)


COMPONENTS = {"qk_decode": QKDecode, "kv_decode": KVDecode, "softmax_decode": OnlineSoftmaxPV}

"""Amaranth components of the decode templates (``mappers.decode``).

The KV cache is a :class:`~.window.RowStore` of N rows written at a pointer that steps
with every load
(prefill rows, then each step's new row on its first firing); step t's firing j reads
row j. Step t's last key is the row it appends; a read of the row written in the same
firing (C = 0, step 0) takes the live input row.
"""
from __future__ import annotations

from amaranth.hdl import Signal

from ..mappers.contracts import GROUP, STEP
from ..templates.online import QKScores
from .templates import Template
from ..templates.window import RowStore


class _Cache:
    """The KV cache of port ``load`` (N rows) read at the active step's key j."""

    def __init__(self, tpl: Template, m, seq, load: str):
        n = tpl.nm.seq_len
        store = RowStore(tpl, m, seq, load, n, "cache")
        j = Signal(range(max(n, 2)), name="key")
        for name in seq.in_phase:
            if name.startswith(STEP):
                with m.If(seq.in_phase[name]):
                    m.d.comb += j.eq(seq.counter[(name, GROUP)])
        self.data = store.read(m, j, "key")


class QKDecode(QKScores):
    def datapath(self, m, seq):
        m.d.comb += self.s.payload.eq(self.score(m, seq, _Cache(self, m, seq, "k").data))


class KVDecode(Template):
    def datapath(self, m, seq):
        m.d.comb += self.vr.payload.eq(_Cache(self, m, seq, "v").data)

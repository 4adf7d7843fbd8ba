"""Amaranth components of the split-context templates (``mappers.split``).

``split_rows`` passes every row to the output of the slice it belongs to (the sequencer's
phases select the output); ``qk_slice`` and ``kv_slice`` are ``qk_scores`` and
``kv_replay`` on their slice's keys (the stores sized from the ``keys`` param);
``softmax_slice`` is ``online_softmax_pv`` emitting the partial state (o, l, m); ``combine``
merges two states with ``ir.split.combine``'s arithmetic: one exp of |m_a - m_b|, the
smaller-max side's l and O scaled by it and rounded, then added.
"""
from __future__ import annotations

from .templates import Template


class SplitRows(Template):
    def datapath(self, m, seq):
        for p in self.contract.outputs:
            m.d.comb += getattr(self, p).payload.eq(self.x.payload)



"""The decode-mode templates of one causal head (``ir.decode``): a KV cache of N rows
filled by a prefill phase, then one phase per generated token.

* ``qk_decode`` (k, q -> s): ``prefill`` takes the C context K rows; ``step{t}`` (C + t + 1
  firings) takes the new K row and the token's Q row on its first firing (the K row is
  appended to the cache) and emits the score of key j on firing j;
* ``kv_decode`` (v -> vr): the same for V, one cached V row per firing;
* ``softmax_decode`` (s, vr -> ol): the online softmax over each step's scores (the
  component is ``online_softmax_pv``'s, on this contract's loops).

HDL: the KV cache is a :class:`~attnflow.templates.window.RowStore` of N rows written at
a pointer that steps with every load (prefill rows, then each step's new row on its
first firing); step t's firing j reads row j. Step t's last key is the row it appends; a
read of the row written in the same firing (C = 0, step 0) takes the live input row.
The models use ``AttentionNumerics``' arithmetic (as ``ir.decode``); the resource models
are the full head's.
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Signal

from ..hdl.templates import Template
from ..mappers.catalog import TemplateDef, latency
from ..mappers.contracts import ALWAYS, FIRST, GROUP, LAST, LOAD_ROW, PREFILL, STEP, Contract, Phase
from .online import (OneCycleQK, OneCycleSoftmax, one_cycle_kv_resources,
                     one_cycle_qk_resources, one_cycle_softmax_resources)
from .window import RowStore


# ---------------------------------------------------------------- contracts

def _phases(n: int, steps: int, load: str | None, first: tuple, always: tuple,
            last: tuple = ()) -> tuple:
    c = n - steps
    ph = []
    if load and c:
        ph.append(Phase(PREFILL, ((LOAD_ROW, c),), ((load, ALWAYS),)))
    for t in range(steps):
        ph.append(Phase(f"{STEP}{t}", ((GROUP, c + t + 1),),
                        (((load, FIRST),) if load else ()) + tuple((p, FIRST) for p in first)
                        + tuple((p, ALWAYS) for p in always)
                        + tuple((p, LAST) for p in last)))
    return tuple(ph)


def qk_decode(n: int, steps: int) -> Contract:
    return Contract("qk_decode", ("k", "q"), ("s",), _phases(n, steps, "k", ("q",), ("s",)),
                    latency=latency("qk_decode"))


def kv_decode(n: int, steps: int) -> Contract:
    return Contract("kv_decode", ("v",), ("vr",), _phases(n, steps, "v", (), ("vr",)),
                    latency=latency("kv_decode"))


def softmax_decode(n: int, steps: int) -> Contract:
    return Contract("softmax_decode", ("s", "vr"), ("ol",),
                    _phases(n, steps, None, (), ("s", "vr"), ("ol",)),
                    latency=latency("softmax_decode"))


# ---------------------------------------------------------------- behavioural models

def _lengths(inst, nm):
    n, s = nm.seq_len, inst.param("steps")
    return [n - s + t + 1 for t in range(s)]


def qk_decode_model(inst, nm, ins):
    x = nm.scores(ins["q"]["x"], ins["k"]["x"])          # (S, N)
    return {"s": {"x": np.concatenate([x[t, :c] for t, c in enumerate(_lengths(inst, nm))])}}


def kv_decode_model(inst, nm, ins):
    v = np.asarray(ins["v"]["x"], np.int64)
    return {"vr": {"x": np.concatenate([v[:c] for c in _lengths(inst, nm)])}}


def softmax_decode_model(inst, nm, ins):
    x = np.asarray(ins["s"]["x"], np.int64)
    v = np.asarray(ins["vr"]["x"], np.int64)
    os_, ls, at = [], [], 0
    for c in _lengths(inst, nm):
        m = l = o = None
        for j in range(c):
            m, l, o = nm.online_step(j == 0, m, l, o, x[at + j:at + j + 1], v[at + j:at + j + 1])
        os_.append(o[0])
        ls.append(l[0])
        at += c
    return {"ol": {"o": np.array(os_), "l": np.array(ls)}}


# ---------------------------------------------------------------- components

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


class QKDecode(OneCycleQK):
    def datapath(self, m, seq):
        m.d.comb += self.s.payload.eq(self.score(m, seq, _Cache(self, m, seq, "k").data))


class KVDecode(Template):
    def datapath(self, m, seq):
        m.d.comb += self.vr.payload.eq(_Cache(self, m, seq, "v").data)


TEMPLATE_DEFS = (
    TemplateDef("qk_decode", 3, qk_decode, qk_decode_model, QKDecode, one_cycle_qk_resources,
                "qk_scores over the KV cache"),
    TemplateDef("kv_decode", 1, kv_decode, kv_decode_model, KVDecode, one_cycle_kv_resources,
                "cache read"),
    TemplateDef("softmax_decode", 1, softmax_decode, softmax_decode_model, OneCycleSoftmax,
                one_cycle_softmax_resources, "online_softmax_pv's step"),
)

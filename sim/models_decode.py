"""Behavioural models of the decode templates (``mappers.decode``), from ``ir.decode``'s
arithmetic (``AttentionNumerics``)."""
from __future__ import annotations

import numpy as np


def _lengths(inst, nm):
    n, s = nm.seq_len, inst.param("steps")
    return [n - s + t + 1 for t in range(s)]


def qk_decode(inst, nm, ins):
    x = nm.scores(ins["q"]["x"], ins["k"]["x"])          # (S, N)
    return {"s": {"x": np.concatenate([x[t, :c] for t, c in enumerate(_lengths(inst, nm))])}}


def kv_decode(inst, nm, ins):
    v = np.asarray(ins["v"]["x"], np.int64)
    return {"vr": {"x": np.concatenate([v[:c] for c in _lengths(inst, nm)])}}


def softmax_decode(inst, nm, ins):
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

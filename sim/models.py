"""Behavioural models: the token values each template produces, bit-exact.

Each model maps the token values on a template's input ports (whole streams, in stream
order) to the values on its output ports, using the arithmetic of ``ir.numerics``. A
stream's values are a dict field -> array of shape (tokens,) or (tokens, count), with the
field names of the channel's layout (``mappers.templates``).
"""
from __future__ import annotations

import numpy as np

from ..ir.numerics import requant, saturate
from .lanes import deinterleave_rows, interleave_rows
from .lanes import lane_groups as _lane_groups


def _rows(a, n):
    return a.reshape((n, n) + a.shape[1:])


def qk_scores(inst, nm, ins):
    x = nm.scores(ins["q"]["x"], ins["k"]["x"])
    lanes, rows = inst.param("lanes") or 1, inst.param("rows") or 1
    g = _lane_groups(x, lanes).reshape((nm.seq_len, -1, lanes))      # (rows, groups, lanes)
    tok = interleave_rows(g, rows)
    s = {"x": tok.reshape(-1) if lanes == 1 else tok}
    return {o: s for o in inst.contract.outputs}


def kv_replay(inst, nm, ins):
    v = np.asarray(ins["v"]["x"], np.int64)
    n, lanes, rows = nm.seq_len, inst.param("lanes") or 1, inst.param("rows") or 1
    g = _lane_groups(v[None], lanes)                                   # (groups, lanes, d)
    per_row = np.broadcast_to(g.reshape(1, len(g), -1), (n, len(g), lanes * v.shape[1]))
    return {"vr": {"x": interleave_rows(per_row, rows)}}


def online_softmax_pv(inst, nm, ins):
    n, rows = nm.seq_len, inst.param("rows") or 1
    # lanes: a row's tokens hold its keys in order, then padding (dropped here)
    x = deinterleave_rows(np.asarray(ins["s"]["x"], np.int64), n, rows).reshape(n, -1)[:, :n]
    v = deinterleave_rows(np.asarray(ins["vr"]["x"], np.int64), n, rows)
    v = v.reshape(n, -1, nm.head_dim)[:, :n]
    _, l, o = nm.online_rows(x, v)    # one score per row per step, rows in parallel
    return {"ol": {"o": o, "l": l}}


def normalize(inst, nm, ins):
    return {"o": {"x": nm.normalize(ins["ol"]["o"], ins["ol"]["l"])}}


def row_max(inst, nm, ins):
    return {"m": {"m": _rows(ins["s"]["x"], nm.seq_len).max(axis=1)}}


def sub_exp(inst, nm, ins):
    e = nm.exp(ins["m"]["m"][:, None] - _rows(ins["s"]["x"], nm.seq_len)).reshape(-1)
    return {"e_a": {"e": e}, "e_b": {"e": e}}


def row_sum(inst, nm, ins):
    return {"l": {"l": _rows(ins["e"]["e"], nm.seq_len).sum(axis=1)}}


def recip_mul(inst, nm, ins):
    e = _rows(ins["e"]["e"], nm.seq_len)
    p = requant(e * nm.recip(ins["l"]["l"])[:, None], nm.p_shift)
    return {"p": {"p": p.reshape(-1)}}


def pv_accum(inst, nm, ins):
    p = _rows(ins["p"]["p"], nm.seq_len)
    v = _rows(ins["vr"]["x"], nm.seq_len)
    acc = np.einsum("ij,ijd->id", p, v)
    return {"o": {"x": saturate(requant(acc, nm.out_shift_naive), nm.out)}}

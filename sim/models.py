"""Behavioural models: the token values each template produces, bit-exact.

Each model maps the token values on a template's input ports (whole streams, in stream
order) to the values on its output ports, using the arithmetic of ``ir.numerics``. A
stream's values are a dict field -> array of shape (tokens,) or (tokens, count), with the
field names of the channel's layout (``mappers.templates``).
"""
from __future__ import annotations

import numpy as np

from ..ir.numerics import requant, saturate


def _rows(a, n):
    return a.reshape((n, n) + a.shape[1:])


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

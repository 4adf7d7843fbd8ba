"""Behavioural models of the window-attention templates (``mappers.window``): values
only, from ``ir.window`` (the golden model's own functions)."""
from __future__ import annotations

import numpy as np

from ..ir.window import slot_keys, window_online
from .lanes import lane_groups as _lane_groups


def _slots(inst, nm):
    return slot_keys(inst.param("window"), nm.seq_len, inst.param("kind", "window"))


def _tokens(a, lanes: int):
    """(rows, slots, ...) -> the stream's tokens: one slot a token, or (``lanes`` > 1)
    groups of ``lanes`` slots, the last group padded with zeros (ok = 0)."""
    if lanes == 1:
        return a.reshape((-1,) + a.shape[2:])
    g = _lane_groups(a, lanes)
    return g.reshape(len(g), -1) if a.ndim > 2 else g


def qk_window(inst, nm, ins):
    keys, valid = _slots(inst, nm)
    x = nm.scores(ins["q"]["x"], ins["k"]["x"])
    xs = x[np.arange(nm.seq_len)[:, None], keys]
    lanes = inst.param("lanes") or 1
    return {"s": {"x": _tokens(xs, lanes), "ok": _tokens(valid.astype(np.int64), lanes)}}


def kv_window(inst, nm, ins):
    keys, _ = _slots(inst, nm)
    v = np.asarray(ins["v"]["x"], np.int64)
    return {"vr": {"x": _tokens(v[keys], inst.param("lanes") or 1)}}


def softmax_window(inst, nm, ins):
    n = nm.seq_len
    slots = _slots(inst, nm)[0].shape[1]     # a row's tokens: its slots, then padding
    xs = np.asarray(ins["s"]["x"], np.int64).reshape(n, -1)[:, :slots]
    ok = np.asarray(ins["s"]["ok"]).reshape(n, -1).astype(bool)[:, :slots]
    vs = np.asarray(ins["vr"]["x"], np.int64).reshape(n, -1, nm.head_dim)[:, :slots]
    o, l = window_online(nm, xs, ok, vs)
    return {"ol": {"o": o, "l": l}}

"""Behavioural models of the window-attention templates (``mappers.window``): values
only, from ``ir.window`` (the golden model's own functions)."""
from __future__ import annotations

import numpy as np

from ..ir.window import slot_keys, window_online


def _slots(inst, nm):
    return slot_keys(inst.param("window"), nm.seq_len, inst.param("kind", "window"))


def qk_window(inst, nm, ins):
    keys, valid = _slots(inst, nm)
    x = nm.scores(ins["q"]["x"], ins["k"]["x"])
    xs = x[np.arange(nm.seq_len)[:, None], keys]
    return {"s": {"x": xs.reshape(-1), "ok": valid.reshape(-1).astype(np.int64)}}


def kv_window(inst, nm, ins):
    keys, _ = _slots(inst, nm)
    v = np.asarray(ins["v"]["x"], np.int64)
    return {"vr": {"x": v[keys.reshape(-1)]}}


def softmax_window(inst, nm, ins):
    n = nm.seq_len
    xs = np.asarray(ins["s"]["x"], np.int64).reshape(n, -1)
    ok = np.asarray(ins["s"]["ok"]).reshape(n, -1).astype(bool)
    vs = np.asarray(ins["vr"]["x"], np.int64).reshape(n, xs.shape[1], -1)
    o, l = window_online(nm, xs, ok, vs)
    return {"ol": {"o": o, "l": l}}

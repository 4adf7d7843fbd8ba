"""Behavioural models of the window-attention templates (``mappers.window``): values
only, from ``ir.window`` (the golden model's own functions). A row's tokens are its
``ir.window.row_groups`` slot groups of ``lanes`` slots (the slots past the row's W, and
past its block's last row for a triangle causal head, padded: score and V row 0, ok 0)."""
from __future__ import annotations

import numpy as np

from ..ir.window import row_groups, slot_keys, window_online


def _slots(inst, nm):
    return slot_keys(inst.param("window"), nm.seq_len, inst.param("kind", "window"))


def _groups(inst, nm) -> np.ndarray:
    return row_groups(nm.seq_len, inst.param("kind", "window"), inst.param("window"),
                      inst.param("lanes") or 1, bool(inst.param("triangle")))


def _tokens(a, lanes: int, g: np.ndarray):
    """(rows, slots, ...) -> the stream's tokens: row i's first ``g[i] * lanes`` slots
    (zero-padded past the row's slots), one slot a token, or (``lanes`` > 1) ``lanes``
    slots a token (V rows side by side)."""
    width = int(g.max()) * lanes
    a = np.pad(a, ((0, 0), (0, max(0, width - a.shape[1]))) + ((0, 0),) * (a.ndim - 2))
    t = a[:, :width][_taken(g, lanes)]
    if lanes == 1:
        return t
    t = t.reshape((-1, lanes) + a.shape[2:])
    return t.reshape(len(t), -1) if a.ndim > 2 else t


def _rows(tokens, lanes: int, g: np.ndarray, tail=()):
    """The inverse of :func:`_tokens`: (rows, max groups * lanes, *tail), zero past each
    row's tokens."""
    out = np.zeros((len(g), int(g.max()) * lanes) + tuple(tail), np.int64)
    out[_taken(g, lanes)] = np.asarray(tokens, np.int64).reshape((-1,) + tuple(tail))
    return out


def _taken(g: np.ndarray, lanes: int) -> np.ndarray:
    """(rows, max groups * lanes) booleans: the slots row i streams (its first
    ``g[i] * lanes``), in stream order when read row-major."""
    return np.arange(int(g.max()) * lanes)[None, :] < (g * lanes)[:, None]


def qk_window(inst, nm, ins):
    keys, valid = _slots(inst, nm)
    x = nm.scores(ins["q"]["x"], ins["k"]["x"])
    xs = x[np.arange(nm.seq_len)[:, None], keys]
    lanes, g = inst.param("lanes") or 1, _groups(inst, nm)
    return {"s": {"x": _tokens(xs, lanes, g),
                  "ok": _tokens(valid.astype(np.int64), lanes, g)}}


def kv_window(inst, nm, ins):
    keys, _ = _slots(inst, nm)
    v = np.asarray(ins["v"]["x"], np.int64)
    lanes, g = inst.param("lanes") or 1, _groups(inst, nm)
    return {"vr": {"x": _tokens(v[keys], lanes, g)}}


def softmax_window(inst, nm, ins):
    lanes, g = inst.param("lanes") or 1, _groups(inst, nm)
    xs = _rows(ins["s"]["x"], lanes, g)
    ok = _rows(ins["s"]["ok"], lanes, g).astype(bool)
    vs = _rows(ins["vr"]["x"], lanes, g, (nm.head_dim,))
    o, l = window_online(nm, xs, ok, vs)
    return {"ol": {"o": o, "l": l}}

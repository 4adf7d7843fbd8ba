"""Behavioural models of the split-context templates (``mappers.split``), from
``ir.split`` (the golden model's own functions)."""
from __future__ import annotations

import numpy as np

from ..ir.split import combine as combine_states
from ..ir.split import slice_state


def split_rows(inst, nm, ins):
    x = np.asarray(ins["x"]["x"], np.int64)
    out, at = {}, 0
    for p, n_p in enumerate(inst.param("sizes")):
        out[f"y{p}"] = {"x": x[at:at + n_p]}
        at += n_p
    return out


def qk_slice(inst, nm, ins):
    return {"s": {"x": nm.scores(ins["q"]["x"], ins["k"]["x"]).reshape(-1)}}


def kv_slice(inst, nm, ins):
    return {"vr": {"x": np.tile(np.asarray(ins["v"]["x"], np.int64), (nm.seq_len, 1))}}


def softmax_slice(inst, nm, ins):
    n, keys = nm.seq_len, inst.param("keys")
    x = np.asarray(ins["s"]["x"], np.int64).reshape(n, keys)
    v = np.asarray(ins["vr"]["x"], np.int64).reshape(n, keys, -1)[0]
    m, l, o = slice_state(nm, x, v)
    return {"st": {"o": o, "l": l, "m": m}}


def combine(inst, nm, ins):
    a, b = ins["a"], ins["b"]
    m, l, o = combine_states(nm, (a["m"], a["l"], a["o"]), (b["m"], b["l"], b["o"]))
    return {"y": {"o": o, "l": l, "m": m}}

"""Behavioural models of the split-context templates (``mappers.split``), from
``ir.split`` (the golden model's own functions)."""
from __future__ import annotations

import numpy as np



def split_rows(inst, nm, ins):
    x = np.asarray(ins["x"]["x"], np.int64)
    out, at = {}, 0
    for p, n_p in enumerate(inst.param("sizes")):
        out[f"y{p}"] = {"x": x[at:at + n_p]}
        at += n_p
    return out



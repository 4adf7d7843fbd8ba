"""Behavioural model of the encoder's ``concat`` template (``mappers.encoder``): the H
head outputs (rows of D elements each) side by side, head 0 first, as one row of H * D."""
from __future__ import annotations

import numpy as np


def concat(inst, nm, ins):
    ways, dim = inst.param("ways"), inst.param("D")
    parts = [np.asarray(ins[f"x{h}"]["x"], dtype=np.int64).reshape(-1, dim) for h in range(ways)]
    return {"y": {"x": np.concatenate(parts, axis=1)}}

"""Behavioural models of the row templates (``mappers.rowops``): values only.

Each maps the input rows (field ``x``, (N, D)) to the output rows with the golden
functions of ``ir.numerics_norm`` (and ``mappers.rowops.residual_golden``), the same
arithmetic the RTL is built from. Numerics and constants come from the instance params,
never from ``hw.numerics`` (``nm`` is ignored). Function names are the template names
(``sim.models.MODELS`` is keyed by them).
"""
from __future__ import annotations

import numpy as np

from ..mappers.rowops import ForkParams


def fork(inst, nm, ins):
    p = ForkParams.of(inst)
    x = np.asarray(ins["x"]["x"], dtype=np.int64).reshape(-1, p.dim)
    return {o: {"x": x.copy()} for o in p.outputs}

"""Behavioural model of the ``linear`` template (``mappers.linear``): values only.

The N input rows (x, K elements each) give N output rows (M elements) by
``ir.numerics_linear.linear_golden``, the same function the ROM contents come from. The
firing times follow from the contract alone (``sim.engine`` / ``sim.fast``). The numerics,
weights and bias come from the instance's params, not from ``hw.numerics`` (which holds
the attention head's numerics in an attention design), so ``nm`` is ignored.
"""
from __future__ import annotations

import numpy as np

from ..ir.numerics_linear import linear_golden
from ..mappers.linear import LinearParams


def linear(inst, nm, ins):
    p = LinearParams.of(inst)
    x = np.asarray(ins["x"]["x"], dtype=np.int64).reshape(-1, p.k)
    return {"y": {"x": linear_golden(x, p.w_array(), p.b_array(), p.numerics)}}

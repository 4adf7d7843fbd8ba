"""Lane grouping of attention streams (``mappers.templates.groups``), shared by the
models of the full-head and the window templates."""
from __future__ import annotations

import numpy as np


def lane_groups(a, lanes: int):
    """(rows, keys, ...) -> (rows * groups, lanes, ...): each row's keys (or slots) in
    groups of ``lanes``, the last group padded with zeros."""
    pad = -a.shape[1] % lanes
    a = np.pad(a, ((0, 0), (0, pad)) + ((0, 0),) * (a.ndim - 2))
    return a.reshape((-1, lanes) + a.shape[2:])

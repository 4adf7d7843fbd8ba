"""Mapping rules of row-template pipelines (the templates: ``templates.norm``,
``templates.activation``, ``templates.residual``, ``templates.wires``).

The residual structure ``fork -> block -> residual_add.b`` with the skip ``fork.y1 ->
residual_add.a`` runs at full rate only when the skip channel holds every row in flight
on the block: :func:`skip_depth` (checked against the simulator in ``tests/test_rowops.py``).
An element-wise template between folded stages takes the fewest lanes that keep up:
:func:`elementwise_fires`.
"""
from __future__ import annotations

from ..templates.rows import check_int


def skip_depth(path_latency: int, row_period: int = 1, rows: int | None = None) -> int:
    """Least depth of a residual skip channel for full rate.

    ``path_latency``: cycles from the fork's firing of a row to the ``residual_add`` firing
    of the same row when nothing stalls (the sum of the channel latencies on the block
    path, plus the cycles a multi-firing template spends between taking a row and
    emitting it, e.g. F - 1 for a folded ``linear``); ``row_period``: cycles per row of
    the slowest template (F for a folded ``linear``, 1 otherwise). The fork may put row
    i + depth on the skip only after the add took row i (a freed slot is writable one
    cycle later), so the skip needs ``ceil((path_latency + 1) / row_period)`` slots.
    Fewer only throttles such a block (rows per cycle: min(depth / (path_latency + 1),
    1 / row_period));
    it deadlocks only when the block needs more rows than the skip holds before it emits
    its first row (e.g. a whole-sequence buffer: then depth >= N is necessary). ``rows``:
    the rows of a sequence, when given a bound (the skip never holds more).
    """
    check_int("skip_depth", "path_latency", path_latency, 0)
    check_int("skip_depth", "row_period", row_period)
    depth = max(1, -(-(path_latency + 1) // row_period))
    return depth if rows is None else min(rows, depth)


def elementwise_fires(dim: int, period: int) -> int:
    """Firings per row of an element-wise template between stages of row period
    ``period``: the largest divisor F of D with F <= period (lanes = D / F), so the
    template never becomes the bottleneck and uses the fewest lanes that keep up."""
    return max(f for f in range(1, min(dim, max(1, period)) + 1) if dim % f == 0)

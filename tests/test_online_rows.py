"""``AttentionNumerics.online_rows`` (whole-array online softmax: segments between running
max changes) gives the integers of the column-by-column recurrence (``online_step``)."""
from __future__ import annotations

import numpy as np
import pytest

import attnflow.ir.numerics as numerics
from attnflow.ir.numerics import AttentionNumerics
from attnflow.ir.types import FixedFormat as F

NM = AttentionNumerics(64, 16, F(8, 4), F(8, 4), F(8, 4), F(16, 8), 8, 15)


def stepwise_masked(nm, x, ok, v):
    """The recurrence with masked columns leaving the state alone (the window heads')."""
    m = l = o = None
    for t in range(x.shape[1]):
        vt = v[:, t] if v.ndim == 3 else np.broadcast_to(v[t], (len(x), v.shape[-1]))
        if t == 0:
            m, l, o = nm.online_step(True, m, l, o, x[:, 0], vt)
            continue
        m2, l2, o2 = nm.online_step(False, m, l, o, x[:, t], vt)
        keep = ok[:, t]
        m, l, o = np.where(keep, m2, m), np.where(keep, l2, l), np.where(keep[:, None], o2, o)
    return m, l, o


def scores(rng, kind, rows, cols):
    x = rng.integers(-3000, 3000, (rows, cols))
    if kind == "increasing":            # every column raises the max: all steps rounded
        return np.sort(x, axis=1)
    if kind == "decreasing":            # one change per row
        return np.sort(x, axis=1)[:, ::-1].copy()
    if kind == "ties":
        return rng.integers(-2, 2, (rows, cols))
    return x


@pytest.mark.parametrize("kind", ["random", "increasing", "decreasing", "ties"])
@pytest.mark.parametrize("segments", [0, 16, 10 ** 6])     # reduceat / matmul when few / always
@pytest.mark.parametrize("block", [1 << 22, 37])            # one row block / many
def test_online_rows_equals_the_recurrence(monkeypatch, kind, segments, block):
    monkeypatch.setattr(numerics, "ONLINE_MATMUL_SEGMENTS", segments)
    monkeypatch.setattr(numerics, "ONLINE_BLOCK", block)
    rng = np.random.default_rng(hash(kind) % 1000 + segments % 7 + block % 5)
    for _ in range(6):
        rows, cols, d = (int(rng.integers(1, 40)), int(rng.integers(1, 70)),
                         int(rng.integers(1, 9)))
        x = scores(rng, kind, rows, cols)
        for v in (rng.integers(-128, 128, (cols, d)), rng.integers(-128, 128, (rows, cols, d))):
            want = NM.online_rows_stepwise(x, v)
            got = NM.online_rows(x, v)
            assert all(np.array_equal(a, b) for a, b in zip(want, got)), (rows, cols, d)
        ok = rng.random((rows, cols)) < 0.6
        ok[:, 0] = True
        v = rng.integers(-128, 128, (rows, cols, d))
        want = stepwise_masked(NM, x, ok, v)
        got = NM.online_rows(x, v, ok)
        assert all(np.array_equal(a, b) for a, b in zip(want[1:], got[1:]))

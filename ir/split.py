"""Split-context attention (``attention.split: P``): the keys of one head split into P
contiguous slices, an online-softmax engine per slice, and the partial states
``(m, l, O)`` merged by a tree of the associative combine (LeanAttention / FlashDecoding);
one division per row at the end.

The combine of two partial states of a row (``m``: running max, ``l``: running sum, ``O``:
unnormalised output, all as in :meth:`AttentionNumerics.online_step`) uses the online
step's own arithmetic, one exp of ``|m_a - m_b|``::

    m_b <= m_a:  m = m_a,  l = l_a + rq(l_b * e),  O = O_a + rq(O_b * e),  e = exp(m_b - m_a)
    m_b >  m_a:  m = m_b,  l = rq(l_a * e) + l_b,  O = rq(O_a * e) + O_b,  e = exp(m_a - m_b)

(``rq``: requantization by ``prob_frac``). Slice p holds keys ``starts[p] ..
starts[p+1] - 1``; sizes differ by at most one (the first ``N mod P`` slices are one
longer). The tree combines neighbours level by level (0+1, 2+3, ...; an odd last state
passes up unchanged), so the result is bit-exactly defined by (N, P).
"""
from __future__ import annotations

import numpy as np

from .numerics import AttentionNumerics, requant


def slice_bounds(n: int, p: int) -> list[int]:
    """Start of every slice and N: ``[s_0 = 0, s_1, ..., s_P = N]``."""
    base, extra = divmod(n, p)
    out = [0]
    for i in range(p):
        out.append(out[-1] + base + (1 if i < extra else 0))
    return out


def combine(nm: AttentionNumerics, a: tuple, b: tuple) -> tuple:
    """(m, l, O) of rows (arrays over rows) merged; see the module docstring."""
    ma, la, oa = a
    mb, lb, ob = b
    pf = nm.prob_frac
    le = mb <= ma
    e = nm.exp(np.where(le, ma - mb, mb - ma))
    m = np.maximum(ma, mb)
    l = np.where(le, la + requant(lb * e, pf), requant(la * e, pf) + lb)
    o = np.where(le[:, None], oa + requant(ob * e[:, None], pf),
                 requant(oa * e[:, None], pf) + ob)
    return m, l, o


def tree_pairs(p: int) -> list[list[tuple[int, int | None]]]:
    """The combine tree: per level, the (left, right) indices of the previous level's
    states (right None: passed up unchanged)."""
    levels, width = [], p
    while width > 1:
        lvl = [(i, i + 1 if i + 1 < width else None) for i in range(0, width, 2)]
        levels.append(lvl)
        width = len(lvl)
    return levels


def leaf_depth(p: int, leaf: int) -> int:
    """Combines a leaf's state passes through on its way to the root."""
    depth, idx = 0, leaf
    for lvl in tree_pairs(p):
        for j, (a, b) in enumerate(lvl):
            if idx in (a, b):
                depth += b is not None
                idx = j
                break
    return depth


def slice_state(nm: AttentionNumerics, x, v) -> tuple:
    """Online softmax over one slice: scores ``x`` (N, n_p), values ``v`` (n_p, d) ->
    (m, l, O)."""
    return nm.online_rows(x, v)


def reduce_states(nm: AttentionNumerics, states: list) -> tuple:
    for lvl in tree_pairs(len(states)):
        states = [states[a] if b is None else combine(nm, states[a], states[b])
                  for a, b in lvl]
    return states[0]


def split_golden(nm: AttentionNumerics, q, k, v, p: int) -> np.ndarray:
    """Bit-exact split-context attention of one head: (N, d) stored ints -> (N, d)."""
    x = nm.scores(np.asarray(q, np.int64), np.asarray(k, np.int64))
    v = np.asarray(v, np.int64)
    s = slice_bounds(nm.seq_len, p)
    states = [slice_state(nm, x[:, s[i]:s[i + 1]], v[s[i]:s[i + 1]]) for i in range(p)]
    _, l, o = reduce_states(nm, states)
    return nm.normalize(o, l)

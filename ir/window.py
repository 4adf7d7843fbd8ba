"""Sliding-window attention (``attention.kind: window``): query i attends to the keys j
with ``|i - j| <= w``, a band of ``2 w + 1`` keys, fewer at the sequence ends; and causal
attention (``kind: causal``, keys ``j <= i``) on the same slot machinery with one-sided
offsets 0, -1, ..., -(N-1), or, with a window w, the causal sliding window ``i - w <= j <= i`` (offsets 0, -1, ..., -w':
w' + 1 slots, a ring of w' + 1 K/V rows; SWAT's causal window of w keys ``i-w+1..i`` is
``window: w - 1`` here, the window counting the distance as for the symmetric kind).

Streaming order (SWAT-style, row-wise, input-stationary): row i's scores are produced
over a fixed number ``W = 2 w' + 1`` of slots (``w' = min(w, N - 1)``: a window wider
than the sequence is the whole sequence), slot t holding key ``j = i + offset(t)`` with
the offsets ``0, -1, +1, -2, +2, ..., -w', +w'``. Slot 0 is the query's own position, so
it is always a real key and starts the online softmax; slots whose key falls outside
``0..N-1`` are *masked*: they take a cycle but leave the running state unchanged. The
values are therefore exactly softmax over the real keys of the band, accumulated in the
slot order above (the order is part of the bit-exact definition, as for the full online
variant).

A causal head without a window scores a *blocked triangle* (:func:`causal_blocks`): the
rows in blocks of B (about sqrt(N), a multiple of the lanes), every row of a block over the
slots of the block's last row, so row i runs over at most B - 1 slots past its own i + 1
(masked, like the slots before the sequence start) and the head takes about N(N + B)/2
slot cycles instead of N*N; the bits are those of the N-slot row, as a masked slot leaves
the state unchanged. Stacks keep N slots a row (a fixed row period).

One source of truth for the integer arithmetic: :class:`~.numerics.AttentionNumerics`
(``scores``, ``online_step``, ``normalize``), shared with the full online head.
"""
from __future__ import annotations

import math

import numpy as np

from .numerics import AttentionNumerics, attention_float


#: the attention kinds built on the slot machinery below
KINDS = ("window", "causal")


def effective_window(w: int, n: int) -> int:
    """The half-width actually iterated: ``min(w, N - 1)``."""
    return max(0, min(int(w), int(n) - 1))


def offsets(w: int | None, n: int, kind: str = "window") -> list[int]:
    """Key offsets of a row's slots, slot order (0 first): ``window``: 0, -1, +1, ...,
    -w', +w' (W = 2 w' + 1); ``causal`` (keys j <= i): 0, -1, ..., -(N-1) (W = N, the
    first i + 1 of row i real); causal with a window ``w`` (keys i - w <= j <= i, the
    causal sliding window): 0, -1, ..., -w' (W = w' + 1)."""
    if kind == "causal":
        return [-k for k in range(n if w is None else effective_window(w, n) + 1)]
    we = effective_window(w, n)
    out = [0]
    for k in range(1, we + 1):
        out += [-k, k]
    return out


def row_slots(n: int, kind: str, w: int | None = None) -> int:
    """Score slots per query row: N for full attention, else ``len(offsets(w, n, kind))``
    (N for causal, w' + 1 for a causal sliding window, 2 w' + 1 for a window)."""
    return n if kind == "full" else len(offsets(w, n, kind))


def causal_blocks(n: int, lanes: int = 1) -> tuple[tuple[int, int], ...]:
    """The blocked triangle of a causal head: ``(rows, groups)`` per block, in row order.
    Blocks of B = ceil(sqrt(N)) rows rounded up to a multiple of ``lanes`` (the last block
    shorter); a block's rows each make ``groups`` = ceil(e / lanes) firings of ``lanes``
    slots, e being the block's end row (its last row's i + 1 keys). ceil(N / B) blocks: one
    contract phase each."""
    b = -(-(math.isqrt(n - 1) + 1) // lanes) * lanes     # ceil(sqrt N), up to the lanes
    out = []
    for start in range(0, n, b):
        end = min(start + b, n)
        out.append((end - start, -(-end // lanes)))
    return tuple(out)


def row_groups(n: int, kind: str, w: int | None, lanes: int = 1,
               triangle: bool = False) -> np.ndarray:
    """Firings (slot groups of ``lanes``) of every query row, shape (N,): ceil(W / lanes)
    each, or per :func:`causal_blocks` for a ``triangle`` causal head."""
    if triangle:
        return np.concatenate([np.full(r, g, np.int64) for r, g in causal_blocks(n, lanes)])
    return np.full(n, -(-row_slots(n, kind, w) // lanes), np.int64)


def lookahead(w: int | None, n: int, kind: str = "window") -> int:
    """K/V rows beyond the query row a row needs: w' for a window, 0 for causal."""
    return 0 if kind == "causal" else effective_window(w, n)


def slot_keys(w: int | None, n: int, kind: str = "window") -> tuple[np.ndarray, np.ndarray]:
    """(keys, valid): arrays (N, W) of the key index of every (row, slot) (clipped into
    range where masked) and whether it is a real key."""
    off = np.array(offsets(w, n, kind))
    j = np.arange(n)[:, None] + off[None, :]
    valid = (j >= 0) & (j < n)
    return np.clip(j, 0, n - 1), valid


def window_online(nm: AttentionNumerics, xs, ok, vs) -> tuple[np.ndarray, np.ndarray]:
    """The masked online softmax over the slots: scores ``xs`` (N, W), ``ok`` (N, W)
    booleans, values ``vs`` (N, W, d) -> the final (o, l) of every row. A masked slot
    leaves (m, l, o) as they were; slot 0 is never masked and starts the row."""
    _, l, o = nm.online_rows(xs, vs, ok)
    return o, l


def window_golden(nm: AttentionNumerics, q, k, v, w: int | None,
                  kind: str = "window") -> np.ndarray:
    """Bit-exact window (or causal) attention of one head: (N, d) stored ints each ->
    (N, d) of ``nm.out``."""
    n = nm.seq_len
    x = nm.scores(np.asarray(q, np.int64), np.asarray(k, np.int64))
    v = np.asarray(v, np.int64)
    keys, valid = slot_keys(w, n, kind)
    xs = x[np.arange(n)[:, None], keys]
    return nm.normalize(*window_online(nm, xs, valid, v[keys]))


def window_float(q, k, v, w: int | None, kind: str = "window") -> np.ndarray:
    """Float reference: softmax(q k^T / sqrt(d)) over the band |i - j| <= w (causal:
    j <= i; causal with a window: i - w <= j <= i), times v."""
    i, j = np.indices((len(q), len(k)))
    if kind == "causal":
        band = (j <= i) if w is None else ((j <= i) & (i - j <= w))
    else:
        band = np.abs(i - j) <= w
    return attention_float(q, k, v, band)

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


def interleave_rows(a, rows: int):
    """(n, groups, ...) per query row and key group -> the tokens in the order of the full
    head's interleaved contracts (``mappers.templates._interleaved``): for each block of
    ``rows`` rows, for each key group, for each row of the block; a last partial block
    likewise with its own rows."""
    if rows == 1:
        return a.reshape((-1,) + a.shape[2:])
    n, g = a.shape[:2]
    full = n // rows * rows
    head = a[:full].reshape((-1, rows, g) + a.shape[2:]).swapaxes(1, 2)
    tail = a[full:].swapaxes(0, 1)
    return np.concatenate([head.reshape((-1,) + a.shape[2:]),
                           tail.reshape((-1,) + a.shape[2:])])


def deinterleave_rows(tokens, n: int, rows: int):
    """The inverse of :func:`interleave_rows`: tokens -> (n, groups, ...)."""
    tokens = np.asarray(tokens)
    g = len(tokens) // n
    if rows == 1:
        return tokens.reshape((n, g) + tokens.shape[1:])
    full = n // rows * rows
    head = tokens[:full * g].reshape((-1, g, rows) + tokens.shape[1:]).swapaxes(1, 2)
    tail = tokens[full * g:].reshape((g, n - full) + tokens.shape[1:]).swapaxes(0, 1)
    return np.concatenate([head.reshape((full, g) + tokens.shape[1:]), tail])

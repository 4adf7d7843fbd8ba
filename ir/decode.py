"""Decode mode of one causal head (``attention: {kind: causal, decode: S}``): the first
``C = N - S`` positions are a prefill context whose K/V rows fill an on-chip KV cache,
then each of the S steps brings one new token's q, k, v, appends k and v to the cache
and attends over keys ``0 .. C + t`` (ascending, the online softmax's order): one
output row per generated token, ``C + t + 1`` scores for step t.
"""
from __future__ import annotations

import numpy as np

from .numerics import AttentionNumerics


def decode_golden(nm: AttentionNumerics, q_steps, k, v, steps: int) -> np.ndarray:
    """q_steps: (S, d) queries of the new tokens; k, v: (N, d) all positions' rows ->
    (S, d) outputs of ``nm.out``, bit-exact."""
    n = nm.seq_len
    c = n - steps
    k, v = np.asarray(k, np.int64), np.asarray(v, np.int64)
    x = nm.scores(np.asarray(q_steps, np.int64), k)             # (S, N)
    outs_o, outs_l = [], []
    for t in range(steps):     # step t's query: keys 0 .. c + t
        _, l, o = nm.online_rows(x[t:t + 1, :c + t + 1], v[:c + t + 1])
        outs_o.append(o[0])
        outs_l.append(l[0])
    return nm.normalize(np.array(outs_o), np.array(outs_l))

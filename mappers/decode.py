"""Decode mode of one causal head on streaming templates (``ir.decode``): a KV cache of N
rows filled by a prefill phase, then one phase per generated token. The templates
(``qk_decode``, ``kv_decode``, ``softmax_decode``) are defined in ``templates.decode``;
``normalize`` runs over the S steps.

Cycles per generated token: C + t + 1 (one score per cycle), read from the output
cycles. Memory: the cache, N rows of K and of V.
"""
from __future__ import annotations

from ..ir.numerics import AttentionNumerics
from ..templates import online
from ..templates.decode import kv_decode, qk_decode, softmax_decode
from .hwgraph import HwGraph
from .sdpa import MappingError, head_fill
from .window import stream_head


def decode_fill(nm) -> int:
    """Cycles of the decode head after its last score (``mappers.sdpa.head_fill``)."""
    return head_fill("qk_decode", "kv_decode", "softmax_decode", nm)


def check_decode(steps, n: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= n:
        raise MappingError("model.attention.decode",
                           f"must be an integer in 1..N = {n} (generated tokens; the first "
                           f"N - decode positions are the prefill context), got {steps!r}")
    return steps


def map_decode_head(nm: AttentionNumerics, steps: int, fifo_depths=None,
                    name: str = "attnflow_top") -> HwGraph:
    n = nm.seq_len
    steps = check_decode(steps, n)
    return stream_head(nm, name, "decode", (qk_decode(n, steps), kv_decode(n, steps),
                                            softmax_decode(n, steps), online.normalize(steps, nm=nm)),
                       (("N", n), ("steps", steps)), online.score_layout(nm), fifo_depths)

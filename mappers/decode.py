"""Decode mode of one causal head on streaming templates (``ir.decode``): a KV cache of N
rows filled by a prefill phase, then one phase per generated token.

* ``qk_decode`` (k, q -> s): ``prefill`` takes the C context K rows; ``step{t}`` (C + t + 1
  firings) takes the new K row and the token's Q row on its first firing (the K row is
  appended to the cache) and emits the score of key j on firing j;
* ``kv_decode`` (v -> vr): the same for V, one cached V row per firing;
* ``softmax_decode`` (s, vr -> ol): the online softmax over each step's scores;
* ``normalize`` over the S steps.

Cycles per generated token: C + t + 1 (one score per cycle), read from the output
cycles. Memory: the cache, N rows of K and of V.
"""
from __future__ import annotations

from ..ir.numerics import AttentionNumerics
from . import templates as T
from .catalog import latency
from .contracts import ALWAYS, FIRST, GROUP, LAST, LOAD_ROW, PREFILL, STEP, Contract, Phase
from .hwgraph import HwGraph
from .sdpa import MappingError, head_fill
from .window import stream_head


def decode_fill(nm) -> int:
    """Cycles of the decode head after its last score (``mappers.sdpa.head_fill``)."""
    return head_fill("qk_decode", "kv_decode", "softmax_decode", nm)


def _phases(n: int, steps: int, load: str | None, first: tuple, always: tuple,
            last: tuple = ()) -> tuple:
    c = n - steps
    ph = []
    if load and c:
        ph.append(Phase(PREFILL, ((LOAD_ROW, c),), ((load, ALWAYS),)))
    for t in range(steps):
        ph.append(Phase(f"{STEP}{t}", ((GROUP, c + t + 1),),
                        (((load, FIRST),) if load else ()) + tuple((p, FIRST) for p in first)
                        + tuple((p, ALWAYS) for p in always)
                        + tuple((p, LAST) for p in last)))
    return tuple(ph)


def qk_decode(n: int, steps: int) -> Contract:
    return Contract("qk_decode", ("k", "q"), ("s",), _phases(n, steps, "k", ("q",), ("s",)),
                    latency=latency("qk_decode"))


def kv_decode(n: int, steps: int) -> Contract:
    return Contract("kv_decode", ("v",), ("vr",), _phases(n, steps, "v", (), ("vr",)),
                    latency=latency("kv_decode"))


def softmax_decode(n: int, steps: int) -> Contract:
    return Contract("softmax_decode", ("s", "vr"), ("ol",),
                    _phases(n, steps, None, (), ("s", "vr"), ("ol",)),
                    latency=latency("softmax_decode"))


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
                                            softmax_decode(n, steps), T.normalize(steps, nm=nm)),
                       (("N", n), ("steps", steps)), T.score_layout(nm), fifo_depths)

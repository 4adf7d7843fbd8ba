"""The template catalogue: each template's timing contract and port layouts, as data.

One function per template builds its :class:`~attnflow.mappers.contracts.Contract` from
its parameters. Latencies (the cycles from a firing to the output being visible) are the
registry's (``mappers.catalog``); the simulator and the HDL take them from the contracts.
"""
from __future__ import annotations

from .catalog import latency
from .contracts import (ALWAYS, BELOW, BLOCK, FIRST, GROUP, LAST, LOAD, LOAD_ROW, REPLAY, ROW,
                        ROWS, SCORES, TAIL, Contract, Phase, when)
from .hwgraph import Field, Layout

def groups(n: int, lanes: int) -> int:
    """Firings per query row of an attention template with ``lanes`` scores per firing:
    key groups of ``lanes`` keys (group j: keys j*lanes .. j*lanes + lanes - 1); the last
    group's lanes past key n - 1 are padding (score and V row 0, skipped by the softmax)."""
    return -(-n // lanes)


def blocks(n: int, rows: int) -> tuple[int, int]:
    """(full blocks, rows of the last partial block) when a head's query rows are
    interleaved ``rows`` at a time (:func:`online_softmax_pv`)."""
    return divmod(n, rows)


def _interleaved(name, n, lanes, rows, ports, tail_ports=None):
    """The score phases of the full head with ``rows`` query rows interleaved: for each
    block of ``rows`` rows, for each key group j, for each row i of the block (innermost);
    the rows of a last partial block in a phase of their own (``tail_ports``: its ports,
    default ``ports``). ``rows`` = 1: one row after another (loops i, j)."""
    g = groups(n, lanes)
    if rows == 1:
        return (Phase(name, ((ROW, n), (GROUP, g)), ports),)
    full, tail = blocks(n, rows)
    out = ()
    if full:
        out += (Phase(name, ((BLOCK, full), (GROUP, g), (ROW, rows)), ports),)
    if tail:
        out += (Phase(TAIL, ((GROUP, g), (ROW, rows if tail_ports else tail)),
                      tail_ports or ports),)
    return out


def qk_scores(n: int, outs=("s",), lanes: int = 1, rows: int = 1, **lat) -> Contract:
    """Loads K (n rows), then emits the n scaled scores q_i.k_j of each query row,
    ``lanes`` per cycle (one token of ``lanes`` scores per key group, see :func:`groups`),
    ``rows`` query rows interleaved (:func:`_interleaved`): Q row i is taken on its first
    key group. ``lat``: the latency's parameters (``mappers.catalog``)."""
    q = ("q", FIRST) if rows == 1 else ("q", when((FIRST, GROUP)))
    return Contract("qk_scores", ("k", "q"), tuple(outs), (
        Phase(LOAD, ((LOAD_ROW, n),), (("k", ALWAYS),)),
    ) + _interleaved(SCORES, n, lanes, rows, (q,) + tuple((o, ALWAYS) for o in outs)),
        latency=latency("qk_scores", lanes=lanes, **lat))


def kv_replay(n: int, lanes: int = 1, rows: int = 1, **lat) -> Contract:
    """Stores n V rows, then replays the key group of every score of
    :func:`qk_scores` (same order), ``lanes`` rows a token."""
    return Contract("kv_replay", ("v",), ("vr",), (
        Phase(LOAD, ((LOAD_ROW, n),), (("v", ALWAYS),)),
    ) + _interleaved(REPLAY, n, lanes, rows, (("vr", ALWAYS),)),
        latency=latency("kv_replay", lanes=lanes, **lat))


def online_softmax_pv(n: int, lanes: int = 1, rows: int = 1, **lat) -> Contract:
    """Running max m, sum l and output o of each query row over its scores, ``lanes``
    scores (and V rows) a firing, applied in key order; emits (o, l) per row on its last
    key group. ``rows`` rows interleaved (the order of :func:`qk_scores`), so a row's state
    is updated once every ``rows`` firings, the depth of the pipelined recurrence; the
    rows of a last partial block run with bubbles (firings that take nothing) in the
    places of the missing rows, keeping that distance."""
    if rows == 1:
        ports = (("s", ALWAYS), ("vr", ALWAYS), ("ol", LAST))
        return Contract("online_softmax_pv", ("s", "vr"), ("ol",), (
            Phase(ROWS, ((ROW, n), (GROUP, groups(n, lanes))), ports),
        ), latency=latency("online_softmax_pv", lanes=lanes, **lat))
    _, tail = blocks(n, rows)
    last = (LAST, GROUP)
    real = (BELOW, ROW, tail)
    return Contract("online_softmax_pv", ("s", "vr"), ("ol",), _interleaved(
        ROWS, n, lanes, rows, (("s", ALWAYS), ("vr", ALWAYS), ("ol", when(last))),
        (("s", when(real)), ("vr", when(real)), ("ol", when(last, real))) if tail else None),
        latency=latency("online_softmax_pv", lanes=lanes, **lat))


def normalize(n: int, **lat) -> Contract:
    """o / l per row: one reciprocal per row, d multipliers."""
    return Contract("normalize", ("ol",), ("o",), (
        Phase("rows", (("i", n),), (("ol", ALWAYS), ("o", ALWAYS))),
    ), latency=latency("normalize", **lat))


def row_max(n: int) -> Contract:
    return Contract("row_max", ("s",), ("m",), (
        Phase("rows", (("i", n), ("j", n)), (("s", ALWAYS), ("m", LAST))),
    ), latency=latency("row_max"))


def sub_exp(n: int) -> Contract:
    """e = exp(x - m): takes the row max once per row, forks e to the sum and the bypass."""
    return Contract("sub_exp", ("m", "s"), ("e_a", "e_b"), (
        Phase("rows", (("i", n), ("j", n)),
              (("m", FIRST), ("s", ALWAYS), ("e_a", ALWAYS), ("e_b", ALWAYS))),
    ), latency=latency("sub_exp"))


def row_sum(n: int) -> Contract:
    return Contract("row_sum", ("e",), ("l",), (
        Phase("rows", (("i", n), ("j", n)), (("e", ALWAYS), ("l", LAST))),
    ), latency=latency("row_sum"))


def recip_mul(n: int) -> Contract:
    """p = e * (1 / l): one reciprocal per row (on its first element), one multiply per e."""
    return Contract("recip_mul", ("l", "e"), ("p",), (
        Phase("rows", (("i", n), ("j", n)), (("l", FIRST), ("e", ALWAYS), ("p", ALWAYS))),
    ), latency=latency("recip_mul"))


def pv_accum(n: int) -> Contract:
    """o = sum_j p_j v_j, rounded to the output format on the row's last element."""
    return Contract("pv_accum", ("p", "vr"), ("o",), (
        Phase("rows", (("i", n), ("j", n)), (("p", ALWAYS), ("vr", ALWAYS), ("o", LAST))),
    ), latency=latency("pv_accum"))


# ---- token layouts of the attention datapath (widths from AttentionNumerics)

def vec_layout(fmt, d, name="x") -> Layout:
    return Layout((Field(name, fmt.bits, True, d),))


def score_layout(nm, lanes: int = 1) -> Layout:
    return Layout((Field("x", nm.score_bits, True, lanes),))


def max_layout(nm) -> Layout:
    return Layout((Field("m", nm.score_bits, True),))


def prob_layout(nm, name="e") -> Layout:
    return Layout((Field(name, nm.exp_bits, False),))


def sum_layout(nm) -> Layout:
    return Layout((Field("l", nm.sum_bits, False),))


def ol_layout(nm) -> Layout:
    return Layout((Field("o", nm.acc_bits, True, nm.head_dim), Field("l", nm.sum_bits, False)))

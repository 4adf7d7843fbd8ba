"""The template catalogue: each template's timing contract and port layouts, as data.

One function per template builds its :class:`~attnflow.mappers.contracts.Contract` from
its parameters. Latencies (the cycles from a firing to the output being visible) are the
registry's (``mappers.catalog``); the simulator and the HDL take them from the contracts.
"""
from __future__ import annotations

from .catalog import latency
from .contracts import (ALWAYS, FIRST, GROUP, LAST, LOAD, LOAD_ROW, REPLAY, ROW, ROWS, SCORES,
                        Contract, Phase)
from .hwgraph import Field, Layout

def groups(n: int, lanes: int) -> int:
    """Firings per query row of an attention template with ``lanes`` scores per firing:
    key groups of ``lanes`` keys (group j: keys j*lanes .. j*lanes + lanes - 1); the last
    group's lanes past key n - 1 are padding (score and V row 0, skipped by the softmax)."""
    return -(-n // lanes)


def qk_scores(n: int, outs=("s",), lanes: int = 1) -> Contract:
    """Loads K (n rows), then for each q row emits the n scaled scores q.k_j, ``lanes``
    per cycle (one token of ``lanes`` scores per key group, see :func:`groups`)."""
    return Contract("qk_scores", ("k", "q"), tuple(outs), (
        Phase(LOAD, ((LOAD_ROW, n),), (("k", ALWAYS),)),
        Phase(SCORES, ((ROW, n), (GROUP, groups(n, lanes))),
              (("q", FIRST),) + tuple((o, ALWAYS) for o in outs)),
    ), latency=latency("qk_scores"))


def kv_replay(n: int, lanes: int = 1) -> Contract:
    """Stores n V rows, then replays all n rows once per query row, ``lanes`` rows a token
    (n * groups(n, lanes) tokens)."""
    return Contract("kv_replay", ("v",), ("vr",), (
        Phase(LOAD, ((LOAD_ROW, n),), (("v", ALWAYS),)),
        Phase(REPLAY, ((ROW, n), (GROUP, groups(n, lanes))), (("vr", ALWAYS),)),
    ), latency=latency("kv_replay"))


def online_softmax_pv(n: int, lanes: int = 1) -> Contract:
    """Running max m, sum l and output o over a row of scores, ``lanes`` scores (and V
    rows) a firing, applied in key order; emits (o, l) per row."""
    return Contract("online_softmax_pv", ("s", "vr"), ("ol",), (
        Phase(ROWS, ((ROW, n), (GROUP, groups(n, lanes))),
              (("s", ALWAYS), ("vr", ALWAYS), ("ol", LAST))),
    ), latency=latency("online_softmax_pv"))


def normalize(n: int) -> Contract:
    """o / l per row: one reciprocal per row, d multipliers."""
    return Contract("normalize", ("ol",), ("o",), (
        Phase("rows", (("i", n),), (("ol", ALWAYS), ("o", ALWAYS))),
    ), latency=latency("normalize"))


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

"""The template catalogue: each template's timing contract and port layouts, as data.

One function per template builds its :class:`~attnflow.mappers.contracts.Contract` from
its parameters. Latencies (the cycles from a firing to the output being visible) are the
registry's (``mappers.catalog``); the simulator and the HDL take them from the contracts.
"""
from __future__ import annotations

from .catalog import latency
from .contracts import ALWAYS, FIRST, LAST, Contract, Phase
from .hwgraph import Field, Layout

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

def max_layout(nm) -> Layout:
    return Layout((Field("m", nm.score_bits, True),))


def prob_layout(nm, name="e") -> Layout:
    return Layout((Field(name, nm.exp_bits, False),))


def sum_layout(nm) -> Layout:
    return Layout((Field("l", nm.sum_bits, False),))



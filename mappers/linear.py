"""The ``linear`` template: y = x W^T + b on a PE x SIMD folded MAC array (FINN MVAU style).

A token is one whole row: the input port ``x`` carries K elements, the output port ``y``
carries M elements (field ``x`` on both, like every row-vector token of the catalogue).
Each firing does PE x SIMD multiply-accumulates: PE output neurons (a *group*) times
SIMD input elements (a *chunk*). A row takes ``F = (M / PE) * (K / SIMD)`` firings:

    firing f of a row: group p = f // (K/SIMD), chunk s = f % (K/SIMD)

The row is taken on the row's first firing (``x``: FIRST) and the M results leave on its
last (``y``: LAST). Weights sit in an on-chip ROM of F words of PE x SIMD weights,
addressed by f; biases in a ROM of M/PE words (``ir.numerics_linear`` packs both).

Timing contract: one phase ``rows``, loops ``(("i", N), ("f", F))``, ii 1, latency
``latency("linear")`` (``mappers.catalog``: PE x SIMD multipliers and adder tree, then bias
+ requantization, round, saturate). Without stalls a standalone layer fed through an input
channel of latency 1 finishes in ``N * F + 1 + latency("linear")`` cycles (reset to last
output, inclusive). The output channel carries the latency, as for every template.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir.numerics_linear import LinearNumerics
from .catalog import latency
from .contracts import FIRST, FOLD, LAST, ROW, ROWS, Contract, Phase
from ..ir.types import IntArray
from .hwgraph import Field, Instance, Layout

TEMPLATE = "linear"


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def check_folding(k: int, m: int, pe: int, simd: int) -> None:
    """Raise ValueError (one line naming the parameter and its allowed values) unless PE
    divides M and SIMD divides K."""
    for name, v in (("K", k), ("M", m)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"linear: {name} must be an integer >= 1, got {v!r}")
    for name, v, total, tname in (("PE", pe, m, "M"), ("SIMD", simd, k, "K")):
        allowed = divisors(total)
        if not isinstance(v, (int, np.integer)) or v not in allowed:
            raise ValueError(f"linear: {name} must divide {tname} = {total}: allowed "
                             f"{name} values are {', '.join(map(str, allowed))}; got {v!r}")


def fold(k: int, m: int, pe: int, simd: int) -> int:
    """Firings per row: (M / PE) * (K / SIMD)."""
    check_folding(k, m, pe, simd)
    return (m // pe) * (k // simd)


def linear_contract(n: int, k: int, m: int, pe: int, simd: int) -> Contract:
    """N rows; each row: take x on the first of F firings, emit y on the last."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"linear: N must be an integer >= 1, got {n!r}")
    f = fold(k, m, pe, simd)
    return Contract(TEMPLATE, ("x",), ("y",), (
        Phase(ROWS, ((ROW, n), (FOLD, f)), (("x", FIRST), ("y", LAST))),
    ), latency=latency(TEMPLATE))


def x_layout(num: LinearNumerics) -> Layout:
    return Layout((Field("x", num.x.bits, True, num.k),))


def y_layout(num: LinearNumerics) -> Layout:
    return Layout((Field("x", num.y.bits, True, num.m),))


@dataclass(frozen=True)
class LinearParams:
    """Everything one ``linear`` instance needs: rows, folding, numerics, weights, bias.

    ``weights``: M rows of K stored integers (format ``numerics.w``); ``bias``: M stored
    integers (``numerics.bias``, accumulator scale). ``ir.types.IntArray`` (or tuples), so
    the whole object is hashable and fits ``Instance.params``; build it with :meth:`make`
    from arrays.
    """
    n: int
    pe: int
    simd: int
    numerics: LinearNumerics
    weights: IntArray | tuple
    bias: IntArray | tuple

    def __post_init__(self):
        num = self.numerics
        if not isinstance(num, LinearNumerics):
            raise ValueError(f"linear: numerics must be a LinearNumerics, got {type(num).__name__}")
        if not isinstance(self.n, (int, np.integer)) or self.n < 1:
            raise ValueError(f"linear: N must be an integer >= 1, got {self.n!r}")
        check_folding(num.k, num.m, self.pe, self.simd)
        w, b = self.w_array(), self.b_array()
        if w.shape != (num.m, num.k):
            raise ValueError(f"linear: weights must be M x K = {num.m} x {num.k}, got "
                             f"{'x'.join(map(str, w.shape))}")
        if b.shape != (num.m,):
            raise ValueError(f"linear: bias must have M = {num.m} elements, got {b.size}")
        for what, arr, fmt in (("weights", w, num.w), ("bias", b, num.bias)):
            if arr.size and (arr.min() < fmt.min_int or arr.max() > fmt.max_int):
                raise ValueError(f"linear: {what} must be stored integers of {fmt} "
                                 f"({fmt.min_int}..{fmt.max_int}), got {arr.min()}..{arr.max()}")

    @classmethod
    def make(cls, n, pe, simd, numerics, weights, bias=None) -> "LinearParams":
        """From arrays: weights (M, K); bias (M,) or None (zeros)."""
        w = np.asarray(weights)
        w = w if w.dtype.kind == "i" else w.astype(np.int64)
        if w.ndim != 2:
            raise ValueError(f"linear: weights must be a 2-d array (M, K), got shape {w.shape}")
        b = np.zeros(w.shape[0], dtype=np.int64) if bias is None else \
            np.asarray(bias, dtype=np.int64).reshape(-1)
        return cls(int(n), int(pe), int(simd), numerics, IntArray(w), IntArray(b))

    # --- derived
    @property
    def k(self) -> int:
        return self.numerics.k

    @property
    def m(self) -> int:
        return self.numerics.m

    @property
    def groups(self) -> int:
        """M / PE: output-neuron groups per row."""
        return self.m // self.pe

    @property
    def chunks(self) -> int:
        """K / SIMD: input chunks per group."""
        return self.k // self.simd

    @property
    def fold(self) -> int:
        """F = groups * chunks: firings (cycles at full rate) per row."""
        return self.groups * self.chunks

    def w_array(self) -> np.ndarray:
        """The (M, K) weights (read-only; the stored integer type, e.g. int8)."""
        if isinstance(self.weights, IntArray):
            return self.weights.array
        return np.asarray(self.weights, dtype=np.int64).reshape(len(self.weights), -1)

    def b_array(self) -> np.ndarray:
        if isinstance(self.bias, IntArray):
            return self.bias.array.reshape(-1)
        return np.asarray(self.bias, dtype=np.int64).reshape(-1)

    def contract(self) -> Contract:
        return linear_contract(self.n, self.k, self.m, self.pe, self.simd)

    def instance(self, name: str) -> Instance:
        """The HwGraph instance: the parameters as (key, value) pairs, all hashable."""
        params = {"N": self.n, "K": self.k, "M": self.m, "PE": self.pe, "SIMD": self.simd,
                  "numerics": self.numerics, "weights": self.weights, "bias": self.bias}
        return Instance(name, TEMPLATE, self.contract(), tuple(sorted(params.items())))

    @classmethod
    def of(cls, inst: Instance) -> "LinearParams":
        """Back from an instance made by :meth:`instance`."""
        if inst.template != TEMPLATE:
            raise ValueError(f"{inst.name}: not a {TEMPLATE} instance ({inst.template})")
        p = cls(inst.param("N"), inst.param("PE"), inst.param("SIMD"), inst.param("numerics"),
                inst.param("weights"), inst.param("bias"))
        if (p.k, p.m) != (inst.param("K"), inst.param("M")):
            raise ValueError(f"{inst.name}: K, M params disagree with the numerics")
        return p

"""The ``residual_add`` template: inputs ``a`` (the skip path) and ``b`` (the block
output), ``y = saturate(ra(a) + rb(b), out)`` element by element, where ``ra``/``rb`` are
``RescaleNumerics`` to ``out.frac`` fractional bits, each into an intermediate format
wide enough never to saturate (one rounding per term, one saturation of the sum):
:class:`ResidualNumerics`.

One row from each input, one row out (the row contract of ``templates.rows``); folded
to ``lanes`` < D it takes D / lanes firings a row (``hdl.datapath.lane_rows``). The
model is :func:`residual_golden`, the component its arithmetic in hardware
(``hdl.datapath.rescale_hw``, one adder, the saturation). The depth the skip channel
needs is a mapping rule, ``mappers.rowops.skip_depth``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Signal, signed

from ..hdl.datapath import lane_rows, rescale_hw, saturate_hw
from ..hdl.templates import Template
from ..ir.numerics import MAX_BITS, requant, saturate, signed_bits
from ..ir.numerics_norm import RescaleNumerics, rescale_golden
from ..ir.types import FixedFormat
from ..mappers.catalog import TemplateDef
from ..mappers.contracts import Contract
from ..mappers.hwgraph import Instance, Layout
from ..targets.estimate import NodeModel, lanes_cost, rescale_cost, saturate_cost
from .rows import (check_fmt, check_int, check_lanes, check_problems, check_template, row_layout,
                   rows_contract)


# ---------------------------------------------------------------- numerics, parameters and contract

@dataclass(frozen=True)
class ResidualNumerics:
    """``y = saturate(ra(A) + rb(B), out)``, element by element.

    ``A``: stored ints of format ``a`` (the skip path), ``B``: of ``b`` (the block output);
    the real result is ``scale_a * a_real + scale_b * b_real``. ``ra`` (:attr:`rescale_a`)
    is the ``RescaleNumerics`` from ``a`` to ``out.frac`` fractional bits with factor
    ``scale_a``: ``requant(A * mult_a, shift_a)`` (exact when ``scale_a * 2**(out.frac -
    a.frac)`` is a power of two >= 1, else rounded half up once), into an intermediate
    format of :attr:`a_bits` bits that holds every result, so its saturation never acts;
    ``rb`` likewise. The sum (:attr:`sum_bits`) is exact; the only saturation is to ``out``.
    Error against the real sum, without saturation: <= 0.5 output LSB per rounded term,
    plus ``|term| * 2**-16`` for a term whose factor is not a power of two (the 16-bit
    multiplier); exact when both factors are powers of two >= 1.
    """
    a: FixedFormat
    b: FixedFormat
    out: FixedFormat
    scale_a: float = 1.0
    scale_b: float = 1.0

    def __post_init__(self):
        t = "residual_add"
        for name in ("a", "b", "out"):
            check_fmt(t, name, getattr(self, name))
        for name in ("scale_a", "scale_b"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v)
                                           and v > 0):
                raise ValueError(f"{t}: {name} must be a finite number > 0, got {v!r}")
        for side in ("a", "b"):
            r = RescaleNumerics(getattr(self, side), FixedFormat(MAX_BITS, self.out.frac),
                                getattr(self, f"scale_{side}"))
            check_problems(t, [(f"rescale_{side}", msg) for _, msg in r.check()])
        if self.sum_bits > MAX_BITS:
            raise ValueError(f"residual_add: the sum needs {self.sum_bits} bits (limit "
                             f"{MAX_BITS}); bring the formats closer")

    def _range(self, fmt: FixedFormat, scale: float) -> int:
        """Largest |requant(X * mult, shift)| over the stored ints X of ``fmt``."""
        r = RescaleNumerics(fmt, FixedFormat(MAX_BITS, self.out.frac), scale)
        return max(abs(requant(v * r.mult, r.shift)) for v in (fmt.min_int, fmt.max_int))

    def _rescale(self, side: str) -> RescaleNumerics:
        fmt, scale = getattr(self, side), getattr(self, f"scale_{side}")
        bits = max(2, signed_bits(self._range(fmt, scale)))
        return RescaleNumerics(fmt, FixedFormat(bits, self.out.frac), scale)

    @property
    def rescale_a(self) -> RescaleNumerics:
        return self._rescale("a")

    @property
    def rescale_b(self) -> RescaleNumerics:
        return self._rescale("b")

    @property
    def a_bits(self) -> int:
        return self.rescale_a.out.bits

    @property
    def b_bits(self) -> int:
        return self.rescale_b.out.bits

    @property
    def sum_bits(self) -> int:
        return signed_bits(self._range(self.a, self.scale_a) + self._range(self.b, self.scale_b))


def residual_golden(a_ints, b_ints, num: ResidualNumerics) -> np.ndarray:
    """saturate(rescale(A, ra) + rescale(B, rb), out), element by element (int64)."""
    ra = rescale_golden(np.asarray(a_ints, dtype=np.int64), num.rescale_a)
    rb = rescale_golden(np.asarray(b_ints, dtype=np.int64), num.rescale_b)
    return saturate(ra + rb, num.out)


def residual_float(a_ints, b_ints, num: ResidualNumerics) -> np.ndarray:
    """The real sum scale_a * a_real + scale_b * b_real."""
    a = np.asarray(a_ints, dtype=np.float64) * 2.0 ** -num.a.frac
    b = np.asarray(b_ints, dtype=np.float64) * 2.0 ** -num.b.frac
    return num.scale_a * a + num.scale_b * b


@dataclass(frozen=True)
class ResidualParams:
    """One ``residual_add`` instance: rows of D; ``a`` the skip, ``b`` the block output."""
    n: int
    dim: int
    numerics: ResidualNumerics
    #: elements added per firing (None: the whole row in one firing)
    lanes: int | None = None

    @property
    def fires(self) -> int:
        """Firings per row: D / lanes."""
        return self.dim // check_lanes("residual_add", self.dim, self.lanes)

    def __post_init__(self):
        check_int("residual_add", "N", self.n)
        check_int("residual_add", "D", self.dim)
        check_lanes("residual_add", self.dim, self.lanes)
        if not isinstance(self.numerics, ResidualNumerics):
            raise ValueError(f"residual_add: numerics must be a ResidualNumerics, got "
                             f"{type(self.numerics).__name__}")

    def a_layout(self) -> Layout:
        return row_layout(self.numerics.a, self.dim)

    def b_layout(self) -> Layout:
        return row_layout(self.numerics.b, self.dim)

    def y_layout(self) -> Layout:
        return row_layout(self.numerics.out, self.dim)

    def golden(self, a_ints, b_ints) -> np.ndarray:
        return residual_golden(np.asarray(a_ints, dtype=np.int64).reshape(-1, self.dim),
                               np.asarray(b_ints, dtype=np.int64).reshape(-1, self.dim),
                               self.numerics)

    def contract(self) -> Contract:
        return rows_contract("residual_add", self.n, ("a", "b"), ("y",), self.fires)

    def instance(self, name: str) -> Instance:
        params = {"N": self.n, "D": self.dim, "numerics": self.numerics, "lanes": self.lanes}
        return Instance(name, "residual_add", self.contract(), tuple(sorted(params.items())))

    @classmethod
    def of(cls, inst: Instance) -> "ResidualParams":
        check_template(inst, ("residual_add",))
        return cls(inst.param("N"), inst.param("D"), inst.param("numerics"),
                   inst.param("lanes"))


# ---------------------------------------------------------------- behavioural model

def residual_add_model(inst, nm, ins):
    return {"y": {"x": ResidualParams.of(inst).golden(ins["a"]["x"], ins["b"]["x"])}}


# ---------------------------------------------------------------- component

class ResidualAdd(Template):
    """``residual_add``: y = saturate(ra(a) + rb(b), out) per element."""

    def __init__(self, inst, nm, ports):
        self.params = ResidualParams.of(inst)
        super().__init__(inst, nm, ports)

    def datapath(self, m, seq):
        num = self.params.numerics

        def add(chunks):
            ys = []
            for i, (a, b) in enumerate(zip(*chunks)):
                ra = rescale_hw(m, num.rescale_a, a, name=f"ra{i}")
                rb = rescale_hw(m, num.rescale_b, b, name=f"rb{i}")
                s = Signal(signed(num.sum_bits), name=f"sum{i}")
                y = Signal(signed(num.out.bits), name=f"y{i}")
                m.d.comb += [s.eq(ra + rb), y.eq(saturate_hw(s, num.out))]
                ys.append(y)
            return ys

        lane_rows(self, m, seq, ("a", "b"), self.params.fires, add)


# ---------------------------------------------------------------- resource model

def residual_resources(m: NodeModel, inst, hw) -> None:
    """:class:`ResidualAdd`: per lane two rescales into formats that never saturate,
    one adder (as wide as its significant operand bits, + 1), the saturation of the sum."""
    p = ResidualParams.of(inst)
    num = p.numerics
    n = lanes_cost(m, inst, hw, p, ("a", "b"))
    wa = rescale_cost(m, num.rescale_a, n)
    wb = rescale_cost(m, num.rescale_b, n)
    m.logic.add("add", min(num.sum_bits, max(wa, wb) + 1), n)
    saturate_cost(m, num.sum_bits, num.out, n)


TEMPLATE_DEFS = (
    TemplateDef("residual_add", 1, ResidualParams, residual_add_model, ResidualAdd,
                residual_resources, "two rescales, one add, saturation"),
)

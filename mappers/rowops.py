"""Row templates of a transformer encoder block: ``layernorm``, ``rmsnorm``, ``activation``,
``residual_add`` and ``fork``.

Every port carries one whole row per token: a single vector field ``x`` of D signed
elements (the same layout as ``linear``'s ports, :func:`row_layout`). Every template
fires once per row, taking one token from each input and putting one token on each
output; the timing contract is one phase ``rows`` with loop ``(("i", N),)`` and every port
``always``, ii 1, and the latency from ``mappers.catalog``. Standalone, fed by input
channels of latency 1 without stalls, a template finishes in ``N + 1 + latency(t)``
cycles (reset to last output, inclusive).

The numerics travel in the instance params as frozen, hashable dataclasses (the
``hw.numerics`` of the graph is not used, as for ``linear``):

* ``layernorm`` / ``rmsnorm`` (:class:`NormParams`): ``ir.numerics_norm.LayerNormNumerics``
  and the per-element gamma (and beta for LayerNorm) as stored integers; the RTL holds
  them as constants. RMSNorm has no shift: beta must be all zero.
* ``activation`` (:class:`ActivationParams`): ``fn`` ``gelu`` (``GeluNumerics``: ROM or
  I-BERT polynomial per ``kind``), a gated activation ``gelu_tanh``, ``gelu_fast``,
  ``quick_gelu`` or ``silu`` (``ir.numerics_act.GateNumerics``: ROM or interpolated gate
  table), ``relu`` or ``rescale`` (``RescaleNumerics``: ReLU then the requantization, or
  the requantization alone), element by element.
* ``residual_add`` (:class:`ResidualParams`, :class:`ResidualNumerics`): inputs ``a``
  (the skip path) and ``b`` (the block output), ``y = saturate(ra(a) + rb(b), out)`` where
  ``ra``/``rb`` are ``RescaleNumerics`` to ``out.frac`` fractional bits, each into an
  intermediate format wide enough never to saturate (one rounding per term, one
  saturation of the sum).
* ``fork`` (:class:`ForkParams`): one input ``x``, ``ways`` (2) identical outputs
  ``y0``, ``y1``...: the residual skip path needs the block input twice.

The residual structure ``fork -> block -> residual_add.b`` with the skip ``fork.y1 ->
residual_add.a`` runs at full rate only when the skip channel holds every row in flight
on the block: :func:`skip_depth` (checked against the simulator in ``tests/test_rowops.py``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ir.numerics import MAX_BITS, requant, saturate, signed_bits
from ..ir.numerics_act import GATE_RANGE, GateNumerics, gate_golden
from ..ir.numerics_norm import (GeluNumerics, LayerNormNumerics, RescaleNumerics,
                                gelu_golden, layernorm_golden, relu_golden, rescale_golden,
                                rmsnorm_golden)
from ..ir.types import FixedFormat
from .catalog import latency
from .contracts import ALWAYS, FIRST, LAST, Contract, Phase
from .hwgraph import Field, Instance, Layout

#: the element-wise templates defined here (latencies: ``mappers.catalog``)
TEMPLATES = ("layernorm", "rmsnorm", "activation", "residual_add", "fork")
ACTIVATION_FNS = ("gelu", *(f for f in GATE_RANGE if f != "gelu"), "relu", "rescale")


# ---------------------------------------------------------------- shared pieces

def _check_int(template: str, name: str, v, lo: int = 1) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{template}: {name} must be an integer >= {lo}, got {v!r}")


def _check_fmt(template: str, name: str, f) -> None:
    if not isinstance(f, FixedFormat) or not f.signed or f.bits < 2:
        raise ValueError(f"{template}: format {name} must be a signed FixedFormat of >= 2 "
                         f"bits, got {f!r}")


def _check_problems(template: str, problems) -> None:
    if problems:
        field, msg = problems[0]
        raise ValueError(f"{template}: {field}: {msg}")


def _ints(template: str, what: str, values, dim: int, fmt: FixedFormat) -> tuple[int, ...]:
    """A vector of D stored integers of ``fmt`` as a tuple (hashable), checked."""
    arr = np.asarray(values, dtype=np.int64).reshape(-1)
    if arr.size != dim:
        raise ValueError(f"{template}: {what} must have D = {dim} elements, got {arr.size}")
    if arr.min() < fmt.min_int or arr.max() > fmt.max_int:
        raise ValueError(f"{template}: {what} must be stored integers of {fmt} "
                         f"({fmt.min_int}..{fmt.max_int}), got {arr.min()}..{arr.max()}")
    return tuple(int(v) for v in arr.tolist())


def row_layout(fmt: FixedFormat, dim: int) -> Layout:
    """A row token: field ``x``, ``dim`` signed elements of ``fmt.bits`` bits."""
    return Layout((Field("x", fmt.bits, True, dim),))


def rows_contract(template: str, n: int, inputs, outputs, fires: int = 1) -> Contract:
    """``fires`` firings per row (an element-wise template folded to D / fires lanes);
    with one, every port is used on every firing; with more, the inputs are taken on a
    row's first firing and the output row leaves on its last (as ``linear``)."""
    _check_int(template, "N", n)
    if fires == 1:
        return Contract(template, tuple(inputs), tuple(outputs), (
            Phase("rows", (("i", int(n)),), tuple((p, ALWAYS) for p in (*inputs, *outputs))),
        ), latency=latency(template))
    return Contract(template, tuple(inputs), tuple(outputs), (
        Phase("rows", (("i", int(n)), ("f", int(fires))),
              tuple((p, FIRST) for p in inputs) + tuple((p, LAST) for p in outputs)),
    ), latency=latency(template))


def check_lanes(template: str, dim: int, lanes) -> int:
    """The lanes of an element-wise template (None: all D); must divide D."""
    if lanes is None:
        return dim
    _check_int(template, "lanes", lanes)
    if dim % lanes:
        raise ValueError(f"{template}: lanes {lanes} must divide D = {dim}; allowed: "
                         f"{', '.join(str(v) for v in range(1, dim + 1) if dim % v == 0)}")
    return int(lanes)


def skip_depth(path_latency: int, row_period: int = 1) -> int:
    """Least depth of a residual skip channel for full rate.

    ``path_latency``: cycles from the fork's firing of a row to the ``residual_add`` firing
    of the same row when nothing stalls (the sum of the channel latencies on the block
    path, plus the cycles a multi-firing template spends between taking a row and
    emitting it, e.g. F - 1 for a folded ``linear``); ``row_period``: cycles per row of
    the slowest template (F for a folded ``linear``, 1 otherwise). The fork may put row
    i + depth on the skip only after the add took row i (a freed slot is writable one
    cycle later), so the skip needs ``ceil((path_latency + 1) / row_period)`` slots.
    Fewer only throttles such a block (rows per cycle: min(depth / (path_latency + 1),
    1 / row_period));
    it deadlocks only when the block needs more rows than the skip holds before it emits
    its first row (e.g. a whole-sequence buffer: then depth >= N is necessary).
    """
    _check_int("skip_depth", "path_latency", path_latency, 0)
    _check_int("skip_depth", "row_period", row_period)
    return max(1, -(-(path_latency + 1) // row_period))


def _template_of(inst: Instance, allowed) -> None:
    if inst.template not in allowed:
        raise ValueError(f"{inst.name}: not a {' or '.join(allowed)} instance ({inst.template})")


# ---------------------------------------------------------------- layernorm / rmsnorm

@dataclass(frozen=True)
class NormParams:
    """One ``layernorm`` (``rms=False``) or ``rmsnorm`` (``rms=True``) instance.

    ``gamma``: D stored integers of ``numerics.gamma``; ``beta``: D of ``numerics.beta``
    (all zero for RMSNorm). Build it with :meth:`make` from arrays.
    """
    n: int
    numerics: LayerNormNumerics
    gamma: tuple[int, ...]
    beta: tuple[int, ...]
    rms: bool = False

    def __post_init__(self):
        t = self.template
        num = self.numerics
        if not isinstance(num, LayerNormNumerics):
            raise ValueError(f"{t}: numerics must be a LayerNormNumerics, got {type(num).__name__}")
        _check_int(t, "N", self.n)
        _check_problems(t, num.check())
        _ints(t, "gamma", self.gamma, num.dim, num.gamma)
        _ints(t, "beta", self.beta, num.dim, num.beta)
        if self.rms and any(self.beta):
            raise ValueError(f"{t}: beta must be all zero (RMSNorm has no shift)")

    @classmethod
    def make(cls, n, numerics, gamma, beta=None, rms=False) -> "NormParams":
        t = "rmsnorm" if rms else "layernorm"
        if not isinstance(numerics, LayerNormNumerics):
            raise ValueError(f"{t}: numerics must be a LayerNormNumerics, got "
                             f"{type(numerics).__name__}")
        d = numerics.dim
        beta = np.zeros(d, dtype=np.int64) if beta is None else beta
        return cls(int(n), numerics, _ints(t, "gamma", gamma, d, numerics.gamma),
                   _ints(t, "beta", beta, d, numerics.beta), bool(rms))

    @property
    def template(self) -> str:
        return "rmsnorm" if self.rms else "layernorm"

    @property
    def dim(self) -> int:
        return self.numerics.dim

    def x_layout(self) -> Layout:
        return row_layout(self.numerics.x, self.dim)

    def y_layout(self) -> Layout:
        return row_layout(self.numerics.out, self.dim)

    def golden(self, x_ints) -> np.ndarray:
        x = np.asarray(x_ints, dtype=np.int64).reshape(-1, self.dim)
        if self.rms:
            return rmsnorm_golden(x, self.gamma, self.numerics)
        return layernorm_golden(x, self.gamma, self.beta, self.numerics)

    def contract(self) -> Contract:
        return rows_contract(self.template, self.n, ("x",), ("y",))

    def instance(self, name: str) -> Instance:
        params = {"N": self.n, "D": self.dim, "numerics": self.numerics, "gamma": self.gamma,
                  "beta": self.beta, "rms": self.rms}
        return Instance(name, self.template, self.contract(), tuple(sorted(params.items())))

    @classmethod
    def of(cls, inst: Instance) -> "NormParams":
        _template_of(inst, ("layernorm", "rmsnorm"))
        p = cls(inst.param("N"), inst.param("numerics"), inst.param("gamma"),
                inst.param("beta"), inst.param("rms"))
        if p.template != inst.template or p.dim != inst.param("D"):
            raise ValueError(f"{inst.name}: D, rms params disagree with the template/numerics")
        return p


# ---------------------------------------------------------------- activation

@dataclass(frozen=True)
class ActivationParams:
    """One ``activation`` instance: ``fn`` (one of ACTIVATION_FNS) on each of D elements.

    ``numerics``: ``GeluNumerics`` for gelu, ``GateNumerics`` of the same ``fn`` for the
    gated activations, ``RescaleNumerics`` for relu and rescale (its ``x`` and ``out``
    formats are the port formats)."""
    n: int
    dim: int
    fn: str
    numerics: GeluNumerics | GateNumerics | RescaleNumerics
    #: elements computed per firing (None: the whole row in one firing)
    lanes: int | None = None

    @property
    def fires(self) -> int:
        """Firings per row: D / lanes."""
        return self.dim // check_lanes("activation", self.dim, self.lanes)

    def __post_init__(self):
        t = "activation"
        _check_int(t, "N", self.n)
        _check_int(t, "D", self.dim)
        check_lanes(t, self.dim, self.lanes)
        if self.fn not in ACTIVATION_FNS:
            raise ValueError(f"{t}: fn must be one of {', '.join(ACTIVATION_FNS)}, got {self.fn!r}")
        want = (GeluNumerics if self.fn == "gelu" else
                RescaleNumerics if self.fn in ("relu", "rescale") else GateNumerics)
        if not isinstance(self.numerics, want):
            raise ValueError(f"{t}: fn {self.fn} needs a {want.__name__}, got "
                             f"{type(self.numerics).__name__}")
        if want is GateNumerics and self.numerics.fn != self.fn:
            raise ValueError(f"{t}: fn {self.fn} needs GateNumerics of {self.fn}, got "
                             f"{self.numerics.fn}")
        _check_problems(t, self.numerics.check())

    @property
    def x_fmt(self) -> FixedFormat:
        return self.numerics.x

    @property
    def y_fmt(self) -> FixedFormat:
        return self.numerics.out

    def x_layout(self) -> Layout:
        return row_layout(self.x_fmt, self.dim)

    def y_layout(self) -> Layout:
        return row_layout(self.y_fmt, self.dim)

    def golden(self, x_ints) -> np.ndarray:
        x = np.asarray(x_ints, dtype=np.int64).reshape(-1, self.dim)
        if self.fn == "gelu":
            return gelu_golden(x, self.numerics)
        if self.fn == "relu":
            return relu_golden(x, self.numerics)
        if self.fn == "rescale":
            return rescale_golden(x, self.numerics)
        return gate_golden(x, self.numerics)

    def contract(self) -> Contract:
        return rows_contract("activation", self.n, ("x",), ("y",), self.fires)

    def instance(self, name: str) -> Instance:
        params = {"N": self.n, "D": self.dim, "fn": self.fn, "numerics": self.numerics,
                  "lanes": self.lanes}
        return Instance(name, "activation", self.contract(), tuple(sorted(params.items())))

    @classmethod
    def of(cls, inst: Instance) -> "ActivationParams":
        _template_of(inst, ("activation",))
        return cls(inst.param("N"), inst.param("D"), inst.param("fn"), inst.param("numerics"),
                   inst.param("lanes"))


# ---------------------------------------------------------------- residual_add

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
            _check_fmt(t, name, getattr(self, name))
        for name in ("scale_a", "scale_b"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v)
                                           and v > 0):
                raise ValueError(f"{t}: {name} must be a finite number > 0, got {v!r}")
        for side in ("a", "b"):
            r = RescaleNumerics(getattr(self, side), FixedFormat(MAX_BITS, self.out.frac),
                                getattr(self, f"scale_{side}"))
            _check_problems(t, [(f"rescale_{side}", msg) for _, msg in r.check()])
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
        _check_int("residual_add", "N", self.n)
        _check_int("residual_add", "D", self.dim)
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
        _template_of(inst, ("residual_add",))
        return cls(inst.param("N"), inst.param("D"), inst.param("numerics"),
                   inst.param("lanes"))


# ---------------------------------------------------------------- fork

@dataclass(frozen=True)
class ForkParams:
    """One ``fork`` instance: input ``x`` (rows of D elements of ``fmt``) copied to the
    ``ways`` outputs ``y0`` .. ``y{ways-1}``."""
    n: int
    dim: int
    fmt: FixedFormat
    ways: int = 2

    def __post_init__(self):
        _check_int("fork", "N", self.n)
        _check_int("fork", "D", self.dim)
        _check_int("fork", "ways", self.ways, 2)
        _check_fmt("fork", "fmt", self.fmt)

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(f"y{k}" for k in range(self.ways))

    def layout(self) -> Layout:
        return row_layout(self.fmt, self.dim)

    def contract(self) -> Contract:
        return rows_contract("fork", self.n, ("x",), self.outputs)

    def instance(self, name: str) -> Instance:
        params = {"N": self.n, "D": self.dim, "fmt": self.fmt, "ways": self.ways}
        return Instance(name, "fork", self.contract(), tuple(sorted(params.items())))

    @classmethod
    def of(cls, inst: Instance) -> "ForkParams":
        _template_of(inst, ("fork",))
        return cls(inst.param("N"), inst.param("D"), inst.param("fmt"), inst.param("ways"))


def elementwise_fires(dim: int, period: int) -> int:
    """Firings per row of an element-wise template between stages of row period
    ``period``: the largest divisor F of D with F <= period (lanes = D / F), so the
    template never becomes the bottleneck and uses the fewest lanes that keep up."""
    return max(f for f in range(1, min(dim, max(1, period)) + 1) if dim % f == 0)

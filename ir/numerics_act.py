"""The feed-forward activations as the model families define them, each with its float
reference and its integer definition (golden model, simulator and RTL alike).

Every activation here is ``f(x) = x * g(x)`` with a *gate* g rising from 0 (x -> -inf)
to 1 (x -> +inf):

=============  ==========================================  ==============================
``fn``         gate g(x)                                   Hugging Face ``hidden_act``
=============  ==========================================  ==============================
``gelu``       Phi(x) = (1 + erf(x / sqrt 2)) / 2          ``gelu``, ``gelu_python``
``gelu_tanh``  (1 + tanh(sqrt(2/pi) (x + 0.044715 x**3))) / 2  ``gelu_new``,
                                                           ``gelu_pytorch_tanh``
``gelu_fast``  (1 + tanh(0.7978845608 x (1 + 0.044715 x**2))) / 2  ``gelu_fast``
``quick_gelu`` sigmoid(1.702 x)                            ``quick_gelu``
``silu``       sigmoid(x)                                  ``silu``, ``swish``
=============  ==========================================  ==============================

(``gelu_fast`` is ``gelu_tanh`` with sqrt(2/pi) cut to 10 digits, as transformers writes it:
the two differ by about 1e-11.) :func:`activation_float` is each one in float64, written
as transformers writes it.

The erf GELU keeps its own integer definitions (``ir.numerics_norm.GeluNumerics``: a ROM,
or I-BERT's polynomial). The others are :class:`GateNumerics`:

* ``method="rom"`` (inputs of at most ``ROM_MAX_BITS`` bits): a table of every input
  pattern, ``round(f(X / 2**F) * 2**out.frac)`` saturated, addressed by the raw
  two's-complement bits: error <= 0.5 output LSB;
* ``method="table"`` (any width): the gate from a table with linear interpolation. With
  X the stored input (F fractional bits), the gate is sampled every ``2**-STEP_BITS``
  on ``[-R, R]`` (R = :data:`GATE_RANGE` of the function) in ``GATE_FRAC`` fractional
  bits, ``G[k] = round(g(-R + k 2**-S) 2**GATE_FRAC)``, k = 0 .. 2R 2**S. Then

  - ``off = clip(X, -R 2**F, R 2**F) + R 2**F`` (>= 0);
  - F >= S: ``k = off >> (F - S)``, ``t = off mod 2**(F - S)``,
    ``H = G[k] + requant(t * D[k], F - S)`` with ``D[k] = G[k+1] - G[k]`` (the ROM word
    holds G[k] and D[k]); F < S: ``H = G[off << (S - F)]`` (every input is a sample);
  - ``Y = saturate(requant(X * H, F + GATE_FRAC - out.frac), out)``.

  The ends are exact: g(+-R) rounds to 1 and 0 in GATE_FRAC bits, so beyond the range H
  is exactly 1 (Y = X) or 0. Error against the float function, for outputs that do not
  saturate: ``|x| * (h**2 / 8 * max|g''| + 2**-GATE_FRAC) + 0.5`` output LSB, h = 2**-S
  (interpolation, the rounding of G and of the interpolated step), plus the tail
  ``|x| * g(-R)`` beyond -R (and ``|x| (1 - g(R))`` beyond R): for ``gelu_tanh`` with
  |x| <= 4 about 4e-5 + 0.5 LSB.

``method="auto"``: the ROM up to ROM_MAX_BITS input bits, else the table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .numerics import MAX_BITS, requant, round_int, saturate, signed_bits
from .numerics_norm import gelu_float
from .types import FixedFormat

#: every gated activation and the half-width R of its gate table (g(-R) * R and
#: (1 - g(R)) * R are below 2**-20 for the GELUs, 2e-6 for SiLU)
GATE_RANGE = {"gelu": 8, "gelu_tanh": 8, "gelu_fast": 8, "quick_gelu": 12, "silu": 16}
#: the activations of a feed-forward block (``model.activation``)
ACTIVATIONS = ("gelu", "gelu_tanh", "gelu_fast", "quick_gelu", "silu", "relu")
#: fractional bits of the gate H ~= g(x)
GATE_FRAC = 16
#: the table's step is 2**-STEP_BITS
STEP_BITS = 5
#: widest input for which method="auto" chooses the full ROM (2**bits words)
ROM_MAX_BITS = 10

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _sigmoid(z):
    z = np.asarray(z, dtype=np.float64)
    return np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))),
                    np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))


def gate_float(fn: str, x) -> np.ndarray:
    """The gate g(x) of activation ``fn`` in float64."""
    x = np.asarray(x, dtype=np.float64)
    if fn == "gelu":
        erf = np.vectorize(math.erf, otypes=[np.float64])
        return 0.5 * (1.0 + erf(x / math.sqrt(2.0)))
    if fn == "gelu_tanh":
        return 0.5 * (1.0 + np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)))
    if fn == "gelu_fast":
        return 0.5 * (1.0 + np.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))
    if fn == "quick_gelu":
        return _sigmoid(1.702 * x)
    if fn == "silu":
        return _sigmoid(x)
    raise ValueError(f"activation: no gate for {fn!r}; gated functions: "
                     f"{', '.join(GATE_RANGE)}")


def activation_float(fn: str, x) -> np.ndarray:
    """Activation ``fn`` (one of :data:`ACTIVATIONS`) in float64."""
    x = np.asarray(x, dtype=np.float64)
    if fn == "relu":
        return np.maximum(x, 0.0)
    if fn == "gelu":
        return gelu_float(x)
    if fn == "gelu_tanh":       # transformers' NewGELUActivation, term for term
        return 0.5 * x * (1.0 + np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)))
    if fn == "gelu_fast":       # FastGELUActivation
        return 0.5 * x * (1.0 + np.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))
    return x * gate_float(fn, x)


@lru_cache(maxsize=None)
def activation_rom(fn: str, x: FixedFormat, out: FixedFormat) -> tuple[int, ...]:
    """ROM of activation ``fn``: word a (the raw two's-complement bits of X) holds
    saturate(round(f(X / 2**x.frac) * 2**out.frac)) as a signed integer."""
    raw = np.arange(1 << x.bits, dtype=np.int64)
    xi = np.where(raw >> (x.bits - 1), raw - (1 << x.bits), raw)
    vals = activation_float(fn, xi / 2.0 ** x.frac) * 2.0 ** out.frac
    return tuple(round_int(float(v), out.min_int, out.max_int) for v in vals)


@lru_cache(maxsize=None)
def gate_table(fn: str) -> tuple[int, ...]:
    """G[k] = round(g(-R + k 2**-STEP_BITS) * 2**GATE_FRAC), k = 0 .. 2R 2**STEP_BITS."""
    r = GATE_RANGE[fn]
    k = np.arange(2 * r * (1 << STEP_BITS) + 1)
    g = gate_float(fn, -r + k / 2.0 ** STEP_BITS) * 2.0 ** GATE_FRAC
    return tuple(round_int(float(v)) for v in g)


@dataclass(frozen=True)
class GateNumerics:
    """Constants and widths of the integer activation ``fn`` (x * gate) from format ``x``
    to ``out``; ``method``: rom | table | auto (see the module docstring)."""
    fn: str
    x: FixedFormat
    out: FixedFormat
    method: str = "auto"

    def __post_init__(self):
        if self.fn not in GATE_RANGE:
            raise ValueError(f"activation: fn must be one of {', '.join(GATE_RANGE)}, "
                             f"got {self.fn!r}")
        for name in ("x", "out"):
            f = getattr(self, name)
            if not isinstance(f, FixedFormat) or not f.signed or f.bits < 2:
                raise ValueError(f"activation: format {name} must be a signed FixedFormat "
                                 f"of >= 2 bits, got {f!r}")
        if self.method not in ("auto", "rom", "table"):
            raise ValueError(f"activation: method must be auto, rom or table, got "
                             f"{self.method!r}")

    @property
    def kind(self) -> str:
        if self.method == "auto":
            return "rom" if self.x.bits <= ROM_MAX_BITS else "table"
        return self.method

    # --- the table's constants
    @property
    def range(self) -> int:
        return GATE_RANGE[self.fn]

    @property
    def table(self) -> tuple[int, ...]:
        return gate_table(self.fn)

    @property
    def frac_shift(self) -> int:
        """F - S: fractional input bits below the table's step (<= 0: none)."""
        return self.x.frac - STEP_BITS

    @property
    def clip(self) -> int:
        """R * 2**F: |X| beyond which the gate is the table's end."""
        return self.range << self.x.frac if self.x.frac >= 0 else self.range >> -self.x.frac

    @property
    def off_bits(self) -> int:
        """Width of off = clip(X) + R 2**F in [0, 2 R 2**F] (unsigned)."""
        return (2 * self.clip).bit_length()

    @property
    def t_bits(self) -> int:
        return max(0, self.frac_shift)

    @property
    def g_bits(self) -> int:
        """Width of G[k] (unsigned, <= 2**GATE_FRAC)."""
        return max(self.table).bit_length()

    @property
    def d_bits(self) -> int:
        """Width of D[k] = G[k+1] - G[k] (signed)."""
        t = self.table
        return signed_bits(max(abs(b - a) for a, b in zip(t, t[1:])))

    @property
    def h_bits(self) -> int:
        """Width of the gate H (signed: G + a rounded step, within [min G, max G])."""
        return self.g_bits + 1

    @property
    def out_shift(self) -> int:
        return self.x.frac + GATE_FRAC - self.out.frac

    @property
    def prod_bits(self) -> int:
        """Width of X * H (signed) + requant's rounding constant."""
        mag = -self.x.min_int * max(self.table)
        if self.out_shift <= 0:
            return signed_bits(mag << -self.out_shift)
        return signed_bits(mag + (1 << (self.out_shift - 1)))

    def rom_words(self) -> list[tuple[int, int]]:
        """(G[k], D[k]) of every table word (D of the last word is 0)."""
        t = self.table
        return [(g, (t[i + 1] - g) if i + 1 < len(t) else 0) for i, g in enumerate(t)]

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if self.method == "rom" and self.x.bits > ROM_MAX_BITS:
            problems.append(("activation.method",
                             f"the ROM activation needs an input of at most {ROM_MAX_BITS} "
                             f"bits (2**bits words), got {self.x.bits}; use table or auto"))
        if self.kind == "table":
            widest = max(self.prod_bits, self.t_bits + self.d_bits + 1, self.off_bits + 1)
            if widest > MAX_BITS:
                problems.append(("formats.act", f"the {self.fn} datapath needs {widest}-bit "
                                 f"intermediates (limit {MAX_BITS}); lower the input's "
                                 "fractional bits"))
        return problems

    def stages(self, x_ints) -> dict[str, np.ndarray]:
        """The table method stage by stage (names as in the module docstring)."""
        x = np.asarray(x_ints, dtype=np.int64)
        off = np.clip(x, -self.clip, self.clip) + self.clip
        table = np.asarray(self.table, dtype=np.int64)
        if self.frac_shift >= 0:
            k = off >> self.frac_shift
            t = off & ((1 << self.frac_shift) - 1)
            last = np.minimum(k + 1, len(table) - 1)
            d = table[last] - table[k]
            h = table[k] + (requant(t * d, self.frac_shift) if self.frac_shift else 0)
        else:
            k, t = off << -self.frac_shift, np.zeros_like(off)
            h = table[k]
        y = saturate(requant(x * h, self.out_shift), self.out)
        return dict(off=off, k=k, t=t, h=h, y=y)


def gate_golden(x_ints, num: GateNumerics) -> np.ndarray:
    """Integer activation ``num.fn`` of stored ints of ``num.x`` -> ints of ``num.out``."""
    x = np.asarray(x_ints, dtype=np.int64)
    if num.kind == "rom":
        rom = np.asarray(activation_rom(num.fn, num.x, num.out), dtype=np.int64)
        return rom[x & ((1 << num.x.bits) - 1)]
    return num.stages(x)["y"]

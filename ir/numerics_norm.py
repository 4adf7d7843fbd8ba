"""Integer-only numerics of the rest of a transformer block: LayerNorm, RMSNorm, GELU,
ReLU and the requantization between ops, each defined once.

Like ``ir.numerics``, every function here is used by the golden model, by the simulator's
behavioural models and (through the templates' components) to build the RTL, which
computes the same integers bit for bit. Functions take numpy int64 arrays (and, where noted, Python
ints); every intermediate width is derived in the numerics dataclasses and checked
against ``MAX_BITS`` (62) so int64 never overflows.

Integer square root
-------------------
:func:`isqrt` is the bit-by-bit (digit-recurrence, "restoring") square root: for a
``bits``-wide input it runs exactly ``ceil(bits / 2)`` steps, from the top root bit
down. Step i tries to set root bit i: with root-so-far q and remainder rem = n - q**2,
setting the bit adds ``(q << (i + 1)) + (1 << 2i)`` to q**2, so the bit is taken when
rem is at least that, and rem shrinks by it. Each step is one shift, one add, one compare
and one subtract, no multiplier; the hardware unrolls the same steps
(``templates.norm.isqrt_hw``).
The result is floor(sqrt(n)) exactly (equal to ``math.isqrt``) for 0 <= n < 2**bits.

LayerNorm / RMSNorm (one row of D stored integers X of format ``x``)
-------------------------------------------------------------------
No division by D: the mean is never formed. With S1 = sum X and S2 = sum X**2,

* LayerNorm: ``c_i = D * X_i - S1`` (= D * 2**F * (x_i - mean), exact) and
  ``V = D * S2 - S1**2`` (= D**2 * 4**F * var, exact, >= 0);
* RMSNorm:   ``c_i = D * X_i`` and ``V = D * S2`` (= D**2 * 4**F * mean(x**2));

and ``u = (V << 2P) + E`` with ``E = max(1, round(eps * D**2 * 4**(F + P)))``: eps in the
units of V with P extra fractional bit pairs, the smallest P >= 0 giving E at least
EPS_BITS (16) bits, as long as u stays within MAX_BITS - 1 bits (a rounded eps would
otherwise be off by up to 50% and matter for rows whose variance is a few LSB**2). E is at
least 1 so u > 0: a constant row gives c = 0 and y = beta. Then
``(x_i - mean) / sqrt(var + eps) = c_i * 2**P / sqrt(u)`` up to the rounding of E.

1/sqrt(u) is a normalized isqrt plus one reciprocal per row (block floating point):

* k = floor((W - bitlength(u)) / 2), W = 2 * ROOT_BITS: the even shift 2k brings u to
  W or W - 1 bits, ``un = floor(u * 4**k)`` lies in [2**(W-2), 2**W);
* ``r = isqrt(un)`` lies in [2**(ROOT_BITS-1), 2**ROOT_BITS): ROOT_BITS significant bits
  whatever the scale of the row (relative error <= 2**-(ROOT_BITS-1));
* ``inv = floor(2**R / r)``, R = ROOT_BITS - 1 + INV_BITS: inv in (2**(INV_BITS-1),
  2**INV_BITS], so 1/sqrt(u) ~= inv * 2**(k - R);
* the row exponent k (and P) goes onto c: ``cn_i = round(c_i * 2**(k + P))`` (exact for
  k + P >= 0). In hardware and here this is ``requant(c_i << (k + K0), K0 - P)`` with K0
  the largest right shift of u, so the shift amount ``sh = k + K0 >= 0`` is one small
  unsigned number per row;
* ``y_i = saturate(requant(cn_i * inv * g_i + (b_i << (R + g.frac - b.frac)),
  R + g.frac - out.frac), out)``: one rounding (half up) of the whole result.

Error against float LayerNorm of the same stored inputs (no saturation), in real units:
``|y - y_float| <= |g| * (sqrt(D) * (2**-(ROOT_BITS-1) + 2**-(INV_BITS-1)) + 2**-ROOT_BITS)
+ 0.5 * out LSB`` (|z| <= sqrt(D - 1) for a normalized element; the rounding of E adds
at most 2**-(EPS_BITS+1) relative to u). With the defaults, D = 128 and |g| <= 2 that is
0.5 LSB + 9.1e-4: below 0.75 LSB up to out.frac = 8, below 1.5 LSB at out.frac = 10.

GELU (I-BERT's integer GELU, and a ROM)
---------------------------------------
GELU(x) = x * Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2. I-BERT (Kim et al., ICML'21)
replaces erf on [0, -b] by the parabola a * (t + b)**2 + 1 whose vertex sits where erf
reaches its plateau (t = -b, value 1), with a = -0.2888 and b = -1.769, clips |t| at -b
(erf = 1 beyond) and restores odd symmetry with sign(t). Folding the 1/sqrt 2 into the
constants, with X the stored input (F fractional bits) and |x| carried with Fp = F
clamped to [8, 16] fractional bits (``ax = requant(|X|, F - Fp)``, exact when F <= Fp):

* ``C = round(-b * sqrt(2) * 2**Fp)``: the clip point (x ~= 2.50);
* ``mt = C - min(ax, C)``; the parabola is ``1 - |a|/2 * (mt / 2**Fp)**2`` =
  ``M * (K - mt**2) / 2**(MB + 2Fp)`` with ``M = round(|a|/2 * 2**MB)`` and
  ``K = round(4**Fp * 2**MB / M)``: the "1" expressed in units of the parabola, so the
  polynomial needs no multiply by a;
* ``s = K + sign(X) * (K - mt**2)`` is 1 + erf in the same units (2K on the plateau
  x >= C, 0 for x <= -C, K at x = 0), and the gate
  ``H = requant(s * M, MB + 2Fp + 1 - GATE_FRAC)`` is Phi(x) in GATE_FRAC fractional
  bits (exactly 1.0 on the plateau, exactly 0 below -C);
* ``Y = saturate(requant(X * H, F + GATE_FRAC - out.frac), out)``.

The parabola itself is I-BERT's approximation: its GELU is off by up to ~0.018 (near
x = +-2.35) whatever the bit widths. The ROM alternative stores
``round(GELU(X / 2**F) * 2**out.frac)`` (saturated) for every one of the 2**bits input
patterns, addressed by the input's raw two's-complement bits: error <= 0.5 output LSB.
The default (``method="auto"``) is the ROM for inputs of up to ``GELU_ROM_MAX_BITS``
(10) bits, where 2**bits words are a LUT-RAM or at most a couple of block RAMs and
cheaper than the three multipliers of the polynomial (Yosys synth_xilinx, s8.4 -> s8.4:
the ROM maps to 26 LUTs, the polynomial to 42 LUTs, 9 CARRY4 and 3 DSP48), and exact;
wider inputs use the
polynomial (a 2**16-word ROM per lane is not affordable, and the polynomial costs the
same at any width).

Requantization between ops and ReLU
-----------------------------------
:class:`RescaleNumerics` maps stored integers of one format to another with a real
factor: ``saturate(requant(X * mult, shift), out)``; a power-of-two factor is exact
(mult = 1), otherwise mult is normalized to RESCALE_MULT_BITS bits. ReLU is
``rescale(max(X, 0))``.
"""
from __future__ import annotations

import math
from fractions import Fraction
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .numerics import MAX_BITS, mult_shift, requant, round_int, saturate, signed_bits
from .types import FixedFormat

#: significant bits of the normalized square root (its input has 2 * ROOT_BITS bits)
ROOT_BITS = 16
#: significant bits of the per-row reciprocal floor(2**R / r)
INV_BITS = 18
#: significant bits wanted in the integer epsilon E of LayerNorm / RMSNorm
EPS_BITS = 16
#: I-BERT's erf parabola a * (t + b)**2 + 1 on [0, -b]
GELU_A = -0.2888
GELU_B = -1.769
#: width of the multiplier M ~= |a|/2 * 2**GELU_MULT_BITS
GELU_MULT_BITS = 16
#: fractional bits of the GELU gate H ~= Phi(x)
GELU_GATE_FRAC = 16
#: fractional bits of |x| inside the GELU polynomial: x.frac clamped to this range
GELU_POLY_FRAC_MIN = 8
GELU_POLY_FRAC_MAX = 16
#: widest input for which method="auto" chooses the ROM GELU (and "rom" is allowed)
GELU_ROM_MAX_BITS = 10
#: width of a non-power-of-two requantization multiplier
RESCALE_MULT_BITS = 16


def _round_half_up(v: float) -> int:
    return round_int(v)


def _as_int64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.int64)


def _requant_bits(max_abs: int, shift: int) -> int:
    """Signed width of requant's intermediate for |x| <= max_abs: x + 2**(shift-1), or
    x << -shift when shift <= 0."""
    if shift <= 0:
        return signed_bits(max_abs << -shift)
    return signed_bits(max_abs + (1 << (shift - 1)))


# ---------------------------------------------------------------- integer square root

def isqrt(n, bits: int | None = None):
    """floor(sqrt(n)) by the bit-by-bit recurrence, exactly ``ceil(bits / 2)`` steps.

    ``n``: a Python int or a numpy int64 array, 0 <= n < 2**bits. ``bits`` is the width
    of the input (the hardware's, which fixes the number of steps); default: the
    bit length of a Python int, ``MAX_BITS`` (62, 31 steps) for arrays.
    """
    if isinstance(n, (int, np.integer)) and not isinstance(n, np.ndarray):
        n = int(n)
        if n < 0:
            raise ValueError(f"isqrt: n must be >= 0, got {n}")
        bits = n.bit_length() if bits is None else bits
        if n >> bits:
            raise ValueError(f"isqrt: n = {n} does not fit in {bits} bits")
        q, rem = 0, n
        for i in reversed(range((bits + 1) // 2)):
            trial = (q << (i + 1)) + (1 << (2 * i))
            if rem >= trial:
                rem -= trial
                q |= 1 << i
        return q
    n = _as_int64(n)
    bits = MAX_BITS if bits is None else bits
    if not 0 <= bits <= MAX_BITS:
        raise ValueError(f"isqrt: bits must be in 0..{MAX_BITS} for int64 arrays, got {bits}")
    if n.size and (n.min() < 0 or (n.max() >> bits) != 0):
        raise ValueError(f"isqrt: every n must be in [0, 2**{bits})")
    q = np.zeros_like(n)
    rem = n.copy()
    for i in reversed(range((bits + 1) // 2)):
        # q has no bits below i + 1 and q < 2**half, so trial < 2**(half + i + 1) <= 2**62
        trial = (q << (i + 1)) + (1 << (2 * i))
        take = rem >= trial
        rem = np.where(take, rem - trial, rem)
        q = np.where(take, q | (1 << i), q)
    return q


def bit_length(u) -> np.ndarray:
    """Bit length of every element of a non-negative int64 array (0 for 0)."""
    v = _as_int64(u).copy()
    n = np.zeros_like(v)
    for s in (32, 16, 8, 4, 2, 1):
        big = (v >> s) != 0
        n += np.where(big, s, 0)
        v = np.where(big, v >> s, v)
    return n + (v != 0)


# ---------------------------------------------------------------- LayerNorm / RMSNorm

@dataclass(frozen=True)
class LayerNormNumerics:
    """Every constant and width of the integer LayerNorm / RMSNorm of rows of ``dim``.

    ``x``: format of the input elements; ``gamma``, ``beta``: formats of the per-element
    scale and shift; ``out``: output format; ``eps``: the float epsilon under the square
    root (in real units of var). All formats signed. The same numerics serve RMSNorm
    (:func:`rmsnorm_golden`; beta unused). Read by the golden model, the simulator and the
    HDL, so no back-end re-derives a width.
    """
    dim: int
    x: FixedFormat
    gamma: FixedFormat
    beta: FixedFormat
    out: FixedFormat
    eps: float = 1e-5

    def __post_init__(self):
        if not isinstance(self.dim, (int, np.integer)) or self.dim < 1:
            raise ValueError(f"layernorm: dim must be an integer >= 1, got {self.dim!r}")
        for name in ("x", "gamma", "beta", "out"):
            f = getattr(self, name)
            if not isinstance(f, FixedFormat) or not f.signed or f.bits < 2:
                raise ValueError(f"layernorm: format {name} must be a signed FixedFormat of "
                                 f">= 2 bits, got {f!r}")
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and self.eps >= 0):
            raise ValueError(f"layernorm: eps must be a finite number >= 0, got {self.eps!r}")

    # --- row statistics
    @property
    def x_max_abs(self) -> int:
        return -self.x.min_int

    @property
    def sum_bits(self) -> int:
        """Width of S1 = sum X (signed)."""
        return signed_bits(self.dim * self.x_max_abs)

    @property
    def sumsq_bits(self) -> int:
        """Width of S2 = sum X**2 (unsigned)."""
        return (self.dim * self.x_max_abs ** 2).bit_length()

    @property
    def var_max(self) -> int:
        """Bound of V = D*S2 - S1**2 (and of D*S2 for RMSNorm)."""
        return self.dim * self.dim * self.x_max_abs ** 2

    def _eps_int(self, p: int) -> int:
        v = self.eps * self.dim ** 2 * 4.0 ** (self.x.frac + p)
        if math.isinf(v):   # eps near the float limit: exact, so the width check reports it
            v = Fraction(self.eps) * self.dim ** 2 * 4 ** (self.x.frac + p)
            return max(1, math.floor(v + Fraction(1, 2)))
        return max(1, _round_half_up(v))

    @property
    def eps_frac(self) -> int:
        """P: extra fractional bit pairs of u, so E has EPS_BITS bits (0 when eps is 0)."""
        p = 0
        if self.eps > 0:
            while (self._eps_int(p) < 1 << EPS_BITS
                   and ((self.var_max << 2 * (p + 1)) + self._eps_int(p + 1)).bit_length()
                   < MAX_BITS):
                p += 1
        return p

    @property
    def eps_int(self) -> int:
        """E = max(1, round(eps * D**2 * 4**(x.frac + P))): eps in the units of u."""
        return self._eps_int(self.eps_frac)

    @property
    def u_max(self) -> int:
        """Bound of u = ((D*S2 - S1**2) << 2P) + E (and of (D*S2 << 2P) + E for RMSNorm)."""
        return (self.var_max << 2 * self.eps_frac) + self.eps_int

    @property
    def u_bits(self) -> int:
        """Width of u (unsigned)."""
        return self.u_max.bit_length()

    @property
    def c_max(self) -> int:
        """Bound of |c|: |D*X - S1| <= (D-1)*(max - min); |D*X| <= D*2**(bits-1)."""
        return max((self.dim - 1) * (self.x.max_int - self.x.min_int), self.dim * self.x_max_abs)

    @property
    def c_bits(self) -> int:
        return signed_bits(self.c_max)

    # --- normalized 1/sqrt
    @property
    def root_bits(self) -> int:
        return ROOT_BITS

    @property
    def root_in_bits(self) -> int:
        """W: width of the normalized isqrt input un."""
        return 2 * ROOT_BITS

    @property
    def norm_bias(self) -> int:
        """K0: the largest right shift of u (k >= -K0), so sh = k + K0 >= 0."""
        return max(0, -((self.root_in_bits - self.u_bits) >> 1))

    @property
    def shift_max(self) -> int:
        """Largest sh = k + K0 (u = 1: k = ROOT_BITS - 1)."""
        return ROOT_BITS - 1 + self.norm_bias

    @property
    def shift_bits(self) -> int:
        """Width of sh (unsigned)."""
        return max(1, self.shift_max.bit_length())

    @property
    def un_wide_bits(self) -> int:
        """Width of u << 2*sh, before dropping its 2*K0 low bits."""
        return self.root_in_bits + 2 * self.norm_bias

    @property
    def recip_bits(self) -> int:
        """R in inv = floor(2**R / r)."""
        return ROOT_BITS - 1 + INV_BITS

    @property
    def inv_bits(self) -> int:
        """Width of inv (unsigned): it reaches 2**INV_BITS when r = 2**(ROOT_BITS-1)."""
        return INV_BITS + 1

    @property
    def cs_bits(self) -> int:
        """Width of c << sh (signed), and of requant's intermediate for it."""
        return _requant_bits(self.c_max << self.shift_max, self.cn_shift)

    @property
    def cn_shift(self) -> int:
        """cn = requant(c << sh, cn_shift): K0 - P (<= 0: an exact left shift)."""
        return self.norm_bias - self.eps_frac

    @property
    def cn_max(self) -> int:
        """|cn| <= sqrt(D * u * 4**k) + 1/2 < sqrt(D) * 2**ROOT_BITS + 1/2
        (c**2 * 4**P <= D * V * 4**P <= D * u)."""
        return isqrt(self.dim << self.root_in_bits) + 1

    @property
    def cn_bits(self) -> int:
        return signed_bits(self.cn_max)

    @property
    def beta_shift(self) -> int:
        """beta is aligned to the product's R + gamma.frac fractional bits."""
        return self.recip_bits + self.gamma.frac - self.beta.frac

    @property
    def out_shift(self) -> int:
        return self.recip_bits + self.gamma.frac - self.out.frac

    @property
    def acc_max(self) -> int:
        prod = self.cn_max * (1 << INV_BITS) * (-self.gamma.min_int)
        return prod + (-self.beta.min_int << max(0, self.beta_shift))

    @property
    def acc_bits(self) -> int:
        """Width of cn * inv * g + aligned beta (signed), + the rounding constant."""
        return _requant_bits(self.acc_max, self.out_shift)

    def check(self) -> list[tuple[str, str]]:
        """Problems as (spec field, message); empty when the datapath is implementable."""
        problems = []
        if self.beta_shift < 0:
            problems.append(("formats.beta",
                             f"beta.frac must be at most {self.recip_bits} + gamma.frac = "
                             f"{self.recip_bits + self.gamma.frac}, got {self.beta.frac}"))
        widest = max(self.u_bits + 1, self.un_wide_bits, self.cs_bits, self.acc_bits,
                     self.recip_bits + 1, self.cn_bits + self.inv_bits)
        if widest > MAX_BITS:
            problems.append(("formats.x",
                             f"the LayerNorm datapath needs {widest}-bit intermediates (limit "
                             f"{MAX_BITS}); narrow the input, gamma or beta formats or the row"))
        return problems

    def stages(self, c, u, gamma_ints, beta_ints) -> dict[str, np.ndarray]:
        """The normalize-and-affine half shared by LayerNorm and RMSNorm, stage by stage.

        ``c``: (N, D) centred/scaled rows, ``u``: (N,) >= 1. Returns every intermediate
        (names as in the module docstring) and ``y``.
        """
        c, u = _as_int64(c), _as_int64(u)
        g = _as_int64(gamma_ints).reshape(1, self.dim)
        b = _as_int64(beta_ints).reshape(1, self.dim)
        k0 = self.norm_bias
        n = bit_length(u)
        sh = (self.root_in_bits + 2 * k0 - n) >> 1
        un = (u << (2 * sh)) >> (2 * k0)
        r = isqrt(un, self.root_in_bits)
        inv = np.floor_divide(np.int64(1) << self.recip_bits, r)
        cn = requant(c << sh[:, None], self.cn_shift)
        acc = cn * inv[:, None] * g + (b << self.beta_shift)
        y = saturate(requant(acc, self.out_shift), self.out)
        return dict(n=n, sh=sh, un=un, r=r, inv=inv, cn=cn, acc=acc, y=y)


def layernorm_numerics(dim, x, gamma, beta, out, eps=1e-5) -> LayerNormNumerics:
    return LayerNormNumerics(dim, x, gamma, beta, out, eps)


def _rows(x_ints, num: LayerNormNumerics) -> np.ndarray:
    x = _as_int64(x_ints)
    if x.ndim != 2 or x.shape[1] != num.dim:
        raise ValueError(f"layernorm: input must have shape (N, {num.dim}), got {x.shape}")
    return x


def layernorm_stats(x_ints, num: LayerNormNumerics):
    """(c, u) of LayerNorm: c = D*X - S1 (N, D), u = ((D*S2 - S1**2) << 2P) + E (N,)."""
    x = _rows(x_ints, num)
    s1 = x.sum(axis=1)
    s2 = (x * x).sum(axis=1)
    u = ((num.dim * s2 - s1 * s1) << 2 * num.eps_frac) + num.eps_int
    return num.dim * x - s1[:, None], u


def rmsnorm_stats(x_ints, num: LayerNormNumerics):
    """(c, u) of RMSNorm: c = D*X (N, D), u = (D*S2 << 2P) + E (N,)."""
    x = _rows(x_ints, num)
    return num.dim * x, ((num.dim * (x * x).sum(axis=1)) << 2 * num.eps_frac) + num.eps_int


def layernorm_golden(x_ints, gamma_ints, beta_ints, num: LayerNormNumerics) -> np.ndarray:
    """Integer LayerNorm of every row: (N, D) stored ints of ``x`` -> (N, D) of ``out``."""
    c, u = layernorm_stats(x_ints, num)
    return num.stages(c, u, gamma_ints, beta_ints)["y"]


def rmsnorm_golden(x_ints, gamma_ints, num: LayerNormNumerics) -> np.ndarray:
    """Integer RMSNorm of every row (no beta): (N, D) -> (N, D) of ``out``."""
    c, u = rmsnorm_stats(x_ints, num)
    return num.stages(c, u, gamma_ints, np.zeros(num.dim, dtype=np.int64))["y"]


def layernorm_float(x, gamma, beta, eps: float = 1e-5) -> np.ndarray:
    """Float LayerNorm over the last axis (biased variance), real units."""
    x = np.asarray(x, dtype=np.float64)
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * np.asarray(gamma) + np.asarray(beta)


def rmsnorm_float(x, gamma, eps: float = 1e-5) -> np.ndarray:
    """Float RMSNorm over the last axis: x / sqrt(mean(x**2) + eps) * gamma."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * np.asarray(gamma)


# ---------------------------------------------------------------- GELU

def gelu_float(x) -> np.ndarray:
    """Exact GELU, x * (1 + erf(x / sqrt 2)) / 2."""
    x = np.asarray(x, dtype=np.float64)
    z = (x / math.sqrt(2.0)).ravel().tolist()
    # math.erf element by element (the same float64 values as before; numpy has no erf)
    erf = np.fromiter(map(math.erf, z), np.float64, len(z)).reshape(x.shape)
    return 0.5 * x * (1.0 + erf)


def gelu_ibert_float(x) -> np.ndarray:
    """I-BERT's GELU with real arithmetic: the approximation error alone."""
    x = np.asarray(x, dtype=np.float64)
    c = -GELU_B * math.sqrt(2.0)
    erf = np.sign(x) * (GELU_A / 2 * (np.minimum(np.abs(x), c) - c) ** 2 + 1.0)
    return 0.5 * x * (1.0 + erf)


@lru_cache(maxsize=None)
def gelu_table(x: FixedFormat, out: FixedFormat) -> tuple[int, ...]:
    """ROM of the GELU: word a (the raw two's-complement bits of X) holds
    saturate(round(GELU(X / 2**x.frac) * 2**out.frac)) as a signed integer."""
    words = []
    for a in range(1 << x.bits):
        xi = a - (1 << x.bits) if a >> (x.bits - 1) else a
        v = 0.5 * (xi / 2.0 ** x.frac) * (1.0 + math.erf(xi / 2.0 ** x.frac / math.sqrt(2.0)))
        words.append(round_int(v * 2.0 ** out.frac, out.min_int, out.max_int))
    return tuple(words)


@dataclass(frozen=True)
class GeluNumerics:
    """Constants and widths of the integer GELU from format ``x`` to format ``out``.

    ``method``: ``"rom"`` (2**x.bits-word table, <= 0.5 LSB), ``"poly"`` (I-BERT's
    polynomial, any width) or ``"auto"`` (the default: ROM up to GELU_ROM_MAX_BITS input
    bits, else the polynomial); :attr:`kind` is the resolved choice.
    """
    x: FixedFormat
    out: FixedFormat
    method: str = "auto"

    def __post_init__(self):
        for name in ("x", "out"):
            f = getattr(self, name)
            if not isinstance(f, FixedFormat) or not f.signed or f.bits < 2:
                raise ValueError(f"gelu: format {name} must be a signed FixedFormat of "
                                 f">= 2 bits, got {f!r}")
        if self.method not in ("auto", "rom", "poly"):
            raise ValueError(f"gelu: method must be auto, rom or poly, got {self.method!r}")

    @property
    def kind(self) -> str:
        if self.method == "auto":
            return "rom" if self.x.bits <= GELU_ROM_MAX_BITS else "poly"
        return self.method

    # --- the polynomial's constants
    @property
    def poly_frac(self) -> int:
        """Fp: fractional bits of |x| inside the polynomial, x.frac clamped to
        [GELU_POLY_FRAC_MIN, GELU_POLY_FRAC_MAX] (|X| is shifted left exactly, or rounded)."""
        return min(max(self.x.frac, GELU_POLY_FRAC_MIN), GELU_POLY_FRAC_MAX)

    @property
    def clip(self) -> int:
        """C: |x| beyond which erf is taken as +-1, in units of 2**-Fp."""
        return _round_half_up(-GELU_B * math.sqrt(2.0) * 2.0 ** self.poly_frac)

    @property
    def gate_mult(self) -> int:
        """M = round(|a|/2 * 2**GELU_MULT_BITS)."""
        return _round_half_up(-GELU_A / 2 * 2.0 ** GELU_MULT_BITS)

    @property
    def poly_one(self) -> int:
        """K: the constant 1 in units of the parabola, round(4**Fp * 2**MB / M) (derived
        from the rounded M, so that K * M stands for 1 as exactly as possible: the gate is
        exactly 1.0 on the plateau)."""
        num, den = 4 ** self.poly_frac << GELU_MULT_BITS, self.gate_mult
        return (2 * num + den) // (2 * den)

    @property
    def gate_shift(self) -> int:
        """H = requant(s * M, gate_shift): Phi(x) in GELU_GATE_FRAC fractional bits."""
        return GELU_MULT_BITS + 2 * self.poly_frac + 1 - GELU_GATE_FRAC

    @property
    def gate_max(self) -> int:
        return requant(2 * self.poly_one * self.gate_mult, self.gate_shift)

    @property
    def gate_bits(self) -> int:
        """Width of H (unsigned)."""
        return self.gate_max.bit_length()

    @property
    def out_shift(self) -> int:
        return self.x.frac + GELU_GATE_FRAC - self.out.frac

    @property
    def ax_bits(self) -> int:
        """Width of |X| in Fp fractional bits (unsigned), + requant's rounding constant."""
        return _requant_bits(-self.x.min_int, self.x.frac - self.poly_frac) - 1

    @property
    def mt_bits(self) -> int:
        """Width of mt = C - min(|X|, C) (unsigned)."""
        return self.clip.bit_length()

    @property
    def s_bits(self) -> int:
        """Width of s = K + sign(X) * (K - mt**2) in [0, 2K] (unsigned)."""
        return (2 * self.poly_one).bit_length()

    @property
    def prod_bits(self) -> int:
        """Width of X * H (signed), + the rounding constant."""
        return _requant_bits(-self.x.min_int * self.gate_max, self.out_shift)

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if self.method == "rom" and self.x.bits > GELU_ROM_MAX_BITS:
            problems.append(("gelu.method",
                             f"the ROM GELU needs an input of at most {GELU_ROM_MAX_BITS} bits "
                             f"(2**bits words), got {self.x.bits}; use method poly or auto"))
        if self.kind == "poly":
            widest = max(self.ax_bits + 1, 2 * self.mt_bits + 1,
                         self.s_bits + GELU_MULT_BITS + 1, self.prod_bits)
            if widest > MAX_BITS:
                problems.append(("formats.x",
                                 f"the GELU datapath needs {widest}-bit intermediates (limit "
                                 f"{MAX_BITS}); lower the input's fractional bits"))
        return problems

    def stages(self, x_ints) -> dict[str, np.ndarray]:
        """The polynomial GELU stage by stage (names as in the module docstring)."""
        x = _as_int64(x_ints)
        c, k = self.clip, self.poly_one
        ax = requant(np.abs(x), self.x.frac - self.poly_frac)
        mt = c - np.minimum(ax, c)
        sq = mt * mt
        # s = K + sign(X) * (K - mt**2), in [0, 2K] (C**2 < 2K)
        s = np.where(x > 0, 2 * k - sq, np.where(x < 0, sq, k))
        h = requant(s * self.gate_mult, self.gate_shift)
        y = saturate(requant(x * h, self.out_shift), self.out)
        return dict(ax=ax, mt=mt, s=s, h=h, y=y)


def gelu_golden(x_ints, num: GeluNumerics) -> np.ndarray:
    """Integer GELU of stored ints of ``num.x`` -> stored ints of ``num.out``."""
    x = _as_int64(x_ints)
    if num.kind == "rom":
        table = np.asarray(gelu_table(num.x, num.out), dtype=np.int64)
        return table[x & ((1 << num.x.bits) - 1)]
    return num.stages(x)["y"]


# ---------------------------------------------------------------- rescale and ReLU

@dataclass(frozen=True)
class RescaleNumerics:
    """Requantization between ops: stored ints of ``x`` -> ``out``, times a real ``scale``.

    ``y = saturate(requant(X * mult, shift), out)``; mult * 2**-shift approximates
    ``scale * 2**(out.frac - x.frac)``: exactly (mult = 1) when that is a power of two,
    else mult has RESCALE_MULT_BITS bits (relative error <= 2**-RESCALE_MULT_BITS).
    """
    x: FixedFormat
    out: FixedFormat
    scale: float = 1.0

    def __post_init__(self):
        for name in ("x", "out"):
            f = getattr(self, name)
            if not isinstance(f, FixedFormat) or not f.signed or f.bits < 2:
                raise ValueError(f"rescale: format {name} must be a signed FixedFormat of "
                                 f">= 2 bits, got {f!r}")
        if not (isinstance(self.scale, (int, float)) and math.isfinite(self.scale)
                and self.scale > 0):
            raise ValueError(f"rescale: scale must be a finite number > 0, got {self.scale!r}")

    @property
    def mult_shift(self) -> tuple[int, int]:
        return mult_shift(math.ldexp(float(self.scale), self.out.frac - self.x.frac),
                          RESCALE_MULT_BITS)

    @property
    def mult(self) -> int:
        return self.mult_shift[0]

    @property
    def shift(self) -> int:
        return self.mult_shift[1]

    @property
    def prod_bits(self) -> int:
        """Width of X * mult (shifted left when shift < 0), + the rounding constant."""
        return _requant_bits(-self.x.min_int * self.mult, self.shift)

    def check(self) -> list[tuple[str, str]]:
        if self.prod_bits > MAX_BITS:
            return [("formats.out", f"the rescale needs {self.prod_bits}-bit intermediates "
                                    f"(limit {MAX_BITS}); bring the formats closer")]
        return []


def rescale_golden(x_ints, num: RescaleNumerics) -> np.ndarray:
    return saturate(requant(_as_int64(x_ints) * num.mult, num.shift), num.out)


def relu_golden(x_ints, num: RescaleNumerics) -> np.ndarray:
    """ReLU, then the rescale to ``num.out`` (scale 1: a format change)."""
    return rescale_golden(np.maximum(_as_int64(x_ints), 0), num)

"""Integer arithmetic of the linear layer (matrix-vector product), defined once.

Used three ways, like ``ir.numerics``: by golden models and tests (:func:`linear_golden`),
by the simulator's behavioural model and to generate the weight and bias ROMs of the RTL
(:func:`weight_rom`, :func:`bias_rom`), both in ``templates.linear``.

For one input row x (K stored integers of format ``x``) and the weights W (M x K stored
integers of format ``w``) and bias b (M stored integers in *accumulator scale*, i.e. with
``x.frac + w.frac`` fractional bits), output element j is

    acc_j = sum_k x_k * W[j, k] + b_j                         (exact, acc_bits wide)
    y_j   = saturate(requant(acc_j * mult, shift), y)         (round half up, then clip)

The real value it stands for is ``y_real = scale * (x_real . W_real[j] + b_real[j])``:
``mult * 2**-shift`` approximates ``scale * 2**(y.frac - x.frac - w.frac)``. When that
factor is a power of two (e.g. ``scale = 1``) it is exact: ``mult = 1`` and ``shift`` is
the exponent (negative: an exact left shift). Otherwise ``mult`` is normalised to
``mult_bits`` bits (``2**(mult_bits-1) <= mult < 2**mult_bits``), so its relative error is
at most ``2**-mult_bits``.

Error against the float reference (:func:`linear_float`), for outputs that do not
saturate: ``|y - acc * factor| <= 0.5 + |acc| * |mult * 2**-shift - factor|`` output LSBs
(``<= 0.5`` LSB with a power-of-two factor).

Scaled weights (``w_scales``, one real step per output channel, ``ir.quantize``): the
integers stand for ``W_real[j, k] = W[j, k] * w_scales[j]`` (``w.frac`` is not used), the
bias of channel j is held in that channel's accumulator units (``2**-x.frac *
w_scales[j]``), and channel j has its own multiplier with the layer's one shift:

    y_j = saturate(requant(acc_j * mult_j, shift), y),
    mult_j = round(factor_j * 2**shift),  factor_j = scale * w_scales[j] * 2**(y.frac - x.frac)

with ``shift`` chosen so the largest ``mult_j`` has ``mult_bits`` bits
(:func:`channel_mults`); a channel whose factor is 2**-b times the largest has its mult
b bits shorter (relative error <= 2**-(mult_bits - b)). When every channel has the same
factor (``per_tensor``) there is one ``mult``, as for fixed weights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from .numerics import (MAX_BITS, mult_shift, quantize, requant, round_int, round_saturate,
                       saturate, signed_bits)
from .types import FixedFormat


@dataclass(frozen=True)
class LinearNumerics:
    """Every constant and width of one linear layer's integer datapath.

    ``k``/``m``: input/output features; ``x``, ``w``, ``y``: signed formats of the input
    elements, weights and outputs; ``scale``: real factor applied to ``x.W + b``;
    ``bias_bits``: width of the bias (accumulator scale; None: as wide as the largest
    dot product); ``mult_bits``: width of the requantization multiplier when the factor
    is not a power of two. Frozen and hashable: it travels in ``Instance.params``.
    """
    k: int
    m: int
    x: FixedFormat
    w: FixedFormat
    y: FixedFormat
    scale: float = 1.0
    bias_bits: int | None = None
    mult_bits: int = 16
    #: the real step of each output channel's weight integers (None: 2**-w.frac)
    w_scales: tuple[float, ...] | None = None

    def __post_init__(self):
        for name in ("k", "m"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"linear: {name} must be an integer >= 1, got {v!r}")
        for name in ("x", "w", "y"):
            f = getattr(self, name)
            if not isinstance(f, FixedFormat) or not f.signed or f.bits < 2:
                raise ValueError(f"linear: format {name} must be a signed FixedFormat of "
                                 f">= 2 bits, got {f!r}")
        if not (isinstance(self.scale, (int, float)) and math.isfinite(self.scale)
                and self.scale > 0):
            raise ValueError(f"linear: scale must be a finite number > 0, got {self.scale!r}")
        if not 1 <= self.mult_bits <= 31:
            raise ValueError(f"linear: mult_bits must be in 1..31, got {self.mult_bits}")
        if self.bias_bits is not None and not 2 <= self.bias_bits <= MAX_BITS:
            raise ValueError(f"linear: bias_bits must be in 2..{MAX_BITS}, got {self.bias_bits}")
        if self.w_scales is not None and (
                len(self.w_scales) != self.m
                or not all(math.isfinite(v) and v > 0 for v in self.w_scales)):
            raise ValueError(f"linear: w_scales must be {self.m} finite numbers > 0 (one per "
                             "output channel)")
        if self.scaled_bits > MAX_BITS:
            raise ValueError(f"linear: the requantization product needs {self.scaled_bits} bits "
                             f"(limit {MAX_BITS}); use narrower formats, fewer input features "
                             "or a smaller mult_bits")

    # --- accumulator
    @property
    def acc_frac(self) -> int:
        """Fractional bits of the accumulator (and of the bias); scaled weights: those of
        x (the channel's weight step is in its factor)."""
        return self.x.frac + (0 if self.w_scales is not None else self.w.frac)

    @property
    def steps(self) -> np.ndarray:
        """The real value of one weight integer, per output channel."""
        if self.w_scales is not None:
            return np.asarray(self.w_scales, dtype=np.float64)
        return np.full(self.m, 2.0 ** -self.w.frac)

    @property
    def dot_max(self) -> int:
        """Largest |x . w_j| (min_int * min_int, K times)."""
        return self.k * (-self.x.min_int) * (-self.w.min_int)

    @property
    def bias(self) -> FixedFormat:
        """Format of the bias: accumulator scale."""
        bits = self.bias_bits if self.bias_bits is not None else signed_bits(self.dot_max)
        return FixedFormat(bits, self.acc_frac)

    @property
    def acc_max(self) -> int:
        return self.dot_max - self.bias.min_int

    @property
    def acc_bits(self) -> int:
        """Width of the signed accumulator: holds every partial sum, bias included."""
        return signed_bits(self.acc_max)

    # --- requantization
    @property
    def factor(self) -> float:
        """The exact real factor from accumulator integers to output integers (scaled
        weights: the largest channel's)."""
        return max(self.factors)

    @cached_property
    def factors(self) -> tuple[float, ...]:
        """Each output channel's exact real factor."""
        if self.w_scales is None:
            return (math.ldexp(float(self.scale), self.y.frac - self.acc_frac),) * self.m
        return tuple(math.ldexp(float(self.scale) * s, self.y.frac - self.x.frac)
                     for s in self.w_scales)

    @cached_property
    def per_channel(self) -> bool:
        """True when the output channels have different multipliers (a mult ROM)."""
        return self.w_scales is not None and len(set(self.w_scales)) > 1

    @cached_property
    def mult_shift(self) -> tuple[int, int]:
        if not self.per_channel:
            return mult_shift(self.factor, self.mult_bits)
        return channel_mults(self.factors, self.mult_bits)[1:]

    @cached_property
    def mults(self) -> tuple[int, ...]:
        """Each output channel's multiplier (all equal unless :attr:`per_channel`)."""
        if not self.per_channel:
            return (self.mult,) * self.m
        return channel_mults(self.factors, self.mult_bits)[0]

    @cached_property
    def mult_max(self) -> int:
        return max(self.mults)

    @property
    def mult(self) -> int:
        """The one multiplier (the largest channel's when :attr:`per_channel`)."""
        return self.mult_shift[0]

    @property
    def shift(self) -> int:
        """requant shift: > 0 shifts right rounding half up, <= 0 shifts left exactly."""
        return self.mult_shift[1]

    @property
    def factor_error(self) -> float:
        """max_j |mult_j * 2**-shift - factor_j|: 0 for a power-of-two factor."""
        return max(abs(math.ldexp(m, -self.shift) - f) for m, f in
                   zip(self.mults, self.factors))

    @property
    def scaled_bits(self) -> int:
        """Width of acc * mult (before the shift; shifted left when shift < 0), + rounding."""
        mag = self.acc_max * self.mult_max
        if self.shift < 0:
            mag <<= -self.shift
        elif self.shift > 0:                 # requant adds 2**(shift-1) before the shift
            mag += 1 << (self.shift - 1)
        return signed_bits(mag)


@lru_cache(maxsize=256)
def channel_mults(factors: tuple[float, ...], mult_bits: int) -> tuple[tuple[int, ...], int,
                                                                      int]:
    """(mult_j per channel, the largest mult, the one shift) with ``requant(acc * mult_j,
    shift) ~= acc * factors[j]``: the shift puts the largest factor's mult at
    ``mult_bits`` bits (``ir.numerics.mult_shift``'s normalisation), every other mult is
    its factor at that shift, rounded half up (at least 1)."""
    top, shift = mult_shift(max(factors), mult_bits)
    if top == 1:                         # a power of two: keep mult_bits of precision
        top, shift = 1 << (mult_bits - 1), shift + mult_bits - 1
    mults = tuple(max(1, round_int(math.ldexp(f, shift))) for f in factors)
    return mults, max(mults), shift


def linear_numerics(k: int, m: int, x: FixedFormat, w: FixedFormat, y: FixedFormat,
                    scale: float = 1.0, bias_bits: int | None = None,
                    mult_bits: int = 16) -> LinearNumerics:
    return LinearNumerics(k, m, x, w, y, scale, bias_bits, mult_bits)


# ---------------------------------------------------------------- the kernels

def _check_shapes(x, w, b, num: LinearNumerics):
    x = np.asarray(x).reshape(-1, num.k)
    w = np.asarray(w)
    b = np.asarray(b, dtype=np.int64).reshape(-1)
    if w.shape != (num.m, num.k):
        raise ValueError(f"linear: weights must have shape (M, K) = {(num.m, num.k)}, got {w.shape}")
    if b.shape != (num.m,):
        raise ValueError(f"linear: bias must have shape (M,) = ({num.m},), got {b.shape}")
    return x, w, b


#: float64 holds every integer below 2**53 exactly, float32 every one below 2**24
_FLOAT_EXACT = 1 << 53
_FLOAT32_EXACT = 1 << 24


def _peak(a) -> int:
    """max |a| of an integer array, as a Python int (no overflow at int8's -128)."""
    a = np.asarray(a)
    return max(int(a.max(initial=0)), -int(a.min(initial=0)))


def exact_matmul(x, w_t, bound: int) -> np.ndarray:
    """``x @ w_t`` of integer arrays, exact, as int64. When every partial sum is below
    ``bound`` in magnitude and ``bound`` < 2**53, the product runs in float64 (BLAS):
    each partial sum is an integer float64 holds exactly, so the result is the integer
    product whatever the summation order; below 2**24 the same holds in float32 (half
    the work: 8-bit operands over K up to 1024); otherwise in int64 (numpy's integer
    matmul, no BLAS). The float32 bound is taken from the operands themselves (K x their
    largest magnitudes), so an operand outside its format cannot make it inexact."""
    if bound < _FLOAT_EXACT and _peak(x) * _peak(w_t) * np.shape(x)[-1] < _FLOAT32_EXACT:
        return (np.asarray(x, np.float32) @ np.asarray(w_t, np.float32)).astype(np.int64)
    if bound < _FLOAT_EXACT:
        return (np.asarray(x, np.float64) @ np.asarray(w_t, np.float64)).astype(np.int64)
    return np.asarray(x, np.int64) @ np.asarray(w_t, np.int64)


def linear_acc(x_ints, w_ints, b_ints, num: LinearNumerics) -> np.ndarray:
    """acc[i, j] = sum_k x[i, k] * w[j, k] + b[j], exact int64, shape (N, M)."""
    x, w, b = _check_shapes(x_ints, w_ints, b_ints, num)
    return exact_matmul(x, w.T, num.dot_max) + b[None, :]


def linear_golden(x_ints, w_ints, b_ints, num: LinearNumerics) -> np.ndarray:
    """y[i, j] = saturate(requant(acc[i, j] * mult, shift), y): (N, K) -> (N, M) int64."""
    acc = linear_acc(x_ints, w_ints, b_ints, num)
    mult = np.asarray(num.mults, dtype=np.int64)[None, :] if num.per_channel else num.mult
    return saturate(requant(acc * mult, num.shift), num.y)


def linear_float(x_ints, w_ints, b_ints, num: LinearNumerics) -> np.ndarray:
    """The float reference, in real units: scale * (x_real @ W_real.T + b_real)."""
    x, w, b = _check_shapes(x_ints, w_ints, b_ints, num)
    xr = x.astype(np.float64) * 2.0 ** -num.x.frac
    wr = w.astype(np.float64) * num.steps[:, None]
    br = b.astype(np.float64) * 2.0 ** -num.x.frac * num.steps
    return num.scale * (xr @ wr.T + br[None, :])


def quantize_weights(w_float, num: LinearNumerics) -> np.ndarray:
    """Float weights (M, K) -> stored integers of ``num.w`` (round half up, saturate), in
    the narrowest numpy integer type that holds the format (int8 for 8-bit weights)."""
    if num.w_scales is not None:
        # float32 weights widen exactly inside the division (one float64 array, not two)
        w = np.divide(np.asarray(w_float).reshape(num.m, num.k), num.steps[:, None],
                      dtype=np.float64)
        return round_saturate(w, num.w.min_int, num.w.max_int, int_dtype(num.w))
    w = quantize(np.asarray(w_float, dtype=np.float64).reshape(num.m, num.k), num.w)
    return w.astype(int_dtype(num.w))


def int_dtype(fmt: FixedFormat):
    """The narrowest signed numpy integer type holding every integer of ``fmt``."""
    return next(t for t in (np.int8, np.int16, np.int32, np.int64)
                if np.iinfo(t).bits >= fmt.bits)


def quantize_bias(b_float, num: LinearNumerics) -> np.ndarray:
    """Float bias of ``y = scale * x.W + b_float`` -> accumulator-scale integers (b / scale;
    scaled weights: in each channel's accumulator units)."""
    b = np.asarray(b_float, dtype=np.float64).reshape(num.m) / num.scale
    if num.w_scales is None:
        return quantize(b, num.bias)
    return round_saturate(b * 2.0 ** num.x.frac / num.steps, num.bias.min_int,
                          num.bias.max_int)


# ---------------------------------------------------------------- ROM contents

def _folds(num: LinearNumerics, pe: int, simd: int) -> tuple[int, int]:
    if pe < 1 or num.m % pe or simd < 1 or num.k % simd:
        raise ValueError(f"linear: PE {pe} must divide M = {num.m} and SIMD {simd} must "
                         f"divide K = {num.k}")
    return num.m // pe, num.k // simd


def weight_rom(w_ints, pe: int, simd: int, num: LinearNumerics) -> list[int]:
    """The weight ROM: word f = p * (K/SIMD) + s (the firing index within a row) holds
    W[p*PE + j, s*SIMD + t] at bits [(j*SIMD + t) * w.bits, +w.bits), two's complement."""
    groups, chunks = _folds(num, pe, simd)
    w = np.asarray(w_ints, dtype=np.int64).reshape(num.m, num.k)
    # (groups, pe, chunks, simd) -> (groups, chunks, pe, simd): one word per (p, s)
    blocks = w.reshape(groups, pe, chunks, simd).transpose(0, 2, 1, 3).reshape(groups * chunks, -1)
    return _pack_rows(blocks, num.w.bits)


def mult_rom(pe: int, num: LinearNumerics) -> list[int]:
    """The requantization multiplier ROM of a :attr:`~LinearNumerics.per_channel` linear:
    word p holds mult[p*PE + j] at bits [j * mult_bits, +mult_bits) (unsigned), with
    mult_bits = the largest mult's bit length."""
    groups, _ = _folds(num, pe, 1)
    width = num.mult_max.bit_length()
    m = np.asarray(num.mults, dtype=np.int64).reshape(groups, pe)
    return _pack_unsigned(m, width)


def _pack_unsigned(rows: np.ndarray, bits: int) -> list[int]:
    return [sum(int(v) << (i * bits) for i, v in enumerate(row)) for row in rows.tolist()]


def bias_rom(b_ints, pe: int, num: LinearNumerics) -> list[int]:
    """The bias ROM: word p holds b[p*PE + j] at bits [j * bias.bits, +bias.bits)."""
    groups, _ = _folds(num, pe, 1)
    b = np.asarray(b_ints, dtype=np.int64).reshape(groups, pe)
    return _pack_rows(b, num.bias.bits)


def unpack_weight_rom(words, pe: int, simd: int, num: LinearNumerics) -> np.ndarray:
    """Inverse of :func:`weight_rom`: the (M, K) weight matrix."""
    groups, chunks = _folds(num, pe, simd)
    blocks = _unpack_rows(words, pe * simd, num.w.bits)
    return blocks.reshape(groups, chunks, pe, simd).transpose(0, 2, 1, 3).reshape(num.m, num.k)


def _pack_rows(rows: np.ndarray, bits: int) -> list[int]:
    """Row r -> the integer with element i's two's-complement bits at [i*bits, +bits)."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return [0] * len(rows)
    if bits <= 64:
        # the same bits from each element's little-endian two's-complement bytes
        le = np.ascontiguousarray(rows, dtype="<i8").view(np.uint8).reshape(*rows.shape, 8)
        if bits % 8 == 0:
            packed = np.ascontiguousarray(le[..., :bits // 8]).reshape(len(rows), -1)
        else:
            bit_array = np.unpackbits(le, axis=-1, bitorder="little")[..., :bits]
            packed = np.packbits(bit_array.reshape(len(rows), -1), axis=1, bitorder="little")
        return [int.from_bytes(row.tobytes(), "little") for row in packed]
    shifts = np.arange(bits, dtype=np.int64)
    # (rows, count, bits) little-endian bits of every element, then bytes of each row
    bit_array = ((rows[..., None] >> shifts) & 1).astype(np.uint8).reshape(len(rows), -1)
    packed = np.packbits(bit_array, axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def _unpack_rows(words, count: int, bits: int) -> np.ndarray:
    """Inverse of :func:`_pack_rows`: (len(words), count) signed elements."""
    nbytes = (count * bits + 7) // 8
    raw = np.frombuffer(b"".join(int(w).to_bytes(nbytes, "little") for w in words),
                        dtype=np.uint8).reshape(len(words), nbytes)
    bit_array = np.unpackbits(raw, axis=1, bitorder="little")[:, :count * bits]
    vals = (bit_array.reshape(len(words), count, bits).astype(np.int64)
            << np.arange(bits, dtype=np.int64)).sum(axis=2)
    return np.where(vals >> (bits - 1), vals - (1 << bits), vals)

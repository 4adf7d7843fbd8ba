"""Integer-only numerics: the one place where attnflow's arithmetic is defined.

Every function here is used three ways: by the golden interpreter (``ir.golden``), by the
simulator's behavioural models (``templates/``) and to generate constants and ROM contents
of the RTL (the components in ``templates/``). Functions take Python ints or numpy int64 arrays.

Rounding modes
--------------
* ``requant(x, n)``: ``n > 0`` shifts right rounding half up (``(x + 2**(n-1)) >> n``, an
  arithmetic shift, so ties go towards +inf); ``n <= 0`` shifts left exactly.
* ``saturate(x, fmt)``: clips to the format's integer range (used on every narrowing).
* ``exp_neg``: ``e**-z`` as ``2**-(z*log2 e)``: the fractional part indexes a ROM of
  ``2**score_frac`` entries, the integer part shifts right (floor).
* ``recip``: ``floor(2**R / l)``, exact integer division.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .types import FixedFormat

#: fractional bits of the 1/sqrt(d) multiplier
SCALE_BITS = 16
#: fractional bits of the log2(e) multiplier inside exp
LOG2E_BITS = 15
#: extra precision bits of the reciprocal beyond the worst case of the row sum
RECIP_PREC = 16
#: widest intermediate value the int64 golden model and simulator can carry
MAX_BITS = 62


def clog2(n: int) -> int:
    """Bits needed to count to ``n`` (0 for n <= 1)."""
    return max(0, int(n - 1).bit_length())


def requant(x, n: int):
    """Shift right by ``n`` rounding half up (``n > 0``), or left by ``-n``."""
    if n > 0:
        return (x + (1 << (n - 1))) >> n
    return x << (-n)


def mult_shift(factor: float, mult_bits: int) -> tuple[int, int]:
    """An integer multiplier and shift with ``requant(x * mult, shift) ~= x * factor``:
    exact (mult 1) when ``factor`` is a power of two, else ``mult`` normalised to
    ``mult_bits`` bits (relative error <= 2**-mult_bits), rounded half up."""
    mant, exp = math.frexp(factor)           # factor = mant * 2**exp, 0.5 <= mant < 1
    if mant == 0.5:
        return 1, 1 - exp
    shift = mult_bits - exp                  # factor * 2**shift in [2**(mb-1), 2**mb)
    mult = round_int(math.ldexp(factor, shift))
    if mult >> mult_bits:                    # rounded up to 2**mult_bits
        mult, shift = mult >> 1, shift - 1
    return mult, shift


def saturate(x, fmt: FixedFormat):
    if isinstance(x, np.ndarray):
        return np.clip(x, fmt.min_int, fmt.max_int)
    return min(max(x, fmt.min_int), fmt.max_int)


#: float64 holds every integer of magnitude up to 2**53 exactly
_FLOAT_EXACT = 1 << 53


def round_saturate(values, lo: int, hi: int, dtype=np.int64) -> np.ndarray:
    """Floats -> int64 (or ``dtype``, one that holds ``[lo, hi]``), rounded half up and
    clipped to ``[lo, hi]`` *before* the cast (a cast first would turn values at or above
    2**63 into the most negative integer). The one place a float array becomes integers;
    NaN is refused (ValueError)."""
    x = np.array(values, dtype=np.float64)         # a copy: rounded and clipped in place
    x += 0.5
    np.floor(x, out=x)
    if x.size and np.isnan(x.min()):               # min is NaN when any value is
        raise ValueError("cannot turn NaN into an integer")
    if -_FLOAT_EXACT < lo and hi < _FLOAT_EXACT:   # bounds exact in float64: clip, then cast
        out = np.clip(x, lo, hi, out=x).astype(dtype)
        return out if out.ndim else out[()]
    high, low = x >= hi, x <= lo      # compared before the cast: exact for 64-bit bounds
    out = np.where(high | low, 0.0, x).astype(np.int64)
    out[high] = hi
    out[low] = lo
    return out


def round_int(value: float, lo: int | None = None, hi: int | None = None) -> int:
    """One float -> a Python int, rounded half up, clipped to ``[lo, hi]`` when given.
    Non-finite values outside those bounds are refused (ValueError)."""
    if math.isnan(value):
        raise ValueError("cannot turn NaN into an integer")
    if lo is not None and value <= lo:
        return lo
    if hi is not None and value >= hi:
        return hi
    if math.isinf(value):
        raise ValueError(f"cannot turn {value} into an integer")
    return int(math.floor(value + 0.5))


def quantize(values, fmt: FixedFormat) -> np.ndarray:
    """Float -> stored integers of ``fmt`` (round half up, saturate before the cast)."""
    return round_saturate(np.asarray(values, dtype=np.float64) * 2.0 ** fmt.frac,
                          fmt.min_int, fmt.max_int)


def dequantize(ints, frac: int) -> np.ndarray:
    return np.asarray(ints, dtype=np.float64) / 2.0 ** frac


def signed_bits(max_abs: int) -> int:
    """Two's-complement width holding every value in [-max_abs, max_abs]."""
    return int(max_abs).bit_length() + 1


@lru_cache(maxsize=None)
def exp2_table(score_frac: int, prob_frac: int) -> tuple[int, ...]:
    """ROM of 2**(-r / 2**score_frac) in ``prob_frac`` fractional bits, r in [0, 2**score_frac)."""
    size = 1 << score_frac
    return tuple(int(math.floor(2.0 ** prob_frac * 2.0 ** (-r / size) + 0.5)) for r in range(size))


LOG2E_MULT = int(round(math.log2(math.e) * (1 << LOG2E_BITS)))


@lru_cache(maxsize=None)
def _table_array(score_frac: int, prob_frac: int) -> np.ndarray:
    a = np.asarray(exp2_table(score_frac, prob_frac), dtype=np.int64)
    a.flags.writeable = False
    return a
#: elements (rows x cols x d) of one row block of :meth:`AttentionNumerics.online_rows`
ONLINE_BLOCK = 1 << 22
#: segments per row (running-max changes) up to which a shared-V online softmax sums
#: its segments with one matrix product
ONLINE_MATMUL_SEGMENTS = 16


def exp_neg(z, score_frac: int, prob_frac: int):
    """``round(2**prob_frac * e**(-z / 2**score_frac))`` approximately, for integer z >= 0.

    u = z * log2(e) (rounded to score_frac fractional bits); the fraction of u indexes the
    ROM, the integer part shifts the ROM word right. Shifts of prob_frac + 1 or more give 0.
    """
    table = exp2_table(score_frac, prob_frac)
    u = requant(z * LOG2E_MULT, LOG2E_BITS)
    ipart = u >> score_frac
    fpart = u & ((1 << score_frac) - 1)
    limit = prob_frac + 1
    if isinstance(u, np.ndarray):
        word = _table_array(score_frac, prob_frac)[fpart]
        return np.where(ipart >= limit, 0, word >> np.minimum(ipart, limit))
    return 0 if ipart >= limit else table[fpart] >> ipart


def recip(l, recip_bits: int):
    """``floor(2**recip_bits / l)`` for l >= 1."""
    if isinstance(l, np.ndarray):
        return np.floor_divide(np.int64(1) << recip_bits, l)
    return (1 << recip_bits) // l


@dataclass(frozen=True)
class AttentionNumerics:
    """Every constant and width of one attention head's integer datapath.

    Derived once from the formats, N and d; read by the golden model, the simulator and
    the HDL, so no back-end re-derives a width.
    """
    seq_len: int
    head_dim: int
    q: FixedFormat
    k: FixedFormat
    v: FixedFormat
    out: FixedFormat
    score_frac: int
    prob_frac: int

    # --- scores: x = requant(q.k * scale_mult, scale_shift), frac = score_frac
    @property
    def scale_mult(self) -> int:
        return int(round(2.0 ** SCALE_BITS / math.sqrt(self.head_dim)))

    @property
    def scale_shift(self) -> int:
        return self.q.frac + self.k.frac + SCALE_BITS - self.score_frac

    @property
    def dot_bits(self) -> int:
        """Width of the raw dot product q.k (signed)."""
        return signed_bits(self.head_dim * (-self.q.min_int) * (-self.k.min_int))

    @property
    def score_bits(self) -> int:
        max_dot = self.head_dim * (-self.q.min_int) * (-self.k.min_int)
        return signed_bits(requant(max_dot * self.scale_mult, self.scale_shift) + 1)

    @property
    def z_bits(self) -> int:
        """Width of m - x >= 0 (unsigned)."""
        return self.score_bits

    # --- probabilities
    @property
    def one(self) -> int:
        return 1 << self.prob_frac

    @property
    def exp_bits(self) -> int:
        return self.prob_frac + 1

    @property
    def sum_bits(self) -> int:
        """Width of a row sum of N probabilities (unsigned)."""
        return (self.seq_len * self.one).bit_length()

    @property
    def recip_bits(self) -> int:
        """R in floor(2**R / l)."""
        return self.prob_frac + clog2(self.seq_len) + RECIP_PREC

    @property
    def recip_width(self) -> int:
        return self.recip_bits - self.prob_frac + 1

    @property
    def acc_bits(self) -> int:
        """Width of sum_j p_j * v_j with p in prob_frac (signed); frac = prob_frac + v.frac."""
        return signed_bits(self.seq_len * self.one * (-self.v.min_int))

    @property
    def out_shift_online(self) -> int:
        """out = requant(o * r, out_shift_online): o / l in the out format."""
        return self.recip_bits + self.v.frac - self.out.frac

    @property
    def out_shift_naive(self) -> int:
        return self.prob_frac + self.v.frac - self.out.frac

    @property
    def p_shift(self) -> int:
        """naive: p = requant(e * r, p_shift), p in prob_frac."""
        return self.recip_bits - self.prob_frac

    def check(self) -> list[tuple[str, str]]:
        """Problems as (spec field, message); empty when the datapath is implementable."""
        problems = []
        if self.scale_shift < 1:
            problems.append(("formats.score_frac",
                             f"must be below q.frac + k.frac + {SCALE_BITS} = "
                             f"{self.q.frac + self.k.frac + SCALE_BITS}, got {self.score_frac}"))
        widest = max(self.acc_bits + self.exp_bits, self.score_bits + 16 + LOG2E_BITS,
                     self.dot_bits + SCALE_BITS + 1, self.sum_bits + self.exp_bits,
                     self.recip_bits + self.v.bits, self.exp_bits + self.recip_width)
        if widest > MAX_BITS:
            problems.append(("formats.prob_frac",
                             f"the datapath needs {widest}-bit intermediates (limit {MAX_BITS}); "
                             "lower formats.prob_frac, the input formats' bits or model.seq_len"))
        return problems

    # --- the scalar/vector kernels, defined once
    def scores(self, q_ints: np.ndarray, k_ints: np.ndarray) -> np.ndarray:
        """x[i, j] = requant((q_i . k_j) * scale_mult, scale_shift)."""
        dot = q_ints.astype(np.int64) @ k_ints.astype(np.int64).T
        return requant(dot * self.scale_mult, self.scale_shift)

    def exp(self, z):
        return exp_neg(z, self.score_frac, self.prob_frac)

    def recip(self, l):
        return recip(l, self.recip_bits)

    def online_step(self, first: bool, m, l, o, x, v):
        """One score of the online softmax for a batch of rows (arrays over rows).

        State (m, l, o): running max, running sum, running unnormalised output (rows x d).
        first element of a row: m = x, l = 1, o = v.
        x <= m: p = e^(x - m); l = l + p; o = o + p * v.
        x > m:  a = e^(m - x); m = x; l = l * a + 1; o = o * a + v  (products rounded).
        Only one exp per score: of |x - m|. ``first`` is a Python bool (same for all rows).
        """
        one = self.one
        if first:
            return x.copy(), np.full_like(x, one), v * one
        le = x <= m
        e = self.exp(np.where(le, m - x, x - m))
        o_new = np.where(le[:, None], o + e[:, None] * v,
                         requant(o * e[:, None], self.prob_frac) + v * one)
        l_new = np.where(le, l + e, requant(l * e, self.prob_frac) + one)
        return np.maximum(m, x), l_new, o_new

    def online_rows_stepwise(self, x, v) -> tuple:
        """The online softmax over whole rows, column by column with :meth:`online_step`
        (the definition; :meth:`online_rows` computes the same integers faster)."""
        rows, cols = x.shape
        m = l = o = None
        for j in range(cols):
            vj = v[:, j] if v.ndim == 3 else np.broadcast_to(v[j], (rows, v.shape[-1]))
            m, l, o = self.online_step(j == 0, m, l, o, x[:, j], vj)
        return m, l, o

    def online_rows(self, x, v, valid=None) -> tuple:
        """The online softmax over whole rows: scores ``x`` (rows x cols), taken column by
        column as :meth:`online_step` takes them; ``v`` one V row per column shared by
        every row (cols x d) or one per row and column (rows x cols x d); ``valid`` (rows x
        cols booleans, column 0 all true): a column that is not valid leaves the state
        as it was. Returns the state (m, l, o) after the last column. The one row loop of
        the golden models and the simulator's softmax templates.

        The same integers as the column-by-column recurrence, computed in whole arrays:
        the running max of every column is a prefix max, so whether a column raises the
        max (a *change*: the state is rescaled, rounded) or adds ``e = exp(m - x)`` (an
        exact integer sum) is known before the recurrence runs. The sums between changes
        are differences of cumulative sums, and only the changes are taken in order (one
        step per change, over the rows that have that many). Rows go in blocks of at most
        ONLINE_BLOCK elements of (rows x cols x d)."""
        x = np.asarray(x, np.int64)
        v = np.asarray(v, np.int64)
        rows, cols = x.shape
        block = max(1, ONLINE_BLOCK // max(1, cols * v.shape[-1]))
        parts = []
        for a in range(0, rows, block):
            parts.append(self._online_block(
                x[a:a + block], v if v.ndim == 2 else v[a:a + block],
                None if valid is None else np.asarray(valid, bool)[a:a + block]))
        return tuple(np.concatenate(p) for p in zip(*parts))

    def _online_block(self, x, v, valid) -> tuple:
        rows, cols = x.shape
        one, pf = self.one, self.prob_frac
        shared = v.ndim == 2
        low = np.iinfo(np.int64).min >> 2
        mx = np.maximum.accumulate(x if valid is None else np.where(valid, x, low), axis=1)
        change = np.zeros((rows, cols), bool)
        change[:, 0] = True
        change[:, 1:] = x[:, 1:] > mx[:, :-1]
        adds = ~change if valid is None else valid & ~change
        if valid is not None:
            change &= valid
        w = np.where(adds, self.exp(np.where(adds, mx - x, 0)), 0)
        # segments: from each change up to the next (every row starts one at column 0);
        # their sums of w and of w * v, in row-major order
        starts = np.flatnonzero(change)
        count = change.sum(axis=1)
        first = np.concatenate(([0], np.cumsum(count)[:-1]))
        seg_l = np.add.reduceat(w.reshape(-1), starts)
        seg_o = self._segment_sums(w, v, change, starts)
        column = starts - np.repeat(np.arange(rows) * cols, count)
        l = np.full(rows, one, np.int64)
        o = np.array(np.broadcast_to((v[0][None, :] if shared else v[:, 0]) * one,
                                     (rows, v.shape[-1])))
        for k in range(1, int(count.max())):
            r = np.nonzero(count > k)[0]
            seg = first[r] + k
            c = column[seg]
            a = self.exp(x[r, c] - mx[r, c - 1])
            l[r] = requant((l[r] + seg_l[seg - 1]) * a, pf) + one
            o[r] = requant((o[r] + seg_o[seg - 1]) * a[:, None], pf) + \
                (v[c] if shared else v[r, c]) * one
        last = first + count - 1
        return mx[:, -1], l + seg_l[last], o + seg_o[last]

    def _segment_sums(self, w, v, change, starts) -> np.ndarray:
        """Sums of w * v over the segments starting at ``starts`` (flat row-major
        indices of w). With V rows shared by every row and few segments: one matrix
        product (segments x cols) @ V, exact (``numerics_linear.exact_matmul``); else
        the products summed with ``np.add.reduceat``."""
        rows, cols = w.shape
        if v.ndim == 2 and len(starts) <= ONLINE_MATMUL_SEGMENTS * rows:
            from .numerics_linear import exact_matmul
            seg = np.cumsum(change.reshape(-1)) - 1
            a = np.zeros((len(starts), cols), np.int64)
            a[seg, np.tile(np.arange(cols), rows)] = w.reshape(-1)
            bound = cols * self.one * max(1, int(np.abs(v).max(initial=0)))
            return exact_matmul(a, v, bound)
        prod = (w[:, :, None] * (v[None] if v.ndim == 2 else v)).reshape(rows * cols, -1)
        return np.add.reduceat(prod, starts, axis=0)

    def normalize(self, o, l):
        """Online variant's output: saturate(requant(o * floor(2**R / l), out_shift))."""
        return saturate(requant(o * self.recip(l)[:, None], self.out_shift_online), self.out)


def attention_numerics(seq_len, head_dim, q, k, v, out, score_frac, prob_frac) -> AttentionNumerics:
    return AttentionNumerics(seq_len, head_dim, q, k, v, out, score_frac, prob_frac)


def attention_float(q, k, v, keep=None) -> np.ndarray:
    """The float reference of one attention head: softmax(q k^T / sqrt(d)) v, with the
    scores where ``keep`` (a boolean query x key array) is False left out. The one float
    attention every reference uses: the graph's ``sdpa`` op, window/causal heads, decode
    and the encoder layers' heads."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    s = q @ k.T / math.sqrt(q.shape[1])
    if keep is not None:
        s = np.where(keep, s, -np.inf)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)) @ v

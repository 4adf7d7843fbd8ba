"""Integer LayerNorm / RMSNorm / GELU / ReLU / rescale (ir.numerics_norm): exactness of
the integer square root, error bounds against float, width derivations, and bit-exactness
of the Amaranth helpers (templates.norm, templates.activation, hdl.datapath) under
Amaranth's own simulator.

Error bounds stated here (float reference = the float op on the same stored inputs,
clipped to the output range, so only the integer kernel's error is measured):

* LayerNorm / RMSNorm: max abs error <= 0.5 LSB + |g| * (sqrt(D) * (2**-(ROOT_BITS-1) +
  2**-(INV_BITS-1)) + 2**-ROOT_BITS) (the module docstring's bound), and <= 1 output
  LSB for the formats below (measured: 0.50 LSB at 8-bit out.frac 5, up to 0.79 LSB at
  out.frac 10 with D = 128); cosine similarity >= 0.9999 (8-bit output), 0.999999
  (16-bit output).
* GELU, ROM: <= 0.5 output LSB (+1e-9) everywhere (exhaustive over the input range).
* GELU, polynomial: <= 0.5 LSB + |x| * (2**-(GATE_FRAC+1) + 0.4 * 2**-Fp + 2.5e-5)
  against I-BERT's approximation in real arithmetic (Fp >= 8: the fractional bits of |x|
  inside the polynomial), which itself is within 0.0182 of the exact GELU.
* ReLU / rescale with a power-of-two factor: exact round-half-up of the real value.
"""
import math

import numpy as np
import pytest
from amaranth.hdl import Cat, Elaboratable, Module, Signal, signed
from amaranth.sim import Simulator

from attnflow.hdl.datapath import rescale_hw
from attnflow.ir.numerics import MAX_BITS, dequantize
from attnflow.ir.numerics_norm import (GELU_GATE_FRAC, GELU_MULT_BITS, GELU_ROM_MAX_BITS, INV_BITS, ROOT_BITS,
                                       GeluNumerics, LayerNormNumerics, RescaleNumerics,
                                       bit_length, gelu_float, gelu_golden, gelu_ibert_float,
                                       gelu_table, isqrt, layernorm_float, layernorm_golden,
                                       layernorm_stats, relu_golden, rescale_golden,
                                       rmsnorm_float, rmsnorm_golden, rmsnorm_stats)
from attnflow.ir.types import FixedFormat
from attnflow.templates.activation import gelu_hw, relu_hw
from attnflow.templates.activation import rescale_hw as rescale_pipe
from attnflow.templates.norm import isqrt_hw, layernorm_row_hw, rmsnorm_row_hw

F = FixedFormat


# ---------------------------------------------------------------- isqrt

def _isqrt_edges(bits):
    top = (1 << bits) - 1
    vals = {0, 1, 2, 3, 4, top, top - 1, 1 << (bits - 1)}
    for k in range(bits):
        vals |= {(1 << k) - 1, 1 << k, (1 << k) + 1}
    for r in (1, 2, 3, 1000, 65535, 65536, 3037000499, isqrt(top)):
        for d in (-1, 0, 1):
            v = r * r + d
            if 0 <= v <= top:
                vals.add(v)
    return sorted(v for v in vals if 0 <= v <= top)


@pytest.mark.parametrize("bits", [1, 2, 7, 16, 32, 33, 61, 62])
def test_isqrt_equals_math_isqrt(bits):
    rng = np.random.default_rng(bits)
    edges = _isqrt_edges(bits)
    rand = rng.integers(0, 1 << bits, 20000, dtype=np.int64) if bits < 63 else []
    # random squares and their neighbours, and log-uniform magnitudes
    roots = rng.integers(0, isqrt((1 << bits) - 1) + 1, 5000, dtype=np.int64)
    mags = rng.integers(0, bits + 1, 5000)
    logu = [int(rng.integers(0, 1 << int(k))) if k else 0 for k in mags]
    vals = edges + list(rand) + [int(r) * int(r) for r in roots] + logu
    arr = np.array(vals, dtype=np.int64)
    got = isqrt(arr, bits)
    assert got.tolist() == [math.isqrt(int(v)) for v in arr]
    # the scalar path (Python ints) gives the same
    assert [isqrt(int(v), bits) for v in edges] == [math.isqrt(v) for v in edges]


def test_isqrt_default_width_and_range_errors():
    top = (1 << MAX_BITS) - 1
    assert isqrt(np.array([top, 0, 1], dtype=np.int64)).tolist() == \
        [math.isqrt(top), 0, 1]
    assert isqrt(10 ** 30) == math.isqrt(10 ** 30)           # scalar: any size
    with pytest.raises(ValueError):
        isqrt(np.array([16], dtype=np.int64), 4)
    with pytest.raises(ValueError):
        isqrt(np.array([-1], dtype=np.int64))
    with pytest.raises(ValueError):
        isqrt(5, 2)


def test_bit_length_vectorized():
    vals = [0, 1, 2, 3, 255, 256, (1 << 62) - 1, 1 << 61, 12345678901]
    assert bit_length(np.array(vals, dtype=np.int64)).tolist() == [v.bit_length() for v in vals]


# ---------------------------------------------------------------- LayerNorm / RMSNorm

LN_FORMATS = [
    # x, gamma, beta, out
    (F(8, 4), F(8, 6), F(8, 6), F(8, 5)),
    (F(16, 8), F(8, 6), F(12, 8), F(16, 10)),
]
#: cosine similarity floor per output width: the output rounding alone (0.29 LSB rms on
#: values of rms ~1) costs about 1e-5 at 5 fractional bits
COS_MIN = {8: 0.9999, 16: 0.999999}


def _rows(rng, fmt, n, d):
    """Random rows of every kind: full-range uniform, small spread (variance of a few LSB**2),
    one outlier, constant, alternating extremes."""
    x = rng.integers(fmt.min_int, fmt.max_int + 1, (n, d))
    q = n // 6
    x[q:2 * q] //= rng.integers(50, 1 << (fmt.bits - 2), (q, 1))
    x[2 * q:3 * q] = rng.integers(-2, 3, (q, d)) + rng.integers(fmt.min_int // 2, fmt.max_int // 2, (q, 1))
    out = rng.integers(0, d, q)
    x[3 * q:4 * q] = rng.integers(-3, 4, (q, d))
    x[3 * q + np.arange(q), out] = fmt.max_int
    x[4 * q] = fmt.min_int
    x[4 * q + 1] = 7
    x[4 * q + 2, ::2] = fmt.min_int
    x[4 * q + 2, 1::2] = fmt.max_int
    return x


def _accuracy(got_ints, ref_real, out):
    got = dequantize(got_ints, out.frac)
    ref = np.clip(ref_real, out.min_value, out.max_value)
    err = np.abs(got - ref).max()
    cos = float((got * ref).sum() / (np.linalg.norm(got) * np.linalg.norm(ref)))
    return err, cos


def _ln_bound(num, g_real):
    gmax = float(np.abs(g_real).max())
    return 0.5 * num.out.lsb + gmax * (math.sqrt(num.dim) * (2.0 ** -(ROOT_BITS - 1)
                                                              + 2.0 ** -(INV_BITS - 1))
                                      + 2.0 ** -ROOT_BITS)


@pytest.mark.parametrize("d", [16, 64, 128])
@pytest.mark.parametrize("fmts", LN_FORMATS, ids=["s8", "s16"])
def test_layernorm_vs_float(d, fmts):
    xf, gf, bf, of = fmts
    num = LayerNormNumerics(d, xf, gf, bf, of)
    assert num.check() == []
    rng = np.random.default_rng(d)
    x = _rows(rng, xf, 300, d)
    g = rng.integers(gf.min_int, gf.max_int + 1, d)
    b = rng.integers(bf.min_int, bf.max_int + 1, d)
    y = layernorm_golden(x, g, b, num)
    g_real, b_real = dequantize(g, gf.frac), dequantize(b, bf.frac)
    ref = layernorm_float(dequantize(x, xf.frac), g_real, b_real, num.eps)
    err, cos = _accuracy(y, ref, of)
    assert err <= _ln_bound(num, g_real)
    assert err <= 1.0 * of.lsb
    assert cos >= COS_MIN[of.bits]
    # the constant row is exactly beta
    assert y[4 * (300 // 6) + 1].tolist() == rescale_golden(b, RescaleNumerics(bf, of)).tolist()


@pytest.mark.parametrize("d", [16, 64, 128])
@pytest.mark.parametrize("fmts", LN_FORMATS, ids=["s8", "s16"])
def test_rmsnorm_vs_float(d, fmts):
    xf, gf, bf, of = fmts
    num = LayerNormNumerics(d, xf, gf, bf, of)
    rng = np.random.default_rng(100 + d)
    x = _rows(rng, xf, 300, d)
    g = rng.integers(gf.min_int, gf.max_int + 1, d)
    y = rmsnorm_golden(x, g, num)
    g_real = dequantize(g, gf.frac)
    ref = rmsnorm_float(dequantize(x, xf.frac), g_real, num.eps)
    err, cos = _accuracy(y, ref, of)
    assert err <= _ln_bound(num, g_real)
    assert err <= 1.0 * of.lsb
    assert cos >= COS_MIN[of.bits]


def test_layernorm_eps_dominates_tiny_variance():
    """A row differing by one LSB, with eps far above its variance: eps is carried with
    EPS_BITS significant bits, so the result still matches float."""
    xf, of = F(8, 4), F(16, 12)
    num = LayerNormNumerics(16, xf, F(8, 6), F(8, 6), of, eps=0.01)
    x = np.zeros((2, 16), dtype=np.int64)
    x[0, 3] = 1
    x[1, :8] = 1
    g = np.full(16, 64)
    b = np.zeros(16, dtype=np.int64)
    y = layernorm_golden(x, g, b, num)
    ref = layernorm_float(dequantize(x, xf.frac), 1.0, 0.0, 0.01)
    assert np.abs(dequantize(y, of.frac) - ref).max() <= 0.6 * of.lsb


def _extreme_rows(fmt, d, rng):
    lo, hi = fmt.min_int, fmt.max_int
    rows = [np.full(d, lo), np.full(d, hi), np.zeros(d), np.tile([lo, hi], d)[:d],
            np.r_[hi, np.full(d - 1, lo)], np.r_[lo, np.full(d - 1, hi)],
            np.r_[lo, np.zeros(d - 1)], np.r_[1, np.zeros(d - 1)]]
    rows += list(rng.integers(lo, hi + 1, (50, d)))
    return np.array(rows, dtype=np.int64)


def _fits(v, bits, signed_):
    v = np.asarray(v)
    if signed_:
        return bool(v.min() >= -(1 << (bits - 1)) and v.max() < (1 << (bits - 1)))
    return bool(v.min() >= 0 and v.max() < (1 << bits))


@pytest.mark.parametrize("d", [1, 3, 16, 128, 1024])
@pytest.mark.parametrize("fmts", LN_FORMATS + [(F(16, 0), F(16, 14), F(16, 14), F(16, 12))],
                         ids=["s8", "s16", "s16int"])
def test_layernorm_widths_hold_every_intermediate(d, fmts):
    num = LayerNormNumerics(d, *fmts)
    assert num.check() == []
    rng = np.random.default_rng(d)
    x = _extreme_rows(num.x, d, rng)
    g = np.array([num.gamma.min_int, num.gamma.max_int] * d)[:d]
    b = np.array([num.beta.min_int, num.beta.max_int] * d)[:d]
    for stats in (layernorm_stats, rmsnorm_stats):
        c, u = stats(x, num)
        assert _fits(c, num.c_bits, True) and _fits(u, num.u_bits, False)
        assert u.min() >= 1
        s = num.stages(c, u, g, b)
        assert _fits(s["sh"], num.shift_bits, False) and s["sh"].max() <= num.shift_max
        assert _fits(s["un"], num.root_in_bits, False)
        assert s["un"].min() >= 1 << (num.root_in_bits - 2)          # normalized
        assert s["r"].min() >= 1 << (ROOT_BITS - 1) and _fits(s["r"], ROOT_BITS, False)
        assert _fits(s["inv"], num.inv_bits, False)
        assert _fits(c << s["sh"][:, None], num.c_bits + num.shift_max, True)
        assert _fits(s["cn"], num.cn_bits, True)
        assert _fits(s["acc"], num.acc_bits, True)
    assert max(num.u_bits + 1, num.un_wide_bits, num.cs_bits, num.acc_bits) <= MAX_BITS


def test_layernorm_check_reports_too_wide_and_bad_beta():
    wide = LayerNormNumerics(4096, F(32, 16), F(16, 8), F(16, 8), F(16, 8))
    assert [f for f, _ in wide.check()] == ["formats.x"]
    bad = LayerNormNumerics(16, F(8, 4), F(8, 0), F(40, 39), F(8, 4))
    assert "formats.beta" in [f for f, _ in bad.check()]
    with pytest.raises(ValueError):
        LayerNormNumerics(0, F(8, 4), F(8, 6), F(8, 6), F(8, 4))
    with pytest.raises(ValueError):
        LayerNormNumerics(8, F(8, 4), F(8, 6), F(8, 6), F(8, 4), eps=-1.0)


# ---------------------------------------------------------------- GELU, ReLU, rescale

GELU_FORMATS = [(F(8, 4), F(8, 4)), (F(8, 3), F(8, 5)), (F(10, 5), F(10, 6)),
                (F(12, 6), F(8, 4)), (F(16, 8), F(16, 8)), (F(16, 0), F(16, 0)),
                (F(16, 10), F(16, 12)), (F(24, 12), F(16, 8))]


def _gelu_inputs(fmt):
    if fmt.bits <= 16:
        return np.arange(fmt.min_int, fmt.max_int + 1, dtype=np.int64)
    rng = np.random.default_rng(0)
    return np.r_[rng.integers(fmt.min_int, fmt.max_int + 1, 100000),
                 np.arange(-(8 << fmt.frac), 8 << fmt.frac, 7), fmt.min_int, fmt.max_int]


@pytest.mark.parametrize("xf,of", [f for f in GELU_FORMATS if f[0].bits <= GELU_ROM_MAX_BITS])
def test_gelu_rom_within_half_lsb(xf, of):
    num = GeluNumerics(xf, of, "rom")
    assert num.check() == [] and GeluNumerics(xf, of).kind == "rom"
    x = _gelu_inputs(xf)
    ref = np.clip(gelu_float(dequantize(x, xf.frac)), of.min_value, of.max_value)
    assert np.abs(dequantize(gelu_golden(x, num), of.frac) - ref).max() <= 0.5 * of.lsb + 1e-9
    assert len(gelu_table(xf, of)) == 1 << xf.bits


def _gate_error(num):
    """Bound of |H / 2**GATE_FRAC - Phi_ibert(x)|: H's rounding (2**-(GATE_FRAC+1)); the
    rounding of C and of |x| to Fp fractional bits moves the parabola (slope of
    Phi <= |a|/2 * 2 * 2.502 = 0.72, half of it on Phi, times 2**-(Fp+1) each); M and K
    rounded (curvature off by <= 2**-(MULT_BITS+1) * 6.26 / 2)."""
    return (2.0 ** -(GELU_GATE_FRAC + 1) + 0.4 * 2.0 ** -num.poly_frac
            + 2.0 ** -(GELU_MULT_BITS + 1) * 3.2 + 2.0 ** -(2 * num.poly_frac))


@pytest.mark.parametrize("xf,of", GELU_FORMATS)
def test_gelu_poly_error_bounds(xf, of):
    num = GeluNumerics(xf, of, "poly")
    assert num.check() == []
    x = _gelu_inputs(xf)
    xr = dequantize(x, xf.frac)
    y = dequantize(gelu_golden(x, num), of.frac)
    ibert = np.clip(gelu_ibert_float(xr), of.min_value, of.max_value)
    exact = np.clip(gelu_float(xr), of.min_value, of.max_value)
    bound = 0.5 * of.lsb + np.abs(xr) * _gate_error(num) + 1e-9
    assert np.all(np.abs(y - ibert) <= bound)
    assert np.abs(y - exact).max() <= 0.0182 + bound.max()
    # the plateau is exact: GELU(x) = x for x >= 2.51, and 0 for x <= -2.51
    big = xr >= 2.51
    assert np.array_equal(gelu_golden(x[big], num),
                          np.clip(rescale_golden(x[big], RescaleNumerics(xf, of)),
                                  of.min_int, of.max_int))
    assert np.all(gelu_golden(x[xr <= -2.51], num) == 0)


def test_gelu_ibert_approximation_error():
    """I-BERT's parabola alone: max |GELU_ibert - GELU| ~= 0.0182 (near |x| = 2.35)."""
    x = np.linspace(-8, 8, 160001)
    err = np.abs(gelu_ibert_float(x) - gelu_float(x))
    assert 0.017 < err.max() < 0.0182
    assert 2.2 < abs(x[np.argmax(err)]) < 2.5


def test_gelu_default_method():
    assert GeluNumerics(F(8, 4), F(8, 4)).kind == "rom"
    assert GeluNumerics(F(10, 4), F(8, 4)).kind == "rom"
    assert GeluNumerics(F(11, 4), F(8, 4)).kind == "poly"
    assert [f for f, _ in GeluNumerics(F(12, 4), F(8, 4), "rom").check()] == ["gelu.method"]
    with pytest.raises(ValueError):
        GeluNumerics(F(8, 4), F(8, 4), "table")


def test_relu_and_rescale():
    x = np.arange(-128, 128, dtype=np.int64)
    num = RescaleNumerics(F(8, 4), F(8, 2))
    assert (num.mult, num.shift) == (1, 2)
    ref = np.floor(np.maximum(x, 0) / 4 + 0.5)
    assert relu_golden(x, num).tolist() == ref.astype(np.int64).tolist()
    up = RescaleNumerics(F(8, 2), F(12, 5))                  # exact left shift
    assert up.shift == -3 and rescale_golden(x, up).tolist() == (x * 8).tolist()
    odd = RescaleNumerics(F(16, 8), F(8, 4), scale=1 / 3)    # a normalized multiplier
    assert 1 << 15 <= odd.mult < 1 << 16 and odd.check() == []
    xs = np.arange(-32768, 32768, 13, dtype=np.int64)
    got = rescale_golden(xs, odd)
    ref = np.clip(xs / 256 / 3 * 16, -128, 127)
    assert np.abs(got - ref).max() <= 0.5 + 128 * 2.0 ** -16
    assert RescaleNumerics(F(8, 0), F(62, 61)).check() != []


# ---------------------------------------------------------------- hardware bit-exactness

def _fields(inp, in_fields):
    """The (bits, signed) fields of the flat input Signal ``inp``, as Values in order."""
    ins, off = [], 0
    for bits, sig in in_fields:
        v = inp[off:off + bits]
        ins.append(v.as_signed() if sig else v)
        off += bits
    return ins


class _Comb(Elaboratable):
    """A combinational DUT: one flat input Signal ``inp`` (the fields ``in_fields``, each
    (bits, signed)), one flat output Signal ``out`` (``n_out`` fields of ``out_bits``).
    ``build(m, ins)`` gets the input fields as Values and returns the output Values."""

    def __init__(self, in_fields, out_bits, n_out, build):
        self.in_fields, self.out_bits, self.build = in_fields, out_bits, build
        self.inp = Signal(sum(b for b, _ in in_fields))
        self.out = Signal(out_bits * n_out)

    def elaborate(self, platform):
        m = Module()
        ins = _fields(self.inp, self.in_fields)
        outs = self.build(m, ins)
        m.d.comb += self.out.eq(Cat(*[o[:self.out_bits] for o in outs]))
        return m


def _run_comb(in_fields, out_bits, n_out, build, vectors, out_signed=True):
    """Drive every input vector, return the output fields (as ints) for each."""
    dut = _Comb(in_fields, out_bits, n_out, build)
    results = []

    def pack(vec):
        word, off = 0, 0
        for (bits, _), v in zip(in_fields, vec):
            word |= (int(v) & ((1 << bits) - 1)) << off
            off += bits
        return word

    def unpack(word):
        mask, sign = (1 << out_bits) - 1, 1 << (out_bits - 1)
        vals = [(word >> (i * out_bits)) & mask for i in range(n_out)]
        return [((v ^ sign) - sign) if out_signed else v for v in vals]

    async def bench(ctx):
        for vec in vectors:
            ctx.set(dut.inp, pack(vec))
            results.append(unpack(ctx.get(dut.out)))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    return np.array(results, dtype=np.int64)


class _Pipe(Elaboratable):
    """A pipelined DUT: input fields as in :class:`_Comb`; ``build(m, ins)`` returns
    (Value, stages) pairs, read into the signed signals ``outs``."""

    def __init__(self, in_fields, out_bits, build):
        self.in_fields, self.out_bits, self.build = in_fields, out_bits, build
        self.inp = Signal(sum(b for b, _ in in_fields))
        self.outs, self.stages = [], []

    def elaborate(self, platform):
        m = Module()
        ins = _fields(self.inp, self.in_fields)
        for k, (v, n) in enumerate(self.build(m, ins)):
            o = Signal(signed(self.out_bits), name=f"out{k}")
            m.d.comb += o.eq(v)
            self.outs.append(o)
            self.stages.append(n)
        return m


def _run_pipe(in_fields, out_bits, build, vectors):
    """Drive one input vector a cycle into a :class:`_Pipe` (its registers advance every
    cycle, as a template's pipeline does) and read each vector's outputs its stages
    later (all outputs of equal stages)."""
    dut = _Pipe(in_fields, out_bits, build)
    got = {}

    def pack(vec):
        word, off = 0, 0
        for (bits, _), v in zip(in_fields, vec):
            word |= (int(v) & ((1 << bits) - 1)) << off
            off += bits
        return word

    async def bench(ctx):
        assert len(set(dut.stages)) == 1, dut.stages
        n = dut.stages[0]
        for t in range(len(vectors) + n):
            if t < len(vectors):
                ctx.set(dut.inp, pack(vectors[t]))
            if t >= n:
                got[t - n] = [ctx.get(o) for o in dut.outs]
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return np.array([got[i] for i in range(len(vectors))], dtype=np.int64)


@pytest.mark.parametrize("bits", [1, 7, 16, 32])
def test_isqrt_hw_matches(bits):
    rng = np.random.default_rng(bits)
    vals = _isqrt_edges(bits)[:150] + rng.integers(0, 1 << bits, 150).tolist()
    half = (bits + 1) // 2
    got = _run_comb([(bits, False)], half, 1,
                    lambda m, ins: [isqrt_hw(m, ins[0], bits)], [[v] for v in vals],
                    out_signed=False)
    assert got[:, 0].tolist() == [math.isqrt(int(v)) for v in vals]


def _norm_vectors(rng, num, n):
    x = _rows(rng, num.x, n, num.dim)
    x[:8] = _extreme_rows(num.x, num.dim, rng)[:8]
    g = rng.integers(num.gamma.min_int, num.gamma.max_int + 1, (n, num.dim))
    b = rng.integers(num.beta.min_int, num.beta.max_int + 1, (n, num.dim))
    g[0], b[0] = num.gamma.min_int, num.beta.min_int
    return x, g, b


@pytest.mark.parametrize("d", [4, 8])
@pytest.mark.parametrize("fmts", LN_FORMATS, ids=["s8", "s16"])
def test_layernorm_and_rmsnorm_hw_bit_exact(d, fmts):
    num = LayerNormNumerics(d, *fmts)
    rng = np.random.default_rng(7 + d)
    x, g, b = _norm_vectors(rng, num, 300)
    fields = ([(num.x.bits, True)] * d + [(num.gamma.bits, True)] * d
              + [(num.beta.bits, True)] * d)
    vectors = np.concatenate([x, g, b], axis=1)

    def ln(m, ins):
        return layernorm_row_hw(m, num, ins[:d], ins[d:2 * d], ins[2 * d:])

    def rms(m, ins):
        return rmsnorm_row_hw(m, num, ins[:d], ins[d:2 * d])

    got = _run_comb(fields, num.out.bits, d, ln, vectors)
    want = np.array([layernorm_golden(x[i:i + 1], g[i], b[i], num)[0] for i in range(len(x))])
    assert np.array_equal(got, want)
    got = _run_comb(fields, num.out.bits, d, rms, vectors)
    want = np.array([rmsnorm_golden(x[i:i + 1], g[i], num)[0] for i in range(len(x))])
    assert np.array_equal(got, want)


@pytest.mark.parametrize("xf,of,method", [(F(8, 4), F(8, 4), "rom"), (F(8, 4), F(8, 4), "poly"),
                                          (F(16, 8), F(16, 8), "poly"),
                                          (F(16, 0), F(12, 2), "poly"),
                                          (F(24, 18), F(16, 8), "poly")])
def test_gelu_hw_bit_exact(xf, of, method):
    num = GeluNumerics(xf, of, method)
    if xf.bits <= 8:
        x = np.arange(xf.min_int, xf.max_int + 1, dtype=np.int64)
    else:
        rng = np.random.default_rng(xf.bits)
        x = np.r_[rng.integers(xf.min_int, xf.max_int + 1, 200),
                  rng.integers(-(4 << xf.frac), 4 << xf.frac, 200),
                  [xf.min_int, xf.max_int, 0, 1, -1, num.clip, -num.clip]]
        x = np.clip(x, xf.min_int, xf.max_int)
    got = _run_pipe([(xf.bits, True)], of.bits, lambda m, ins: [gelu_hw(m, num, ins[0])],
                    [[v] for v in x])
    assert got[:, 0].tolist() == gelu_golden(x, num).tolist()


@pytest.mark.parametrize("xf,of,scale", [(F(8, 4), F(8, 2), 1.0), (F(8, 2), F(12, 5), 1.0),
                                         (F(16, 8), F(8, 4), 1 / 3)])
def test_relu_and_rescale_hw_bit_exact(xf, of, scale):
    num = RescaleNumerics(xf, of, scale)
    rng = np.random.default_rng(1)
    x = np.r_[rng.integers(xf.min_int, xf.max_int + 1, 300), xf.min_int, xf.max_int, 0]

    def build(m, ins):
        return [relu_hw(m, num, ins[0]), rescale_pipe(m, num, ins[0], name="rs")]

    got = _run_pipe([(xf.bits, True)], of.bits, build, [[v] for v in x])
    assert got[:, 0].tolist() == relu_golden(x, num).tolist()
    assert got[:, 1].tolist() == rescale_golden(x, num).tolist()
    comb = _run_comb([(xf.bits, True)], of.bits, 1,
                     lambda m, ins: [rescale_hw(m, num, ins[0])], [[v] for v in x])
    assert comb[:, 0].tolist() == rescale_golden(x, num).tolist()

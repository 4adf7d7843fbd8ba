"""The Channel component under Amaranth's simulator against the simulator's channel
semantics (sim.engine: Source -> Chan -> Sink), for several depths and latencies."""
import numpy as np
import pytest
from amaranth.sim import Simulator

from attnflow.hdl.channel import Channel
from attnflow.sim.engine import Chan, SinkProc, SourceProc
from attnflow.sim.schedule import ReadyPattern


def engine_times(depth, latency, gaps, ready):
    ch = Chan("c", depth, latency)
    procs = [SourceProc(ch, gaps), SinkProc(ch, len(gaps), ready)]
    while not all(p.done for p in procs):
        assert sum(p.step() for p in procs) > 0
    return ch.push, ch.pop


def amaranth_times(depth, latency, tokens, gaps, ready_bits, max_cycles=2000):
    dut = Channel(16, depth, latency)
    push, pop, got = [], [], []

    async def bench(ctx):
        k, offer = 0, gaps[0]
        for t in range(max_cycles):
            valid = k < len(tokens) and t >= offer
            ctx.set(dut.i.valid, valid)
            if valid:
                ctx.set(dut.i.payload, tokens[k])
            rdy = ready_bits[t] if t < len(ready_bits) else 1
            ctx.set(dut.o.ready, rdy)
            if valid and ctx.get(dut.i.ready):
                push.append(t)
                k += 1
                if k < len(tokens):
                    offer = t + 1 + gaps[k]
            if ctx.get(dut.o.valid) and rdy:
                pop.append(t)
                got.append(ctx.get(dut.o.payload))
            if len(pop) == len(tokens):
                return
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return push, pop, got


@pytest.mark.parametrize("depth,latency", [(1, 1), (2, 1), (1, 3), (4, 3), (5, 4), (7, 2)])
@pytest.mark.parametrize("seed", [0, 1])
def test_channel_rtl_matches_engine(depth, latency, seed):
    rng = np.random.default_rng(seed)
    n = 40
    gaps = np.where(rng.random(n) < 0.3, rng.integers(1, 4, n), 0).tolist()
    ready = ReadyPattern(0.5, np.random.SeedSequence(seed))
    e_push, e_pop = engine_times(depth, latency, gaps, ready)
    bits = [int(c) for c in ready.as_string(e_pop[-1] + 1)]
    tokens = rng.integers(0, 1 << 16, n).tolist()
    a_push, a_pop, got = amaranth_times(depth, latency, tokens, gaps, bits)
    assert a_push == e_push
    assert a_pop == e_pop
    assert got == tokens


# ---------------------------------------------------------------- a template from its parameters

def _normalize_unit(n=3, d=2, *overrides):
    from attnflow.ir.lower import numerics_from_spec
    from attnflow.ir.spec import load_spec
    from attnflow.mappers.hwgraph import Instance
    from attnflow.templates.online import Normalize, normalize, ol_layout, vec_layout
    nm = numerics_from_spec(load_spec("examples/sdpa_online.yaml",
                                      [f"model.seq_len={n}", f"model.head_dim={d}", *overrides]))
    inst = Instance("norm", "normalize", normalize(n, nm=nm))
    ports = {"ol": ol_layout(nm), "o": vec_layout(nm.out, d)}
    return Normalize, inst, nm, ports


def test_a_component_is_built_and_run_from_its_parameters_alone():
    """No HwGraph: the normalize template from its instance, the numerics and its two
    port layouts, run under Amaranth's simulator, one token a cycle: each row's output is
    AttentionNumerics.normalize of its (o, l) token, its slot reserved in the firing cycle
    and its data ``stages`` cycles later (latency - 1: the channel's visibility cycle).
    Rows 3 and 4 sit at the saturation's edges (a 6-bit output format: l = 1 and o one
    output LSB past the largest / below the smallest output, and exactly at them): the
    component compares the product with constants instead of the rounded value."""
    Normalize, inst, nm, ports = _normalize_unit(5, 2, "formats.out.bits=6",
                                                  "formats.out.frac=4", "inputs.range=1.0")
    rng = np.random.default_rng(5)
    one = 1 << nm.prob_frac                           # exp(0): the row max's term
    l = np.concatenate([rng.integers(one, 3 * one, 3), [one, one]])
    o = rng.integers(-1, 2, (3, 2)) * (l[:3, None] << (nm.v.bits - 2)) // 3
    lsb = one << (nm.v.frac - nm.out.frac)            # one output LSB of o at l = 1
    hi, lo = nm.out.max_int, nm.out.min_int
    o = np.concatenate([o, [[(hi + 1) * lsb, hi * lsb], [(lo - 1) * lsb, lo * lsb]]])
    words = ports["ol"].pack({"o": o, "l": l})
    want = nm.normalize(o, l)
    dut = Normalize(inst, nm, ports)
    stages = dut.stages("o")
    assert stages == inst.contract.latency - 1 > 20         # the divider: a bit a stage
    got, when = [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for t in range(len(words) + stages + 2):
            ctx.set(dut.ol.valid, t < len(words))
            if t < len(words):
                ctx.set(dut.ol.payload, words[t])
                assert ctx.get(dut.ol.ready) and ctx.get(dut.o.valid)   # the reservation
            if ctx.get(dut.o.data_valid):
                got.append(ctx.get(dut.o.payload))
                when.append(t)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert np.array_equal(ports["o"].unpack(got)["x"], want)
    assert when == [stages + k for k in range(5)]
    assert want[3].tolist() == [hi, hi] and want[4].tolist() == [lo, lo]   # saturated, and not
    assert len({tuple(r) for r in want[:3].tolist()}) == 3  # three different rows


def test_a_component_without_a_port_layout_is_refused():
    Normalize, inst, nm, ports = _normalize_unit()
    with pytest.raises(ValueError, match=r"^norm \(normalize\): no layout for port\(s\) o$"):
        Normalize(inst, nm, {"ol": ports["ol"]})

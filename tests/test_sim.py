"""Simulator: bit-exact against the golden model, exact cycles, deadlock, statistics."""

import numpy as np
import pytest

from attnflow.api import prepare
from attnflow.build import stall_schedule
from attnflow.ir.spec import SpecError
from attnflow.mappers.catalog import latency
from attnflow.sim.engine import run_timing
from attnflow.sim.schedule import schedule_from_spec

from helpers import latency_of, online_cycles, spec, stream_fill

CONFIGS = [(n, d) for n in (8, 32, 128, 12) for d in (4, 16)]


def naive_fill(hw):
    """Cycles beyond N*N + N of the naive head without stalls: the input channel's latency
    plus every template latency on the path to the output (plus two row-long waits)."""
    return 1 + latency_of(hw, "qk") + latency("row_max") + latency("sub_exp") + \
        latency("row_sum") + latency("recip_mul") + latency("pv_accum")


@pytest.mark.parametrize("variant", ["naive", "online"])
@pytest.mark.parametrize("n,d", CONFIGS)
def test_sim_matches_golden_and_exact_cycles(variant, n, d):
    design = prepare(spec(variant, n, d))
    res = design.simulate()
    assert res.deadlock is None
    assert np.array_equal(res.outputs["o"]["x"], design.golden())
    if variant == "naive":
        # the row max and the row sum each wait for the rest of the row (N - 1 cycles)
        assert res.total_cycles == n * n + n + naive_fill(design.hw) + 2 * (n - 1)
    else:
        assert res.total_cycles == online_cycles(design.hw, n)
        # one score per cycle after fill (the last block's bubbles at most R * N more); R
        # interleaved rows leave one a cycle at the end of their block, blocks R*N apart
        rows = design.hw.instances["softmax"].param("rows")
        assert res.total_cycles <= n * n + rows * n + n + stream_fill(design.hw)
        gaps = np.diff(res.output_cycles["o"]).reshape(-1)
        block_starts = np.arange(rows, n, rows) - 1
        assert np.all(np.delete(gaps, block_starts) == 1)
        assert np.all(gaps[block_starts[:-1] if n % rows else block_starts] == rows * n - rows + 1)
    for c in res.channel_stats():
        assert c.max_occupancy <= c.depth, c


@pytest.mark.parametrize("variant", ["naive", "online"])
@pytest.mark.parametrize("n,d", [(8, 4), (12, 16), (32, 4)])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sim_with_stalls_is_bit_exact_and_slower(variant, n, d, seed):
    design = prepare(spec(variant, n, d))
    base = design.simulate()
    res = design.simulate(stall_schedule(design.spec, seed))
    assert res.schedule.stalls
    assert np.array_equal(res.outputs["o"]["x"], design.golden())
    assert res.total_cycles > base.total_cycles
    # outputs leave in order, one per cycle at most, never before the no-stall time
    cyc = np.array(res.output_cycles["o"])
    assert np.all(np.diff(cyc) >= 1)
    assert np.all(cyc >= np.array(base.output_cycles["o"]))
    for c in res.channel_stats():
        assert c.max_occupancy <= c.depth


def test_times_do_not_depend_on_scheduling_order():
    design = prepare(spec("naive", 12, 4))
    sched = stall_schedule(design.spec, 5)
    a = run_timing(design.hw, schedule_from_spec(sched, design.hw))
    order = list(reversed(design.hw.instances))
    b = run_timing(design.hw, schedule_from_spec(sched, design.hw), order)
    for name in design.hw.channels:
        assert a.chans[name].push == b.chans[name].push
        assert a.chans[name].pop == b.chans[name].pop


def test_random_schedules_are_deterministic():
    design = prepare(spec("online", 8, 4))
    a = design.simulate(stall_schedule(design.spec, 9))
    b = design.simulate(stall_schedule(design.spec, 9))
    c = design.simulate(stall_schedule(design.spec, 10))
    assert a.output_cycles == b.output_cycles
    assert a.output_cycles != c.output_cycles


def test_naive_shallow_bypass_deadlocks_and_names_the_fifo():
    n = 16
    design = prepare(spec("naive", n, 4, f"hardware.fifo_depths.s_b={n - 1}"))
    res = design.simulate()
    dl = res.deadlock
    assert dl is not None
    msg = dl.describe()
    assert "qk (clock" in msg and "waits on s_b (full)" in msg
    assert f"s_b {n - 1}/{n - 1}" in msg
    assert "rowmax" in msg and "waits on s_a (empty)" in msg
    assert dl.cycle > 0
    # the root cause: the wait cycle qk -> exp -> rowmax -> qk is closed by s_b alone
    assert dl.culprits == ["s_b"]
    assert "Wait cycle: qk -> exp -> rowmax -> qk, closed by full channel(s) s_b" in msg
    assert len(res.output_cycles["o"]) < n


def test_deadlock_culprit_is_the_second_bypass_when_only_it_is_short():
    n = 16
    dl = prepare(spec("naive", n, 4, f"hardware.fifo_depths.e_b={n - 2}")).simulate().deadlock
    assert dl is not None and dl.culprits == ["e_b"]
    assert dl.wait_cycle == ["exp", "recip", "rowsum", "exp"]


def test_naive_bypass_depth_thresholds():
    """Exactly N deep: no deadlock but slower; the mapper's N + latencies: full rate."""
    n = 16
    full = prepare(spec("naive", n, 4)).simulate()
    depth = prepare(spec("naive", n, 4)).hw.channels["s_b"].depth
    assert depth == n + latency_of(prepare(spec("naive", n, 4)).hw, "qk") + latency("row_max")
    slow = prepare(spec("naive", n, 4, f"hardware.fifo_depths.s_b={n}")).simulate()
    assert slow.deadlock is None and slow.total_cycles > full.total_cycles
    one_less = prepare(spec("naive", n, 4, f"hardware.fifo_depths.s_b={depth - 1}")).simulate()
    assert one_less.total_cycles > full.total_cycles
    more = prepare(spec("naive", n, 4, f"hardware.fifo_depths.s_b={depth + 5}")).simulate()
    assert more.total_cycles == full.total_cycles


def test_online_depths_do_not_grow_with_n():
    """The FIFOs are their producers' latency + 1: constant in N but for normalize's
    divider, one stage per quotient bit, log2(N) + 17 of them."""
    heads = {n: prepare(spec("online", n, 4)) for n in (8, 64, 512)}
    depths = {n: {c.name: c.depth for c in h.hw.channels.values()} for n, h in heads.items()}
    for n, h in heads.items():
        assert max(depths[n].values()) <= latency_of(h.hw, "norm") + 1
        assert {c: depths[n][c] - depths[8][c] for c in depths[n]} == \
            {c: {8: 0, 64: 3, 512: 6}[n] if c == "o" else 0 for c in depths[n]}


def test_online_shallower_than_mapper_loses_throughput_not_correctness():
    design = prepare(spec("online", 16, 4, "hardware.fifo_depths.s=1"))
    res = design.simulate()
    assert res.deadlock is None
    assert np.array_equal(res.outputs["o"]["x"], design.golden())
    assert res.total_cycles > prepare(spec("online", 16, 4)).simulate().total_cycles


def test_statistics_are_consistent():
    design = prepare(spec("online", 8, 4))
    res = design.simulate(stall_schedule(design.spec, 3))
    stats = {p.name: p for p in res.process_stats()}
    assert stats["qk"].fires == 8 + 64 and stats["softmax"].fires == 64
    assert stats["norm"].fires == 8 and stats["<output o>"].fires == 8
    ch = {c.name: c for c in res.channel_stats()}
    assert ch["s"].tokens == 64 and ch["ol"].tokens == 8
    # the output sink's blocked cycles are the cycles it held a valid token without ready
    assert stats["<output o>"].blocked > 0
    assert stats["<output o>"].last == res.total_cycles - 1


def test_unknown_fifo_override_is_rejected():
    with pytest.raises(SpecError, match="hardware.fifo_depths.nope: no such channel; channels: q, k, v"):
        prepare(spec("online", 8, 4, "hardware.fifo_depths.nope=3"))


def test_too_wide_datapath_is_rejected():
    with pytest.raises(SpecError, match="formats.prob_frac: the datapath needs"):
        prepare(spec("online", 1 << 20, 16, "formats.prob_frac=24",
                     "formats.v={bits: 32, frac: 4}", "formats.q={bits: 32, frac: 4}",
                     "formats.k={bits: 32, frac: 4}", "formats.out={bits: 32, frac: 8}"))


@pytest.mark.parametrize("variant", ["naive", "online"])
def test_idle_cycles_are_starved_plus_blocked_in_any_order(variant):
    """Every cycle a template does not fire (from cycle 0 to its last firing) is booked
    once, as starved (input empty) or blocked (output full), whatever the visiting order."""
    shallow = "s_a" if variant == "naive" else "s"
    design = prepare(spec(variant, 12, 4, f"hardware.fifo_depths.{shallow}=1"))
    sched = schedule_from_spec(stall_schedule(design.spec, 4), design.hw)
    for order in (None, list(reversed(design.hw.instances))):
        timing = run_timing(design.hw, sched, order)
        for p in timing.procs:
            if p.kind == "template":
                assert p.t + 1 - p.fires == p.starved + p.blocked, p.name

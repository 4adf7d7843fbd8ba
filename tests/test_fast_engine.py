"""The fast timing engine (``sim.fast``) against the reference (``sim.engine``): the same
token times, waits and process statistics, field by field, or None where the reference
deadlocks."""
import functools
from pathlib import Path

import numpy as np
import pytest

from attnflow.api import prepare
from attnflow.build import stall_schedule
from attnflow.ir.spec import ScheduleSpec, load_spec
from attnflow.mappers.contracts import ALWAYS, FIRST, LAST, Contract, Phase
from attnflow.mappers.hwgraph import Channel, Field, HwGraph, Instance, Layout
from attnflow.sim import fast
from attnflow.sim.engine import TemplateProc, run_timing
from attnflow.sim.fast import run_timing_fast
from attnflow.sim.schedule import make_schedule, schedule_from_spec

# a failed equation check inside the fast engine warns and falls back: make it a failure
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sdpa_online.yaml"
SIZES = [1, 2, 5, 8, 12, 32, 100]
SCHEDULES = ["none", "seed1", "seed2", "seed3", "harsh"]
HARSH = ScheduleSpec(seed=11, input_gap_prob=0.5, input_gap_max=6, output_ready_prob=0.04)
LAYOUT = Layout((Field("x", 8),))


@functools.lru_cache(maxsize=None)
def design(variant, n, *extra):
    return prepare(load_spec(EXAMPLE, [f"model.seq_len={n}", "model.head_dim=4",
                                       f"model.attention.variant={variant}", *extra]))


def schedule_spec(d, which):
    if which == "none":
        return d.spec.schedule
    if which == "harsh":
        return HARSH
    return stall_schedule(d.spec, int(which.removeprefix("seed")))


def plan_names(p):
    return [(nf, inner, [(tuple(c.name for c in ins), tuple(c.name for c in outs))
                         for ins, outs in pat]) for nf, inner, pat in p.plan]


def assert_same(ref, got):
    assert ref.deadlock is None
    assert got is not None, "the fast engine gave up on a design that completes"
    assert got.deadlock is None
    assert list(got.chans) == list(ref.chans)
    for name, a in ref.chans.items():
        b = got.chans[name]
        for f in ("name", "depth", "lat", "push", "pop", "full_wait", "empty_wait"):
            assert getattr(b, f) == getattr(a, f), (name, f)
        assert all(type(x) is int for x in b.push + b.pop), name
    assert [(p.name, type(p)) for p in got.procs] == [(p.name, type(p)) for p in ref.procs]
    for a, b in zip(ref.procs, got.procs):
        for f in ("name", "kind", "t", "fires", "starved", "blocked", "first", "done",
                  "waiting"):
            assert getattr(b, f) == getattr(a, f), (a.name, f)
        if isinstance(a, TemplateProc):
            assert (b.ii, b.phase, b.f) == (a.ii, a.phase, a.f), a.name
            assert plan_names(b) == plan_names(a), a.name
    assert got.output_cycles == ref.output_cycles
    assert got.total_cycles == ref.total_cycles


def check_design(d, which, **kw):
    spec = schedule_spec(d, which)
    ref = run_timing(d.hw, schedule_from_spec(spec, d.hw))
    got = run_timing_fast(d.hw, schedule_from_spec(spec, d.hw), **kw)
    return ref, got


@pytest.mark.parametrize("which", SCHEDULES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("variant", ["naive", "online"])
def test_same_as_reference(variant, n, which):
    assert_same(*check_design(design(variant, n), which))


FIFO_OVERRIDES = [
    ("online", lambda n: ("hardware.fifo_depths.s=1",)),           # a round trip per score
    ("naive", lambda n: (f"hardware.fifo_depths.s_b={n}",)),       # a wait every row
    ("naive", lambda n: (f"hardware.fifo_depths.s_b={n + 1}", f"hardware.fifo_depths.e_b={n}")),
]


@pytest.mark.parametrize("which", SCHEDULES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("case", range(len(FIFO_OVERRIDES)))
def test_same_as_reference_with_shallow_fifos(case, n, which):
    variant, extra = FIFO_OVERRIDES[case]
    assert_same(*check_design(design(variant, n, *extra(n)), which))


@pytest.mark.parametrize("which", ["none", "seed1", "harsh"])
@pytest.mark.parametrize("n", [2, 5, 8, 12, 32, 100])
def test_deadlock_gives_none(n, which):
    d = design("naive", n, f"hardware.fifo_depths.s_b={n - 1}")
    # no round limit: the deadlock is recognised, not run out of budget
    ref, got = check_design(d, which, max_rounds=10**6)
    assert ref.deadlock is not None
    assert got is None


def test_round_limit_gives_none_then_more_rounds_converge():
    d = design("naive", 32, "hardware.fifo_depths.s_b=32")   # one crossing per row
    ref, got = check_design(d, "none", max_rounds=1)
    assert ref.deadlock is None and got is None
    assert_same(*check_design(d, "none", max_rounds=10**4))


@pytest.mark.parametrize("variant", ["naive", "online"])
def test_visiting_order_only_orders_the_processes(variant):
    d = design(variant, 12, "hardware.fifo_depths.s=1" if variant == "online"
               else "hardware.fifo_depths.s_a=1")
    order = list(reversed(d.hw.instances))
    for which in ("seed2", "harsh"):
        spec = schedule_spec(d, which)
        assert_same(run_timing(d.hw, schedule_from_spec(spec, d.hw), order),
                    run_timing_fast(d.hw, schedule_from_spec(spec, d.hw), order=order))


@pytest.fixture
def small_windows(monkeypatch):
    """Solve a few firings per update and narrow to one: windows on small designs."""
    monkeypatch.setattr(fast, "_FIRST_WINDOW", 7)
    monkeypatch.setattr(fast, "_MIN_WINDOW", 1)


@pytest.mark.parametrize("which", ["none", "seed1", "harsh"])
@pytest.mark.parametrize("variant,extra", [
    ("naive", ()), ("online", ()), ("online", ("hardware.fifo_depths.s=1",)),
    ("naive", ("hardware.fifo_depths.s_b=32",)),
])
def test_same_as_reference_in_small_windows(small_windows, variant, extra, which):
    assert_same(*check_design(design(variant, 32, *extra), which))


# ---- hand-built graphs: ii > 1, multi-phase ports, first+last ports (index maps) --------

def random_graph(rng, rows_max=8, inner_max=6, procs_max=5):
    """A random DAG of templates with a load phase (rows) and/or a main phase
    (rows x inner); each channel carries rows, 2 * rows or rows * inner tokens, each end
    using the phases in a random way that gives that count."""
    R = int(rng.integers(1, rows_max + 1))
    inner = int(rng.integers(1, inner_max + 1))
    K = int(rng.integers(1, procs_max + 1))
    procs = [dict(load=bool(rng.random() < 0.5), ii=int(rng.choice([1, 1, 2, 3])),
                  ins=[], outs=[], uses=[]) for _ in range(K)]

    def ways(t, kind):
        load = procs[t]["load"]
        if kind == "all":
            return [[("main", ALWAYS)]]
        if kind == "rows":
            return [[("main", FIRST)], [("main", LAST)]] + ([[("load", ALWAYS)]] if load else [])
        out = [[("main", FIRST), ("main", LAST)]] if inner >= 2 else []
        if load:
            out += [[("load", ALWAYS), ("main", FIRST)], [("load", ALWAYS), ("main", LAST)]]
        return out

    chans = []

    def connect(src, dst):
        while True:
            kind = str(rng.choice(["all", "rows", "2rows"]))
            a = ways(src, kind) if src is not None else [None]
            b = ways(dst, kind) if dst is not None else [None]
            if a and b:
                break
        name = f"c{len(chans)}"
        ends = []
        for t, side, choices in ((src, "outs", a), (dst, "ins", b)):
            if t is None:
                ends.append(None)
                continue
            port = f"{side[0]}{len(procs[t][side])}"
            procs[t][side].append(port)
            procs[t]["uses"] += [(ph, port, w) for ph, w in choices[rng.integers(len(choices))]]
            ends.append((f"t{t}", port))
        chans.append(Channel(name, LAYOUT, int(rng.integers(1, 5)), int(rng.integers(1, 5)),
                             ends[0], ends[1]))

    for t in range(K):
        for _ in range(int(rng.integers(1, 3))):
            src = int(rng.integers(-1, t)) if t else -1
            connect(None if src < 0 else src, t)
    for t in range(K):
        if not procs[t]["outs"] or rng.random() < 0.3:
            connect(t, None)
    insts = {}
    for t, p in enumerate(procs):
        phases = []
        if p["load"]:
            phases.append(Phase("load", (("r", R),),
                                tuple((q, w) for ph, q, w in p["uses"] if ph == "load")))
        phases.append(Phase("main", (("i", R), ("j", inner)),
                            tuple((q, w) for ph, q, w in p["uses"] if ph == "main")))
        con = Contract(f"t{t}", tuple(p["ins"]), tuple(p["outs"]), tuple(phases), ii=p["ii"])
        insts[f"t{t}"] = Instance(f"t{t}", f"t{t}", con)
    hw = HwGraph("random", insts, {c.name: c for c in chans})
    hw.validate()
    return hw


def random_schedule(hw, rng):
    stalls = rng.random() < 0.6
    seed = int(rng.integers(1 << 30))
    return lambda: make_schedule({c: hw.tokens(c) for c in hw.inputs}, hw.outputs, seed,
                                 0.5 if stalls else 0.0, 4, 0.3 if stalls else 1.0)


def check_random_graphs(seed, count):
    rng = np.random.default_rng(seed)
    seen = {"same": 0, "deadlock": 0, "ii>1": 0, "index map": 0, "event firings": 0}
    for _ in range(count):
        hw = random_graph(rng)
        sched = random_schedule(hw, rng)
        ref = run_timing(hw, sched())
        got = run_timing_fast(hw, sched(), max_rounds=10**4)
        if ref.deadlock is not None:
            assert got is None
            seen["deadlock"] += 1
            continue
        assert_same(ref, got)
        seen["same"] += 1
        seen["ii>1"] += any(i.contract.ii > 1 for i in hw.instances.values())
        seen["index map"] += any(fast._port_map(i.contract, q).idx is not None
                                 for i in hw.instances.values()
                                 for q in i.contract.inputs + i.contract.outputs)
        # processes timed at their port-using firings only (fast._events)
        seen["event firings"] += any(fast._events(i.contract) is not None
                                     for i in hw.instances.values())
    return seen


def test_random_graphs_same_as_reference():
    seen = check_random_graphs(1, 300)
    # the sample covers what it is meant to
    assert seen["deadlock"] >= 5 and seen["ii>1"] >= 50 and seen["index map"] >= 20 and \
        seen["event firings"] >= 20, seen


def test_random_graphs_same_as_reference_in_small_windows(small_windows):
    check_random_graphs(2, 200)


def test_ii_above_one():
    """A producer with ii 2 and a consumer with ii 3 over a FIFO of depth 1 (latency 2):
    the round trip (3 cycles) and the consumer's rate (3 per token) bind in turn."""
    n = 40
    hw = HwGraph("ii", {
        "p": Instance("p", "p", Contract("p", ("a",), ("b",), (
            Phase("rows", (("i", 8), ("j", n // 8)), (("a", FIRST), ("b", ALWAYS))),), ii=2)),
        "q": Instance("q", "q", Contract("q", ("b",), ("c",), (
            Phase("rows", (("i", n),), (("b", ALWAYS), ("c", ALWAYS))),), ii=3)),
    }, {
        "a": Channel("a", LAYOUT, 2, 1, None, ("p", "a")),
        "b": Channel("b", LAYOUT, 1, 2, ("p", "b"), ("q", "b")),
        "c": Channel("c", LAYOUT, 2, 1, ("q", "c"), None),
    })
    hw.validate()
    for gap, ready in ((0.0, 1.0), (0.5, 0.3)):
        def sched():
            return make_schedule({"a": 8}, ["c"], 3, gap, 3, ready)
        ref = run_timing(hw, sched())
        got = run_timing_fast(hw, sched())
        assert_same(ref, got)
        p, q = got.chans["b"].push, got.chans["b"].pop
        assert min(np.diff(p)) >= 2 and min(np.diff(q)) >= 3


def test_lag_closure_is_the_least_solution():
    rng = np.random.default_rng(0)
    for _ in range(500):
        n, d, delta = int(rng.integers(0, 30)), int(rng.integers(1, 6)), int(rng.integers(1, 9))
        c = np.sort(rng.integers(-20, 60, n)).astype(np.int64)
        want = []
        for k in range(n):
            v = int(c[k])
            if k:
                v = max(v, want[k - 1])
            if k >= d:
                v = max(v, want[k - d] + delta)
            want.append(v)
        assert fast._lag_closure(c, d, delta).tolist() == want


@pytest.mark.parametrize("which", ["none", "seed1", "harsh"])
def test_stack_same_as_reference(which):
    """An encoder stack: its linears, activation and residuals fire over a fold with
    ports at a row's first and last firing only, timed at those firings (fast._events)."""
    d = stack_design()
    assert sum(fast._events(i.contract) is not None for i in d.hw.instances.values()) >= 6
    assert_same(*check_design(d, which))


@functools.lru_cache(maxsize=None)
def stack_design():
    path = Path(__file__).resolve().parent.parent / "examples" / "encoder_tiny.yaml"
    return prepare(load_spec(path, ["model.seq_len=8"]))

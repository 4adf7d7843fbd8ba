"""Timing engine: the Dataflow Abstract Machine semantics over a HwGraph.

Every template instance is a process with its own clock; channels are SPSC FIFOs with a
capacity (``depth``, in-flight tokens included) and a latency; response latency is 1
cycle (a slot freed in cycle t can be refilled in t + 1). A process fires at the earliest
cycle that is at least ``ii`` after its previous firing, at which every input it uses has
a visible token and every output it uses has a free slot (see ``mappers.contracts``).

Only times are computed here: our templates have data-independent token rates, so the
token values follow from the dataflow alone (the templates' behavioural models) and
cannot change a time.

Processes only block (never test for emptiness), so the graph is a Kahn process network:
the times do not depend on the order in which the scheduler runs the processes. When no
process can move and some have not finished, that is a deadlock: reported, never a hang.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..mappers.hwgraph import HwGraph
from .schedule import Schedule


class Times(Sequence):
    """Token cycles held as an int64 numpy array, read like the reference engine's list
    of ints: ``len``, indexing (Python ints; a slice gives a list), iteration, ``==``
    with a list or another Times, ``+`` a list; ``np.asarray`` takes the array without a
    copy. The fast engine's push/pop times: a list of Python ints costs ~36 bytes a
    token, and a stack at N = 1024 moves hundreds of millions of tokens."""
    __slots__ = ("array",)

    def __init__(self, values):
        self.array = np.asarray(values, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return self.array[k].tolist()
        return int(self.array[k])

    def __iter__(self):
        return iter(self.array.tolist())

    def __array__(self, dtype=None, copy=None):
        return self.array if dtype is None else self.array.astype(dtype)

    def __eq__(self, other) -> bool:
        if isinstance(other, (Times, list, tuple)):
            other = np.asarray(other, dtype=np.int64)
            return self.array.shape == other.shape and bool(np.array_equal(self.array, other))
        return NotImplemented

    def __add__(self, other) -> list:
        return self.array.tolist() + list(other)

    def __radd__(self, other) -> list:
        return list(other) + self.array.tolist()

    def __repr__(self) -> str:
        return f"Times({self.array.tolist()!r})"

    __hash__ = None


class Chan:
    __slots__ = ("name", "depth", "lat", "push", "pop", "empty_wait", "full_wait")

    def __init__(self, name, depth, lat):
        self.name, self.depth, self.lat = name, depth, lat
        self.push: list[int] = []   # cycle each token was enqueued
        self.pop: list[int] = []    # cycle each token was dequeued
        self.empty_wait = 0         # consumer cycles lost waiting for this channel's data
        self.full_wait = 0          # producer cycles lost waiting for a slot

    @property
    def occupancy(self) -> int:
        return len(self.push) - len(self.pop)


class Proc:
    kind = "process"

    def __init__(self, name):
        self.name = name
        self.t = -1            # cycle of the last firing
        self.fires = 0
        self.starved = 0       # cycles lost waiting for input data
        self.blocked = 0       # cycles lost waiting for output slots
        self.first = None      # cycle of the first firing
        self.waiting: tuple[Chan, str] | None = None
        self.done = False


class TemplateProc(Proc):
    kind = "template"

    def __init__(self, inst, chans: dict[str, Chan]):
        super().__init__(inst.name)
        c = inst.contract
        self.ins = [chans[p] for p in c.inputs]
        self.outs = [chans[p] for p in c.outputs]
        self.ii = c.ii
        self.t = -c.ii
        self.plan = []
        ins = [chans[p] for p in c.inputs]
        outs = [chans[p] for p in c.outputs]
        for ph in c.run_phases:
            # per firing of the period: the used inputs and outputs; a period repeats a
            # few combinations, each made once
            cols = [ph.pattern(p).tolist() for p in c.inputs + c.outputs]
            made: dict[tuple, tuple] = {}
            pattern = []
            for key in (zip(*cols) if cols else [()] * ph.period):
                got = made.get(key)
                if got is None:
                    got = made[key] = (
                        tuple(ch for ch, u in zip(ins, key) if u),
                        tuple(ch for ch, u in zip(outs, key[len(ins):]) if u))
                pattern.append(got)
            self.plan.append((ph.fires, ph.period, pattern))
        self.phase = 0
        self.f = 0

    def step(self) -> int:
        fired = 0
        ii = self.ii
        plan = self.plan
        while self.phase < len(plan):
            nf, inner, pat = plan[self.phase]
            f, t_last = self.f, self.t
            while f < nf:
                ins, outs = pat[f % inner]
                t = t0 = t_last + ii
                late = None
                for c in ins:
                    k = len(c.pop)
                    if k >= len(c.push):
                        self.f, self.t, self.waiting = f, t_last, (c, "empty")
                        self.fires += fired
                        return fired
                    v = c.push[k] + c.lat
                    if v > t:
                        t, late = v, c
                starve_ch, t1 = late, t
                late = None
                for c in outs:
                    k = len(c.push) - c.depth
                    if k >= 0:
                        if k >= len(c.pop):
                            self.f, self.t, self.waiting = f, t_last, (c, "full")
                            self.fires += fired
                            return fired
                        v = c.pop[k] + 1
                        if v > t:
                            t, late = v, c
                # waits are booked only for a firing that happens (a blocked attempt
                # is retried later and would otherwise count its input wait twice)
                if starve_ch is not None:
                    starve_ch.empty_wait += t1 - t0
                    self.starved += t1 - t0
                if late is not None:
                    late.full_wait += t - t1
                    self.blocked += t - t1
                for c in ins:
                    c.pop.append(t)
                for c in outs:
                    c.push.append(t)
                if self.first is None:
                    self.first = t
                t_last = t
                f += 1
                fired += 1
            self.phase += 1
            self.f, self.t = 0, t_last
        self.fires += fired
        self.done = True
        self.waiting = None
        return fired


class SourceProc(Proc):
    """The testbench driving an input stream: token k offered ``gap_k`` cycles after the
    previous transfer (``gap_0`` cycles after reset), held until it moves."""
    kind = "source"

    def __init__(self, chan: Chan, gaps: list[int]):
        super().__init__(f"<input {chan.name}>")
        self.chan, self.gaps = chan, gaps
        self.outs = [chan]

    def step(self) -> int:
        c, gaps = self.chan, self.gaps
        n = len(gaps)
        fired = 0
        t_last = self.t
        while len(c.push) < n:
            k = len(c.push)
            t = t_last + 1 + gaps[k]
            j = k - c.depth
            if j >= 0:
                if j >= len(c.pop):
                    self.t, self.waiting = t_last, (c, "full")
                    self.fires += fired
                    return fired
                v = c.pop[j] + 1
                if v > t:
                    c.full_wait += v - t
                    self.blocked += v - t
                    t = v
            c.push.append(t)
            if self.first is None:
                self.first = t
            t_last = t
            fired += 1
        self.t = t_last
        self.fires += fired
        self.done = True
        self.waiting = None
        return fired


class SinkProc(Proc):
    """The testbench accepting an output stream with a ready pattern."""
    kind = "sink"

    def __init__(self, chan: Chan, ntok: int, ready):
        super().__init__(f"<output {chan.name}>")
        self.chan, self.ntok, self.ready = chan, ntok, ready
        self.ins = [chan]

    def step(self) -> int:
        c = self.chan
        fired = 0
        t_last = self.t
        first_ready = self.ready.first_ready
        while len(c.pop) < self.ntok:
            k = len(c.pop)
            if k >= len(c.push):
                self.t, self.waiting = t_last, (c, "empty")
                self.fires += fired
                return fired
            t = c.push[k] + c.lat
            if t <= t_last:
                t = t_last + 1
            t2 = first_ready(t)
            self.blocked += t2 - t
            c.pop.append(t2)
            if self.first is None:
                self.first = t2
            t_last = t2
            fired += 1
        self.t = t_last
        self.fires += fired
        self.done = True
        self.waiting = None
        return fired


@dataclass
class Deadlock:
    cycle: int                      # no token moves after this cycle
    blocked: list[tuple[str, int, str, str]]   # (process, local clock, channel, "full"/"empty")
    channels: list[tuple[str, int, int]]        # (channel, occupancy, depth) at the deadlock
    #: a cycle of processes each waiting for the next (through a full channel: for its
    #: consumer; through an empty one: for its producer), and the full channels on it
    wait_cycle: list[str] = field(default_factory=list)
    culprits: list[str] = field(default_factory=list)

    def describe(self) -> str:
        procs = "; ".join(f"{p} (clock {t}) waits on {c} ({why})"
                          for p, t, c, why in self.blocked)
        full = [f"{c} {o}/{d}" for c, o, d in self.channels if o >= d]
        empty = [c for c, o, d in self.channels if o == 0]
        text = (f"deadlock at cycle {self.cycle}: {procs}. Full channels: "
                f"{', '.join(full) or 'none'}. Empty channels: {', '.join(empty) or 'none'}")
        if self.culprits:
            text += (f". Wait cycle: {' -> '.join(self.wait_cycle)}, closed by full "
                     f"channel(s) {', '.join(self.culprits)}: make them deeper "
                     f"(hardware.fifo_depths)")
        return text


def wait_cycle(blocked: dict[str, tuple[str, str]], ends: dict[str, tuple[str, str]]):
    """blocked: process -> (channel, "full"/"empty"); ends: channel -> (producer, consumer).
    Returns (processes on a wait-for cycle, full channels on it), or ([], [])."""
    nxt = {}
    for p, (c, why) in blocked.items():
        prod, cons = ends[c]
        nxt[p] = (cons if why == "full" else prod, c if why == "full" else None)
    for start in nxt:
        path, seen = [start], {start: 0}
        while True:
            q = nxt.get(path[-1], (None, None))[0]
            if q is None or q not in nxt:
                break
            if q in seen:
                loop = path[seen[q]:]
                full = [nxt[p][1] for p in loop if nxt[p][1] is not None]
                return loop + [q], full
            seen[q] = len(path)
            path.append(q)
    return [], []


@dataclass
class Timing:
    chans: dict[str, Chan]
    procs: list[Proc]
    deadlock: Deadlock | None = None
    output_cycles: dict[str, list[int]] = field(default_factory=dict)

    @property
    def total_cycles(self) -> int:
        """Cycles from reset to the last output transfer, inclusive."""
        last = [cyc[-1] for cyc in self.output_cycles.values() if cyc]
        return max(last) + 1 if last else 0


def occupancy_series(push, pop, end: int | None = None) -> np.ndarray:
    """Tokens held (in flight or stored) in cycles 0 .. end-1 (default: until the last
    change): a token counts from the cycle after its enqueue up to and including the
    cycle of its dequeue. The one definition of occupancy (stats, plots, waveforms)."""
    push = np.asarray(push, dtype=np.int64) + 1
    pop = np.asarray(pop, dtype=np.int64) + 1
    if end is None:
        end = int(max(push.max(initial=0), pop.max(initial=0))) + 1
    n = max(end, 1)
    return np.cumsum(np.bincount(push[push < n], minlength=n) -
                     np.bincount(pop[pop < n], minlength=n))


def occupancy_events(push, pop) -> tuple[np.ndarray, np.ndarray]:
    """The value changes of :func:`occupancy_series` from the events alone (work and memory
    in the number of tokens, not cycles): (cycles where the occupancy changes, its value
    from that cycle on), 0 before the first. The one series, sampled where it moves."""
    push = np.asarray(push, dtype=np.int64) + 1
    pop = np.asarray(pop, dtype=np.int64) + 1
    if push.size == 0 and pop.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    times, inv = np.unique(np.concatenate([push, pop]), return_inverse=True)
    delta = np.bincount(inv, weights=np.r_[np.ones(push.size), -np.ones(pop.size)],
                        minlength=times.size).astype(np.int64)
    keep = delta != 0
    return times[keep], np.cumsum(delta[keep])


def occupancy_bins(push, pop, end: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """(minimum, maximum) of :func:`occupancy_series` over cycles ``0 .. end-1`` in bins of
    ``step`` cycles (the last bin may be shorter), from the events (no per-cycle array)."""
    times, values = occupancy_events(push, pop)
    keep = times < end
    times, values = times[keep], values[keep]
    starts = np.arange(0, end, step, dtype=np.int64)
    # the value in force at each bin start (0 before the first change)
    k = np.searchsorted(times, starts, side="right") - 1
    at_start = np.where(k >= 0, values[np.maximum(k, 0)] if values.size else 0, 0)
    lo, hi = at_start.copy(), at_start.copy()
    if times.size:
        b = times // step
        np.minimum.at(lo, b, values)
        np.maximum.at(hi, b, values)
    return lo, hi


def max_occupancy(push: list[int], pop: list[int]) -> int:
    """Peak of :func:`occupancy_series` (from the events: no per-cycle array)."""
    if not len(push):
        return 0
    push = np.asarray(push, dtype=np.int64)
    pop = np.asarray(pop, dtype=np.int64)
    if np.all(push[1:] >= push[:-1]) and np.all(pop[1:] >= pop[:-1]):
        # in order (a FIFO's): the series rises only at a push, where it is the tokens
        # pushed up to that cycle less those popped up to it (no sort)
        held = np.searchsorted(push, push, "right") - np.searchsorted(pop, push, "right")
        return max(0, int(held.max()))
    return max(0, int(occupancy_events(push, pop)[1].max(initial=0)))


def run_timing(hw: HwGraph, schedule: Schedule, order: list[str] | None = None) -> Timing:
    """Compute the cycle of every token on every channel. ``order`` (instance names) only
    changes the scheduler's visiting order, never a result; tests use it to show that."""
    chans = {c.name: Chan(c.name, c.depth, c.latency) for c in hw.channels.values()}
    procs: list[Proc] = []
    for name in hw.inputs:
        procs.append(SourceProc(chans[name], schedule.gaps[name]))
    for name in (order or list(hw.instances)):
        inst = hw.instances[name]
        ports = {p: chans[c.name] for p, c in hw.port_channels(name).items()}
        procs.append(TemplateProc(inst, ports))
    for name in hw.outputs:
        procs.append(SinkProc(chans[name], hw.tokens(name), schedule.ready[name]))
    active = list(procs)
    deadlock = None
    while active:
        moved = 0
        for p in active:
            moved += p.step()
        active = [p for p in active if not p.done]
        if active and not moved:
            last = max((max(c.push[-1] if c.push else -1, c.pop[-1] if c.pop else -1)
                        for c in chans.values()), default=-1)
            ends = {}
            for p in procs:
                for c in getattr(p, "outs", ()):
                    ends.setdefault(c.name, [None, None])[0] = p.name
                for c in getattr(p, "ins", ()):
                    ends.setdefault(c.name, [None, None])[1] = p.name
            loop, culprits = wait_cycle(
                {p.name: (p.waiting[0].name, p.waiting[1]) for p in active}, ends)
            deadlock = Deadlock(
                cycle=last + 1,
                blocked=[(p.name, p.t, p.waiting[0].name, p.waiting[1]) for p in active],
                channels=[(c.name, c.occupancy, c.depth) for c in chans.values()],
                wait_cycle=loop, culprits=culprits)
            break
    timing = Timing(chans, procs, deadlock)
    timing.output_cycles = {name: list(chans[name].pop) for name in hw.outputs}
    return timing

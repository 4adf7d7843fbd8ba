"""Run a HwGraph: token values (behavioural models) and token times (timing engine)."""
from __future__ import annotations

from dataclasses import dataclass

from ..mappers.hwgraph import HwGraph
from .engine import Deadlock, Timing, max_occupancy, run_timing
from .fast import run_timing_fast
from ..mappers.catalog import facet
from .schedule import Schedule


@dataclass
class ChannelStats:
    name: str
    depth: int
    latency: int
    tokens: int
    max_occupancy: int
    full_stall: int    # producer cycles lost to this channel being full
    empty_stall: int   # consumer cycles lost to this channel being empty


@dataclass
class ProcessStats:
    name: str
    template: str
    fires: int
    first: int | None
    last: int
    starved: int
    blocked: int


@dataclass
class SimResult:
    hw: HwGraph
    values: dict           # channel -> {field: array}
    timing: Timing
    schedule: Schedule

    @property
    def deadlock(self) -> Deadlock | None:
        return self.timing.deadlock

    @property
    def outputs(self) -> dict:
        return {c: self.values[c] for c in self.hw.outputs}

    @property
    def output_cycles(self) -> dict[str, list[int]]:
        return self.timing.output_cycles

    @property
    def total_cycles(self) -> int:
        return self.timing.total_cycles

    def channel_stats(self) -> list[ChannelStats]:
        out = []
        for c in self.hw.channels.values():
            ch = self.timing.chans[c.name]
            out.append(ChannelStats(c.name, c.depth, c.latency, len(ch.push),
                                    max_occupancy(ch.push, ch.pop), ch.full_wait, ch.empty_wait))
        return out

    def process_stats(self) -> list[ProcessStats]:
        out = []
        for p in self.timing.procs:
            tmpl = self.hw.instances[p.name].template if p.name in self.hw.instances else p.kind
            out.append(ProcessStats(p.name, tmpl, p.fires, p.first, p.t, p.starved, p.blocked))
        return out


def topo_instances(hw: HwGraph) -> list[str]:
    order, done = [], set(hw.inputs)
    pending = list(hw.instances)
    while pending:
        for name in pending:
            ins = [c for p, c in hw.port_channels(name).items()
                   if p in hw.instances[name].contract.inputs]
            if all(c.name in done for c in ins):
                order.append(name)
                done.update(c.name for p, c in hw.port_channels(name).items()
                            if p in hw.instances[name].contract.outputs)
                pending.remove(name)
                break
        else:
            raise ValueError(f"HwGraph has a cycle through {pending}")
    return order


def compute_values(hw: HwGraph, inputs: dict) -> dict:
    """Values on every channel, from the graph inputs (channel -> {field: array})."""
    values = {name: inputs[name] for name in hw.inputs}
    for name in topo_instances(hw):
        inst = hw.instances[name]
        ports = hw.port_channels(name)
        ins = {p: values[ports[p].name] for p in inst.contract.inputs}
        outs = facet(inst.template, "model")(inst, hw.numerics, ins)
        for p in inst.contract.outputs:
            values[ports[p].name] = outs[p]
    return values


ENGINES = ("auto", "reference", "fast")


def simulate(hw: HwGraph, inputs: dict, schedule: Schedule, order=None,
             engine: str = "auto") -> SimResult:
    """``inputs``: input channel -> {field: array}. Values and times of every token.

    ``engine``: ``reference`` steps every firing (``sim.engine``); ``fast`` solves whole
    firing-time arrays (``sim.fast``) and gives the identical result, or None when the
    design deadlocks or does not settle within its budget; ``auto`` uses fast and falls
    back to the reference, which then also reports any deadlock."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    values = compute_values(hw, inputs)
    timing = None
    if engine != "reference":
        timing = run_timing_fast(hw, schedule, order=order)
        if timing is None and engine == "fast":
            raise RuntimeError("fast engine gave no result (deadlock or budget); "
                               "use engine='auto' or 'reference'")
    if timing is None:
        timing = run_timing(hw, schedule, order)
    return SimResult(hw, values, timing, schedule)

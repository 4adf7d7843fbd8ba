"""Run a HwGraph: token values (behavioural models) and token times (timing engine)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


def channel_index(hw: HwGraph) -> dict[str, dict]:
    """instance -> {port: channel}, for every instance at once (``HwGraph.port_channels``
    walks every channel per call)."""
    index = {name: {} for name in hw.instances}
    for c in hw.channels.values():
        for end in (c.src, c.dst):
            if end and end[0] in index:
                index[end[0]][end[1]] = c
    return index


def topo_instances(hw: HwGraph, index: dict | None = None) -> list[str]:
    """The instances in an order where every input channel's producer comes first (the
    graph inputs are ready); instances in insertion order among the ready ones."""
    index = channel_index(hw) if index is None else index
    order, done = [], set(hw.inputs)
    pending = list(hw.instances)
    while pending:
        name = next((n for n in pending
                     if all(index[n][p].name in done for p in hw.instances[n].contract.inputs)),
                    None)
        if name is None:
            raise ValueError(f"HwGraph has a cycle through {pending}")
        order.append(name)
        done.update(index[name][p].name for p in hw.instances[name].contract.outputs)
        pending.remove(name)
    return order


def compute_values(hw: HwGraph, inputs: dict, keep_all: bool = True) -> dict:
    """Values on every channel, from the graph inputs (channel -> {field: array}). With
    ``keep_all`` False only the graph's input and output channels are kept: an internal
    channel's values are dropped once its consumer has run (every channel has one), so a
    deep design holds a few templates' streams at a time."""
    values = {name: inputs[name] for name in hw.inputs}
    io = set(hw.inputs) | set(hw.outputs)
    index = channel_index(hw)
    for name in topo_instances(hw, index):
        inst = hw.instances[name]
        ports = index[name]
        ins = {p: values[ports[p].name] for p in inst.contract.inputs}
        outs = facet(inst.template, "model")(inst, hw.numerics, ins)
        for p in inst.contract.outputs:
            values[ports[p].name] = outs[p]
        if not keep_all:
            del ins, outs
            for p in inst.contract.inputs:
                if ports[p].name not in io:
                    del values[ports[p].name]
    return values


ENGINES = ("auto", "reference", "fast")


def sequence_values(hw: HwGraph, inputs, keep_all: bool = True) -> dict:
    """:func:`compute_values` of a graph running ``hw.sequences`` sequences back to back:
    ``inputs`` one dict per sequence (or one dict when it runs one), each sequence's values
    computed alone and each channel's tokens concatenated in sequence order."""
    seqs = [inputs] if isinstance(inputs, dict) else list(inputs)
    if len(seqs) != hw.sequences:
        raise ValueError(f"{hw.name} runs {hw.sequences} sequence(s); got inputs for "
                         f"{len(seqs)}")
    if len(seqs) == 1:
        return compute_values(hw, seqs[0], keep_all)
    one = hw.with_sequences(1)
    runs = [compute_values(one, x, keep_all) for x in seqs]
    return {c: {f: np.concatenate([r[c][f] for r in runs]) for f in runs[0][c]}
            for c in runs[0]}


def simulate(hw: HwGraph, inputs, schedule: Schedule, order=None,
             engine: str = "auto", keep_values: bool = True) -> SimResult:
    """``inputs``: input channel -> {field: array}, or a list of those, one per sequence
    of a graph running several back to back (``HwGraph.with_sequences``). Values and times
    of every token (``keep_values`` False: the values of the input and output channels only).

    ``engine``: ``reference`` steps every firing (``sim.engine``); ``fast`` solves whole
    firing-time arrays (``sim.fast``) and gives the identical result, or None when the
    design deadlocks or does not settle within its budget; ``auto`` uses fast and falls
    back to the reference, which then also reports any deadlock."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    values = sequence_values(hw, inputs, keep_values)
    timing = None
    if engine != "reference":
        timing = run_timing_fast(hw, schedule, order=order)
        if timing is None and engine == "fast":
            raise RuntimeError("fast engine gave no result (deadlock or budget); "
                               "use engine='auto' or 'reference'")
    if timing is None:
        timing = run_timing(hw, schedule, order)
    return SimResult(hw, values, timing, schedule)

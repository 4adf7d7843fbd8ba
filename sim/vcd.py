"""A VCD waveform of a simulation: every channel's occupancy and push/pop strobes, every
process's fire strobe, for GTKWave or any other VCD viewer.

Time: one VCD time unit is one clock cycle (``$timescale 1 ns``, whatever the target
clock), so the time axis reads directly as the cycle numbers of ``sim.json``, the report
and the testbench's cycle counts. The target clock is named in the header comment.

Signals, in scope ``<design>.channels`` (in the HwGraph's channel order) and
``<design>.processes`` (in the simulator's process order); names carry the channel or
process, since viewers usually show only the last name component:

* ``<ch>_occupancy`` (32-bit integer, as Verilog's): tokens held by the channel, in flight or stored, at each
  cycle: a token counts from the cycle after its enqueue up to and including the cycle
  of its dequeue (the count whose peak is ``sim.engine.max_occupancy``);
* ``<ch>_push`` / ``<ch>_pop`` (1 bit): high in a cycle when a token is enqueued /
  dequeued. A channel moves at most one token each way per cycle, so the number of
  cycles ``push`` is high is the channel's token count (high over k cycles: k tokens);
* ``<process>_fire`` (1 bit): high in a cycle when the process fires (a source: a token
  it offers moves; a sink: it accepts one). Sources and sinks are named ``input_<ch>`` /
  ``output_<ch>`` (from ``<input ch>`` / ``<output ch>``).

The file is written from the sorted push/pop lists (event driven: the work is in the
number of value changes, not cycles x signals) and is deterministic: no date, signals in
a fixed order, so the same result gives the same bytes.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from vcd import VCDWriter

from .engine import occupancy_events

__all__ = ["write_vcd", "fire_cycles", "occupancy_changes", "strobe_changes"]


def strobe_changes(cycles) -> tuple[np.ndarray, np.ndarray]:
    """Value changes (times, values) of a 1-bit signal that is high exactly in the given
    cycles (sorted, distinct) and low elsewhere, starting low at cycle 0."""
    t = np.asarray(cycles, dtype=np.int64)
    if t.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    gap = np.diff(t) != 1
    rise = t[np.r_[True, gap]]              # first cycle of each run of high cycles
    fall = t[np.r_[gap, True]] + 1          # the cycle after each run
    times = np.empty(rise.size * 2, np.int64)
    times[0::2], times[1::2] = rise, fall
    values = np.tile(np.array([1, 0], np.int64), rise.size)
    return times, values


def occupancy_changes(push, pop) -> tuple[np.ndarray, np.ndarray]:
    """Value changes (times, values) of a channel's occupancy, 0 before the first change:
    a token counts from the cycle after its push up to and including its pop cycle."""
    if len(push) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return occupancy_events(push, pop)


def _template_fires(inst, chans: dict, ports: dict, nfires: int) -> np.ndarray:
    """A template's firing cycles, rebuilt from the push/pop cycles of its ports (a
    firing that uses no port comes ``ii`` after the previous one: nothing else waits it)."""
    con = inst.contract
    ii = con.ii
    nf = min(nfires, con.fires)
    times = np.zeros(con.fires, np.int64)
    known = np.zeros(con.fires, bool)
    for q in con.inputs + con.outputs:
        idx = con.port_firings(q)
        ch = chans[ports[q].name]
        arr = ch.pop if q in con.inputs else ch.push
        k = min(len(arr), idx.size)
        times[idx[:k]] = arr[:k]
        known[idx[:k]] = True
    times, known = times[:nf], known[:nf]
    f = np.arange(nf, dtype=np.int64)
    last = np.maximum.accumulate(np.where(known, f, -1)) if nf else f
    base = np.where(last >= 0, times[np.maximum(last, 0)], -ii)
    return base + ii * (f - last)


def fire_cycles(result) -> dict[str, np.ndarray]:
    """Process name -> the sorted cycles in which it fired (sources: the cycle each input
    token moved; sinks: the cycle each output token was accepted)."""
    hw, chans = result.hw, result.timing.chans
    out = {}
    for p in result.timing.procs:
        if p.kind == "source":
            out[p.name] = np.asarray(chans[p.chan.name].push, np.int64)
        elif p.kind == "sink":
            out[p.name] = np.asarray(chans[p.chan.name].pop, np.int64)
        else:
            out[p.name] = _template_fires(hw.instances[p.name], chans,
                                          hw.port_channels(p.name), p.fires)
    return out


def _ident(name: str) -> str:
    """A VCD-safe signal/scope name: ``<input q>`` -> ``input_q``."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "_"


def write_vcd(result, path, max_cycles: int | None = None,
              clock_mhz: float | None = None) -> Path:
    """Write ``result``'s channel and process activity to ``path`` as a VCD file (see the
    module doc for the signals and the time unit). ``max_cycles`` keeps only cycles
    ``0 .. max_cycles - 1`` (for huge runs); ``clock_mhz`` is only named in the header.
    Returns the path."""
    path = Path(path)
    hw, timing = result.hw, result.timing
    top = _ident(hw.name)

    sigs = []                                  # (scope, name, type, size, times, values)
    for c in hw.channels.values():
        ch = timing.chans[c.name]
        t_occ, v_occ = occupancy_changes(ch.push, ch.pop)
        scope, cn = (top, "channels"), _ident(c.name)
        # 32 bits: viewers read VCD integers as signed (GTKWave shows a 2-bit 2 as -2)
        sigs.append((scope, f"{cn}_occupancy", "integer", 32, t_occ, v_occ))
        sigs.append((scope, f"{cn}_push", "wire", 1, *strobe_changes(ch.push)))
        sigs.append((scope, f"{cn}_pop", "wire", 1, *strobe_changes(ch.pop)))
    seen = set()
    for name, cyc in fire_cycles(result).items():
        ident = _ident(name)
        while ident in seen:
            ident += "_"
        seen.add(ident)
        sigs.append(((top, "processes"), f"{ident}_fire", "wire", 1, *strobe_changes(cyc)))

    times = np.concatenate([s[4] for s in sigs])
    values = np.concatenate([s[5] for s in sigs])
    var_ix = np.concatenate([np.full(s[4].size, i, np.int64) for i, s in enumerate(sigs)])
    end = int(times.max()) + 1 if times.size else 1
    end = max(end, result.total_cycles, result.deadlock.cycle + 1 if result.deadlock else 0)
    if max_cycles is not None:
        end = min(end, max(int(max_cycles), 1))
        keep = times < end
        times, values, var_ix = times[keep], values[keep], var_ix[keep]
    order = np.lexsort((var_ix, times))       # by cycle, then in signal order
    times, values, var_ix = times[order].tolist(), values[order].tolist(), var_ix[order].tolist()

    clock = f"target clock {clock_mhz:g} MHz; " if clock_mhz else ""
    comment = (f"attnflow simulation of {hw.name}: 1 time unit = 1 clock cycle ({clock}"
               f"timescale nominal); occupancy counts a token from the cycle after its "
               f"push to its pop cycle")
    if result.deadlock:
        comment += f"; DEADLOCK: no token moves after cycle {result.deadlock.cycle}"
    if max_cycles is not None:
        comment += f"; window: cycles 0..{end - 1}"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="ascii", newline="\n") as f:
        w = VCDWriter(f, timescale="1 ns", date="", comment=comment,
                      version="attnflow sim.vcd", check_values=False)
        handles = [w.register_var(s[0], s[1], s[2], size=s[3], init=0) for s in sigs]
        change = w.change
        for t, i, v in zip(times, var_ix, values):
            change(handles[i], t, v)
        w.close(end)
    return path

"""Back-to-back sequences (``hardware.sequences``): a design processing a stream of
sequences, each template starting sequence s + 1 on the cycle after its last firing of
sequence s (``Contract.sequences``; the HDL sequencer wraps to its first phase).

Nothing else changes between sequences, so every template overlaps the next sequence's
loads with the tail of the current one on its own; what can still couple two sequences
is a residual skip (a fork's row kept for the ``residual_add`` after the block): sized
for one sequence (N rows, or the residual rule capped at N), it blocks the fork from
pushing sequence s + 1's rows while the block still works on sequence s, and through the
fork the whole layer; so does a K or V channel a store reads only in its load phase.
:func:`with_sequences` deepens exactly those channels (:func:`coupling_channels`) to
:func:`unblocking_depth` in a probe run (up to :data:`SIZING_SEQUENCES` sequences, each
channel holding at most one sequence more than alone, fast timing engine, no stalls):
at that depth a channel never blocks where it did not block in the probe, so the design
runs the probe's schedule. The steady-state interval between sequences (II) is then its
slowest template's firings per sequence (x ii) wherever the probe reaches it;
``interval_model`` states the model and the simulator checks it (``attnflow sim``
prints both).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .contracts import LOAD
from .hwgraph import HwGraph

#: sequences simulated to size the channels (at most; a deep stack's layers reach their
#: steady state one after the other: 3 left the 2-layer decoder's second skip 1 short)
SIZING_SEQUENCES = 8
#: ... and at most this many kept firings (``sim.fast.kept_firings``) in that run, so the
#: probe of a real-sized model stays a few GB (BERT-base N 128: 2 sequences)
SIZING_FIRINGS = 50_000_000


def coupling_channels(hw: HwGraph) -> list[str]:
    """The channels that couple two sequences: from a ``fork`` into a ``residual_add``
    (the residual skips), and those a template reads only in its ``load`` phase (a
    whole-sequence K or V store: the next sequence's rows wait in the channel while the
    store still serves this one, the channel is the second buffer)."""
    out = []
    for c in hw.channels.values():
        if not (c.src and c.dst):
            continue
        dst = hw.instances[c.dst[0]]
        phases = {ph.name for ph in dst.contract.phases
                  if any(p == c.dst[1] for p, _ in ph.ports)}
        if (hw.instances[c.src[0]].template == "fork" and dst.template == "residual_add") \
                or phases == {LOAD}:
            out.append(c.name)
    return out


def unblocking_depth(push, pop) -> int:
    """Least depth at which a channel with these enqueue / dequeue cycles never blocks its
    producer: token k enqueued in cycle t needs token k - depth dequeued by t - 1 (a slot
    freed in cycle t - 1 is writable in t), so depth > k - (tokens dequeued by t - 1)."""
    push = np.asarray(push, dtype=np.int64)
    pop = np.asarray(pop, dtype=np.int64)
    if not push.size:
        return 1
    freed = np.searchsorted(pop, push - 1, "right")
    return max(1, int((np.arange(push.size) - freed).max()) + 1)


def _deepened(hw: HwGraph, depths: dict[str, int], notes: dict[str, str]) -> HwGraph:
    return hw.derived(channels={n: (dataclasses.replace(c, depth=depths[n]) if n in depths
                                    else c) for n, c in hw.channels.items()},
                      depth_notes={**hw.depth_notes, **notes})


def with_sequences(hw: HwGraph, sequences: int, stream: bool = False) -> HwGraph:
    """``hw`` running ``sequences`` sequences back to back, its coupling channels
    deepened to their unblocking depth in the probe (see the module docstring; never
    shallower than the one-sequence depth).
    ``stream``: the RTL never stops (``Contract.stream``); sized for the steady state
    (a probe of :data:`SIZING_SEQUENCES` whatever ``sequences``)."""
    from ..sim.fast import kept_firings, run_timing_fast
    from ..sim.run import run_timing
    from ..sim.schedule import make_schedule
    if sequences == 1 and not stream:
        return hw.with_sequences(1)
    coupled = coupling_channels(hw)
    if not coupled:
        return hw.with_sequences(sequences, stream)
    # fewer sequences for a design whose firings would make the probe large (2 at least)
    per = sum(kept_firings(i.contract) for i in hw.instances.values())
    k = max(2, min(SIZING_SEQUENCES, SIZING_FIRINGS // max(per, 1)))
    k = k if stream else min(sequences, k)
    probe = hw.with_sequences(k)
    # at most one more sequence than one sequence's depth: a second buffer, no more
    caps = {n: hw.channels[n].depth + hw.tokens_per_sequence(n) for n in coupled}
    open_ = _deepened(probe, caps, {})
    sched = make_schedule({c: open_.tokens(c) for c in open_.inputs}, open_.outputs)
    timing = run_timing_fast(open_, sched) or run_timing(open_, sched)
    depths, notes = {}, {}
    for n in coupled:
        ch = timing.chans[n]
        need = unblocking_depth(ch.push, ch.pop)
        one = hw.channels[n].depth
        if need > one:
            depths[n] = need
            notes[n] = (f"back-to-back sequences: {need}, the depth at which it never blocks "
                        f"in a {k}-sequence probe (one sequence: {one}, "
                        f"{hw.depth_notes.get(n, '')})")
    return _deepened(hw, depths, notes).with_sequences(sequences, stream)


def interval_model(hw: HwGraph) -> tuple[int, str]:
    """(cycles between two sequences' last outputs in steady state, the template that
    sets it): the slowest template's firings per sequence times its ii."""
    name, inst = max(hw.instances.items(),
                     key=lambda kv: kv[1].contract.fires_per_sequence * kv[1].contract.ii)
    return inst.contract.fires_per_sequence * inst.contract.ii, name


def sequence_ends(hw: HwGraph, output_cycles: dict) -> np.ndarray:
    """The cycle of each sequence's last output token (the latest over the outputs)."""
    ends = None
    for name in hw.outputs:
        per = hw.tokens_per_sequence(name)
        cyc = np.asarray(output_cycles[name], dtype=np.int64)[per - 1::per]
        ends = cyc if ends is None else np.maximum(ends, cyc)
    return ends


def sequence_starts(hw: HwGraph, timing) -> np.ndarray:
    """The cycle each sequence's first input token is taken (the earliest over the
    inputs)."""
    starts = None
    for name in hw.inputs:
        per = hw.tokens_per_sequence(name)
        cyc = np.asarray(timing.chans[name].pop, dtype=np.int64)[::per]
        starts = cyc if starts is None else np.minimum(starts, cyc)
    return starts

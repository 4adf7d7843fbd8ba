"""Timing contracts: how a template fires, written once as data.

A template instance is a process that *fires*: in one cycle it takes one token from each
input port it uses on that firing, and puts one token into each output port it uses. It
fires only when every such input has a visible token and every such output channel has a
free slot; then it may not fire again for ``ii`` cycles. Outputs become visible to the
consumer ``latency`` cycles after the firing (the channel carries the latency, so pipeline
registers never stall).

The firings form phases; each phase is a loop nest; which ports a firing uses depends only
on the position in the loop nest: ``always``, ``first`` (innermost index 0) or ``last``
(innermost index extent - 1), or a conjunction of conditions on named loops
(:func:`when`: ``(FIRST, var)``, ``(LAST, var)``, ``(BELOW, var, k)``: index < k), e.g.
"on the last key of a row" in a loop nest whose rows are interleaved innermost. A firing
that uses no port (a bubble) still takes its cycle. The simulator (``sim.engine``) expands
this into per-firing port sets over a phase's :attr:`Phase.period`; the HDL
(``hdl.sequencer``) builds the counters and fire logic from the same object.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

ALWAYS, FIRST, LAST = "always", "first", "last"
WHENS = (ALWAYS, FIRST, LAST)
#: a condition on a named loop: its index is below k (``(BELOW, var, k)``)
BELOW = "below"


def when(*conditions) -> tuple:
    """A port's use as a conjunction of conditions on named loops, each ``(FIRST, var)``,
    ``(LAST, var)`` or ``(BELOW, var, k)``: e.g. ``when((LAST, ROW_KEY))`` (the last key
    of a row whose rows are interleaved innermost)."""
    return tuple(tuple(c) for c in conditions)


def conditions(when_, loops) -> tuple:
    """``when_`` (a WHENS string or a :func:`when` tuple) as conditions on named loops:
    ``()`` for always; FIRST/LAST name the innermost loop."""
    if isinstance(when_, str):
        inner = loops[-1][0]
        return {ALWAYS: (), FIRST: ((FIRST, inner),), LAST: ((LAST, inner),)}[when_]
    return when_


#: the phase and loop-variable names the HDL looks up in a contract (the components of
#: ``templates.online``, ``.linear``, ``.window``, ``.decode``): named once, here, for the
#: templates that build the phases and the components that read their counters
LOAD, SCORES, REPLAY, ROWS = "load", "scores", "replay", "rows"
FILL, MAIN, TAIL, PREFILL, STEP = "fill", "main", "tail", "prefill", "step"
LOAD_ROW, ROW, GROUP, SLOT, FOLD = "r", "i", "j", "t", "f"
#: a block of interleaved query rows (``templates.online.online_softmax_pv``)
BLOCK = "b"


@dataclass(frozen=True)
class Phase:
    name: str
    loops: tuple[tuple[str, int], ...]  # (variable, extent), outermost first
    ports: tuple[tuple[str, str], ...]  # (port, when)

    def __post_init__(self):
        if not self.loops:
            raise ValueError(f"phase {self.name}: needs at least one loop")
        for var, extent in self.loops:
            if extent < 1:
                raise ValueError(f"phase {self.name}: loop {var} has extent {extent} < 1")
        extents = dict(self.loops)
        for port, w in self.ports:
            if isinstance(w, str):
                if w not in WHENS:
                    raise ValueError(f"phase {self.name}: port {port}: when must be one of "
                                     f"{WHENS} or a when(...) tuple")
                continue
            for cond in w:
                kind, var = cond[0], cond[1]
                if var not in extents or kind not in (FIRST, LAST, BELOW) or \
                        (kind == BELOW) != (len(cond) == 3):
                    raise ValueError(f"phase {self.name}: port {port}: bad condition {cond!r} "
                                     f"(FIRST/LAST var, or BELOW var k; loops "
                                     f"{', '.join(extents)})")

    @cached_property
    def fires(self) -> int:
        n = 1
        for _, e in self.loops:
            n *= e
        return n

    @property
    def inner(self) -> int:
        return self.loops[-1][1]

    @cached_property
    def period(self) -> int:
        """Firings after which the pattern of used ports repeats: the product of the
        extents from the outermost loop a port condition names to the innermost."""
        names = [v for v, _ in self.loops]
        depth = len(names) - 1
        for _, w in self.ports:
            for cond in conditions(w, self.loops):
                depth = min(depth, names.index(cond[1]))
        n = 1
        for _, e in self.loops[depth:]:
            n *= e
        return n

    def _stride(self, var: str) -> tuple[int, int]:
        """(firings per step of loop ``var``, its extent)."""
        stride = 1
        for v, e in reversed(self.loops):
            if v == var:
                return stride, e
            stride *= e
        raise KeyError(var)

    def _holds(self, w, index):
        """Whether ``w`` holds at firing index/indices ``index`` (an int or an array)."""
        ok = True
        for cond in conditions(w, self.loops):
            stride, extent = self._stride(cond[1])
            pos = (index // stride) % extent
            ok = ok & ((pos == 0) if cond[0] == FIRST else
                       (pos == extent - 1) if cond[0] == LAST else (pos < cond[2]))
        return ok

    def uses(self, port: str, index: int) -> bool:
        """Whether firing ``index`` of the phase uses ``port``: any of its whens holds."""
        return any(bool(self._holds(w, index)) for p, w in self.ports if p == port)

    def pattern(self, port: str) -> np.ndarray:
        """Whether each firing of one :attr:`period` uses ``port`` (bool array)."""
        idx = np.arange(self.period, dtype=np.int64)
        out = np.zeros(self.period, bool)
        for p, w in self.ports:
            if p == port:
                out |= self._holds(w, idx)
        return out


@dataclass(frozen=True)
class Contract:
    template: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    phases: tuple[Phase, ...]
    ii: int = 1
    latency: int = 1
    #: sequences the template processes back to back: its phases run this many times in
    #: order, each sequence's firings right after the last one's (no gap, no reset); the
    #: HDL sequencer wraps to the first phase instead of stopping
    sequences: int = 1
    #: the HDL sequencer never stops: after the last of ``sequences`` it wraps again and
    #: runs as long as inputs come (the simulator and testbench run ``sequences``)
    stream: bool = False

    def __post_init__(self):
        if self.ii < 1 or self.latency < 1:
            raise ValueError(f"{self.template}: ii and latency must be >= 1")
        if not isinstance(self.sequences, int) or self.sequences < 1:
            raise ValueError(f"{self.template}: sequences must be an integer >= 1, got "
                             f"{self.sequences!r}")
        known = set(self.inputs) | set(self.outputs)
        for ph in self.phases:
            for p, _ in ph.ports:
                if p not in known:
                    raise ValueError(f"{self.template}: phase {ph.name} uses unknown port {p}")

    @property
    def run_phases(self) -> tuple[Phase, ...]:
        """The phases of the whole run in firing order: :attr:`phases` once per sequence
        (what the simulator's engines step through)."""
        return self.phases * self.sequences

    @property
    def fires_per_sequence(self) -> int:
        return sum(ph.fires for ph in self.phases)

    @property
    def fires(self) -> int:
        """Firings of the whole run (every sequence)."""
        return self.fires_per_sequence * self.sequences

    def extent(self, phase: str, var: str) -> int:
        """The extent of loop ``var`` in phase ``phase`` (e.g. a row's key groups), for
        the components that need a loop bound: read here, not recomputed."""
        for ph in self.phases:
            if ph.name == phase:
                return dict(ph.loops)[var]
        raise KeyError(f"{self.template}: no phase {phase!r}")

    def port_firings(self, port: str) -> np.ndarray:
        """Indices of the firings (over the whole run) that use ``port``, in order."""
        return np.flatnonzero(np.concatenate([
            np.tile(ph.pattern(port), ph.fires // ph.period) for ph in self.run_phases]))

    def tokens_per_sequence(self, port: str) -> int:
        """How many tokens the port carries in one sequence."""
        total = 0
        for ph in self.phases:
            total += int(ph.pattern(port).sum()) * (ph.fires // ph.period)
        return total

    def tokens(self, port: str) -> int:
        """How many tokens the port carries over the whole run (every sequence)."""
        return self.tokens_per_sequence(port) * self.sequences

"""Timing contracts: how a template fires, written once as data.

A template instance is a process that *fires*: in one cycle it takes one token from each
input port it uses on that firing, and puts one token into each output port it uses. It
fires only when every such input has a visible token and every such output channel has a
free slot; then it may not fire again for ``ii`` cycles. Outputs become visible to the
consumer ``latency`` cycles after the firing (the channel carries the latency, so pipeline
registers never stall).

The firings form phases; each phase is a loop nest; which ports a firing uses depends only
on the position in the innermost loop: ``always``, ``first`` (index 0) or ``last``
(index extent - 1). The simulator (``sim.engine``) expands this into per-firing port sets;
the HDL (``hdl.sequencer``) builds the counters and fire logic from the same object.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALWAYS, FIRST, LAST = "always", "first", "last"
WHENS = (ALWAYS, FIRST, LAST)


#: the phase and loop-variable names the HDL looks up in a contract (the components of
#: ``templates.online``, ``.linear``, ``.window``, ``.decode``): named once, here, for the
#: templates that build the phases and the components that read their counters
LOAD, SCORES, REPLAY, ROWS = "load", "scores", "replay", "rows"
FILL, MAIN, TAIL, PREFILL, STEP = "fill", "main", "tail", "prefill", "step"
LOAD_ROW, ROW, GROUP, SLOT, FOLD = "r", "i", "j", "t", "f"


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
        for port, when in self.ports:
            if when not in WHENS:
                raise ValueError(f"phase {self.name}: port {port}: when must be one of {WHENS}")

    @property
    def fires(self) -> int:
        n = 1
        for _, e in self.loops:
            n *= e
        return n

    @property
    def inner(self) -> int:
        return self.loops[-1][1]

    def uses(self, port: str, inner_index: int) -> bool:
        for p, when in self.ports:
            if p != port:
                continue
            if when == ALWAYS or (when == FIRST and inner_index == 0) or \
                    (when == LAST and inner_index == self.inner - 1):
                return True
        return False


@dataclass(frozen=True)
class Contract:
    template: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    phases: tuple[Phase, ...]
    ii: int = 1
    latency: int = 1

    def __post_init__(self):
        if self.ii < 1 or self.latency < 1:
            raise ValueError(f"{self.template}: ii and latency must be >= 1")
        known = set(self.inputs) | set(self.outputs)
        for ph in self.phases:
            for p, _ in ph.ports:
                if p not in known:
                    raise ValueError(f"{self.template}: phase {ph.name} uses unknown port {p}")

    @property
    def fires(self) -> int:
        return sum(ph.fires for ph in self.phases)

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
            np.tile(np.array([ph.uses(port, j) for j in range(ph.inner)], bool),
                    ph.fires // ph.inner) for ph in self.phases]))

    def tokens(self, port: str) -> int:
        """How many tokens the port carries over the whole run."""
        total = 0
        for ph in self.phases:
            per_row = sum(ph.uses(port, j) for j in range(ph.inner))
            total += per_row * (ph.fires // ph.inner)
        return total

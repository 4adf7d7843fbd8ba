"""Fire control of a template, built from its timing contract (``mappers.contracts``).

The sequencer holds the loop counters of every phase, decides which ports the current
firing uses, and fires when each used input is valid and each used output has a slot —
exactly the rule the simulator's timing engine applies to the same contract.
"""
from __future__ import annotations

from amaranth.hdl import Elaboratable, Module, Mux, Signal

from ..mappers.contracts import ALWAYS, FIRST, LAST, Contract


class Sequencer(Elaboratable):
    """Signals: ``avail[port]`` (in: input valid / output slot free), ``use[port]`` (out:
    the port takes part in this firing), ``fire`` (out), ``in_phase[name]`` (out),
    ``counter[(phase, var)]`` (out), ``first``/``last`` (out: position in the active
    phase's innermost loop), ``done`` (out: every firing made). With the contract's
    ``sequences`` S > 1 the last phase's last firing wraps to the first phase (the loop
    counters are all back at 0 then) until the S-th sequence ends; ``sequence`` (out)
    counts them. With the contract's ``stream`` it always wraps (never done)."""

    def __init__(self, contract: Contract):
        self.contract = c = contract
        ports = c.inputs + c.outputs
        self.avail = {p: Signal(name=f"avail_{p}") for p in ports}
        self.use = {p: Signal(name=f"use_{p}") for p in ports}
        self.fire = Signal()
        self.first = Signal()
        self.last = Signal()
        self.done = Signal()
        self.phase = Signal(range(len(c.phases) + 1))
        self.in_phase = {ph.name: Signal(name=f"in_{ph.name}") for ph in c.phases}
        # at least one bit: zero-width signals become [-1:0] vectors, which Verilator rejects
        self.counter = {(ph.name, var): Signal(range(max(extent, 2)), name=f"{ph.name}_{var}")
                        for ph in c.phases for var, extent in ph.loops}
        self.sequence = Signal(range(max(c.sequences, 2)), name="sequence")

    def elaborate(self, platform):
        m = Module()
        c = self.contract
        m.d.comb += self.done.eq(self.phase == len(c.phases))
        use_terms = {p: [] for p in self.use}
        first_terms, last_terms = [], []
        for k, ph in enumerate(c.phases):
            active = self.in_phase[ph.name]
            m.d.comb += active.eq(self.phase == k)
            var, extent = ph.loops[-1]
            inner = self.counter[(ph.name, var)]
            is_first = active & (inner == 0)
            is_last = active & (inner == extent - 1)
            first_terms.append(is_first)
            last_terms.append(is_last)
            extents = dict(ph.loops)
            for p, when in ph.ports:
                if isinstance(when, str):
                    use_terms[p].append({ALWAYS: active, FIRST: is_first, LAST: is_last}[when])
                    continue
                term = active
                for cond in when:
                    ctr = self.counter[(ph.name, cond[1])]
                    term = term & (ctr == 0 if cond[0] == FIRST else
                                   ctr == extents[cond[1]] - 1 if cond[0] == LAST else
                                   ctr < cond[2])
                use_terms[p].append(term)
        for p, terms in use_terms.items():
            m.d.comb += self.use[p].eq(_any(terms))
        m.d.comb += [self.first.eq(_any(first_terms)), self.last.eq(_any(last_terms))]

        ok = ~self.done
        for p in self.use:
            ok = ok & (~self.use[p] | self.avail[p])
        if c.ii > 1:
            cool = Signal(range(c.ii))
            with m.If(self.fire):
                m.d.sync += cool.eq(c.ii - 1)
            with m.Elif(cool != 0):
                m.d.sync += cool.eq(cool - 1)
            ok = ok & (cool == 0)
        m.d.comb += self.fire.eq(ok)

        with m.If(self.fire):
            for k, ph in enumerate(c.phases):
                with m.If(self.phase == k):
                    # odometer over the loop nest, innermost fastest
                    wrap = 1
                    for var, extent in reversed(ph.loops):
                        ctr = self.counter[(ph.name, var)]
                        at_end = ctr == extent - 1
                        with m.If(wrap):
                            m.d.sync += ctr.eq(0 if extent == 1 else Mux(at_end, 0, ctr + 1))
                        wrap = wrap & at_end
                    with m.If(wrap):
                        if k == len(c.phases) - 1 and c.stream:
                            m.d.sync += self.phase.eq(0)
                        elif k == len(c.phases) - 1 and c.sequences > 1:
                            with m.If(self.sequence != c.sequences - 1):
                                m.d.sync += [self.phase.eq(0),
                                             self.sequence.eq(self.sequence + 1)]
                            with m.Else():
                                m.d.sync += self.phase.eq(k + 1)
                        else:
                            m.d.sync += self.phase.eq(k + 1)
        return m


def _any(terms):
    expr = 0
    for t in terms:
        expr = expr | t
    return expr

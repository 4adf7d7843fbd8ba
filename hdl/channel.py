"""The channel: a FIFO with a capacity that counts in-flight tokens, and a latency.

Semantics (the simulator's, ``sim.engine``): a token written in cycle t is readable from
cycle t + latency; a read in cycle t frees a slot that a write may use from cycle t + 1;
``i.ready`` is high while fewer than ``depth`` tokens are in flight or stored. The
latency is a line of ``latency - 1`` registers in front of the storage: tokens in it
never stall, because their slots were taken when they were written.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out


class Channel(wiring.Component):
    def __init__(self, width: int, depth: int, latency: int = 1):
        if depth < 1:
            raise ValueError(f"Channel depth must be >= 1, got {depth}")
        if latency < 1:
            raise ValueError(f"Channel latency must be >= 1, got {latency}")
        self.width, self.depth, self.latency = width, depth, latency
        super().__init__({"i": In(stream.Signature(width)), "o": Out(stream.Signature(width))})

    def elaborate(self, platform):
        m = Module()
        # storage of at least 2 entries: a 1-entry SyncFIFO has a zero-width address,
        # which becomes a [-1:0] vector that Verilator rejects; the credit below still
        # allows only ``depth`` tokens
        m.submodules.store = store = SyncFIFO(width=self.width, depth=max(self.depth, 2))
        write = self.i.valid & self.i.ready
        m.d.comb += [
            self.o.valid.eq(store.r_rdy),
            self.o.payload.eq(store.r_data),
            store.r_en.eq(self.o.ready),
        ]
        if self.latency == 1 and self.depth >= 2:
            m.d.comb += [
                self.i.ready.eq(store.w_rdy),
                store.w_en.eq(write),
                store.w_data.eq(self.i.payload),
            ]
            return m
        # tokens in flight + stored
        occ = Signal(range(self.depth + 1))
        read = store.r_rdy & self.o.ready
        m.d.comb += self.i.ready.eq(occ < self.depth)
        m.d.sync += occ.eq(occ + write - read)
        valid, data = write, self.i.payload
        for k in range(self.latency - 1):
            v = Signal(name=f"line{k}_valid")
            d = Signal(self.width, name=f"line{k}_data")
            m.d.sync += [v.eq(valid), d.eq(data)]
            valid, data = v, d
        m.d.comb += [store.w_en.eq(valid), store.w_data.eq(data)]
        return m

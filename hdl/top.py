"""The top level, assembled from the HwGraph: one Channel per channel, one template
component per instance, one stream port per graph input/output channel."""
from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..mappers.hwgraph import HwGraph
from .channel import Channel
from .templates import of_graph


def port_names(stream_name: str) -> dict[str, str]:
    """Verilog port names of a top-level stream (Amaranth's flattening of the signature)."""
    return {k: f"{stream_name}__{k}" for k in ("valid", "ready", "payload")}


class Top(wiring.Component):
    def __init__(self, hw: HwGraph):
        self.hw = hw
        members = {}
        for name in hw.inputs:
            members[name] = In(stream.Signature(hw.channels[name].layout.width))
        for name in hw.outputs:
            members[name] = Out(stream.Signature(hw.channels[name].layout.width))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        hw = self.hw
        insts = {}
        for name, inst in hw.instances.items():
            insts[name] = m.submodules[name] = of_graph(inst, hw)
        for c in hw.channels.values():
            stages = 0 if c.src is None else insts[c.src[0]].stages(c.src[1])
            ch = m.submodules[f"ch_{c.name}"] = Channel(c.layout.width, c.depth, c.latency,
                                                        stages)
            src = wiring.flipped(getattr(self, c.name)) if c.src is None else \
                getattr(insts[c.src[0]], c.src[1])
            dst = wiring.flipped(getattr(self, c.name)) if c.dst is None else \
                getattr(insts[c.dst[0]], c.dst[1])
            wiring.connect(m, src, ch.i)
            wiring.connect(m, ch.o, dst)
        return m

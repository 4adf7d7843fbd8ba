"""AXI4-Stream ports around a design: ``rtl/<top>_axis.v``, module ``<top>_axis``.

The wrapper instantiates the design's module ``<top>`` (``rtl/<top>.v``) and renames
nothing but its ports: every input stream ``x`` becomes ``s_axis_x_tdata / tvalid /
tready / tlast``, every output stream ``y`` becomes ``m_axis_y_*``; clock ``clk`` and
synchronous active-high reset ``rst`` as in the design (AXI's ``aresetn`` is active low:
invert it outside). Handshakes pass straight through (no register, no cycle added), so
the design's cycle-exact behaviour holds at these ports.

* ``tdata`` is the stream's payload zero-extended to whole bytes (AXI4-Stream widths
  are multiples of 8); the payload packing is the one ``report.md`` lists. There is no
  ``tkeep``/``tstrb``: every byte of every transfer is a data byte.
* ``tlast`` of an output stream is 1 on the last token of each sequence (the stream's
  token count per sequence, fixed by the design). ``tlast`` of an input stream is
  accepted and not used: the design counts its tokens itself.
"""
from __future__ import annotations

from amaranth.hdl import ClockSignal, Instance, Module, Mux, ResetSignal, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..mappers.hwgraph import HwGraph


def axis_name(top: str) -> str:
    return f"{top}_axis"


def tdata_width(width: int) -> int:
    return max(8, -(-width // 8) * 8)


def axis_ports(hw: HwGraph) -> dict[str, dict]:
    """Per stream: {"payload", "valid", "ready", "last"} port names of the wrapper and
    "per_sequence", the stream's tokens per sequence (tlast's period)."""
    ports = {}
    for name in (*hw.inputs, *hw.outputs):
        p = f"s_axis_{name}" if name in hw.inputs else f"m_axis_{name}"
        ports[name] = {"payload": f"{p}_tdata", "valid": f"{p}_tvalid",
                       "ready": f"{p}_tready", "last": f"{p}_tlast",
                       "per_sequence": hw.tokens(name)}
    return ports


class AxisTop(wiring.Component):
    def __init__(self, hw: HwGraph):
        self.hw = hw
        self.ports = axis_ports(hw)
        members = {}
        for name, p in self.ports.items():
            width = tdata_width(hw.channels[name].layout.width)
            into = name in hw.inputs
            members[p["payload"]] = (In if into else Out)(unsigned(width))
            members[p["valid"]] = (In if into else Out)(1)
            members[p["ready"]] = (Out if into else In)(1)
            members[p["last"]] = (In if into else Out)(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        hw = self.hw
        conns = [("i", "clk", ClockSignal()), ("i", "rst", ResetSignal())]
        for name, p in self.ports.items():
            width = hw.channels[name].layout.width
            payload, valid = getattr(self, p["payload"]), getattr(self, p["valid"])
            ready, last = getattr(self, p["ready"]), getattr(self, p["last"])
            if name in hw.inputs:
                conns += [("i", f"{name}__payload", payload[:width]),
                          ("i", f"{name}__valid", valid), ("o", f"{name}__ready", ready)]
                continue
            core_payload = Signal(width, name=f"{name}_payload")
            m.d.comb += payload.eq(core_payload)
            conns += [("o", f"{name}__payload", core_payload),
                      ("o", f"{name}__valid", valid), ("i", f"{name}__ready", ready)]
            n = p["per_sequence"]
            count = Signal(range(max(n, 2)), name=f"{name}_count")
            m.d.comb += last.eq(count == n - 1)
            with m.If(valid & ready):
                m.d.sync += count.eq(Mux(last, 0, count + 1))
        m.submodules.core = Instance(hw.name, *conns)
        return m


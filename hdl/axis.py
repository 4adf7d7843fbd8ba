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

An AXI4-Lite slave ``s_axil_*`` (32-bit data, :data:`AXIL_ADDR_BITS`-bit byte addresses,
no ``prot``) gives status and counters (:func:`registers`): an ID, a status word
(running, done), sequences completed (tlast of the first output stream), the cycles of
the last sequence and each stream's tokens moved. CYCLES counts to the sequence's last
output token (included) from the cycle after the previous sequence's last output token
when the first input stream had already taken a token of this sequence by then (back to
back: in steady state this is the interval between sequences, the II), else from this
sequence's first input token accepted while idle (included; one sequence: its latency
at the ports). Writing
STATUS clears the counters; reads and writes of other addresses answer SLVERR. Nothing
here gates the streams: the design runs without a single AXI4-Lite access.
"""
from __future__ import annotations

from amaranth.hdl import C, Cat, ClockSignal, Instance, Module, Mux, ResetSignal, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..mappers.hwgraph import HwGraph


AXIL_ADDR_BITS = 8
#: the ID register's value: "AFLW"
AXIL_ID = 0x41464C57
OKAY, SLVERR = 0, 2


def registers(hw: HwGraph) -> list[tuple[int, str, str]]:
    """(byte address, name, meaning) of the AXI4-Lite registers, in address order."""
    regs = [(0x00, "ID", f"{AXIL_ID:#010x} (\"AFLW\")"),
            (0x04, "STATUS", "bit 0 running, bit 1 done (a sequence completed); "
                             "a write clears the counters below"),
            (0x08, "SEQUENCES", "sequences completed (tlast of the first output stream)"),
            (0x0C, "CYCLES", "cycles of the last sequence, to its last output token: "
                             "from the previous sequence's end when this one's input had "
                             "started by then (back to back: the II), else from its first "
                             "input token accepted while idle")]
    for i, name in enumerate((*hw.inputs, *hw.outputs)):
        regs.append((0x10 + 4 * i, f"TOKENS_{name.upper()}", f"tokens moved on {name}"))
    if regs[-1][0] >= 1 << AXIL_ADDR_BITS:
        raise ValueError(f"{hw.name}: {len(regs)} registers exceed the AXI4-Lite window")
    return regs


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
                       "per_sequence": hw.tokens_per_sequence(name)}
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
        a = AXIL_ADDR_BITS
        for sig, d, w in (("awaddr", In, a), ("awvalid", In, 1), ("awready", Out, 1),
                          ("wdata", In, 32), ("wstrb", In, 4), ("wvalid", In, 1),
                          ("wready", Out, 1), ("bresp", Out, 2), ("bvalid", Out, 1),
                          ("bready", In, 1), ("araddr", In, a), ("arvalid", In, 1),
                          ("arready", Out, 1), ("rdata", Out, 32), ("rresp", Out, 2),
                          ("rvalid", Out, 1), ("rready", In, 1)):
            members[f"s_axil_{sig}"] = d(w)
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
        self._status(m)
        return m

    def _moved(self, name: str):
        p = self.ports[name]
        return getattr(self, p["valid"]) & getattr(self, p["ready"])

    def _status(self, m):
        """The AXI4-Lite status and counters (see the module docstring)."""
        hw = self.hw
        ax = lambda sig: getattr(self, f"s_axil_{sig}")
        clear = Signal(name="axil_clear")
        running, done = Signal(name="st_running"), Signal(name="st_done")
        seqs, cycles = Signal(32, name="st_sequences"), Signal(32, name="st_cycles")
        first_out, first_in = hw.outputs[0], hw.inputs[0]
        any_in = Signal(name="st_any_in")
        m.d.comb += any_in.eq(Cat(*(self._moved(n) for n in hw.inputs)).any())
        end = self._moved(first_out) & getattr(self, self.ports[first_out]["last"])
        tokens = {n: Signal(32, name=f"st_tokens_{n}") for n in (*hw.inputs, *hw.outputs)}
        # sequences whose first token the first input took and whose end has not come
        per_in = self.ports[first_in]["per_sequence"]
        in_pos = Signal(range(max(per_in, 2)), name="st_in_pos")
        open_ = Signal(16, name="st_open")
        began = Signal(name="st_began")
        m.d.comb += began.eq(self._moved(first_in) & (in_pos == 0))
        count = Signal(32, name="st_count")
        count_next = Signal(32, name="st_count_next")
        m.d.comb += count_next.eq(Mux(any_in & ~running, 1, Mux(running, count + 1, count)))
        with m.If(clear):
            m.d.sync += [running.eq(0), done.eq(0), seqs.eq(0), cycles.eq(0), count.eq(0),
                         in_pos.eq(0), open_.eq(0), *(t.eq(0) for t in tokens.values())]
        with m.Else():
            for n, t in tokens.items():
                with m.If(self._moved(n)):
                    m.d.sync += t.eq(t + 1)
            with m.If(self._moved(first_in)):
                m.d.sync += in_pos.eq(0 if per_in == 1 else
                                      Mux(in_pos == per_in - 1, 0, in_pos + 1))
            m.d.sync += [open_.eq(open_ + began - end), count.eq(count_next)]
            with m.If(end):
                m.d.sync += [cycles.eq(count_next), done.eq(1), seqs.eq(seqs + 1)]
                with m.If(open_ + began > 1):       # the next sequence has begun
                    m.d.sync += count.eq(0)
                with m.Else():
                    m.d.sync += running.eq(0)
            with m.Elif(any_in & ~running):
                m.d.sync += running.eq(1)
        values = {0x00: C(AXIL_ID, 32), 0x04: Cat(running, done), 0x08: seqs, 0x0C: cycles}
        for i, n in enumerate((*hw.inputs, *hw.outputs)):
            values[0x10 + 4 * i] = tokens[n]
        # write: address and data together, one response at a time
        take_w = Signal(name="axil_take_w")
        m.d.comb += [take_w.eq(ax("awvalid") & ax("wvalid") & ~ax("bvalid")),
                     ax("awready").eq(take_w), ax("wready").eq(take_w),
                     clear.eq(take_w & (ax("awaddr") == 0x04))]
        with m.If(take_w):
            m.d.sync += [ax("bvalid").eq(1),
                         ax("bresp").eq(Mux(ax("awaddr") == 0x04, OKAY, SLVERR))]
        with m.Elif(ax("bvalid") & ax("bready")):
            m.d.sync += ax("bvalid").eq(0)
        # read: one outstanding
        m.d.comb += ax("arready").eq(~ax("rvalid"))
        rd_value, rd_ok = Signal(32, name="axil_rd_value"), Signal(name="axil_rd_ok")
        for addr, v in values.items():
            with m.If(ax("araddr") == addr):
                m.d.comb += [rd_value.eq(v), rd_ok.eq(1)]
        with m.If(ax("arvalid") & ~ax("rvalid")):
            m.d.sync += [ax("rvalid").eq(1), ax("rdata").eq(rd_value),
                         ax("rresp").eq(Mux(rd_ok, OKAY, SLVERR))]
        with m.Elif(ax("rvalid") & ax("rready")):
            m.d.sync += ax("rvalid").eq(0)


"""Resource estimates of a HwGraph on a device, and the fit check.

Every width comes from the HwGraph: ``hw.numerics`` (``AttentionNumerics``), the channels'
layouts, depths and latencies, and the contracts' loop extents. Nothing is re-derived.

What is modelled, node by node (template instances and channels):

* **multipliers**: each product with its operand widths, and the hard DSP blocks Yosys
  makes of it. Yosys splits a product wider than the block with ``mul2dsp``: the wider
  operand A is cut into slices of ``a_partial - 1`` bits plus a last slice, each slice
  against B (cut the same way when B is too wide); a slice narrower than 2 bits, or whose
  product is narrower than ``y_min`` bits, stays in LUTs. On UltraScale+ (DSP48E2, signed
  27x18, ``DSP_A_MAXWIDTH_PARTIAL=18``) a 29x17 product takes 2 blocks and a 29x23 one 4;
  unsigned operands take one more bit (the block multiplies signed numbers only).
  Products by a power-of-two constant are shifts (Yosys' ``opt_expr``), no multiplier.
* **memories**: K/V stores (N x d x bits), FIFO storage (depth x width) and exp ROMs
  (2**score_frac x exp_bits). All read ports in attnflow's RTL are *combinational*
  (asynchronous), so Yosys cannot place them in block RAM (block RAM reads are
  synchronous): on Xilinx they become LUT RAM (RAM32M16: 32 x 14 bits per 8 LUTs; RAM64M8:
  64 x 7), on ECP5 TRELLIS_DPR16X4 (16 x 4), on iCE40 (no LUT RAM) flip-flops plus read
  multiplexers. ROMs are pruned from LUT RAM and become logic. For each memory the block
  RAMs it would take with a synchronous read port are given as a note.
* **LUTs and FFs**: registers are counted exactly (state, pipeline line, FIFO pointers and
  levels, loop counters); LUTs by a rough model of the adders, comparators, multiplexers,
  shifters, dividers and ROMs in each template's datapath (``hdl/templates.py``), with
  per-flow costs (LUT6 or LUT4). Adders that a DSP block's post-adder absorbs are not
  counted on Xilinx when the product fits one block. The LUT model is within a small factor, not exact (see ``compare``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..ir.numerics import LOG2E_MULT, clog2
from .devices import Device, load_device

RESOURCES = ("LUT", "LUTRAM", "FF", "DSP", "BRAM", "URAM", "IO")


# ----------------------------------------------------------------------------- multipliers

@dataclass(frozen=True)
class DspRules:
    """How Yosys' ``mul2dsp`` cuts products for one flow (``-D DSP_*`` of its techmap)."""
    a_max: int
    b_max: int
    a_partial: int
    a_min: int
    b_min: int
    y_min: int
    signed_only: bool
    post_add: bool          # the flow packs an adder fed by the product into the block


def dsp_rules(device: Device) -> DspRules:
    d = device.dsp
    if device.flow == "xilinx":   # synth_xilinx: 27x18 signed, 17-bit cascade steps
        return DspRules(d.a_bits, d.b_bits, 18, 2, 2, 9, True, True)
    if device.flow == "ice40":    # synth_ice40 -dsp: 16x16, products below 11 bits stay in LUTs
        return DspRules(d.a_bits, d.b_bits, d.a_bits, 2, 2, 11, False, False)
    return DspRules(d.a_bits, d.b_bits, d.a_bits, 2, 2, 0, False, False)   # synth_ecp5


def dsp_blocks(a: int, b: int, y: int, rules: DspRules, top: bool = True) -> int:
    """Hard multiplier blocks Yosys makes of an ``a`` x ``b`` product of ``y`` bits
    (widths as Yosys sees them: both operands signed, or both unsigned)."""
    if top and a < b:
        a, b = b, a
    if a < rules.a_min or b < rules.b_min or y < rules.y_min:
        return 0
    h = 1 if rules.signed_only else 0
    if a > rules.a_max:
        step = rules.a_partial - h
        n = (a - rules.a_max + step - 1) // step
        last = a - n * step
        return (n * dsp_blocks(rules.a_partial, b, min(y, b + rules.a_partial), rules, False)
                + dsp_blocks(last, b, b + last, rules, False))
    if b > rules.b_max:
        step = rules.b_max - h
        n = (b - rules.b_max + step - 1) // step
        last = b - n * step
        return (n * dsp_blocks(a, rules.b_max, min(y, a + rules.b_max), rules, False)
                + dsp_blocks(a, last, a + last, rules, False))
    return 1


@dataclass(frozen=True)
class Mult:
    """``count`` products of an ``a_bits`` by ``b_bits`` operand (``const``: the value of a
    constant B operand)."""
    what: str
    a_bits: int
    a_signed: bool
    b_bits: int
    b_signed: bool
    count: int = 1
    const: int | None = None
    post_add: int = 0        # width of an adder fed by the product (DSP post-adder candidate)
    #: name of a product in the same node that is never active in the same cycle
    exclusive_with: str = ""

    @property
    def is_shift(self) -> bool:
        return self.const is not None and self.const > 0 and self.const & (self.const - 1) == 0

    def operands(self, signed_only: bool) -> tuple[int, int]:
        """Operand widths as Yosys sees them (Amaranth zero-extends the unsigned operand of
        a mixed product; a signed-only block needs one more bit for unsigned operands)."""
        a, b = self.a_bits, self.b_bits
        if self.a_signed != self.b_signed or signed_only:
            a += 0 if self.a_signed else 1
            b += 0 if self.b_signed else 1
        return a, b

    def blocks(self, rules: DspRules) -> int:
        if self.is_shift:
            return 0
        a, b = self.operands(rules.signed_only)
        return dsp_blocks(a, b, a + b, rules)

    def describe(self) -> str:
        sa = "s" if self.a_signed else "u"
        sb = "s" if self.b_signed else "u"
        b = f"const {self.const}" if self.const is not None else f"{self.b_bits}{sb}"
        return f"{self.count} x {self.what} ({self.a_bits}{sa} * {b})"


# ----------------------------------------------------------------------------- memories

@dataclass(frozen=True)
class Mem:
    what: str
    depth: int
    width: int
    rom: bool = False          # initialised, never written (the exp table)
    async_read: bool = True    # every read port in attnflow's RTL today

    @property
    def bits(self) -> int:
        return self.depth * self.width


#: Xilinx UltraScale(+) simple-dual-port LUT RAM (Yosys lutrams_xcu.txt): depth, width, LUTs
_XILINX_LUTRAM = ((32, 14, 8, "RAM32M16"), (64, 7, 8, "RAM64M8"))


def bram_blocks(mem: Mem, device: Device) -> int:
    """Block RAMs the memory would take with a synchronous read port (a note)."""
    br = device.bram
    return max(math.ceil(mem.width / br.max_width), math.ceil(mem.bits / br.bits))


def map_memory(mem: Mem, device: Device, k: int) -> dict:
    """What Yosys does with one memory: {'lutram': LUTs, 'ff': bits, 'lut': logic LUTs,
    'bram': blocks, 'cells': str}."""
    out = {"lutram": 0, "ff": 0, "lut": 0, "bram": 0, "uram": 0, "cells": ""}
    if mem.rom:
        out["lut"] = rom_luts(mem.depth, mem.width, device.flow, k)
        out["cells"] = f"ROM {mem.depth}x{mem.width} as logic ({out['lut']} LUT)"
        return out
    if not mem.async_read:   # not produced today; block RAM when the read is registered
        out["bram"] = bram_blocks(mem, device)
        out["cells"] = f"{out['bram']} x {device.bram.primitive or 'BRAM'}"
        return out
    if device.flow == "xilinx":
        for depth, width, luts, prim in _XILINX_LUTRAM:
            if mem.depth <= depth:
                n = math.ceil(mem.width / width)
                out["lutram"] = n * luts
                out["cells"] = f"{n} x {prim}"
                return out
        banks = math.ceil(mem.depth / 64)
        n = banks * math.ceil(mem.width / 7)
        out["lutram"] = n * 8
        out["lut"] = mem.width * math.ceil((banks - 1) / 3)     # read mux (LUT6 = 4:1)
        out["cells"] = f"{n} x RAM64M8 in {banks} banks"
        return out
    if device.flow == "ecp5":
        banks = math.ceil(mem.depth / 16)
        n = banks * math.ceil(mem.width / 4)
        out["lutram"] = 2 * n                                   # 2 RAM-mode LUT4s each
        out["lut"] = mem.width * (banks - 1)
        out["cells"] = f"{n} x TRELLIS_DPR16X4"
        return out
    # iCE40: no LUT RAM: a register per bit, write decode and a read multiplexer per bit
    out["ff"] = mem.bits
    out["lut"] = mem.width * (mem.depth - 1) + mem.depth
    out["cells"] = f"{mem.bits} FF + read mux"
    return out


# ----------------------------------------------------------------------------- logic costs

def rom_luts(depth: int, width: int, flow: str, k: int) -> int:
    """A ROM as logic: 2**k entries per LUT; Xilinx MUXF7/F8 and ECP5 PFUMX/L6MUX combine
    four LUTs for free; iCE40 pays a LUT per 2:1 multiplexer."""
    pieces = max(1, math.ceil(depth / (1 << k)))
    if flow == "ice40":
        per_bit = pieces + pieces - 1
    else:
        per_bit = pieces + max(0, math.ceil(pieces / 4) - 1)
    return per_bit * width


@dataclass
class Logic:
    """The datapath of one node, as a list of (kind, width, count)."""
    items: list = field(default_factory=list)

    def add(self, kind: str, width: int, count: int = 1, *extra):
        if width > 0 and count > 0:
            self.items.append((kind, width, count) + tuple(extra))
        return self

    def luts(self, flow: str, k: int) -> int:
        total = 0
        for kind, w, n, *extra in self.items:
            if kind == "add":          # adder / subtractor / counter increment
                c = w
            elif kind == "cmp":        # magnitude comparison of two signals (carry chain)
                c = math.ceil(w / 2) if k >= 6 else w
            elif kind == "cmpc":       # comparison with a constant
                c = math.ceil(w / 3) if k >= 6 else math.ceil(w / 2)
            elif kind == "mux":        # 2:1 multiplexer
                c = w
            elif kind == "shift":      # barrel shifter by an extra[0]-bit amount
                c = w * (math.ceil(extra[0] / 2) if k >= 6 else extra[0])
            elif kind == "div":        # Yosys' array divider: w-bit dividend, extra[0]-bit divisor
                c = w * max(w, extra[0]) * (1 if k >= 6 else 2)
            elif kind == "soft_mul":   # a product left in LUTs
                c = w * extra[0] // (2 if k >= 6 else 1)
            elif kind == "gate":       # a few LUTs of control logic
                c = w
            else:
                raise ValueError(kind)
            total += c * n
        return total


# ----------------------------------------------------------------------------- per node

@dataclass
class NodeModel:
    mults: list = field(default_factory=list)
    mems: list = field(default_factory=list)
    logic: Logic = field(default_factory=Logic)
    ffs: int = 0
    notes: list = field(default_factory=list)


def _exp(model: NodeModel, nm, z_bits: int):
    """``hdl.templates.exp_hw``: z * log2(e), round, ROM of 2**-frac, shift by the integer part."""
    sf = nm.score_frac
    model.mults.append(Mult("z*log2e", z_bits, False, LOG2E_MULT.bit_length(), False,
                            const=LOG2E_MULT))
    u_bits = z_bits + LOG2E_MULT.bit_length() + 1
    model.logic.add("add", u_bits - 15)                             # rounding
    model.mems.append(Mem("exp ROM", 1 << sf, nm.exp_bits, rom=True))
    shift_bits = max(1, (nm.prob_frac + 1).bit_length())
    model.logic.add("shift", nm.exp_bits, 1, shift_bits)
    model.logic.add("cmpc", u_bits - sf).add("mux", nm.exp_bits)


def _sequencer(model: NodeModel, contract):
    for ph in contract.phases:
        for _, extent in ph.loops:
            bits = clog2(max(extent, 2))
            model.ffs += bits
            model.logic.add("add", bits).add("cmpc", bits)
    model.ffs += clog2(len(contract.phases) + 1)
    ports = len(contract.inputs) + len(contract.outputs)
    model.logic.add("gate", 2 + ports)
    if contract.ii > 1:
        model.ffs += clog2(contract.ii)


def template_model(inst, hw) -> NodeModel:
    nm = hw.numerics
    n, d = nm.seq_len, nm.head_dim
    t = inst.template
    m = NodeModel()
    _sequencer(m, inst.contract)
    ch = hw.port_channels(inst.name)
    if t == "qk_scores":
        kw = ch["k"].layout.width
        m.mems.append(Mem("K store", n, kw))
        m.ffs += ch["q"].layout.width                               # the current q row
        m.logic.add("mux", ch["q"].layout.width)
        m.mults.append(Mult("q*k", nm.q.bits, True, nm.k.bits, True, d))
        m.logic.add("add", nm.dot_bits, d - 1)                      # dot-product adder chain
        m.mults.append(Mult("dot*scale", nm.dot_bits, True, nm.scale_mult.bit_length(), False,
                            const=nm.scale_mult, post_add=nm.dot_bits + 17))
        m.logic.add("add", nm.score_bits)                           # rounding
    elif t == "kv_replay":
        m.mems.append(Mem("V store", n, ch["v"].layout.width))
    elif t == "online_softmax_pv":
        sb, lb, ab, eb = nm.score_bits, nm.sum_bits, nm.acc_bits, nm.exp_bits
        m.ffs += sb + lb + d * ab                                   # m, l, o
        m.logic.add("cmp", sb).add("add", sb + 1, 2).add("mux", sb + 1)   # |x - m|
        _exp(m, nm, sb + 1)
        m.logic.add("mux", sb)                                      # m_new
        # l*e (used when x > m) and e*v (when x <= m) are never needed in the same cycle
        m.mults.append(Mult("l*e", lb, False, eb, False, post_add=lb + eb, exclusive_with="e*v"))
        m.logic.add("add", lb, 3).add("mux", lb, 2)                 # l + e, round, + 1
        m.mults.append(Mult("e*v", eb, False, nm.v.bits, True, d, post_add=ab))
        m.mults.append(Mult("o*e", ab, True, eb, False, d, post_add=ab + eb))
        m.mults.append(Mult("v*one", nm.v.bits, True, nm.prob_frac + 1, False, d, const=nm.one))
        m.logic.add("add", ab, 3 * d).add("mux", ab, 2 * d)         # o + e*v, round, + v
    elif t == "normalize":
        m.logic.add("div", nm.recip_bits + 1, 1, nm.sum_bits)       # floor(2**R / l)
        prod = nm.acc_bits + nm.recip_width + 1
        m.mults.append(Mult("o*r", nm.acc_bits, True, nm.recip_width, False, d, post_add=prod))
        rest = prod - nm.out_shift_online
        m.logic.add("add", rest, d).add("cmpc", rest, 2 * d).add("mux", nm.out.bits, 2 * d)
    elif t == "row_max":
        m.ffs += nm.score_bits
        m.logic.add("cmp", nm.score_bits).add("mux", nm.score_bits)
    elif t == "sub_exp":
        m.ffs += nm.score_bits
        m.logic.add("mux", nm.score_bits).add("add", nm.score_bits + 1)
        _exp(m, nm, nm.score_bits + 1)
    elif t == "row_sum":
        m.ffs += nm.sum_bits
        m.logic.add("add", nm.sum_bits).add("mux", nm.sum_bits)
    elif t == "recip_mul":
        m.ffs += nm.recip_width
        m.logic.add("div", nm.recip_bits + 1, 1, nm.sum_bits).add("mux", nm.recip_width)
        m.mults.append(Mult("e*r", nm.exp_bits, False, nm.recip_width, False,
                            post_add=nm.exp_bits + nm.recip_width))
        m.logic.add("add", nm.exp_bits + nm.recip_width - nm.p_shift)
    elif t == "pv_accum":
        ab = nm.acc_bits
        m.ffs += d * ab
        m.mults.append(Mult("p*v", nm.exp_bits, False, nm.v.bits, True, d, post_add=2 * ab))
        m.logic.add("add", ab, d).add("mux", ab, d)
        rest = ab - nm.out_shift_naive
        m.logic.add("add", rest, d).add("cmpc", rest, 2 * d).add("mux", nm.out.bits, 2 * d)
    else:
        m.notes.append(f"no resource model for template {t}: counted as 0")
    return m


def channel_model(c) -> NodeModel:
    """``hdl.channel.Channel``: a SyncFIFO (storage, two pointers, a level) behind a line of
    ``latency - 1`` registers with an occupancy counter."""
    m = NodeModel()
    w = c.layout.width
    m.mems.append(Mem("FIFO", c.depth, w))
    ptr = clog2(c.depth)
    lvl = clog2(c.depth + 1)
    m.ffs += 2 * ptr + lvl
    m.logic.add("add", ptr, 2).add("cmpc", ptr, 2).add("add", lvl, 2).add("cmpc", lvl, 2)
    if c.latency > 1:
        m.ffs += (c.latency - 1) * (w + 1) + lvl
        m.logic.add("add", lvl, 2).add("cmpc", lvl)
    return m


# ----------------------------------------------------------------------------- estimate

@dataclass
class Row:
    """One node's estimate: a template instance or a channel."""
    name: str
    kind: str                  # "template" | "channel"
    template: str
    dsp: int
    mults: list[str]
    mem_bits: int
    memory: list[str]
    lutram: int
    lut: int
    ff: int
    bram: int = 0
    uram: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class Estimate:
    design: str
    device: Device
    rows: list[Row]
    io: int
    notes: list[str] = field(default_factory=list)

    @property
    def totals(self) -> dict:
        t = {r: 0 for r in RESOURCES}
        for row in self.rows:
            t["DSP"] += row.dsp
            t["LUTRAM"] += row.lutram
            t["LUT"] += row.lut + row.lutram
            t["FF"] += row.ff
            t["BRAM"] += row.bram
            t["URAM"] += row.uram
        t["IO"] = self.io
        return t

    @property
    def mem_bits(self) -> int:
        return sum(r.mem_bits for r in self.rows)

    def table(self) -> str:
        """Markdown: one row per node, then the totals."""
        lines = [f"Resource estimate of `{self.design}` on {self.device.name} "
                 f"({self.device.part}); LUT includes LUT RAM.", "",
                 "| node | template | DSP | multipliers | memory bits | memory mapped to | "
                 "LUT RAM | LUT (logic) | FF |", "|---|---|---|---|---|---|---|---|---|"]
        for r in self.rows:
            lines.append(f"| {r.name} | {r.template} | {r.dsp} | {'; '.join(r.mults) or '-'} | "
                         f"{r.mem_bits} | {'; '.join(r.memory) or '-'} | {r.lutram} | {r.lut} | "
                         f"{r.ff} |")
        t = self.totals
        lines.append(f"| **total** | | **{t['DSP']}** | | **{self.mem_bits}** | | "
                     f"**{t['LUTRAM']}** | **{t['LUT'] - t['LUTRAM']}** | **{t['FF']}** |")
        lines += ["", f"Top-level I/O: {self.io} pins."]
        lines += [f"- {r.name}: {n}" for r in self.rows for n in r.notes]
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def _row(name, kind, template, model: NodeModel, device: Device) -> Row:
    k = device.lut_inputs
    rules = dsp_rules(device)
    dsp, mults, absorbed = 0, [], 0
    for mu in model.mults:
        blocks = mu.blocks(rules)
        if mu.is_shift:
            mults.append(f"{mu.describe()}: shift")
            continue
        dsp += blocks * mu.count
        a, b = mu.operands(rules.signed_only)
        if blocks == 0:
            model.logic.add("soft_mul", a, mu.count, b)
        elif rules.post_add and mu.post_add and blocks == 1:
            absorbed += mu.post_add * mu.count
        mults.append(f"{mu.describe()}: {blocks} {device.dsp.primitive} each")
    notes = list(model.notes)
    if device.flow == "ice40":
        # synth_ice40 runs Yosys' `share` before DSP mapping: a product merges with one
        # product that is never active in the same cycle (one pair, measured with Yosys 0.70)
        by_name = {mu.what: mu for mu in model.mults}
        for mu in model.mults:
            other = by_name.get(mu.exclusive_with)
            if other and not other.is_shift:
                saved = min(mu.blocks(rules), other.blocks(rules))
                dsp -= saved
                notes.append(f"{mu.what} shares a multiplier with one {other.what} "
                             f"(Yosys share): -{saved} {device.dsp.primitive}")
    lutram = ff = lut = bram = uram = 0
    memory = []
    for mem in model.mems:
        got = map_memory(mem, device, k)
        lutram += got["lutram"]
        ff += got["ff"]
        lut += got["lut"]
        bram += got["bram"]
        memory.append(f"{mem.what} {mem.depth}x{mem.width}: {got['cells']}")
        if mem.async_read and not mem.rom and got["bram"] == 0:
            notes.append(f"{mem.what}: {bram_blocks(mem, device)} {device.bram.primitive or 'BRAM'} "
                         "if its read port were synchronous")
    lut += max(0, model.logic.luts(device.flow, k) - absorbed)
    return Row(name, kind, template, dsp, mults, sum(m.bits for m in model.mems if not m.rom),
               memory, lutram, lut, ff + model.ffs, bram, uram, notes)


def top_io(hw) -> int:
    """Top-level pins: every graph input/output stream (payload, valid, ready), clk, rst."""
    return sum(hw.channels[c].layout.width + 2 for c in hw.inputs + hw.outputs) + 2


def estimate(hw, device) -> Estimate:
    """Per-node and total resource estimate of ``hw`` (a HwGraph) on ``device`` (a
    :class:`~attnflow.targets.devices.Device`, a bundled device name or a device file)."""
    device = load_device(device)
    rows = [_row(i.name, "template", i.template, template_model(i, hw), device)
            for i in hw.instances.values()]
    rows += [_row(f"ch_{c.name}", "channel", "channel", channel_model(c), device)
             for c in hw.channels.values()]
    notes = []
    if device.flow == "xilinx":
        notes.append("Memories have combinational read ports, so Yosys maps them to LUT RAM, "
                     "not block RAM; the exp ROM becomes logic.")
    elif device.flow == "ecp5":
        notes.append("Memories have combinational read ports, so Yosys maps them to "
                     "TRELLIS_DPR16X4 distributed RAM, not EBR; the exp ROM becomes logic.")
    else:
        notes.append("iCE40 has no LUT RAM and its EBR reads are synchronous: every memory "
                     "becomes flip-flops and read multiplexers; the exp ROM becomes logic.")
    notes.append("LUT figures are a rough model (within a small factor); DSP, memory bits, "
                 "LUT RAM and FF follow Yosys' mapping rules.")
    return Estimate(hw.name, device, rows, top_io(hw), notes)


# ----------------------------------------------------------------------------- fit

@dataclass(frozen=True)
class Overflow:
    resource: str
    need: int
    have: int
    device: str

    def __str__(self) -> str:
        pct = 100.0 * self.need / self.have if self.have else float("inf")
        pct_s = f"{pct:.0f}%" if self.have else "none available"
        return (f"{self.resource}: needs {self.need}, {self.device} has {self.have} "
                f"(+{self.need - self.have}, {pct_s})")


def capacity(device: Device) -> dict:
    cap = {"LUT": device.luts, "FF": device.ffs, "DSP": device.dsp.count,
           "BRAM": device.bram.count, "URAM": device.uram.count if device.uram else 0}
    if device.lutram_luts is not None:
        cap["LUTRAM"] = device.lutram_luts
    if device.io is not None:
        cap["IO"] = device.io
    return cap


def fit(est: Estimate, device=None) -> list[Overflow]:
    """Each resource the estimate needs beyond the device's capacity (empty: it fits)."""
    device = load_device(device) if device is not None else est.device
    need = est.totals
    out = []
    for res, have in capacity(device).items():
        if need.get(res, 0) > have:
            out.append(Overflow(res, need[res], have, device.name))
    return out

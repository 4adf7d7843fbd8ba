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
  A pipelined product (``hdl.pipeline.mul``, the full head's) is cut into partial
  products in the RTL already (:attr:`Mult.pieces`), each mapped on its own; its operands
  are registered, so Yosys sees no constant and even a power of two takes blocks.
* **memories**: K/V stores (N x d x bits), FIFO storage (depth x width), register files,
  delay lines and exp ROMs (2**score_frac x exp_bits). FIFOs and register files read
  combinationally (asynchronously), which block RAM cannot (its reads are synchronous):
  on Xilinx they become LUT RAM (RAM32M16: 32 x 14 bits per 8 LUTs, or 32 x 16 with one
  address for reads and writes; RAM64M8: 64 x 7 or 64 x 8), on ECP5 TRELLIS_DPR16X4
  (16 x 4), on iCE40 (no LUT RAM) flip-flops plus read multiplexers; for each the block
  RAMs it would take with a synchronous read port are given as a note. The full head's
  K/V stores and delay lines have registered read ports: block RAM where that is Yosys'
  cheapest mapping (``memory_libmap``'s costs, :func:`map_memory`), else LUT RAM with the
  data register in flip-flops (the N = 32 heads' stores on Xilinx and ECP5). A memory of
  one word is a register. ROMs are pruned from LUT RAM and become logic.
* **LUTs and FFs**: registers are counted exactly (state, pipeline registers, FIFO
  pointers and levels, loop counters; for the pipelined templates what Yosys keeps of
  them: ``targets.pipeline_cost``); LUTs by a rough model of the adders, comparators,
  multiplexers, shifters, dividers and ROMs in each template's datapath (its component),
  with per-flow costs (LUT6 or LUT4). Adders that a DSP block's post-adder absorbs are
  not counted on Xilinx when the product fits one block. The LUT model is within a small
  factor, not exact (see ``compare``).
* **encoder templates** (``linear``, ``layernorm``/``rmsnorm``, ``activation``,
  ``residual_add``, ``fork``, ``concat``): widths from the numerics in each instance's
  params (``LinearParams``, ``NormParams``, ...), the objects the HDL reads. The linear
  weight and bias ROMs and the GELU tables (combinational reads: logic, never LUT RAM or
  block RAM) are costed from their words (:func:`rom_content_luts`). Checked on one
  encoder layer (d_model 16, 2 heads, d_ff 32, PE = SIMD = 4; activation and residual
  adds unfolded and folded to one lane) against Yosys 0.70 ``synth_xilinx``, module by
  module: DSP and FF exact, LUT within 15% per encoder template. There Yosys merges
  products and their adders into one ``$macc`` before DSP mapping, so no adder reaches a
  DSP post-adder, and a constant-operand adder costs a carry chain but no LUT.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

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


#: the "macc" LUT rule's growth per operand was fitted on 3 to 17 operands; wider sums
#: (the encoder's 33..129-operand dot products, measured per module by
#: benchmarks/synth_modules.py) grow no further: without this cap the rule gave 1.4-2.3x
#: the measured LUTs on them
MACC_FIT_OPS = 17


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
    #: count the LUT adders that sum the partial products of a product split over several
    #: blocks (the encoder templates' models; the attention templates' models predate it)
    split_adders: bool = False
    #: a product of ``hdl.pipeline.mul``: its partial products (a_bits, a_signed, b_bits,
    #: b_signed), each mapped on its own; their adder tree is the model's. Its operands are
    #: registered, so Yosys sees no constant operand: a power of two is a multiplier too
    pieces: tuple = ()

    @property
    def is_shift(self) -> bool:
        """A product by a power of two (the accounting's shifts)."""
        return self.const is not None and self.const > 0 and self.const & (self.const - 1) == 0

    @property
    def free_shift(self) -> bool:
        """Yosys makes the product a shift: no multiplier, no LUT."""
        return self.is_shift and not self.pieces

    def operands(self, signed_only: bool) -> tuple[int, int]:
        """Operand widths as Yosys sees them (Amaranth zero-extends the unsigned operand of
        a mixed product; a signed-only block needs one more bit for unsigned operands)."""
        a, b = self.a_bits, self.b_bits
        if self.a_signed != self.b_signed or signed_only:
            a += 0 if self.a_signed else 1
            b += 0 if self.b_signed else 1
        return a, b

    def blocks(self, rules: DspRules) -> int:
        if self.free_shift:
            return 0
        if self.pieces:
            return sum(self.piece_blocks(rules))
        a, b = self.operands(rules.signed_only)
        return dsp_blocks(a, b, a + b, rules)

    def piece_blocks(self, rules: DspRules) -> list[int]:
        """The blocks of each partial product (``pieces``)."""
        return [dsp_blocks(a, b, a + b, rules) for a, b in self.piece_operands(rules.signed_only)]

    def piece_operands(self, signed_only: bool) -> list[tuple[int, int]]:
        return [Mult("", *piece).operands(signed_only) for piece in self.pieces]

    def describe(self) -> str:
        sa = "s" if self.a_signed else "u"
        sb = "s" if self.b_signed else "u"
        b = f"const {self.const}" if self.const is not None else f"{self.b_bits}{sb}"
        cut = f" in {len(self.pieces)} pieces" if len(self.pieces) > 1 else ""
        return f"{self.count} x {self.what} ({self.a_bits}{sa} * {b}){cut}"


# ----------------------------------------------------------------------------- memories

@dataclass(frozen=True)
class Mem:
    what: str
    depth: int
    width: int
    rom: bool = False          # initialised, never written (the exp table)
    #: "comb": a combinational read port (FIFOs, register files); "sync": a registered one
    #: (the address in, the data out a cycle later: the K/V stores, delay lines, exp ROM)
    read: str = "comb"
    #: read and write share one address (a single-port LUT RAM on Xilinx: wider cells)
    one_address: bool = False
    #: a ROM's words when known (the LUTs then follow its contents: :func:`rom_content_luts`),
    #: or a function returning them, called only when the LUTs are wanted (a linear's
    #: weight ROM: millions of weights are packed only for a device estimate)
    init: tuple | None = field(default=None, repr=False, compare=False)
    #: identical ROMs side by side, each with its own address (one per lane)
    copies: int = 1

    @property
    def bits(self) -> int:
        return self.depth * self.width * self.copies


#: Xilinx UltraScale(+) LUT RAM (Yosys lutrams_xcu.txt): depth, bits a cell, LUTs a cell,
#: primitive; simple dual port (a write and a read address) and single port (one address)
_XILINX_LUTRAM = ((32, 14, 8, "RAM32M16"), (64, 7, 8, "RAM64M8"))
_XILINX_LUTRAM_SP = ((32, 16, 8, "RAM32M16"), (64, 8, 8, "RAM64M8"))

#: block RAM geometries Yosys' memory_libmap chooses among for a memory with a registered
#: read port (simple dual port): (depth, width, blocks of the device's BRAM, cost,
#: primitive), and the cost of one LUT RAM cell (brams_xc4v.txt, lutrams_xcu.txt;
#: brams_16kd.txt, lutrams_trellis.txt; ice40/brams.txt). A memory left in logic costs a
#: point a bit; the cheapest mapping wins, logic on a tie.
_BLOCK_RAM = {
    "xilinx": [(16384 // w if w < 9 else 18432 // w, w, 0.5, 129, "RAMB18E2")
               for w in (1, 2, 4, 9, 18, 36)]
    + [(32768 // w if w < 9 else 36864 // w, w, 1, 257, "RAMB36E2")
       for w in (1, 2, 4, 9, 18, 36, 72)],
    "ecp5": [(16384 // w if w < 9 else 18432 // w, w, 1, 128,
              "PDPW16KD" if w == 36 else "DP16KD") for w in (1, 2, 4, 9, 18, 36)],
    "ice40": [(4096 // w, w, 1, 64, "SB_RAM40_4K") for w in (2, 4, 8, 16)],
}
_LUTRAM_CELL_COST = {"xilinx": 16, "ecp5": 4}


def bram_blocks(mem: Mem, device: Device) -> int:
    """Block RAMs the memory would take with a synchronous read port (a note)."""
    br = device.bram
    return max(math.ceil(mem.width / br.max_width), math.ceil(mem.bits / br.bits))


def _block_ram(mem: Mem, flow: str) -> tuple[int, float, int, str]:
    """(cost, blocks of the device's BRAM, cells, primitive) of the cheapest block RAM
    geometry for ``mem``."""
    def option(depth, width, blocks, cost, prim):
        cells = math.ceil(mem.depth / depth) * math.ceil(mem.width / width)
        return cells * cost, cells * blocks, cells, prim
    return min(option(*geometry) for geometry in _BLOCK_RAM[flow])


def _distributed(mem: Mem, device: Device) -> dict:
    """``mem`` in LUT RAM (Xilinx, ECP5) or, on iCE40, in flip-flops with a read mux."""
    out = {"lutram": 0, "ff": 0, "lut": 0, "cells": "", "count": 0}
    if device.flow == "xilinx":
        for depth, width, luts, prim in (_XILINX_LUTRAM_SP if mem.one_address
                                         else _XILINX_LUTRAM):
            if mem.depth <= depth:
                n = math.ceil(mem.width / width)
                out.update(lutram=n * luts, cells=f"{n} x {prim}", count=n)
                return out
        banks = math.ceil(mem.depth / 64)
        n = banks * math.ceil(mem.width / 7)
        out.update(lutram=n * 8, lut=mem.width * math.ceil((banks - 1) / 3),   # LUT6 = 4:1
                   cells=f"{n} x RAM64M8 in {banks} banks", count=n)
        return out
    if device.flow == "ecp5":
        banks = math.ceil(mem.depth / 16)
        n = banks * math.ceil(mem.width / 4)
        out.update(lutram=2 * n, lut=mem.width * (banks - 1),    # 2 RAM-mode LUT4s each
                   cells=f"{n} x TRELLIS_DPR16X4", count=n)
        return out
    # iCE40: no LUT RAM: a register per bit, write decode and a read multiplexer per bit
    out.update(ff=mem.bits, lut=mem.width * (mem.depth - 1) + mem.depth,
               cells=f"{mem.bits} FF + read mux")
    return out


def map_memory(mem: Mem, device: Device, k: int) -> dict:
    """What Yosys does with one memory: {'lutram': LUTs, 'ff': bits, 'lut': logic LUTs,
    'bram': blocks, 'cells': str}. A registered read port is block RAM where that is
    Yosys' cheapest mapping (:data:`_BLOCK_RAM`), else its data register is a flip-flop
    per bit in front of LUT RAM or logic (for the sizes of the attention heads' stores,
    N x d x 8 bits with N = 32, LUT RAM: 10 RAM32M16 against 4 RAMB18 on Xilinx)."""
    out = {"lutram": 0, "ff": 0, "lut": 0, "bram": 0, "uram": 0, "cells": ""}
    read_ffs = mem.width * mem.copies if mem.read == "sync" else 0
    if mem.rom:
        if mem.init is None:
            out["lut"] = mem.copies * rom_luts(mem.depth, mem.width, device.flow, k)
        else:
            out["lut"] = mem.copies * rom_content_luts(mem.init, mem.width, device.flow, k)
        out["ff"] = read_ffs
        n = f"{mem.copies} x " if mem.copies > 1 else ""
        out["cells"] = f"{n}ROM {mem.depth}x{mem.width} as logic ({out['lut']} LUT)"
        return out
    if mem.depth == 1:          # one word (a register file of one row): a register
        out.update(ff=mem.width + read_ffs, cells=f"{mem.width} FF")
        return out
    dist = _distributed(mem, device)
    if mem.read == "sync":
        cost, blocks, cells, prim = _block_ram(mem, device.flow)
        dist_cost = (dist["count"] * _LUTRAM_CELL_COST[device.flow]
                     if device.flow in _LUTRAM_CELL_COST else mem.bits)
        if cost < min(dist_cost, mem.bits):
            out["bram"] = blocks
            out["cells"] = f"{cells} x {prim}"
            return out
    out.update({key: dist[key] for key in ("lutram", "lut", "cells")})
    out["ff"] = dist["ff"] + read_ffs
    if read_ffs:
        out["cells"] += f" + {read_ffs} FF read register"
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


def rom_columns(words, width: int) -> set:
    """The bit columns of a ROM (its words padded with zeros to at least 2, as
    ``templates.linear`` pads them) that need logic: not constant, not an address bit, each
    once (ABC shares equal columns) and up to inversion (an INV cell, not a LUT).
    ``words``: the words, or a function returning them (``Mem.init``)."""
    words = list(words() if callable(words) else words)
    depth = max(2, len(words))
    words += [0] * (depth - len(words))
    addr = set()
    for k in range(clog2(depth)):
        col = tuple((a >> k) & 1 for a in range(depth))
        addr |= {col, tuple(1 - b for b in col)}
    cols = set()
    for b in range(width):
        col = tuple((w >> b) & 1 for w in words)
        if len(set(col)) > 1 and col not in addr:
            cols.add(col if col[0] == 0 else tuple(1 - v for v in col))
    return cols


def rom_register_bits(words, width: int) -> int:
    """Flip-flops of a register right behind a ROM read combinationally (its address a
    register): one per distinct column that is neither constant (the register keeps the
    constant and goes) nor a copy of an address bit (the same value as the address one
    cycle later, which Yosys merges with the address' own delay register); an inverted
    column is a register of its own."""
    words = list(words() if callable(words) else words)
    depth = max(2, len(words))
    words += [0] * (depth - len(words))
    nbytes = max(1, (width + 7) // 8)
    mask = (1 << width) - 1
    raw = np.frombuffer(b"".join((int(w) & mask).to_bytes(nbytes, "little") for w in words),
                        dtype=np.uint8).reshape(depth, nbytes)
    # the columns that need no register: the address bits (distinct, none constant)
    # and the two constants; among the distinct columns of both, all of these are
    addr = np.arange(depth, dtype="<u8").view(np.uint8).reshape(depth, 8)
    special = np.concatenate([_column_matrix(addr, clog2(depth)),
                              _column_matrix(np.zeros((depth, 1), np.uint8), 1),
                              _column_matrix(np.ones((depth, 1), np.uint8), 1)])
    cols = _column_matrix(raw, width)
    return _distinct_rows(np.concatenate([special, cols])) - len(special)


def _column_matrix(raw: np.ndarray, width: int) -> np.ndarray:
    """Row b: bit b of every word (word 0 first; ``raw``: a word's little-endian bytes a
    row), packed little-endian into bytes, for b < width: two columns are equal exactly
    when their rows are (one depth for all)."""
    by_byte = np.ascontiguousarray(raw.T)            # (byte j, word)
    # bit k of byte j over the words, packed: column 8 j + k
    return np.stack([np.packbits((by_byte >> k) & 1, axis=1, bitorder="little")
                     for k in range(8)], axis=1).reshape(len(by_byte) * 8, -1)[:width]


def _distinct_rows(rows: np.ndarray) -> int:
    """How many distinct rows a 2-D uint8 array has: the rows as uint64 words, ordered by
    a hash of their words; equal rows then lie together, so adjacent rows that differ
    count the rest (two different rows with the same hash: sorted by every word)."""
    if len(rows) == 0:
        return 0
    pad = -rows.shape[1] % 8
    keys = np.ascontiguousarray(np.pad(rows, ((0, 0), (0, pad)))).view(np.uint64)
    h = keys[:, 0].copy()
    for j in range(1, keys.shape[1]):
        h = h * np.uint64(0x9E3779B97F4A7C15) ^ keys[:, j]
    order = np.argsort(h)
    hs, ks = h[order], keys[order]
    same_hash = hs[1:] == hs[:-1]
    differ = np.any(ks[1:] != ks[:-1], axis=1)
    if np.any(same_hash & differ):                  # a collision: order by the words
        ordered = keys[np.lexsort(keys.T[::-1])]
        return 1 + int(np.any(ordered[1:] != ordered[:-1], axis=1).sum())
    return 1 + int(differ.sum())


def rom_logic_bits(words, width: int) -> int:
    """Output bits of a ROM with contents ``words`` that need logic (:func:`rom_columns`)."""
    return len(rom_columns(words, width))


def rom_content_luts(words, width: int, flow: str, k: int) -> int:
    """A ROM of known contents as logic: each column of :func:`rom_columns` in pieces of
    2**k words, a LUT per distinct non-constant piece, then a multiplexer over the pieces
    (LUT6: a tree of 4:1 muxes, ABC9 leaves MUXF7/F8 mostly unused; iCE40: 2:1 muxes;
    ECP5: PFUMX/L6MUX combine four). Yosys 0.70 synth_xilinx: a 256 x 8 GELU table 26 LUT
    (this: 28), 1024 x 16 96 (130); linear weight ROMs of 8 and 32 words exact."""
    size = 1 << k
    total = 0
    for col in rom_columns(words, width):
        pieces = [col[i:i + size] for i in range(0, len(col), size)]
        total += len({pc for pc in pieces if len(set(pc)) > 1})
        n = len(pieces)
        if flow == "xilinx":
            total += math.ceil((n - 1) / 3)
        elif flow == "ice40":
            total += n - 1
        else:
            total += max(0, math.ceil(n / 4) - 1)
    return total


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
            elif kind == "addc":       # adder with a constant operand (rounding, C - x, -x):
                c = 0 if flow == "xilinx" else w   # the carry chain's propagate input is the
                # other operand (or an INV cell, not a LUT); LUT4 flows pay a LUT a bit
            elif kind == "macc":       # sum of extra[0] operands (Yosys alumacc + maccmap: a
                ops = extra[0]         # carry-save tree of full adders, then one adder);
                if ops <= 2:           # fitted to Yosys 0.70 synth_xilinx, 3 to 17 operands
                    c = w
                elif k >= 6:
                    c = w + round(w * (ops - 2) * (1 + min(ops, MACC_FIT_OPS) / 30))
                else:
                    c = w + 2 * w * (ops - 2)
            elif kind == "muxn":       # extra[0]:1 multiplexer: ABC9 spends about a LUT6 per
                ins = extra[0]         # two data inputs (Yosys 0.70 synth_xilinx, a bit:
                c = w * (1 if ins <= 4 and k >= 6 else math.ceil((ins - 1) / 2) if k >= 6
                         else ins - 1)  # 8:1 3 LUT, 16:1 5.8, 32:1 14.7, 64:1 30); 2:1 a LUT4
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
    #: registered copies of named values: value -> (bits, longest delay)
    held: dict = field(default_factory=dict)

    def hold(self, value: str, width: int, stages: int, count: int = 1) -> "NodeModel":
        """``count`` values of ``width`` bits named ``value`` registered ``stages`` times in
        a row. Yosys merges registers with the same input, so every consumer of a value's
        k-th copy shares it: a value costs its width times its longest delay, however many
        times it is held."""
        bits, longest = self.held.get(value, (width * count, 0))
        self.held[value] = (bits, max(longest, stages))
        return self

    @property
    def register_bits(self) -> int:
        """Every flip-flop of the node's logic (memories' own are their mapping's)."""
        return self.ffs + sum(bits * stages for bits, stages in self.held.values())


def exp_cost(model: NodeModel, nm, z_bits: int):
    """``hdl.datapath.exp_hw``: z * log2(e), round, ROM of 2**-frac, shift by the integer part."""
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
    if contract.sequences > 1 and not contract.stream:  # the sequence counter
        bits = clog2(contract.sequences)
        model.ffs += bits
        model.logic.add("add", bits).add("cmpc", bits)
    ports = len(contract.inputs) + len(contract.outputs)
    model.logic.add("gate", 2 + ports)
    if contract.ii > 1:
        model.ffs += clog2(contract.ii)


# ----------------------------------------------------------------------------- cost helpers
#
# Shared by the templates' resource models (each in its family module under templates/).
# For the encoder templates (``linear``, ``layernorm``/``rmsnorm``, ``activation``,
# ``residual_add``, ``fork``, ``concat``) every width comes from the numerics object in
# the instance params (``LinearParams``, ``NormParams``, ``ActivationParams``,
# ``ResidualParams``), the one the HDL reads; signal widths are Amaranth's (a product of a
# signed and an unsigned operand is one bit wider than the sum of their widths;
# ``requant_hw`` of a W-bit value gives W + 1 - shift bits).
# Measured against Yosys 0.70 synth_xilinx (one encoder layer, per module):
#
# * products and the adders that sum them become one ``$macc`` (alumacc) before DSP
#   mapping, so no adder goes into a DSP post-adder: a dot product is the "macc" kind;
# * an adder with a constant operand (rounding, ``C - x``, negation) costs no LUT on
#   Xilinx ("addc"); a comparison with a format's bound is a check of the top bits.


def requant_cost(model: NodeModel, width: int, shift: int, count: int = 1) -> int:
    """``hdl.datapath.requant_hw`` of a ``width``-bit value: the rounding adder (a
    constant operand; its carry chain starts at bit shift - 1) and a free shift. Returns
    the result's width."""
    if shift > 0:
        model.logic.add("addc", width - shift + 1, count)
        return width + 1 - shift
    return width - shift


def saturate_cost(model: NodeModel, width: int, fmt, count: int = 1):
    """``hdl.datapath.saturate_hw`` of a ``width``-bit value to ``fmt``: the comparisons
    with fmt's bounds are one check that the top width - bits + 1 bits agree, and each
    output bit is a LUT of (overflow, sign, bit); nothing when the value fits ``fmt``
    (the comparisons are constant and Yosys drops them)."""
    if width > fmt.bits:
        model.logic.add("gate", math.ceil((width - fmt.bits + 1) / 5), count)
        model.logic.add("mux", fmt.bits, count)


def rescale_cost(model: NodeModel, num, count: int) -> int:
    """``hdl.datapath.rescale_hw``: ``saturate(requant(x * mult, shift), out)``. Returns the
    width of the significant bits of the result (<= ``num.out.bits``)."""
    w = num.x.bits
    if num.mult != 1:
        model.mults.append(Mult("x*mult", w, True, num.mult.bit_length(), False, count,
                                const=num.mult, split_adders=True))
        w += num.mult.bit_length() + 1
    w = requant_cost(model, w, num.shift, count)
    saturate_cost(model, w, num.out, count)
    return min(w, num.out.bits)


def lanes_cost(m: NodeModel, inst, hw, p, ports) -> int:
    """``hdl.datapath.lane_rows``: a template folded to D / fires lanes keeps each input
    row but its first chunk in a shift register (a 2:1 mux per bit: load or shift; costed
    here as a fires-way select, which comes out similar) with registered load and shift
    flags, and shifts the results into fires - 1 chunks of the output row. Returns the
    lanes (elements computed a firing)."""
    fires = getattr(p, "fires", 1)
    lanes = p.dim // fires
    if fires > 1:
        ch = hw.port_channels(inst.name)
        for port in ports:
            lay = ch[port].layout
            # the row register: its chunk 0 is never read (firing 0 takes the live row)
            m.ffs += lay.width - lay.width // fires
            m.logic.add("muxn", lay.width // fires, 1, 2 * fires)
        m.ffs += (fires - 1) * lanes * p.y_layout().fields[0].bits
        m.logic.add("gate", fires - 1)                  # their write enables
        m.ffs += 2                                      # the row registers' load, shift
    return lanes


# ----------------------------------------------------------------------------- instances, channels

def template_model(inst, hw) -> NodeModel:
    """The instance's resources: its sequencer plus its template's ``resources`` facet
    (``mappers.catalog``; an unknown template is an error there, never counted as 0)."""
    from ..mappers.catalog import facet
    m = NodeModel()
    _sequencer(m, inst.contract)
    facet(inst.template, "resources")(m, inst, hw)
    return m


def template_models(hw) -> dict[str, NodeModel]:
    """name -> :func:`template_model` of every instance of ``hw``; a frozen graph keeps
    them (the report's multiplier, memory and per-node figures all read them: not
    made again for each). The models are shared: read them, do not change them."""
    if hw.frozen and "_template_models" in hw.__dict__:
        return hw.__dict__["_template_models"]
    models = {name: template_model(inst, hw) for name, inst in hw.instances.items()}
    if hw.frozen:
        object.__setattr__(hw, "_template_models", models)
    return models


def channel_model(c, stages: int = 0) -> NodeModel:
    """``hdl.channel.Channel``: a SyncFIFO (storage, two pointers, a level); with a latency
    above 1 (or a single slot), the occupancy and its registered "a slot is free" flag, and
    a line of ``latency - 1 - stages`` registers (data and valid) in front of the storage
    (``stages``: the producer's pipeline stages, which make up the rest of the latency)."""
    m = NodeModel()
    w = c.layout.width
    m.mems.append(Mem("FIFO", c.depth, w))
    ptr = clog2(max(c.depth, 2))
    lvl = clog2(max(c.depth, 2) + 1)
    m.ffs += 2 * ptr + lvl
    m.logic.add("add", ptr, 2).add("cmpc", ptr, 2).add("add", lvl, 2).add("cmpc", lvl, 2)
    if c.latency > 1 or c.depth < 2:
        occ = clog2(c.depth + 1)
        m.ffs += occ + 1 + (c.latency - 1 - stages) * (w + 1)
        m.logic.add("add", occ, 2).add("cmpc", occ)
    return m


def producer_stages(hw, c) -> int:
    """The pipeline stages of the channel's producer (its component's ``stages``, as
    ``hdl.top`` builds the channel); 0 for a design input."""
    if c.src is None:
        return 0
    from ..hdl.templates import of_graph
    comp = of_graph(hw.instances[c.src[0]], hw)
    comp._MustUse__silence = True       # built to be asked, never elaborated
    return comp.stages(c.src[1])


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
        if mu.free_shift:
            mults.append(f"{mu.describe()}: shift")
            continue
        dsp += blocks * mu.count
        a, b = mu.operands(rules.signed_only)
        if mu.pieces:
            for (pa, pb), n in zip(mu.piece_operands(rules.signed_only), mu.piece_blocks(rules)):
                if n == 0:
                    model.logic.add("soft_mul", pa, mu.count, pb)
        elif blocks == 0:
            model.logic.add("soft_mul", a, mu.count, b)
        elif blocks > 1 and mu.split_adders:
            # mul2dsp's partial products meet in LUT adders as wide as the product above
            # the first slice (Yosys 0.70 synth_xilinx: 20x20 -> 2 DSP48E2 + 22 LUT,
            # 40x14 -> 2 + 36, 21x21 -> 2 + 25)
            step = rules.a_partial - (1 if rules.signed_only else 0)
            model.logic.add("add", a + b - step, (blocks - 1) * mu.count)
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
        if mem.read == "comb" and not mem.rom and got["bram"] == 0:
            notes.append(f"{mem.what}: {bram_blocks(mem, device)} {device.bram.primitive or 'BRAM'} "
                         "if its read port were synchronous")
    lut += max(0, model.logic.luts(device.flow, k) - absorbed)
    return Row(name, kind, template, dsp, mults, sum(m.bits for m in model.mems if not m.rom),
               memory, lutram, lut, ff + model.register_bits, bram, uram, notes)


def top_io(hw) -> int:
    """Top-level pins: every graph input/output stream (payload, valid, ready), clk, rst."""
    return sum(hw.channels[c].layout.width + 2 for c in hw.inputs + hw.outputs) + 2


def estimate(hw, device) -> Estimate:
    """Per-node and total resource estimate of ``hw`` (a HwGraph) on ``device`` (a
    :class:`~attnflow.targets.devices.Device`, a bundled device name or a device file)."""
    device = load_device(device)
    rows = [_row(i.name, "template", i.template, template_model(i, hw), device)
            for i in hw.instances.values()]
    rows += [_row(f"ch_{c.name}", "channel", "channel",
                  channel_model(c, producer_stages(hw, c)), device)
             for c in hw.channels.values()]
    notes = []
    if device.flow == "xilinx":
        notes.append("Memories with combinational read ports (FIFOs, register files) map to LUT "
                     "RAM, not block RAM; those with registered ones (K/V stores, delay lines) "
                     "to block RAM only where Yosys finds it cheaper; the exp ROM becomes logic.")
    elif device.flow == "ecp5":
        notes.append("Memories with combinational read ports (FIFOs, register files) map to "
                     "TRELLIS_DPR16X4 distributed RAM, not EBR; those with registered ones (K/V "
                     "stores, delay lines) to EBR only where Yosys finds it cheaper; the exp ROM "
                     "becomes logic.")
    else:
        notes.append("iCE40 has no LUT RAM and its EBR reads are synchronous: memories with "
                     "combinational read ports become flip-flops and read multiplexers, those "
                     "with registered ones EBR where Yosys finds it cheaper; the exp ROM becomes "
                     "logic.")
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

"""The ``linear`` template: y = x W^T + b on a PE x SIMD folded MAC array (FINN MVAU style).

A token is one whole row: the input port ``x`` carries K elements, the output port ``y``
carries M elements (field ``x`` on both, like every row-vector token). Each firing does
PE x SIMD multiply-accumulates: PE output neurons (a *group*) times SIMD input elements
(a *chunk*). A row takes ``F = (M / PE) * (K / SIMD)`` firings:

    firing f of a row: group p = f // (K/SIMD), chunk s = f % (K/SIMD)

The row is taken on the row's first firing (``x``: FIRST) and the M results leave on its
last (``y``: LAST). Weights sit in an on-chip ROM of F words of PE x SIMD weights,
addressed by f; biases in a ROM of M/PE words (``ir.numerics_linear`` packs both).

Timing contract: one phase ``rows``, loops ``(("i", N), ("f", F))``, ii 1, latency
``latency("linear")`` (its TemplateDef, :data:`TEMPLATE_DEFS`): :data:`LINEAR_STAGES`
registered stages and the output channel's visibility cycle. The stage count is the same
for every instance (the encoder's cycle models take one latency for all its linears);
:func:`stage_plan` spreads each instance's datapath over it and pads the rest. Without
stalls a standalone layer fed through an input channel of latency 1 finishes in ``N * F
+ 1 + latency("linear")`` cycles (reset to last output, inclusive).

Behavioural model: the N input rows give N output rows by
``ir.numerics_linear.linear_golden``, the same function the ROM contents come from. The
numerics, weights and bias come from the instance's params (:class:`LinearParams`), not
from ``hw.numerics`` (the attention numerics of the design), in the model, the component
and the resource model alike.

Component, per firing, with group p and chunk s (kept by two small counters that step
with the firings), as registered stages (``hdl.pipeline``; the firing reserves its output
slot, so the stages never stall and advance every cycle):

* the input row is the live ``x`` payload on the row's first firing, then a register;
  its chunk s (SIMD elements) and the weight ROM word f (PE x SIMD weights, read
  combinationally) are registered (``READ_STAGES``), then the products' operands;
* PE x SIMD products (``mul``), then each PE row's adder tree (``tree_sum``);
* the accumulation, whose register is the stage's: ``acc_j = (s == 0 ? b_j : acc_j) +
  dot_j``, the bias ROM word p read the cycle before and registered;
* the requantization product by the multiplier (a constant, or with per-channel
  multipliers, ``LinearNumerics.per_channel``, the multiplier ROM word p), the rounding,
  the saturation, each registered, then the padding to LINEAR_STAGES;
* a finished group (s == K/SIMD - 1) goes into the output row register at group p; the
  row's token is that register plus the last group, LINEAR_STAGES cycles after the
  row's last firing.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from amaranth.hdl import Cat, Const, Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory

from ..hdl import pipeline as P
from ..hdl.datapath import elems, requant_hw, saturate_hw
from ..hdl.templates import Template
from ..ir.numerics import clog2
from ..ir.numerics_linear import LinearNumerics, bias_rom, linear_golden, mult_rom, weight_rom
from ..ir.types import IntArray
from ..mappers.catalog import TemplateDef, latency
from ..mappers.contracts import FIRST, FOLD, LAST, ROW, ROWS, Contract, Phase
from ..mappers.hwgraph import Field, Instance, Layout
from ..targets.estimate import (Mem, NodeModel, requant_cost, rom_register_bits,
                                saturate_cost)
from ..targets.pipeline_cost import Span, mul_cost, staged_valid, tree_cost

TEMPLATE = "linear"


def divisors(n: int) -> list[int]:
    return list(_divisors(n))


@lru_cache(maxsize=1024)
def _divisors(n: int) -> tuple[int, ...]:
    return tuple(d for d in range(1, n + 1) if n % d == 0)


def check_folding(k: int, m: int, pe: int, simd: int) -> None:
    """Raise ValueError (one line naming the parameter and its allowed values) unless PE
    divides M and SIMD divides K."""
    for name, v in (("K", k), ("M", m)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"linear: {name} must be an integer >= 1, got {v!r}")
    for name, v, total, tname in (("PE", pe, m, "M"), ("SIMD", simd, k, "K")):
        allowed = divisors(total)
        if not isinstance(v, (int, np.integer)) or v not in allowed:
            raise ValueError(f"linear: {name} must divide {tname} = {total}: allowed "
                             f"{name} values are {', '.join(map(str, allowed))}; got {v!r}")


def fold(k: int, m: int, pe: int, simd: int) -> int:
    """Firings per row: (M / PE) * (K / SIMD)."""
    check_folding(k, m, pe, simd)
    return (m // pe) * (k // simd)


def linear_contract(n: int, k: int, m: int, pe: int, simd: int) -> Contract:
    """N rows; each row: take x on the first of F firings, emit y on the last."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"linear: N must be an integer >= 1, got {n!r}")
    f = fold(k, m, pe, simd)
    return Contract(TEMPLATE, ("x",), ("y",), (
        Phase(ROWS, ((ROW, n), (FOLD, f)), (("x", FIRST), ("y", LAST))),
    ), latency=latency(TEMPLATE))


def x_layout(num: LinearNumerics) -> Layout:
    return Layout((Field("x", num.x.bits, True, num.k),))


def y_layout(num: LinearNumerics) -> Layout:
    return Layout((Field("x", num.y.bits, True, num.m),))


@dataclass(frozen=True)
class LinearParams:
    """Everything one ``linear`` instance needs: rows, folding, numerics, weights, bias.

    ``weights``: M rows of K stored integers (format ``numerics.w``); ``bias``: M stored
    integers (``numerics.bias``, accumulator scale). ``ir.types.IntArray`` (or tuples), so
    the whole object is hashable and fits ``Instance.params``; build it with :meth:`make`
    from arrays.
    """
    n: int
    pe: int
    simd: int
    numerics: LinearNumerics
    weights: IntArray | tuple
    bias: IntArray | tuple

    def __post_init__(self):
        num = self.numerics
        if not isinstance(num, LinearNumerics):
            raise ValueError(f"linear: numerics must be a LinearNumerics, got {type(num).__name__}")
        if not isinstance(self.n, (int, np.integer)) or self.n < 1:
            raise ValueError(f"linear: N must be an integer >= 1, got {self.n!r}")
        check_folding(num.k, num.m, self.pe, self.simd)
        stage_plan(num, self.simd)
        w, b = self.w_array(), self.b_array()
        if w.shape != (num.m, num.k):
            raise ValueError(f"linear: weights must be M x K = {num.m} x {num.k}, got "
                             f"{'x'.join(map(str, w.shape))}")
        if b.shape != (num.m,):
            raise ValueError(f"linear: bias must have M = {num.m} elements, got {b.size}")
        for what, arr, fmt in (("weights", w, num.w), ("bias", b, num.bias)):
            if arr.size and (arr.min() < fmt.min_int or arr.max() > fmt.max_int):
                raise ValueError(f"linear: {what} must be stored integers of {fmt} "
                                 f"({fmt.min_int}..{fmt.max_int}), got {arr.min()}..{arr.max()}")

    @classmethod
    def make(cls, n, pe, simd, numerics, weights, bias=None) -> "LinearParams":
        """From arrays: weights (M, K); bias (M,) or None (zeros)."""
        w = np.asarray(weights)
        w = w if w.dtype.kind == "i" else w.astype(np.int64)
        if w.ndim != 2:
            raise ValueError(f"linear: weights must be a 2-d array (M, K), got shape {w.shape}")
        b = np.zeros(w.shape[0], dtype=np.int64) if bias is None else \
            np.asarray(bias, dtype=np.int64).reshape(-1)
        return cls(int(n), int(pe), int(simd), numerics, IntArray(w), IntArray(b))

    # --- derived
    @property
    def k(self) -> int:
        return self.numerics.k

    @property
    def m(self) -> int:
        return self.numerics.m

    @property
    def groups(self) -> int:
        """M / PE: output-neuron groups per row."""
        return self.m // self.pe

    @property
    def chunks(self) -> int:
        """K / SIMD: input chunks per group."""
        return self.k // self.simd

    @property
    def fold(self) -> int:
        """F = groups * chunks: firings (cycles at full rate) per row."""
        return self.groups * self.chunks

    def w_array(self) -> np.ndarray:
        """The (M, K) weights (read-only; the stored integer type, e.g. int8)."""
        if isinstance(self.weights, IntArray):
            return self.weights.array
        return np.asarray(self.weights, dtype=np.int64).reshape(len(self.weights), -1)

    def b_array(self) -> np.ndarray:
        if isinstance(self.bias, IntArray):
            return self.bias.array.reshape(-1)
        return np.asarray(self.bias, dtype=np.int64).reshape(-1)

    def contract(self) -> Contract:
        return linear_contract(self.n, self.k, self.m, self.pe, self.simd)

    def instance(self, name: str) -> Instance:
        """The HwGraph instance: the parameters as (key, value) pairs, all hashable."""
        params = {"N": self.n, "K": self.k, "M": self.m, "PE": self.pe, "SIMD": self.simd,
                  "numerics": self.numerics, "weights": self.weights, "bias": self.bias}
        return Instance(name, TEMPLATE, self.contract(), tuple(sorted(params.items())))

    @classmethod
    def of(cls, inst: Instance) -> "LinearParams":
        """Back from an instance made by :meth:`instance`."""
        if inst.template != TEMPLATE:
            raise ValueError(f"{inst.name}: not a {TEMPLATE} instance ({inst.template})")
        p = cls(inst.param("N"), inst.param("PE"), inst.param("SIMD"), inst.param("numerics"),
                inst.param("weights"), inst.param("bias"))
        if (p.k, p.m) != (inst.param("K"), inst.param("M")):
            raise ValueError(f"{inst.name}: K, M params disagree with the numerics")
        return p


# ---------------------------------------------------------------- behavioural model

def linear_model(inst, nm, ins):
    p = LinearParams.of(inst)
    x = np.asarray(ins["x"]["x"], dtype=np.int64).reshape(-1, p.k)
    return {"y": {"x": linear_golden(x, p.w_array(), p.b_array(), p.numerics)}}


# ---------------------------------------------------------------- stages

#: pipeline stages of every ``linear`` (its latency less the output channel's visibility
#: cycle): fixed, so one latency serves every instance and every cycle model; a datapath
#: needing fewer pads its output (:func:`stage_plan`)
LINEAR_STAGES = 12


@dataclass(frozen=True)
class StagePlan:
    """Where the stages of a ``linear`` go (``hdl.pipeline`` blocks), as cycles after the
    firing: the chunk and weight word registered (READ_STAGES: the ROM read ends at a
    flip-flop, not at a multiplier's input), the products (``mul``: operands registered,
    then the product), the adder tree over SIMD of them (``tree`` stages, ``per_stage``
    levels each), the accumulation (its register: stage ``acc`` + 1), the
    requantization product (``scale`` stages, 0 when the multiplier is 1), the rounding,
    the saturation and ``pad`` stages of delay."""
    mul: int
    tree: int
    per_stage: int
    scale: int
    pad: int

    @property
    def acc(self) -> int:
        """Cycle (after the firing) of the accumulation: the dot product's arrival."""
        return READ_STAGES + self.mul + self.tree


#: the chunk of x and the weight ROM word, registered before the products
READ_STAGES = 1


def stage_plan(num: LinearNumerics, simd: int) -> StagePlan:
    """The stage plan of a ``linear`` with these numerics and SIMD in LINEAR_STAGES
    stages: the adder tree gets the stages the rest leaves, one level a stage while they
    suffice, else as many levels a stage as it takes. Raises ValueError (one line) when
    the products and the requantization alone need more."""
    mul = P.mul_stages(num.x.bits, num.w.bits)
    if num.per_channel:
        scale = P.mul_stages(num.acc_bits, num.mult_max.bit_length())
    elif num.mult != 1:
        scale = P.mul_stages(num.acc_bits, num.mult.bit_length())
    else:
        scale = 0
    # read, products, accumulation, scale, round, saturate
    fixed = READ_STAGES + mul + 1 + scale + 2
    levels = P.tree_levels(simd)
    budget = LINEAR_STAGES - fixed
    room = LINEAR_STAGES - (1 if levels else 0)     # the tree needs a stage of its own
    if fixed > room:
        raise ValueError(f"linear: {num.x.bits}-bit x {num.w.bits}-bit products and a "
                         f"{num.acc_bits}-bit requantization need {fixed} pipeline stages "
                         f"besides the adder tree; at most {room} fit (narrower formats "
                         f"or mult_bits)")
    per_stage = max(1, -(-levels // budget)) if levels else 1
    tree = P.tree_stages(simd, per_stage)
    return StagePlan(mul, tree, per_stage, scale, budget - tree)


# ---------------------------------------------------------------- component

def _rom(m, name, width, words):
    """A ROM with a combinational read port; depth >= 2 keeps the address >= 1 bit."""
    words = list(words) + [0] * max(0, 2 - len(words))
    rom = Memory(shape=unsigned(width), depth=len(words), init=words)
    m.submodules[name] = rom
    return rom.read_port(domain="comb")


def _step_counter(m, fire, extent, name, enable=1):
    """A counter 0..extent-1 stepping on ``fire & enable`` (the constant 0 if extent is 1),
    and the condition 'at its last value'."""
    if extent == 1:
        return 0, 1
    ctr = Signal(range(extent), name=name)
    at_end = ctr == extent - 1
    with m.If(fire & enable):
        m.d.sync += ctr.eq(Mux(at_end, 0, ctr + 1))
    return ctr, at_end


def _select(m, sel, options, like, name):
    """``options[sel]`` for a list of equal-length lists of Values, into fresh signals."""
    if len(options) == 1:
        return options[0]
    outs = [Signal(like, name=f"{name}{t}") for t in range(len(options[0]))]
    with m.Switch(sel):
        for i, opt in enumerate(options):
            # the last option as the default: a complete case (Verilator's CASEINCOMPLETE)
            with (m.Case(i) if i < len(options) - 1 else m.Default()):
                m.d.comb += [o.eq(v) for o, v in zip(outs, opt)]
    return outs


class Linear(Template):
    """y = saturate(requant((x W^T + b) * mult, shift)) per row, PE x SIMD MACs a firing,
    in :data:`LINEAR_STAGES` registered stages (:func:`stage_plan`)."""

    def __init__(self, inst, nm, ports):
        self.params = LinearParams.of(inst)
        self.plan = stage_plan(self.params.numerics, self.params.simd)
        super().__init__(inst, nm, ports)

    def stages(self, port) -> int:
        return LINEAR_STAGES

    def datapath(self, m, seq):
        p, plan = self.params, self.plan
        num = p.numerics
        pe, simd, groups, chunks = p.pe, p.simd, p.groups, p.chunks
        fire = seq.fire

        # position within the row: chunk s, group p (in step with the sequencer's f)
        s, s_end = _step_counter(m, fire, chunks, "chunk")
        g, _ = _step_counter(m, fire, groups, "group", enable=s_end)
        s_first = (s == 0) if chunks > 1 else 1

        def line(v, n, name):
            """[v, v one cycle later, ..., v n cycles later] (constants stay)."""
            out = [v]
            for k in range(n):
                out.append(out[-1] if isinstance(out[-1], int) else
                           P.reg(m, out[-1], f"{name}_d{k + 1}"))
            return out

        last = LINEAR_STAGES
        fire_at = line(fire, last, "fire")
        first_at = line(s_first, plan.acc, "first")
        end_at = line(s_end, last, "send")
        g_at = line(g, last, "g")

        # the input row: live on the first firing, then held
        xl = self.layout("x")
        x_reg = Signal(xl.width)
        with m.If(fire & seq.use["x"]):
            m.d.sync += x_reg.eq(self.x.payload)
        # one named row (slicing the Mux expression per element would copy the whole
        # row-wide mux once per element in the emitted Verilog)
        x_row = Signal(xl.width)
        m.d.comb += x_row.eq(Mux(seq.first, self.x.payload, x_reg))
        xs = elems(x_row, xl, "x")
        xc = _select(m, s, [xs[c * simd:(c + 1) * simd] for c in range(chunks)],
                     signed(num.x.bits), "xc")

        # weight ROM word f: W[p*PE + j, s*SIMD + t] at (j*SIMD + t) * w.bits, read in the
        # firing cycle into a register (READ_STAGES), then the products' operand registers
        wb, bb = num.w.bits, num.bias.bits
        wrp = _rom(m, "wrom", pe * simd * wb, weight_rom(p.w_array(), pe, simd, num))
        m.d.comb += wrp.addr.eq(seq.counter[(ROWS, FOLD)])
        # bias ROM word p, read the cycle before the accumulation and registered
        brp = _rom(m, "brom", pe * bb, bias_rom(p.b_array(), pe, num))
        m.d.comb += brp.addr.eq(g_at[plan.acc - 1])
        b_reg = P.reg(m, brp.data, "bias")
        mb = num.mult_max.bit_length()
        if num.per_channel:     # one multiplier per output channel: word p, PE of them
            mrp = _rom(m, "mrom", pe * mb, mult_rom(pe, num))
            m.d.comb += mrp.addr.eq(g_at[plan.acc + 1])

        w_r = P.delay(m, wrp.data, READ_STAGES, "wword")
        xc_r = [P.delay(m, a, READ_STAGES, f"xc{t}_r") for t, a in enumerate(xc)]
        ys = []
        for j in range(pe):
            ws = [w_r[(j * simd + t) * wb:(j * simd + t + 1) * wb].as_signed()
                  for t in range(simd)]
            prods = [P.mul(m, a, w, f"xw{j}_{t}") for t, (a, w) in enumerate(zip(xc_r, ws))]
            dot = P.tree_sum(m, prods, f"dot{j}", plan.per_stage)
            # the accumulator is the stage register of the accumulation
            acc = Signal(signed(num.acc_bits), name=f"acc{j}")
            bias = b_reg[j * bb:(j + 1) * bb].as_signed()
            with m.If(fire_at[plan.acc]):
                m.d.sync += acc.eq(Mux(first_at[plan.acc], bias, acc) + dot)
            if num.per_channel:
                scaled = P.mul(m, acc, mrp.data[j * mb:(j + 1) * mb], f"scale{j}")
            elif num.mult != 1:
                scaled = P.mul(m, acc, Const(num.mult), f"scale{j}")
            else:
                scaled = acc
            rounded = requant_hw(scaled, num.shift)
            r = P.reg(m, rounded, f"round{j}")
            y = P.reg(m, saturate_hw(r, num.y), f"sat{j}", signed(num.y.bits))
            ys.append(P.delay(m, y, plan.pad, f"y{j}"))

        # the output row: groups 0 .. groups-2 registered, the last one from this stage
        row = [[Signal(signed(num.y.bits), name=f"row{q}_{j}") for j in range(pe)]
               for q in range(groups - 1)]
        for q, regs in enumerate(row):
            with m.If(fire_at[last] & end_at[last] & (g_at[last] == q)):
                m.d.sync += [r.eq(y) for r, y in zip(regs, ys)]
        m.d.comb += [self.y.payload.eq(Cat(*[r for regs in row for r in regs], *ys)),
                     self.y.data_valid.eq(self.staged_valid(m, seq, "y"))]


# ---------------------------------------------------------------- resource model

def linear_resources(m: NodeModel, inst, hw) -> None:
    """:class:`Linear`, stage by stage (:func:`stage_plan`): the input row register and
    its chunk select, the ROMs, PE x SIMD registered products and their adder trees, the
    bias register and the accumulators, the requantization products, the rounding and
    saturation registers, the padding, the output row registers and the control carried
    along (``targets.pipeline_cost``: what Yosys keeps of each block)."""
    p = LinearParams.of(inst)
    num = p.numerics
    plan = stage_plan(num, p.simd)
    pe, simd, groups, chunks = p.pe, p.simd, p.groups, p.chunks
    # the chunk and group counters; one that steps like the sequencer's f counter (the
    # only one of the two with extent > 1) is merged with it by Yosys
    if chunks > 1 and groups > 1:
        for extent in (chunks, groups):
            bits = clog2(extent)
            m.ffs += bits
            m.logic.add("add", bits).add("cmpc", bits)
    xw = hw.port_channels(inst.name)["x"].layout.width
    if p.fold > 1:      # the input row register; with one group its chunk 0 is never read
        m.ffs += xw if groups > 1 else xw - xw // chunks
    # the live payload or the register, then the chunk: one (2 x chunks):1 mux per bit
    m.logic.add("muxn", simd * num.x.bits, 1, 2 * chunks if p.fold > 1 else 1)
    width = pe * simd * num.w.bits
    m.mems.append(Mem("weight ROM", max(2, p.fold), width, rom=True,
                      init=lambda: tuple(weight_rom(p.w_array(), pe, simd, num))))
    words = bias_rom(p.b_array(), pe, num)
    bb = num.bias.bits
    m.mems.append(Mem("bias ROM", max(2, len(words)), pe * bb, rom=True, init=tuple(words)))
    ab, xb, wb = num.acc_bits, num.x.bits, num.w.bits
    # the products' operands: the chunk (shared by the PE rows) and the weights, then
    # the products and the adder tree of each PE row (the accumulator reads acc_bits)
    m.hold("x chunk", simd * xb, READ_STAGES + 1)
    # the weights, READ_STAGES registers and the operand registers
    m.ffs += (READ_STAGES + 1) * rom_register_bits(m.mems[0].init, pe * simd * wb)

    mul_cost(m, "x*w", (xb, True), (wb, True), pe * simd)
    tree_cost(m, [Span(0, xb + wb, True)] * simd, pe, high=ab, per_stage=plan.per_stage)
    m.ffs += rom_register_bits(words, pe * bb)                       # the bias register
    m.logic.add("mux", ab, pe).add("add", ab, pe)
    m.ffs += pe * ab                                    # accumulators
    w = ab
    mb = num.mult_max.bit_length()
    if num.per_channel:         # a multiplier per channel from a ROM: variable products
        m.mems.append(Mem("mult ROM", max(2, groups), pe * mb, rom=True,
                          init=tuple(mult_rom(pe, num))))
        m.hold("acc operand", pe * ab, 1)
        m.ffs += rom_register_bits(m.mems[-1].init, pe * mb)
        w = mul_cost(m, "acc*mult", (ab, True), (mb, False), pe,
                     low=max(0, num.shift - 1))
    elif num.mult != 1:
        m.hold("acc operand", pe * ab, 1)
        w = mul_cost(m, "acc*mult", (ab, True), (num.mult.bit_length(), False), pe,
                     low=max(0, num.shift - 1), const=num.mult)
    rounded = requant_cost(m, w, num.shift, pe)
    m.ffs += pe * rounded                               # the rounding register
    saturate_cost(m, rounded, num.y, pe)
    m.hold("y", pe * num.y.bits, 1 + plan.pad)          # saturation register, padding
    # the control carried along: fire, the row's last chunk and the group to the output
    # row, the first chunk to the accumulation
    last = LINEAR_STAGES
    m.hold("fire", 1, last)
    if chunks > 1:
        m.hold("first chunk", 1, plan.acc)
        if groups > 1:
            m.hold("last chunk", 1, last)
    if groups > 1:
        m.hold("group", clog2(groups), last)
    m.ffs += (groups - 1) * pe * num.y.bits             # the output row, last group live
    m.logic.add("gate", groups - 1)                     # its write enables
    staged_valid(m, last)


TEMPLATE_DEFS = (
    TemplateDef(TEMPLATE, LINEAR_STAGES + 1, LinearParams, linear_model, Linear, linear_resources,
                "LINEAR_STAGES registered stages: PE x SIMD products, their adder tree, the "
                "accumulation with the bias, the requantization product, round, saturate "
                "(padded to a fixed count), and the output channel's visibility cycle"),
)

"""The ``activation`` template: ``fn`` on each of a row's D elements, ``gelu``
(``ir.numerics_norm.GeluNumerics``: a ROM or I-BERT's polynomial, per ``kind``),
``relu`` or ``rescale`` (``RescaleNumerics``: ReLU then the requantization, or the
requantization alone).

One row in, one row out (the row contract of ``templates.rows``); folded to ``lanes`` <
D it takes D / lanes firings a row (``hdl.datapath.lane_rows``). The numerics travel in
the instance params (:class:`ActivationParams`); the model is ``ir.numerics_norm``'s
golden function, the component its arithmetic in hardware (``gelu_hw``, ``gate_hw``,
``relu_hw``, ``rescale_hw``), bit-exact with it, in :data:`ACT_STAGES` registered stages
(``hdl.pipeline``: every product split into DSP-sized pieces with registered operands and
partial products, every ROM read registered, rounding and saturation registered; the
stages advance every cycle, the firing having reserved its output slot): latency
``ACT_STAGES + 1`` for every instance (:func:`stage_plan` pads the shorter datapaths).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Const, Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory

from ..hdl import pipeline as P
from ..hdl.datapath import lane_rows, requant_hw, saturate_hw
from ..hdl.templates import Template
from ..ir.numerics_norm import (GeluNumerics, RescaleNumerics, gelu_golden, gelu_table,
                                relu_golden, rescale_golden)
from ..ir.numerics_act import GATE_RANGE, GateNumerics, activation_rom, gate_golden
from ..ir.types import FixedFormat
from ..mappers.catalog import TemplateDef
from ..mappers.contracts import Contract
from ..mappers.hwgraph import Instance, Layout
from ..targets.estimate import Mem, NodeModel, lanes_cost, requant_cost, saturate_cost
from ..targets.pipeline_cost import mul_cost, staged_valid
from .rows import check_int, check_lanes, check_problems, check_template, row_layout, rows_contract


# ---------------------------------------------------------------- parameters and contract

ACTIVATION_FNS = ("gelu", *(f for f in GATE_RANGE if f != "gelu"), "relu", "rescale")


@dataclass(frozen=True)
class ActivationParams:
    """One ``activation`` instance: ``fn`` (one of ACTIVATION_FNS) on each of D elements.

    ``numerics``: ``GeluNumerics`` for gelu, ``GateNumerics`` of the same ``fn`` for the
    gated activations, ``RescaleNumerics`` for relu and rescale (its ``x`` and ``out``
    formats are the port formats)."""
    n: int
    dim: int
    fn: str
    numerics: GeluNumerics | GateNumerics | RescaleNumerics
    #: elements computed per firing (None: the whole row in one firing)
    lanes: int | None = None

    @property
    def fires(self) -> int:
        """Firings per row: D / lanes."""
        return self.dim // check_lanes("activation", self.dim, self.lanes)

    def __post_init__(self):
        t = "activation"
        check_int(t, "N", self.n)
        check_int(t, "D", self.dim)
        check_lanes(t, self.dim, self.lanes)
        if self.fn not in ACTIVATION_FNS:
            raise ValueError(f"{t}: fn must be one of {', '.join(ACTIVATION_FNS)}, got {self.fn!r}")
        want = (GeluNumerics if self.fn == "gelu" else
                RescaleNumerics if self.fn in ("relu", "rescale") else GateNumerics)
        if not isinstance(self.numerics, want):
            raise ValueError(f"{t}: fn {self.fn} needs a {want.__name__}, got "
                             f"{type(self.numerics).__name__}")
        if want is GateNumerics and self.numerics.fn != self.fn:
            raise ValueError(f"{t}: fn {self.fn} needs GateNumerics of {self.fn}, got "
                             f"{self.numerics.fn}")
        check_problems(t, self.numerics.check())
        stage_plan(self.fn, self.numerics)

    @property
    def x_fmt(self) -> FixedFormat:
        return self.numerics.x

    @property
    def y_fmt(self) -> FixedFormat:
        return self.numerics.out

    def x_layout(self) -> Layout:
        return row_layout(self.x_fmt, self.dim)

    def y_layout(self) -> Layout:
        return row_layout(self.y_fmt, self.dim)

    def golden(self, x_ints) -> np.ndarray:
        x = np.asarray(x_ints, dtype=np.int64).reshape(-1, self.dim)
        if self.fn == "gelu":
            return gelu_golden(x, self.numerics)
        if self.fn == "relu":
            return relu_golden(x, self.numerics)
        if self.fn == "rescale":
            return rescale_golden(x, self.numerics)
        return gate_golden(x, self.numerics)

    def contract(self) -> Contract:
        return rows_contract("activation", self.n, ("x",), ("y",), self.fires)

    def instance(self, name: str) -> Instance:
        params = {"N": self.n, "D": self.dim, "fn": self.fn, "numerics": self.numerics,
                  "lanes": self.lanes}
        return Instance(name, "activation", self.contract(), tuple(sorted(params.items())))

    @classmethod
    def of(cls, inst: Instance) -> "ActivationParams":
        check_template(inst, ("activation",))
        return cls(inst.param("N"), inst.param("D"), inst.param("fn"), inst.param("numerics"),
                   inst.param("lanes"))


# ---------------------------------------------------------------- behavioural model

def activation_model(inst, nm, ins):
    return {"y": {"x": ActivationParams.of(inst).golden(ins["x"]["x"])}}


# ---------------------------------------------------------------- stages

#: pipeline stages of every ``activation`` (its latency less the output channel's
#: visibility cycle): fixed, so one latency serves every instance and every cycle model;
#: a datapath needing fewer pads its output (:func:`stage_plan`). 13: what the widest
#: datapath needs, I-BERT's GELU of inputs over 18 bits (x * H in two partial products);
#: every format the numerics accept fits
ACT_STAGES = 13

#: the lanes' input elements registered in the firing cycle (the chunk select ends at a
#: flip-flop)
IN_STAGES = 1


def stage_plan(fn: str, num) -> tuple[tuple[str, int], ...]:
    """The stages of ``fn``'s datapath with numerics ``num``, in order, as (step, stages);
    the last, ``("pad", n)``, fills ACT_STAGES. Raises ValueError (one line) when the
    steps need more.

    * a ROM (GELU or a gate, every input pattern): the input register, the ROM's
      registered read;
    * I-BERT's GELU: the input register, ``|x|`` rounded (a register), mt * mt
      (``mul``; mt = C - min(|x|, C) goes into its operand registers), s (the parabola
      or its mirror) in a register of its own when a stage is to spare (inputs up to 18
      bits), else into s * M's operand registers, s * M, x * H (the rounding of H into
      the operand registers), the rounding, the saturation;
    * a gate table: the input register, the clipped table offset, the table's
      registered read, t * D (``mul``; when the input has bits below the table step),
      the gate H = G + the rounded step, x * H, the rounding, the saturation;
    * ReLU / rescale: the input register, x * mult (``mul``, when mult != 1; ReLU's
      max(x, 0) into its operand registers), the rounding, the saturation (ReLU with
      mult 1: max(x, 0) before the rounding adder)."""
    steps = [("in", IN_STAGES)]
    if fn not in ("relu", "rescale") and num.kind == "rom":
        steps += [("rom", 1)]
    elif fn == "gelu":
        steps += [("abs", 1), ("mt*mt", P.mul_stages(num.mt_bits, num.mt_bits)),
                  ("s*M", P.mul_stages(num.s_bits, num.gate_mult.bit_length())),
                  ("x*h", P.mul_stages(num.x.bits, num.gate_bits)), ("round", 1),
                  ("saturate", 1)]
        if sum(n for _, n in steps) < ACT_STAGES:
            # a stage to spare: s registered between the two products (the subtraction
            # and the choice then run from a flip-flop to a flip-flop, not from one
            # multiplier's output into the next one's input)
            steps.insert(3, ("s", 1))
    elif fn in ("relu", "rescale"):
        if num.mult != 1:
            steps += [("x*mult", P.mul_stages(num.x.bits, num.mult.bit_length()))]
        steps += [("round", 1), ("saturate", 1)]
    else:
        steps += [("offset", 1), ("table", 1)]
        if num.frac_shift > 0:
            steps += [("t*D", P.mul_stages(num.frac_shift, num.d_bits)), ("gate", 1)]
        steps += [("x*h", P.mul_stages(num.x.bits, num.h_bits)), ("round", 1),
                  ("saturate", 1)]
    need = sum(n for _, n in steps)
    if need > ACT_STAGES:
        raise ValueError(f"activation: {fn} on {num.x.bits}-bit inputs needs {need} "
                         f"pipeline stages; at most {ACT_STAGES} fit (narrower formats)")
    return (*steps, ("pad", ACT_STAGES - need))


# ---------------------------------------------------------------- the arithmetic in hardware

def _rom(m, name, width, words):
    """A ROM with a registered read port (block RAM / EBR when the tools choose): the data
    of the address presented in cycle t, in cycle t + 1."""
    rom = Memory(shape=unsigned(width), depth=len(words), init=words)
    m.submodules[name] = rom
    return rom.read_port(domain="sync")


class _Line:
    """A value and its copies delayed 1, 2, ... cycles (made as they are asked for)."""

    def __init__(self, m, value, name):
        self.m, self.name, self.at = m, name, [value]

    def __getitem__(self, k):
        while len(self.at) <= k:
            self.at.append(P.reg(self.m, self.at[-1], f"{self.name}_d{len(self.at)}"))
        return self.at[k]


def _named(m, value, shape, name):
    """``value`` in a fresh signal of ``shape`` (an operand of ``mul`` of exactly that
    width)."""
    s = Signal(shape, name=name)
    m.d.comb += s.eq(value)
    return s


def gelu_hw(m, num: GeluNumerics, x, name: str = "gelu"):
    """``ir.numerics_norm.gelu_golden`` of one signed Value of ``num.x`` (a register,
    ``x`` registered the cycle before): a ROM addressed by the raw input bits, or I-BERT's
    polynomial (as ``num.kind`` says), in the stages of :func:`stage_plan` before the
    padding. Returns (y, stages)."""
    if num.kind == "rom":
        mask = (1 << num.out.bits) - 1
        rp = _rom(m, f"{name}_rom", num.out.bits,
                  [w & mask for w in gelu_table(num.x, num.out)])
        m.d.comb += rp.addr.eq(x.as_unsigned())
        return rp.data.as_signed(), 1
    c, k = num.clip, num.poly_one
    s_reg = "s" in dict(stage_plan("gelu", num))
    xs = _Line(m, x, f"{name}_x")
    ax = P.reg(m, requant_hw(Mux(x < 0, -x, x), num.x.frac - num.poly_frac), f"{name}_abs",
               unsigned(num.ax_bits))
    mt = _named(m, Mux(ax < c, c - ax, 0), unsigned(max(1, num.mt_bits)), f"{name}_mt")
    sq = P.mul(m, mt, mt, f"{name}_sq")
    t = 1 + P.mul_stages(len(mt), len(mt))
    xt = xs[t]
    s = Mux(xt > 0, 2 * k - sq, Mux(xt < 0, sq, k))
    if s_reg:
        s = P.reg(m, s, f"{name}_s", unsigned(num.s_bits))
        t += 1
    else:
        s = _named(m, s, unsigned(num.s_bits), f"{name}_s")
    sm = P.mul(m, s, Const(num.gate_mult), f"{name}_sm")
    t += P.mul_stages(num.s_bits, num.gate_mult.bit_length())
    h = _named(m, requant_hw(sm, num.gate_shift), unsigned(num.gate_bits), f"{name}_h")
    xh = P.mul(m, xs[t], h, f"{name}_xh")
    t += P.mul_stages(num.x.bits, num.gate_bits)
    r = P.reg(m, requant_hw(xh, num.out_shift), f"{name}_round")
    y = P.reg(m, saturate_hw(r, num.out), f"{name}_y", signed(num.out.bits))
    return y, t + 2


def relu_hw(m, num: RescaleNumerics, x, name: str = "relu"):
    """``ir.numerics_norm.relu_golden``: max(x, 0), then the rescale. Returns (y, stages)."""
    pos = _named(m, Mux(x > 0, x, 0), signed(len(x)), f"{name}_pos")
    return rescale_hw(m, num, pos, name=name)


def rescale_hw(m, num: RescaleNumerics, x, name: str = "rescale"):
    """``hdl.datapath.rescale_hw`` pipelined: x * mult (``mul``, when mult != 1), the
    rounding and the saturation registered. Returns (y, stages)."""
    t = 0
    scaled = x
    if num.mult != 1:
        scaled = P.mul(m, x, Const(num.mult), f"{name}_xm")
        t += P.mul_stages(len(x), num.mult.bit_length())
    r = P.reg(m, requant_hw(scaled, num.shift), f"{name}_round")
    y = P.reg(m, saturate_hw(r, num.out), f"{name}_y", signed(num.out.bits))
    return y, t + 2


def gate_hw(m, num: GateNumerics, x, name: str = "act"):
    """``ir.numerics_act.gate_golden`` of one signed Value of ``num.x`` (a register): the
    ROM of every input pattern, or the gate table with linear interpolation (as
    ``num.kind`` says), in the stages of :func:`stage_plan` before the padding. Returns
    (y, stages)."""
    if num.kind == "rom":
        mask = (1 << num.out.bits) - 1
        rp = _rom(m, f"{name}_rom", num.out.bits,
                  [w & mask for w in activation_rom(num.fn, num.x, num.out)])
        m.d.comb += rp.addr.eq(x.as_unsigned())
        return rp.data.as_signed(), 1
    gb, db, sh = num.g_bits, num.d_bits, num.frac_shift
    words = [g | ((d & ((1 << db) - 1)) << gb) for g, d in num.rom_words()]
    rp = _rom(m, f"{name}_gate", gb + db, words)
    c = num.clip
    xs = _Line(m, x, f"{name}_x")
    off = P.reg(m, Mux(x > c, 2 * c, Mux(x < -c, 0, x + c)), f"{name}_off",
                unsigned(max(1, num.off_bits)))
    t = 2                                   # the offset, the table read
    g = rp.data[:gb]
    if sh > 0:
        m.d.comb += rp.addr.eq(off[sh:])
        frac = _named(m, P.reg(m, off[:sh], f"{name}_t"), unsigned(sh), f"{name}_tt")
        td = P.mul(m, frac, rp.data[gb:].as_signed(), f"{name}_td")
        t += P.mul_stages(sh, db)
        g = P.delay(m, g, P.mul_stages(sh, db), f"{name}_g")
        h = P.reg(m, g + requant_hw(td, sh), f"{name}_h", signed(num.h_bits))
        t += 1
    else:
        m.d.comb += rp.addr.eq(off if sh == 0 else Cat(Const(0, -sh), off))
        h = _named(m, g, signed(num.h_bits), f"{name}_h")
    xh = P.mul(m, xs[t], h, f"{name}_xh")
    t += P.mul_stages(num.x.bits, num.h_bits)
    r = P.reg(m, requant_hw(xh, num.out_shift), f"{name}_round")
    y = P.reg(m, saturate_hw(r, num.out), f"{name}_y", signed(num.out.bits))
    return y, t + 2


# ---------------------------------------------------------------- component

class Activation(Template):
    """``activation``: GELU (ROM or polynomial), a gated activation (ROM or interpolated
    gate table), ReLU or a rescale on every element, in :data:`ACT_STAGES` registered
    stages (:func:`stage_plan`)."""

    def __init__(self, inst, nm, ports):
        self.params = ActivationParams.of(inst)
        self.plan = stage_plan(self.params.fn, self.params.numerics)
        super().__init__(inst, nm, ports)

    def stages(self, port) -> int:
        return ACT_STAGES

    def datapath(self, m, seq):
        p = self.params
        fn = {"gelu": gelu_hw, "relu": relu_hw, "rescale": rescale_hw}.get(p.fn, gate_hw)
        pad = dict(self.plan)["pad"]

        def lanes(chunk):
            ys = []
            for i, x in enumerate(chunk[0]):
                name = f"{p.fn}{i}"
                xr = P.delay(m, x, IN_STAGES, f"{name}_in", signed(p.x_fmt.bits))
                y, n = fn(m, p.numerics, xr, name=name)
                assert IN_STAGES + n + pad == ACT_STAGES, (p.fn, n, self.plan)
                ys.append(P.delay(m, y, pad, f"{name}_out"))
            return ys

        lane_rows(self, m, seq, ("x",), p.fires, lanes)


# ---------------------------------------------------------------- resource model

def activation_resources(m: NodeModel, inst, hw) -> None:
    """:class:`Activation`, stage by stage (:func:`stage_plan`) on each lane (all D
    elements unless folded): the input register, ``gelu_hw`` (ROM or I-BERT polynomial),
    ``gate_hw``, ``relu_hw`` or ``rescale_hw`` with their pipeline registers
    (``targets.pipeline_cost``: the products' operand and partial-product registers, the
    delayed input), the rounding and saturation registers, the padding, and the firing
    carried along when folded."""
    p = ActivationParams.of(inst)
    num = p.numerics
    n = lanes_cost(m, inst, hw, p, ("x",))
    plan = dict(stage_plan(p.fn, num))
    ob = num.out.bits
    if p.fn not in ("relu", "rescale") and num.kind == "rom":
        table = gelu_table(num.x, num.out) if p.fn == "gelu" else \
            activation_rom(num.fn, num.x, num.out)
        mask = (1 << ob) - 1
        m.mems.append(Mem("GELU ROM" if p.fn == "gelu" else f"{num.fn} ROM", 1 << num.x.bits,
                          ob, rom=True, read="sync", init=tuple(w & mask for w in table),
                          copies=n))
        m.hold("x", num.x.bits * n, IN_STAGES)
    elif p.fn == "gelu":
        _gelu_poly_resources(m, num, n)
    elif p.fn in ("relu", "rescale"):
        _rescale_resources(m, p.fn, num, n)
    else:
        _gate_resources(m, num, n)
    m.hold("y", ob * n, plan["pad"])                 # the padding
    if p.fires > 1:                                     # the firing, to the output row
        m.hold("fire", 1, ACT_STAGES)
    staged_valid(m, ACT_STAGES)


def _round_saturate(m, width: int, shift: int, out, n: int) -> None:
    """The rounding of a ``width``-bit product by ``shift`` and the saturation to ``out``,
    each into its register."""
    w = requant_cost(m, width, shift, n)
    m.ffs += n * w
    saturate_cost(m, w, out, n)
    m.ffs += n * out.bits


def _gelu_poly_resources(m: NodeModel, num, n: int) -> None:
    """``gelu_hw``'s polynomial: |x| rounded (a register), mt * mt, s * M, x * H (each
    ``hdl.pipeline.mul`` with its operand registers), the rounding and the saturation;
    x held until its product."""
    xb, ms = num.x.bits, P.mul_stages
    mb = num.gate_mult.bit_length()
    s_reg = "s" in dict(stage_plan("gelu", num))
    t_xh = 1 + ms(num.mt_bits, num.mt_bits) + s_reg + ms(num.s_bits, mb)
    m.hold("x", xb * n, IN_STAGES + t_xh + 1)          # to x * H's operand register
    m.logic.add("addc", xb + 1, n).add("mux", xb + 1, n)         # |x| = x < 0 ? -x : x
    requant_cost(m, xb + 1, num.x.frac - num.poly_frac, n)
    m.ffs += n * num.ax_bits
    m.logic.add("cmpc", num.ax_bits, n)                            # ax < C
    m.logic.add("addc", num.mt_bits, n).add("mux", num.mt_bits, n)   # C - ax or 0
    m.hold("mt", num.mt_bits * n, 1)                   # both operands: one register
    mul_cost(m, "mt*mt", (num.mt_bits, False), (num.mt_bits, False), n)
    m.logic.add("addc", num.s_bits, n)                             # 2K - mt**2
    m.logic.add("cmpc", xb, n).add("mux", num.s_bits, n)         # x > 0 ? : x < 0 ? : K
    m.hold("s", num.s_bits * n, 1 + s_reg)            # its register, the operand's
    gs = num.gate_shift
    mul_cost(m, "s*M", (num.s_bits, False), (mb, False), n, low=max(0, gs - 1),
             high=gs + num.gate_bits, const=num.gate_mult)
    requant_cost(m, num.s_bits + mb, gs, n)
    m.hold("h", num.gate_bits * n, 1)
    w = mul_cost(m, "x*h", (xb, True), (num.gate_bits, False), n,
                 low=max(0, num.out_shift - 1))
    _round_saturate(m, w, num.out_shift, num.out, n)


def _rescale_resources(m: NodeModel, fn: str, num, n: int) -> None:
    """``relu_hw`` / ``rescale_hw``: max(x, 0) (ReLU), x * mult (``mul``, when mult != 1),
    the rounding and the saturation, each registered."""
    xb = num.x.bits
    m.hold("x", xb * n, IN_STAGES + (num.mult != 1 and fn == "rescale"))
    if fn == "relu":
        m.logic.add("cmpc", xb, n).add("mux", xb, n)               # max(x, 0)
        if num.mult != 1:
            m.hold("x+", xb * n, 1)
    w = xb
    if num.mult != 1:
        w = mul_cost(m, "x*mult", (xb, True), (num.mult.bit_length(), False), n,
                     low=max(0, num.shift - 1), const=num.mult)
    _round_saturate(m, w, num.shift, num.out, n)


def _gate_resources(m: NodeModel, num, n: int) -> None:
    """:func:`gate_hw`'s table on n lanes: the clipped table offset (a register), the
    gate table's registered read (G and D per word), the interpolation t * D with its
    rounding into H (a register), x * H, the rounding and the saturation; x held until
    its product."""
    xb, gb, db, sh = num.x.bits, num.g_bits, num.d_bits, num.frac_shift
    ms = P.mul_stages
    t_xh = 2 + (ms(sh, db) + 1 if sh > 0 else 0)
    m.hold("x", xb * n, IN_STAGES + t_xh + 1)
    m.logic.add("cmpc", xb, 2 * n).add("mux", num.off_bits, 2 * n)   # clip
    m.logic.add("addc", num.off_bits, n)                             # + R 2**F
    m.ffs += n * num.off_bits
    if sh > 0:
        words = tuple(g | ((d & ((1 << db) - 1)) << gb) for g, d in num.rom_words())
        m.mems.append(Mem(f"{num.fn} gate table", len(words), gb + db, rom=True,
                          read="sync", init=words, copies=n))
    else:       # no interpolation: D is never read, and of G every 2**-sh-th word
        words = tuple(g for g, _ in num.rom_words())[::1 << -sh]
        m.mems.append(Mem(f"{num.fn} gate table", len(words), gb, rom=True, read="sync",
                          init=words, copies=n))
    if sh > 0:
        m.hold("t", sh * n, 2)                          # the offset's low bits, operand
        m.hold("D", db * n, 1)
        w = mul_cost(m, "t*D", (sh, False), (db, True), n, low=sh - 1)
        w = requant_cost(m, w, sh, n)
        m.hold("G", gb * n, ms(sh, db))
        m.logic.add("addc", max(w, gb) + 1, n)                       # G + step
        m.ffs += n * num.h_bits
    m.hold("h", (num.h_bits if sh > 0 else gb) * n, 1)     # G >= 0: its sign bit is 0
    w = mul_cost(m, "x*h", (xb, True), (num.h_bits, True), n, low=max(0, num.out_shift - 1))
    _round_saturate(m, w, num.out_shift, num.out, n)


TEMPLATE_DEFS = (
    TemplateDef("activation", ACT_STAGES + 1, ActivationParams, activation_model, Activation,
                activation_resources,
                "ACT_STAGES registered stages: the input, a registered ROM read or the "
                "polynomial's or gate table's products, rounding, saturation (padded to a "
                "fixed count), and the output channel's visibility cycle"),
)

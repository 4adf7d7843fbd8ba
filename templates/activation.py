"""The ``activation`` template: ``fn`` on each of a row's D elements, ``gelu``
(``ir.numerics_norm.GeluNumerics``: a ROM or I-BERT's polynomial, per ``kind``),
``relu`` or ``rescale`` (``RescaleNumerics``: ReLU then the requantization, or the
requantization alone).

One row in, one row out (the row contract of ``templates.rows``); folded to ``lanes`` <
D it takes D / lanes firings a row (``hdl.datapath.lane_rows``). The numerics travel in
the instance params (:class:`ActivationParams`); the model is ``ir.numerics_norm``'s
golden function, the component its arithmetic in hardware (``gelu_hw``, ``relu_hw``,
``hdl.datapath.rescale_hw``), bit-exact with it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Const, Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory

from ..hdl.datapath import lane_rows, requant_hw, rescale_hw, saturate_hw
from ..hdl.templates import Template
from ..ir.numerics_norm import (GeluNumerics, RescaleNumerics, gelu_golden, gelu_table,
                                relu_golden, rescale_golden)
from ..ir.numerics_act import GATE_RANGE, GateNumerics, activation_rom, gate_golden
from ..ir.types import FixedFormat
from ..mappers.catalog import TemplateDef
from ..mappers.contracts import Contract
from ..mappers.hwgraph import Instance, Layout
from ..targets.estimate import (Mem, Mult, NodeModel, lanes_cost, requant_cost, rescale_cost,
                                saturate_cost)
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


# ---------------------------------------------------------------- the arithmetic in hardware

def gelu_hw(m, num: GeluNumerics, x, name: str = "gelu"):
    """``ir.numerics_norm.gelu_golden`` of one signed Value of ``num.x``: a ROM addressed
    by the raw input bits, or I-BERT's polynomial (as ``num.kind`` says)."""
    y = Signal(signed(num.out.bits), name=f"{name}_y")
    if num.kind == "rom":
        mask = (1 << num.out.bits) - 1
        rom = Memory(shape=unsigned(num.out.bits), depth=1 << num.x.bits,
                     init=[w & mask for w in gelu_table(num.x, num.out)])
        m.submodules[f"{name}_rom"] = rom
        rp = rom.read_port(domain="comb")
        m.d.comb += [rp.addr.eq(x.as_unsigned()), y.eq(rp.data.as_signed())]
        return y
    c, k = num.clip, num.poly_one
    ax = Signal(num.ax_bits, name=f"{name}_abs")
    mt = Signal(max(1, num.mt_bits), name=f"{name}_mt")
    sq = Signal(max(1, 2 * num.mt_bits), name=f"{name}_sq")
    s = Signal(num.s_bits, name=f"{name}_s")
    h = Signal(num.gate_bits, name=f"{name}_h")
    m.d.comb += [
        ax.eq(requant_hw(Mux(x < 0, -x, x), num.x.frac - num.poly_frac)),
        mt.eq(Mux(ax < c, c - ax, 0)),
        sq.eq(mt * mt),
        s.eq(Mux(x > 0, 2 * k - sq, Mux(x < 0, sq, k))),
        h.eq(requant_hw(s * num.gate_mult, num.gate_shift)),
        y.eq(saturate_hw(requant_hw(x * h, num.out_shift), num.out)),
    ]
    return y


def relu_hw(m, num: RescaleNumerics, x, name: str = "relu"):
    """``ir.numerics_norm.relu_golden``: max(x, 0), then the rescale."""
    pos = Signal(signed(len(x) + (0 if x.shape().signed else 1)), name=f"{name}_pos")
    m.d.comb += pos.eq(Mux(x > 0, x, 0))
    return rescale_hw(m, num, pos, name=name)


def gate_hw(m, num: GateNumerics, x, name: str = "act"):
    """``ir.numerics_act.gate_golden`` of one signed Value of ``num.x``: the ROM of every
    input pattern, or the gate table with linear interpolation (as ``num.kind`` says)."""
    y = Signal(signed(num.out.bits), name=f"{name}_y")
    if num.kind == "rom":
        mask = (1 << num.out.bits) - 1
        rom = Memory(shape=unsigned(num.out.bits), depth=1 << num.x.bits,
                     init=[w & mask for w in activation_rom(num.fn, num.x, num.out)])
        m.submodules[f"{name}_rom"] = rom
        rp = rom.read_port(domain="comb")
        m.d.comb += [rp.addr.eq(x.as_unsigned()), y.eq(rp.data.as_signed())]
        return y
    gb, db, sh = num.g_bits, num.d_bits, num.frac_shift
    words = num.rom_words()
    rom = Memory(shape=unsigned(gb + db), depth=len(words),
                 init=[g | ((d & ((1 << db) - 1)) << gb) for g, d in words])
    m.submodules[f"{name}_gate"] = rom
    rp = rom.read_port(domain="comb")
    c = num.clip
    off = Signal(max(1, num.off_bits), name=f"{name}_off")
    m.d.comb += off.eq(Mux(x > c, 2 * c, Mux(x < -c, 0, x + c)))
    h = Signal(signed(num.h_bits), name=f"{name}_h")
    g = rp.data[:gb]
    if sh > 0:
        t = Signal(sh, name=f"{name}_t")
        d = rp.data[gb:].as_signed()
        m.d.comb += [rp.addr.eq(off[sh:]), t.eq(off[:sh]),
                     h.eq(g + requant_hw(t * d, sh))]
    else:
        m.d.comb += [rp.addr.eq(off if sh == 0 else Cat(Const(0, -sh), off)), h.eq(g)]
    m.d.comb += y.eq(saturate_hw(requant_hw(x * h, num.out_shift), num.out))
    return y


# ---------------------------------------------------------------- component

class Activation(Template):
    """``activation``: GELU (ROM or polynomial), a gated activation (ROM or interpolated
    gate table), ReLU or a rescale on every element."""

    def __init__(self, inst, nm, ports):
        self.params = ActivationParams.of(inst)
        super().__init__(inst, nm, ports)

    def datapath(self, m, seq):
        p = self.params
        fn = {"gelu": gelu_hw, "relu": relu_hw, "rescale": rescale_hw}.get(p.fn, gate_hw)
        lane_rows(self, m, seq, ("x",), p.fires, lambda c: [
            fn(m, p.numerics, x, name=f"{p.fn}{i}") for i, x in enumerate(c[0])])


# ---------------------------------------------------------------- resource model

def activation_resources(m: NodeModel, inst, hw) -> None:
    """:class:`Activation`: ``gelu_hw`` (ROM or I-BERT polynomial), ``gate_hw``,
    ``relu_hw`` or ``rescale_hw`` on each lane (all D elements unless folded)."""
    p = ActivationParams.of(inst)
    num = p.numerics
    n = lanes_cost(m, inst, hw, p, ("x",))
    if p.fn == "gelu" and num.kind == "rom":
        mask = (1 << num.out.bits) - 1
        words = [w & mask for w in gelu_table(num.x, num.out)]
        m.mems.append(Mem("GELU ROM", 1 << num.x.bits, num.out.bits, rom=True,
                          init=tuple(words), copies=n))
    elif p.fn == "gelu":
        xb = num.x.bits
        m.logic.add("addc", xb + 1, n).add("mux", xb + 1, n)         # |x| = x < 0 ? -x : x
        requant_cost(m, xb + 1, num.x.frac - num.poly_frac, n)
        m.logic.add("cmpc", num.ax_bits, n)                            # ax < C
        m.logic.add("addc", num.mt_bits, n).add("mux", num.mt_bits, n)   # C - ax or 0
        m.mults.append(Mult("mt*mt", num.mt_bits, False, num.mt_bits, False, n,
                            split_adders=True))
        m.logic.add("addc", num.s_bits, n)                             # 2K - mt**2
        m.logic.add("cmpc", xb, n).add("mux", num.s_bits, n)         # x > 0 ? : x < 0 ? : K
        mb = num.gate_mult.bit_length()
        m.mults.append(Mult("s*M", num.s_bits, False, mb, False, n, const=num.gate_mult,
                            split_adders=True))
        requant_cost(m, num.s_bits + mb, num.gate_shift, n)
        m.mults.append(Mult("x*h", xb, True, num.gate_bits, False, n, split_adders=True))
        w = requant_cost(m, xb + num.gate_bits + 1, num.out_shift, n)
        saturate_cost(m, w, num.out, n)
    elif p.fn in ("relu", "rescale"):
        if p.fn == "relu":
            m.logic.add("cmpc", num.x.bits, n).add("mux", num.x.bits, n)   # max(x, 0)
        rescale_cost(m, num, n)
    else:
        _gate_resources(m, num, n)


def _gate_resources(m: NodeModel, num, n: int) -> None:
    """:func:`gate_hw` on n lanes: the ROM of every input pattern, or the clip of the
    table offset, the gate table (G and D per word), the interpolation t * D and x * H
    with their requantizations and the saturation."""
    if num.kind == "rom":
        mask = (1 << num.out.bits) - 1
        words = [w & mask for w in activation_rom(num.fn, num.x, num.out)]
        m.mems.append(Mem(f"{num.fn} ROM", 1 << num.x.bits, num.out.bits, rom=True,
                          init=tuple(words), copies=n))
        return
    xb, gb, db = num.x.bits, num.g_bits, num.d_bits
    m.logic.add("cmpc", xb, 2 * n).add("mux", num.off_bits, 2 * n)   # clip
    m.logic.add("addc", num.off_bits, n)                             # + R 2**F
    words = tuple(g | ((d & ((1 << db) - 1)) << gb) for g, d in num.rom_words())
    m.mems.append(Mem(f"{num.fn} gate table", len(words), gb + db, rom=True, init=words,
                      copies=n))
    if num.frac_shift > 0:
        m.mults.append(Mult("t*D", num.frac_shift, False, db, True, n, split_adders=True))
        w = requant_cost(m, num.frac_shift + db + 1, num.frac_shift, n)
        m.logic.add("addc", max(w, gb) + 1, n)                       # G + step
    m.mults.append(Mult("x*h", xb, True, num.h_bits, True, n, split_adders=True))
    w = requant_cost(m, xb + num.h_bits, num.out_shift, n)
    saturate_cost(m, w, num.out, n)


TEMPLATE_DEFS = (
    TemplateDef("activation", 2, ActivationParams, activation_model, Activation,
                activation_resources,
                "GELU ROM read or polynomial (3 multipliers), output rounding"),
)

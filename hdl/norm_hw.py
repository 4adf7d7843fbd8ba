"""The arithmetic of ``ir.numerics_norm`` as Amaranth logic: LayerNorm, RMSNorm, GELU,
ReLU, rescale and the fixed-depth integer square root.

Each helper takes the module ``m`` it adds combinational statements to, the numerics
object and input Values (signed Values for signed formats), and returns Signals holding
exactly the integers the golden functions compute. Every intermediate that is used more
than once is a named Signal of the width ``ir.numerics_norm`` derives, so expressions are
never duplicated and the Verilog stays readable. Latency (pipeline registers) is the
caller's business: these helpers are purely combinational.
"""
from __future__ import annotations

from amaranth.hdl import Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory

from ..ir.numerics_norm import GeluNumerics, RescaleNumerics, gelu_table
from .datapath import requant_hw, saturate_hw


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


def rescale_hw(m, num: RescaleNumerics, x, name: str = "rescale"):
    """``ir.numerics_norm.rescale_golden``: saturate(requant(x * mult, shift), out)."""
    y = Signal(signed(num.out.bits), name=f"{name}_y")
    scaled = x if num.mult == 1 else x * num.mult
    m.d.comb += y.eq(saturate_hw(requant_hw(scaled, num.shift), num.out))
    return y


def relu_hw(m, num: RescaleNumerics, x, name: str = "relu"):
    """``ir.numerics_norm.relu_golden``: max(x, 0), then the rescale."""
    pos = Signal(signed(len(x) + (0 if x.shape().signed else 1)), name=f"{name}_pos")
    m.d.comb += pos.eq(Mux(x > 0, x, 0))
    return rescale_hw(m, num, pos, name=name)

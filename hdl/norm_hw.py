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

from amaranth.hdl import Cat, Const, Mux, Signal, Value, signed, unsigned
from amaranth.lib.memory import Memory

from ..ir.numerics_norm import (GeluNumerics, LayerNormNumerics, RescaleNumerics,
                                gelu_table)
from ..ir.numerics_act import GateNumerics, activation_rom
from .templates import requant_hw, saturate_hw, tree_sum


def isqrt_hw(m, n, bits: int | None = None, name: str = "isqrt"):
    """floor(sqrt(n)) as ``ceil(bits / 2)`` unrolled steps of the bit-by-bit recurrence.

    Step i (from the top root bit down) compares the remainder with
    ``(q << (i + 1)) + (1 << 2i)`` and, when it is not smaller, subtracts it and sets
    root bit i: one adder-comparator-subtractor per step, no multiplier. ``n`` is
    unsigned, ``bits`` its width (default ``len(n)``). Returns an unsigned Signal of
    ``ceil(bits / 2)`` bits; equal to ``ir.numerics_norm.isqrt(n, bits)``.
    """
    bits = len(n) if bits is None else bits
    half = (bits + 1) // 2
    rem = Signal(max(1, bits), name=f"{name}_n")
    m.d.comb += rem.eq(n)
    q = Const(0, max(1, half))
    for i in reversed(range(half)):
        trial = q.shift_left(i + 1) + (1 << (2 * i))   # q has no bits below i + 1
        take = Signal(name=f"{name}_take{i}")
        rem_next = Signal(max(1, bits), name=f"{name}_rem{i}")
        q_next = Signal(max(1, half), name=f"{name}_q{i}")
        m.d.comb += [
            take.eq(rem >= trial),
            rem_next.eq(Mux(take, rem - trial, rem)),
            q_next.eq(q | (take << i)),
        ]
        rem, q = rem_next, q_next
    root = Signal(max(1, half), name=f"{name}_root")
    m.d.comb += root.eq(q)
    return root


def bit_length_hw(m, u, name: str = "bitlen"):
    """Bit length of the unsigned Value ``u`` (0 for 0): a priority encoder."""
    n = Signal(range(len(u) + 1), name=name)
    expr = 0
    for i in range(len(u)):
        expr = Mux(u[i], i + 1, expr)
    m.d.comb += n.eq(expr)
    return n


def _normalize_hw(m, num: LayerNormNumerics, cs, u, gammas, betas, name):
    """``LayerNormNumerics.stages``: normalized isqrt, reciprocal, scale, affine, round."""
    w, k0 = num.root_in_bits, num.norm_bias
    n = bit_length_hw(m, u, name=f"{name}_n")
    diff = Signal(range(w + 2 * k0 + 1), name=f"{name}_w_minus_n")
    m.d.comb += diff.eq(w + 2 * k0 - n)
    sh = Signal(num.shift_bits, name=f"{name}_sh")
    m.d.comb += sh.eq(diff[1:])
    un_wide = Signal(num.un_wide_bits, name=f"{name}_un_wide")
    m.d.comb += un_wide.eq(u << Cat(Const(0, 1), sh))          # u << 2*sh (exact)
    un = Signal(w, name=f"{name}_un")
    m.d.comb += un.eq(un_wide[2 * k0:])                        # floor(u * 4**k)
    r = isqrt_hw(m, un, w, name=f"{name}_isqrt")
    inv = Signal(num.inv_bits, name=f"{name}_inv")
    m.d.comb += inv.eq(Const(1 << num.recip_bits, num.recip_bits + 1) // r)
    ys = []
    for i, (c, g, b) in enumerate(zip(cs, gammas, betas)):
        g, b = Value.cast(g), Value.cast(b)                    # ints become constants
        csh = Signal(signed(num.c_bits + num.shift_max), name=f"{name}_cs{i}")
        cn = Signal(signed(num.cn_bits), name=f"{name}_cn{i}")
        acc = Signal(signed(num.acc_bits), name=f"{name}_acc{i}")
        y = Signal(signed(num.out.bits), name=f"{name}_y{i}")
        m.d.comb += [
            csh.eq(c << sh),
            cn.eq(requant_hw(csh, num.cn_shift)),
            acc.eq(cn * inv * g + b.shift_left(num.beta_shift)),
            y.eq(saturate_hw(requant_hw(acc, num.out_shift), num.out)),
        ]
        ys.append(y)
    return ys


def _check_row(num: LayerNormNumerics, *rows):
    for row in rows:
        if len(row) != num.dim:
            raise ValueError(f"layernorm: expected rows of {num.dim} Values, got {len(row)}")


def layernorm_row_hw(m, num: LayerNormNumerics, xs, gammas, betas, name: str = "ln"):
    """One row of ``ir.numerics_norm.layernorm_golden``: D signed Values of ``num.x``
    (and of ``num.gamma``, ``num.beta``) -> D signed Signals of ``num.out``."""
    _check_row(num, xs, gammas, betas)
    d = num.dim
    s1 = Signal(signed(num.sum_bits), name=f"{name}_s1")
    s2 = Signal(num.sumsq_bits, name=f"{name}_s2")
    u = Signal(num.u_bits, name=f"{name}_u")
    m.d.comb += [
        s1.eq(tree_sum(xs)),
        s2.eq(tree_sum(x * x for x in xs)),
        u.eq((d * s2 - s1 * s1).shift_left(2 * num.eps_frac) + num.eps_int),
    ]
    cs = []
    for i, x in enumerate(xs):
        c = Signal(signed(num.c_bits), name=f"{name}_c{i}")
        m.d.comb += c.eq(d * x - s1)
        cs.append(c)
    return _normalize_hw(m, num, cs, u, gammas, betas, name)


def rmsnorm_row_hw(m, num: LayerNormNumerics, xs, gammas, name: str = "rms"):
    """One row of ``ir.numerics_norm.rmsnorm_golden`` (no beta)."""
    _check_row(num, xs, gammas)
    d = num.dim
    s2 = Signal(num.sumsq_bits, name=f"{name}_s2")
    u = Signal(num.u_bits, name=f"{name}_u")
    m.d.comb += [
        s2.eq(tree_sum(x * x for x in xs)),
        u.eq((d * s2).shift_left(2 * num.eps_frac) + num.eps_int),
    ]
    cs = []
    for i, x in enumerate(xs):
        c = Signal(signed(num.c_bits), name=f"{name}_c{i}")
        m.d.comb += c.eq(d * x)
        cs.append(c)
    zeros = [Const(0, signed(2))] * d
    return _normalize_hw(m, num, cs, u, gammas, zeros, name)


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

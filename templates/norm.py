"""The normalization templates ``layernorm`` and ``rmsnorm`` (one template class,
:class:`LayerNorm`, and one parameter class, :class:`NormParams`, for both).

One row (D signed elements of ``numerics.x``) in, the normalized row out, on one firing
a row (the row contract of ``templates.rows``): ``ir.numerics_norm.layernorm_golden`` /
``rmsnorm_golden`` with the numerics ``ir.numerics_norm.LayerNormNumerics`` and the
per-element gamma (and beta for LayerNorm) as stored integers, carried in the instance
params; the RTL holds them as constants. RMSNorm has no shift: beta must be all zero.

HDL: the arithmetic of ``ir.numerics_norm`` as combinational Amaranth logic (the
``*_hw`` helpers): each takes the module ``m`` it adds statements to, the numerics and
input Values (signed for signed formats), and returns Signals holding exactly the
integers the golden functions compute. Every intermediate used more than once is a named
Signal of the width ``ir.numerics_norm`` derives, so expressions are never duplicated and
the Verilog stays readable. The latency is carried by the output channel.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Const, Mux, Signal, Value, signed

from ..hdl.datapath import elems, requant_hw, saturate_hw, tree_sum
from ..hdl.templates import Template
from ..ir.numerics_norm import LayerNormNumerics, layernorm_golden, rmsnorm_golden
from ..mappers.catalog import TemplateDef
from ..mappers.contracts import Contract
from ..mappers.hwgraph import Instance, Layout
from ..targets.estimate import Mult, NodeModel, requant_cost, saturate_cost
from .rows import (check_int, check_problems, check_template, row_layout, rows_contract,
                   stored_ints)


# ---------------------------------------------------------------- parameters and contract

@dataclass(frozen=True)
class NormParams:
    """One ``layernorm`` (``rms=False``) or ``rmsnorm`` (``rms=True``) instance.

    ``gamma``: D stored integers of ``numerics.gamma``; ``beta``: D of ``numerics.beta``
    (all zero for RMSNorm). Build it with :meth:`make` from arrays.
    """
    n: int
    numerics: LayerNormNumerics
    gamma: tuple[int, ...]
    beta: tuple[int, ...]
    rms: bool = False

    def __post_init__(self):
        t = self.template
        num = self.numerics
        if not isinstance(num, LayerNormNumerics):
            raise ValueError(f"{t}: numerics must be a LayerNormNumerics, got {type(num).__name__}")
        check_int(t, "N", self.n)
        check_problems(t, num.check())
        stored_ints(t, "gamma", self.gamma, num.dim, num.gamma)
        stored_ints(t, "beta", self.beta, num.dim, num.beta)
        if self.rms and any(self.beta):
            raise ValueError(f"{t}: beta must be all zero (RMSNorm has no shift)")

    @classmethod
    def make(cls, n, numerics, gamma, beta=None, rms=False) -> "NormParams":
        t = "rmsnorm" if rms else "layernorm"
        if not isinstance(numerics, LayerNormNumerics):
            raise ValueError(f"{t}: numerics must be a LayerNormNumerics, got "
                             f"{type(numerics).__name__}")
        d = numerics.dim
        beta = np.zeros(d, dtype=np.int64) if beta is None else beta
        return cls(int(n), numerics, stored_ints(t, "gamma", gamma, d, numerics.gamma),
                   stored_ints(t, "beta", beta, d, numerics.beta), bool(rms))

    @property
    def template(self) -> str:
        return "rmsnorm" if self.rms else "layernorm"

    @property
    def dim(self) -> int:
        return self.numerics.dim

    def x_layout(self) -> Layout:
        return row_layout(self.numerics.x, self.dim)

    def y_layout(self) -> Layout:
        return row_layout(self.numerics.out, self.dim)

    def golden(self, x_ints) -> np.ndarray:
        x = np.asarray(x_ints, dtype=np.int64).reshape(-1, self.dim)
        if self.rms:
            return rmsnorm_golden(x, self.gamma, self.numerics)
        return layernorm_golden(x, self.gamma, self.beta, self.numerics)

    def contract(self) -> Contract:
        return rows_contract(self.template, self.n, ("x",), ("y",))

    def instance(self, name: str) -> Instance:
        params = {"N": self.n, "D": self.dim, "numerics": self.numerics, "gamma": self.gamma,
                  "beta": self.beta, "rms": self.rms}
        return Instance(name, self.template, self.contract(), tuple(sorted(params.items())))

    @classmethod
    def of(cls, inst: Instance) -> "NormParams":
        check_template(inst, ("layernorm", "rmsnorm"))
        p = cls(inst.param("N"), inst.param("numerics"), inst.param("gamma"),
                inst.param("beta"), inst.param("rms"))
        if p.template != inst.template or p.dim != inst.param("D"):
            raise ValueError(f"{inst.name}: D, rms params disagree with the template/numerics")
        return p


# ---------------------------------------------------------------- behavioural models

def layernorm_model(inst, nm, ins):
    return {"y": {"x": NormParams.of(inst).golden(ins["x"]["x"])}}


def rmsnorm_model(inst, nm, ins):
    return {"y": {"x": NormParams.of(inst).golden(ins["x"]["x"])}}


# ---------------------------------------------------------------- the arithmetic in hardware

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


# ---------------------------------------------------------------- component

class LayerNorm(Template):
    """``layernorm`` and ``rmsnorm``: one row in, one normalized row out; gamma and beta
    are constants of the datapath."""

    def __init__(self, inst, nm, ports):
        self.params = NormParams.of(inst)
        super().__init__(inst, nm, ports)

    def datapath(self, m, seq):
        p = self.params
        xs = elems(self.x.payload, self.layout("x"), "x")
        if p.rms:
            ys = rmsnorm_row_hw(m, p.numerics, xs, list(p.gamma), name="rms")
        else:
            ys = layernorm_row_hw(m, p.numerics, xs, list(p.gamma), list(p.beta), name="ln")
        m.d.comb += self.y.payload.eq(Cat(*ys))


# ---------------------------------------------------------------- resource model

def _const_mults(model: NodeModel, what: str, a_bits: int, a_signed: bool, consts):
    """``a * c`` for each integer constant ``c`` (as ``Value.cast`` makes it: unsigned of
    its bit length when >= 0, else signed), one Mult per distinct (width, sign, shift)."""
    groups = {}
    for c in consts:
        c = int(c)
        if c == 0:
            continue                    # a product by 0 is the constant 0
        key = (c.bit_length() + (c < 0), c < 0, c > 0 and c & (c - 1) == 0)
        groups.setdefault(key, []).append(c)
    for (bits, signed, _), cs in sorted(groups.items()):
        model.mults.append(Mult(what, a_bits, a_signed, bits, signed, len(cs), const=cs[0],
                                split_adders=True))


def _isqrt_cost(model: NodeModel, bits: int) -> None:
    """:func:`isqrt_hw`: ceil(bits / 2) steps; step i subtracts a trial value whose
    bits below 2i are zero (those remainder bits pass through), so its compare-and-subtract
    (one ``$alu``: alumacc shares the ``>=`` and the ``-``) and its remainder multiplexer
    are bits - 2i wide (32 bits: 544 LUT; Yosys 0.70 synth_xilinx: 444)."""
    for i in range((bits + 1) // 2):
        model.logic.add("add", bits - 2 * i).add("mux", bits - 2 * i)


def norm_resources(m: NodeModel, inst, hw) -> None:
    """:func:`layernorm_row_hw` / :func:`rmsnorm_row_hw`: a whole row a firing."""
    p = NormParams.of(inst)
    num = p.numerics
    d, xb = num.dim, num.x.bits
    # row statistics: S2 = sum X**2 (D squares, one $macc), S1 = sum X (one $macc)
    m.mults.append(Mult("x*x", xb, True, xb, True, d, split_adders=True))
    m.logic.add("macc", num.sumsq_bits, 1, d)
    _const_mults(m, "D*x", xb, True, [d] * d)           # D * X_i (a shift for D = 2**k)
    _const_mults(m, "D*S2", num.sumsq_bits, False, [d])
    if not p.rms:
        m.logic.add("macc", num.sum_bits, 1, d)
        m.mults.append(Mult("s1*s1", num.sum_bits, True, num.sum_bits, True,
                            split_adders=True))
        m.logic.add("add", num.u_bits - 2 * num.eps_frac)   # D * S2 - S1**2
        m.logic.add("add", num.c_bits, d)               # c_i = D * X_i - S1
    m.logic.add("addc", num.u_bits)                     # << 2P, + E
    # normalized 1/sqrt(u): bit length, shift, isqrt, reciprocal
    m.logic.add("gate", num.u_bits)                     # bit length: a priority encoder
    m.logic.add("addc", num.shift_bits + 1)             # W + 2 K0 - n
    # un = (u << 2 sh)[2 K0:]: a log shifter narrowing from u_bits to W bits
    m.logic.add("shift", (num.u_bits + num.root_in_bits) // 2, 1, num.shift_bits)
    _isqrt_cost(m, num.root_in_bits)
    m.logic.add("div", num.recip_bits + 1, 1, num.root_bits)    # inv = floor(2**R / r)
    # per element: cn = requant(c << sh) (c_bits in, the cn bits out), cn * inv * gamma
    # + (beta << beta_shift), round, saturate
    cn_w = num.cn_bits + (1 if num.cn_shift > 0 else 0)
    m.logic.add("shift", (num.c_bits + cn_w) // 2, d, num.shift_bits)
    requant_cost(m, cn_w, min(num.cn_shift, 1), d)
    m.mults.append(Mult("cn*inv", num.cn_bits, True, num.inv_bits, False, d,
                        split_adders=True))
    prod = num.cn_bits + num.inv_bits + 1
    _const_mults(m, "*gamma", prod, True, p.gamma)
    m.logic.add("addc", num.acc_bits - num.beta_shift, sum(1 for b in p.beta if b))
    saturate_cost(m, requant_cost(m, num.acc_bits, num.out_shift, d), num.out, d)


TEMPLATE_DEFS = (
    TemplateDef("layernorm", 4, NormParams, layernorm_model, LayerNorm, norm_resources,
                "sums, variance, normalized isqrt, reciprocal, D multipliers, round"),
    TemplateDef("rmsnorm", 4, NormParams, rmsnorm_model, LayerNorm, norm_resources,
                "layernorm without the mean"),
)

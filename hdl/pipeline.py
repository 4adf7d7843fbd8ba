"""Building blocks of pipelined datapaths: registers that advance every cycle, and
arithmetic split into registered stages at depths the tools close timing on.

Every function here adds a fixed number of stages, said by its name or returned with its
result, so a template's stage count (its latency) is the sum of the blocks on its path.
Pipeline registers advance unconditionally: a template's firing reserves its output slot
(``hdl.channel``), so a token in flight never stalls and needs no enable. Values keep the
arithmetic of ``ir.numerics`` exactly; only where they are computed moves.

* :func:`reg`, :func:`delay`: one / n register stages;
* :func:`tree_sum`: a balanced adder tree registered every ``ADDS_PER_STAGE`` levels;
* :func:`mul`: a product in :func:`mul_stages` stages, split into partial products of at
  most :data:`DSP_BITS` x :data:`DSP_BITS` bits (one DSP block each, operands and product
  registered) when wider, their shifted sum a registered adder tree; within
  :func:`primitives` ("ecp5") each partial product is an ECP5 MULT18X18D using its own
  input and output registers (the same two stages, inside the DSP block);
* :func:`recip`: ``floor(2**bits / l)`` by restoring division, one quotient bit a stage;
* :func:`delay_line`: a wide value delayed n cycles through a memory (LUT RAM / block
  RAM) instead of n registers.
"""
from __future__ import annotations

import contextlib
import contextvars

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory

#: operand bits of one hardware multiplier (ECP5 MULT18X18D, AMD DSP48E2: 27 x 18)
DSP_BITS = 18
#: adder-tree levels between two registers
ADDS_PER_STAGE = 1


def reg(m, value, name: str, shape=None) -> Signal:
    """``value`` one cycle later."""
    r = Signal(shape if shape is not None else value.shape(), name=name)
    m.d.sync += r.eq(value)
    return r


def delay(m, value, n: int, name: str, shape=None):
    """``value`` n cycles later (n >= 0)."""
    for k in range(n):
        value = reg(m, value, f"{name}_d{k + 1}", shape)
    return value


def tree_levels(n: int) -> int:
    """Adder levels of a balanced tree over n values."""
    return max(0, (n - 1).bit_length())


def tree_stages(n: int, per_stage: int = ADDS_PER_STAGE) -> int:
    """Stages of :func:`tree_sum` over n values, ``per_stage`` levels a stage."""
    return -(-tree_levels(n) // per_stage)


def tree_sum(m, values, name: str, per_stage: int = ADDS_PER_STAGE):
    """Sum of ``values`` as a balanced adder tree, registered every ``per_stage`` levels
    (default ``ADDS_PER_STAGE``; the last level registered): :func:`tree_stages` stages."""
    vals = list(values)
    level = 0
    while len(vals) > 1:
        vals = [vals[i] + vals[i + 1] if i + 1 < len(vals) else vals[i]
                for i in range(0, len(vals), 2)]
        level += 1
        if level % per_stage == 0 or len(vals) == 1:
            vals = [reg(m, v, f"{name}_l{level}_{i}") for i, v in enumerate(vals)]
    return vals[0]


#: bits of every piece but the top one when a wide operand is split
PIECE_BITS = DSP_BITS - 1


def pieces(width: int) -> int:
    """Pieces of a ``width``-bit operand in :func:`mul`: PIECE_BITS-bit unsigned pieces
    while more than DSP_BITS bits remain, then the top piece (with the sign)."""
    return 1 + max(0, -(-(width - DSP_BITS) // PIECE_BITS))


def _chunks(value, width: int, signed_: bool):
    """``value`` as (piece, shift) pairs (see :func:`pieces`): every piece fits one
    multiplier's DSP_BITS-bit operand."""
    out, lo = [], 0
    while width - lo > DSP_BITS:
        out.append((value[lo:lo + PIECE_BITS].as_unsigned(), lo))
        lo += PIECE_BITS
    top = value[lo:width]
    out.append((top.as_signed() if signed_ else top.as_unsigned(), lo))
    return out


#: stages of a product when both operands fit one multiplier: inputs and product registered
MUL_STAGES = 2


def mul_stages(a_bits: int, b_bits: int) -> int:
    """Stages of :func:`mul` for operands of these widths (sign bits included)."""
    return MUL_STAGES + tree_stages(pieces(a_bits) * pieces(b_bits))


#: the multiplier primitive :func:`mul` builds (see :func:`primitives`)
_PRIMITIVES = contextvars.ContextVar("attnflow_primitives", default="generic")
PRIMITIVE_KINDS = ("generic", "ecp5")


@contextlib.contextmanager
def primitives(kind: str):
    """Within the block (an elaboration, e.g. ``hdl.emit.emit_verilog``), :func:`mul`
    builds its partial products as ``kind``: "generic", a registered ``*`` that
    synthesis maps to DSP blocks (what the testbench simulates; Yosys' synth_xilinx packs
    the registers into DSP48E2), or "ecp5", MULT18X18D with its input and output
    registers (REG_INPUTA/B, REG_OUTPUT), the same two stages inside the DSP block, which
    Yosys' synth_ecp5 does not infer by itself."""
    if kind not in PRIMITIVE_KINDS:
        raise ValueError(f"primitives: {kind!r}; allowed: {', '.join(PRIMITIVE_KINDS)}")
    token = _PRIMITIVES.set(kind)
    try:
        yield
    finally:
        _PRIMITIVES.reset(token)


def _product(m, x, y, name: str):
    """x * y (each of at most DSP_BITS bits) two cycles later: operands registered, then
    the product registered."""
    if _PRIMITIVES.get() == "ecp5":
        return _ecp5_product(m, x, y, name)
    return reg(m, reg(m, x, f"{name}_a") * reg(m, y, f"{name}_b"), f"{name}_p")


def _ecp5_product(m, x, y, name: str):
    """:func:`_product` as one MULT18X18D with its A/B input and P output registers."""
    sx, sy = x.shape().signed, y.shape().signed
    width = len(x) + len(y)
    ports = {"i_CLK0": ClockSignal(), "i_CE0": Const(1, 1), "i_RST0": Const(0, 1),
             "i_SIGNEDA": Const(int(sx), 1), "i_SIGNEDB": Const(int(sy), 1),
             "i_SOURCEA": Const(0, 1), "i_SOURCEB": Const(0, 1)}
    for port, v in (("A", x), ("B", y)):
        ext = Signal(signed(DSP_BITS) if v.shape().signed else unsigned(DSP_BITS),
                     name=f"{name}_{port.lower()}")
        m.d.comb += ext.eq(v)
        ports.update({f"i_{port}{k}": ext[k] for k in range(DSP_BITS)})
    p = Signal(2 * DSP_BITS, name=f"{name}_p36")
    ports.update({f"o_P{k}": p[k] for k in range(2 * DSP_BITS)})
    params = {"p_GSR": "DISABLED", "p_RESETMODE": "SYNC"}
    for reg_ in ("INPUTA", "INPUTB", "OUTPUT"):
        params.update({f"p_REG_{reg_}_CLK": "CLK0", f"p_REG_{reg_}_CE": "CE0",
                       f"p_REG_{reg_}_RST": "RST0"})
    m.submodules[f"{name}_dsp"] = Instance("MULT18X18D", **params, **ports)
    out = Signal(signed(width) if sx or sy else unsigned(width), name=f"{name}_p")
    m.d.comb += out.eq(p[:width])
    return out


def mul(m, a, b, name: str):
    """a * b (Values; the sign of each from its shape) in :func:`mul_stages` stages:
    partial products of at most DSP_BITS x DSP_BITS bits, each with its operands and
    product registered (:func:`_product`), then their shifted sum as a registered adder
    tree."""
    a_bits, b_bits = len(a), len(b)
    pa = _chunks(a, a_bits, a.shape().signed)
    pb = _chunks(b, b_bits, b.shape().signed)
    parts = []
    for i, (x, sx) in enumerate(pa):
        for j, (y, sy) in enumerate(pb):
            p = _product(m, x, y, f"{name}_pp{i}_{j}")
            parts.append(p << (sx + sy) if sx + sy else p)
    out = tree_sum(m, parts, f"{name}_sum")
    width = a_bits + b_bits
    sig = a.shape().signed or b.shape().signed
    res = Signal(signed(width) if sig else unsigned(width), name=f"{name}_y")
    m.d.comb += res.eq(out)
    return res


def recip_stages(q_bits: int) -> int:
    """Stages of :func:`recip` with ``q_bits`` quotient bits."""
    return q_bits


def recip(m, l, bits: int, q_bits: int, name: str):
    """``floor(2**bits / l)`` (``ir.numerics.recip``) for ``2**(bits - q_bits) < l``, by
    restoring division of the constant 2**bits: the partial remainder starts at
    2**(bits - q_bits) and each stage doubles it, subtracts l where it fits and writes one
    quotient bit, most significant first (exact: long division). ``q_bits`` stages."""
    if bits < q_bits:
        raise ValueError(f"recip: {bits} bits < {q_bits} quotient bits")
    lw = len(l)
    rem = Const(1 << (bits - q_bits), lw + 1)
    div = l
    q = Const(0, 1)
    for k in range(q_bits):
        twice = Signal(lw + 2, name=f"{name}_t{k}")
        m.d.comb += twice.eq(rem << 1)
        fits = twice >= div
        rem = reg(m, Mux(fits, twice - div, twice)[:lw + 1], f"{name}_r{k}", unsigned(lw + 1))
        q = reg(m, (q << 1) | fits, f"{name}_q{k}", unsigned(k + 1))
        if k < q_bits - 1:
            div = reg(m, div, f"{name}_l{k}")
    return q


def delay_line(m, value, n: int, name: str):
    """``value`` n cycles later through a memory of ``n`` words written every cycle (a
    ring addressed by a free-running counter; a registered read port): wide values held
    for many cycles map to LUT RAM or block RAM rather than n * width registers."""
    if n < 3:
        return delay(m, value, n, name)
    width = len(value)
    depth = 1 << (n - 1).bit_length()
    mem = Memory(shape=unsigned(width), depth=depth, init=[])
    m.submodules[f"{name}_mem"] = mem
    wp, rp = mem.write_port(), mem.read_port()
    ptr = Signal(range(depth), name=f"{name}_ptr")
    m.d.sync += ptr.eq(ptr + 1)
    # written at ptr in cycle t; read address for cycle t + n issued in t + n - 1, when
    # ptr = ptr_t + n - 1: so read at ptr - (n - 1)
    m.d.comb += [wp.addr.eq(ptr), wp.data.eq(value), wp.en.eq(1),
                 rp.addr.eq(ptr - (n - 1))]
    out = Signal(value.shape(), name=f"{name}_out")
    m.d.comb += out.eq(rp.data)
    return out

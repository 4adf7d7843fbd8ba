"""Resources of ``hdl.pipeline``'s blocks, for the resource models of the pipelined
templates (``templates.online``): what Yosys keeps of registered products, adder trees
and the restoring divider.

Measured with Yosys 0.70 (``synth_xilinx -family xcup`` and ``synth_ecp5``) on the online
and naive heads N=32, d=16, module by module, register by register:

* no pipeline register goes into a DSP block (every DSP48E2 comes out with AREG = BREG =
  MREG = PREG = 0, and synth_ecp5 infers no MULT18X18D register): each is a flip-flop;
* registers with the same input merge (``opt_merge``): a value registered by several
  consumers (each product's operand register, a delay line of the same value) costs its
  width times its longest delay: :meth:`~attnflow.targets.estimate.NodeModel.hold`;
* register bits nothing reads are removed, and the adders behind them shrink: the bits of
  a sum below a rounding's half bit (round half up adds ``2**(n-1)``: nothing below that
  bit can carry into the result), the bits above the width the result is cut to, and,
  back through a registered adder tree, the low bits of an operand where the other
  operand is zero (they reach the sum without a carry, then die there): :func:`tree_cost`;
* a register fed by a constant (a constant multiplier operand) keeps one flip-flop, and
  all of them merge into one;
* a product's partial products (``hdl.pipeline.pieces``) each take one DSP block (or
  stay in LUTs when too narrow for one: ``estimate.dsp_rules``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..hdl import pipeline as P
from .estimate import Mult, NodeModel

#: the value every constant-driven register holds (they all merge into one flip-flop)
CONSTANT = "constant 1"


@dataclass(frozen=True)
class Span:
    """The bits of a value that may differ from zero and from its sign: [lo, hi)."""
    lo: int
    hi: int
    signed: bool


def _sum_span(a: Span, b: Span) -> Span:
    """a + b as Amaranth widens it (an unsigned operand of a signed sum takes one more bit)."""
    signed = a.signed or b.signed
    ha = a.hi + (1 if signed and not a.signed else 0)
    hb = b.hi + (1 if signed and not b.signed else 0)
    return Span(min(a.lo, b.lo), max(ha, hb) + 1, signed)


@dataclass(frozen=True)
class _Node:
    kind: str              # "leaf" | "add" | "reg"
    span: Span
    kids: tuple = ()
    registered: bool = False   # a leaf held in a register (a partial product)


def _tree(leaves: list, registered_leaves: bool, per_stage: int = P.ADDS_PER_STAGE) -> _Node:
    """The node graph of ``hdl.pipeline.tree_sum`` over values with these spans."""
    vals = [_Node("leaf", s, registered=registered_leaves) for s in leaves]
    level = 0
    while len(vals) > 1:
        vals = [_Node("add", _sum_span(vals[i].span, vals[i + 1].span), (vals[i], vals[i + 1]))
                if i + 1 < len(vals) else vals[i] for i in range(0, len(vals), 2)]
        level += 1
        if level % per_stage == 0 or len(vals) == 1:
            vals = [_Node("reg", v.span, (v,)) for v in vals]
    return vals[0]


def _live(node: _Node, low: int, high: int) -> tuple[int, int]:
    """(register bits, adder bits) of ``node`` when only its bits [low, high) are read."""
    if node.kind == "leaf":
        return (max(0, min(node.span.hi, high) - max(node.span.lo, low))
                if node.registered else 0), 0
    if node.kind == "reg":
        ffs, adds = _live(node.kids[0], low, high)
        return ffs + max(0, min(node.span.hi, high) - max(node.span.lo, low)), adds
    a, b = node.kids
    # the carry chain runs from where both operands may be nonzero; below it each
    # operand's bits pass to the sum unchanged, so they live only from ``low``
    chain = max(0, min(node.span.hi, high) - max(a.span.lo, b.span.lo))
    fa, aa = _live(a, max(a.span.lo, min(low, b.span.lo)), high)
    fb, ab = _live(b, max(b.span.lo, min(low, a.span.lo)), high)
    return fa + fb, aa + ab + chain


def tree_cost(model: NodeModel, leaves: list, count: int = 1, low: int = 0,
              high: int | None = None, registered_leaves: bool = False,
              per_stage: int = P.ADDS_PER_STAGE) -> Span:
    """``count`` of ``hdl.pipeline.tree_sum`` over values with ``leaves`` spans, of which
    bits [low, high) are read: its registers (and the leaves' own when
    ``registered_leaves``) and its adders (``per_stage`` levels a stage). Returns the
    sum's span."""
    ffs, adds, span = _tree_figures(tuple(leaves), registered_leaves, per_stage, low, high)
    model.ffs += ffs * count
    model.logic.add("add", adds, count)
    return span


@lru_cache(maxsize=4096)
def _tree_figures(leaves: tuple, registered_leaves: bool, per_stage: int, low: int,
                  high: int | None) -> tuple[int, int, Span]:
    """(register bits, adder bits, span) of one tree (:func:`tree_cost`): a function of
    its arguments only, so the same tree (every PE row of every linear of a shape) is
    walked once."""
    root = _tree(list(leaves), registered_leaves, per_stage)
    high = root.span.hi if high is None else high
    ffs, adds = _live(root, low, high)
    return ffs, adds, root.span


def pieces_of(bits: int, signed: bool) -> list[tuple[int, bool, int]]:
    """(width, signed, shift) of each piece ``hdl.pipeline.mul`` cuts a ``bits``-bit operand
    into: PIECE_BITS-bit unsigned pieces, then the top one with the sign."""
    n = P.pieces(bits)
    low = [(P.PIECE_BITS, False, k * P.PIECE_BITS) for k in range(n - 1)]
    return low + [(bits - (n - 1) * P.PIECE_BITS, signed, (n - 1) * P.PIECE_BITS)]


def mul_cost(model: NodeModel, what: str, a: tuple, b: tuple, count: int = 1,
             low: int = 0, high: int | None = None, const: int | None = None) -> int:
    """``count`` of ``hdl.pipeline.mul(a, b)``, of whose product bits [low, high) are read
    (a rounding by n reads from bit n - 1; a result cut to w bits ends at bit n + w);
    ``a`` and ``b``: (bits, signed). The operands' registers are one more stage of the
    values multiplied, which the caller holds (``model.hold``: often shared with another
    register of the same value); ``const``: b is that constant (its register keeps one
    flip-flop). Adds the product (a :class:`Mult` with its partial products, a DSP block
    each), the partial products' registers and the registered adder tree over them.
    Returns the product's width."""
    (a_bits, a_signed), (b_bits, b_signed) = a, b
    if const is not None:
        model.hold(CONSTANT, 1, 1)
    leaves, pieces = [], []
    for wx, sx, ox in pieces_of(a_bits, a_signed):
        for wy, sy, oy in pieces_of(b_bits, b_signed):
            leaves.append(Span(ox + oy, ox + oy + wx + wy, sx or sy))
            pieces.append((wx, sx, wy, sy))
    model.mults.append(Mult(what, a_bits, a_signed, b_bits, b_signed, count, const=const,
                            pieces=tuple(pieces)))
    width = a_bits + b_bits
    tree_cost(model, leaves, count, low, width if high is None else min(high, width),
              registered_leaves=True)
    return width


def recip_cost(model: NodeModel, l_bits: int, q_bits: int) -> None:
    """``hdl.pipeline.recip``: ``q_bits`` stages, each doubling the remainder (l_bits + 1
    bits), comparing it with l, subtracting where it fits (a carry chain and a 2:1 choice
    a bit) and shifting in a quotient bit; the remainder and l are carried to the next
    stage (the last stage's remainder is never read), the quotient grows a bit a stage."""
    model.ffs += (q_bits - 1) * (l_bits + 1 + l_bits) + q_bits * (q_bits + 1) // 2
    model.logic.add("add", l_bits + 2, q_bits).add("mux", l_bits + 1, q_bits)


def staged_valid(model: NodeModel, stages: int, ports: int = 1) -> None:
    """``Template.staged_valid``: each staged output port's reservation delayed ``stages``
    cycles. Ports that fire together get equal reservations from the sequencer, a
    submodule: synth_xilinx keeps the hierarchy and a chain per port (measured on the
    naive head's qk, two ports); a flattening flow (synth_ecp5) merges them."""
    for port in range(ports):
        model.hold(f"staged valid {port}", 1, stages)

"""Amaranth component of the ``linear`` template: a PE x SIMD MAC array, weights in ROM.

Fire control comes from the contract (``mappers.linear``: one phase ``rows``, loops
``i`` over rows and ``f`` over the F = (M/PE) * (K/SIMD) firings of a row). Per firing,
with group p = f // (K/SIMD) and chunk s = f % (K/SIMD) (kept by two small counters that
step with the firings):

* the input row is the live ``x`` payload on the row's first firing, then a register;
  its chunk s (SIMD elements) is selected;
* the weight ROM word f (PE x SIMD weights) and the bias ROM word p (PE biases) are read
  combinationally;
* PE accumulators: ``acc_new_j = (s == 0 ? b_j : acc_j) + sum_t x[s*SIMD + t] * W_j,t``;
* with per-channel multipliers (scaled weights, ``LinearNumerics.per_channel``) the
  multiplier ROM word p (PE unsigned multipliers) is read beside the bias;
* the requantized, saturated ``acc_new`` of a finished group (s == K/SIMD - 1) goes into
  the output row register at group p; the row leaves on the last firing, the last group
  taken combinationally from this firing's ``acc_new``.

The numerics, weights and biases come from the instance's params (``LinearParams``), not
from the design's attention numerics; the ROM words from ``ir.numerics_linear``.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory

from ..ir.numerics_linear import bias_rom, mult_rom, weight_rom
from ..mappers.contracts import FOLD, ROWS
from ..mappers.linear import LinearParams
from .templates import Template, elems, requant_hw, saturate_hw, tree_sum


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
    """y = saturate(requant((x W^T + b) * mult, shift)) per row, PE x SIMD MACs a cycle."""

    def __init__(self, inst, nm, ports):
        self.params = LinearParams.of(inst)
        super().__init__(inst, nm, ports)

    def datapath(self, m, seq):
        p = self.params
        num = p.numerics
        pe, simd, groups, chunks = p.pe, p.simd, p.groups, p.chunks
        fire = seq.fire

        # position within the row: chunk s, group p (in step with the sequencer's f)
        s, s_end = _step_counter(m, fire, chunks, "chunk")
        g, _ = _step_counter(m, fire, groups, "group", enable=s_end)
        s_first = (s == 0) if chunks > 1 else 1

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

        # weight ROM word f: W[p*PE + j, s*SIMD + t] at (j*SIMD + t) * w.bits
        wb, bb = num.w.bits, num.bias.bits
        wrp = _rom(m, "wrom", pe * simd * wb, weight_rom(p.w_array(), pe, simd, num))
        m.d.comb += wrp.addr.eq(seq.counter[(ROWS, FOLD)])
        brp = _rom(m, "brom", pe * bb, bias_rom(p.b_array(), pe, num))
        m.d.comb += brp.addr.eq(g)
        mb = num.mult_max.bit_length()
        if num.per_channel:     # one multiplier per output channel: word g, PE of them
            mrp = _rom(m, "mrom", pe * mb, mult_rom(pe, num))
            m.d.comb += mrp.addr.eq(g)

        ys = []
        for j in range(pe):
            ws = [wrp.data[(j * simd + t) * wb:(j * simd + t + 1) * wb].as_signed()
                  for t in range(simd)]
            bias = brp.data[j * bb:(j + 1) * bb].as_signed()
            acc = Signal(signed(num.acc_bits), name=f"acc{j}")
            acc_new = Signal(signed(num.acc_bits), name=f"acc{j}_new")
            dot = tree_sum(a * w for a, w in zip(xc, ws))
            m.d.comb += acc_new.eq(Mux(s_first, bias, acc) + dot)
            with m.If(fire):
                m.d.sync += acc.eq(acc_new)
            y = Signal(signed(num.y.bits), name=f"y{j}")
            mult = mrp.data[j * mb:(j + 1) * mb] if num.per_channel else num.mult
            m.d.comb += y.eq(saturate_hw(requant_hw(acc_new * mult, num.shift), num.y))
            ys.append(y)

        # the output row: groups 0 .. groups-2 registered, the last one from this firing
        row = [[Signal(signed(num.y.bits), name=f"row{q}_{j}") for j in range(pe)]
               for q in range(groups - 1)]
        for q, regs in enumerate(row):
            with m.If(fire & s_end & (g == q)):
                m.d.sync += [r.eq(y) for r, y in zip(regs, ys)]
        m.d.comb += self.y.payload.eq(Cat(*[r for regs in row for r in regs], *ys))

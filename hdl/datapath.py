"""Datapath helpers shared by the template components (``templates/``): the arithmetic of
``ir.numerics`` in hardware (requantization, saturation, adder trees, exp, reciprocal,
``ir.numerics_norm``'s rescale), the row memories of the attention templates and the
lane folding of the element-wise row templates. Each takes the module ``m`` it adds
statements to (where it needs one) and returns Values; latency is the caller's (the
output channel's) business.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory

from ..ir.numerics import LOG2E_BITS, LOG2E_MULT, exp2_table
from ..ir.numerics_norm import RescaleNumerics
from ..mappers.contracts import LOAD_ROW


def requant_hw(x, n: int):
    """``ir.numerics.requant`` in hardware: round half up for n > 0, exact shift left else."""
    if n > 0:
        return (x + (1 << (n - 1))).shift_right(n)
    return x.shift_left(-n)


def saturate_hw(x, fmt):
    return Mux(x > fmt.max_int, fmt.max_int, Mux(x < fmt.min_int, fmt.min_int, x))


def tree_sum(values):
    """Sum of Values as a balanced adder tree: log2(n) adder levels, and each level widens
    the result by one bit (a chain would add one bit per term: n - 1 for n terms)."""
    vals = list(values)
    if not vals:
        return 0
    while len(vals) > 1:
        vals = [vals[i] + vals[i + 1] if i + 1 < len(vals) else vals[i]
                for i in range(0, len(vals), 2)]
    return vals[0]


def elems(payload, layout, field):
    """Elements of one field of a flat payload, as Values (signed when the field is)."""
    off = 0
    for f in layout.fields:
        if f.name == field:
            out = []
            for i in range(f.count):
                bits = payload[off + i * f.bits: off + (i + 1) * f.bits]
                out.append(bits.as_signed() if f.signed else bits)
            return out
        off += f.width
    raise KeyError(field)


def rescale_hw(m, num: RescaleNumerics, x, name: str = "rescale"):
    """``ir.numerics_norm.rescale_golden``: saturate(requant(x * mult, shift), out)."""
    y = Signal(signed(num.out.bits), name=f"{name}_y")
    scaled = x if num.mult == 1 else x * num.mult
    m.d.comb += y.eq(saturate_hw(requant_hw(scaled, num.shift), num.out))
    return y


def exp_hw(m, nm, z, name):
    """``ir.numerics.exp_neg`` in hardware: log2(e) multiply, ROM of 2**-frac, shift."""
    sf, pf = nm.score_frac, nm.prob_frac
    rom = Memory(shape=unsigned(nm.exp_bits), depth=1 << sf, init=exp2_table(sf, pf))
    m.submodules[f"{name}_rom"] = rom
    rp = rom.read_port(domain="comb")
    u = Signal(len(z) + LOG2E_MULT.bit_length() + 1, name=f"{name}_u")
    m.d.comb += u.eq(requant_hw(z * LOG2E_MULT, LOG2E_BITS))
    ipart = u[sf:]
    m.d.comb += rp.addr.eq(u[:sf])
    e = Signal(nm.exp_bits, name=f"{name}_e")
    m.d.comb += e.eq(Mux(ipart >= pf + 1, 0, rp.data >> ipart[:max(1, (pf + 1).bit_length())]))
    return e


def recip_hw(nm, l):
    """``ir.numerics.recip``: floor(2**R / l)."""
    return Const(1 << nm.recip_bits, nm.recip_bits + 1) // l


def store(m, name, width, depth, seq, phase, data):
    """A row memory written once per firing of ``phase`` at its row counter."""
    # depth >= 2 keeps the address at least one bit wide (see Sequencer.counter)
    mem = Memory(shape=unsigned(width), depth=max(depth, 2), init=[])
    m.submodules[name] = mem
    wp = mem.write_port()
    rp = mem.read_port(domain="comb")
    m.d.comb += [wp.addr.eq(seq.counter[(phase, LOAD_ROW)]), wp.data.eq(data),
                 wp.en.eq(seq.fire & seq.in_phase[phase])]
    return rp


def lane_store(m, name, width, n, lanes, seq, phase, data, group):
    """n rows in ``lanes`` banks (row r in bank r % lanes, at address r // lanes), written
    once per firing of ``phase``; read a key group a cycle (``templates.online.groups``).
    Returns lane k's row of group ``group`` (row group * lanes + k), 0 for a padding lane
    of the last group. ``lanes`` = 1 is :func:`store`."""
    if lanes == 1:
        rp = store(m, name, width, n, seq, phase, data)
        m.d.comb += rp.addr.eq(group)
        return [rp.data]
    g = -(-n // lanes)
    r = seq.counter[(phase, LOAD_ROW)]
    bank, addr = Signal(range(lanes), name=f"{name}_bank"), Signal(range(max(g, 2)),
                                                                   name=f"{name}_addr")
    bank_cur = Signal.like(bank, name=f"{name}_bank_cur")
    addr_cur = Signal.like(addr, name=f"{name}_addr_cur")
    m.d.comb += [bank_cur.eq(Mux(r == 0, 0, bank)), addr_cur.eq(Mux(r == 0, 0, addr))]
    write = seq.fire & seq.in_phase[phase]
    wrap = bank_cur == lanes - 1
    with m.If(write):
        m.d.sync += [bank.eq(Mux(wrap, 0, bank_cur + 1)), addr.eq(addr_cur + wrap)]
    last = group == g - 1
    rows = []
    for k in range(lanes):
        mem = Memory(shape=unsigned(width), depth=max(g, 2), init=[])
        m.submodules[f"{name}{k}"] = mem
        wp, rp = mem.write_port(), mem.read_port(domain="comb")
        m.d.comb += [wp.addr.eq(addr_cur), wp.data.eq(data), wp.en.eq(write & (bank_cur == k)),
                     rp.addr.eq(group)]
        row = Signal(width, name=f"{name}_row{k}")
        # padding lanes exist only in the last group (keys (g-1)*lanes + k >= n)
        m.d.comb += row.eq(rp.data if k < n - (g - 1) * lanes else Mux(last, 0, rp.data))
        rows.append(row)
    return rows


def lanes_of(inst) -> int:
    return inst.param("lanes") or 1


def lane_rows(tpl, m, seq, ports, fires: int, compute):
    """An element-wise datapath over rows of the component ``tpl``, ``fires`` firings per
    row (``D / fires`` lanes). ``compute(chunks)`` gets, per input port, the lanes'
    element Values of the current chunk and returns the lanes' results. Unfolded (one
    firing), the whole row is computed in its firing. Folded, chunk s is computed on the
    row's firing s:

    * each input row is taken on the row's first firing: chunk 0 from the live payload,
      the rest into a shift register that drops one chunk per later firing, so the lanes
      read its low end or the chunk above (a 2:1 mux per bit, not an F-way chunk
      select; its control registered, see below);
    * the results shift into an output register of F - 1 chunks (chunk 0 ends at the low
      end); the row leaves on the last firing as that register plus the last chunk,
      taken combinationally (as ``linear``).

    A pipelined ``compute`` (``tpl.stages("y")`` > 0, ``hdl.pipeline``) returns the
    chunk's results that many cycles after its firing: the output register then shifts
    with the firing delayed as long, and ``y.data_valid`` is the template's
    :meth:`~attnflow.hdl.templates.Template.staged_valid`."""
    stages = tpl.stages("y")
    if stages:
        m.d.comb += tpl.y.data_valid.eq(tpl.staged_valid(m, seq, "y"))
    if fires == 1:
        rows = [elems(getattr(tpl, p).payload, tpl.layout(p), "x") for p in ports]
        m.d.comb += tpl.y.payload.eq(Cat(*compute(rows)))
        return
    chunks = []
    # the row registers' choice and enable (one per bit of every row) hang on flip-flops,
    # not on the firing's handshake or the sequencer's counters: they load the live row
    # while the sequencer stands at a row's first firing (``load``: ``seq.first`` kept in
    # a register, from the firing's position; after the last row it stays set, and no
    # firing reads what it loads), and drop a chunk the cycle after each later firing
    # (``shift``); a firing that comes before that drop reads the chunk above
    load = Signal(name="x_load", init=1)
    shift = Signal(name="x_shift")
    m.d.sync += [load.eq(Mux(seq.fire, seq.last, load)), shift.eq(seq.fire & ~load)]
    for p in ports:
        port, lay = getattr(tpl, p), tpl.layout(p)
        step = lay.width // fires                  # bits of one chunk
        rest = Signal(lay.width - step, name=f"{p}_rest")
        with m.If(load):
            m.d.sync += rest.eq(port.payload[step:])
        with m.Elif(shift):
            m.d.sync += rest.eq(rest >> step)
        # with 2 firings a later firing is the row's last: no chunk above to read
        above = rest[step:2 * step] if fires > 2 else rest[:step]
        cur = Signal(step, name=f"{p}_chunk")
        m.d.comb += cur.eq(Mux(load, port.payload[:step], Mux(shift, above, rest[:step])))
        f = lay.fields[0]
        chunks.append([cur[i * f.bits:(i + 1) * f.bits].as_signed()
                       for i in range(f.count // fires)])
    ys = compute(chunks)
    out = Cat(*ys)
    done = Signal(len(out) * (fires - 1), name="y_done")
    fired = seq.fire
    for k in range(stages):             # the firing, as late as its results
        r = Signal(name=f"fire_d{k + 1}")
        m.d.sync += r.eq(fired)
        fired = r
    with m.If(fired):
        m.d.sync += done.eq(Cat(done[len(out):], out))
    m.d.comb += tpl.y.payload.eq(Cat(done, out))

"""Amaranth components of the row templates (``mappers.rowops``).

Every template fires once per row (the sequencer from its contract: one phase, every
port used on every firing) and computes the whole row combinationally in the firing
cycle, except a folded ``activation`` / ``residual_add`` (``lanes`` < D), which takes
D / lanes firings per row (:func:`lane_rows`); its latency is carried by the output channel's register line, as for every
template. Numerics and constants come from the instance params (``NormParams``,
``ActivationParams``, ``ResidualParams``, ``ForkParams``); the arithmetic is
``hdl.norm_hw``'s, which is bit-exact with ``ir.numerics_norm``.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Mux, Signal, signed

from ..mappers.rowops import ActivationParams, ForkParams, NormParams, ResidualParams
from .norm_hw import gate_hw, gelu_hw, layernorm_row_hw, relu_hw, rescale_hw, rmsnorm_row_hw
from .templates import Template, elems, saturate_hw


def lane_rows(tpl: Template, m, seq, ports, fires: int, compute):
    """An element-wise datapath over rows, ``fires`` firings per row (``D / fires``
    lanes). ``compute(chunks)`` gets, per input port, the lanes' element Values of the
    current chunk and returns the lanes' results. Unfolded (one firing), the whole row
    is computed in its firing. Folded, chunk s is computed on the row's firing s:

    * each input row is taken on the row's first firing: chunk 0 from the live payload,
      the rest into a shift register that drops one chunk per later firing, so the lanes
      always read its low end (a 2:1 mux per bit, not an F-way chunk select);
    * the results shift into an output register of F - 1 chunks (chunk 0 ends at the low
      end); the row leaves on the last firing as that register plus the last chunk,
      taken combinationally (as ``linear``)."""
    if fires == 1:
        rows = [elems(getattr(tpl, p).payload, tpl.layout(p), "x") for p in ports]
        m.d.comb += tpl.y.payload.eq(Cat(*compute(rows)))
        return
    chunks = []
    for p in ports:
        port, lay = getattr(tpl, p), tpl.layout(p)
        step = lay.width // fires                  # bits of one chunk
        rest = Signal(lay.width - step, name=f"{p}_rest")
        with m.If(seq.fire):
            m.d.sync += rest.eq(Mux(seq.first, port.payload[step:], rest >> step))
        cur = Signal(step, name=f"{p}_chunk")
        m.d.comb += cur.eq(Mux(seq.first, port.payload[:step], rest[:step]))
        f = lay.fields[0]
        chunks.append([cur[i * f.bits:(i + 1) * f.bits].as_signed()
                       for i in range(f.count // fires)])
    ys = compute(chunks)
    out = Cat(*ys)
    done = Signal(len(out) * (fires - 1), name="y_done")
    with m.If(seq.fire):
        m.d.sync += done.eq(Cat(done[len(out):], out))
    m.d.comb += tpl.y.payload.eq(Cat(done, out))


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


class ResidualAdd(Template):
    """``residual_add``: y = saturate(ra(a) + rb(b), out) per element."""

    def __init__(self, inst, nm, ports):
        self.params = ResidualParams.of(inst)
        super().__init__(inst, nm, ports)

    def datapath(self, m, seq):
        num = self.params.numerics

        def add(chunks):
            ys = []
            for i, (a, b) in enumerate(zip(*chunks)):
                ra = rescale_hw(m, num.rescale_a, a, name=f"ra{i}")
                rb = rescale_hw(m, num.rescale_b, b, name=f"rb{i}")
                s = Signal(signed(num.sum_bits), name=f"sum{i}")
                y = Signal(signed(num.out.bits), name=f"y{i}")
                m.d.comb += [s.eq(ra + rb), y.eq(saturate_hw(s, num.out))]
                ys.append(y)
            return ys

        lane_rows(self, m, seq, ("a", "b"), self.params.fires, add)


class Fork(Template):
    """``fork``: the input row on every output (the sequencer fires only when every
    output has a slot)."""

    def __init__(self, inst, nm, ports):
        self.params = ForkParams.of(inst)
        super().__init__(inst, nm, ports)

    def datapath(self, m, seq):
        for o in self.params.outputs:
            m.d.comb += getattr(self, o).payload.eq(self.x.payload)

"""The base class of every template component, and the component of a mapped instance.

A component's ports are valid/ready streams named after its contract's ports, with flat
payloads laid out as ``mappers.hwgraph.Layout`` says. Fire control comes from
:class:`~attnflow.hdl.sequencer.Sequencer` (the contract); a subclass's ``datapath``
computes the values ``ir.numerics`` defines, with constants and ROM contents taken from
there, either in the firing cycle or through :meth:`Template.stages` registered stages
(``hdl.pipeline``); the rest of a template's latency is its output channel's.

The components themselves are defined with the rest of their templates, one module per
family under ``templates/`` (found through the registry, ``mappers.catalog``); the
datapath helpers they share are in ``hdl.datapath``.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .channel import port_signature
from .sequencer import Sequencer


# ---------------------------------------------------------------- base component

class Template(wiring.Component):
    """A template instance built from its parameters alone: the instance (template,
    contract, params), the attention numerics ``nm`` (``ir.numerics.AttentionNumerics``;
    the encoder templates carry their own in their params) and ``ports``: port -> token
    Layout (``mappers.hwgraph.Layout``). Stream ports follow the contract; a port the
    contract names but ``ports`` lacks is an error. :func:`of_graph` builds one from a
    mapped HwGraph."""

    def __init__(self, inst, nm, ports: dict):
        self.inst, self.nm = inst, nm
        self.contract = c = inst.contract
        missing = [p for p in c.inputs + c.outputs if p not in ports]
        if missing:
            self._MustUse__silence = True     # refused: no "created but never used"
            raise ValueError(f"{inst.name} ({inst.template}): no layout for port(s) "
                             f"{', '.join(missing)}")
        self.ports = dict(ports)
        members = {}
        for p in c.inputs:
            members[p] = In(stream.Signature(self.ports[p].width))
        for p in c.outputs:
            members[p] = Out(port_signature(self.ports[p].width, self.stages(p)))
        super().__init__(members)

    def layout(self, port):
        return self.ports[port]

    def stages(self, port) -> int:
        """Pipeline stages between a firing and its token on output ``port`` (0: the
        token is computed in the firing cycle). A staged port reserves its slot in the
        firing cycle and delivers the data ``stages`` cycles later
        (``hdl.channel.StagedSignature``); the output channel's register line makes up
        the rest of the template's latency."""
        return 0

    def staged_valid(self, m, seq, port):
        """The reservation of ``port``'s firings delayed by its :meth:`stages`: the
        ``data_valid`` the port must show with the firing's token."""
        v = seq.fire & seq.use[port]
        for k in range(self.stages(port)):
            r = Signal(name=f"{port}_v{k + 1}")
            m.d.sync += r.eq(v)
            v = r
        return v

    def elaborate(self, platform):
        m = Module()
        m.submodules.seq = seq = Sequencer(self.contract)
        for p in self.contract.inputs:
            port = getattr(self, p)
            m.d.comb += [seq.avail[p].eq(port.valid), port.ready.eq(seq.fire & seq.use[p])]
        for p in self.contract.outputs:
            port = getattr(self, p)
            m.d.comb += [seq.avail[p].eq(port.ready), port.valid.eq(seq.fire & seq.use[p])]
        self.datapath(m, seq)
        return m

    def datapath(self, m, seq):
        raise NotImplementedError


def of_graph(inst, hw):
    """The instance's component, its numerics and port layouts read from the mapped
    HwGraph ``hw`` (the channels at its ports)."""
    from ..mappers.catalog import facet
    ports = {p: c.layout for p, c in hw.port_channels(inst.name).items()}
    return facet(inst.template, "component")(inst, hw.numerics, ports)

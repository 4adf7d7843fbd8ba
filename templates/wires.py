"""Templates that only route rows: ``fork``, ``concat`` and ``split_rows``. Their
payloads are wires; only the sequencer costs anything (:func:`wires_resources`); their
latency, a register, is carried by the output channel as for every template.

* ``fork`` (:class:`ForkParams`): one input ``x`` (rows of D elements), ``ways`` (2)
  identical outputs ``y0``, ``y1``...: the residual skip path needs the block input
  twice, the split head needs Q once per engine. A row template (``templates.rows``):
  it fires only when every output has a slot.
* ``concat`` (x0 .. x{ways-1} -> y): the H head outputs (rows of D elements each) side by
  side, head 0 first (lowest elements), as one row of H * D; one firing per row, every
  port on every firing.
* ``split_rows`` (x -> y0 .. y{P-1}): one input stream of N rows; phase p passes the n_p
  rows of slice p to output p (the split-context head's K and V, ``templates.split``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Signal, signed

from ..hdl.datapath import elems
from ..hdl.templates import Template
from ..ir.types import FixedFormat
from ..mappers.catalog import TemplateDef, latency
from ..mappers.contracts import ALWAYS, Contract, Phase
from ..mappers.hwgraph import Instance, Layout
from ..targets.estimate import NodeModel
from .rows import check_fmt, check_int, check_template, row_layout, rows_contract


# ---------------------------------------------------------------- fork

@dataclass(frozen=True)
class ForkParams:
    """One ``fork`` instance: input ``x`` (rows of D elements of ``fmt``) copied to the
    ``ways`` outputs ``y0`` .. ``y{ways-1}``."""
    n: int
    dim: int
    fmt: FixedFormat
    ways: int = 2

    def __post_init__(self):
        check_int("fork", "N", self.n)
        check_int("fork", "D", self.dim)
        check_int("fork", "ways", self.ways, 2)
        check_fmt("fork", "fmt", self.fmt)

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(f"y{k}" for k in range(self.ways))

    def layout(self) -> Layout:
        return row_layout(self.fmt, self.dim)

    def contract(self) -> Contract:
        return rows_contract("fork", self.n, ("x",), self.outputs)

    def instance(self, name: str) -> Instance:
        params = {"N": self.n, "D": self.dim, "fmt": self.fmt, "ways": self.ways}
        return Instance(name, "fork", self.contract(), tuple(sorted(params.items())))

    @classmethod
    def of(cls, inst: Instance) -> "ForkParams":
        check_template(inst, ("fork",))
        return cls(inst.param("N"), inst.param("D"), inst.param("fmt"), inst.param("ways"))


def fork_model(inst, nm, ins):
    p = ForkParams.of(inst)
    x = np.asarray(ins["x"]["x"], dtype=np.int64).reshape(-1, p.dim)
    return {o: {"x": x.copy()} for o in p.outputs}


class Fork(Template):
    """``fork``: the input row on every output (the sequencer fires only when every
    output has a slot)."""

    def __init__(self, inst, nm, ports):
        self.params = ForkParams.of(inst)
        super().__init__(inst, nm, ports)

    def datapath(self, m, seq):
        for o in self.params.outputs:
            m.d.comb += getattr(self, o).payload.eq(self.x.payload)


# ---------------------------------------------------------------- concat

def concat_contract(n: int, ways: int) -> Contract:
    """N rows; each firing takes one row from each of x0..x{ways-1}, emits one row y."""
    ins = tuple(f"x{h}" for h in range(ways))
    return Contract("concat", ins, ("y",), (
        Phase("rows", (("i", n),), tuple((p, ALWAYS) for p in ins + ("y",))),
    ), latency=latency("concat"))


def concat_instance(name: str, n: int, ways: int, dim: int, fmt: FixedFormat) -> Instance:
    params = {"N": n, "ways": ways, "D": dim, "fmt": fmt}
    return Instance(name, "concat", concat_contract(n, ways), tuple(sorted(params.items())))


def concat_model(inst, nm, ins):
    ways, dim = inst.param("ways"), inst.param("D")
    parts = [np.asarray(ins[f"x{h}"]["x"], dtype=np.int64).reshape(-1, dim) for h in range(ways)]
    return {"y": {"x": np.concatenate(parts, axis=1)}}


class Concat(Template):
    """``concat``: y = x0 | x1 | ... | x{ways-1}, element by element (each element cast to
    the y field's width, two's complement, which is what ``Layout.pack`` does with the
    simulator's integers)."""

    def __init__(self, inst, nm, ports):
        self.ways, self.dim = inst.param("ways"), inst.param("D")
        super().__init__(inst, nm, ports)

    def datapath(self, m, seq):
        yf = next(f for f in self.layout("y").fields if f.name == "x")
        if yf.count != self.ways * self.dim:
            raise ValueError(f"{self.inst.name}: y has {yf.count} elements, "
                             f"expected ways * D = {self.ways * self.dim}")
        ys = []
        for h in range(self.ways):
            port = f"x{h}"
            xs = elems(getattr(self, port).payload, self.layout(port), "x")
            if len(xs) != self.dim:
                raise ValueError(f"{self.inst.name}.{port}: {len(xs)} elements, "
                                 f"expected D = {self.dim}")
            for i, x in enumerate(xs):
                y = Signal(signed(yf.bits), name=f"y{h}_{i}")
                m.d.comb += y.eq(x)
                ys.append(y)
        m.d.comb += self.y.payload.eq(Cat(*ys))


# ---------------------------------------------------------------- split_rows

def split_rows(sizes: list[int]) -> Contract:
    outs = tuple(f"y{p}" for p in range(len(sizes)))
    return Contract("split_rows", ("x",), outs, tuple(
        Phase(f"s{p}", (("r", n_p),), (("x", ALWAYS), (f"y{p}", ALWAYS)))
        for p, n_p in enumerate(sizes)), latency=latency("split_rows"))


def split_rows_model(inst, nm, ins):
    x = np.asarray(ins["x"]["x"], np.int64)
    out, at = {}, 0
    for p, n_p in enumerate(inst.param("sizes")):
        out[f"y{p}"] = {"x": x[at:at + n_p]}
        at += n_p
    return out


class SplitRows(Template):
    def datapath(self, m, seq):
        for p in self.contract.outputs:
            m.d.comb += getattr(self, p).payload.eq(self.x.payload)


# ---------------------------------------------------------------- resource model

def wires_resources(m: NodeModel, inst, hw) -> None:
    """``fork`` (:class:`Fork`), ``concat`` (:class:`Concat`) and ``split_rows``
    (:class:`SplitRows`): the payloads are wires; only the sequencer costs anything."""


TEMPLATE_DEFS = (
    TemplateDef("fork", 1, ForkParams, fork_model, Fork, wires_resources, "a register"),
    TemplateDef("concat", 1, concat_instance, concat_model, Concat, wires_resources,
                "one register"),
    TemplateDef("split_rows", 1, split_rows, split_rows_model, SplitRows, wires_resources,
                "a register"),
)

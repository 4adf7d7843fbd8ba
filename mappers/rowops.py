"""Row templates of a transformer encoder block: ``layernorm``, ``rmsnorm``, ``activation``,
``residual_add`` and ``fork``.

Every port carries one whole row per token: a single vector field ``x`` of D signed
elements (the same layout as ``linear``'s ports, :func:`row_layout`). Every template
fires once per row, taking one token from each input and putting one token on each
output; the timing contract is one phase ``rows`` with loop ``(("i", N),)`` and every port
``always``, ii 1, and the latency from ``mappers.catalog``. Standalone, fed by input
channels of latency 1 without stalls, a template finishes in ``N + 1 + latency(t)``
cycles (reset to last output, inclusive).

The numerics travel in the instance params as frozen, hashable dataclasses (the
``hw.numerics`` of the graph is not used, as for ``linear``):

* ``layernorm`` / ``rmsnorm`` (:class:`NormParams`): ``ir.numerics_norm.LayerNormNumerics``
  and the per-element gamma (and beta for LayerNorm) as stored integers; the RTL holds
  them as constants. RMSNorm has no shift: beta must be all zero.
* ``activation`` (:class:`ActivationParams`): ``fn`` ``gelu`` (``GeluNumerics``: ROM or
  I-BERT polynomial per ``kind``), ``relu`` or ``rescale`` (``RescaleNumerics``: ReLU then
  the requantization, or the requantization alone), element by element.
* ``residual_add`` (:class:`ResidualParams`, :class:`ResidualNumerics`): inputs ``a``
  (the skip path) and ``b`` (the block output), ``y = saturate(ra(a) + rb(b), out)`` where
  ``ra``/``rb`` are ``RescaleNumerics`` to ``out.frac`` fractional bits, each into an
  intermediate format wide enough never to saturate (one rounding per term, one
  saturation of the sum).
* ``fork`` (:class:`ForkParams`): one input ``x``, ``ways`` (2) identical outputs
  ``y0``, ``y1``...: the residual skip path needs the block input twice.

The residual structure ``fork -> block -> residual_add.b`` with the skip ``fork.y1 ->
residual_add.a`` runs at full rate only when the skip channel holds every row in flight
on the block: :func:`skip_depth` (checked against the simulator in ``tests/test_rowops.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.types import FixedFormat
from .contracts import Contract
from .hwgraph import Instance, Layout
from ..templates.rows import check_fmt, check_int, check_template, row_layout, rows_contract

#: the element-wise templates defined here (latencies: ``mappers.catalog``)
TEMPLATES = ("layernorm", "rmsnorm", "activation", "residual_add", "fork")
# ---------------------------------------------------------------- shared pieces

def skip_depth(path_latency: int, row_period: int = 1) -> int:
    """Least depth of a residual skip channel for full rate.

    ``path_latency``: cycles from the fork's firing of a row to the ``residual_add`` firing
    of the same row when nothing stalls (the sum of the channel latencies on the block
    path, plus the cycles a multi-firing template spends between taking a row and
    emitting it, e.g. F - 1 for a folded ``linear``); ``row_period``: cycles per row of
    the slowest template (F for a folded ``linear``, 1 otherwise). The fork may put row
    i + depth on the skip only after the add took row i (a freed slot is writable one
    cycle later), so the skip needs ``ceil((path_latency + 1) / row_period)`` slots.
    Fewer only throttles such a block (rows per cycle: min(depth / (path_latency + 1),
    1 / row_period));
    it deadlocks only when the block needs more rows than the skip holds before it emits
    its first row (e.g. a whole-sequence buffer: then depth >= N is necessary).
    """
    check_int("skip_depth", "path_latency", path_latency, 0)
    check_int("skip_depth", "row_period", row_period)
    return max(1, -(-(path_latency + 1) // row_period))


# ---------------------------------------------------------------- layernorm / rmsnorm

# ---------------------------------------------------------------- activation

# ---------------------------------------------------------------- residual_add

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


def elementwise_fires(dim: int, period: int) -> int:
    """Firings per row of an element-wise template between stages of row period
    ``period``: the largest divisor F of D with F <= period (lanes = D / F), so the
    template never becomes the bottleneck and uses the fewest lanes that keep up."""
    return max(f for f in range(1, min(dim, max(1, period)) + 1) if dim % f == 0)

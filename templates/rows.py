"""What the row templates (``templates.norm``, ``templates.activation``,
``templates.residual``, ``templates.wires``' fork and concat) share: parameter checks
with one-line errors, the row token layout and the rows contract.

Every port of a row template carries one whole row per token: a single vector field
``x`` of D signed elements (the same layout as ``linear``'s ports, :func:`row_layout`).
Every row template fires once per row, taking one token from each input and putting one
token on each output; the timing contract is one phase ``rows`` with loop ``(("i", N),)``
and every port ``always``, ii 1, and the template's latency (``mappers.catalog``).
Standalone, fed by input channels of latency 1 without stalls, a template finishes in
``N + 1 + latency(t)`` cycles (reset to last output, inclusive). An element-wise template
folded to D / F lanes fires F times per row (:func:`rows_contract`, :func:`check_lanes`).

The numerics travel in the instance params as frozen, hashable dataclasses (the
``hw.numerics`` of the graph is not used, as for ``linear``).
"""
from __future__ import annotations

import numpy as np

from ..ir.types import FixedFormat
from ..mappers.catalog import latency
from ..mappers.contracts import ALWAYS, FIRST, LAST, Contract, Phase
from ..mappers.hwgraph import Field, Instance, Layout


def check_int(template: str, name: str, v, lo: int = 1) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{template}: {name} must be an integer >= {lo}, got {v!r}")


def check_fmt(template: str, name: str, f) -> None:
    if not isinstance(f, FixedFormat) or not f.signed or f.bits < 2:
        raise ValueError(f"{template}: format {name} must be a signed FixedFormat of >= 2 "
                         f"bits, got {f!r}")


def check_problems(template: str, problems) -> None:
    if problems:
        field, msg = problems[0]
        raise ValueError(f"{template}: {field}: {msg}")


def stored_ints(template: str, what: str, values, dim: int, fmt: FixedFormat) -> tuple[int, ...]:
    """A vector of D stored integers of ``fmt`` as a tuple (hashable), checked."""
    arr = np.asarray(values, dtype=np.int64).reshape(-1)
    if arr.size != dim:
        raise ValueError(f"{template}: {what} must have D = {dim} elements, got {arr.size}")
    if arr.min() < fmt.min_int or arr.max() > fmt.max_int:
        raise ValueError(f"{template}: {what} must be stored integers of {fmt} "
                         f"({fmt.min_int}..{fmt.max_int}), got {arr.min()}..{arr.max()}")
    return tuple(int(v) for v in arr.tolist())


def row_layout(fmt: FixedFormat, dim: int) -> Layout:
    """A row token: field ``x``, ``dim`` signed elements of ``fmt.bits`` bits."""
    return Layout((Field("x", fmt.bits, True, dim),))


def rows_contract(template: str, n: int, inputs, outputs, fires: int = 1) -> Contract:
    """``fires`` firings per row (an element-wise template folded to D / fires lanes);
    with one, every port is used on every firing; with more, the inputs are taken on a
    row's first firing and the output row leaves on its last (as ``linear``)."""
    check_int(template, "N", n)
    if fires == 1:
        return Contract(template, tuple(inputs), tuple(outputs), (
            Phase("rows", (("i", int(n)),), tuple((p, ALWAYS) for p in (*inputs, *outputs))),
        ), latency=latency(template))
    return Contract(template, tuple(inputs), tuple(outputs), (
        Phase("rows", (("i", int(n)), ("f", int(fires))),
              tuple((p, FIRST) for p in inputs) + tuple((p, LAST) for p in outputs)),
    ), latency=latency(template))


def check_lanes(template: str, dim: int, lanes) -> int:
    """The lanes of an element-wise template (None: all D); must divide D."""
    if lanes is None:
        return dim
    check_int(template, "lanes", lanes)
    if dim % lanes:
        raise ValueError(f"{template}: lanes {lanes} must divide D = {dim}; allowed: "
                         f"{', '.join(str(v) for v in range(1, dim + 1) if dim % v == 0)}")
    return int(lanes)


def check_template(inst: Instance, allowed) -> None:
    if inst.template not in allowed:
        raise ValueError(f"{inst.name}: not a {' or '.join(allowed)} instance ({inst.template})")

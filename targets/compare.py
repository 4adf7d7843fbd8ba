"""Estimate against measurement, for the design report."""
from __future__ import annotations

from dataclasses import dataclass

#: the resources compared, in report order
COMPARED = ("DSP", "BRAM", "URAM", "LUTRAM", "LUT", "FF")


@dataclass(frozen=True)
class CompareRow:
    resource: str
    estimate: float
    measured: float
    ratio: float | None      # estimate / measured (1.0: exact; None: measured 0, estimate not)

    def cells(self) -> tuple:
        r = "-" if self.ratio is None else f"{self.ratio:.2f}"
        return (self.resource, _num(self.estimate), _num(self.measured), r)


def _num(x):
    return int(x) if float(x) == int(x) else round(x, 1)


def _ratio(est, meas):
    if meas:
        return est / meas
    return 1.0 if not est else None


def compare(est, synth, resources=COMPARED) -> list[CompareRow]:
    """Rows (resource, estimate, measured, estimate / measured) for the totals."""
    t = est.totals
    return [CompareRow(r, t.get(r, 0), synth.counts.get(r, 0),
                       _ratio(t.get(r, 0), synth.counts.get(r, 0))) for r in resources]


def compare_nodes(est, synth, resources=("DSP", "LUTRAM", "LUT", "FF")) -> list[tuple]:
    """Per node (hierarchical flows only: Xilinx): (node, resource, estimate, measured, ratio),
    summing the node's Yosys module and its submodules (``<top>.<node>``, ``<top>.<node>.*``)."""
    rows = []
    if not synth.modules:
        return rows
    for row in est.rows:
        prefix = f"{synth.top}.{row.name}"
        mods = [m for name, m in synth.modules.items()
                if name == prefix or name.startswith(prefix + ".")]
        if not mods:
            continue
        values = {"DSP": row.dsp, "LUTRAM": row.lutram, "LUT": row.lut + row.lutram, "FF": row.ff}
        for r in resources:
            meas = sum(m.get(r, 0) for m in mods)
            rows.append((row.name, r, values[r], meas, _ratio(values[r], meas)))
    return rows


def compare_table(rows: list[CompareRow]) -> str:
    lines = ["| resource | estimate | measured | estimate / measured |", "|---|---|---|---|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row.cells()) + " |")
    return "\n".join(lines) + "\n"

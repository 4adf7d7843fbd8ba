"""nextpnr's JSON report (``--report FILE``): achieved Fmax per clock and the critical path,
its start and end named by attnflow instance and signal.

The report (nextpnr ``common/kernel/report.cc``) holds ``fmax`` ({clock: {achieved,
constraint}}, MHz), ``utilization`` ({bel type: {used, available}}) and
``critical_paths``: one per clock pair, each a list of segments typed ``clk-to-q``,
``source``, ``logic``, ``routing`` or ``setup`` with a delay (ns), a ``from`` and ``to``
cell/port and, on routing segments, the net and its Verilog source lines.

Cell names come from Yosys: ``synth_ecp5`` names a cell after a net it drives or reads
(``ch_o.line0_data_TRELLIS_FF_Q_5`` is bit 5 of register ``ch_o.line0_data``;
``ch_ol.store.storage.0.28$DPRAM_COMB1`` is a part of memory ``ch_ol.store.storage``), and
the first component of the name is the template instance or channel that holds it (see
:mod:`.hierarchy`). A path's *through* list is the owners of the Verilog lines its nets
come from, in path order.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from .hierarchy import Hierarchy

#: ECP5 cell types whose name Yosys appends (``<net>_<TYPE>_<port>``) when naming a cell
ECP5_CELL_TYPES = ("TRELLIS_FF", "TRELLIS_DPR16X4", "TRELLIS_RAMW", "TRELLIS_IO", "LUT4",
                   "CCU2C", "PFUMX", "L6MUX21", "MULT18X18D", "ALU54B", "DP16KD", "PDPW16KD")
_TYPE_SUFFIX = re.compile(r"_(?:" + "|".join(ECP5_CELL_TYPES) + r")_[A-Z0-9]")
_MEMORY_PART = re.compile(r"(\.\d+)+$")
_CLOCK_DECOR = re.compile(r"^\$glbnet\$|\$TRELLIS_IO_IN$")


class ReportError(ValueError):
    """A nextpnr report that is not of the expected form (one line, naming the file)."""


@dataclass(frozen=True)
class PathEnd:
    cell: str        # nextpnr's cell name
    port: str
    signal: str      # the RTL signal the cell holds or is named after
    owner: str       # template instance or channel (ch_<name>), or the top


@dataclass(frozen=True)
class CriticalPath:
    clock: str
    delay_ns: float
    logic_ns: float              # cell delays (clock-to-out, logic, setup)
    routing_ns: float
    logic_cells: int             # logic segments on the path
    start: PathEnd
    end: PathEnd
    through: tuple               # owners from start to end (of the nets' Verilog lines)

    def describe(self) -> str:
        via = " -> ".join(self.through) if self.through else "-"
        return (f"critical path {self.delay_ns:.2f} ns ({self.logic_ns:.2f} ns logic, "
                f"{self.routing_ns:.2f} ns routing, {self.logic_cells} logic cells) from "
                f"{self.start.owner}: {self.start.signal} to {self.end.owner}: "
                f"{self.end.signal}; through {via}")

    def to_json(self) -> dict:
        return asdict(self) | {"through": list(self.through)}

    @classmethod
    def from_json(cls, data: dict) -> "CriticalPath":
        return cls(**{**data, "start": PathEnd(**data["start"]), "end": PathEnd(**data["end"]),
                      "through": tuple(data["through"])})


@dataclass(frozen=True)
class NextpnrTiming:
    fmax_mhz: dict               # clock (display name) -> achieved MHz
    constraint_mhz: dict         # clock -> target MHz
    critical: CriticalPath | None  # of the slowest clock
    utilisation: dict            # bel type -> (used, available)

    @property
    def fmax(self) -> float | None:
        """The slowest clock's achieved Fmax (the design's clock when there is one)."""
        return min(self.fmax_mhz.values()) if self.fmax_mhz else None


def clock_name(raw: str) -> str:
    """``$glbnet$clk$TRELLIS_IO_IN`` (a promoted pad clock) -> ``clk``."""
    return _CLOCK_DECOR.sub("", _CLOCK_DECOR.sub("", raw))


def signal_of(cell: str) -> str:
    """The RTL signal a Yosys/nextpnr ECP5 cell name is derived from."""
    base = cell.split("$", 1)[0] if not cell.startswith("$") else cell
    m = _TYPE_SUFFIX.search(base)
    if m:
        base = base[:m.start()]
    return _MEMORY_PART.sub("", base)


def _end(segment: dict, side: str, hierarchy: Hierarchy | None) -> PathEnd:
    cell = segment[side]["cell"]
    owner = hierarchy.owner(cell) if hierarchy else cell.split(".", 1)[0]
    return PathEnd(cell, segment[side]["port"], signal_of(cell), owner)


def critical_path(clock: str, segments: list, hierarchy: Hierarchy | None) -> CriticalPath:
    """A ``critical_paths[i]["path"]`` list -> :class:`CriticalPath`."""
    total = sum(float(s["delay"]) for s in segments)
    routing = sum(float(s["delay"]) for s in segments if s["type"] == "routing")
    through = []
    if hierarchy is not None:
        for s in segments:
            for owner in hierarchy.owners_of_sources(s.get("sources", ())):
                if not through or through[-1] != owner:
                    through.append(owner)
    start, end = _end(segments[0], "from", hierarchy), _end(segments[-1], "to", hierarchy)
    if not through or through[0] != start.owner:
        through.insert(0, start.owner)
    if through[-1] != end.owner:
        through.append(end.owner)
    return CriticalPath(clock, round(total, 3), round(total - routing, 3), round(routing, 3),
                        sum(s["type"] == "logic" for s in segments), start, end, tuple(through))


def parse_report(data: dict, hierarchy: Hierarchy | None = None) -> NextpnrTiming:
    """A loaded nextpnr report -> :class:`NextpnrTiming` (critical path of the slowest clock,
    register to register within that clock; cross-domain and I/O paths are left out)."""
    fmax = {clock_name(k): float(v["achieved"]) for k, v in data.get("fmax", {}).items()}
    target = {clock_name(k): float(v["constraint"]) for k, v in data.get("fmax", {}).items()}
    util = {k: (int(v["used"]), int(v["available"]))
            for k, v in data.get("utilization", {}).items()}
    critical = None
    if fmax:
        slowest = min(fmax, key=fmax.get)
        for p in data.get("critical_paths", ()):
            ends = {clock_name(p["from"].split(" ", 1)[-1]), clock_name(p["to"].split(" ", 1)[-1])}
            if ends == {slowest} and "<async>" not in (p["from"], p["to"]) and p["path"]:
                critical = critical_path(slowest, p["path"], hierarchy)
                break
    return NextpnrTiming(fmax, target, critical, util)


def read_report(path, hierarchy: Hierarchy | None = None) -> NextpnrTiming:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ReportError(f"{path}: not a readable nextpnr JSON report ({e})") from None
    if not isinstance(data, dict) or "fmax" not in data:
        raise ReportError(f"{path}: no 'fmax' entry: not a nextpnr --report file")
    return parse_report(data, hierarchy)

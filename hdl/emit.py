"""Verilog emission."""
from __future__ import annotations

import re
from pathlib import Path

from amaranth.back import verilog

from ..mappers.hwgraph import HwGraph
from .axis import AxisTop, axis_name
from .top import Top


def emit_verilog(hw: HwGraph, path: Path | None = None) -> str:
    text = verilog.convert(Top(hw), name=hw.name, emit_src=False)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    return text


def emit_axis_wrapper(hw: HwGraph, path: Path | None = None) -> str:
    """Verilog of the AXI4-Stream wrapper module ``<top>_axis`` (``hdl.axis``), which
    instantiates the design's module ``<top>``."""
    text = verilog.convert(AxisTop(hw), name=axis_name(hw.name), emit_src=False)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    return text


_MODULE = re.compile(r"^module (\\?[^\s(]+)")
_MEM = re.compile(r"^  reg (?:\[(\d+):0\] )?([A-Za-z_][A-Za-z0-9_$]*) \[(\d+):0\];$")
_WORD = re.compile(r"^    ([A-Za-z_][A-Za-z0-9_$]*)\[(\d+)\] = (\d+)'h([0-9a-fA-F]+);$")


def split_memories(text: str) -> tuple[str, dict[str, str]]:
    """Move every memory initialised with anything but zeros out of the Verilog: its
    ``initial`` block of one assignment per word becomes ``initial $readmemh("FILE",
    mem);`` and FILE (``<module>.<memory>.hex``, one word a line in address order, as
    ``$readmemh`` reads it; found beside the Verilog by Yosys and Vivado, in the working
    directory by simulators) its contents. Returns (Verilog, {file name: contents}).
    All-zero initial blocks (RAMs) stay as they are."""
    lines = text.split("\n")
    out, files, module = [], {}, ""
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _MODULE.match(line)
        if m:
            module = m.group(1).lstrip("\\")
        mem = _MEM.match(line)
        if mem and i + 1 < len(lines) and lines[i + 1] == "  initial begin":
            name, depth = mem.group(2), int(mem.group(3)) + 1
            words, j = [], i + 2
            while j < len(lines) and lines[j] != "  end":
                w = _WORD.match(lines[j])
                if w is None or w.group(1) != name or int(w.group(2)) != len(words):
                    break
                words.append(w.group(4).lower())
                j += 1
            if j < len(lines) and lines[j] == "  end" and len(words) == depth and \
                    any(int(w, 16) for w in words):
                fname = f"{module}.{name}.hex"
                files[fname] = "\n".join(words) + "\n"
                out += [line, f'  initial $readmemh("{fname}", {name});']
                i = j + 1
                continue
        out.append(line)
        i += 1
    return "\n".join(out), files


def write_rtl(text: str, path: Path) -> list[Path]:
    """Write Verilog ``text`` to ``path`` with its initialised memories in ``.hex`` files
    beside it (:func:`split_memories`); returns the files written, Verilog first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body, mems = split_memories(text)
    path.write_text(body)
    written = [path]
    for name, contents in sorted(mems.items()):
        (path.parent / name).write_text(contents)
        written.append(path.parent / name)
    return written

"""Verilog emission."""
from __future__ import annotations

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

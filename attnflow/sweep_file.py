"""The sweep file of ``attnflow sweep``: a base spec, axes over spec fields, what to run.

::

    base: ../examples/encoder_tiny.yaml     # a spec, relative to this file
    axes:                                   # cartesian product, in this order
      model.attention.lanes: [1, 2]         # any dotted spec field (what --set accepts)
      hardware.multiplier_budget: [800, 1500]
      formats.q+formats.k+formats.v:        # '+' joins fields that take the same value
        - {bits: 8, frac: 4}
        - {bits: 6, frac: 3}
      target: [u280, zcu102]                # the device (a run option, not a spec field)
    run: [sim, resources]                   # any of sim, resources, verify, synth
    options:
      target: u280                          # the device when no 'target' axis
      stall_seeds: [1]                      # verify: also run these stall seeds
      simulator: verilator                  # verify: verilator | icarus
      verify_timeout: 1800                  # verify: seconds per testbench run
      synth_timeout: 1800                   # synth: seconds per tool run
      pnr: true                             # synth: place and route on Lattice parts

A problem in the file itself is one :class:`~attnflow.ir.spec.SpecError` line naming the
field and what is allowed; a bad *value* on an axis only fails the points that use it
(their rows carry the error), see :func:`point_spec`.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .ir.spec import Spec, SpecError, load_spec

RUN_STEPS = ("sim", "resources", "verify", "synth")
TOP_FIELDS = ("base", "axes", "run", "options")
OPTION_DEFAULTS = {"target": None, "stall_seeds": [], "simulator": "verilator",
                   "verify_timeout": 1800.0, "synth_timeout": 1800.0, "pnr": True}
SIMULATORS = ("verilator", "icarus")
TARGET_AXIS = "target"


@dataclass(frozen=True)
class Axis:
    key: str                 # as written in the file ("formats.q+formats.k", "target")
    paths: tuple             # the spec fields it sets (empty for the target axis)
    values: tuple


@dataclass(frozen=True)
class Sweep:
    source: str              # the sweep file
    base: Path               # the base spec file
    axes: tuple              # of Axis
    run: tuple               # of RUN_STEPS, in RUN_STEPS order
    options: dict = field(default_factory=dict)

    @property
    def needs_target(self) -> bool:
        return any(s in self.run for s in ("resources", "synth"))


@dataclass
class Point:
    """One combination of axis values: its spec (or the one-line error why none)."""
    index: int
    values: dict             # axis key -> value
    target: str | None
    spec: Spec | None = None
    error: str | None = None


def _fail(source, fld, msg):
    raise SpecError(source, fld, msg)


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        _fail(str(path), "<file>", "file not found")
    except (OSError, UnicodeDecodeError) as e:
        _fail(str(path), "<file>", f"cannot read file: {e}")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        _fail(str(path), "<file>", f"invalid YAML: {getattr(e, 'problem', None) or e}{where}")


def _axes(src: str, raw) -> tuple:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        _fail(src, "axes", "must be a mapping of dotted spec fields (e.g. "
                           "model.attention.lanes) or 'target' to lists of values")
    axes = []
    for key, values in raw.items():
        key = str(key).strip()
        if not isinstance(values, list) or not values:
            _fail(src, f"axes.{key}", f"must be a non-empty list of values, got {values!r}")
        if key == TARGET_AXIS:
            paths = ()
        else:
            paths = tuple(p.strip() for p in key.split("+"))
            bad = [p for p in paths if not p or not all(part.strip() for part in p.split("."))]
            if bad:
                _fail(src, f"axes.{key}", "expected dotted spec fields joined by '+', e.g. "
                                          "model.seq_len or formats.q+formats.k")
        axes.append(Axis(key, paths, tuple(values)))
    return tuple(axes)


def _run(src: str, raw) -> tuple:
    steps = [raw] if isinstance(raw, str) else raw
    if not isinstance(steps, list) or not steps:
        _fail(src, "run", f"must be a non-empty list of {', '.join(RUN_STEPS)}, got {raw!r}")
    for s in steps:
        if s not in RUN_STEPS:
            _fail(src, "run", f"unknown step {s!r}; allowed: {', '.join(RUN_STEPS)}")
    return tuple(s for s in RUN_STEPS if s in steps)


def _options(src: str, raw) -> dict:
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        _fail(src, "options", f"must be a mapping with fields {', '.join(OPTION_DEFAULTS)}")
    for k in raw:
        if k not in OPTION_DEFAULTS:
            _fail(src, f"options.{k}", f"unknown option; allowed: {', '.join(OPTION_DEFAULTS)}")
    opts = {**OPTION_DEFAULTS, **raw}
    seeds = opts["stall_seeds"]
    seeds = [seeds] if isinstance(seeds, int) and not isinstance(seeds, bool) else seeds
    if not isinstance(seeds, list) or any(isinstance(s, bool) or not isinstance(s, int)
                                          or s < 0 for s in seeds):
        _fail(src, "options.stall_seeds", f"must be a list of integers >= 0, got {seeds!r}")
    opts["stall_seeds"] = list(seeds)
    if opts["simulator"] not in SIMULATORS:
        _fail(src, "options.simulator", f"{opts['simulator']!r}; allowed: {', '.join(SIMULATORS)}")
    for name in ("verify_timeout", "synth_timeout"):
        t = opts[name]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or t <= 0:
            _fail(src, f"options.{name}", f"must be a number of seconds > 0, got {t!r}")
        opts[name] = float(t)
    if not isinstance(opts["pnr"], bool):
        _fail(src, "options.pnr", f"must be true or false, got {opts['pnr']!r}")
    if opts["target"] is not None and not isinstance(opts["target"], str):
        _fail(src, "options.target", "must be a device name (u280, vu13p, zcu102, ice40up5k, "
                                     f"ecp5_85f) or a device .yaml, got {opts['target']!r}")
    return opts


def load_sweep(path) -> Sweep:
    """Read and check a sweep file (one SpecError line for anything wrong in it)."""
    path = Path(path)
    src = str(path)
    data = _read(path)
    if not isinstance(data, dict):
        _fail(src, "<file>", f"top level must be a mapping with fields {', '.join(TOP_FIELDS)}")
    for k in data:
        if k not in TOP_FIELDS:
            _fail(src, str(k), f"unknown field; allowed fields: {', '.join(TOP_FIELDS)}")
    if not isinstance(data.get("base"), str):
        _fail(src, "base", "required: the path of a spec file (relative to the sweep file)")
    base = (path.parent / data["base"]) if not Path(data["base"]).is_absolute() else Path(data["base"])
    if not base.exists():
        _fail(src, "base", f"{data['base']}: no such spec file (looked in {base})")
    axes = _axes(src, data.get("axes"))
    run = _run(src, data.get("run", ["sim"]))
    opts = _options(src, data.get("options"))
    sweep = Sweep(src, base, axes, run, opts)
    has_target_axis = any(a.key == TARGET_AXIS for a in axes)
    if has_target_axis and opts["target"] is not None:
        _fail(src, "options.target", "given twice: there is also an axes.target; keep one")
    if sweep.needs_target and not has_target_axis and opts["target"] is None:
        _fail(src, "options.target", f"run {'/'.join(s for s in run if s in ('resources', 'synth'))} "
                                     "needs a device: set options.target or an axes.target")
    return sweep


def _device(sweep: Sweep, value) -> str | None:
    """A target value: a bundled device name, or a device file relative to the sweep file."""
    if value is None:
        return None
    value = str(value)
    rel = Path(sweep.source).parent / value
    return str(rel) if value.endswith((".yaml", ".yml")) and rel.exists() else value


def points(sweep: Sweep) -> list[Point]:
    """Every point of the cartesian product (axis order, last axis fastest), each with
    its validated spec or the one-line error of its values. An axis naming a field that
    does not exist is an error of the sweep file (raised), not of its points."""
    out = []
    combos = itertools.product(*(a.values for a in sweep.axes)) if sweep.axes else [()]
    for index, combo in enumerate(combos):
        values = {a.key: v for a, v in zip(sweep.axes, combo)}
        target = _device(sweep, values.get(TARGET_AXIS, sweep.options["target"]))
        overrides = [(p, v) for a, v in zip(sweep.axes, combo) for p in a.paths]
        point = Point(index, values, target)
        try:
            point.spec = load_spec(sweep.base, overrides)
        except SpecError as e:
            for a in sweep.axes:
                names = any(p == e.field or p.startswith(e.field + ".") for p in a.paths)
                if names and e.message.startswith("unknown field"):
                    _fail(sweep.source, f"axes.{a.key}", f"{e.field}: {e.message}")
            point.error = str(e)
        if point.error is None and target is not None:
            from .targets import load_device
            try:
                load_device(target)
            except SpecError as e:
                point.error = str(e)
        out.append(point)
    return out

"""Model specs: the YAML file that says what hardware to build and how to test it.

A spec is a YAML mapping with the sections below. Every section and field is optional
except ``model.seq_len`` and ``model.head_dim``; the value shown is the default.

.. code-block:: yaml

    name: attnflow_top        # identifier [A-Za-z_][A-Za-z0-9_]*, used as the Verilog name prefix
    model:
      type: attention_head    # what to build; only attention_head (one attention head) for now
      seq_len: <required>     # N, number of tokens: integer >= 1
      head_dim: <required>    # d, width of each Q/K/V row: integer >= 1
      attention:
        kind: full            # which keys each query sees; only full for now
        variant: online       # online (running max and sum, one pass) | naive (full softmax first)
    formats:                  # signed fixed point: `bits` in 2..32 total, `frac` in 0..bits-1 fractional
      q:   {bits: 8, frac: 4}     # query inputs
      k:   {bits: 8, frac: 4}     # key inputs
      v:   {bits: 8, frac: 4}     # value inputs
      out: {bits: 16, frac: 8}    # attention outputs
      score_frac: 8           # fractional bits of the scaled score x = q.k / sqrt(d): 1..12
      prob_frac: 15           # fractional bits of exp() results and probabilities: 4..24
    inputs:                   # the random test inputs
      seed: 1                 # RNG seed for Q, K, V: integer >= 0
      range: 2.0              # values are uniform in [-range, range]: number > 0
    schedule:                 # stall pattern shared by the simulator and the RTL testbench
      seed: 0                 # RNG seed of the pattern: integer >= 0
      input_gap_prob: 0.0     # chance an input stream idles before a token: number in [0, 1)
      input_gap_max: 3        # idle length is uniform in 1..input_gap_max: integer >= 1
      output_ready_prob: 1.0  # chance the output is ready on a cycle: number in (0, 1]
    hardware:
      clock_mhz: 200.0        # target clock: number > 0
      fifo_depths: {}         # channel name -> FIFO depth (integer >= 1), overriding the mapper

Cross-field rules: ``formats.q``, ``formats.k``, ``formats.v`` and ``formats.out`` must
each hold every value in ``[-inputs.range, inputs.range]`` (the attention output is a
convex combination of V rows, so it stays in that range too).

Integers are accepted where numbers are expected; booleans are never accepted as
integers. ``--set key.sub=value`` overrides (see :func:`parse_override`) are applied to
the raw YAML data before validation, so they are checked like the file itself.

Every problem raises :class:`SpecError` with a one-line message
``<source>: <dotted.field>: <what is wrong and what is allowed>``.
"""
from __future__ import annotations

import copy
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from .types import FixedFormat

__all__ = [
    "AttentionSpec", "ModelSpec", "FormatsSpec", "InputsSpec", "ScheduleSpec",
    "HardwareSpec", "Spec", "SpecError", "load_spec", "parse_override",
    "spec_from_dict", "spec_to_dict",
]

DEFAULT_NAME = "attnflow_top"
MODEL_TYPES = ("attention_head",)
ATTENTION_KINDS = ("full",)
ATTENTION_VARIANTS = ("naive", "online")
_NAME_RE = r"[A-Za-z_][A-Za-z0-9_]*"


class SpecError(ValueError):
    """A problem in a spec: ``str(e)`` is ``"<source>: <field>: <message>"`` on one line."""

    def __init__(self, source: str, field: str, message: str):
        super().__init__(source, field, message)
        self.source, self.field, self.message = source, field, message

    def __str__(self) -> str:
        return re.sub(r"\s*\n\s*", " ", f"{self.source}: {self.field}: {self.message}")


# ----------------------------------------------------------------------------- dataclasses

@dataclass(frozen=True)
class AttentionSpec:
    kind: str = "full"
    variant: str = "online"


@dataclass(frozen=True)
class ModelSpec:
    type: str
    seq_len: int
    head_dim: int
    attention: AttentionSpec = AttentionSpec()


@dataclass(frozen=True)
class FormatsSpec:
    q: FixedFormat = FixedFormat(8, 4)
    k: FixedFormat = FixedFormat(8, 4)
    v: FixedFormat = FixedFormat(8, 4)
    out: FixedFormat = FixedFormat(16, 8)
    score_frac: int = 8
    prob_frac: int = 15


@dataclass(frozen=True)
class InputsSpec:
    seed: int = 1
    range: float = 2.0


@dataclass(frozen=True)
class ScheduleSpec:
    seed: int = 0
    input_gap_prob: float = 0.0
    input_gap_max: int = 3
    output_ready_prob: float = 1.0

    @property
    def has_stalls(self) -> bool:
        return self.input_gap_prob > 0 or self.output_ready_prob < 1


@dataclass(frozen=True)
class HardwareSpec:
    clock_mhz: float = 200.0
    fifo_depths: tuple[tuple[str, int], ...] = ()  # sorted by channel name

    def fifo_depth(self, name: str) -> int | None:
        """The depth the spec forces for channel ``name``, or None to let the mapper choose."""
        return dict(self.fifo_depths).get(name)


@dataclass(frozen=True)
class Spec:
    name: str
    model: ModelSpec
    formats: FormatsSpec
    inputs: InputsSpec
    schedule: ScheduleSpec
    hardware: HardwareSpec
    source: str = field(default="<dict>", compare=False)  # where the spec came from


# ----------------------------------------------------------------------------- checking

def _show(value: Any) -> str:
    """A short one-line rendering of a bad value for an error message."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, (int, float)):
        return repr(value)
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"


def _num(x: float) -> str:
    return f"{x:.4g}"


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


class _Checker:
    """Validation helpers that raise SpecError tagged with the spec's source."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, field: str, message: str):
        raise SpecError(self.source, field, message)

    def section(self, data: Any, path: str, allowed: Iterable[str]) -> dict:
        """``data`` as a mapping with only ``allowed`` keys (None counts as empty)."""
        allowed = list(allowed)
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            self.fail(path, f"must be a mapping with fields {', '.join(allowed)}; got {_show(data)}")
        for key in data:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                maybe = f" did you mean '{hint[0]}'?" if hint else ""
                self.fail(_join(path, key), f"unknown field;{maybe} allowed fields: {', '.join(allowed)}")
        return dict(data)

    def integer(self, value: Any, path: str, lo: int, hi: int | None = None, why: str = "") -> int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok or value < lo or (hi is not None and value > hi):
            want = f">= {lo}" if hi is None else f"in {lo}..{hi}"
            self.fail(path, f"must be an integer {want}{why}, got {_show(value)}")
        return value

    def number(self, value: Any, path: str, lo: float, hi: float | None = None,
              lo_open: bool = False, hi_open: bool = False) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if ok:
            ok = (value > lo if lo_open else value >= lo)
            if hi is not None:
                ok = ok and (value < hi if hi_open else value <= hi)
        if not ok:
            if hi is None:
                want = f"> {lo:g}" if lo_open else f">= {lo:g}"
            else:
                want = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
            self.fail(path, f"must be a number {want}, got {_show(value)}")
        return float(value)

    def choice(self, value: Any, path: str, allowed: Iterable[str]) -> str:
        allowed = sorted(allowed)
        if not isinstance(value, str) or value not in allowed:
            shown = repr(value) if isinstance(value, str) else _show(value)
            self.fail(path, f"unsupported value {shown}; allowed: {', '.join(allowed)}")
        return value


def _parse_format(c: _Checker, data: Any, path: str, default: FixedFormat) -> FixedFormat:
    d = c.section(data, path, ("bits", "frac"))
    bits = c.integer(d.get("bits", default.bits), f"{path}.bits", 2, 32)
    frac = c.integer(d.get("frac", default.frac), f"{path}.frac", 0, bits - 1,
                 why=f" (less than {path}.bits = {bits})")
    return FixedFormat(bits, frac)


def _parse(c: _Checker, data: Mapping) -> Spec:
    top = c.section(data, "", ("name", "model", "formats", "inputs", "schedule", "hardware"))

    name = top.get("name", DEFAULT_NAME)
    if not isinstance(name, str) or not re.fullmatch(_NAME_RE, name):
        c.fail("name", f"must be an identifier matching {_NAME_RE} (it prefixes Verilog names), "
                       f"got {_show(name)}")

    m = c.section(top.get("model"), "model", ("type", "seq_len", "head_dim", "attention"))
    for key in ("seq_len", "head_dim"):
        if key not in m:
            c.fail(f"model.{key}", "required field is missing; give an integer >= 1")
    a = c.section(m.get("attention"), "model.attention", ("kind", "variant"))
    dflt_att = AttentionSpec()
    model = ModelSpec(
        type=c.choice(m.get("type", MODEL_TYPES[0]), "model.type", MODEL_TYPES),
        seq_len=c.integer(m["seq_len"], "model.seq_len", 1),
        head_dim=c.integer(m["head_dim"], "model.head_dim", 1),
        attention=AttentionSpec(
            kind=c.choice(a.get("kind", dflt_att.kind), "model.attention.kind", ATTENTION_KINDS),
            variant=c.choice(a.get("variant", dflt_att.variant), "model.attention.variant",
                             ATTENTION_VARIANTS),
        ),
    )

    f = c.section(top.get("formats"), "formats", ("q", "k", "v", "out", "score_frac", "prob_frac"))
    df = FormatsSpec()
    formats = FormatsSpec(
        q=_parse_format(c, f.get("q"), "formats.q", df.q),
        k=_parse_format(c, f.get("k"), "formats.k", df.k),
        v=_parse_format(c, f.get("v"), "formats.v", df.v),
        out=_parse_format(c, f.get("out"), "formats.out", df.out),
        score_frac=c.integer(f.get("score_frac", df.score_frac), "formats.score_frac", 1, 12),
        prob_frac=c.integer(f.get("prob_frac", df.prob_frac), "formats.prob_frac", 4, 24),
    )

    i = c.section(top.get("inputs"), "inputs", ("seed", "range"))
    di = InputsSpec()
    inputs = InputsSpec(
        seed=c.integer(i.get("seed", di.seed), "inputs.seed", 0),
        range=c.number(i.get("range", di.range), "inputs.range", 0, lo_open=True),
    )

    s = c.section(top.get("schedule"), "schedule",
                  ("seed", "input_gap_prob", "input_gap_max", "output_ready_prob"))
    ds = ScheduleSpec()
    schedule = ScheduleSpec(
        seed=c.integer(s.get("seed", ds.seed), "schedule.seed", 0),
        input_gap_prob=c.number(s.get("input_gap_prob", ds.input_gap_prob),
                               "schedule.input_gap_prob", 0, 1, hi_open=True),
        input_gap_max=c.integer(s.get("input_gap_max", ds.input_gap_max), "schedule.input_gap_max", 1),
        output_ready_prob=c.number(s.get("output_ready_prob", ds.output_ready_prob),
                                  "schedule.output_ready_prob", 0, 1, lo_open=True),
    )

    h = c.section(top.get("hardware"), "hardware", ("clock_mhz", "fifo_depths"))
    depths = h.get("fifo_depths")
    if depths is not None and not isinstance(depths, Mapping):
        c.fail("hardware.fifo_depths", f"must be a mapping of channel name -> depth, got {_show(depths)}")
    for chan, depth in (depths or {}).items():
        if not isinstance(chan, str) or not chan:
            c.fail("hardware.fifo_depths", f"channel names must be non-empty strings, got {_show(chan)}")
        c.integer(depth, f"hardware.fifo_depths.{chan}", 1)
    hardware = HardwareSpec(
        clock_mhz=c.number(h.get("clock_mhz", HardwareSpec().clock_mhz), "hardware.clock_mhz", 0,
                          lo_open=True),
        fifo_depths=tuple(sorted((depths or {}).items())),
    )

    r = inputs.range
    for key in ("q", "k", "v", "out"):
        fmt = getattr(formats, key)
        if not fmt.holds(-r, r):
            why = " (the output is a convex combination of V rows)" if key == "out" else ""
            c.fail(f"formats.{key}",
                   f"{fmt} holds [{_num(fmt.min_value)}, {_num(fmt.max_value)}]; inputs.range {r!r} "
                   f"does not fit{why}: raise formats.{key}.bits or lower formats.{key}.frac")

    return Spec(name, model, formats, inputs, schedule, hardware, source=c.source)


# ----------------------------------------------------------------------------- public API

def parse_override(text: str) -> tuple[str, Any]:
    """Split a ``--set key.sub=value`` string; the value is read as a YAML scalar or flow value."""
    key, eq, raw = text.partition("=")
    key = key.strip()
    if not eq or not key or not all(part.strip() for part in key.split(".")):
        raise SpecError("<command line>", "--set",
                        f"expected key.sub=value (e.g. model.seq_len=64), got {text!r}")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or e
        raise SpecError("<command line>", "--set",
                        f"value of {key} is not valid YAML: {problem}") from None
    return key, value


def _apply_overrides(data: dict, overrides: Iterable, source: str) -> dict:
    """A copy of ``data`` with each override (``"k.s=v"`` text or ``(key, value)``) applied."""
    data = copy.deepcopy(data)
    for ov in overrides:
        key, value = parse_override(ov) if isinstance(ov, str) else ov
        parts = [p.strip() for p in key.split(".")]
        node = data
        for depth, part in enumerate(parts[:-1]):
            if node.get(part) is None:
                node[part] = {}
            elif isinstance(node[part], Mapping):
                node[part] = dict(node[part])
            else:
                where = ".".join(parts[:depth + 1])
                raise SpecError(source, "--set", f"cannot set {key}: {where} is "
                                                 f"{_show(node[part])}, not a mapping")
            node = node[part]
        node[parts[-1]] = value
    return data


def spec_from_dict(d: Any, source: str = "<dict>", overrides: Iterable = ()) -> Spec:
    """Validate raw spec data (as read from YAML) after applying ``overrides``."""
    c = _Checker(source)
    if not isinstance(d, Mapping):
        c.fail("<file>", "top level must be a mapping with sections name, model, formats, inputs, "
                         f"schedule, hardware; got {_show(d)}")
    return _parse(c, _apply_overrides(dict(d), overrides, source))


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key repeated in one mapping instead of keeping the last."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable key: let SafeLoader report it
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
        return super().construct_mapping(node, deep)


def load_spec(path: str | Path, overrides: Iterable = ()) -> Spec:
    """Read, override and validate the YAML spec at ``path``."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(source, "<file>", "file not found") from None
    except UnicodeDecodeError:
        raise SpecError(source, "<file>", "file is not UTF-8 text") from None
    except OSError as e:
        raise SpecError(source, "<file>", f"cannot read file: {e.strerror or e}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(source, "<file>",
                        f"invalid YAML: {getattr(e, 'problem', None) or e}{where}") from None
    if data is None:
        raise SpecError(source, "<file>", "file is empty; a spec needs at least model.seq_len "
                                          "and model.head_dim")
    return spec_from_dict(data, source, overrides)


def spec_to_dict(spec: Spec) -> dict:
    """The fully resolved spec as plain YAML-able data (``source`` is not included)."""
    fmt = lambda f: {"bits": f.bits, "frac": f.frac}  # noqa: E731
    m, f, i, s, h = spec.model, spec.formats, spec.inputs, spec.schedule, spec.hardware
    return {
        "name": spec.name,
        "model": {"type": m.type, "seq_len": m.seq_len, "head_dim": m.head_dim,
                  "attention": {"kind": m.attention.kind, "variant": m.attention.variant}},
        "formats": {"q": fmt(f.q), "k": fmt(f.k), "v": fmt(f.v), "out": fmt(f.out),
                    "score_frac": f.score_frac, "prob_frac": f.prob_frac},
        "inputs": {"seed": i.seed, "range": i.range},
        "schedule": {"seed": s.seed, "input_gap_prob": s.input_gap_prob,
                     "input_gap_max": s.input_gap_max, "output_ready_prob": s.output_ready_prob},
        "hardware": {"clock_mhz": h.clock_mhz, "fifo_depths": dict(h.fifo_depths)},
    }

"""Size guards and the simulation budget: refuse, in one line naming the spec field, a
design whose golden model, simulation, report or RTL would need more memory than
``--max-memory`` or more simulated cycles than ``--max-cycles``, before anything is
allocated; stop a run that passes its cycle budget; report progress on long runs.

The estimates are deliberately simple (the dominant arrays, in bytes; cycles from the
busiest template and the stall probabilities). Cycles err on the low side, so a cycle
refusal is never for a run that would have kept within the budget. Each memory part is
checked on its own against the limit (measured: a head at N = 1024 needs 64 MiB of
score matrices and 361 MiB of simulator state by these formulas, 443 MB measured above
the interpreter's 62 MB; the tiny encoder at N = 128 about 42 MiB, 61 MB measured: its
integer plans and tables are not counted):

* spec level (before :func:`attnflow.api.prepare`): the random inputs / weights (float64
  drawn, int64 stored: 16 B per value), the golden model's activations and score
  matrices (eight float64 / int64 copies of one head's N x N score matrix; three per
  head and layer of an encoder);
* design level (from the HwGraph): the fast timing engine's two int64 arrays per firing
  of every template and the times of every channel token (8 B on average), the largest
  channel's values three times over (only the input and output streams are kept), the
  ready pattern (a
  byte per cycle, two more in ``build``'s testbench vectors), and in ``build`` each
  FIFO's storage in the RTL emitter (~16 B per entry);
* cycles: the most of (the busiest template's firings x its II), (each input's tokens
  plus their expected gaps, ``tokens x (1 + gap_prob x (gap_max + 1) / 2)``) and (each
  output's tokens / output_ready_prob): the run is not expected to be shorter than any.

Defaults: :data:`DEFAULT_MAX_MEMORY` (16 GiB) and :data:`DEFAULT_MAX_CYCLES` (10^9; a
stall-bound head run here drew its ready pattern to 1.27e9 cycles in 31 s).
"""
from __future__ import annotations

import math
import os
import re
import stat
import sys
import threading
import time
from dataclasses import dataclass

from .ir.spec import SpecError

GiB = 1 << 30
DEFAULT_MAX_MEMORY = 16 * GiB
DEFAULT_MAX_CYCLES = 10 ** 9
#: seconds between progress lines of a long simulation (stderr)
PROGRESS_EVERY = 5.0

_STAMP = 56          # bytes per token timestamp in the reference engine's lists
#: the fast timing engine: bytes per firing it keeps (``sim.fast.kept_firings``: its
#: times T, int64, and bounds W, int32) and per
#: channel token (the push/pop times of a port that is not a view of T), and how many
#: copies of the largest channel's values the run holds at once (the stream, its
#: consumer's arrays; only the input and output streams are kept)
_FIRING = 12
_TOKEN = 8
_VALUES = 3
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


class LimitError(SpecError):
    """A size or cycle limit refused the design (a SpecError: one line, exit 2)."""


@dataclass(frozen=True)
class Limits:
    max_memory: int = DEFAULT_MAX_MEMORY
    max_cycles: int = DEFAULT_MAX_CYCLES


def show_bytes(n: float) -> str:
    """``7.0 EiB``; past EiB in powers of ten of bytes (``2.0e+22 B``)."""
    for i, unit in enumerate(_UNITS):
        if n < 1024 ** (i + 1) or i == len(_UNITS) - 1:
            if n >= 1024 ** (i + 1):
                return f"{n:.2g} B"
            return f"{n / 1024 ** i:.3g} {unit}"
    return f"{n:.2g} B"


def show_count(n: float) -> str:
    if not math.isfinite(n):
        return "over 1e+308"
    return f"{n:.3g}" if n >= 1e6 else str(int(n))


def parse_size(text: str) -> int:
    """``16G``, ``512MiB``, ``1e9`` (bytes) -> bytes; ValueError otherwise."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?(?:[eE][0-9]+)?)\s*([KMGTP]?)(?:i?B)?\s*",
                     str(text), re.IGNORECASE)
    if not m:
        raise ValueError(f"{text!r} is not a size: give bytes or a number with K, M, G, T "
                         f"or P (powers of 1024), e.g. 16G")
    value = float(m.group(1)) * 1024 ** ("KMGTP".find(m.group(2).upper()) + 1
                                         if m.group(2) else 0)
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"{text!r}: the size must be at least 1 byte")
    return int(value)


def parse_cycles(text: str) -> int:
    """``1000000``, ``1e9`` -> cycles (>= 1); ValueError otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a cycle count, e.g. 1e9") from None
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"{text!r}: the cycle budget must be at least 1")
    return int(value)


def check_spec_path(path) -> None:
    """Refuse a spec path that is not a regular file or a folder (a named pipe or a device
    would block or never end when read)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return                      # missing or unreadable: the loader says so
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        what = "a named pipe" if stat.S_ISFIFO(mode) else "not a regular file"
        raise SpecError(str(path), "<file>", f"{what}; give a spec file (.yaml or .json) "
                                             f"or a Hugging Face config folder")


# ----------------------------------------------------------------------------- spec level

def _refuse_memory(spec, field: str, value, need: float, what: str, limits: Limits):
    if need > limits.max_memory:
        raise LimitError(spec.source, field,
                         f"{value} needs about {show_bytes(need)} of {what}; the limit is "
                         f"{show_bytes(limits.max_memory)} (raise it with --max-memory)")


def check_spec(spec, limits: Limits) -> None:
    """Refuse a spec whose inputs, weights or golden-model arrays alone exceed the memory
    limit (before :func:`attnflow.api.prepare` allocates any of them)."""
    m = spec.model
    n = m.seq_len
    if m.type != "encoder":
        d = m.head_dim
        big = ("model.head_dim", d) if d >= n else ("model.seq_len", n)
        _refuse_memory(spec, *big, 3 * n * d * 16 + n * d * 8 * 4,
                       f"Q, K, V inputs and outputs (N = {n}, d = {d})", limits)
        _refuse_memory(spec, "model.seq_len", n, 8 * 8 * n * n + 2 * 8 * n * d,
                       f"score matrices in the golden model (N x N = {n} x {n})", limits)
        return
    dm, dff, layers, heads = m.d_model, m.d_ff, m.layers, m.heads
    params = layers * (4 * dm * dm + 2 * dm * dff + 9 * dm + dff)
    big = (("model.layers", layers) if layers > max(dm, dff) else
           ("model.d_model", dm) if 4 * dm >= 2 * dff else ("model.d_ff", dff))
    _refuse_memory(spec, *big, params * 16,
                   f"weights ({show_count(params)} values: {layers} layer(s), d_model "
                   f"{dm}, d_ff {dff})", limits)
    big = ("model.seq_len", n) if n >= max(dm, dff) else big
    _refuse_memory(spec, *big, 8 * 8 * n * max(dm, dff) * layers,
                   f"activations in the golden model (N = {n} x {max(dm, dff)} per layer)",
                   limits)
    _refuse_memory(spec, "model.seq_len", n, 3 * 8 * n * n * heads * layers,
                   f"score matrices in the golden model ({layers} x {heads} heads of "
                   f"{n} x {n})", limits)


# ----------------------------------------------------------------------------- design level

def expected_cycles(hw, schedule) -> tuple[int, str, str]:
    """(a lower bound on the run's cycles, the spec field that drives it, why)."""
    best = (0, "model.seq_len", "no template fires")
    for inst in hw.instances.values():
        c = inst.contract.fires * inst.contract.ii
        if c > best[0]:
            best = (c, "model.seq_len", f"{inst.name} fires {show_count(inst.contract.fires)} "
                                        f"times")
    for name in hw.inputs:
        tok = hw.tokens(name)
        c = tok * (1 + schedule.input_gap_prob * (schedule.input_gap_max + 1) / 2)
        if c > best[0] and schedule.input_gap_prob > 0:
            best = (c, "schedule.input_gap_max",
                    f"{show_count(tok)} tokens on input {name} with gaps of up to "
                    f"{schedule.input_gap_max} cycles at probability {schedule.input_gap_prob!r}")
    for name in hw.outputs:
        tok = hw.tokens(name)
        c = tok / schedule.output_ready_prob
        if c > best[0] and schedule.output_ready_prob < 1:
            best = (c, "schedule.output_ready_prob",
                    f"{show_count(tok)} tokens on output {name} ready on "
                    f"{schedule.output_ready_prob!r} of the cycles")
    return best


def _elements(layout) -> int:
    return sum(getattr(f, "count", 1) for f in layout.fields)


def check_design(design, limits: Limits, build: bool = False) -> int:
    """Refuse a mapped design whose simulation (or, ``build``, its report, testbench
    vectors and RTL) would pass the memory limit, or whose expected cycles pass the cycle
    budget. Returns the expected cycles."""
    spec, hw = design.spec, design.hw
    sched = spec.schedule
    cycles, field, why = expected_cycles(hw, sched)
    # what makes the run long: the sequence length, or the sequences run back to back
    size = (("hardware.sequences", hw.sequences) if hw.sequences > 1 else
            ("model.seq_len", spec.model.seq_len))
    if field == "model.seq_len":
        field = size[0]
    if cycles > limits.max_cycles:
        value = getattr(sched, field.split(".")[1]) if field.startswith("schedule.") \
            else size[1]
        raise LimitError(spec.source, field,
                         f"{value!r} makes the simulation take at least {show_count(cycles)} "
                         f"cycles ({why}); the cycle budget is {show_count(limits.max_cycles)} "
                         f"(raise it with --max-cycles)")
    tokens = {c.name: hw.tokens(c.name) for c in hw.channels.values()}
    from .sim.fast import kept_firings
    fires = sum(kept_firings(i.contract) for i in hw.instances.values())
    values = max((t * 8 * _elements(hw.channels[c].layout) for c, t in tokens.items()),
                 default=0)
    sim = fires * _FIRING + sum(tokens.values()) * _TOKEN + values * _VALUES
    ready = cycles * (3 if build else 1) if sched.output_ready_prob < 1 else 0
    _refuse_memory(spec, *size, sim + ready,
                   f"simulator state ({show_count(sum(tokens.values()))} channel tokens"
                   + (f", {show_count(cycles)} cycles of ready pattern" if ready else "")
                   + ")", limits)
    if build:
        forced = dict(spec.hardware.fifo_depths)
        for c in hw.channels.values():
            need = c.depth * (16 + c.layout.width / 8)
            field = f"hardware.fifo_depths.{c.name}" if c.name in forced else "model.seq_len"
            value = c.depth if c.name in forced else spec.model.seq_len
            _refuse_memory(spec, field, value, need,
                           f"FIFO storage for channel {c.name} (depth {c.depth} x "
                           f"{c.layout.width} bits) in the RTL emitter", limits)
    return int(cycles)


# ----------------------------------------------------------------------------- the run

def _progress(stop: threading.Event, patterns, expected: int, out):
    start = time.monotonic()
    while not stop.wait(PROGRESS_EVERY):
        drawn = max((len(p.bits) for p in patterns), default=0)
        where = f", output ready pattern drawn to cycle {show_count(drawn)}" if drawn else ""
        print(f"[attnflow] simulating: {time.monotonic() - start:.0f} s{where}; expected "
              f"at least {show_count(expected)} cycles", file=out, flush=True)


def simulate(design, limits: Limits, schedule=None, expected: int | None = None,
             out=None):
    """``design.simulate(schedule)`` within the cycle budget: a run that passes
    ``limits.max_cycles`` stops with a LimitError (how far it got, the expected total,
    how to raise it); a run longer than :data:`PROGRESS_EVERY` seconds prints progress
    to ``out`` (stderr)."""
    from .sim import schedule_from_spec, simulate as run
    spec_sched = schedule or design.spec.schedule
    sched = schedule_from_spec(spec_sched, design.hw)
    if expected is None:
        expected = int(expected_cycles(design.hw, spec_sched)[0])
    patterns = list(sched.ready.values())
    for p in patterns:
        p.limit = limits.max_cycles
    stop = threading.Event()
    watcher = threading.Thread(target=_progress, daemon=True,
                               args=(stop, patterns, expected, out or sys.stderr))
    watcher.start()
    try:
        return run(design.hw, design.stream_inputs(), sched, keep_values=False)
    except Exception as e:
        from .sim.schedule import CycleBudgetExceeded
        if not isinstance(e, CycleBudgetExceeded):
            raise
        raise LimitError(design.spec.source, "--max-cycles",
                         f"the simulation passed the cycle budget of "
                         f"{show_count(e.limit)} cycles (the output ready pattern was needed "
                         f"up to cycle {show_count(e.cycle)}; expected at least "
                         f"{show_count(expected)}); raise --max-cycles to run it to the "
                         f"end") from None
    finally:
        stop.set()
        for p in patterns:
            p.limit = None

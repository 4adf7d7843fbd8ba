"""Stall schedules: when inputs are offered and when outputs are accepted.

Both the simulator and the emitted testbench replay these exactly:

* input stream, token k: offered (valid) from cycle ``offer_k``: ``offer_0 = gap_0``;
  after token k moves in cycle t_k, ``offer_{k+1} = t_k + 1 + gap_{k+1}``.
* output stream: ready in cycle t is ``ready[t]`` (a bit per cycle, 1 past the end).

Random schedules come from a seed: each stream draws from its own child of
``numpy.random.SeedSequence(seed)``, in the order inputs then outputs by name.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_BLOCK = 4096
_CHUNK = 1 << 22


class CycleBudgetExceeded(RuntimeError):
    """A run passed its cycle budget (``ReadyPattern.limit``): ``cycle`` is how far the
    ready pattern had to be drawn, ``limit`` the budget."""

    def __init__(self, cycle: int, limit: int):
        super().__init__(f"cycle {cycle} is past the cycle budget {limit}")
        self.cycle, self.limit = cycle, limit


_BITS_TEXT = bytes.maketrans(b"\x00\x01", b"01")


class ReadyPattern:
    """Ready bit per cycle, drawn lazily in blocks (deterministic for a seed: the bits do
    not depend on how far or in what steps they were drawn). ``limit``: a cycle budget;
    drawing the pattern past it raises :class:`CycleBudgetExceeded` (None: no budget)."""

    limit: int | None = None

    def __init__(self, prob: float, seed_seq: np.random.SeedSequence | None):
        self.prob = prob
        self.bits = bytearray()
        self._rng = np.random.default_rng(seed_seq) if prob < 1.0 else None

    def _grow(self, upto: int):
        if self.limit is not None and upto >= self.limit:
            raise CycleBudgetExceeded(upto, self.limit)
        missing = upto + 1 - len(self.bits)
        if missing > 0:       # whole blocks, at least half again what is drawn already
            n = -(-max(missing, len(self.bits) // 2) // _BLOCK) * _BLOCK
            if self.limit is not None:
                n = max(missing, min(n, self.limit - len(self.bits)))
            while n > 0:      # in chunks: the float draws never hold more than 32 MiB
                k = min(n, _CHUNK)
                self.bits += (self._rng.random(k) < self.prob).astype(np.uint8).tobytes()
                n -= k

    def first_ready(self, t: int) -> int:
        """First cycle >= t with ready high (past ``limit``: CycleBudgetExceeded)."""
        if self._rng is None:
            return t
        while True:
            if t >= len(self.bits):
                self._grow(t)
            i = self.bits.find(1, t)
            if i >= 0:
                if self.limit is not None and i >= self.limit:
                    raise CycleBudgetExceeded(i, self.limit)
                return i
            t = len(self.bits)

    def as_string(self, ncycles: int) -> str:
        if self._rng is None:
            return ""
        self._grow(ncycles)
        return bytes(self.bits[:ncycles]).translate(_BITS_TEXT).decode("ascii")


@dataclass
class Schedule:
    gaps: dict[str, list[int]]       # input channel -> idle cycles before each token
    ready: dict[str, ReadyPattern]   # output channel -> ready pattern

    @property
    def stalls(self) -> bool:
        return any(any(g) for g in self.gaps.values()) or \
            any(p.prob < 1.0 for p in self.ready.values())


def make_schedule(inputs: dict[str, int], outputs: list[str], seed: int = 0,
                  input_gap_prob: float = 0.0, input_gap_max: int = 1,
                  output_ready_prob: float = 1.0) -> Schedule:
    """``inputs``: input channel -> token count; ``outputs``: output channel names."""
    names_in = sorted(inputs)
    names_out = sorted(outputs)
    children = np.random.SeedSequence(seed).spawn(len(names_in) + len(names_out))
    gaps = {}
    for name, ss in zip(names_in, children):
        n = inputs[name]
        if input_gap_prob <= 0:
            gaps[name] = [0] * n
            continue
        rng = np.random.default_rng(ss)
        idle = rng.random(n) < input_gap_prob
        length = rng.integers(1, input_gap_max + 1, n)
        gaps[name] = np.where(idle, length, 0).astype(int).tolist()
    ready = {name: ReadyPattern(output_ready_prob, ss)
             for name, ss in zip(names_out, children[len(names_in):])}
    return Schedule(gaps, ready)


def schedule_from_spec(sched, hw) -> Schedule:
    return make_schedule({c: hw.tokens(c) for c in hw.inputs}, hw.outputs, sched.seed,
                         sched.input_gap_prob, sched.input_gap_max, sched.output_ready_prob)

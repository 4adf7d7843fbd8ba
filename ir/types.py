"""Typed tensors: fixed-point formats and tensor types.

A :class:`FixedFormat` is a two's-complement (or unsigned) fixed-point number with
``bits`` total bits of which ``frac`` are fractional: the stored integer ``x`` stands for
``x / 2**frac``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FixedFormat:
    bits: int
    frac: int
    signed: bool = True

    def __post_init__(self):
        if not isinstance(self.bits, int) or self.bits < 1:
            raise ValueError(f"bits must be a positive integer, got {self.bits!r}")
        if not isinstance(self.frac, int):
            raise ValueError(f"frac must be an integer, got {self.frac!r}")

    @property
    def min_int(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max_int(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def min_value(self) -> float:
        return self.min_int / 2.0 ** self.frac

    @property
    def max_value(self) -> float:
        return self.max_int / 2.0 ** self.frac

    @property
    def lsb(self) -> float:
        return 2.0 ** -self.frac

    def holds(self, lo: float, hi: float) -> bool:
        """True when every real value in [lo, hi] rounds to a representable integer."""
        return self.min_value - self.lsb / 2 <= lo and hi <= self.max_value + self.lsb / 2

    def __str__(self) -> str:
        kind = "s" if self.signed else "u"
        return f"{kind}{self.bits}.{self.frac}"


@dataclass(frozen=True)
class TensorType:
    shape: tuple[int, ...]
    fmt: FixedFormat | None  # None: float-only tensor

    def __str__(self) -> str:
        return f"{'x'.join(map(str, self.shape))}:{self.fmt}"


class IntArray:
    """An immutable integer numpy array that can sit in a frozen, hashable parameter set
    (``mappers.hwgraph.Instance.params``): a read-only view of ``values`` (no copy when
    it is already an integer array), hashed by shape, dtype and contents once, equal to
    an IntArray of the same shape and values. Holds a linear's weights without turning
    millions of them into Python tuples."""
    __slots__ = ("array", "_hash")

    def __init__(self, values):
        a = np.asarray(values)
        if a.dtype.kind not in "iu":
            a = a.astype(np.int64)
        a = a.view()
        a.flags.writeable = False
        self.array = a
        self._hash = None

    def __hash__(self) -> int:
        if self._hash is None:
            data = np.ascontiguousarray(self.array).tobytes()
            self._hash = hash((self.array.shape, hashlib.blake2b(data, digest_size=16)
                               .digest()))
        return self._hash

    def __eq__(self, other) -> bool:
        if not isinstance(other, IntArray):
            return NotImplemented
        return (self.array.shape == other.array.shape
                and bool(np.array_equal(self.array, other.array)))

    def __len__(self) -> int:
        return len(self.array)

    def __repr__(self) -> str:
        return f"IntArray(shape={self.array.shape}, dtype={self.array.dtype})"

"""The hardware graph: template instances connected by channels.

Both back-ends (``sim`` and ``hdl``) read this and nothing else: the mapper decides every
parameter (channel width, depth, latency; template parameters) once, here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .contracts import Contract


@dataclass(frozen=True)
class Field:
    """One field of a token: ``count`` elements of ``bits`` bits (count 1: a scalar)."""
    name: str
    bits: int
    signed: bool = True
    count: int = 1

    @property
    def width(self) -> int:
        return self.bits * self.count


@dataclass(frozen=True)
class Layout:
    """A token's bit layout: fields packed LSB first in order; element i of a vector field
    at offset ``i * bits`` within the field (the order of Amaranth's Struct/ArrayLayout)."""
    fields: tuple[Field, ...]

    @property
    def width(self) -> int:
        return sum(f.width for f in self.fields)

    def pack(self, values: dict) -> list[int]:
        """Token values (field -> array (ntok,) or (ntok, count)) -> packed unsigned ints."""
        n = None
        words = None
        shift = 0
        for f in self.fields:
            arr = np.asarray(values[f.name], dtype=np.int64).reshape(-1, f.count)
            if n is None:
                n = arr.shape[0]
                words = [0] * n
            mask = (1 << f.bits) - 1
            for t in range(n):
                w = 0
                for i, x in enumerate(arr[t].tolist()):
                    w |= (x & mask) << (i * f.bits)
                words[t] |= w << shift
            shift += f.width
        return words

    def unpack(self, words) -> dict:
        out = {}
        shift = 0
        for f in self.fields:
            mask = (1 << f.bits) - 1
            vals = []
            for w in words:
                row = []
                for i in range(f.count):
                    x = (w >> (shift + i * f.bits)) & mask
                    if f.signed and x >> (f.bits - 1):
                        x -= 1 << f.bits
                    row.append(x)
                vals.append(row)
            arr = np.array(vals, dtype=np.int64).reshape(len(words), f.count)
            out[f.name] = arr[:, 0] if f.count == 1 else arr
            shift += f.width
        return out


@dataclass(frozen=True)
class Channel:
    """A single-producer single-consumer FIFO: a token enqueued in cycle t is visible to
    the consumer from cycle t + latency; a slot freed by a dequeue in cycle t can be
    filled again from cycle t + 1. ``depth`` counts tokens in flight and stored.
    ``src``/``dst`` are (instance, port); None marks a graph input / output."""
    name: str
    layout: Layout
    depth: int
    latency: int
    src: tuple[str, str] | None
    dst: tuple[str, str] | None


@dataclass(frozen=True)
class Instance:
    name: str
    template: str
    contract: Contract
    params: tuple[tuple[str, Any], ...] = ()

    def param(self, key, default=None):
        return dict(self.params).get(key, default)


class FrozenDict(dict):
    """A dict that refuses changes: the tables of a frozen :class:`HwGraph`."""

    def _refuse(self, *args, **kw):
        raise TypeError("this HwGraph is frozen after mapping: map a new one (e.g. with "
                        "hardware.fifo_depths overrides) instead of changing it")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse

    def __reduce__(self):
        return (FrozenDict, (dict(self),))


@dataclass
class HwGraph:
    """Template instances and the channels between them. A mapper builds it, checks it
    (:meth:`validate`) and freezes it (:meth:`freeze`): from then on its instances,
    channels and notes can't change, so the simulator, the HDL, the estimator and the
    report all see the graph that was checked."""
    name: str
    instances: dict[str, Instance] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    numerics: Any = None
    variant: str = ""
    #: channel name -> (why this depth, the minimum for full throughput)
    depth_notes: dict[str, str] = field(default_factory=dict)

    def __setattr__(self, key, value):
        if self.__dict__.get("_frozen"):
            FrozenDict._refuse(None)
        object.__setattr__(self, key, value)

    def freeze(self) -> "HwGraph":
        """Validate, then refuse any change from now on; returns ``self``."""
        self.validate()
        for key in ("instances", "channels", "depth_notes"):
            object.__setattr__(self, key, FrozenDict(getattr(self, key)))
        object.__setattr__(self, "_frozen", True)
        return self

    @property
    def frozen(self) -> bool:
        return self.__dict__.get("_frozen", False)

    @property
    def inputs(self) -> list[str]:
        return [c.name for c in self.channels.values() if c.src is None]

    @property
    def outputs(self) -> list[str]:
        return [c.name for c in self.channels.values() if c.dst is None]

    def port_channels(self, inst: str) -> dict[str, Channel]:
        """port -> channel for one instance (a frozen graph indexes every instance's
        ports once: a stack of ~1000 instances asks for them thousands of times)."""
        if self.frozen:
            index = self.__dict__.get("_ports")
            if index is None:
                index = self._port_index()
                object.__setattr__(self, "_ports", index)
            return dict(index.get(inst, {}))
        out = {}
        for c in self.channels.values():
            if c.src and c.src[0] == inst:
                out[c.src[1]] = c
            if c.dst and c.dst[0] == inst:
                out[c.dst[1]] = c
        return out

    def _port_index(self) -> dict[str, dict[str, Channel]]:
        """instance -> port -> channel, every instance's in one pass over the channels."""
        index = {name: {} for name in self.instances}
        for c in self.channels.values():
            for end in (c.src, c.dst):
                if end and end[0] in index:
                    index[end[0]][end[1]] = c
        return index

    def validate(self):
        index = self._port_index()
        for inst in self.instances.values():
            ports = index[inst.name]
            for p in inst.contract.inputs + inst.contract.outputs:
                if p not in ports:
                    raise ValueError(f"{inst.name}: port {p} is not connected")
        for c in self.channels.values():
            if c.depth < 1:
                raise ValueError(f"channel {c.name}: depth must be >= 1, got {c.depth}")
            ntok = set()
            if c.src:
                ntok.add(self.instances[c.src[0]].contract.tokens(c.src[1]))
            if c.dst:
                ntok.add(self.instances[c.dst[0]].contract.tokens(c.dst[1]))
            if len(ntok) > 1:
                raise ValueError(f"channel {c.name}: producer and consumer disagree on "
                                 f"token count {sorted(ntok)}")

    @property
    def sequences(self) -> int:
        """Sequences every template processes back to back (``Contract.sequences``)."""
        return next(iter(self.instances.values())).contract.sequences if self.instances else 1

    @property
    def stream(self) -> bool:
        """The RTL runs sequences as long as inputs come (``Contract.stream``)."""
        return next(iter(self.instances.values())).contract.stream if self.instances else False

    def with_sequences(self, sequences: int, stream: bool = False) -> "HwGraph":
        """The same graph running ``sequences`` sequences back to back (``stream``: and its
        RTL never stopping): every contract's ``sequences`` and ``stream`` set (frozen like
        this one); itself when it already does."""
        if (sequences, stream) == (self.sequences, self.stream):
            return self
        return self.derived(instances={n: dataclasses.replace(i, contract=dataclasses.replace(
            i.contract, sequences=sequences, stream=stream)) for n, i in self.instances.items()})

    def derived(self, instances=None, channels=None, depth_notes=None) -> "HwGraph":
        """A copy with the given tables replaced (the rest shared), frozen (validated)
        like this one."""
        hw = HwGraph(self.name, dict(self.instances if instances is None else instances),
                     dict(self.channels if channels is None else channels), self.numerics,
                     self.variant, dict(self.depth_notes if depth_notes is None else depth_notes))
        return hw.freeze() if self.frozen else hw

    def tokens_per_sequence(self, channel: str) -> int:
        c = self.channels[channel]
        end = c.src or c.dst
        return self.instances[end[0]].contract.tokens_per_sequence(end[1])

    def tokens(self, channel: str) -> int:
        c = self.channels[channel]
        end = c.src or c.dst
        return self.instances[end[0]].contract.tokens(end[1])

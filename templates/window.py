"""The window and causal heads' templates (``ir.window``): ``qk_window``, ``kv_window``
and ``softmax_window``, the full head's datapaths (``templates.online``) on ring buffers
of W = 2 w' + 1 rows (causal: N), one score a firing over the W slots of each query row,
masked at the sequence ends.

* ``qk_window`` (k, q -> s: score + valid bit): phases ``fill`` takes K rows 0 .. w'-1;
  ``main`` (rows 0 .. N-w'-1) takes K row i + w' and the Q row on the row's first of W
  firings; ``tail`` (the last w' rows) takes only the Q row. One score per firing, slot
  order ``ir.window.offsets``;
* ``kv_window`` (v -> vr): the same phases for V; one V row per firing (the slot's key
  row);
* ``softmax_window`` (s, vr -> ol on the row's last firing): the online softmax of
  ``online_softmax_pv`` that skips masked slots.

``lanes`` slots a firing: a row's W slots in ceil(W / lanes) groups
(``templates.online.groups``). ``kind: causal`` uses the same templates with the
one-sided slots of ``ir.window`` (lookahead 0, W = N: each K row is loaded on its own
row's first firing and read by that firing, a cycle later); without a window
the causal head runs the blocked triangle of ``ir.window.causal_blocks``: one phase
``b<k>`` per block of rows, each with its block's slot groups (instance param
``triangle``).

HDL: K and V live in rings of W rows. Loads (phase ``fill``, then the first firing of
every ``main`` row, or of every row of a triangle's ``b<k>`` phases) write the next row
at a write pointer that steps mod W. Row i's slot t reads key row ``j = i + offset(t)``
(``ir.window.offsets``: 0, -1, +1, -2, ...; causal 0, -1, -2, ...) at ring index
``(base + offset(t)) mod W``, ``base`` being i mod W (a pointer stepping at every row
end); the slot is valid when ``0 <= j < N``. ``qk_window`` and ``kv_window`` are
pipelined (issue 12): the slots' offsets are registered in the firing, the ring is read
through a registered port the cycle after (so a row written by the firing, w' = 0 and
every causal row's slot 0, is in the ring by then; a later firing's write is not), its
data registered (:data:`RING_STAGES`), then qk_window's score is the full head's
registered datapath (``templates.online.scaled_scores``); latency = stages + 1.
``softmax_window`` still computes its online step in the firing cycle
(``templates.online.OneCycleSoftmax``). The models are ``ir.window``'s (the golden
model's own functions): a row's tokens are its ``ir.window.row_groups`` slot groups of
``lanes`` slots (the slots past the row's W, and past its block's last row for a
triangle causal head, padded: score and V row 0, ok 0). The resource models follow the
components (measured against ``synth_xilinx``: benchmarks/synth_modules.py).
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory

from ..hdl.datapath import elems
from ..hdl.templates import Template
from ..ir.numerics import AttentionNumerics
from ..ir.window import (causal_blocks, lookahead, offsets, row_groups, row_slots, slot_keys,
                         window_online)
from ..mappers.catalog import TemplateDef, latency
from ..mappers.contracts import (ALWAYS, FILL, FIRST, LAST, LOAD_ROW, MAIN, ROW, SLOT, TAIL,
                                 Contract, Phase)
from ..mappers.hwgraph import Field, Layout
from ..hdl import pipeline as P
from ..ir.numerics import clog2
from ..targets.estimate import Mem, NodeModel
from ..targets.pipeline_cost import staged_valid
from .online import (READ_STAGES, OneCycleSoftmax, _Pipe, groups, one_cycle_softmax_resources,
                     scaled_scores, score_cost, score_stages)


# ---------------------------------------------------------------- contracts and layouts

def _block_phases(n: int, lanes: int, ports: tuple) -> tuple:
    """One phase ``b<k>`` per block of rows of the blocked triangle
    (``ir.window.causal_blocks``): its rows, each in the block's slot groups."""
    return tuple(Phase(f"b{k}", ((ROW, rows), (SLOT, g)), ports)
                 for k, (rows, g) in enumerate(causal_blocks(n, lanes)))


def _phases(n: int, w, kind: str, load: str | None, extra_first: tuple, always: tuple,
            lanes: int = 1, triangle: bool = False):
    """fill / main / tail phases of a ring-buffered stream template (``lanes`` slots a
    firing: a row's W slots in ceil(W / lanes) groups, ``templates.online.groups``); a
    ``triangle`` causal head: one phase ``b<k>`` per block of ``ir.window.causal_blocks``."""
    # a row's ports; the rows that load a K/V row also take it on their first firing
    row = tuple((p, FIRST) for p in extra_first) + tuple((p, ALWAYS) for p in always)
    loading = (((load, FIRST),) if load else ()) + row
    if triangle:
        return _block_phases(n, lanes, loading)
    we = lookahead(w, n, kind)
    slots = groups(row_slots(n, kind, w), lanes)
    ph = []
    if we and load:
        ph.append(Phase(FILL, ((LOAD_ROW, we),), ((load, ALWAYS),)))
    ph.append(Phase(MAIN, ((ROW, n - we), (SLOT, slots)), loading))
    if we:
        ph.append(Phase(TAIL, ((ROW, we), (SLOT, slots)), row))
    return tuple(ph)


def qk_window(n: int, w, kind: str = "window", lanes: int = 1,
              triangle: bool = False, **lat) -> Contract:
    return Contract("qk_window", ("k", "q"), ("s",),
                    _phases(n, w, kind, "k", ("q",), ("s",), lanes, triangle),
                    latency=latency("qk_window", lanes=lanes, **lat))


def kv_window(n: int, w, kind: str = "window", lanes: int = 1,
              triangle: bool = False, **lat) -> Contract:
    return Contract("kv_window", ("v",), ("vr",),
                    _phases(n, w, kind, "v", (), ("vr",), lanes, triangle),
                    latency=latency("kv_window", lanes=lanes, **lat))


def softmax_window(n: int, w, kind: str = "window", lanes: int = 1,
                   triangle: bool = False, **lat) -> Contract:
    ports = (("s", ALWAYS), ("vr", ALWAYS), ("ol", LAST))
    if triangle:
        phases = _block_phases(n, lanes, ports)
    else:
        phases = (Phase("rows", (("i", n), ("t", groups(row_slots(n, kind, w), lanes))),
                        ports),)
    return Contract("softmax_window", ("s", "vr"), ("ol",), phases,
                    latency=latency("softmax_window", lanes=lanes, **lat))


def window_score_layout(nm: AttentionNumerics, lanes: int = 1) -> Layout:
    """``lanes`` scores and their valid bits (0: a masked slot outside the sequence, or a
    padding lane past the row's last slot)."""
    return Layout((Field("x", nm.score_bits, True, lanes), Field("ok", 1, False, lanes)))


# ---------------------------------------------------------------- behavioural models

def _slots(inst, nm):
    return slot_keys(inst.param("window"), nm.seq_len, inst.param("kind", "window"))


def _groups(inst, nm) -> np.ndarray:
    return row_groups(nm.seq_len, inst.param("kind", "window"), inst.param("window"),
                      inst.param("lanes") or 1, bool(inst.param("triangle")))


def _tokens(a, lanes: int, g: np.ndarray):
    """(rows, slots, ...) -> the stream's tokens: row i's first ``g[i] * lanes`` slots
    (zero-padded past the row's slots), one slot a token, or (``lanes`` > 1) ``lanes``
    slots a token (V rows side by side)."""
    width = int(g.max()) * lanes
    a = np.pad(a, ((0, 0), (0, max(0, width - a.shape[1]))) + ((0, 0),) * (a.ndim - 2))
    t = a[:, :width][_taken(g, lanes)]
    if lanes == 1:
        return t
    t = t.reshape((-1, lanes) + a.shape[2:])
    return t.reshape(len(t), -1) if a.ndim > 2 else t


def _rows(tokens, lanes: int, g: np.ndarray, tail=()):
    """The inverse of :func:`_tokens`: (rows, max groups * lanes, *tail), zero past each
    row's tokens."""
    out = np.zeros((len(g), int(g.max()) * lanes) + tuple(tail), np.int64)
    out[_taken(g, lanes)] = np.asarray(tokens, np.int64).reshape((-1,) + tuple(tail))
    return out


def _taken(g: np.ndarray, lanes: int) -> np.ndarray:
    """(rows, max groups * lanes) booleans: the slots row i streams (its first
    ``g[i] * lanes``), in stream order when read row-major."""
    return np.arange(int(g.max()) * lanes)[None, :] < (g * lanes)[:, None]


def qk_window_model(inst, nm, ins):
    keys, valid = _slots(inst, nm)
    x = nm.scores(ins["q"]["x"], ins["k"]["x"])
    xs = x[np.arange(nm.seq_len)[:, None], keys]
    lanes, g = inst.param("lanes") or 1, _groups(inst, nm)
    return {"s": {"x": _tokens(xs, lanes, g),
                  "ok": _tokens(valid.astype(np.int64), lanes, g)}}


def kv_window_model(inst, nm, ins):
    keys, _ = _slots(inst, nm)
    v = np.asarray(ins["v"]["x"], np.int64)
    lanes, g = inst.param("lanes") or 1, _groups(inst, nm)
    return {"vr": {"x": _tokens(v[keys], lanes, g)}}


def softmax_window_model(inst, nm, ins):
    lanes, g = inst.param("lanes") or 1, _groups(inst, nm)
    xs = _rows(ins["s"]["x"], lanes, g)
    ok = _rows(ins["s"]["ok"], lanes, g).astype(bool)
    vs = _rows(ins["vr"]["x"], lanes, g, (nm.head_dim,))
    o, l = window_online(nm, xs, ok, vs)
    return {"ol": {"o": o, "l": l}}


# ---------------------------------------------------------------- components

class RowStore:
    """``depth`` rows of port ``load``'s payload, written at a pointer that steps (mod
    depth) with every row the template takes on that port; :meth:`read` returns a row,
    the live input row when it is the one written in the same firing. The window's K/V
    rings and the decode KV cache."""

    def __init__(self, tpl: Template, m, seq, load: str, depth: int, name: str):
        self.width = width = tpl.layout(load).width
        self.mem = mem = Memory(shape=unsigned(width), depth=max(depth, 2), init=[])
        m.submodules[f"{load}_{name}"] = mem
        wp = mem.write_port()
        self.port, self.load = getattr(tpl, load), load
        self.write = seq.fire & seq.use[load]
        self.wptr = wptr = Signal(range(max(depth, 2)), name=f"{load}_wptr")
        with m.If(self.write):
            m.d.sync += wptr.eq(Mux(wptr == depth - 1, 0, wptr + 1))
        m.d.comb += [wp.addr.eq(wptr), wp.data.eq(self.port.payload), wp.en.eq(self.write)]

    def read(self, m, addr, name: str) -> Signal:
        """One read port (each call adds one)."""
        rp = self.mem.read_port(domain="comb")
        data = Signal(self.width, name=f"{self.load}_{name}")
        m.d.comb += [rp.addr.eq(addr),
                     data.eq(Mux(self.write & (addr == self.wptr), self.port.payload,
                                 rp.data))]
        return data


#: the ring's read: the slots' offsets registered (stage 1, then the ring index and the
#: key's validity), the read port's address register and the data register
#: (``templates.online.READ_STAGES``). A slot read is issued one cycle after its firing,
#: so a row written by the firing is in the ring by then (no bypass), and a later
#: firing's write is not (the read port is not transparent).
RING_STAGES = 1 + READ_STAGES


def qk_window_stages(nm) -> int:
    """Firing -> scores: the ring's read (:data:`RING_STAGES`), then
    ``templates.online.score_stages``."""
    return RING_STAGES + score_stages(nm)


def qk_window_latency(nm, lanes: int = 1) -> int:
    return qk_window_stages(nm) + 1


def kv_window_latency(nm=None, lanes: int = 1) -> int:
    return RING_STAGES + 1


def offset_bits(offs) -> int:
    """Bits of a slot's (signed) key offset."""
    return max(abs(o) for o in offs).bit_length() + 1


class _Ring:
    """The ring of one stream (port ``load``) and the addressing of the current slots:
    ``lanes`` slots a firing (group g: slots g * lanes + k), one read port per lane;
    ``data``/``valid`` per lane :data:`RING_STAGES` cycles after the firing (a padding
    lane past the row's last slot: invalid, row 0)."""

    def __init__(self, tpl: Template, m, seq, load: str):
        n = tpl.nm.seq_len
        kind = tpl.inst.param("kind", "window")
        lanes = tpl.inst.param("lanes") or 1
        offs = offsets(tpl.inst.param("window"), n, kind)
        self.slots = slots = len(offs)
        depth = max(slots, 2)
        mem = Memory(shape=unsigned(tpl.layout(load).width), depth=depth, init=[])
        m.submodules[f"{load}_ring"] = mem
        wp = mem.write_port()
        write = seq.fire & seq.use[load]
        wptr = Signal(range(depth), name=f"{load}_wptr")
        with m.If(write):
            m.d.sync += wptr.eq(Mux(wptr == slots - 1, 0, wptr + 1))
        m.d.comb += [wp.addr.eq(wptr), wp.data.eq(getattr(tpl, load).payload), wp.en.eq(write)]

        # the current query row i (row) and its ring index (base), stepping at row ends
        # every phase but the lookahead fill scores rows (main, tail; a triangle's blocks)
        phases = [p for p in seq.in_phase if p != FILL]
        scoring = Signal(name="scoring")
        m.d.comb += scoring.eq(Cat(*[seq.in_phase[p] for p in phases]).any())
        row_end = seq.fire & seq.last & scoring
        # row wraps to 0 after the last row: the next sequence starts at row 0 (base and
        # the ring's write pointer both advanced N times, so they stay in step)
        row = Signal(range(max(n, 2)), name="row")
        base = Signal(range(depth), name="base")
        with m.If(row_end):
            m.d.sync += [row.eq(Mux(row == n - 1, 0, row + 1)),
                         base.eq(Mux(base == slots - 1, 0, base + 1))]
        # the group of the active scoring phase
        grp = Signal(range(depth), name="group")
        for p in phases:
            with m.If(seq.in_phase[p]):
                m.d.comb += grp.eq(seq.counter[(p, SLOT)])
        span = max(abs(o) for o in offs) + 1
        ob = offset_bits(offs)
        # stage 1: the row, its ring index and each lane's slot offset, registered
        row1, base1 = P.reg(m, row, "row1"), P.reg(m, base, "base1")
        self.data, self.valid = [], []
        for k in range(lanes):
            sfx = "" if lanes == 1 else f"_{k}"
            # slot t -> offset 0, -1, +1, -2, +2, ... (causal: 0, -1, ..., -(N-1))
            t = Signal(range(max(slots + lanes, 2)), name=f"slot{sfx}")
            m.d.comb += t.eq(grp * lanes + k if lanes > 1 else grp)
            off = Signal(signed(ob), name=f"offset{sfx}")
            if kind == "causal":
                m.d.comb += off.eq(-t)
            else:
                half = Signal(range(span + lanes + 1), name=f"half{sfx}")
                m.d.comb += half.eq((t + 1) >> 1)
                m.d.comb += off.eq(Mux(t == 0, 0, Mux(t[0], -half, half)))
            off1 = P.reg(m, off, f"offset1{sfx}")
            padding = lanes > 1 and k >= slots - (-(-slots // lanes) - 1) * lanes
            pad1 = P.reg(m, t >= slots, f"pad1{sfx}") if padding else None
            # stage 2: the ring index into the read port; the key's validity
            at = Signal(signed(max(slots, n).bit_length() + 3), name=f"at{sfx}")
            m.d.comb += at.eq(base1 + off1)
            idx = Signal(range(depth), name=f"ring_idx{sfx}")
            m.d.comb += idx.eq(Mux(at < 0, at + slots, Mux(at >= slots, at - slots, at)))
            key = Signal(signed(n.bit_length() + 3), name=f"key{sfx}")
            m.d.comb += key.eq(row1 + off1)
            real = (key >= 0) & (key < n)
            rp = mem.read_port()
            m.d.comb += rp.addr.eq(idx)
            data = P.reg(m, rp.data, f"{load}_slot{sfx}")
            if padding:
                # a padding lane in the last group: invalid, V row 0 (as the models)
                pad = P.delay(m, pad1, READ_STAGES, f"pad{sfx}")
                valid = P.delay(m, real & ~pad1, READ_STAGES, f"valid{sfx}")
                zeroed = Signal(len(data), name=f"{load}_lane{sfx}")
                m.d.comb += zeroed.eq(Mux(pad, 0, data))
                data = zeroed
            else:
                valid = P.delay(m, real, READ_STAGES, f"valid{sfx}")
            self.data.append(data)
            self.valid.append(valid)


class QKWindow(_Pipe):
    """Scores of the query row against its window's K rows, ``lanes`` slots a firing:
    the ring's read, then the full head's score datapath (``scaled_scores``)."""

    def pipeline_stages(self):
        return qk_window_stages(self.nm)

    def datapath(self, m, seq):
        ring = _Ring(self, m, seq, "k")
        # the current Q row, registered from the live token on the row's first firing
        # (stage 1), then carried with the ring's read
        q_reg = Signal(self.layout("q").width, name="q_reg")
        with m.If(seq.fire & seq.use["q"]):
            m.d.sync += q_reg.eq(self.q.payload)
        q_cur = P.delay(m, q_reg, RING_STAGES - 1, "q")
        xs = scaled_scores(m, self.nm, q_cur, ring.data, self.layout("q"), self.layout("k"))
        oks = [P.delay(m, v, score_stages(self.nm), f"ok{k}") for k, v in enumerate(ring.valid)]
        self.output(m, seq, "s", Cat(*xs, *oks))


class KVWindow(_Pipe):
    """The V row of every slot, from the V ring."""

    def pipeline_stages(self):
        return RING_STAGES

    def datapath(self, m, seq):
        ring = _Ring(self, m, seq, "v")
        self.output(m, seq, "vr", Cat(*ring.data))


class SoftmaxWindow(OneCycleSoftmax):
    """``online_softmax_pv`` that skips masked slots (the score's valid bit)."""

    def datapath(self, m, seq):
        d = self.nm.head_dim
        xs = elems(self.s.payload, self.layout("s"), "x")
        oks = elems(self.s.payload, self.layout("s"), "ok")
        vs = elems(self.vr.payload, self.layout("vr"), "x")
        self.online(m, seq, [(x, vs[k * d:(k + 1) * d], ok)
                             for k, (x, ok) in enumerate(zip(xs, oks))])


# ---------------------------------------------------------------- resource models
#
# Of QKWindow / KVWindow, stage by stage, as the full head's (templates.online): the ring
# a memory with a registered read port per lane (its data register in its mapping), the
# addressing registered at stage 1, the slots' validity and the Q row carried alongside.

def _ring_cost(m: NodeModel, inst, hw, load: str, keys: bool) -> tuple:
    """``_Ring`` of port ``load``: one copy of the W-row ring per lane (a read port
    each), the write pointer, the row and ring-index counters (and their stage-1
    registers), per lane the slot offset (registered), the ring index (an add, a
    wrap), with ``keys`` the key's validity (an add, a compare), the row's data
    register; a padding lane's flag and zeroed row. Returns (numerics, lanes, slots)."""
    nm = hw.numerics
    n, kind = nm.seq_len, inst.param("kind", "window")
    lanes = inst.param("lanes") or 1
    offs = offsets(inst.param("window"), n, kind)
    slots = len(offs)
    width = hw.port_channels(inst.name)[load].layout.width
    ib, rb = clog2(max(slots, 2)), clog2(n + 1)
    ob = offset_bits(offs)
    low = lanes.bit_length() - 1
    # causal offsets -t, t = group * lanes + k: with lanes a power of two, lane k's low
    # log2(lanes) bits are those of -k, and the registers of its 0 bits are constants
    const = (sum(low - bin(-k % lanes).count("1") for k in range(lanes))
             if kind == "causal" and lanes & (lanes - 1) == 0 else 0)
    for _ in range(lanes):
        m.mems.append(Mem(f"{load.upper()} ring", max(slots, 2), width, read="sync"))
    # the row counter and the keys' validity only when used (the scores' valid bits:
    # qk_window; Yosys removes them from kv_window)
    rb = rb if keys else 0
    m.ffs += ib + rb + ib                               # write pointer, row, base
    m.logic.add("add", ib, 2).add("cmpc", ib, 2).add("add", rb)
    m.hold("row, base", rb + ib, 1)
    padding = lanes - (slots - (-(-slots // lanes) - 1) * lanes) if lanes > 1 else 0
    m.ffs += ob * lanes - const                         # the offsets (stage 1)
    for k in range(lanes):
        m.hold(f"{load} slot {k}", width, READ_STAGES - 1)
    # the offset (+-half: a constant add), base + offset, its wrap (two constant adds,
    # two choices), row + offset and its compare with N (>= 0: the sign bit)
    m.logic.add("addc", ob, lanes).add("add", ib + 1, lanes).add("addc", ib + 1, 2 * lanes)
    m.logic.add("mux", ib, 2 * lanes)
    if keys:
        m.logic.add("add", rb + 1, lanes).add("cmpc", rb + 1, lanes)
    if padding:
        m.ffs += padding * (1 + READ_STAGES)            # the pad flag at stage 1, carried
        m.logic.add("mux", width, padding)
    return nm, lanes, slots


def qk_window_resources(m: NodeModel, inst, hw) -> None:
    """``QKWindow``: the K ring, the Q row (a register written on the row's first firing)
    carried to the products' operand registers (RING_STAGES registers in all), the slots'
    validity carried to the scores, the full head's score datapath (``score_cost``)."""
    nm, lanes, _ = _ring_cost(m, inst, hw, "k", True)
    m.hold("q row", hw.port_channels(inst.name)["q"].layout.width, RING_STAGES + 1)
    for k in range(lanes):
        m.hold(f"K slot {k}", hw.port_channels(inst.name)["k"].layout.width, 1)
        m.hold(f"valid {k}", 1, READ_STAGES + score_stages(nm))
    score_cost(m, nm, lanes)
    staged_valid(m, qk_window_stages(nm))


def kv_window_resources(m: NodeModel, inst, hw) -> None:
    """``KVWindow``: the V ring, read RING_STAGES stages after the firing."""
    _ring_cost(m, inst, hw, "v", False)
    staged_valid(m, RING_STAGES)


TEMPLATE_DEFS = (
    TemplateDef("qk_window", qk_window_latency, qk_window, qk_window_model, QKWindow,
                qk_window_resources,
                "slot offsets, ring read (address and data registered), then qk_scores' "
                "registered score datapath"),
    TemplateDef("kv_window", kv_window_latency, kv_window, kv_window_model, KVWindow,
                kv_window_resources, "slot offsets, ring read (address and data registered)"),
    TemplateDef("softmax_window", 1, softmax_window, softmax_window_model, SoftmaxWindow,
                one_cycle_softmax_resources, "online_softmax_pv's step, masked slots skipped"),
)

"""Sliding-window attention of one head on streaming templates (``ir.window``): K and V
held in ring buffers of W = 2 w' + 1 rows (memory independent of N), one score per
cycle over the W slots of each query row, masked at the sequence ends.

Templates (timing contracts; the values are ``sim.models_window``):

* ``qk_window``: inputs k, q; output s (score + valid bit). Phases: ``fill`` takes K rows
  0 .. w'-1; ``main`` (rows 0 .. N-w'-1) takes K row i + w' and the Q row on the row's
  first of W firings; ``tail`` (the last w' rows) takes only the Q row. One score per
  firing, slot order ``ir.window.offsets``.
* ``kv_window``: input v, output vr: the same phases for V; one V row per firing (the
  slot's key row).
* ``softmax_window``: inputs s, vr; output ol on the row's last firing: the online
  softmax of ``online_softmax_pv`` that skips masked slots.
* ``normalize``: as in the full head.

Cycles without stalls: ``w' + N * W`` firings of qk_window plus the pipeline's latency
(tests/test_window.py checks the exact count); on-chip memory: two rings of W rows.
``kind: causal`` uses the same templates with the one-sided slots of ``ir.window``
(lookahead 0, W = N: each K row is loaded on its own row's first firing and read in that
firing, through the ring's bypass). Without a window the causal head runs the blocked
triangle of ``ir.window.causal_blocks``: one phase ``b<k>`` per block of rows, each with
its block's slot groups (instance param ``triangle``).
"""
from __future__ import annotations

from ..ir.numerics import AttentionNumerics
from ..ir.window import causal_blocks, effective_window, lookahead, row_groups, row_slots
from . import templates as T
from .catalog import latency
from .contracts import ALWAYS, FILL, FIRST, LAST, LOAD_ROW, MAIN, ROW, SLOT, TAIL, Contract, Phase
from .hwgraph import Channel, Field, HwGraph, Instance, Layout
from .sdpa import INPUT_DEPTH, MappingError, apply_fifo_overrides, full_rate_depth, head_fill

def window_fill(nm) -> int:
    """Cycles of a window/causal head after its last score group
    (``mappers.sdpa.head_fill`` of qk_window, kv_window and softmax_window)."""
    return head_fill("qk_window", "kv_window", "softmax_window", nm)


def window_head_cycles(nm, w, kind: str = "window", lanes: int = 1) -> int:
    """Cycles of one window/causal head without stalls: the w' lookahead rows, then N rows
    of ceil(W / lanes) slot groups (a causal head without a window: each row its block's
    groups, ``ir.window.causal_blocks``), then the fill (``nm``: the head's numerics)."""
    n = nm.seq_len
    return (lookahead(w, n, kind)
            + int(row_groups(n, kind, w, lanes, is_triangle(kind, w, n)).sum()) + window_fill(nm))


def is_triangle(kind: str, w, n: int) -> bool:
    """A causal head without a window (or with one covering the sequence, w' = N - 1)
    runs the blocked triangle (``ir.window.causal_blocks``)."""
    return kind == "causal" and (w is None or effective_window(w, n) >= n - 1)


def _block_phases(n: int, lanes: int, ports: tuple) -> tuple:
    """One phase ``b<k>`` per block of rows of the blocked triangle
    (``ir.window.causal_blocks``): its rows, each in the block's slot groups."""
    return tuple(Phase(f"b{k}", ((ROW, rows), (SLOT, g)), ports)
                 for k, (rows, g) in enumerate(causal_blocks(n, lanes)))


def _phases(n: int, w, kind: str, load: str | None, extra_first: tuple, always: tuple,
            lanes: int = 1, triangle: bool = False):
    """fill / main / tail phases of a ring-buffered stream template (``lanes`` slots a
    firing: a row's W slots in ceil(W / lanes) groups, ``mappers.templates.groups``); a
    ``triangle`` causal head: one phase ``b<k>`` per block of ``ir.window.causal_blocks``."""
    # a row's ports; the rows that load a K/V row also take it on their first firing
    row = tuple((p, FIRST) for p in extra_first) + tuple((p, ALWAYS) for p in always)
    loading = (((load, FIRST),) if load else ()) + row
    if triangle:
        return _block_phases(n, lanes, loading)
    we = lookahead(w, n, kind)
    slots = T.groups(row_slots(n, kind, w), lanes)
    ph = []
    if we and load:
        ph.append(Phase(FILL, ((LOAD_ROW, we),), ((load, ALWAYS),)))
    ph.append(Phase(MAIN, ((ROW, n - we), (SLOT, slots)), loading))
    if we:
        ph.append(Phase(TAIL, ((ROW, we), (SLOT, slots)), row))
    return tuple(ph)


def qk_window(n: int, w, kind: str = "window", lanes: int = 1,
              triangle: bool = False) -> Contract:
    return Contract("qk_window", ("k", "q"), ("s",),
                    _phases(n, w, kind, "k", ("q",), ("s",), lanes, triangle),
                    latency=latency("qk_window"))


def kv_window(n: int, w, kind: str = "window", lanes: int = 1,
              triangle: bool = False) -> Contract:
    return Contract("kv_window", ("v",), ("vr",),
                    _phases(n, w, kind, "v", (), ("vr",), lanes, triangle),
                    latency=latency("kv_window"))


def softmax_window(n: int, w, kind: str = "window", lanes: int = 1,
                   triangle: bool = False) -> Contract:
    ports = (("s", ALWAYS), ("vr", ALWAYS), ("ol", LAST))
    if triangle:
        phases = _block_phases(n, lanes, ports)
    else:
        phases = (Phase("rows", (("i", n), ("t", T.groups(row_slots(n, kind, w), lanes))),
                        ports),)
    return Contract("softmax_window", ("s", "vr"), ("ol",), phases,
                    latency=latency("softmax_window"))


def window_score_layout(nm: AttentionNumerics, lanes: int = 1) -> Layout:
    """``lanes`` scores and their valid bits (0: a masked slot outside the sequence, or a
    padding lane past the row's last slot)."""
    return Layout((Field("x", nm.score_bits, True, lanes), Field("ok", 1, False, lanes)))


def check_window(w) -> int:
    if isinstance(w, bool) or not isinstance(w, int) or w < 1:
        raise MappingError("model.attention.window",
                           f"must be an integer >= 1 (query i sees keys |i - j| <= window), "
                           f"got {w!r}")
    return w


def map_window_head(nm: AttentionNumerics, w, fifo_depths=None,
                    name: str = "attnflow_top", kind: str = "window",
                    lanes: int = 1) -> HwGraph:
    """One window-attention head (``kind: causal``: causal attention, ``w`` unused) ->
    HwGraph (inputs q, k, v; output o); ``lanes`` slots a firing."""
    if kind == "window":
        w = check_window(w)
    n = nm.seq_len
    slots = row_slots(n, kind, w)
    if not 1 <= lanes <= slots:
        raise MappingError("model.attention.lanes",
                           f"{lanes} lanes for the {slots} slots of a {kind} row; "
                           f"allowed: 1..{slots}")
    tri = is_triangle(kind, w, n)
    params = ((("N", n), ("kind", kind), ("window", w))
              + ((("lanes", lanes),) if lanes > 1 else ())
              + ((("triangle", True),) if tri else ()))
    return stream_head(nm, name, kind, (qk_window(n, w, kind, lanes, tri),
                                        kv_window(n, w, kind, lanes, tri),
                                        softmax_window(n, w, kind, lanes, tri),
                                        T.normalize(n, nm=nm)),
                       params, window_score_layout(nm, lanes), fifo_depths, lanes)


def stream_head(nm: AttentionNumerics, name: str, variant: str, contracts, params,
                score_layout: Layout, fifo_depths=None, lanes: int = 1) -> HwGraph:
    """A head of four templates ``qk`` (k, q -> s), ``vstore`` (v -> vr), ``softmax``
    (s, vr -> ol) and ``norm`` (ol -> o) with the given contracts (in that order) and
    instance params: inputs q, k, v (depth 2), every other channel at its producer's full
    rate (L + 1); ``lanes`` V rows a ``vr`` token. The window/causal and the decode heads."""
    d = nm.head_dim
    hw = HwGraph(name=name, numerics=nm, variant=variant)
    for iname, c in zip(("qk", "vstore", "softmax", "norm"), contracts):
        hw.instances[iname] = Instance(iname, c.template, c, params)

    def chan(cname, layout, src, dst):
        latency = hw.instances[src[0]].contract.latency if src else 1
        depth, note = (full_rate_depth(latency), "L+1") if src else (INPUT_DEPTH, "input")
        hw.channels[cname] = Channel(cname, layout, depth, latency, src, dst)
        hw.depth_notes[cname] = note

    chan("q", T.vec_layout(nm.q, d), None, ("qk", "q"))
    chan("k", T.vec_layout(nm.k, d), None, ("qk", "k"))
    chan("v", T.vec_layout(nm.v, d), None, ("vstore", "v"))
    chan("s", score_layout, ("qk", "s"), ("softmax", "s"))
    chan("vr", T.vec_layout(nm.v, d * lanes), ("vstore", "vr"), ("softmax", "vr"))
    chan("ol", T.ol_layout(nm), ("softmax", "ol"), ("norm", "ol"))
    chan("o", T.vec_layout(nm.out, d), ("norm", "o"), None)
    apply_fifo_overrides(hw, fifo_depths)
    hw.freeze()
    return hw

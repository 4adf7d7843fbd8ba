"""Sliding-window attention of one head on streaming templates (``ir.window``): K and V
held in ring buffers of W = 2 w' + 1 rows (memory independent of N), one score per
cycle over the W slots of each query row, masked at the sequence ends. The templates
(``qk_window``, ``kv_window``, ``softmax_window``) are defined in ``templates.window``;
``normalize`` as in the full head.

Cycles without stalls: ``w' + N * W`` firings of qk_window plus the pipeline's latency
(tests/test_window.py checks the exact count); on-chip memory: two rings of W rows.
``kind: causal`` uses the same templates with the one-sided slots of ``ir.window``;
without a window the causal head runs the blocked triangle of ``ir.window.causal_blocks``
(instance param ``triangle``). :func:`stream_head` also builds the decode head.
"""
from __future__ import annotations

from ..ir.numerics import AttentionNumerics
from ..ir.window import effective_window, lookahead, row_groups, row_slots
from ..templates import online
from ..templates.window import kv_window, qk_window, softmax_window, window_score_layout
from .hwgraph import Channel, HwGraph, Instance, Layout
from .sdpa import INPUT_DEPTH, MappingError, apply_fifo_overrides, full_rate_depth, head_fill

def window_fill(nm, lanes: int = 1) -> int:
    """Cycles of a window/causal head after its last score group
    (``mappers.sdpa.head_fill`` of qk_window, kv_window and softmax_window)."""
    return head_fill("qk_window", "kv_window", "softmax_window", nm, lanes)


def window_head_cycles(nm, w, kind: str = "window", lanes: int = 1) -> int:
    """Cycles of one window/causal head without stalls: the w' lookahead rows, then N rows
    of ceil(W / lanes) slot groups (a causal head without a window: each row its block's
    groups, ``ir.window.causal_blocks``), then the fill (``nm``: the head's numerics)."""
    n = nm.seq_len
    return (lookahead(w, n, kind)
            + int(row_groups(n, kind, w, lanes, is_triangle(kind, w, n)).sum())
            + window_fill(nm, lanes))


def is_triangle(kind: str, w, n: int) -> bool:
    """A causal head without a window (or with one covering the sequence, w' = N - 1)
    runs the blocked triangle (``ir.window.causal_blocks``)."""
    return kind == "causal" and (w is None or effective_window(w, n) >= n - 1)


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
    return stream_head(nm, name, kind, (qk_window(n, w, kind, lanes, tri, nm=nm),
                                        kv_window(n, w, kind, lanes, tri, nm=nm),
                                        softmax_window(n, w, kind, lanes, tri, nm=nm),
                                        online.normalize(n, nm=nm)),
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

    chan("q", online.vec_layout(nm.q, d), None, ("qk", "q"))
    chan("k", online.vec_layout(nm.k, d), None, ("qk", "k"))
    chan("v", online.vec_layout(nm.v, d), None, ("vstore", "v"))
    chan("s", score_layout, ("qk", "s"), ("softmax", "s"))
    chan("vr", online.vec_layout(nm.v, d * lanes), ("vstore", "vr"), ("softmax", "vr"))
    chan("ol", online.ol_layout(nm), ("softmax", "ol"), ("norm", "ol"))
    chan("o", online.vec_layout(nm.out, d), ("norm", "o"), None)
    apply_fifo_overrides(hw, fifo_depths)
    hw.freeze()
    return hw

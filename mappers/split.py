"""Split-context attention of one head on streaming templates (``ir.split``).

    k -> ksplit --k{p}--> qk{p} --s{p}--> softmax{p} --p{p}--> combine tree --> norm --o
    v -> vsplit --v{p}--> vstore{p} --vr{p}--> softmax{p}
    q -> qfork  --q{p}--> qk{p}

* ``split_rows`` (ksplit, vsplit): one input stream of N rows, P outputs; phase p passes
  the n_p rows of slice p to output p.
* ``qk_slice`` / ``kv_slice`` / ``softmax_slice``: ``qk_scores`` / ``kv_replay`` /
  ``online_softmax_pv`` over a slice of n_p keys (load n_p rows, then N rows x n_p
  scores); the softmax emits the row's partial state (o, l, m) on its last firing.
* ``combine``: one row's two partial states in, the combined state out (``ir.split``).
* ``normalize``: as in the full head; it reads the root state's o and l fields.

The K and V streams deliver one row per cycle, so the last engine starts after all N K
rows; the engines then run in lockstep: about ``N + N * ceil(N / P)`` cycles. HDL:
``hdl/split.py``.
"""
from __future__ import annotations

from ..ir.numerics import AttentionNumerics
from ..ir.split import leaf_depth, slice_bounds, tree_pairs
from . import templates as T
from .catalog import latency
from .contracts import (ALWAYS, FIRST, GROUP, LAST, LOAD, LOAD_ROW, REPLAY, ROW, ROWS, SCORES,
                        Contract, Phase)
from .hwgraph import Channel, Field, HwGraph, Instance, Layout
from .rowops import ForkParams
from .sdpa import INPUT_DEPTH, MappingError, apply_fifo_overrides, full_rate_depth


def split_fill(p: int, nm) -> int:
    """Cycles of a P-engine split head after its last engine's last score: the input
    channel (1), split_rows', the slower of qk_slice and kv_slice (they fire in step),
    softmax_slice's and normalize's latencies, and one combine per tree level above the
    last engine (``ir.split.leaf_depth``)."""
    return (1 + latency("split_rows") + max(latency("qk_slice"), latency("kv_slice"))
            + latency("softmax_slice") + latency("normalize", nm=nm)
            + latency("combine") * leaf_depth(p, p - 1))


def split_rows(sizes: list[int]) -> Contract:
    outs = tuple(f"y{p}" for p in range(len(sizes)))
    return Contract("split_rows", ("x",), outs, tuple(
        Phase(f"s{p}", (("r", n_p),), (("x", ALWAYS), (f"y{p}", ALWAYS)))
        for p, n_p in enumerate(sizes)), latency=latency("split_rows"))


def qk_slice(n: int, keys: int) -> Contract:
    return Contract("qk_slice", ("k", "q"), ("s",), (
        Phase(LOAD, ((LOAD_ROW, keys),), (("k", ALWAYS),)),
        Phase(SCORES, ((ROW, n), (GROUP, keys)), (("q", FIRST), ("s", ALWAYS))),
    ), latency=latency("qk_slice"))


def kv_slice(n: int, keys: int) -> Contract:
    return Contract("kv_slice", ("v",), ("vr",), (
        Phase(LOAD, ((LOAD_ROW, keys),), (("v", ALWAYS),)),
        Phase(REPLAY, ((ROW, n), (GROUP, keys)), (("vr", ALWAYS),)),
    ), latency=latency("kv_slice"))


def softmax_slice(n: int, keys: int) -> Contract:
    return Contract("softmax_slice", ("s", "vr"), ("st",), (
        Phase(ROWS, ((ROW, n), (GROUP, keys)), (("s", ALWAYS), ("vr", ALWAYS), ("st", LAST))),
    ), latency=latency("softmax_slice"))


def combine_contract(n: int) -> Contract:
    return Contract("combine", ("a", "b"), ("y",), (
        Phase("rows", (("i", n),), (("a", ALWAYS), ("b", ALWAYS), ("y", ALWAYS))),
    ), latency=latency("combine"))


def state_layout(nm: AttentionNumerics) -> Layout:
    """A row's partial state: O (acc_bits x d), l (sum_bits), m (score_bits)."""
    return Layout((Field("o", nm.acc_bits, True, nm.head_dim), Field("l", nm.sum_bits, False),
                   Field("m", nm.score_bits, True)))


def check_split(p, n: int) -> int:
    if isinstance(p, bool) or not isinstance(p, int) or p < 2:
        raise MappingError("model.attention.split",
                           f"must be an integer >= 2 (engines over slices of K/V), got {p!r}")
    if p > n:
        raise MappingError("model.attention.split",
                           f"{p} slices for N = {n} keys: at most N (one key per engine)")
    return p


def map_split_head(nm: AttentionNumerics, p: int, fifo_depths=None,
                   name: str = "attnflow_top") -> HwGraph:
    """One split-context head (P engines) -> HwGraph (inputs q, k, v; output o)."""
    n, d = nm.seq_len, nm.head_dim
    p = check_split(p, n)
    b = slice_bounds(n, p)
    sizes = [b[i + 1] - b[i] for i in range(p)]
    hw = HwGraph(name=name, numerics=nm, variant=f"split{p}")

    def inst(iname, c, **params):
        hw.instances[iname] = Instance(iname, c.template, c, tuple(sorted(params.items())))

    def chan(cname, layout, src, dst, depth, note):
        latency = hw.instances[src[0]].contract.latency if src else 1
        hw.channels[cname] = Channel(cname, layout, depth, latency, src, dst)
        hw.depth_notes[cname] = note

    fr = full_rate_depth
    qf = ForkParams(n, d, nm.q, ways=p)
    hw.instances["qfork"] = qf.instance("qfork")
    inst("ksplit", split_rows(sizes), N=n, sizes=tuple(sizes))
    inst("vsplit", split_rows(sizes), N=n, sizes=tuple(sizes))
    chan("q", T.vec_layout(nm.q, d), None, ("qfork", "x"), INPUT_DEPTH, "input")
    chan("k", T.vec_layout(nm.k, d), None, ("ksplit", "x"), INPUT_DEPTH, "input")
    chan("v", T.vec_layout(nm.v, d), None, ("vsplit", "x"), INPUT_DEPTH, "input")
    states = []
    for i, keys in enumerate(sizes):
        inst(f"qk{i}", qk_slice(n, keys), N=n, keys=keys, start=b[i])
        inst(f"vstore{i}", kv_slice(n, keys), N=n, keys=keys, start=b[i])
        inst(f"softmax{i}", softmax_slice(n, keys), N=n, keys=keys)
        chan(f"q{i}", T.vec_layout(nm.q, d), ("qfork", f"y{i}"), (f"qk{i}", "q"),
             fr(latency("fork")), "L+1")
        chan(f"k{i}", T.vec_layout(nm.k, d), ("ksplit", f"y{i}"), (f"qk{i}", "k"),
             fr(latency("split_rows")), "L+1")
        chan(f"v{i}", T.vec_layout(nm.v, d), ("vsplit", f"y{i}"), (f"vstore{i}", "v"),
             fr(latency("split_rows")), "L+1")
        chan(f"s{i}", T.score_layout(nm), (f"qk{i}", "s"), (f"softmax{i}", "s"),
             fr(latency("qk_slice")), "L+1")
        chan(f"vr{i}", T.vec_layout(nm.v, d), (f"vstore{i}", "vr"), (f"softmax{i}", "vr"),
             fr(latency("kv_slice")), "L+1")
        states.append((f"softmax{i}", "st"))
    for lv, pairs in enumerate(tree_pairs(p)):
        nxt = []
        for j, (a, bb) in enumerate(pairs):
            if bb is None:
                nxt.append(states[a])
                continue
            cname = f"comb{lv}_{j}"
            inst(cname, combine_contract(n), N=n)
            for port, src in (("a", states[a]), ("b", states[bb])):
                chan(f"{src[0]}_{port}", state_layout(nm), src, (cname, port),
                     fr(hw.instances[src[0]].contract.latency), "L+1")
            nxt.append((cname, "y"))
        states = nxt
    inst("norm", T.normalize(n, nm=nm))
    chan("st", state_layout(nm), states[0], ("norm", "ol"),
         fr(hw.instances[states[0][0]].contract.latency), "L+1")
    chan("o", T.vec_layout(nm.out, d), ("norm", "o"), None,
         fr(hw.instances["norm"].contract.latency), "L+1")
    apply_fifo_overrides(hw, fifo_depths)
    hw.freeze()
    return hw

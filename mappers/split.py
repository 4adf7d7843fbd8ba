"""Split-context attention of one head on streaming templates (``ir.split``).

    k -> ksplit --k{p}--> qk{p} --s{p}--> softmax{p} --p{p}--> combine tree --> norm --o
    v -> vsplit --v{p}--> vstore{p} --vr{p}--> softmax{p}
    q -> qfork  --q{p}--> qk{p}

* ``split_rows`` (ksplit, vsplit): one input stream of N rows, P outputs; phase p passes
  the n_p rows of slice p to output p.
* ``qk_slice`` / ``kv_slice`` / ``softmax_slice``: the full head's templates over a slice
  of n_p keys; the softmax emits the row's partial state (o, l, m) on its last firing.
* ``combine``: one row's two partial states in, the combined state out (``ir.split``).
* ``normalize``: as in the full head; it reads the root state's o and l fields.

The slice templates and ``combine`` are defined in ``templates.split``. The K and V
streams deliver one row per cycle, so the last engine starts after all N K rows; the
engines then run in lockstep: about ``N + N * ceil(N / P)`` cycles.
"""
from __future__ import annotations

from ..ir.numerics import AttentionNumerics
from ..ir.split import leaf_depth, slice_bounds, tree_pairs
from ..templates import online
from ..templates.split import combine_contract, kv_slice, qk_slice, softmax_slice, state_layout
from ..templates.wires import ForkParams, split_rows
from .catalog import latency
from .hwgraph import Channel, HwGraph, Instance
from .sdpa import INPUT_DEPTH, MappingError, apply_fifo_overrides, full_rate_depth


def split_fill(p: int, nm) -> int:
    """Cycles of a P-engine split head after its last engine's last score: the input
    channel (1), split_rows', the slower of qk_slice and kv_slice (they fire in step),
    softmax_slice's and normalize's latencies, and one combine per tree level above the
    last engine (``ir.split.leaf_depth``)."""
    return (1 + latency("split_rows") + max(latency("qk_slice"), latency("kv_slice"))
            + latency("softmax_slice") + latency("normalize", nm=nm)
            + latency("combine") * leaf_depth(p, p - 1))


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
    chan("q", online.vec_layout(nm.q, d), None, ("qfork", "x"), INPUT_DEPTH, "input")
    chan("k", online.vec_layout(nm.k, d), None, ("ksplit", "x"), INPUT_DEPTH, "input")
    chan("v", online.vec_layout(nm.v, d), None, ("vsplit", "x"), INPUT_DEPTH, "input")
    states = []
    for i, keys in enumerate(sizes):
        inst(f"qk{i}", qk_slice(n, keys), N=n, keys=keys, start=b[i])
        inst(f"vstore{i}", kv_slice(n, keys), N=n, keys=keys, start=b[i])
        inst(f"softmax{i}", softmax_slice(n, keys), N=n, keys=keys)
        chan(f"q{i}", online.vec_layout(nm.q, d), ("qfork", f"y{i}"), (f"qk{i}", "q"),
             fr(latency("fork")), "L+1")
        chan(f"k{i}", online.vec_layout(nm.k, d), ("ksplit", f"y{i}"), (f"qk{i}", "k"),
             fr(latency("split_rows")), "L+1")
        chan(f"v{i}", online.vec_layout(nm.v, d), ("vsplit", f"y{i}"), (f"vstore{i}", "v"),
             fr(latency("split_rows")), "L+1")
        chan(f"s{i}", online.score_layout(nm), (f"qk{i}", "s"), (f"softmax{i}", "s"),
             fr(latency("qk_slice")), "L+1")
        chan(f"vr{i}", online.vec_layout(nm.v, d), (f"vstore{i}", "vr"), (f"softmax{i}", "vr"),
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
    inst("norm", online.normalize(n, nm=nm))
    chan("st", state_layout(nm), states[0], ("norm", "ol"),
         fr(hw.instances[states[0][0]].contract.latency), "L+1")
    chan("o", online.vec_layout(nm.out, d), ("norm", "o"), None,
         fr(hw.instances["norm"].contract.latency), "L+1")
    apply_fifo_overrides(hw, fifo_depths)
    hw.freeze()
    return hw

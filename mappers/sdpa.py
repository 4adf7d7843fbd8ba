"""Mapping of a lowered attention head onto streaming templates, with FIFO sizing."""
from __future__ import annotations

import difflib

from ..ir.graph import Graph
from ..templates import naive, online
from .catalog import latency
from .hwgraph import Channel, HwGraph, Instance


class MappingError(ValueError):
    """A mapping request that cannot be honoured; ``field`` names the spec field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


#: depth of the channels that feed the design from outside
INPUT_DEPTH = 2


#: an unknown-channel message lists all channels up to this many, else the closest ones
LISTED_CHANNELS = 12


def _unknown_channel(name: str, channels) -> str:
    names = list(channels)
    if len(names) <= LISTED_CHANNELS:
        return f"no such channel; channels: {', '.join(names)}"
    close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
    maybe = f"did you mean {' or '.join(close)}? " if close else ""
    return (f"no such channel; {maybe}{len(names)} channels: {', '.join(names[:6])}, ... "
            f"(all in report.md, or attnflow sim --json)")


def apply_fifo_overrides(hw: HwGraph, overrides) -> None:
    """Replace the mapper's depth of each named channel (``hardware.fifo_depths``)."""
    for cname, depth in dict(overrides or {}).items():
        if cname not in hw.channels:
            raise MappingError(f"hardware.fifo_depths.{cname}", _unknown_channel(cname, hw.channels))
        c = hw.channels[cname]
        hw.channels[cname] = Channel(c.name, c.layout, depth, c.latency, c.src, c.dst)
        hw.depth_notes[cname] = f"override (mapper: {c.depth}, {hw.depth_notes[cname]})"


def full_rate_depth(producer_latency: int) -> int:
    """A producer of latency L firing every cycle needs L + 1 slots downstream: the slot of
    a token enqueued in cycle t is free again in t + L + 1 at the earliest."""
    return producer_latency + 1


def bypass_depth(n: int, fork_latency: int, reducer_latency: int) -> int:
    """A fork feeding a row reducer and a bypass: the bypass holds the whole row until the
    reduction (visible fork_latency + reducer_latency after the row's last element) arrives."""
    return n + fork_latency + reducer_latency


def head_fill(qk: str, kv: str, softmax: str, nm, lanes: int = 1) -> int:
    """Cycles of a streaming head after its score template's last firing: the input
    channel (1), then the slower of the score template (k -> qk -> s) and the V template
    (v -> kv -> vr; both fire in step and the softmax takes s and vr together), then the
    softmax's and normalize's latencies (-> ol -> normalize -> o). The full online head's,
    the window/causal heads' and the decode head's, each with its own templates (``nm``,
    ``lanes``: the parameters of latencies that depend on them)."""
    lat = {"nm": nm, "lanes": lanes}
    return (1 + max(latency(qk, **lat), latency(kv, **lat)) + latency(softmax, **lat)
            + latency("normalize", nm=nm))


def online_fill(nm, lanes: int = 1) -> int:
    """Cycles of the online head after its last score group (:func:`head_fill`)."""
    return head_fill("qk_scores", "kv_replay", "online_softmax_pv", nm, lanes)


def online_rows(nm, lanes: int = 1) -> int:
    """Query rows the online head interleaves (``templates.online.interleave``)."""
    from ..templates.online import interleave
    return interleave(nm, lanes)


def online_head_cycles(nm, lanes: int = 1) -> int:
    """Cycles of the online head without stalls: N K loads, then the softmax's firings
    (every block of R interleaved rows: ceil(N / lanes) key groups of R firings; a last
    partial block as many, with bubbles for its missing rows), less the bubbles after the
    last row's last score, then the fill."""
    n, rows = nm.seq_len, online_rows(nm, lanes)
    full, tail = online.blocks(n, rows)
    firings = -(-n // rows) * rows * online.groups(n, lanes)
    return n + firings - (rows - tail if tail else 0) + online_fill(nm, lanes)


def choose_lanes(nm, multipliers, target_cycles: int | None = None,
                 multiplier_budget: int | None = None) -> int:
    """The lanes of an online head for a goal: the fewest lanes whose cycles meet
    ``target_cycles``, or the fewest lanes reaching the fewest cycles within
    ``multiplier_budget`` (``multipliers(lanes)``: the head's multiplier count). Only lane
    counts that give a new group count are candidates (N = 8: 1, 2, 3, 4, 8). Cycles
    need not fall with every lane added: the head interleaves lanes * step query rows,
    and more of them than N rows leave bubbles (``online_head_cycles``)."""
    n = nm.seq_len
    cands = sorted({-(-n // g) for g in range(1, n + 1)})
    if target_cycles is not None:
        best = min(cands, key=lambda lanes: (online_head_cycles(nm, lanes), lanes))
        for lanes in cands:
            if online_head_cycles(nm, lanes) <= target_cycles:
                return lanes
        raise MappingError("hardware.target_cycles",
                           f"{target_cycles} cycles is below the fastest head ({best} lanes: "
                           f"{online_head_cycles(nm, best)} cycles); raise it")
    fit = [lanes for lanes in cands if multipliers(lanes) <= multiplier_budget]
    if not fit:
        raise MappingError("hardware.multiplier_budget",
                           f"{multiplier_budget} multipliers is below the one-lane head's "
                           f"{multipliers(1)}; raise it")
    # not always the most lanes: the rows interleaved grow with the lanes, and a last
    # partial block of them runs with bubbles
    return min(fit, key=lambda lanes: (online_head_cycles(nm, lanes), lanes))


def map_attention_head(graph: Graph, variant: str, fifo_depths=None, name="attnflow_top",
                       lanes: int = 1) -> HwGraph:
    """Lowered IR of one head (see ``ir.lower``) -> HwGraph.

    ``fifo_depths`` overrides the mapper's depth for named channels (experiments, e.g. the
    naive variant's bypass deadlock). ``lanes`` (online variant): scores per cycle in
    qk_scores, kv_replay and online_softmax_pv (``templates.online.groups``)."""
    nm = graph.numerics
    n, d = nm.seq_len, nm.head_dim
    expected = {"naive": "row_max", "online": "online_pv"}[variant]
    if not graph.find(expected):
        raise MappingError("model.attention.variant",
                           f"graph was not lowered for the {variant} variant")
    if not 1 <= lanes <= n:
        raise MappingError("model.attention.lanes",
                           f"{lanes} lanes for a row of {n} keys (model.seq_len); allowed: 1..{n}")
    if lanes > 1 and variant != "online":
        raise MappingError("model.attention.lanes",
                           f"{lanes} lanes: only the online variant has lanes; "
                           "set model.attention.variant: online or remove lanes")
    hw = HwGraph(name=name, numerics=nm, variant=variant)
    lat = latency
    # lanes > 1 is recorded as a template parameter (lanes = 1 keeps the designs as before)
    lp = {"lanes": lanes} if lanes > 1 else {}

    def inst(name, contract, **params):
        hw.instances[name] = Instance(name, contract.template, contract, tuple(sorted(params.items())))

    def chan(name, layout, src, dst, depth, note):
        latency = hw.instances[src[0]].contract.latency if src else 1
        hw.channels[name] = Channel(name, layout, depth, latency, src, dst)
        hw.depth_notes[name] = note

    # the online head interleaves its query rows (``online_rows``); recorded as a parameter
    rows = online_rows(nm, lanes) if variant == "online" else 1
    rp = dict(lp, rows=rows) if rows > 1 else lp
    inst("qk", online.qk_scores(n, ("s",) if variant == "online" else ("s_a", "s_b"), lanes, rows,
                           nm=nm), **rp)
    inst("vstore", online.kv_replay(n, lanes, rows, nm=nm), **rp)
    chan("q", online.vec_layout(nm.q, d), None, ("qk", "q"), INPUT_DEPTH, "input")
    chan("k", online.vec_layout(nm.k, d), None, ("qk", "k"), INPUT_DEPTH, "input")
    chan("v", online.vec_layout(nm.v, d), None, ("vstore", "v"), INPUT_DEPTH, "input")
    fr = full_rate_depth
    if variant == "online":
        inst("softmax", online.online_softmax_pv(n, lanes, rows, nm=nm), **rp)
        inst("norm", online.normalize(n, nm=nm))
        own = {name: i.contract.latency for name, i in hw.instances.items()}
        chan("s", online.score_layout(nm, lanes), ("qk", "s"), ("softmax", "s"), fr(own["qk"]), "L+1")
        chan("vr", online.vec_layout(nm.v, d * lanes), ("vstore", "vr"), ("softmax", "vr"),
             fr(own["vstore"]), "L+1")
        chan("ol", online.ol_layout(nm), ("softmax", "ol"), ("norm", "ol"), fr(own["softmax"]),
             "L+1")
        chan("o", online.vec_layout(nm.out, d), ("norm", "o"), None, fr(own["norm"]), "L+1")
    else:
        inst("rowmax", naive.row_max(n))
        inst("exp", naive.sub_exp(n))
        inst("rowsum", naive.row_sum(n))
        inst("recip", naive.recip_mul(n))
        inst("pv", naive.pv_accum(n))
        lqk = hw.instances["qk"].contract.latency
        chan("s_a", online.score_layout(nm), ("qk", "s_a"), ("rowmax", "s"), fr(lqk), "L+1")
        chan("s_b", online.score_layout(nm), ("qk", "s_b"), ("exp", "s"),
             bypass_depth(n, lqk, lat("row_max")), "row bypass: N + L(qk) + L(rowmax)")
        chan("m", naive.max_layout(nm), ("rowmax", "m"), ("exp", "m"), fr(lat("row_max")), "L+1")
        chan("e_a", naive.prob_layout(nm), ("exp", "e_a"), ("rowsum", "e"), fr(lat("sub_exp")), "L+1")
        chan("e_b", naive.prob_layout(nm), ("exp", "e_b"), ("recip", "e"),
             bypass_depth(n, lat("sub_exp"), lat("row_sum")), "row bypass: N + L(exp) + L(rowsum)")
        chan("l", naive.sum_layout(nm), ("rowsum", "l"), ("recip", "l"), fr(lat("row_sum")), "L+1")
        chan("p", naive.prob_layout(nm, "p"), ("recip", "p"), ("pv", "p"), fr(lat("recip_mul")), "L+1")
        chan("vr", online.vec_layout(nm.v, d), ("vstore", "vr"), ("pv", "vr"),
             fr(hw.instances["vstore"].contract.latency), "L+1")
        chan("o", online.vec_layout(nm.out, d), ("pv", "o"), None, fr(lat("pv_accum")), "L+1")
    apply_fifo_overrides(hw, fifo_depths)
    hw.freeze()
    return hw

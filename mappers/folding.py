"""Folding of an encoder's linear layers (PE x SIMD per instance) and the cycle model
that drives the automatic choice.

A linear instance of M outputs and K inputs folded (PE, SIMD) fires
``F = (M / PE) * (K / SIMD)`` times per token row with ``PE * SIMD`` multipliers. The
automatic choice fixes a *period* P (cycles per token row) for every op the spec leaves
open, and a second one, P0 <= P, for layer 0's Q/K/V (their N rows are the K barrier
that every later stage waits for, so they weigh N times in the cycle count), and gives
each op the cheapest folding (fewest multipliers; then the smaller PE) with ``F <=``
its period. (P, P0) is, over every candidate pair (the ops' possible F values):

* with ``hardware.target_cycles`` T: the pair with the fewest multipliers whose
  modelled cycles per sequence (:func:`stack_cycles`) are <= T;
* with ``hardware.multiplier_budget`` B: the pair with the fewest cycles whose design
  multiplier count is <= B (``attnflow.api.prepare_for`` bisects B against a device's
  full fit check for ``--target``);
* with both: the budget's choice, which must also meet T;
* with neither: P = P0 = ceil(N / lanes), the attention's own period (``qk_scores``
  makes ``lanes`` scores per cycle, ``model.attention.lanes``, default 1), below which a
  faster linear shortens no row: the balanced pipeline.

Attention lanes: when the spec gives no ``model.attention.lanes`` and a goal is set, the
lanes follow the period: P below N takes the fewest lanes whose ceil(N / lanes) score
groups fit P (:func:`lanes_for`), so a period the attention could not keep up with one
score per cycle becomes reachable, at ``lanes * (3 d_head + 1)`` attention multipliers
per head (:func:`attention_multipliers`); the candidate periods include every
ceil(N / lanes).

:func:`stack_cycles` is the analytic cycle count of the stacked layers with the mapper's
FIFO depths and no stalls (``mappers.encoder.expected_cycles`` per layer, chained): the
simulator checks it (tests/test_encoder_stack.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir.encoder_golden import OPS
from ..ir.numerics import AttentionNumerics
from ..ir.spec import HEAD_OPS
from ..ir.window import lookahead, row_slots
from ..templates import online
from ..templates.linear import divisors
from .catalog import latency


class FoldingError(ValueError):
    """No folding meets the request; ``field`` names the spec field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def options(m: int, k: int) -> list[tuple[int, int, int]]:
    """Every (F, PE, SIMD) of an M x K linear, by F, then multipliers, then PE."""
    return sorted(((m // pe) * (k // simd), pe, simd)
                  for pe in divisors(m) for simd in divisors(k))


def cheapest(m: int, k: int, period: int) -> tuple[int, int]:
    """(PE, SIMD) with the fewest multipliers whose firings per row are <= ``period``
    (the full-parallel (M, K) when none is)."""
    best = None
    for f, pe, simd in options(m, k):
        if f <= period and (best is None or (pe * simd, pe) < (best[0] * best[1], best[0])):
            best = (pe, simd)
    return best or (m, k)


@dataclass(frozen=True)
class FoldPlan:
    """The folding of every layer: ``foldings[i][op] = (PE, SIMD)`` (frozen: a changed
    figure is a new plan, ``dataclasses.replace``)."""
    foldings: list
    mode: str               # spec | balanced | target_cycles | target_interval | multiplier_budget
    period: int | None      # the period P of the automatic ops (None: all from the spec)
    auto_ops: list          # (layer, op) folded automatically
    cycles: int             # modelled cycles per sequence (stack_cycles)
    multipliers: int        # linear + attention multipliers of the whole design
    barrier: int | None = None   # the period of layer 0's Q/K/V when it differs
    lanes: int = 1          # every head's scores per cycle (spec, or chosen with P)
    lanes_auto: bool = False     # lanes chosen here (the spec gives none)
    #: where ``cycles`` comes from: "model" (exact), or, for a window stack with Q/K/V
    #: folded differently, "lower bound" (window_stack_cycles), which attnflow.api
    #: replaces by the simulator's count ("simulator")
    cycles_source: str = "model"
    #: modelled cycles between sequences back to back (:func:`stack_interval`)
    interval: int | None = None
    #: the design runs sequences back to back (or aims at an interval): describe says it
    back_to_back: bool = False

    def describe(self) -> str:
        if self.mode == "spec":
            return "folding: every linear from hardware.parallelism" + (
                f", {self.lanes} attention lanes" if self.lanes > 1 else "")
        b = (f", layer 0 Q/K/V {self.barrier}" if self.barrier not in (None, self.period)
             else "")
        if self.lanes > 1:
            b += f", {self.lanes} attention lanes{' (auto)' if self.lanes_auto else ''}"
        return (f"folding: {len(self.auto_ops)} linears chosen automatically "
                f"({self.mode}, period {self.period} cycles per token{b}): model "
                f"{self.cycles} cycles per sequence"
                + (f" (back to back: one every {self.interval})" if self.back_to_back else "")
                + f", {self.multipliers} linear + attention multipliers")


@dataclass(frozen=True)
class HeadTiming:
    """What a stack's cycle model reads of its heads: the query rows the full head
    interleaves (``mappers.sdpa.online_rows``; 1 for the window templates) and the
    latencies of the head templates that depend on the numerics and the lanes."""
    rows: int
    qk: int
    kv: int
    softmax: int
    normalize: int


def head_timing(nm, lanes: int = 1, full: bool = True) -> HeadTiming:
    """The :class:`HeadTiming` of a stack's heads (``full``: the full head's templates,
    else the window templates) with numerics ``nm`` and ``lanes``."""
    from .sdpa import online_rows
    names = ("qk_scores", "kv_replay", "online_softmax_pv") if full else \
        ("qk_window", "kv_window", "softmax_window")
    lat = [latency(t, nm=nm, lanes=lanes) for t in names]
    return HeadTiming(online_rows(nm, lanes) if full else 1, *lat, latency("normalize", nm=nm))


def fires(model, op: str, pe_simd) -> int:
    m, k = model.fold_dims(op)
    pe, simd = pe_simd
    return (m // pe) * (k // simd)


#: the stages a token row passes after the K barrier, each holding a row F - 1 cycles
ROW_STAGES = ("qk", "attn_out", "res1", "ffn_up", "act", "ffn_down", "res2")
#: the same in a causal layer, which has no K barrier: the Q/K/V linears (the slowest of
#: the three, ``qkv``) are one more row stage
CAUSAL_STAGES = ("qkv",) + ROW_STAGES


def score_rows(n: int, groups: int, rows: int) -> np.ndarray:
    """Firings of the full head's softmax, from its first, to each query row's last score
    (its (o, l) out): rows interleaved ``rows`` at a time, so row r = b * rows + i ends at
    b * rows * groups + (groups - 1) * rows + i (``templates.online._interleaved``; a
    last partial block likewise, its missing rows being bubbles)."""
    r = np.arange(n, dtype=np.int64)
    return (r // rows) * rows * groups + (groups - 1) * rows + r % rows


def advance(val: np.ndarray, period: int) -> np.ndarray:
    """Rows through a stage that takes one every ``period`` cycles: best[x'] = max over
    x <= x' of val[x] + (x' - x) * period."""
    rows = np.arange(len(val), dtype=np.int64)
    return rows * period + np.maximum.accumulate(val - rows * period)


def layer_rows(n: int, f: dict, rows: int) -> np.ndarray:
    """Each output row's time after the layer's first score, less the latencies (the
    rows x stages longest path below the K barrier): the attention's row ends
    (:func:`score_rows`) through the row stages after qk, the slowest of which (``B_d``)
    sets the pace of every row after the first one a path enters there."""
    down = max(f[s] for s in ROW_STAGES if s != "qk")
    return advance(score_rows(n, f["qk"], rows), down)


def layer_cycles(n: int, heads: int, rms: bool, f: dict, pre: bool = False,
                 causal: bool = False, ht: HeadTiming | None = None) -> tuple[int, int, int]:
    """(total, F_qkv, B) of one layer standing alone, fed at full rate, no stalls; ``f``:
    firings per token row of every multi-firing stage (``mappers.encoder.layer_fires``).

    * barrier: no score before the last K row: ``N * F_qkv`` (F_qkv: the slowest of the
      Q/K/V linears; they share the fork, row for row);
    * then the rows flow through the stages of :data:`ROW_STAGES`: the first row spends
      ``F - 1`` cycles in each (taken on its first firing, emitted on its last), the other
      N - 1 leave at the bottleneck period ``B = max F``;
    * plus the critical-path latencies (``mappers.encoder.critical_latency``).

    Exact (the simulator checks it) when Q, K and V have the same folding; a slower V
    moves the barrier's latency path (kv_replay instead of qk) by a few cycles.

    ``causal``: no barrier: qk_window takes Q and K row i on row i's first firing and
    scores it in that firing, so row 0's first score comes ``F_qkv - 1`` (plus latencies)
    after the linears take row 0, where the full layer's comes ``N * F_qkv`` after (the
    last K row, N F_qkv - 1, and the load firing): the causal count is the full one with
    ``N * F_qkv`` replaced by the Q/K/V linears as one more row stage
    (:data:`CAUSAL_STAGES`; F_qkv counts in B). Exact for every folding the tests try,
    Q, K and V folded alike or not (tests/test_decoder.py).

    The full head interleaves ``ht.rows`` query rows, so its rows leave in bursts (a
    block's rows on consecutive cycles, blocks ``rows * G`` apart): the attention
    stage's part of the row-0 path and the N - 1 row advances are the longest path of
    :func:`layer_rows` instead of ``G - 1 + (N - 1) B`` (the same for one row at a time).
    ``ht``: the heads' :class:`HeadTiming`."""
    from .encoder import critical_latency
    f = dict(f, qkv=max(f["attn_q"], f["attn_k"], f["attn_v"]))
    stages = CAUSAL_STAGES if causal else ROW_STAGES
    b = max(f[s] for s in stages)
    crit = critical_latency(heads, rms, pre, ring=causal, ht=ht)
    if causal:
        return sum(f[s] - 1 for s in stages) + (n - 1) * b + crit, f["qkv"], b
    rows = layer_rows(n, f, ht.rows)
    total = sum(f[s] - 1 for s in stages if s != "qk") + int(rows[-1]) + crit + n * f["qkv"]
    return total, f["qkv"], b


def stack_cycles(n: int, heads: int, rms: bool, layer_fires: list, pre: bool = False,
                 final_norm: bool = False, kind: str = "full", window: int | None = None,
                 ht: HeadTiming | None = None) -> int:
    """Cycles per sequence (reset to last output, inclusive) of stacked layers, no stalls:
    the layer kind's cycle model (``mappers.encoder.STACK_HEADS[kind].cycles``: chained
    :func:`layer_cycles` for full attention, :func:`causal_stack_cycles`,
    :func:`window_stack_cycles` with the lookahead of ``window``), plus the final norm.
    ``ht``: the heads' :class:`HeadTiming`."""
    from .encoder import STACK_HEADS
    total = STACK_HEADS[kind].cycles(n, heads, rms, layer_fires, pre, window, ht)
    if final_norm:
        total += latency("rmsnorm" if rms else "layernorm")
    return total


def full_stack_cycles(n: int, heads: int, rms: bool, layer_fires: list,
                      pre: bool = False, ht: HeadTiming | None = None) -> int:
    """Cycles of stacked full-attention layers (no final norm), no stalls. Layer i > 0
    starts projecting K as layer i - 1's rows arrive (at its :func:`layer_rows` times):
    its K stream ends ``max over r of (a_r + (N - r) F_qkv) - 1`` cycles after the
    previous layer's output ends (a_r <= 0: row r's time less the last row's; rows one
    per ``B_{i-1}`` give ``max(F_qkv, N F_qkv - (N - 1) B_{i-1})``), then its own row
    pipeline runs as in one layer."""
    total, _, _ = layer_cycles(n, heads, rms, layer_fires[0], pre, ht=ht)
    prev = layer_rows(n, layer_fires[0], ht.rows)
    ahead = np.arange(n, 0, -1, dtype=np.int64)
    for f in layer_fires[1:]:
        single, f_qkv, _ = layer_cycles(n, heads, rms, f, pre, ht=ht)
        k_end = int(np.max(prev - prev[-1] + ahead * f_qkv))
        total += k_end - 1 + (single - n * f_qkv - 1)
        prev = layer_rows(n, f, ht.rows)
    return total


def causal_stack_cycles(n: int, heads: int, rms: bool, layer_fires: list,
                        pre: bool = False, ht: HeadTiming | None = None) -> int:
    """Cycles of stacked causal layers (no final norm), no stalls. No layer waits for a
    whole sequence, so the stack is one row pipeline, and the last row leaves at the
    longest path through it: row 0 down to some stage s, the N - 1 other rows through s
    at its period F_s, row N - 1 on from s to the output. Each layer's row-0 part is
    :func:`layer_cycles` (causal) less ``(N - 1) B``, 2 cycles less per joint between
    layers (the joint channel's latency and the inclusive count are in both layers'
    figures). One fork in a layer has two branches of different latency: Q and K reach
    softmax through qk_window (latency ``ht.qk``), V through kv_window (``ht.kv``), so the
    row-0 part of a layer takes the Q/K branch (``F_qk - 1``, F_qk the slower of Q and K)
    or the V branch (``F_v - 1 - (ht.qk - ht.kv)``), the longer one, and exactly that one when s is that
    layer's lin_q/lin_k, resp. lin_v. The maximum over every stage s of every layer is
    the count; with Q, K, V folded alike it is :func:`layer_cycles`' row-0 parts plus
    ``(N - 1) max_i B_i``."""
    skew = ht.qk - ht.kv
    base, branches, stages = [], [], []
    for i, f in enumerate(layer_fires):
        single, f_qkv, b = layer_cycles(n, heads, rms, f, pre, causal=True, ht=ht)
        qk = max(f["attn_q"], f["attn_k"]) - 1
        v = f["attn_v"] - 1 - skew
        base.append(single - (n - 1) * b - (f_qkv - 1))   # without the Q/K/V stage
        branches.append((qk, v))
        stages += [(i, None, f[s]) for s in ROW_STAGES]
        stages += [(i, 0, f["attn_q"]), (i, 0, f["attn_k"]), (i, 1, f["attn_v"])]
    total = None
    for i, branch, period in stages:
        path = sum(base) + sum(max(br) if j != i or branch is None else br[branch]
                               for j, br in enumerate(branches)) + (n - 1) * period
        total = path if total is None else max(total, path)
    return total - 2 * (len(layer_fires) - 1)


def window_stack_cycles(n: int, heads: int, rms: bool, layer_fires: list,
                        pre: bool = False, ahead: int = 0, ht: HeadTiming | None = None) -> int:
    """Cycles of stacked symmetric-window layers (``attention.kind: window``, lookahead
    w' = ``ahead``; no final norm), no stalls: the longest path through the rows x
    stages graph, as :func:`causal_stack_cycles` but with the lookahead edge. qk_window
    takes Q row i with K row i + w' (and kv_window V row i + w'), so a path may reach
    query row i of layer l from K (or V) row i + w' of the same layer: it climbs w' rows
    before the joint and falls back w' after. A path is then row 0 from the input to the
    output (the same row-0 latencies as the causal layers': each layer's row-0 part of
    :func:`layer_cycles` with its Q/K or V branch, 2 cycles less per joint between
    layers) plus its row advances, each at the period of the slowest stage of the
    *segment* it is made in: segment 0 is layer 0's branch linear (F_q, F_k or F_v) fed
    at one row a cycle, segment l (0 < l < L) layer l - 1's stages from qk on
    (:data:`ROW_STAGES`) and layer l's branch linear, the last segment layer L - 1's
    stages from qk on. The row index starts at 0, ends at N - 1, stays in 0..N-1, and
    drops by w' at every K/V joint (possible from row >= w' only: the tail rows take Q
    alone); the Q branch keeps it. The maximum over every branch choice and every split
    of the advances is a dynamic programme over the row index (O(L N)); w' = 0 gives
    :func:`causal_stack_cycles`' figure. Exact on the examples and on random foldings
    with Q/K/V folded alike, with and without lanes (tests/test_window_stack.py), which
    the automatic folding always gives (the three have the same dims and period).

    Q, K, V folded differently (only from ``hardware.parallelism``): the figure is a
    lower bound, not exact. The paths above assume unbounded FIFOs; the fork feeds all
    three linears and waits for the slowest, and its bounded slack (x_lin_* and the
    q/k/v FIFOs) couples the branches, so e.g. a slow lin_q holds back K rows a fast
    lin_k would have delivered w' rows ahead: the simulator measured 0.2 % to 15 % more
    (coupling every branch at the slowest linear's period instead over-estimates by
    1 % to 18 %). :func:`plan_folding` marks such a plan ``cycles_source = "lower
    bound"`` and ``attnflow.api`` measures its cycles on the simulator instead."""
    skew = ht.qk - ht.kv
    neg = -(1 << 60)
    val = np.full(n, neg, dtype=np.int64)
    val[0] = 0
    base, prev_down = 0, 1     # the design input: one row a cycle
    for f in layer_fires:
        single, f_qkv, b = layer_cycles(n, heads, rms, f, pre, causal=True, ht=ht)
        base += single - (n - 1) * b - (f_qkv - 1)
        nxt = np.full(n, neg, dtype=np.int64)
        for lin, jump, lat in ((f["attn_q"], 0, f["attn_q"] - 1),
                               (f["attn_k"], ahead, f["attn_k"] - 1),
                               (f["attn_v"], ahead, f["attn_v"] - 1 - skew)):
            seg = advance(val, max(prev_down, lin))
            if jump < n:
                moved = seg[jump:] + lat
                nxt[:n - jump] = np.maximum(nxt[:n - jump], moved)
        val = np.where(nxt > neg // 2, nxt, neg)
        prev_down = max(f[s] for s in ROW_STAGES)
    return int(base + advance(val, prev_down)[n - 1]) - 2 * (len(layer_fires) - 1)


def attention_multipliers(model, lanes: int = 1) -> int:
    """Multipliers of one head's online attention templates (per lane: qk d; softmax l*e
    shared with e*v, e*v d, o*e d; normalize: d), not counting constant multiplies."""
    d = model.d_head
    return lanes * (d + (2 * d + 1)) + d


def multipliers(model, foldings: list, lanes: int = 1) -> int:
    """All variable multipliers of the design: the linear PE x SIMD arrays (Q/K/V once per
    head) and the attention templates (``lanes`` scores per cycle)."""
    total = 0
    for fold in foldings:
        for op in OPS:
            pe, simd = fold[op]
            total += pe * simd * (model.heads if op in HEAD_OPS else 1)
        total += model.heads * attention_multipliers(model, lanes)
    return total


def lanes_for(n: int, period: int) -> int:
    """The fewest attention lanes whose row of ceil(N / lanes) score groups fits
    ``period`` cycles (1 when period >= N)."""
    return max(1, -(-n // period))


def stack_interval(n: int, layer_fires: list, qk_loads: int) -> int:
    """Cycles between sequences back to back (``mappers.sequences``): the most firings per
    sequence of any stage, N rows x its firings per row (``mappers.encoder.layer_fires``),
    the heads' ``qk`` plus ``qk_loads`` firings that only load K rows (a full head's N,
    a symmetric window's lookahead fill w', 0 for causal)."""
    return max(n * f + (qk_loads if op == "qk" else 0)
               for fl in layer_fires for op, f in fl.items())


def plan_folding(spec, multiplier_budget: int | None = None, attn=None) -> FoldPlan:
    """The folding of ``spec``'s encoder: spec entries as given, the rest automatic.
    ``multiplier_budget`` applies when the spec sets none (``prepare_for`` passes the
    budgets of its bisection against a device's fit check). ``attn``: the heads'
    attention numerics (the stack IR's, calibrated formats included; default: the spec's
    formats), which the heads' latencies in the cycle model read."""
    search = _Search(spec, multiplier_budget, attn)
    if not search.auto:
        return search.plan("spec", None, None, *search.at(1, 1, search.fixed_lanes or 1))
    if search.budget is None and search.target is None and search.interval is None:
        lanes = search.fixed_lanes or 1
        g = online.groups(search.keys, lanes)
        return search.plan("balanced", g, g, *search.at(g, g, lanes))
    evals = search.evaluations()
    if search.budget is not None:
        return search.plan("multiplier_budget", *search.within_budget(evals))
    mode = "target_cycles" if search.target is not None else "target_interval"
    return search.plan(mode, *search.meeting_target(evals))


class _Search:
    """The folding search of one encoder spec: which ops are fixed, the goal, and the
    layer kind's cycle model (``mappers.encoder.STACK_HEADS``)."""

    def __init__(self, spec, multiplier_budget, attn=None):
        from .encoder import STACK_HEADS
        self.model, hwspec = spec.model, spec.hardware
        model = self.model
        self.n, self.L = model.seq_len, model.layers
        self.rms = model.norm == "rmsnorm"
        att = model.attention
        self.kind, self.window = att.kind, att.window
        self.heads = STACK_HEADS[att.kind]
        self.fixed, self.auto = {}, []
        for i in range(self.L):
            for op in OPS:
                f = hwspec.folding(op, i)
                if f is None:
                    self.auto.append((i, op))
                else:
                    self.fixed[(i, op)] = (f.pe, f.simd)
        self.target = hwspec.target_cycles
        self.interval = hwspec.target_interval
        #: back to back, the fastest folding is the one with the shortest interval
        self.by_interval = hwspec.target_interval is not None or hwspec.sequences > 1
        self.budget = hwspec.multiplier_budget or multiplier_budget
        self.fixed_lanes = att.lanes
        f = spec.formats
        self.nm = attn or AttentionNumerics(self.n, model.d_head, f.q, f.k, f.v, f.out,
                                            f.score_frac, f.prob_frac)
        # score slots a row: N, w' + 1 for a causal sliding window, 2 w' + 1 for a window
        self.keys = keys = row_slots(self.n, att.kind, att.window)
        if self.fixed_lanes is not None and not 1 <= self.fixed_lanes <= keys:
            raise FoldingError("model.attention.lanes",
                               f"{self.fixed_lanes} lanes for a row of {keys} keys "
                               f"{self.heads.keys_text(keys, self.n)}; allowed: 1..{keys}")
        # lanes follow the period when the spec gives none and a goal asks for speed or
        # a budget: the fewest lanes whose ceil(N / lanes) score groups fit the period
        self.auto_lanes = self.fixed_lanes is None and (self.budget is not None
                                                        or self.target is not None
                                                        or self.interval is not None)

    def at(self, period, barrier, lanes):
        """(folds, cycles, multipliers, lanes) with the auto ops at ``period``, layer 0's
        Q/K/V at ``barrier`` (their N firings per row are the K barrier every later stage
        waits for)."""
        from .encoder import layer_fires
        model, n = self.model, self.n
        folds = [{op: self.fixed.get((i, op)) or cheapest(
            *model.fold_dims(op), barrier if i == 0 and op in HEAD_OPS else period)
            for op in OPS} for i in range(self.L)]
        fi = [layer_fires(n, model.d_model, model.d_ff, model.d_head, fl, lanes, self.keys)
              for fl in folds]
        ht = head_timing(self.nm, lanes, self.heads.barrier)
        return (folds, stack_cycles(n, model.heads, self.rms, fi, model.norm_position == "pre",
                                    model.final_norm, self.kind, self.window, ht),
                multipliers(model, folds, lanes), lanes,
                stack_interval(n, fi, n if self.heads.barrier else
                               lookahead(self.window, n, self.kind)))

    def plan(self, mode, period, barrier, folds, cyc, mul, lanes, interval) -> FoldPlan:
        model = self.model
        alike = all(len({fires(model, op, fl[op]) for op in HEAD_OPS}) == 1 for fl in folds)
        return FoldPlan(folds, mode, period, self.auto, cyc, mul,
                        barrier=barrier if barrier != period else None, lanes=lanes,
                        lanes_auto=self.fixed_lanes is None and lanes > 1,
                        cycles_source="model" if self.heads.exact(alike) else "lower bound",
                        interval=interval, back_to_back=self.by_interval)

    def lanes_at(self, p):
        return lanes_for(self.keys, p) if self.auto_lanes else self.fixed_lanes or 1

    def periods(self) -> list:
        periods = {f for _, op in self.auto for f, _, _ in options(*self.model.fold_dims(op))}
        if self.auto_lanes:     # the attention's own periods with more lanes
            periods |= {online.groups(self.keys, lanes) for lanes in range(1, self.keys + 1)}
        return sorted(periods)

    def evaluations(self) -> list:
        """(period, barrier period, folds, cycles, multipliers, lanes, interval) of every candidate;
        barrier <= period, searched only when the kind has a K barrier and one of layer
        0's Q/K/V is folded automatically."""
        periods = self.periods()
        if self.heads.barrier and any(i == 0 and op in HEAD_OPS for i, op in self.auto):
            return [(p, b, *self.at(p, b, self.lanes_at(p)))
                    for p in periods for b in periods if b <= p]
        return [(p, p, *self.at(p, p, self.lanes_at(p))) for p in periods]

    def within_budget(self, evals) -> tuple:
        """The fastest candidate within the budget (which must also meet a target)."""
        budget, target, model = self.budget, self.target, self.model
        ok = [e for e in evals if e[4] <= budget]
        if not ok:
            least = min(e[4] for e in evals)
            raise FoldingError("hardware.multiplier_budget",
                               f"{budget} multipliers are too few: the most folded design "
                               f"needs {least} (attention alone: {self.L} layers x "
                               f"{model.heads} heads x {attention_multipliers(model)}); "
                               f"raise the budget or fold the fixed hardware.parallelism "
                               f"entries further")
        best = min(ok, key=lambda e: ((e[6], e[3]) if self.by_interval else (e[3], e[6]))
                   + (e[4], -e[0]))
        if self.interval is not None and best[6] > self.interval:
            raise FoldingError("hardware.target_interval",
                               f"{self.interval} cycles between sequences can't be met within "
                               f"{budget} multipliers: the fastest folding that fits takes "
                               f"{best[6]} (model); raise the budget or the target")
        if target is not None and best[3] > target:
            raise FoldingError("hardware.target_cycles",
                               f"{target} cycles per sequence can't be met within "
                               f"{budget} multipliers: the fastest folding that fits takes "
                               f"{best[3]} cycles (model); raise the budget or the target")
        return best

    def meeting_target(self, evals) -> tuple:
        """The cheapest candidate meeting the targets (cycles per sequence, interval)."""
        target, interval = self.target, self.interval
        if interval is not None:
            ok = [e for e in evals if e[6] <= interval]
            if not ok:
                raise FoldingError("hardware.target_interval",
                                   f"{interval} cycles between sequences are out of reach: "
                                   f"the fastest folding takes {min(e[6] for e in evals)} "
                                   f"(model: its slowest stage's firings per sequence); raise "
                                   f"target_interval")
            evals = ok
            if target is None:
                return min(ok, key=lambda e: (e[4], e[6], e[3], -e[0]))
        ok = [e for e in evals if e[3] <= target]
        if not ok:
            fastest = min(e[3] for e in evals)
            lanes = self.lanes_at(self.periods()[0])
            raise FoldingError("hardware.target_cycles",
                               f"{target} cycles per sequence are out of reach: the "
                               f"fastest folding takes {fastest} cycles (model; the "
                               f"attention's N*ceil(keys/lanes) = "
                               f"{self.n * online.groups(self.keys, lanes)} score groups per "
                               f"head and layer at {lanes} lane(s) are the floor); raise "
                               f"target_cycles")
        return min(ok, key=lambda e: (e[4], e[3], -e[0]))

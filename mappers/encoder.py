"""Mapping of encoder layers onto the streaming templates, with FIFO sizing from the
timing contracts. :func:`map_encoder` stacks layers (layer i's names prefixed ``l{i}_``,
layer i + 1 fed by ``l{i+1}_x``, an optional ``final_ln`` after the last);
:func:`map_encoder_layer` maps one layer with unprefixed names.

One post-norm layer (H heads; one row of d_model elements per token unless noted)::

    x -> fork_in --y0----------------------------- skip1 (N deep) --------------> res1.a
                 --y{1+3h}-> lin_q{h} --q{h} (N deep)--> qk{h}.q
                 --y{2+3h}-> lin_k{h} --k{h}-----------> qk{h}.k   --s{h}--> softmax{h}
                 --y{3+3h}-> lin_v{h} --v{h}-----------> vstore{h} --vr{h}-> softmax{h}
         softmax{h} --ol{h}--> norm{h} --o{h}--> [concat.x{h} --att-->] lin_out --proj--> res1.b
    res1 --r1--> ln1 --h1--> fork_ffn --y0--> lin_up --up--> act --a--> lin_down --down--> res2.b
                                      --y1-- skip2 (skip_depth) -----------------------> res2.a
    res2 --r2--> ln2 --y-->

A pre-norm layer moves the norms to the sublayer inputs: ``fork_in`` (y0: skip1, y1:
``ln1`` -> ``fork_attn`` -> the Q/K/V linears), ``res1 -> fork_ffn`` (y0: ``ln2`` ->
``lin_up``, y1: skip2), and the layer's output is ``res2``'s. ``act``, ``res1`` and
``res2`` are folded to the layer's row period (:func:`layer_fires`).

Numerics: every template carries its own numerics in its params (``linear``,
``layernorm``, ``activation``, ``residual_add``, ``fork``, ``concat``) except the
attention templates, which read the graph-level ``hw.numerics``: the one
:class:`~attnflow.ir.numerics.AttentionNumerics` of the layer (``ir.encoder_golden``
plan), shared by every head (same formats and head width). The Q/K/V linears write exactly
its q/k/v formats, and its out format is the out-projection's x format.

FIFO depths (analytic, from the contracts; the mapper records the reason per channel in
``hw.depth_notes``):

* producer-consumer channels: L + 1 (``sdpa.full_rate_depth``), inputs 2.
* ``q{h}``: N (full attention; causal: L + 1, below). ``qk_scores`` takes all N K rows before its first Q row; ``lin_q{h}`` and
  ``lin_k{h}`` are fed by the same fork firing, row for row, so when the last K row is
  loaded ``lin_q{h}`` has produced all N Q rows, none taken yet: the channel holds N.
  Shallower only throttles ``lin_q`` until the fork itself stops; the deadlock bound is
  ``depth(q) + depth(x_lin_q) + (1 if F_q > 1) >= N`` (the 1: the row a folded ``lin_q``
  holds while it waits to emit), :func:`q_deadlock_bound`.
* ``skip1``: N. The fork pushes a row on every output at once, and ``res1`` takes no skip
  row before the first attention row, which needs all N K rows, hence all N fork firings:
  fewer than N slots deadlock (the fork waits on the full skip, ``lin_k`` on the fork,
  ``qk`` on ``lin_k``, ``res1`` on ``qk``); N never fills (the fork pushes N rows in all).
* causal attention (``plan.causal``, ``attention.kind: causal``): each head is the
  one-head causal templates (``templates.window``: ``qk_window`` / ``kv_window`` /
  ``softmax_window`` with kind causal, N slots per row, then ``normalize``); qk_window
  takes Q row i and K row i on row i's first firing and needs no later row, so no
  channel holds a sequence: ``q{h}`` is L + 1 like ``k{h}`` (both drained by the same
  firing; any depth >= 1 is deadlock-free, the fork never waits on a row not yet
  pushed), and ``skip1`` follows the residual rule of ``skip2``:
  ``skip_depth(P, F)`` with P and F from :func:`attn_path` (the attention block is one
  more row pipeline). The simulator meets the cycle model with these depths exactly
  as with every channel 4N deep (tests/test_decoder.py).
* symmetric window attention (``attention.kind: window``, keys |i - j| <= w): the same
  templates with kind window; qk_window takes Q row i only with K row i + w' (its
  lookahead; the fill phase takes K rows 0 .. w'-1 alone). lin_q and lin_k take each
  fork row in the same cycle, so q always holds w' rows more than k: ``q{h}`` is
  k's L + 1 plus w' (:func:`q_window_depth`), the least that never blocks lin_q before
  lin_k; at one row a cycle (every stage F = 1) one slot less costs cycles, and below
  ``q_deadlock_bound`` (w' + 1 rows between x_lin_q, lin_q and q) it deadlocks; slower
  foldings need fewer (tests/test_window_stack.py measures both). ``skip1``: row i's
  attention needs the fork's row i + w', w' rows after row i: the residual rule plus
  w', ``skip_depth(P, F) + w'``, with P, F from :func:`attn_path` as for causal; w' or
  fewer slots deadlock (res1's first row waits for the fork's row w'). This is the
  steady-state rule and never costs cycles; it is the least for the balanced foldings
  measured and up to 2 slots more than the least at one row a cycle (the figures in
  tests/test_window_stack.py).
* ``skip2``: ``rowops.skip_depth(P, F)`` with P and F from :func:`ffn_path`: P = fork
  (+ ln2 in a pre-norm layer) + lin_up (L + F_up - 1) + act (L + F_act - 1) + lin_down
  (L + F_down - 1), F = max(F_up, F_down, F_act, F_res2): the usual residual rule.
"""
from __future__ import annotations

from ..ir.encoder_golden import LayerPlan
from ..ir.window import lookahead, row_slots
from ..templates import linear as lin_mod
from ..templates import online
from ..templates import window as W
from ..templates.activation import ActivationParams
from ..templates.linear import LinearParams
from ..templates.norm import NormParams
from ..templates.residual import ResidualParams
from ..templates.wires import ForkParams, concat_instance
from . import folding as F
from .catalog import latency
from .hwgraph import Channel, HwGraph, Instance
from .rowops import elementwise_fires, skip_depth
from .sdpa import INPUT_DEPTH, apply_fifo_overrides, full_rate_depth, online_rows


def folding_of(spec, op: str, layer: int = 0) -> tuple[int, int]:
    """(PE, SIMD) of a linear op from ``hardware.parallelism``; (1, 1) when unset."""
    f = spec.hardware.folding(op, layer) if spec is not None else None
    return (f.pe, f.simd) if f is not None else (1, 1)


def map_encoder_layer(plan: LayerPlan, folding: dict | None = None, fifo_depths=None,
                      name: str = "encoder_layer", lanes: int = 1) -> HwGraph:
    """One encoder layer -> HwGraph with unprefixed names (input ``x``, output ``y``).
    ``folding``: op -> (PE, SIMD) (missing: (1, 1)); for Q/K/V, PE must divide d_head.
    ``fifo_depths``: channel -> depth overrides; ``lanes``: the attention's scores per
    cycle (``templates.online.groups``)."""
    return map_encoder([plan], [folding], fifo_depths, name, prefix=lambda i: "",
                       lanes=lanes)


def layer_prefix(i: int) -> str:
    """Name prefix of layer ``i``'s instances and channels in a whole-encoder HwGraph."""
    return f"l{i}_"


def map_encoder(plans: list, foldings: list | None = None, fifo_depths=None,
                name: str = "encoder", prefix=layer_prefix, final=None,
                lanes: int = 1) -> HwGraph:
    """A stack of encoder layers -> one HwGraph. Layer i's instances and channels are named
    ``prefix(i) + <layer name>``; the design input is ``x``, the output ``y``, and layer
    i + 1 reads layer i's output over ``l{i+1}_x``. ``final``: the norm after the last
    layer (``ir.encoder_golden.final_norm_plan``), instance ``final_ln`` fed by
    ``final_x``. ``lanes``: every head's scores per cycle (``templates.online.groups``)."""
    if not plans:
        raise ValueError("map_encoder: no layers")
    attn = plans[0].attn
    if any(p.attn != attn for p in plans):
        raise ValueError("map_encoder: every layer must share one AttentionNumerics")
    foldings = list(foldings or [None] * len(plans))
    hw = HwGraph(name=name, numerics=attn, variant="encoder_online")
    src = None
    for i, plan in enumerate(plans):
        last = i == len(plans) - 1 and final is None
        src = _add_layer(hw, plan, foldings[i], prefix(i), src,
                         "x" if i == 0 else f"{prefix(i)}x", "y" if last else None, lanes)
    if final is not None:
        n = plans[0].n
        fn = NormParams.make(n, final.numerics, final.gamma, final.beta, rms=final.rms)
        hw.instances["final_ln"] = fn.instance("final_ln")
        prev = hw.instances[src[0]]
        hw.channels["final_x"] = Channel("final_x", fn.x_layout(), full_rate_depth(
            prev.contract.latency), prev.contract.latency, src, ("final_ln", "x"))
        hw.channels["y"] = Channel("y", fn.y_layout(), full_rate_depth(latency(fn.template)),
                                   latency(fn.template), ("final_ln", "y"), None)
        hw.depth_notes["final_x"] = hw.depth_notes["y"] = "L+1"
    apply_fifo_overrides(hw, fifo_depths)
    hw.freeze()
    return hw


class FullStackHeads:
    """How a stack layer's heads are built for full attention: the full head's templates
    (``qk_scores`` / ``kv_replay`` / ``online_softmax_pv``); qk takes all N K rows before
    its first Q row, so Q and the residual skip hold the whole sequence. Also the
    kind's cycle model (:meth:`cycles`, :meth:`layer_figures`), read by the folding
    search, the build summary and ``expected_cycles``."""
    #: the first score waits for all N K rows (the K barrier): the folding search gives
    #: layer 0's Q/K/V a period of their own
    barrier = True
    #: what the build summary adds to "cycle model mappers.folding.stack_cycles"
    cycles_note = ""

    def what(self, att) -> str:
        """What the build summary calls a stack of this kind."""
        return "encoder (full attention)"

    def cycles(self, n: int, heads: int, rms: bool, fires: list, pre: bool,
               window, ht) -> int:
        """Cycles per sequence of stacked layers of this kind (no final norm, no stalls);
        ``fires``: per layer, ``layer_fires``' firings per row; ``ht``: the heads'
        ``mappers.folding.HeadTiming``."""
        return F.full_stack_cycles(n, heads, rms, fires, pre, ht)

    def layer_figures(self, n: int, heads: int, rms: bool, f: dict, pre: bool,
                      window, ht) -> tuple[int, int, int]:
        """(total cycles, cycles before the first score can go on, bottleneck period) of
        one layer standing alone."""
        total, f_qkv, b = F.layer_cycles(n, heads, rms, f, pre, ht=ht)
        return total, n * f_qkv, b

    def interleave(self, plan, lanes: int) -> int:
        """Query rows a head interleaves (its rows leave in bursts of that many)."""
        return online_rows(plan.attn, lanes)

    def exact(self, qkv_alike: bool) -> bool:
        """Whether :meth:`cycles` is exact (else a lower bound the simulator replaces)."""
        return True

    def keys_text(self, keys: int, n: int) -> str:
        """How a lanes error names a row's score slots."""
        return "(model.seq_len)"

    def templates(self, h: int, plan, lanes: int) -> list:
        n, nm, rows = plan.n, plan.attn, self.interleave(plan, lanes)
        p = tuple(sorted(((("lanes", lanes),) if lanes > 1 else ()) + (("rows", rows),)))
        return [Instance(f"qk{h}", "qk_scores", online.qk_scores(n, lanes=lanes, rows=rows, nm=nm), p),
                Instance(f"vstore{h}", "kv_replay", online.kv_replay(n, lanes, rows, nm=nm), p),
                Instance(f"softmax{h}", "online_softmax_pv",
                         online.online_softmax_pv(n, lanes, rows, nm=nm), p)]

    def score_layout(self, nm, lanes: int):
        return online.score_layout(nm, lanes)

    def q_channel(self, plan) -> tuple[int, str]:
        return plan.n, "whole sequence: qk takes all N K rows before its first Q row"

    def vr_channel(self, lat: dict, fe: dict) -> tuple[int, str]:
        return full_rate_depth(lat["vstore"]), "L+1"

    def skip1(self, plan, fe, f_qkv: int, f_out: int, norm_latency) -> tuple[int, str]:
        """(depth, note) of the residual skip around the attention sublayer;
        ``norm_latency``: a pre-norm layer's ln1, else None."""
        return plan.n, "whole sequence: res1 takes no row before qk has all N K rows"


class RowStackHeads(FullStackHeads):
    """Window and causal attention in a stack (``attention.kind: window | causal``): the
    one-head window templates (``templates.window``) and a row pipeline like the FFN block
    (no K barrier; a window's qk takes Q row i with K row i + w')."""
    barrier = False

    def layer_figures(self, n, heads, rms, f, pre, window, ht):
        return self.cycles(n, heads, rms, [f], pre, window, ht), 0, max(f.values())

    def interleave(self, plan, lanes: int) -> int:
        return 1

    def templates(self, h: int, plan, lanes: int) -> list:
        n, kind, cw, nm = plan.n, plan.kind, plan.window, plan.attn
        cp = (("N", n), ("kind", kind), ("window", cw)) + ((("lanes", lanes),) if lanes > 1
                                                           else ())
        return [Instance(f"qk{h}", "qk_window", W.qk_window(n, cw, kind, lanes, nm=nm), cp),
                Instance(f"vstore{h}", "kv_window", W.kv_window(n, cw, kind, lanes, nm=nm), cp),
                Instance(f"softmax{h}", "softmax_window", W.softmax_window(n, cw, kind, lanes, nm=nm),
                         cp)]

    def score_layout(self, nm, lanes: int):
        return W.window_score_layout(nm, lanes)

    @staticmethod
    def ahead(plan) -> int:
        return lookahead(plan.window, plan.n, plan.kind)

    def q_channel(self, plan) -> tuple[int, str]:
        ahead = self.ahead(plan)
        if ahead:
            return (q_window_depth(ahead),
                    f"L+1 + w' = {ahead}: window qk takes Q row i with K row i + w' "
                    f"(lookahead), so Q holds w' rows more than K")
        return (full_rate_depth(latency("linear")),
                "L+1: causal qk takes Q row i with K row i (no K barrier)")

    def vr_channel(self, lat: dict, fe: dict) -> tuple[int, str]:
        # Q/K and V rows arrive together; the V row reaches softmax L(qk) - L(vstore)
        # cycles before its scores, and vstore fires at the rate of qk, one slot group a
        # cycle within a row: vr holds that many more tokens, else vstore stalls, and
        # through the fork the whole layer (with L + 1 only: 2 cycles lost at F = 1
        # everywhere when the lead was 2; 28 at 2 groups a row, N 64, w 4, 5 lanes, once
        # the lead was 10)
        lead = lat["qk"] - lat["vstore"]
        return full_rate_depth(lat["vstore"]) + lead, f"L+1 + {lead}: V leads the scores"

    def skip1(self, plan, fe, f_qkv: int, f_out: int, norm_latency) -> tuple[int, str]:
        # a row pipeline like the FFN block: the residual rule
        p1, per1 = attn_path(fe["qk"], f_qkv, f_out, fe["res1"], plan.heads, norm_latency,
                             plan.attn)
        ahead = self.ahead(plan)
        if ahead:   # row i's attention waits for the fork's row i + w': w' rows more
            return (min(plan.n, skip_depth(p1, per1) + ahead),
                    f"residual skip: min(N, skip_depth(P={p1}, F={per1}) + w' = {ahead}) (window: "
                    f"row i's attention needs the fork's row i + w')")
        return (skip_depth(p1, per1, plan.n),
                f"residual skip: skip_depth(P={p1}, F={per1}), at most N (causal: no K barrier)")


class CausalStackHeads(RowStackHeads):
    """Causal heads (``attention.kind: causal``, optionally a causal window)."""
    cycles_note = " (causal: one row pipeline, no K barrier)"

    def what(self, att):
        if att.window is None:
            return "decoder (causal attention: query i sees keys j <= i)"
        return f"decoder (causal sliding window: query i sees keys i - {att.window} <= j <= i)"

    def cycles(self, n, heads, rms, fires, pre, window, ht):
        return F.causal_stack_cycles(n, heads, rms, fires, pre, ht)

    def keys_text(self, keys, n):
        return "(model.seq_len)" if keys == n else "(causal window + 1)"


class WindowStackHeads(RowStackHeads):
    """Symmetric sliding-window heads (``attention.kind: window``): the lookahead w'."""
    cycles_note = " (window: one row pipeline, w' rows of lookahead)"

    def what(self, att):
        return f"encoder (sliding window: query i sees keys |i - j| <= {att.window})"

    def cycles(self, n, heads, rms, fires, pre, window, ht):
        return F.window_stack_cycles(n, heads, rms, fires, pre, lookahead(window, n), ht)

    def exact(self, qkv_alike):
        return qkv_alike      # Q/K/V folded differently: a lower bound (window_stack_cycles)

    def keys_text(self, keys, n):
        return "(2 window + 1)"


#: attention.kind -> how a stack layer builds its heads and counts its cycles (a new
#: layer attention kind is one class and one entry here)
STACK_HEADS = {"full": FullStackHeads(), "window": WindowStackHeads(),
               "causal": CausalStackHeads()}


class _Layer:
    """Adds one layer's instances and channels to ``hw``, names prefixed ``p``."""

    def __init__(self, hw: HwGraph, plan: LayerPlan, folding, p: str, lanes: int):
        self.hw, self.plan, self.p, self.lanes = hw, plan, p, lanes
        self.folding = dict(folding or {})
        self.heads = STACK_HEADS[plan.kind]
        # element-wise templates fold to the layer's row period (see layer_fires)
        self.fe = layer_fires(plan.n, plan.d_model, plan.d_ff, plan.d_head, self.folding,
                              lanes, layer_keys(plan))
        self.n1 = NormParams.make(plan.n, plan.norm1.numerics, plan.norm1.gamma,
                                  plan.norm1.beta, rms=plan.norm1.rms)
        self.n2 = NormParams.make(plan.n, plan.norm2.numerics, plan.norm2.gamma,
                                  plan.norm2.beta, rms=plan.norm2.rms)

    def add(self, inst: Instance) -> str:
        inst = Instance(self.p + inst.name, inst.template, inst.contract, inst.params)
        self.hw.instances[inst.name] = inst
        return inst.name

    def chan(self, cname, layout, src, dst, depth, note, raw_src=False):
        p, hw = self.p, self.hw
        src = src if raw_src or src is None else (p + src[0], src[1])
        dst = None if dst is None else (p + dst[0], dst[1])
        lat = hw.instances[src[0]].contract.latency if src else 1
        cname = cname if raw_src or dst is None else p + cname
        hw.channels[cname] = Channel(cname, layout, depth, lat, src, dst)
        hw.depth_notes[cname] = note

    def linear(self, iname, op, q) -> LinearParams:
        pe, simd = self.folding.get(op, (1, 1))
        lp = LinearParams.make(self.plan.n, pe, simd, q.numerics, q.w, q.b)
        self.add(lp.instance(iname))
        return lp

    def input_fork(self, x_src, x_name: str):
        """fork_in (skip + Q/K/V per head; pre-norm: skip + ln1 -> fork_attn); returns
        (fork layout, the fork feeding the Q/K/V linears, its first Q/K/V port)."""
        plan, fr = self.plan, full_rate_depth
        n, d, act = plan.n, plan.d_model, plan.act_fmt
        fk = ForkParams(n, d, act, ways=2 if plan.pre else 1 + 3 * plan.heads)
        self.add(fk.instance("fork_in"))
        if x_src is None:
            self.chan(x_name, fk.layout(), None, ("fork_in", "x"), INPUT_DEPTH, "input",
                      raw_src=True)
        else:
            prev = self.hw.instances[x_src[0]]
            self.chan(x_name, fk.layout(), x_src, ("fork_in", "x"), fr(prev.contract.latency),
                      "L+1", raw_src=True)
        if not plan.pre:
            return fk, "fork_in", 1
        n1 = self.n1
        self.add(n1.instance("ln1"))
        self.chan("x_ln1", fk.layout(), ("fork_in", "y1"), ("ln1", "x"), fr(latency("fork")),
                  "L+1")
        fa = ForkParams(n, d, plan.norm1.numerics.out, ways=3 * plan.heads)
        self.add(fa.instance("fork_attn"))
        self.chan("n1", n1.y_layout(), ("ln1", "y"), ("fork_attn", "x"),
                  fr(latency(n1.template)), "L+1")
        return fk, "fork_attn", 0

    def head(self, h: int, fk, qkv_fork: str, qkv_base: int) -> int:
        """Head h: its Q/K/V linears, the kind's attention templates and normalize;
        returns the slowest of its Q/K/V linears' folds."""
        plan, fr, lanes, nm = self.plan, full_rate_depth, self.lanes, self.plan.attn
        lin_lat = latency("linear")
        lq = self.linear(f"lin_q{h}", "attn_q", plan.head_linear("attn_q", h))
        lk = self.linear(f"lin_k{h}", "attn_k", plan.head_linear("attn_k", h))
        lv = self.linear(f"lin_v{h}", "attn_v", plan.head_linear("attn_v", h))
        for port, lname in ((0, f"lin_q{h}"), (1, f"lin_k{h}"), (2, f"lin_v{h}")):
            self.chan(f"x_{lname}", fk.layout(), (qkv_fork, f"y{qkv_base + port + 3 * h}"),
                      (lname, "x"), fr(latency("fork")), "L+1")
        for inst in self.heads.templates(h, plan, lanes):
            self.add(inst)
        q_depth, q_note = self.heads.q_channel(plan)
        self.chan(f"q{h}", lin_mod.y_layout(lq.numerics), (f"lin_q{h}", "y"), (f"qk{h}", "q"),
                  q_depth, q_note)
        self.add(Instance(f"norm{h}", "normalize", online.normalize(plan.n, nm=nm)))
        self.chan(f"k{h}", lin_mod.y_layout(lk.numerics), (f"lin_k{h}", "y"), (f"qk{h}", "k"),
                  fr(lin_lat), "L+1")
        self.chan(f"v{h}", lin_mod.y_layout(lv.numerics), (f"lin_v{h}", "y"),
                  (f"vstore{h}", "v"), fr(lin_lat), "L+1")
        lat = {k: self.hw.instances[self.p + f"{k}{h}"].contract.latency
               for k in ("qk", "vstore", "softmax")}
        self.chan(f"s{h}", self.heads.score_layout(nm, lanes), (f"qk{h}", "s"),
                  (f"softmax{h}", "s"), fr(lat["qk"]), "L+1")
        vr_depth, vr_note = self.heads.vr_channel(lat, self.fe)
        self.chan(f"vr{h}", online.vec_layout(nm.v, plan.d_head * lanes), (f"vstore{h}", "vr"),
                  (f"softmax{h}", "vr"), vr_depth, vr_note)
        self.chan(f"ol{h}", online.ol_layout(nm), (f"softmax{h}", "ol"), (f"norm{h}", "ol"),
                  fr(lat["softmax"]), "L+1")
        return max(lq.fold, lk.fold, lv.fold)

    def attention(self, x_src, x_name: str):
        """The attention sublayer up to res1; returns the input fork's layout."""
        plan, fr, nm, H = self.plan, full_rate_depth, self.plan.attn, self.plan.heads
        n, d, dh = plan.n, plan.d_model, plan.d_head
        fk, qkv_fork, qkv_base = self.input_fork(x_src, x_name)
        f_qkv = max(self.head(h, fk, qkv_fork, qkv_base) for h in range(H))
        lo = self.linear("lin_out", "attn_out", plan.lin["attn_out"])
        # a head's rows leave in bursts of its interleaved rows: the FIFOs up to lin_out
        # hold a burst, so no burst blocks the softmax (the cycle model's rows)
        burst = self.heads.interleave(plan, self.lanes)
        more, why = (burst - 1, f" + {burst - 1}: a burst of {burst} rows") if burst > 1 \
            else (0, "")
        l_norm = self.hw.instances[self.p + "norm0"].contract.latency
        if H == 1:
            self.chan("o0", online.vec_layout(nm.out, dh), ("norm0", "o"), ("lin_out", "x"),
                      fr(l_norm) + more, "L+1" + why)
        else:
            self.add(concat_instance("concat", n, H, dh, nm.out))
            for h in range(H):
                self.chan(f"o{h}", online.vec_layout(nm.out, dh), (f"norm{h}", "o"),
                          ("concat", f"x{h}"), fr(l_norm), "L+1")
            self.chan("att", lin_mod.x_layout(lo.numerics), ("concat", "y"), ("lin_out", "x"),
                      fr(latency("concat")) + more, "L+1" + why)
        r1 = ResidualParams(n, d, plan.res1, d // self.fe["res1"])
        self.add(r1.instance("res1"))
        depth, note = self.heads.skip1(plan, self.fe, f_qkv, lo.fold,
                                       latency(self.n1.template) if plan.pre else None)
        self.chan("skip1", fk.layout(), ("fork_in", "y0"), ("res1", "a"), depth, note)
        self.chan("proj", lin_mod.y_layout(lo.numerics), ("lin_out", "y"), ("res1", "b"),
                  fr(latency("linear")), "L+1")
        return r1

    def ffn(self, r1, y_name: str | None):
        """The FFN sublayer from res1 to the layer's output (see :func:`_add_layer`)."""
        plan, fr, fe, n1, n2 = self.plan, full_rate_depth, self.fe, self.n1, self.n2
        n, d, act, lin_lat = plan.n, plan.d_model, plan.act_fmt, latency("linear")
        # the FFN's fork carries the attention residual (pre-norm) or ln1's output
        fk2 = ForkParams(n, d, plan.res1.out if plan.pre else plan.norm1.numerics.out,
                         ways=2)
        self.add(fk2.instance("fork_ffn"))
        if plan.pre:   # res1 -> fork_ffn -> (skip2, ln2 -> lin_up)
            self.chan("r1", r1.y_layout(), ("res1", "y"), ("fork_ffn", "x"),
                      fr(latency("residual_add")), "L+1")
            self.add(n2.instance("ln2"))
            self.chan("x_ln2", fk2.layout(), ("fork_ffn", "y0"), ("ln2", "x"),
                      fr(latency("fork")), "L+1")
            up_src, up_lat = ("ln2", "y"), latency(n2.template)
        else:          # res1 -> ln1 -> fork_ffn -> (skip2, lin_up)
            self.add(n1.instance("ln1"))
            self.chan("r1", r1.y_layout(), ("res1", "y"), ("ln1", "x"),
                      fr(latency("residual_add")), "L+1")
            self.chan("h1", n1.y_layout(), ("ln1", "y"), ("fork_ffn", "x"),
                      fr(latency(n1.template)), "L+1")
            up_src, up_lat = ("fork_ffn", "y0"), latency("fork")
        lu = self.linear("lin_up", "ffn_up", plan.lin["ffn_up"])
        self.chan("x_lin_up", fk2.layout(), up_src, ("lin_up", "x"), fr(up_lat), "L+1")
        ap = ActivationParams(n, plan.d_ff, plan.act_fn, plan.act_num, plan.d_ff // fe["act"])
        self.add(ap.instance("act"))
        self.chan("up", lin_mod.y_layout(lu.numerics), ("lin_up", "y"), ("act", "x"),
                  fr(lin_lat), "L+1")
        ld = self.linear("lin_down", "ffn_down", plan.lin["ffn_down"])
        self.chan("a", ap.y_layout(), ("act", "y"), ("lin_down", "x"),
                  fr(latency("activation")), "L+1")
        r2 = ResidualParams(n, d, plan.res2, d // fe["res2"])
        self.add(r2.instance("res2"))
        self.chan("down", lin_mod.y_layout(ld.numerics), ("lin_down", "y"), ("res2", "b"),
                  fr(lin_lat), "L+1")
        p2, per2 = ffn_path(lu.fold, ld.fold, fe["act"], fe["res2"],
                            latency(n2.template) if plan.pre else 0)
        self.chan("skip2", fk2.layout(), ("fork_ffn", "y1"), ("res2", "a"),
                  skip_depth(p2, per2, n), f"residual skip: skip_depth(P={p2}, F={per2}), at most N")
        if plan.pre:   # the layer's output is the residual stream
            out, out_lat, out_layout = ("res2", "y"), latency("residual_add"), r2.y_layout()
        else:
            self.add(n2.instance("ln2"))
            self.chan("r2", r2.y_layout(), ("res2", "y"), ("ln2", "x"),
                      fr(latency("residual_add")), "L+1")
            out, out_lat, out_layout = ("ln2", "y"), latency(n2.template), n2.y_layout()
        if y_name is None:
            return (self.p + out[0], out[1])
        self.chan(y_name, out_layout, out, None, fr(out_lat), "L+1")
        return None


def _add_layer(hw: HwGraph, plan: LayerPlan, folding, p: str, x_src, x_name: str,
               y_name: str | None, lanes: int = 1):
    """Add one layer (names prefixed ``p``) fed by ``x_src`` ((instance, port), None: a
    design input) over channel ``x_name``. Its output goes to the design output
    ``y_name``, or, when None, is returned as the (instance, port) the next layer reads.
    The heads are built by the layer kind's :data:`STACK_HEADS` entry."""
    layer = _Layer(hw, plan, folding, p, lanes)
    return layer.ffn(layer.attention(x_src, x_name), y_name)


def ffn_path(f_up: int, f_down: int, f_act: int = 1, f_res: int = 1,
             norm_latency: int = 0) -> tuple[int, int]:
    """(P, row period) of the FFN block between fork_ffn and res2 (see rowops.skip_depth):
    each folded stage holds a row F - 1 cycles between taking it and emitting it;
    ``norm_latency``: a pre-norm layer's ln2 in the block."""
    lat = latency("linear")
    p = (latency("fork") + norm_latency + (lat + f_up - 1) + (latency("activation") + f_act - 1)
         + (lat + f_down - 1))
    return p, max(f_up, f_down, f_act, f_res)


def attn_path(n: int, f_qkv: int, f_out: int, f_res: int = 1, heads: int = 1,
              norm_latency: int | None = None, nm=None) -> tuple[int, int]:
    """(P, row period) of a causal layer's attention block between fork_in and res1 (see
    rowops.skip_depth): fork (+ ln1 and fork_attn in a pre-norm layer: ``norm_latency``
    not None), the slowest of the Q/K/V linears (L + F_qkv - 1), qk_window (L + N - 1:
    Q and K row i taken on the row's first of N firings, its last score N - 1 firings
    later), softmax_window (L: ol on the firing of the row's last score), normalize,
    concat (H > 1), lin_out (L + F_out - 1). F = max(F_qkv, N, F_out, F_res1). With
    attention lanes, ``n`` is qk_window's firings per row, ceil(N / lanes); ``nm``: the
    heads' numerics (normalize's latency)."""
    lat = latency("linear")
    p = (latency("fork") + (0 if norm_latency is None else norm_latency + latency("fork"))
         + (lat + f_qkv - 1) + (latency("qk_window", nm=nm) + n - 1) + latency("softmax_window")
         + latency("normalize", nm=nm) + (latency("concat") if heads > 1 else 0)
         + (lat + f_out - 1))
    return p, max(f_qkv, n, f_out, f_res)


def layer_keys(plan) -> int:
    """Score slots per query row of a layer's heads: N, w' + 1 for a causal window,
    2 w' + 1 for a symmetric window (kind window)."""
    return row_slots(plan.n, plan.kind, plan.window)


def q_window_depth(ahead: int) -> int:
    """Depth of a window head's ``q{h}`` in a stack: ``k{h}``'s L + 1 plus the lookahead
    w'. lin_q and lin_k take the same fork row in the same cycle and emit it together;
    qk_window takes Q row i only with K row i + w' (fill: K rows 0 .. w'-1 alone), so at
    any moment q holds exactly w' rows more than k (rows i .. i + w' - 1 waiting for
    their K rows, plus whatever k holds): with w' + L + 1 slots lin_q is never blocked
    before lin_k is, and the fork (which waits for both) never waits on Q."""
    return full_rate_depth(latency("linear")) + ahead


def layer_fires(n: int, d_model: int, d_ff: int, d_head: int, folding: dict,
                lanes: int = 1, keys: int | None = None) -> dict:
    """Firings per token row of every multi-firing stage of a layer: the linears (from
    ``folding``: op -> (PE, SIMD), missing (1, 1)), ``qk`` (G = ceil(keys / lanes):
    ``lanes`` scores per cycle over ``keys`` slots a row, default N) and the element-wise ``res1``, ``act``, ``res2``, folded to the
    layer's row period B = max(G, linears other than Q/K/V) by
    :func:`rowops.elementwise_fires`."""
    dims = {"attn_q": (d_head, d_model), "attn_k": (d_head, d_model),
            "attn_v": (d_head, d_model), "attn_out": (d_model, d_model),
            "ffn_up": (d_ff, d_model), "ffn_down": (d_model, d_ff)}
    f = {}
    for op, (m, k) in dims.items():
        pe, simd = (folding or {}).get(op, (1, 1))
        f[op] = (m // pe) * (k // simd)
    g = online.groups(keys or n, lanes)
    b = max(g, f["attn_out"], f["ffn_up"], f["ffn_down"])
    f.update(qk=g, res1=elementwise_fires(d_model, b), act=elementwise_fires(d_ff, b),
             res2=elementwise_fires(d_model, b))
    return f


def spec_folding(spec, layer: int = 0) -> dict:
    """op -> (PE, SIMD) for every linear op of the layer, from the spec ((1, 1) unset)."""
    from ..ir.encoder_golden import OPS
    return {op: folding_of(spec, op, layer) for op in OPS}


def layer_inputs(x_ints) -> dict:
    """The simulator's input dict for the layer's single input channel ``x``."""
    return {"x": {"x": x_ints}}


def critical_latency(heads: int, rms: bool = False, pre: bool = False,
                     ring: bool = False, ht=None) -> int:
    """Sum of the output latencies on the layer's critical path (input channel, fork,
    lin_k, qk load -> first score, qk, softmax, normalize, [concat], lin_out, res1, ln1,
    fork_ffn, lin_up, act, lin_down, res2, ln2; a pre-norm layer has the same stages in
    another order plus its fork_attn). ``ring``: the heads are the window templates
    (causal or window layers, ``mappers.window``), else the full head's; ``ht``: their
    ``mappers.folding.HeadTiming``."""
    lin, norm = latency("linear"), latency("rmsnorm" if rms else "layernorm")
    if ring:   # a slower V is the window stacks' skew (mappers.folding)
        qk, sm = ht.qk, ht.softmax
    else:      # V is loaded in step with K: the slower of qk and kv_replay
        qk, sm = max(ht.qk, ht.kv), ht.softmax
    return ((latency("fork") if pre else 0)
            + 1 + latency("fork") + lin + 1 + qk + sm
            + ht.normalize + (latency("concat") if heads > 1 else 0) + lin
            + latency("residual_add") + norm + latency("fork") + lin + latency("activation")
            + lin + latency("residual_add") + norm)


def expected_cycles(hw: HwGraph, p: str = "") -> dict:
    """Analytic total cycles (reset to last output, inclusive) of the layer prefixed ``p``
    of ``hw`` standing alone, mapped with the mapper's depths, no stalls
    (the layer kind's :meth:`FullStackHeads.layer_figures` on the instances' own
    firings per row)."""
    inst = {k[len(p):]: v for k, v in hw.instances.items() if k.startswith(p)}
    n = inst["fork_in"].param("N")
    heads = sum(1 for k in inst if k.startswith("qk"))
    per_row = {k: v.contract.fires // n for k, v in inst.items()}
    f = {"attn_q": max(per_row[f"lin_q{h}"] for h in range(heads)),
         "attn_k": max(per_row[f"lin_k{h}"] for h in range(heads)),
         "attn_v": max(per_row[f"lin_v{h}"] for h in range(heads)),
         "attn_out": per_row["lin_out"], "ffn_up": per_row["lin_up"],
         "ffn_down": per_row["lin_down"],
         "qk": online.groups(row_slots(n, inst["qk0"].param("kind") or "full",
                                  inst["qk0"].param("window")),
                        inst["qk0"].param("lanes") or 1), "res1": per_row["res1"],
         "act": per_row["act"], "res2": per_row["res2"]}
    rms = inst["ln1"].template == "rmsnorm"
    qk = inst["qk0"]
    ht = F.HeadTiming(qk.param("rows") or 1, qk.contract.latency,
                      inst["vstore0"].contract.latency, inst["softmax0"].contract.latency,
                      inst["norm0"].contract.latency)
    total, barrier, b = STACK_HEADS[qk.param("kind") or "full"].layer_figures(
        n, heads, rms, f, "fork_attn" in inst, qk.param("window"), ht)
    slowest = max(inst.values(), key=lambda i: i.contract.fires)
    return {"total": total, "barrier": barrier, "bottleneck_period": b,
            "slowest_node": slowest.name, "slowest_fires": slowest.contract.fires}


def q_deadlock_bound(hw: HwGraph, head: int = 0) -> int:
    """Least depth of ``q{head}`` that does not deadlock. The fork must put all N rows on
    the Q path before ``qk`` takes the first: they sit in ``x_lin_q`` (its depth), inside
    ``lin_q`` (one row taken on its first firing and held until the last one can emit,
    only when folded, F > 1; unfolded it takes and emits in the same firing) and in
    ``q``: N - depth(x_lin_q) - (1 if F > 1 else 0), at least 1. A window head (kind
    window) needs w' + 1 rows there instead of N (Q row 0 waits for K row w'), a causal
    one 1 (``hw``: one layer, unprefixed names)."""
    n = hw.instances["fork_in"].param("N")
    qk = hw.instances[f"qk{head}"]
    if qk.template == "qk_window":   # causal: no row ahead; window: w' rows ahead
        n = 1 + (lookahead(qk.param("window"), n) if qk.param("kind") == "window" else 0)
    held = 1 if LinearParams.of(hw.instances[f"lin_q{head}"]).fold > 1 else 0
    return max(1, n - hw.channels[f"x_lin_q{head}"].depth - held)

"""Fast timing engine: the times and statistics of ``sim.engine.run_timing``, computed a
whole process at a time with numpy.

The engine's times are the least solution of monotone max-plus recurrences. A template
firing ``f`` happens at

    t_f = max(t_{f-1} + ii, push_c[k] + lat_c  (each input c it uses, k its next token),
                            pop_c[k - depth_c] + 1  (each output c it uses, k >= depth_c))

with ``t_{-1} = -ii``; a source's token k at ``max(t_{k-1} + 1 + gap_k, pop[k - depth] + 1)``
(``t_{-1} = -1``); a sink's pop at ``first_ready(max(push[k] + lat, t_{k-1} + 1))``. The
reference evaluates these token by token in causal order; every value it computes is the
right-hand side of its equation at values computed before, so by induction it is below
every solution: the reference's result is *the least* solution (fixed point).

Here every unknown time starts at -infinity (no constraint), below the least fixed point.
Updating one process means: fold the current estimates of its neighbours' channels into a
per-firing lower bound, then solve its own recurrence exactly in closed form,
``t = R + running_max(max(bound - R, 0))`` (``R`` = ``ii * f`` for a template, the no-wait
schedule ``k + cumsum(gap)`` for a source). Each update is monotone, so estimates only rise
and never pass the least fixed point; processes are revisited while a neighbouring channel
changed (only from the first changed token on). When nothing changes, the estimates are a
fixed point at or below the least one: they are exactly the reference's times.

A deadlock is a least fixed point with unbounded times: the estimates of the stuck events
rise forever. It is detected exactly with the untimed reachability of the Kahn network:
for per-process firing counts ``n`` (taken as the firings that have stopped changing), if
every process's firing ``n_P`` is disabled by tokens outside ``n`` (and some ``n_P`` is
short of the end), then no execution fires past ``n``: a deadlock. Past ``max_rounds``
rounds (updates / number of processes) without convergence it also gives up.
``run_timing_fast`` then returns None and the caller runs the reference engine, which
reports the deadlock.

The waits are then computed from the final times with the reference's booking rules:
a firing's input wait (from ``t_{f-1} + ii`` to the latest visible input) goes to the first
input, in contract port order, attaining that latest time; its output wait (from there to
the firing) to the first output attaining the firing time.
"""
from __future__ import annotations

import heapq

import numpy as np

from ..mappers.hwgraph import HwGraph
from .engine import Chan, SinkProc, SourceProc, TemplateProc, Timing
from .schedule import Schedule

__all__ = ["run_timing_fast"]

#: the estimate of a time nothing is known about yet (far below any constraint)
_UNKNOWN = -(1 << 52)


class _Map:
    """The firing index of each of a port's tokens (increasing): an arithmetic progression
    (numpy basic slicing, so views) or an index array."""
    __slots__ = ("n", "start", "step", "idx")

    def __init__(self, idx: np.ndarray):
        self.n = n = len(idx)
        self.idx = None
        self.start, self.step = (int(idx[0]) if n else 0), 1
        if n >= 2:
            d = np.diff(idx)
            if d[0] >= 1 and np.all(d == d[0]):
                self.step = int(d[0])
            else:
                self.idx = np.ascontiguousarray(idx, dtype=np.int64)

    def at(self, k: int) -> int:
        """Firing of token k (0 <= k < n)."""
        if self.idx is None:
            return self.start + self.step * k
        return int(self.idx[k])

    def count_before(self, f: int) -> int:
        """Tokens moved by the firings before f."""
        if self.idx is None:
            if f <= self.start:
                return 0
            return min(self.n, (f - self.start + self.step - 1) // self.step)
        return int(np.searchsorted(self.idx, f, "left"))

    def take(self, arr: np.ndarray, k0: int = 0) -> np.ndarray:
        """``arr`` at the firings of tokens k0.. (a view when the map is a progression)."""
        if self.idx is None:
            if k0 >= self.n:
                return arr[0:0]
            return arr[self.start + self.step * k0:
                       self.start + self.step * (self.n - 1) + 1:self.step]
        return arr[self.idx[k0:]]

    def max_into(self, arr: np.ndarray, k0: int, vals: np.ndarray):
        """arr[firing of token k0 + i] = max(itself, vals[i])."""
        if self.idx is None:
            view = self.take(arr, k0)
            np.maximum(view, vals, out=view)
        else:
            sel = self.idx[k0:k0 + len(vals)]
            arr[sel] = np.maximum(arr[sel], vals)


class _Ch:
    """A channel's estimated push/pop times (views of the producer's/consumer's firing
    times where the port map allows) and the first token changed since the other end
    last looked (``push_dirty`` for the consumer, ``pop_dirty`` for the producer)."""
    __slots__ = ("name", "depth", "lat", "n", "push", "pop", "push_view", "pop_view",
                 "push_dirty", "pop_dirty", "src", "dst")

    def __init__(self, name, depth, lat, n):
        self.name, self.depth, self.lat, self.n = name, depth, lat, n
        self.push = self.pop = None
        self.push_view = self.pop_view = False
        self.push_dirty = self.pop_dirty = 0
        self.src = self.dst = None      # (_Node, _End)


class _End:
    """One port of a node: its channel, token -> firing map and the offsets that turn a
    neighbour's time into this node's normalised bound (``bound - R`` at that firing)."""
    __slots__ = ("ch", "map", "off")

    def __init__(self, ch: _Ch, pmap: _Map):
        self.ch, self.map, self.off = ch, pmap, None


class _Node:
    F = 0
    T: np.ndarray
    ins: list
    outs: list

    def ends(self):
        return self.ins + self.outs


class _Chain(_Node):
    """A process whose firing f happens at max(t_{f-1} + R_f - R_{f-1}, bounds_f), with
    t_{-1} = R_{-1} = R_0 - (R_1 - R_0) (templates: R = ii*f; sources: R = k + cumsum(gap);
    always-ready sinks: R = k). Closed form: t = R + running_max(W), W = max(bounds - R, 0)."""

    def __init__(self, name, ramp: np.ndarray, ins: list[_End], outs: list[_End]):
        self.name = name
        self.R = ramp
        self.F = len(ramp)
        self.T = np.full(self.F, _UNKNOWN, dtype=np.int64)
        self.W = np.zeros(self.F, dtype=np.int64)
        self.ins, self.outs = ins, outs
        self.fresh = True
        for e in ins:
            e.off = e.map.take(ramp) - e.ch.lat
        for e in outs:
            d = e.ch.depth
            e.off = (e.map.take(ramp, d) - 1) if e.ch.n > d else np.zeros(0, np.int64)

    def update(self) -> int:
        """Fold the channel changes into the bounds and re-solve; returns the first firing
        whose time changed (``F`` if none)."""
        W = self.W
        F = self.F
        f0 = 0 if self.fresh else F
        self.fresh = False
        for e in self.ins:
            c = e.ch
            k0 = c.push_dirty
            if k0 >= c.n:
                continue
            c.push_dirty = c.n
            e.map.max_into(W, k0, c.push[k0:] - e.off[k0:])
            f = e.map.at(k0)
            if f < f0:
                f0 = f
        for e in self.outs:
            c = e.ch
            j0 = c.pop_dirty
            if j0 >= c.n:
                continue
            c.pop_dirty = c.n
            m = c.n - c.depth
            if j0 >= m:
                continue
            e.map.max_into(W, j0 + c.depth, c.pop[j0:m] - e.off[j0:])
            f = e.map.at(j0 + c.depth)
            if f < f0:
                f0 = f
        if f0 >= F:
            return F
        a = np.maximum.accumulate(W[f0:])
        if f0 > 0:
            carry = self.T[f0 - 1] - self.R[f0 - 1]
            if carry > a[0]:
                np.maximum(a, carry, out=a)
        a += self.R[f0:]
        diff = a != self.T[f0:]
        i = int(diff.argmax())
        if not diff[i]:
            return F
        self.T[f0 + i:] = a[i:]
        return f0 + i


class _ReadySink(_Node):
    """An output stream with a ready pattern: t_k = first_ready(max(push_k + lat,
    t_{k-1} + 1)), evaluated token by token (one token per output row: few)."""

    def __init__(self, name, end: _End, ready):
        self.name = name
        self.F = end.ch.n
        self.T = np.full(self.F, _UNKNOWN, dtype=np.int64)
        self.ins, self.outs = [end], []
        self.ready = ready
        self.fresh = True

    def update(self) -> int:
        c = self.ins[0].ch
        k0 = 0 if self.fresh else c.push_dirty
        self.fresh = False
        c.push_dirty = c.n
        if k0 >= c.n:
            return self.F
        T = self.T
        last = int(T[k0 - 1]) if k0 else -1
        first_ready = self.ready.first_ready
        out = []
        for v in (c.push[k0:] + c.lat).tolist():
            if v <= last:
                v = last + 1
            last = first_ready(v)
            out.append(last)
        a = np.array(out, dtype=np.int64)
        diff = a != T[k0:]
        i = int(diff.argmax())
        if not diff[i]:
            return self.F
        T[k0 + i:] = a[i:]
        return k0 + i


def _port_map(contract, port: str) -> _Map:
    parts, base = [], 0
    for ph in contract.phases:
        js = [j for j in range(ph.inner) if ph.uses(port, j)]
        if js:
            rows = ph.fires // ph.inner
            if len(js) == ph.inner:
                parts.append(np.arange(base, base + ph.fires, dtype=np.int64))
            else:
                grid = np.arange(rows, dtype=np.int64)[:, None] * ph.inner + \
                    np.asarray(js, dtype=np.int64)[None, :]
                parts.append(grid.ravel() + base)
        base += ph.fires
    idx = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return _Map(idx)


def _topo(hw: HwGraph) -> list[str]:
    """Instances, producers before consumers where the data flow allows (any order is
    correct; this one converges fastest)."""
    preds = {n: set() for n in hw.instances}
    for c in hw.channels.values():
        if c.src and c.dst:
            preds[c.dst[0]].add(c.src[0])
    order, done = [], set()
    pending = list(hw.instances)
    while pending:
        for name in pending:
            if preds[name] <= done:
                break
        else:
            name = pending[0]
        order.append(name)
        done.add(name)
        pending.remove(name)
    return order


def _stuck(nodes: list[_Node], n: dict) -> bool:
    """True if the firing counts ``n`` (node -> firings) are a deadlock certificate: some
    process short of its end and every process's next firing ``n_P`` needs a token that
    the counts do not produce (input) or a slot they do not free (output)."""
    if all(n[id(p)] >= p.F for p in nodes):
        return False
    for p in nodes:
        h = p.F
        for e in p.ins:
            c = e.ch
            src, src_end = c.src
            avail = src_end.map.count_before(n[id(src)])
            if avail < c.n:
                h = min(h, e.map.at(avail))
        for e in p.outs:
            c = e.ch
            dst, dst_end = c.dst
            k = dst_end.map.count_before(n[id(dst)]) + c.depth
            if k < c.n:
                h = min(h, e.map.at(k))
        if h > n[id(p)]:
            return False
    return True


def _solve(nodes: list[_Node], max_rounds: int) -> bool:
    """Iterate to the least fixed point. False on a deadlock or past ``max_rounds``."""
    pos = {id(p): i for i, p in enumerate(nodes)}
    heap = list(range(len(nodes)))
    queued = [True] * len(nodes)
    period = len(nodes)
    budget = max_rounds * period
    recent = {id(p): p.F for p in nodes}
    previous = dict(recent)
    updates = 0
    while heap:
        i = heapq.heappop(heap)
        queued[i] = False
        p = nodes[i]
        fc = p.update()
        updates += 1
        if fc < p.F:
            if fc < recent[id(p)]:
                recent[id(p)] = fc
            for e in p.outs:
                c = e.ch
                k = e.map.count_before(fc)
                if k >= c.n:
                    continue
                if not c.push_view:
                    c.push[k:] = e.map.take(p.T, k)
                if k < c.push_dirty:
                    c.push_dirty = k
                j = pos[id(c.dst[0])]
                if not queued[j]:
                    queued[j] = True
                    heapq.heappush(heap, j)
            for e in p.ins:
                c = e.ch
                k = e.map.count_before(fc)
                if k >= c.n:
                    continue
                if not c.pop_view:
                    c.pop[k:] = e.map.take(p.T, k)
                if k < c.pop_dirty:
                    c.pop_dirty = k
                if k + c.depth < c.n:
                    j = pos[id(c.src[0])]
                    if not queued[j]:
                        queued[j] = True
                        heapq.heappush(heap, j)
        if updates % period == 0 and heap:
            # the firings that kept still over the last two periods as a candidate
            cand = {k: min(v, previous[k]) for k, v in recent.items()}
            if updates >= 2 * period and (_stuck(nodes, cand) or _stuck(nodes, recent)):
                return False
            previous, recent = recent, {id(p): p.F for p in nodes}
            if updates >= budget:
                return False
    return True



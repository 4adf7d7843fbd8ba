"""Fast timing engine: the times and statistics of ``sim.engine.run_timing``, computed a
whole process at a time with numpy.

The engine's times are the least solution of monotone max-plus recurrences. A template's
firing f happens at

    t_f = max(t_{f-1} + ii,  push_c[k] + lat_c       for each input c it uses (k: its next token),
                             pop_c[k - depth_c] + 1  for each output c it uses, k >= depth_c)

with t_{-1} = -ii; a source's token k moves at max(t_{k-1} + 1 + gap_k, pop[k - depth] + 1)
(t_{-1} = -1); a sink pops token k at first_ready(max(push[k] + lat, t_{k-1} + 1)). The
reference evaluates these token by token in causal order; each value it computes is the
right-hand side of its equation at values computed before, so by induction on that order
it is below every solution: the reference's result is *the least* fixed point.

Here every time starts unknown (-infinity: no constraint), below the least fixed point.
Updating a process folds the current estimates of its channels into a per-firing lower
bound and solves the process's own recurrence exactly, in closed form:
``t = R + running_max(max(bound - R, 0))`` (``R = ii * f`` for a template, the no-wait
schedule ``k + cumsum(gap)`` for a source, ``k`` for an always-ready sink). An update is
monotone and gives values below the least fixed point when its inputs are, so estimates
only rise and never pass it. A process is revisited when one of its channels changed,
from the first changed token on, and the earliest pending work goes first. When nothing
is pending, the estimates are a fixed point at or below the least: the reference's times.

A template whose ports are used at few of its firings (at most half: a linear reads a row
once and writes it once over a fold of hundreds of firings) is solved at those firings
and its first and last only (``_events``): a firing between them uses no port, so it
follows the one before by ``ii`` and bounds nothing; the recurrence over the kept firings
with the ramp ``ii * firing`` has the same times at them (``kept_firings`` counts them;
``attnflow.limits`` estimates the engine's memory from it). The bounds are int32 (they
lie between 0 and the final times) and are dropped once the times are solved.

Two accelerations keep the number of updates small where a critical path crosses back
and forth between processes (one update per crossing otherwise):

* a round trip over one channel, ``t(k) >= t(k - depth) + lat + 1`` at either end, is
  implied by the equations (the least fixed point is unchanged) and solved inside the
  update where it binds (``_lag_closure``): a FIFO too shallow for full rate settles at
  once instead of once per token;
* an update solves a window of firings; when a later update finds times moved inside the
  last window (its tail was solved on estimates about to change), the window narrows
  towards twice what stood, and widens again while windows stand: a path crossing at every
  row (a FIFO just short of a row-long wait) costs a few rows per crossing, not the rest
  of the run.

When the times do not settle, ``run_timing_fast`` returns None (run ``run_timing``: same
answer, and it describes a deadlock):

* a deadlock is a least fixed point with unbounded times: the stuck estimates rise
  forever. It is recognised exactly on the untimed Kahn network: if for firing counts n
  (taken as the firings whose estimates stopped moving) every process's firing n_P needs a
  token the counts do not push or a slot they do not free, and some n_P is short of the
  end, then no execution fires past n (induction over any execution);
* otherwise past a work budget (about 0.6 of the reference engine's estimated cost, so a
  fallback costs at most ~1.6 times the reference alone), or ``max_rounds`` rounds.

Every equation is checked at the final times (while computing the statistics). A finite
solution is unique (evaluate the equations in the reference's order) and does not exist
when the reference deadlocks, so a returned result is the reference's whatever the
iteration did; a failed check (a bug) gives a RuntimeWarning and None.

Waits are computed at the end from the final times with the reference's booking rules:
a firing's input wait (``t_{f-1} + ii`` up to its latest visible input) goes to the first
input in contract port order attaining that latest time; its output wait (from there up
to the firing) to the first output, in port order, attaining the firing time.
"""
from __future__ import annotations

import heapq
import warnings

import numpy as np

from ..mappers.hwgraph import HwGraph
from .engine import Chan, Proc, SinkProc, SourceProc, TemplateProc, Times, Timing
from .schedule import Schedule

__all__ = ["kept_firings", "run_timing_fast"]

#: the estimate of a time nothing is known about yet (far below any constraint)
_UNKNOWN = -(1 << 52)
#: work units (~ firings solved, ~5-10 ns each) one process update costs beyond its arrays
_UPDATE_COST = 1000
#: default budget, in work units per firing of the design: the reference engine costs
#: about 100 (0.75 us per firing), so giving up at 60 bounds a fallback at about 1.6
#: times the reference's own time
_WORK_PER_FIRING = 60
#: ... plus this many rounds of update overheads (small designs)
_MIN_ROUNDS = 50
#: the narrowest window (firings) an update solves
_MIN_WINDOW = 1024
#: the first window (firings; None: the whole process)
_FIRST_WINDOW = None


class _Progression:
    """``start + step * i`` for i in 0 .. n-1, computed when read (an int, or an int64
    array for a slice or an index array): a template's ramp R = ii * f and its ports'
    offsets, which as arrays of a firing each were most of the engine's memory."""
    __slots__ = ("start", "step", "n")

    def __init__(self, start: int, step: int, n: int):
        self.start, self.step, self.n = int(start), int(step), int(n)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, k):
        if isinstance(k, slice):
            a, b, c = k.indices(self.n)
            return self.start + self.step * np.arange(a, b, c, dtype=np.int64)
        if isinstance(k, np.ndarray):
            return self.start + self.step * k.astype(np.int64)
        k = int(k)
        return self.start + self.step * (k + self.n if k < 0 else k)


def _offsets(m, ramp, k0: int, delta: int):
    """``ramp`` at the firings of tokens k0.. of map ``m``, plus ``delta``: a progression
    when both are, else an array."""
    if isinstance(ramp, _Progression) and m.idx is None:
        return _Progression(ramp.start + ramp.step * (m.start + m.step * k0) + delta,
                            ramp.step * m.step, max(0, m.n - k0))
    return m.take(ramp, k0) + delta


class _Map:
    """The firing index of each of a port's tokens (increasing): an arithmetic progression
    (used through numpy basic slicing, so views) or an index array."""
    __slots__ = ("n", "start", "step", "idx")

    def __init__(self, n: int, start: int = 0, step: int = 1, idx: np.ndarray | None = None):
        self.n, self.start, self.step, self.idx = n, start, step, idx

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

    def take(self, arr: np.ndarray, k0: int = 0, shift: int = 0,
             k1: int | None = None) -> np.ndarray:
        """``arr[firing - shift]`` for the tokens k0..k1 (a view for a progression)."""
        k1 = self.n if k1 is None else k1
        if self.idx is None:
            if k0 >= k1:
                return arr[0:0]
            return arr[self.start + self.step * k0 - shift:
                       self.start + self.step * (k1 - 1) + 1 - shift:self.step]
        return arr[self.idx[k0:k1] - shift] if shift else arr[self.idx[k0:k1]]

    def max_into(self, arr: np.ndarray, k0: int, vals: np.ndarray, shift: int = 0):
        """``arr[firing of token k0 + i - shift] = max(itself, vals[i])``."""
        if self.idx is None:
            view = self.take(arr, k0, shift, k0 + len(vals))
            np.maximum(view, vals, out=view)
        else:
            sel = self.idx[k0:k0 + len(vals)] - shift
            arr[sel] = np.maximum(arr[sel], vals)

    def take_list(self, values: list) -> list:
        """The Python list ``values`` at the firings of all tokens."""
        if self.idx is None:
            if self.n == 0:
                return []
            return values[self.start:self.start + self.step * (self.n - 1) + 1:self.step]
        return [values[i] for i in self.idx.tolist()]


def _port_map(contract, port: str) -> _Map:
    """Token -> firing map of one port, from the contract's phases."""
    runs = []           # (start, step, count) per phase, or an index array
    base = 0
    for ph in contract.run_phases:
        period, reps = ph.period, ph.fires // ph.period
        js = np.flatnonzero(ph.pattern(port))
        if len(js) == period:
            runs.append((base, 1, ph.fires))
        elif len(js) == 1:
            runs.append((base + int(js[0]), period, reps))
        elif len(js):
            grid = np.arange(reps, dtype=np.int64)[:, None] * period + js[None, :] + base
            runs.append(grid.ravel())
        base += ph.fires
    # one progression when the runs line up, else an index array
    start, step, n = 0, None, 0
    for r in runs:
        if not isinstance(r, tuple):
            break
        s, st, cnt = r
        if cnt == 0:
            continue
        if n == 0:
            start, step, n = s, (st if cnt > 1 else None), cnt
            continue
        nxt = step if step is not None else s - start
        if nxt < 1 or s != start + nxt * n or (cnt > 1 and st != nxt):
            break
        step, n = nxt, n + cnt
    else:
        return _Map(n, start, step or 1)
    idx = np.concatenate([np.arange(r[0], r[0] + r[1] * r[2], r[1], dtype=np.int64)
                          if isinstance(r, tuple) else r for r in runs])
    return _Map(len(idx), int(idx[0]), 1, idx)


def _used(contract) -> list[np.ndarray]:
    """Per phase: whether each firing of its period uses a port."""
    out = []
    for ph in contract.run_phases:
        pat = np.zeros(ph.period, bool)
        for port in contract.inputs + contract.outputs:
            pat |= ph.pattern(port)
        out.append(pat)
    return out


def kept_firings(contract) -> int:
    """How many of a template's firings the engine keeps a time (and a bound) for: its
    firings, or with :func:`_events` the port-using ones and the first and last
    (``attnflow.limits`` estimates the engine's memory from it)."""
    F = contract.fires
    if F < 4:
        return F
    used = _used(contract)
    n = sum(int(u.sum()) * (ph.fires // ph.period)
            for u, ph in zip(used, contract.run_phases))
    n += (not used[0][0]) + (not used[-1][-1])
    return n if 2 * n <= F else F


def _events(contract) -> np.ndarray | None:
    """The firings of a template that use a port, with its first and last (increasing),
    or None when they are more than half its firings. Between two of them a firing only
    follows the one before by ``ii`` (no port, no bound): the recurrence over these
    firings alone, with the ramp ``ii * firing``, gives the same times at them, and the
    others' times are the ramp from the one before. A linear that reads a row once and
    writes it once over a fold of hundreds of firings keeps two times a row, not all."""
    if kept_firings(contract) == contract.fires:
        return None
    used = np.concatenate([np.tile(u, ph.fires // ph.period)
                           for u, ph in zip(_used(contract), contract.run_phases)])
    used[0] = used[-1] = True
    return np.flatnonzero(used)


def _event_map(m: _Map, events: np.ndarray) -> _Map:
    """Map ``m`` (token -> firing) as token -> index in ``events`` (every firing of ``m``
    is one of them): a progression when the indices are one."""
    if m.n == 0:
        return _Map(0)
    firings = m.idx if m.idx is not None else \
        m.start + m.step * np.arange(m.n, dtype=np.int64)
    idx = np.searchsorted(events, firings)
    steps = np.diff(idx)
    if m.n == 1 or (steps[0] >= 1 and np.all(steps == steps[0])):
        return _Map(m.n, int(idx[0]), int(steps[0]) if m.n > 1 else 1)
    return _Map(m.n, int(idx[0]), 1, idx)


class _Ch:
    """A channel's estimated push and pop times (views of the producer's / consumer's
    firing times where the port's map allows) and, per end, the first token changed since
    the other end last read it (``push_dirty`` for the consumer, ``pop_dirty`` for the
    producer)."""
    __slots__ = ("name", "depth", "lat", "n", "push", "pop", "push_view", "pop_view",
                 "push_dirty", "pop_dirty", "src", "dst")

    def __init__(self, name, depth, lat, n):
        self.name, self.depth, self.lat, self.n = name, depth, lat, n
        self.push = self.pop = None
        self.push_view = self.pop_view = False
        self.push_dirty = self.pop_dirty = 0
        self.src = self.dst = None      # (node, end)


class _End:
    """One port of a node: its channel, its token -> firing map and the offsets turning the
    other end's times into this node's normalised bounds (bound - R at the firing)."""
    __slots__ = ("ch", "map", "off")

    def __init__(self, ch: _Ch, pmap: _Map):
        self.ch, self.map, self.off = ch, pmap, None


class _Node:
    name: str
    F: int
    T: np.ndarray
    ins: list
    outs: list
    work = 0


class _Chain(_Node):
    """A process whose firing f happens at max(t_{f-1} + R_f - R_{f-1}, bounds_f), the
    first at R_0 at the earliest (templates: R = ii*f; sources: R = k + cumsum(gap);
    always-ready sinks: R = k): t = R + running_max(W), W = max(bounds - R, 0). ``ii`` is
    the constant step of R, or None."""

    def __init__(self, name, ramp: np.ndarray, ii: int | None, ins: list, outs: list):
        self.name = name
        self.R = ramp
        self.F = len(ramp)
        self.fires = self.F         # the process's firings (F: those with a time here)
        self.T = np.full(self.F, _UNKNOWN, dtype=np.int64)
        # the bounds max(bound - R, 0): between 0 and the final times, int32 (a run past
        # 2**31 cycles would wrap them, break the final check and fall back)
        self.W = np.zeros(self.F, dtype=np.int32)
        self.ins, self.outs = ins, outs
        self.upto = 0                   # the firings from here on are not solved yet
        self.L = max(1, self.F if _FIRST_WINDOW is None else _FIRST_WINDOW)   # window
        self.wf0 = self.wf1 = 0         # the last window
        for e in ins:
            e.off = _offsets(e.map, ramp, 0, -e.ch.lat)
        for e in outs:
            d = e.ch.depth
            e.off = _offsets(e.map, ramp, d, -1) if e.ch.n > d else np.zeros(0, np.int64)
        # A round trip over a channel: the producer's firing for token k follows the pop
        # of token k - depth by 1, that pop follows the push of k - depth by lat at least,
        # so t(k) >= t(k - depth) + lat + 1 at the producer; the consumer's pop of k
        # likewise follows its pop of k - depth by lat + 1 at least. Kept where binding
        # (and where R gains the same over every depth tokens, for the closed form).
        self.throttles = []
        for e in ins + outs:
            c, m = e.ch, e.map
            d = c.depth
            if c.n <= d:
                continue
            if ii is not None and m.idx is None:
                gain = ii * m.step * d
            else:
                r = m.take(ramp)
                g = r[d:] - r[:-d]
                if not np.all(g == g[0]):
                    continue
                gain = int(g[0])
            if c.lat + 1 > gain:
                self.throttles.append((e, d, c.lat + 1 - gain))

    def pending(self) -> int:
        """The first firing whose time may be below this process's own equations at the
        current channel estimates (``F``: none)."""
        f = self.upto
        for e in self.ins:
            c = e.ch
            if c.push_dirty < c.n:
                f = min(f, e.map.at(c.push_dirty))
        for e in self.outs:
            c = e.ch
            k = c.pop_dirty + c.depth
            if k < c.n:
                f = min(f, e.map.at(k))
        return f

    def update(self) -> tuple[int, int]:
        """Re-solve the firings from ``pending()`` on, a window of ``L`` firings at most:
        fold the unseen channel times of the window into the bounds, solve. Returns (first
        firing whose time changed, end of the window); the times change in between only."""
        F = self.F
        f0 = self.pending()
        if f0 >= F:
            return F, F
        f1 = min(F, f0 + self.L)
        W = self.W
        work = _UPDATE_COST + (f1 - f0)
        for e in self.ins:
            c = e.ch
            k0 = c.push_dirty
            if k0 >= c.n:
                continue
            k1 = e.map.count_before(f1)
            if k1 > k0:
                e.map.max_into(W, k0, c.push[k0:k1] - e.off[k0:k1])
                work += k1 - k0
                c.push_dirty = k1 if k1 < c.n else c.n
        for e in self.outs:
            c = e.ch
            j0 = c.pop_dirty
            m = c.n - c.depth
            if j0 >= m:
                c.pop_dirty = c.n
                continue
            j1 = min(m, e.map.count_before(f1) - c.depth)
            if j1 > j0:
                e.map.max_into(W, j0 + c.depth, c.pop[j0:j1] - e.off[j0:j1])
                work += j1 - j0
                c.pop_dirty = j1 if j1 < m else c.n
        self.work += work
        a = np.maximum.accumulate(W[f0:f1], dtype=np.int64)
        if f0 > 0:
            carry = self.T[f0 - 1] - self.R[f0 - 1]
            if carry > a[0]:
                np.maximum(a, carry, out=a)
        if self.throttles:
            self._throttle(a, f0, f1)
        a += self.R[f0:f1]
        old = self.T[f0:f1]
        moved_end = a[-1] != old[-1]
        diff = a != old
        i = int(diff.argmax())
        fc = F
        if diff[i]:
            fc = f0 + i
            old[i:] = a[i:]
        # window width: a change inside the last window means its tail was solved on
        # estimates that moved since (a critical path crossing to another process and
        # back): narrow towards twice what stood; otherwise widen
        if fc < self.wf1:
            self.L = max(_MIN_WINDOW, 2 * (fc - self.wf0), self.L // 4)
        else:
            self.L = min(F, 2 * self.L)
        # the firings after the window are up to date unless the carry into them moved
        if f1 >= F:
            self.upto = F
        elif moved_end or self.upto < f1:
            self.upto = f1
        self.wf0, self.wf1 = f0, f1
        return fc, f1

    def _throttle(self, a: np.ndarray, f0: int, f1: int) -> None:
        """Raise ``a`` (normalised times of the firings f0..f1) to the least values that
        also meet the round trips (the times before f0 are fixed and meet them)."""
        T, R = self.T, self.R
        again = True
        while again:
            again = False
            for e, d, delta in self.throttles:
                m = e.map
                k1 = m.count_before(f0)
                k2 = m.count_before(f1)
                if k1 >= k2:
                    continue
                base = max(0, k1 - d)
                head = [int(T[m.at(i)] - R[m.at(i)]) for i in range(base, k1)]
                tail = m.take(a, k1, f0, k2)
                c = np.concatenate([np.asarray(head, dtype=np.int64), tail]) if head else tail
                b = _lag_closure(c, d, delta)[k1 - base:]
                self.work += 2 * len(b)
                if np.any(b != tail):
                    m.max_into(a, k1, b, f0)
                    np.maximum.accumulate(a, out=a)
                    again = len(self.throttles) > 1


def _lag_closure(c: np.ndarray, d: int, delta: int) -> np.ndarray:
    """The least b >= c with b_k >= b_{k-1} and b_k >= b_{k-d} + delta, for c nondecreasing:
    b_k = max over j <= k of c_j + delta * floor((k - j) / d)."""
    n = len(c)
    if d == 1:
        ramp = np.arange(n, dtype=np.int64) * delta
        b = c - ramp
        np.maximum.accumulate(b, out=b)
        b += ramp
        return b
    rows = -(-n // d)
    v = np.full(rows * d, _UNKNOWN, dtype=np.int64)
    v[:n] = c
    v = v.reshape(rows, d)
    lift = (np.arange(rows, dtype=np.int64) * delta)[:, None]
    v -= lift                       # v[a, r] = c[a*d + r] - delta * a, nondecreasing in r
    # what a whole row brings to column r: its entries up to r as they are, the ones after
    # r one jump (delta) short; then the best of all earlier rows
    g = np.maximum(v, v[:, -1:] - delta)
    np.maximum.accumulate(g, axis=0, out=g)
    b = v.copy()
    np.maximum(b[1:], g[:-1], out=b[1:])
    b += lift
    return b.ravel()[:n]


class _ReadySink(_Node):
    """An output stream with a ready pattern: t_k = first_ready(max(push_k + lat,
    t_{k-1} + 1)), token by token (one token per output row: few)."""

    def __init__(self, name, end: _End, ready):
        self.name = name
        self.F = end.ch.n
        self.T = np.full(self.F, _UNKNOWN, dtype=np.int64)
        self.ins, self.outs = [end], []
        self.ready = ready
        self.upto = 0

    def pending(self) -> int:
        return min(self.upto, self.ins[0].ch.push_dirty)

    def update(self) -> tuple[int, int]:
        c = self.ins[0].ch
        k0 = self.pending()
        c.push_dirty = c.n
        self.upto = self.F
        if k0 >= c.n:
            return self.F, self.F
        self.work += _UPDATE_COST + 50 * (c.n - k0)
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
            return self.F, self.F
        T[k0 + i:] = a[i:]
        return k0 + i, self.F


def _topo(hw: HwGraph) -> list[str]:
    """Instances, producers before consumers (any order gives the same result; this one
    settles fastest)."""
    preds = {n: set() for n in hw.instances}
    for c in hw.channels.values():
        if c.src and c.dst:
            preds[c.dst[0]].add(c.src[0])
    order, done = [], set()
    pending = list(hw.instances)
    while pending:
        name = next((n for n in pending if preds[n] <= done), pending[0])
        order.append(name)
        done.add(name)
        pending.remove(name)
    return order


def _stuck(nodes: list[_Node], n: list[int]) -> bool:
    """True if the firing counts ``n`` (per node) prove a deadlock: some process is short
    of its end and every process's firing n_P needs a token that the counts do not push
    (input) or a slot they do not free (output). Then, by induction on any execution, no
    process ever fires past n (the least fixed point of the reachable counts is below n)."""
    if all(k >= p.F for k, p in zip(n, nodes)):
        return False
    for i, p in enumerate(nodes):
        h = p.F
        for e in p.ins:
            c = e.ch
            src, src_end = c.src
            avail = src_end.map.count_before(n[src.index])
            if avail < c.n:
                h = min(h, e.map.at(avail))
        for e in p.outs:
            c = e.ch
            dst, dst_end = c.dst
            k = dst_end.map.count_before(n[dst.index]) + c.depth
            if k < c.n:
                h = min(h, e.map.at(k))
        if h > n[i]:
            return False
    return True


def _solve(nodes: list[_Node], max_rounds: int | None) -> bool:
    """Iterate to the least fixed point. The pending work of the process whose first stale
    firing is earliest (by its current estimate; upstream first on ties) goes first: close
    to causal order, so a window is rarely solved on estimates about to move. False on a
    deadlock or when the budget runs out."""
    for i, p in enumerate(nodes):
        p.index, p.version = i, 0
    heap = []

    def schedule(p):
        f = p.pending()
        if f < p.F:
            p.version += 1
            heapq.heappush(heap, (int(p.T[f]), p.index, p.version))

    for p in nodes:
        schedule(p)
    period = len(nodes)
    if max_rounds is None:
        budget = _WORK_PER_FIRING * sum(getattr(p, "fires", p.F) for p in nodes) + \
            _MIN_ROUNDS * period * _UPDATE_COST
        max_updates = None
    else:
        budget, max_updates = None, max_rounds * period
    recent = [p.F for p in nodes]      # first firing changed, this period and the last
    previous = list(recent)
    updates = 0
    while heap:
        _, i, version = heapq.heappop(heap)
        p = nodes[i]
        if version != p.version:
            continue
        fc, f1 = p.update()
        updates += 1
        if fc < p.F:
            if fc < recent[i]:
                recent[i] = fc
            for e in p.outs:
                c = e.ch
                m = e.map
                k, k1 = m.count_before(fc), m.count_before(f1)
                if k >= k1:
                    continue
                if not c.push_view:
                    c.push[k:k1] = m.take(p.T, k, 0, k1)
                if k < c.push_dirty:
                    c.push_dirty = k
                schedule(c.dst[0])
            for e in p.ins:
                c = e.ch
                m = e.map
                k, k1 = m.count_before(fc), m.count_before(f1)
                if k >= k1:
                    continue
                if not c.pop_view:
                    c.pop[k:k1] = m.take(p.T, k, 0, k1)
                if k < c.pop_dirty:
                    c.pop_dirty = k
                if k + c.depth < c.n:
                    schedule(c.src[0])
        schedule(p)
        if updates % period == 0 and heap:
            if updates >= 2 * period:
                # candidates: the firings that kept still over the last one or two periods
                if _stuck(nodes, [min(a, b) for a, b in zip(recent, previous)]) or \
                        _stuck(nodes, recent):
                    return False
            previous, recent = recent, [p.F for p in nodes]
            if max_updates is not None and updates >= max_updates:
                return False
            if budget is not None and sum(p.work for p in nodes) > budget:
                return False
    return True


def _book(vis: list, top: np.ndarray, gap: np.ndarray, total: int, waits: dict) -> None:
    """Book each firing's wait (``gap`` > 0, ``total`` in all) to the first port, in
    ``vis`` order, whose visible time attains ``top`` at that firing (the reference's
    ``if v > t: t, late = v, c`` scan). ``vis``: (end, first token, visible times)."""
    if total == 0:
        return
    open_ = gap > 0 if len(vis) > 1 else None
    for n, (e, k0, v) in enumerate(vis):
        if n == len(vis) - 1:
            # every open firing is attained by some port: the rest is the last one's
            waits[e.ch.name] += total
            return
        sel = e.map.take(open_, k0) & (v == e.map.take(top, k0))
        if not sel.any():
            continue
        w = int(e.map.take(gap, k0)[sel].sum())
        waits[e.ch.name] += w
        total -= w
        if total == 0:
            return
        if e.map.idx is None:
            e.map.take(open_, k0)[sel] = False     # a view: closes those firings
        else:
            open_[e.map.idx[k0:][sel]] = False


class _NotFixed(Exception):
    """The final times break an equation: a bug here (never a wrong answer)."""


def _template_stats(p: _Chain, ii: int, empty: dict, full: dict) -> tuple[int, int]:
    """(starved, blocked) of a template; its channels' waits added to ``empty``/``full``.
    Checks the template's equation at every firing on the way."""
    T, F = p.T, p.F
    if F == 0:
        return 0, 0
    t0 = np.empty(F, dtype=np.int64)        # t_{f-1} + ii
    t0[0] = 0
    if p.fires == F:
        np.add(T[:-1], ii, out=t0[1:])
    else:                                   # event firings: + ii per firing between
        np.add(T[:-1], np.diff(p.R), out=t0[1:])
    m = t0.copy()                           # + the latest visible input
    vis = []
    for e in p.ins:
        c = e.ch
        if c.n:
            v = c.push + c.lat
            vis.append((e, 0, v))
            e.map.max_into(m, 0, v)
    gap = m - t0
    starved = int(gap.sum())
    _book(vis, m, gap, starved, empty)
    np.subtract(T, m, out=gap)              # output waits, from the input-bound time
    # idle cycles from 0 to the last firing: sum of T_f - (T_{f-1} + ii), T_{-1} = -ii
    blocked = int(T[-1]) + ii - p.fires * ii - starved
    vis = []
    for e in p.outs:
        c = e.ch
        if c.n > c.depth:
            v = c.pop[:c.n - c.depth] + 1
            vis.append((e, c.depth, v))
            e.map.max_into(m, c.depth, v)
    if not np.array_equal(m, T):
        raise _NotFixed(p.name)
    _book(vis, T, gap, blocked, full)
    return starved, blocked


def _source_stats(p: _Chain, gaps: np.ndarray, full: dict) -> int:
    c = p.outs[0].ch
    T, d = p.T, c.depth
    t0 = np.empty_like(T)                   # t_{k-1} + 1 + gap_k, t_{-1} = -1
    if len(t0):
        t0[0] = gaps[0]
        np.add(T[:-1] + 1, gaps[1:], out=t0[1:])
    w = np.zeros_like(t0)
    if c.n > d:
        w[d:] = c.pop[:c.n - d] + 1 - t0[d:]
        np.maximum(w, 0, out=w)
    if not np.array_equal(t0 + w, T):
        raise _NotFixed(p.name)
    blocked = int(w.sum())
    full[c.name] += blocked
    return blocked


def _sink_stats(p: _Node) -> int:
    c = p.ins[0].ch
    T = p.T
    if c.n == 0:
        return 0
    t = c.push + c.lat                    # max(push + lat, t_{k-1} + 1), then first_ready
    np.maximum(t[1:], T[:-1] + 1, out=t[1:])
    np.maximum(t[:1], 0, out=t[:1])
    if isinstance(p, _ReadySink):
        first_ready = p.ready.first_ready
        ok = all(first_ready(a) == b for a, b in zip(t.tolist(), T.tolist()))
    else:
        ok = np.array_equal(t, T)
    if not ok:
        raise _NotFixed(p.name)
    return int((T - t).sum())


def _template_proc(inst, chans: dict) -> TemplateProc:
    """A finished TemplateProc (the reference's plan, every firing made)."""
    p = TemplateProc(inst, chans)
    p.phase, p.f = len(p.plan), 0
    return p


def run_timing_fast(hw: HwGraph, schedule: Schedule, max_rounds: int | None = None,
                    order: list[str] | None = None) -> Timing | None:
    """``sim.engine.run_timing(hw, schedule, order)`` computed with numpy: the same Timing
    (every channel's push/pop lists and waits, every process's statistics, processes in
    the same order, ``output_cycles``; ``deadlock`` None), or None when the design
    deadlocks or the times do not settle within the budget. On None, call ``run_timing``:
    it computes the same answer and describes a deadlock.

    Budget: by default about 0.6 of the reference engine's estimated cost (so a fallback
    costs at most ~1.6x the reference alone); ``max_rounds`` instead allows that many
    rounds (one round: as many process updates as processes) whatever they cost. A
    deadlock is recognised within a few rounds either way."""
    if any(c.latency < 1 or c.depth < 1 for c in hw.channels.values()):
        return None     # the argument above needs every wait cycle to cost a cycle
    fch: dict[str, _Ch] = {}
    for c in hw.channels.values():
        fch[c.name] = _Ch(c.name, c.depth, c.latency, hw.tokens(c.name))

    sources = []
    for name in hw.inputs:
        ch = fch[name]
        gaps = np.asarray(schedule.gaps[name], dtype=np.int64)
        if len(gaps) != ch.n:
            raise ValueError(f"schedule: {len(gaps)} gaps for the {ch.n} tokens of {name}")
        end = _End(ch, _Map(ch.n))
        node = _Chain(f"<input {name}>", np.arange(ch.n, dtype=np.int64) + np.cumsum(gaps),
                      None if gaps.any() else 1, [], [end])
        ch.src = (node, end)
        sources.append((node, gaps))

    templates = {}
    for name in _topo(hw):
        con = hw.instances[name].contract
        ports = hw.port_channels(name)
        ins = [_End(fch[ports[q].name], _port_map(con, q)) for q in con.inputs]
        outs = [_End(fch[ports[q].name], _port_map(con, q)) for q in con.outputs]
        for e in ins + outs:
            if e.map.n != e.ch.n:
                raise ValueError(f"{name}: {e.map.n} tokens on {e.ch.name}, expected {e.ch.n}")
        events = _events(con)
        if events is None:
            node = _Chain(name, _Progression(0, con.ii, con.fires), con.ii, ins, outs)
        else:       # times at the event firings only (their ramp: ii * firing)
            for e in ins + outs:
                e.map = _event_map(e.map, events)
            node = _Chain(name, events * con.ii, None, ins, outs)
            node.fires = con.fires
        for e in outs:
            e.ch.src = (node, e)
        for e in ins:
            e.ch.dst = (node, e)
        templates[name] = node

    sinks = []
    for name in hw.outputs:
        ch = fch[name]
        end = _End(ch, _Map(ch.n))
        ready = schedule.ready[name]
        if ready.prob >= 1.0:
            node = _Chain(f"<output {name}>", _Progression(0, 1, ch.n), 1, [end], [])
        else:
            node = _ReadySink(f"<output {name}>", end, ready)
        ch.dst = (node, end)
        sinks.append(node)

    # channel estimates: views of the producer's / consumer's firing times when possible
    for ch in fch.values():
        if ch.src is None or ch.dst is None:
            raise ValueError(f"channel {ch.name}: needs a producer and a consumer")
        for attr, (node, end) in (("push", ch.src), ("pop", ch.dst)):
            if end.map.idx is None:
                setattr(ch, attr, end.map.take(node.T))
                setattr(ch, attr + "_view", True)
            else:
                setattr(ch, attr, np.full(ch.n, _UNKNOWN, dtype=np.int64))

    nodes = [n for n, _ in sources] + list(templates.values()) + sinks
    if not _solve(nodes, max_rounds):
        return None
    for p in nodes:                     # the bounds are done with
        p.W = None
    for ch in fch.values():             # the gathered estimates, afresh for the checks
        for attr, (node, end) in (("push", ch.src), ("pop", ch.dst)):
            if not getattr(ch, attr + "_view"):
                setattr(ch, attr, end.map.take(node.T))

    # the reference's objects, the times as int64 arrays read like its lists (Times)
    chans = {}
    for c in hw.channels.values():
        ch = fch[c.name]
        out = Chan(c.name, c.depth, c.latency)
        out.push = Times(ch.src[1].map.take(ch.src[0].T))
        out.pop = Times(ch.dst[1].map.take(ch.dst[0].T))
        chans[c.name] = out

    empty = {name: 0 for name in fch}
    full = {name: 0 for name in fch}
    procs = []
    try:
        for (node, gaps), name in zip(sources, hw.inputs):
            p = SourceProc(chans[name], schedule.gaps[name])
            p.blocked = _source_stats(node, gaps, full)
            _finish(p, node, -1)
            procs.append(p)
        for name in (order or list(hw.instances)):
            inst = hw.instances[name]
            node = templates[name]
            p = _template_proc(inst, {q: chans[c.name]
                                      for q, c in hw.port_channels(name).items()})
            p.starved, p.blocked = _template_stats(node, inst.contract.ii, empty, full)
            _finish(p, node, -inst.contract.ii)
            procs.append(p)
        for node, name in zip(sinks, hw.outputs):
            p = SinkProc(chans[name], hw.tokens(name), schedule.ready[name])
            p.blocked = _sink_stats(node)
            _finish(p, node, -1)
            procs.append(p)
    except _NotFixed as e:
        # every equation is checked: a finite solution is the reference's (the least,
        # and the only one); a failed check is a bug here, so fall back, loudly
        warnings.warn(f"fast timing engine: {e} breaks its equation; use run_timing",
                      RuntimeWarning, stacklevel=2)
        return None
    for name, out in chans.items():
        out.empty_wait, out.full_wait = empty[name], full[name]

    timing = Timing(chans, procs, None)
    timing.output_cycles = {name: list(chans[name].pop) for name in hw.outputs}
    return timing


def _finish(p, node: _Node, t_init: int) -> None:
    p.fires = getattr(node, "fires", node.F)
    p.t = int(node.T[-1]) if node.F else t_init
    p.first = int(node.T[0]) if node.F else None
    p.done, p.waiting = True, None

"""The Dask runner behind ``attnflow sweep`` and the RTL regression (:mod:`.sweep_regress`).

:func:`open_cluster` gives a client of a :class:`~distributed.LocalCluster` sized to the
machine (one single-threaded worker per core, or ``workers``) or of an existing scheduler
(``tcp://host:port``). :func:`run_jobs` submits one task per :class:`Job`, hands each
result to the caller as it finishes, keeps one live progress line (done / failed /
running, ETA) and notes every worker that leaves while it holds tasks: the scheduler runs
those tasks again elsewhere. On the LocalCluster a task may see one worker die
(``distributed.scheduler.allowed-failures = 1``): it is retried once, and if its second
worker dies too it is a one-line ``KilledWorker`` error. An existing scheduler applies its
own ``allowed-failures`` (Dask's default: 3).
"""
from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .ir.spec import SpecError

#: worker deaths a task survives on the LocalCluster before it is a KilledWorker error
ALLOWED_FAILURES = 1


def one_line(e: BaseException) -> str:
    """An exception as one line: a SpecError as it is, anything else with its type."""
    text = str(e) if str(e) else type(e).__name__
    if not isinstance(e, SpecError):
        text = f"{type(e).__name__}: {text}"
    return " ".join(text.split())


def check_cluster_args(workers: int | None, scheduler: str | None):
    """One line for --workers < 1, or --workers with --scheduler."""
    if workers is not None and workers < 1:
        raise SpecError("<command line>", "--workers", f"must be >= 1, got {workers}")
    if scheduler and workers is not None:
        raise SpecError("<command line>", "--workers", "sizes the LocalCluster only; "
                        "with --scheduler the cluster's own workers run the tasks")


def open_cluster(workers: int | None, scheduler: str | None, processes: bool = True):
    """(client, cluster or None): a LocalCluster of ``workers`` single-threaded workers
    (default: one per core), or a client of the scheduler at ``scheduler``."""
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise SpecError("<command line>", "sweep", "needs dask.distributed: "
                        "pip install 'attnflow[sweep]'") from None
    check_cluster_args(workers, scheduler)
    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as e:
            raise SpecError("<command line>", "--scheduler",
                            f"cannot reach {scheduler}: {one_line(e)}") from None
    n = workers or os.cpu_count() or 1
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                               dashboard_address=":0", silence_logs=logging.ERROR)
    return Client(cluster), cluster


class Progress:
    """One live line on stderr: done / failed / running, with an ETA (tqdm if present)."""

    def __init__(self, total: int, initial: int, enabled: bool, what: str = "sweep",
                 unit: str = "pt"):
        self.enabled, self.bar, self.start = enabled, None, time.monotonic()
        self.total, self.initial, self.what = total, initial, what
        self._last, self._when = None, 0.0
        self.tty = sys.stderr.isatty()
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, initial=initial, unit=unit, file=sys.stderr,
                                dynamic_ncols=True, desc=what)
            except ImportError:
                pass

    def update(self, done: int, failed: int, running: int):
        """Redraw the line (a terminal: on a change or every 5 s; a log file: a new line
        on a change or every 60 s)."""
        state, now = (done, failed, running), time.monotonic()
        if not self.enabled or (state == self._last
                                and now - self._when < (5.0 if self.tty else 60.0)):
            return
        self._last, self._when = state, now
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix_str(f"failed {failed}, running {running}", refresh=True)
            return
        computed, elapsed = done - self.initial, now - self.start
        eta = (f", ETA {elapsed / computed * (self.total - done):.0f} s" if computed else "")
        text = (f"[attnflow] {self.what}: done {done}/{self.total}, failed {failed}, "
                f"running {running}{eta}")
        if self.tty:
            print(f"\r{text}   ", end="", file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)

    def note(self, text: str):
        """A line of its own (a worker lost), without breaking the live line."""
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(("\n" if self.enabled and self.tty else "") + text, file=sys.stderr,
                  flush=True)
            self._last = None

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.tty:
            print(file=sys.stderr)


@dataclass(frozen=True)
class Job:
    """One task: ``fn(*args)`` on a worker, under the Dask key ``key``."""
    index: int
    key: str
    fn: Callable
    args: tuple


@dataclass
class RunLog:
    workers: int = 0                  # workers when the run started
    lost: list = field(default_factory=list)   # (worker address, job indices it held)


def _processing(client) -> dict:
    """worker address -> keys it holds; {} when the scheduler cannot say (progress only)."""
    try:
        return {w: set(keys) for w, keys in client.processing().items()}
    except Exception:          # noqa: BLE001 - progress and notes only
        return {}


def run_jobs(client, jobs: list, on_done: Callable[[Job, Any, str | None], bool],
             progress: Progress, already: int = 0, failed: int = 0) -> RunLog:
    """Submit ``jobs`` (``retries=1``: a task that raises runs once more) and call
    ``on_done(job, value, error)`` as each finishes: ``error`` is the one-line reason when
    the task itself failed (a worker killed twice, an exception), else None; ``on_done``
    returns whether the job counts as failed. Returns the workers and the workers lost."""
    from distributed import wait
    info = client.scheduler_info(n_workers=-1)["workers"]
    log = RunLog(workers=len(info))
    threads = sum(w.get("nthreads", 1) for w in info.values()) or 1
    if not info:
        progress.note("[attnflow] the scheduler has no workers: the tasks wait for one "
                      "(start `dask worker SCHEDULER_ADDRESS`)")
    futures = {client.submit(j.fn, *j.args, key=j.key, retries=1, pure=False): j
               for j in jobs}
    by_key = {f.key: futures[f] for f in futures}
    pending, done, held = set(futures), already, {}
    while pending:
        try:
            finished, pending = wait(pending, timeout=1.0, return_when="FIRST_COMPLETED")
        except TimeoutError:
            finished = set()
        for fut in finished:
            try:
                value, error = fut.result(), None
            except Exception as e:   # noqa: BLE001 - a task's failure is its row
                value, error = None, one_line(e)
            failed += bool(on_done(futures[fut], value, error))
            done += 1
        now = _processing(client)
        keys = {f.key for f in pending}
        for worker in set(held) - set(now):
            lost = sorted(by_key[k].index for k in held[worker] & keys)
            if lost:
                log.lost.append((worker, tuple(lost)))
                progress.note(f"[attnflow] worker {worker} left while running "
                              f"{', '.join(map(str, lost))}: the scheduler runs them again")
        held = now
        # at most one task per worker thread runs; the scheduler may queue more there
        running = min(threads, len(keys & {k for ks in now.values() for k in ks}))
        progress.update(done, failed, running)
    progress.close()
    return log

"""attnflow sweep on a LocalCluster of worker processes: a worker killed (SIGKILL) in the
middle of a sweep; the scheduler runs its point again on the worker the nanny restarts,
and the sweep completes with every row exact. Starts processes: marked slow."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")

from attnflow.sweep import run_sweep                             # noqa: E402

HEAD = Path(__file__).resolve().parent.parent / "examples" / "sdpa_online.yaml"
SEQ_LENS = (192, 200, 208, 216, 224, 232)


def _workers(since: float) -> list:
    """The Dask worker processes this test process spawned since ``since``."""
    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.create_time() >= since - 1 and "spawn_main" in " ".join(child.cmdline()):
                out.append(child)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.slow
def test_killed_worker_point_is_rerun(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(f"base: {HEAD}\naxes:\n  model.seq_len: {list(SEQ_LENS)}\nrun: [sim]\n")
    out, result, notes = tmp_path / "out", {}, []
    start = time.time()

    def sweep():
        result["res"] = run_sweep(path, out, workers=1, processes=True, progress=False,
                                  log=notes.append)

    thread = threading.Thread(target=sweep)
    thread.start()
    deadline = time.monotonic() + 300
    while not list((out / "cache").glob("*.json")):       # one point done, five to go
        assert thread.is_alive() and time.monotonic() < deadline, notes
        time.sleep(0.05)
    victims = _workers(start)
    assert len(victims) == 1, victims
    os.kill(victims[0].pid, signal.SIGKILL)
    thread.join(timeout=600)
    assert not thread.is_alive()
    res = result["res"]
    assert not victims[0].is_running()
    # the killed worker held at least one point; the scheduler ran it again
    assert len(res.lost) == 1, res.lost
    worker, lost = res.lost[0]
    assert worker.startswith("tcp://127.0.0.1:") and lost and set(lost) <= set(range(6))
    assert (res.computed, res.cached, len(res.rows)) == (6, 0, 6)
    # online head, lanes 1, no stalls: N + N*N + F cycles (README; 4 | N), the fill F = 65
    # at these N (1 + the latencies of qk_scores, online_softmax_pv and normalize)
    assert [(r["model.seq_len"], r["status"], r["cycles"], r["golden_mismatches"])
            for r in res.rows] == [(n, "ok", n + n * n + 65, 0) for n in SEQ_LENS]
    assert len(list((out / "cache").glob("*.json"))) == 6
    html = (out / "report.html").read_text()
    assert f"worker {worker} lost while running {list(lost)}, rerun" in html

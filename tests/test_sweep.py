"""attnflow sweep: a small sweep of the sdpa head on an in-process LocalCluster (one
worker thread): exact rows against `attnflow sim`, bad values as one-line error rows,
a rerun served from the cache, and the one-line errors of a bad sweep file."""
from __future__ import annotations

import csv
import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from attnflow.cli import main                                    # noqa: E402
from attnflow.ir.spec import SpecError                           # noqa: E402
from attnflow.sweep import run_sweep                             # noqa: E402
from attnflow.sweep_file import load_sweep                       # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HEAD = EXAMPLES / "sdpa_online.yaml"


def _write(tmp_path, text: str) -> Path:
    p = tmp_path / "sweep.yaml"
    p.write_text(text)
    return p


def _cli_sim(*sets) -> dict:
    """`attnflow sim --json` on the head with these --set overrides."""
    buf = io.StringIO()
    argv = ["sim", str(HEAD), "--json"]
    for s in sets:
        argv += ["--set", s]
    with redirect_stdout(buf):
        assert main(argv) == 0
    return json.loads(buf.getvalue())


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def head_sweep(tmp_path_factory):
    """lanes 1, 2 and a bad 0, x N = 16, 24: 6 points, 2 invalid; run twice."""
    tmp = tmp_path_factory.mktemp("sweep")
    path = _write(tmp, f"base: {HEAD}\n"
                       "axes:\n  model.attention.lanes: [1, 2, 0]\n  model.seq_len: [16, 24]\n"
                       "run: [sim]\n")
    first = run_sweep(path, tmp / "out", workers=1, processes=False, progress=False,
                      log=lambda s: None)
    second = run_sweep(path, tmp / "out", workers=1, processes=False, progress=False,
                       log=lambda s: None)
    return tmp / "out", first, second


def test_rows_match_attnflow_sim(head_sweep):
    out, first, _ = head_sweep
    rows = _csv(out / "results.csv")
    assert [(r["point"], r["model.attention.lanes"], r["model.seq_len"]) for r in rows] == [
        ("0", "1", "16"), ("1", "1", "24"), ("2", "2", "16"), ("3", "2", "24"),
        ("4", "0", "16"), ("5", "0", "24")]
    # online head, no stalls: N + N*ceil(N/lanes) + the padding of the last block of
    # interleaved rows + the fill (tests/helpers.online_cycles), the CLI's figure below
    assert [r["cycles"] for r in rows[:4]] == ["333", "662", "210", "379"]
    for r in rows[:4]:
        ref = _cli_sim(f"model.attention.lanes={r['model.attention.lanes']}",
                       f"model.seq_len={r['model.seq_len']}")
        assert r["status"] == "ok" and r["error"] == ""
        assert int(r["cycles"]) == ref["total_cycles"] == int(r["expected_cycles"])
        assert int(r["multipliers"]) == ref["multipliers"]
        assert int(r["ii_cycles"]) == ref["bottleneck"]["busy"]
        assert r["golden_mismatches"] == "0"
        assert float(r["cosine"]) == ref["accuracy"]["cosine"]
        assert float(r["latency_us"]) == ref["latency_us"]
    assert first.computed == 4 and first.invalid == 2 and first.cached == 0


def test_bad_value_is_a_one_line_error_row(head_sweep):
    out, _, _ = head_sweep
    rows = _csv(out / "results.csv")
    for r in rows[4:]:
        assert r["status"] == "failed" and r["cycles"] == ""
        assert r["error"] == (f"{HEAD}: model.attention.lanes: must be an integer >= 1, got 0")
    for png in ("pareto.png", "accuracy.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    assert "must be an integer &gt;= 1, got 0" in html
    assert "Pareto front: latency against cost" in html
    assert "Pareto front: accuracy against cost" in html


def test_pareto_front_of_hand_made_rows():
    from attnflow.sweep_report import pareto_front
    rows = [{"point": 0, "status": "ok", "DSP": 10, "lat": 5.0},
            {"point": 1, "status": "ok", "DSP": 20, "lat": 5.0},      # costlier, no faster
            {"point": 2, "status": "ok", "DSP": 20, "lat": 3.0},
            {"point": 3, "status": "failed", "DSP": 5, "lat": 1.0},   # failed: never on it
            {"point": 4, "status": "ok", "DSP": 30, "lat": 4.0},      # beaten by 2
            {"point": 5, "status": "ok", "DSP": 40, "lat": 1.0},
            {"point": 6, "status": "ok", "DSP": None, "lat": 0.5}]    # no cost figure
    assert [r["point"] for r in pareto_front(rows, "DSP", "lat")] == [0, 2, 5]


def test_rerun_is_served_from_the_cache(head_sweep):
    out, first, second = head_sweep
    assert second.computed == 0 and second.cached == 4 and second.invalid == 2
    assert second.rows == first.rows
    assert len(list((out / "cache").glob("*.json"))) == 4


def test_worker_side_failure_is_a_row(tmp_path):
    """A budget the mapper cannot meet fails inside the task (prepare), one line; a new
    point next to cached ones is the only one computed."""
    path = _write(tmp_path, f"base: {HEAD}\naxes:\n  model.seq_len: [16]\n"
                            "  hardware.multiplier_budget: [10, 200]\nrun: [sim]\n")
    res = run_sweep(path, tmp_path / "out", workers=1, processes=False, progress=False,
                    log=lambda s: None)
    bad, good = res.rows
    assert bad["status"] == "failed" and "\n" not in bad["error"]
    assert bad["error"].startswith(f"{HEAD}: hardware.multiplier_budget: ")
    assert good["status"] == "ok" and good["cycles"] == _cli_sim(
        "model.seq_len=16", "hardware.multiplier_budget=200")["total_cycles"]
    path.write_text(path.read_text().replace("[10, 200]", "[10, 200, 100]"))
    again = run_sweep(path, tmp_path / "out", workers=1, processes=False, progress=False,
                      log=lambda s: None)
    assert (again.computed, again.cached) == (1, 2)
    assert again.rows[:2] == res.rows


@pytest.mark.parametrize("text, message", [
    ("axes: {model.seq_len: [16]}\n", "sweep.yaml: base: required: the path of a spec file "
                                      "(relative to the sweep file)"),
    (f"base: {HEAD}\naxes: {{model.attention.lanez: [1]}}\n",
     "sweep.yaml: axes.model.attention.lanez: model.attention.lanez: unknown field; did you "
     "mean 'lanes'? allowed fields: kind, variant, window, lanes, split, decode"),
    (f"base: {HEAD}\naxes: {{model.seq_len: []}}\n",
     "sweep.yaml: axes.model.seq_len: must be a non-empty list of values, got []"),
    (f"base: {HEAD}\nrun: [sim, lint]\n",
     "sweep.yaml: run: unknown step 'lint'; allowed: sim, resources, verify, synth"),
    (f"base: {HEAD}\nrun: [sim, resources]\n",
     "sweep.yaml: options.target: run resources needs a device: set options.target or an "
     "axes.target"),
    (f"base: {HEAD}\noptions: {{seeds: [1]}}\n",
     "sweep.yaml: options.seeds: unknown option; allowed: target, stall_seeds, simulator, "
     "verify_timeout, synth_timeout, pnr"),
])
def test_bad_sweep_file_one_line(tmp_path, text, message):
    path = _write(tmp_path, text)
    from attnflow.sweep_file import points
    with pytest.raises(SpecError) as e:
        points(load_sweep(path))
    assert str(e.value) == f"{tmp_path}/{message}"


def test_cli_bad_sweep_file_exit_2(tmp_path, capsys):
    path = _write(tmp_path, f"base: {HEAD}\nrun: [sim, lint]\n")
    assert main(["sweep", str(path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {path}: run: unknown step 'lint'; allowed: sim, resources, "
                   f"verify, synth\n")


def test_cli_bad_workers_exit_2(tmp_path, capsys):
    path = _write(tmp_path, f"base: {HEAD}\naxes: {{model.seq_len: [16]}}\n")
    assert main(["sweep", str(path), "-o", str(tmp_path / "out"), "--workers", "0"]) == 2
    assert capsys.readouterr().err == "error: <command line>: --workers: must be >= 1, got 0\n"


def test_points_of_the_same_spec_run_once(tmp_path):
    """A value listed twice resolves to one spec: one task, one build folder, two rows."""
    path = _write(tmp_path, f"base: {HEAD}\naxes:\n  model.seq_len: [8, 8, 12]\nrun: [sim]\n")
    notes = []
    res = run_sweep(path, tmp_path / "out", workers=1, processes=False, progress=False,
                    log=notes.append)
    assert notes == [f"[attnflow] sweep {path}: 3 points (0 invalid, 0 cached, 2 to run, "
                     "1 the same as another: sim)"]
    assert res.computed == 2 and len(list((tmp_path / "out" / "cache").glob("*.json"))) == 2
    first, second, third = res.rows
    # online head, d = 16, no stalls: N + N*N + F, the fill F = 1 + the latencies of
    # qk_scores, online_softmax_pv and normalize (60 at N = 8, 61 at N = 12: the README's
    # RTL table)
    assert {**first, "point": 1} == second and first["cycles"] == 8 + 64 + 60
    assert third["cycles"] == 12 + 144 + 61

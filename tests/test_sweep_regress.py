"""The RTL regression on the sweep's Dask runner (``make regress``), on a stand-in checkout
whose tests pass, fail, print RTL verdicts and hang: one row per test with its outcome
and one-line error, one row per printed RTL run, a hung test killed at the timeout."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from attnflow.ir.spec import SpecError                           # noqa: E402
from attnflow.sweep_regress import Regression, main, run_regression  # noqa: E402

TESTS = '''
import time
import pytest

@pytest.mark.rtl_full
def test_pass(tmp_path):
    (tmp_path / "build.v").write_text("module m; endmodule")
    print("[rtl] fake N=4 no stalls: sim 25 cycles, testbench wall 0.1 s: PASS 4 tokens")
    print("[rtl] fake N=4: attnflow build 0.5 s -> /tmp/x")
    print("[rtl] fake N=4 stall seed 1: sim 31 cycles, testbench wall 0.1 s: PASS 4 tokens")

@pytest.mark.rtl_full
def test_fail(tmp_path):
    (tmp_path / "build.v").write_text("module m; endmodule")
    print("[rtl] fake N=4 stall seed 2: sim 30 cycles: FAIL output 'y' token 3")
    assert 1 == 2, "RTL differs from the simulator"

@pytest.mark.rtl_full
@pytest.mark.parametrize("n", [1, 2])
def test_skip_or_pass(n):
    if n == 2:
        pytest.skip("no verilator")

@pytest.mark.rtl_full
def test_hang():
    time.sleep(120)

def test_not_selected():
    pass
'''


def _checkout(tmp_path) -> Path:
    root = tmp_path / "checkout"
    (root / "tests").mkdir(parents=True)
    (root / "pytest.ini").write_text("[pytest]\nmarkers =\n    rtl_full: the full matrix\n")
    (root / "tests" / "test_fake.py").write_text(TESTS)
    return root


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow          # six pytest processes, one killed at its 10 s timeout
def test_regression_rows(tmp_path):
    reg = Regression(_checkout(tmp_path), "rtl_full", None, timeout=10.0)
    rows, _, lost = run_regression(reg, tmp_path / "out", workers=1, processes=False,
                                   progress=False, log=lambda s: None)
    assert lost == []
    table = _csv(tmp_path / "out" / "results.csv")
    assert [(r["test"], r["outcome"]) for r in table] == [
        ("tests/test_fake.py::test_pass", "passed"),
        ("tests/test_fake.py::test_fail", "failed"),
        ("tests/test_fake.py::test_skip_or_pass[1]", "passed"),
        ("tests/test_fake.py::test_skip_or_pass[2]", "skipped"),
        ("tests/test_fake.py::test_hang", "timeout")]
    passed, failed, _, skipped, hang = table
    assert passed["error"] == "" and float(passed["seconds"]) < 10
    assert passed["rtl_runs"] == "fake N=4 no stalls: PASS; fake N=4 stall seed 1: PASS"
    assert failed["error"] == ("AssertionError: RTL differs from the simulator assert 1 == 2")
    assert failed["rtl_runs"] == "fake N=4 stall seed 2: FAIL"
    assert skipped["error"] == "no verilator"
    assert hang["error"].startswith("timed out after 10 s (log: ")
    assert float(hang["seconds"]) >= 10
    assert _csv(tmp_path / "out" / "runs.csv") == [
        {"test": "tests/test_fake.py::test_pass", "run": "fake N=4 no stalls", "verdict": "PASS"},
        {"test": "tests/test_fake.py::test_pass", "run": "fake N=4 stall seed 1",
         "verdict": "PASS"},
        {"test": "tests/test_fake.py::test_fail", "run": "fake N=4 stall seed 2",
         "verdict": "FAIL"}]
    # a passing test's temporary builds are removed, a failing one's kept
    folders = {p.name.split("-")[0]: p for p in (tmp_path / "out" / "tests").iterdir()}
    assert not list(folders["test_fake.py_test_pass"].glob("attempt-*/tmp"))
    assert list(folders["test_fake.py_test_fail"].glob("attempt-*/tmp/**/build.v"))


def test_selection_of_no_tests_is_one_line(tmp_path, capsys):
    root = _checkout(tmp_path)
    assert main(["-m", "rtl_full", "-k", "nothing_matches", "--root", str(root),
                 "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: <command line>: -m/-k: pytest selects no tests with -m "
                          "'rtl_full' -k 'nothing_matches': ")
    assert err.count("\n") == 1
    with pytest.raises(SpecError, match="has no tests/ folder"):
        run_regression(Regression(tmp_path, "rtl_full", None, 10.0), tmp_path / "o",
                       workers=1, processes=False, progress=False, log=lambda s: None)

"""The sweep cache is keyed on the code too: the hash of attnflow's source files (except
the modules that only run the sweep or write its outputs) and the versions of the tools
behind the figures. A code change recomputes every point; a worker running other code
computes nothing and its row is not cached."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

pytest.importorskip("distributed")

import attnflow.sweep as sweep_module                            # noqa: E402
from attnflow.sweep import NO_CACHE, run_point, run_sweep       # noqa: E402
from attnflow.sweep_cache import (NOT_RESULTS, code_hash,       # noqa: E402
                                  package_folders, tree_hash)

ROOT = Path(__file__).resolve().parent.parent
HEAD = ROOT / "examples" / "sdpa_online.yaml"


def _tree(tmp_path) -> list:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("X = 1\n")
    (pkg / "sub" / "device.yaml").write_text("dsp: 8\n")
    (pkg / "report.py").write_text("def plot(): pass\n")
    return [("attnflow", pkg)]


def test_tree_hash_follows_source_bytes_only(tmp_path):
    folders = _tree(tmp_path)
    pkg = folders[0][1]
    skip = ("attnflow/report.py",)
    base = tree_hash(folders, skip)
    assert len(base) == 64 and base == tree_hash(folders, skip)
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0\1")
    (pkg / "notes.txt").write_text("not source\n")
    (pkg / "report.py").write_text("def plot(): return 1\n")      # an output-only module
    assert tree_hash(folders, skip) == base
    (pkg / "a.py").write_text("X = 2\n")                          # one byte of a module
    changed = tree_hash(folders, skip)
    assert changed != base
    (pkg / "a.py").write_text("X = 1\n")
    (pkg / "sub" / "device.yaml").write_text("dsp: 9\n")          # a bundled device file
    assert tree_hash(folders, skip) not in (base, changed)
    (pkg / "sub" / "device.yaml").write_text("dsp: 8\n")
    (pkg / "b.py").write_text("")                                 # a new module
    assert tree_hash(folders, skip) != base


def test_code_hash_covers_every_package_of_the_distribution():
    """Every module and device file of the packages pyproject installs is hashed."""
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    hashed = [folder.resolve() for _, folder in package_folders()]
    for name in setup["packages"]:
        folder = (ROOT / setup["package-dir"][name]).resolve()
        assert any(folder == h or h in folder.parents for h in hashed), name
    assert all((ROOT / path).is_file() for path in NOT_RESULTS)
    assert len(code_hash()) == 16


def _sweep(tmp_path) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(f"base: {HEAD}\naxes:\n  model.seq_len: [8, 12]\nrun: [sim]\n")
    return path


def _run(path, out):
    return run_sweep(path, out, workers=1, processes=False, progress=False,
                     log=lambda s: None)


def test_code_change_recomputes(tmp_path, monkeypatch):
    path, out = _sweep(tmp_path), tmp_path / "out"
    first = _run(path, out)
    assert (first.computed, first.cached) == (2, 0)
    second = _run(path, out)
    assert (second.computed, second.cached) == (0, 2)
    # the same sweep after a change of attnflow's code: every point runs again
    monkeypatch.setattr(sweep_module, "code_hash", lambda: "0123456789abcdef")
    again = _run(path, out)
    assert (again.computed, again.cached) == (2, 0)
    assert again.rows == first.rows
    assert len(list((out / "cache").glob("*.json"))) == 4


def test_worker_with_other_code_runs_nothing(tmp_path):
    from attnflow.ir.spec import load_spec, spec_to_dict
    spec = load_spec(HEAD, ["model.seq_len=8"])
    row = run_point(spec_to_dict(spec), str(HEAD), None, ("sim",), {}, None,
                    "ffffffffffffffff")
    assert row["status"] == "failed" and row[NO_CACHE] == "code" and "cycles" not in row
    assert row["error"].startswith("worker ") and "\n" not in row["error"]
    assert f"(hash {code_hash()}, client ffffffffffffffff; attnflow at " in row["error"]
    assert row["error"].endswith("start the workers from the client's checkout and "
                                 "environment")

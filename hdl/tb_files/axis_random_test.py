"""attnflow cocotb test at the AXI4-Stream wrapper, driven by cocotbext-axi.

Standalone module (cocotb, cocotbext-axi and the standard library). It reads the vectors
of the wrapper (``ATTNFLOW_VECTORS``, written by ``attnflow verify --axis``: every stream
with its ``ports`` and ``per_sequence``) and a seed (``ATTNFLOW_AXIS_SEED``). Every input
stream is an ``AxiStreamSource`` sending one frame per sequence (``tlast`` on its last
token), every output stream an ``AxiStreamSink``; both pause at random (source: valid
low, sink: ready low, each cycle with probability 0.3 and 0.5, drawn from the seed).
Checked: every output frame's tokens equal the expected payloads and it ends (``tlast``)
after exactly ``per_sequence`` tokens; nothing more arrives. Then, through the AXI4-Lite
port with cocotbext-axi's ``AxiLiteMaster`` (the register map in the vectors' ``axil``):
the ID, STATUS done, SEQUENCES, every stream's TOKENS, and CYCLES equal to what a monitor
of the handshakes counted (first input token to last output token, both counted); a
write to STATUS clears them; an unmapped address answers SLVERR. Cycles are not checked here:
the pauses are not the simulator's (the cycle-exact run through the same ports is
``cocotb_test.py`` with these vectors).
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotbext.axi import (AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamFrame,
                           AxiStreamSink, AxiStreamSource)
from cocotbext.axi.constants import AxiResp

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


async def _watch(clk, rst, ins, outs, last0, per_in0, seen):
    """From the handshakes alone, what the CYCLES register must hold (``hdl.axis``'s
    definition, counted here again): per cycle after reset, whether any input moved,
    whether the first input took the first token of a sequence, and whether the first
    output moved its tlast token (a sequence's end)."""
    running, count, open_, in_pos = False, 0, 0, 0
    moved = lambda v, r: str(v.value) == "1" and str(r.value) == "1"
    while True:
        await RisingEdge(clk)
        if str(rst.value) == "1":
            continue
        any_in = any(moved(v, r) for v, r in ins)
        in0 = moved(*ins[0])
        began = in0 and in_pos == 0
        end = moved(*outs[0]) and str(last0.value) == "1"
        count = 1 if any_in and not running else count + 1 if running else count
        if end:
            seen["cycles"] = count
            if open_ + began > 1:
                count = 0
            else:
                running = False
        elif any_in and not running:
            running = True
        open_ += began - end
        if in0:
            in_pos = (in_pos + 1) % per_in0


async def _check_registers(dut, clk, rst, vec, seen):
    regs = vec["axil"]
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), clk, rst,
                         reset_active_level=True)
    got = {name: await axil.read_dword(addr) for name, addr in regs.items()}
    streams = vec["inputs"] + vec["outputs"]
    out0 = vec["outputs"][0]
    want = {"ID": 0x41464C57, "STATUS": 2,
            "SEQUENCES": len(out0["tokens"]) // int(out0["ports"]["per_sequence"]),
            "CYCLES": seen["cycles"],
            **{f"TOKENS_{s['name'].upper()}": len(s["tokens"]) for s in streams}}
    if got != want:
        bad = [k for k in want if got.get(k) != want[k]]
        raise AssertionError("MISMATCH AXI4-Lite " + ", ".join(
            f"{k} {got.get(k)} (expected {want[k]})" for k in bad))
    await axil.write_dword(regs["STATUS"], 1)
    after = [await axil.read_dword(regs[k]) for k in ("SEQUENCES", "CYCLES", "STATUS")]
    if after != [0, 0, 0]:
        raise AssertionError(f"MISMATCH AXI4-Lite after clearing: SEQUENCES, CYCLES, "
                             f"STATUS = {after}")
    resp = await axil.read(max(regs.values()) + 4, 4)
    if resp.resp != AxiResp.SLVERR:
        raise AssertionError(f"MISMATCH AXI4-Lite: an unmapped read answered {resp.resp}")
    return want


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
    seen = {}
    ins = [(dut[s["ports"]["valid"]], dut[s["ports"]["ready"]]) for s in vec["inputs"]]
    outs = [(dut[s["ports"]["valid"]], dut[s["ports"]["ready"]]) for s in vec["outputs"]]
    rst.value = 1
    await ClockCycles(clk, RESET_CYCLES)
    rst.value = 0
    out0 = vec["outputs"][0]["ports"]
    cocotb.start_soon(_watch(clk, rst, ins, outs, dut[out0["last"]],
                             int(vec["inputs"][0]["ports"]["per_sequence"]), seen))
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
        regs = await _check_registers(dut, clk, rst, vec, seen)
        summary["status"] = "PASS"
        summary["message"] = (f"PASS {n_tokens} output tokens: bits and tlast match "
                              f"(cocotbext-axi, random pauses, seed {seed}; cycles not "
                              f"checked); AXI4-Lite: {regs['SEQUENCES']} sequence"
                              f"{'s' if regs['SEQUENCES'] != 1 else ''}, the last in "
                              f"{regs['CYCLES']} cycles, counters match")
    except BaseException as exc:
        summary["message"] = str(exc) if isinstance(exc, AssertionError) else \
            f"ERROR {type(exc).__name__}: {exc}"
        raise
    finally:
        _write_summary(summary)

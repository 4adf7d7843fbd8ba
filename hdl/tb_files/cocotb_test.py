"""attnflow cocotb testbench: replay recorded stream stimulus, check outputs bit- and cycle-exact.

Standalone module (imports only cocotb and the standard library).  It reads the
vectors JSON whose path is in the environment variable ``ATTNFLOW_VECTORS``::

    {"top": "...", "clock_period_ns": 10, "max_cycles": 5000,
     "inputs":  [{"name": "q", "tokens": ["123", ...], "gaps": [0, ...]}],
     "outputs": [{"name": "o", "tokens": ["7", ...], "cycles": [40, ...], "ready": "1101"}]}

Cycle numbering: ``rst`` is held high for a few cycles and released right after a
falling edge of ``clk``; the clock period starting at that falling edge is cycle 0
and every later falling edge starts the next cycle.  In each cycle the testbench
drives all stream signals right after the falling edge, waits for ``ReadOnly``
and samples: a token moves in cycle ``t`` iff valid and ready are both 1 then.

Input token ``k`` of a stream is offered from cycle ``offer_k`` until it moves:
``offer_0 = gaps[0]`` and ``offer_{k+1} = t_k + 1 + gaps[k+1]`` where ``t_k`` is
the cycle in which token ``k`` moved.  Output ready in cycle ``t`` is
``ready[t]`` (``"1"``/``"0"``), and 1 beyond the end of the string.

A stream may name its ports (``"ports": {"payload", "valid", "ready"}``; default
``<name>__payload`` etc., Amaranth's names); with ``"last"`` and ``"per_sequence"`` there
too (the AXI4-Stream wrapper's ``tlast``), input tokens are driven with last = 1 on every
``per_sequence``-th token and output tokens must carry it there, else a MISMATCH (tlast).

The DUT must send exactly the expected tokens: after the last expected one the test
keeps running for a drain window (:func:`drain_window`, or ``drain_cycles`` in the
vectors) and fails on any further token, naming its stream and index; an expected
token not sent by its cycle plus that window fails as missing, naming it.

If ``ATTNFLOW_SUMMARY`` is set, a JSON summary (status, message, cycles, token
counts, speed) is written to that path when the test ends.
"""

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

RESET_CYCLES = 4
# The least number of cycles simulated past the last expected output token (to catch
# extra tokens) and the least lateness after which an expected token counts as missing.
DEFAULT_DRAIN_CYCLES = 8


def drain_window(out_cycles, floor=DEFAULT_DRAIN_CYCLES):
    """Cycles to keep running past the last expected output token, and how late an
    expected token may be before it counts as missing.

    The longest gap between two consecutive expected tokens of any output stream (for a
    stream of one token, its cycle), plus ``floor``: a token the DUT sends at its own
    pace after the last expected one arrives within it.  Bounded by the expected run
    (the fill before the first token is not waited for again).
    """
    longest = 0
    for cycles in out_cycles:
        gaps = [b - a for a, b in zip(cycles, cycles[1:])] or list(cycles[:1])
        longest = max([longest] + gaps)
    return longest + floor


def _missing_at(out_cycles, out_cnt, drain_cycles):
    """The cycle at which the earliest still-expected output token counts as missing."""
    due = [c[k] for c, k in zip(out_cycles, out_cnt) if k < len(c)]
    return min(due) + drain_cycles if due else float("inf")


def _hex(value):
    return hex(value) if isinstance(value, int) else str(value)


def _ports(stream):
    name = stream["name"]
    ports = {k: f"{name}__{k}" for k in ("payload", "valid", "ready")}
    ports.update(stream.get("ports", {}))
    return ports


def _load_vectors():
    path = os.environ.get("ATTNFLOW_VECTORS")
    if not path:
        raise RuntimeError("environment variable ATTNFLOW_VECTORS is not set")
    with open(path, encoding="utf-8") as f:
        vec = json.load(f)
    inputs = []
    for s in vec.get("inputs", []):
        toks = [int(x) for x in s["tokens"]]
        gaps = [int(g) for g in s.get("gaps", [0] * len(toks))]
        if len(gaps) != len(toks):
            raise ValueError(f"input stream {s['name']!r}: {len(toks)} tokens but {len(gaps)} gaps")
        inputs.append((s["name"], toks, gaps))
    outputs = []
    for s in vec.get("outputs", []):
        toks = [int(x) for x in s["tokens"]]
        cycles = [int(c) for c in s["cycles"]]
        if len(cycles) != len(toks):
            raise ValueError(f"output stream {s['name']!r}: {len(toks)} tokens but {len(cycles)} cycles")
        ready = str(s.get("ready", ""))
        if set(ready) - {"0", "1"}:
            raise ValueError(f"output stream {s['name']!r}: ready string must contain only 0/1")
        outputs.append((s["name"], toks, cycles, ready))
    return vec, inputs, outputs


def _write_summary(summary):
    path = os.environ.get("ATTNFLOW_SUMMARY")
    if not path:
        return
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(summary, f)
        f.write("\n")
    os.replace(tmp, path)


@cocotb.test()
async def attnflow_stream_test(dut):
    """Drive every input stream, check every output token's bits and cycle."""
    log = dut._log
    vec, inputs, outputs = _load_vectors()
    max_cycles = int(vec.get("max_cycles", 100000))
    if "drain_cycles" in vec:
        drain_cycles = int(vec["drain_cycles"])
    else:
        drain_cycles = drain_window([s[2] for s in outputs])
    period_ns = vec.get("clock_period_ns", 10)

    summary = {
        "status": "ERROR",
        "message": "testbench did not finish",
        "cycles_simulated": 0,
        "last_output_cycle": None,
        "tokens": {name: 0 for name, _, _, _ in outputs},
        "expected_tokens": {name: len(toks) for name, toks, _, _ in outputs},
        "wall_seconds": None,
        "cycles_per_second": None,
    }

    clk = dut["clk"]
    rst = dut["rst"]

    # ---- per-stream state as flat lists (fast inner loop) ----------------
    n_in = len(inputs)
    in_names = [s[0] for s in inputs]
    in_ports = [_ports(s) for s in vec.get("inputs", [])]
    in_valid = [dut[p["valid"]] for p in in_ports]
    in_ready = [dut[p["ready"]] for p in in_ports]
    in_payload = [dut[p["payload"]] for p in in_ports]
    in_last = [dut[p["last"]] if "last" in p else None for p in in_ports]
    in_per = [int(p.get("per_sequence", 0)) for p in in_ports]
    in_toks = [s[1] for s in inputs]
    in_gaps = [s[2] for s in inputs]
    in_n = [len(t) for t in in_toks]
    in_k = [0] * n_in                                   # next token index
    in_offer = [g[0] if g else 0 for g in in_gaps]      # cycle of next offer
    in_drv = [False] * n_in                             # valid currently driven high
    in_pending = [False] * n_in                         # token offered, not yet moved

    n_out = len(outputs)
    out_names = [s[0] for s in outputs]
    out_ports = [_ports(s) for s in vec.get("outputs", [])]
    out_valid = [dut[p["valid"]] for p in out_ports]
    out_ready = [dut[p["ready"]] for p in out_ports]
    out_payload = [dut[p["payload"]] for p in out_ports]
    out_last = [dut[p["last"]] if "last" in p else None for p in out_ports]
    out_per = [int(p.get("per_sequence", 0)) for p in out_ports]
    out_toks = [s[1] for s in outputs]
    out_cycles = [s[2] for s in outputs]
    out_rstr = [s[3] for s in outputs]
    out_rlen = [len(r) for r in out_rstr]
    out_n = [len(t) for t in out_toks]
    out_cnt = [0] * n_out
    out_rdrv = [0] * n_out                              # ready currently driven
    outputs_left = sum(out_n)
    last_expected = max((c[-1] for c in out_cycles if c), default=-1)

    # ---- clock and reset --------------------------------------------------
    Clock(clk, period_ns, unit="ns").start(start_high=False)
    falling = FallingEdge(clk)
    readonly = ReadOnly()

    rst.value = 1
    for h in in_valid:
        h.value = 0
    for h in in_payload:
        h.value = 0
    for h in in_last:
        if h is not None:
            h.value = 0
    for h in out_ready:
        h.value = 0
    for _ in range(RESET_CYCLES):
        await falling
    rst.value = 0

    t = 0
    # Cycle after which the test ends successfully (set once all outputs arrived,
    # plus a few drain cycles to catch extra tokens).
    # max_cycles bounds the wait for expected tokens; the drain is bounded by itself.
    stop_at = None if outputs_left else drain_cycles
    missing_at = _missing_at(out_cycles, out_cnt, drain_cycles)
    wall0 = time.perf_counter()
    last_out_cycle = None
    failure = None
    try:
        while True:
            # -------- drive (right after the falling edge that starts cycle t)
            for j in range(n_in):
                if in_pending[j]:
                    continue
                k = in_k[j]
                if k < in_n[j] and in_offer[j] <= t:
                    in_payload[j].value = in_toks[j][k]
                    if in_last[j] is not None:
                        in_last[j].value = int((k + 1) % in_per[j] == 0)
                    if not in_drv[j]:
                        in_valid[j].value = 1
                        in_drv[j] = True
                    in_pending[j] = True
                elif in_drv[j]:
                    in_valid[j].value = 0
                    in_drv[j] = False
            for j in range(n_out):
                r = 1 if t >= out_rlen[j] or out_rstr[j][t] == "1" else 0
                if r != out_rdrv[j]:
                    out_ready[j].value = r
                    out_rdrv[j] = r

            await readonly

            # -------- sample
            for j in range(n_in):
                if in_pending[j] and str(in_ready[j].value) == "1":
                    in_pending[j] = False
                    k = in_k[j] + 1
                    in_k[j] = k
                    if k < in_n[j]:
                        in_offer[j] = t + 1 + in_gaps[j][k]
            for j in range(n_out):
                if out_rdrv[j] and str(out_valid[j].value) == "1":
                    raw = out_payload[j].value
                    try:
                        got = raw.to_unsigned()
                    except ValueError:
                        got = str(raw)
                    idx = out_cnt[j]
                    name = out_names[j]
                    if idx >= out_n[j]:
                        failure = (
                            f"MISMATCH stream {name!r} token {idx}: unexpected extra token "
                            f"(only {out_n[j]} expected), got payload {_hex(got)} at cycle {t}"
                        )
                        raise AssertionError(failure)
                    exp = out_toks[j][idx]
                    exp_t = out_cycles[j][idx]
                    if got != exp or t != exp_t:
                        what = "payload and cycle" if (got != exp and t != exp_t) else (
                            "payload" if got != exp else "cycle")
                        failure = (
                            f"MISMATCH stream {name!r} token {idx} ({what}): "
                            f"expected payload {_hex(exp)} at cycle {exp_t}, "
                            f"got payload {_hex(got)} at cycle {t}"
                        )
                        raise AssertionError(failure)
                    if out_last[j] is not None:
                        want = int((idx + 1) % out_per[j] == 0)
                        if str(out_last[j].value) != str(want):
                            failure = (
                                f"MISMATCH stream {name!r} token {idx} (tlast): expected "
                                f"tlast {want} at cycle {t}, got {out_last[j].value}"
                            )
                            raise AssertionError(failure)
                    out_cnt[j] = idx + 1
                    outputs_left -= 1
                    last_out_cycle = t
                    if outputs_left == 0:
                        stop_at = t + drain_cycles
                    else:
                        missing_at = _missing_at(out_cycles, out_cnt, drain_cycles)

            if stop_at is not None and t >= stop_at:
                break
            if stop_at is None and (t >= missing_at or t + 1 >= max_cycles):
                # The stream whose next token was due first is missing: later than the
                # drain window, or not sent within the cycle limit.
                due, j = min(
                    (out_cycles[j][out_cnt[j]], j) for j in range(n_out) if out_cnt[j] < out_n[j]
                )
                idx = out_cnt[j]
                failure = (
                    f"MISSING stream {out_names[j]!r} token {idx}: expected payload "
                    f"{_hex(out_toks[j][idx])} at cycle {due}, not sent by cycle {t} "
                    f"(received {idx} of {out_n[j]} tokens)"
                )
                raise AssertionError(failure)
            t += 1
            await falling
    except BaseException as exc:
        if failure is None:
            failure = f"ERROR {type(exc).__name__}: {exc}"
        summary["status"] = "FAIL"
        summary["message"] = failure
        raise
    else:
        summary["status"] = "PASS"
        n_tok = sum(out_n)
        summary["message"] = f"PASS {n_tok} output tokens: bits and cycles match"
    finally:
        wall = time.perf_counter() - wall0
        summary["cycles_simulated"] = t + 1
        summary["last_output_cycle"] = last_out_cycle
        summary["tokens"] = {name: out_cnt[j] for j, name in enumerate(out_names)}
        summary["input_tokens_sent"] = {name: in_k[j] for j, name in enumerate(in_names)}
        summary["wall_seconds"] = round(wall, 6)
        summary["cycles_per_second"] = round((t + 1) / wall, 1) if wall > 0 else None
        _write_summary(summary)
        if summary["status"] != "PASS":
            log.error("%s", summary["message"])

    for j, name in enumerate(out_names):
        log.info("stream %r: %d output tokens match (bits and cycles)", name, out_cnt[j])
    for j, name in enumerate(in_names):
        if in_k[j] < in_n[j]:
            log.warning("input stream %r: only %d of %d tokens were consumed", name, in_k[j], in_n[j])
    log.info(
        "simulated %d cycles (last expected output cycle %d) in %.3f s: %.0f cycles/s",
        t + 1, last_expected, summary["wall_seconds"], summary["cycles_per_second"] or 0.0,
    )

#!/usr/bin/env python3
"""Per-module estimate vs Yosys synthesis, out of context.

Synthesizing a whole encoder takes too long, so this emits single template instances and
channels of a design, each as its own top module (``verilog.convert`` of the component, as
``hdl.emit`` does for the whole design), runs ``attnflow.targets.synthesize`` on each, one
at a time, and compares the counts with that node's row of ``attnflow.targets.estimate``
(LUT includes LUT RAM on both sides). On Lattice parts (``--device ecp5_85f``,
``ice40up5k``) synthesis only, no place and route.

Usage::

    .venv/bin/python benchmarks/synth_modules.py                       # encoder_tiny, u280
    .venv/bin/python benchmarks/synth_modules.py SPEC --device u280 --modules l0_act l0_up
    .venv/bin/python benchmarks/synth_modules.py --out DIR --timeout 900 --budget 3600

A name is a template instance (``l0_lin_q0``) or a channel (``l0_skip1``). A module that
runs past ``--timeout`` seconds is killed and reported as timed out; no new module starts
after ``--budget`` seconds. Progress goes to stderr; the Markdown table to stdout.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from amaranth.back import verilog

from attnflow.api import prepare
from attnflow.hdl.channel import Channel
from attnflow.hdl.templates import of_graph
from attnflow.targets import SynthError, estimate, load_device, synthesize
from attnflow.targets.estimate import producer_stages

DEFAULT_MODULES = ["l0_lin_q0", "l0_lin_out", "l0_lin_up", "l0_lin_down", "l0_qk0",
                   "l0_vstore0", "l0_softmax0", "l0_norm0", "l0_concat", "l0_res1", "l0_ln1",
                   "l0_act", "l0_fork_in", "l0_skip1", "l0_up", "l0_q0"]
RES = ("DSP", "LUT", "FF", "LUTRAM", "BRAM")


def module(hw, name):
    """(top module name, Amaranth component, estimate row name, template) of a node."""
    if name in hw.instances:
        inst = hw.instances[name]
        return name, of_graph(inst, hw), name, inst.template
    if name in hw.channels:
        c = hw.channels[name]
        # a pipelined producer's channel takes the reservation and the data ``stages``
        # cycles later, its register line that much shorter (as ``hdl.top`` builds it)
        return (f"ch_{name}", Channel(c.layout.width, c.depth, c.latency,
                                      producer_stages(hw, c)), f"ch_{name}", "channel")
    raise SystemExit(f"{name}: neither a template instance nor a channel of {hw.name}")


def est_counts(row) -> dict:
    return {"DSP": row.dsp, "LUT": row.lut + row.lutram, "FF": row.ff, "LUTRAM": row.lutram,
            "BRAM": row.bram}


def _n(x):
    return int(x) if float(x) == int(x) else round(x, 1)


def table(results) -> str:
    lines = ["| module | template | DSP est/meas | LUT est/meas (ratio) | FF est/meas | "
             "LUTRAM est/meas | BRAM est/meas | synth seconds |", "|---" * 8 + "|"]
    tot_e, tot_m, tot_s = dict.fromkeys(RES, 0), dict.fromkeys(RES, 0), 0.0
    for name, template, est, meas, status in results:
        if meas is None:
            lines.append(f"| {name} | {template} | {est['DSP']}/- | {est['LUT']}/- | "
                         f"{est['FF']}/- | {est['LUTRAM']}/- | {est['BRAM']}/- | {status} |")
            continue
        for r in RES:
            tot_e[r] += est[r]
            tot_m[r] += meas[r]
        tot_s += status
        lines.append(_line(name, template, est, meas, f"{status:.0f}"))
    lines.append(_line("**total (measured)**", "", tot_e, tot_m, f"{tot_s:.0f}"))
    return "\n".join(lines) + "\n"


def _line(name, template, e, m, secs) -> str:
    ratio = f"{e['LUT'] / m['LUT']:.2f}" if m["LUT"] else "-"
    cells = [f"{_n(e[r])}/{_n(m[r])}" for r in RES]
    cells[1] += f" ({ratio})"
    return f"| {name} | {template} | " + " | ".join(cells) + f" | {secs} |"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("spec", nargs="?", default="examples/encoder_tiny.yaml")
    ap.add_argument("--device", default="u280")
    ap.add_argument("--modules", nargs="+", default=DEFAULT_MODULES)
    ap.add_argument("--out", help="work folder (default: a new temporary folder, kept)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per module")
    ap.add_argument("--budget", type=float, default=3600,
                    help="start no module after this many seconds")
    ap.add_argument("--cells", action="store_true", help="also list each module's Yosys cells")
    args = ap.parse_args(argv)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    device = load_device(args.device)
    hw = prepare(args.spec).hw
    rows = {r.name: r for r in estimate(hw, device).rows}
    out = Path(args.out or tempfile.mkdtemp(prefix="synth_modules_"))
    start = time.monotonic()
    results, cells = [], {}
    for name in args.modules:
        top, comp, row, template = module(hw, name)
        est = est_counts(rows[row])
        if time.monotonic() - start > args.budget:
            results.append((name, template, est, None, "not run (budget)"))
            continue
        rtl = out / top / "rtl" / f"{top}.v"
        rtl.parent.mkdir(parents=True, exist_ok=True)
        rtl.write_text(verilog.convert(comp, name=top, emit_src=False))
        log(f"[{time.monotonic() - start:.0f} s] {name} ({template}) ...")
        try:
            res = synthesize(out / top, device, timeout=args.timeout, top=top, pnr=False,
                             progress=lambda m: log(f"  {m}"), every=60)
        except SynthError as e:
            status = "timed out" if "timed out" in str(e) else f"failed: {e}"
            results.append((name, template, est, None, status))
            log(f"  {status}")
            continue
        results.append((name, template, est, res.counts, res.yosys_seconds))
        cells[name] = res.cells
        log(f"  {res.summary()}")
    flow = {"xilinx": f"synth_xilinx -family {device.yosys_family}", "ecp5": "synth_ecp5",
            "ice40": "synth_ice40"}[device.flow]
    print(f"Estimate vs Yosys `{flow}` per module of `{hw.name}` on {device.name} "
          f"(out of context, one module per run; LUT includes LUT RAM). "
          f"Wall time {time.monotonic() - start:.0f} s.\n")
    print(table(results))
    if args.cells:
        for name, c in cells.items():
            print(f"- {name}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())

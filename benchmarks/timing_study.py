#!/usr/bin/env python3
"""Measured timing of the issue-12 designs: nextpnr Fmax and critical path on ECP5-85F,
logic depth on AMD UltraScale+ (Yosys ``synth_xilinx -family xcup``), BRAM estimate vs
Yosys.

Designs (``DESIGNS``): three one-head designs (online full N = 32 d = 8, window N = 32
w = 4 d = 8, causal N = 32 d = 8 with 2 lanes), built whole, and the window and causal
heads' templates (qk, vstore, softmax) on their own; and instances of
``examples/encoder_tiny.yaml`` emitted on their own, out of context (a linear, a
LayerNorm, a GELU for ECP5; one instance of every template plus a channel for the logic
depth). ECP5 runs use ``attnflow.targets.synthesize`` with nextpnr ``--out-of-context``
for all (the heads have more port bits than the package has pins, and one placement mode
keeps the rows comparable).

Usage::

    .venv/bin/python benchmarks/timing_study.py --out build/timing          # everything
    .venv/bin/python benchmarks/timing_study.py --only ecp5 --designs head_online
    .venv/bin/python benchmarks/timing_study.py --only ecp5 --primitives ecp5   # MULT18X18D
    .venv/bin/python benchmarks/timing_study.py --out build/timing --reuse --budget 7200
    .venv/bin/python benchmarks/timing_study.py --only ecp5 --primitives ecp5 --designs enc_l0_lin_q0

``--timeout`` (seconds) applies to each tool run (Yosys, nextpnr); a run past it is
killed and its row says so. No run starts after ``--budget`` seconds. ``--reuse`` takes a
run's ``result.json`` again when its Verilog is unchanged (to finish a study in several
sittings). Progress goes to stderr, the Markdown tables to stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import verilog

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth_modules import module as instance_module  # noqa: E402

from attnflow.api import prepare  # noqa: E402
from attnflow.build import build  # noqa: E402
from attnflow.hdl.pipeline import PRIMITIVE_KINDS, primitives  # noqa: E402
from attnflow.ir.spec import load_spec  # noqa: E402
from attnflow.targets import SynthError, estimate, load_device, synthesize  # noqa: E402
from attnflow.targets.hierarchy import Hierarchy  # noqa: E402
from attnflow.targets.logic_depth import end_label, read_logic_depth  # noqa: E402
from attnflow.targets.nextpnr_report import read_report  # noqa: E402
from attnflow.targets.synth import RESULT_FILE, read_result, rtl_digest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HEAD = ROOT / "examples" / "sdpa_online.yaml"
ENCODER = ROOT / "examples" / "encoder_tiny.yaml"


@dataclass(frozen=True)
class Design:
    key: str
    what: str
    spec: Path
    overrides: tuple = ()
    instance: str | None = None    # None: the whole design; else one node out of context


DESIGNS = [
    Design("head_online", "online full head N=32 d=8", HEAD,
           ("model.head_dim=8", "name=tim_online_n32_d8")),
    Design("head_window", "window head N=32 w=4 d=8", HEAD,
           ("model.head_dim=8", "model.attention.kind=window", "model.attention.window=4",
            "name=tim_window_n32_w4_d8")),
    Design("head_causal_l2", "causal head N=32 d=8, 2 lanes", HEAD,
           ("model.head_dim=8", "model.attention.kind=causal", "model.attention.lanes=2",
            "name=tim_causal_n32_d8_l2")),
    *(Design(f"window_{name}", f"window head N=32 w=4 d=8 {name}", HEAD,
             ("model.head_dim=8", "model.attention.kind=window", "model.attention.window=4",
              "name=tim_window_n32_w4_d8"), name) for name in ("qk", "vstore", "softmax")),
    *(Design(f"causal_l2_{name}", f"causal head N=32 d=8, 2 lanes {name}", HEAD,
             ("model.head_dim=8", "model.attention.kind=causal", "model.attention.lanes=2",
              "name=tim_causal_n32_d8_l2"), name) for name in ("qk", "vstore", "softmax")),
    *(Design(f"enc_{name}", f"encoder_tiny {name}", ENCODER, (), name)
      for name in ("l0_lin_q0", "l0_ln1", "l0_act", "l0_fork_in", "l0_qk0", "l0_vstore0",
                   "l0_softmax0", "l0_norm0", "l0_concat", "l0_res1", "l0_skip1")),
]
#: ECP5 place and route: the issue's list (three heads, a linear, a LayerNorm, a GELU)
ECP5 = ["head_online", "head_window", "head_causal_l2", "enc_l0_lin_q0", "enc_l0_ln1",
        "enc_l0_act", "window_qk", "window_vstore", "window_softmax", "causal_l2_qk",
        "causal_l2_vstore", "causal_l2_softmax"]
#: AMD logic depth and BRAM: every template of the tiny encoder and the three heads
XILINX = ["head_online", "head_window", "head_causal_l2",
          *(d.key for d in DESIGNS if d.instance)]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def emit(design: Design, root: Path, kind: str = "generic"):
    """Write the design's Verilog under ``root/<key>``, its products built as
    ``hdl.pipeline.primitives(kind)``; (folder, top, hw, estimate row name or None for the
    whole design, template)."""
    with primitives(kind):
        return _emit(design, root)


def _emit(design: Design, root: Path):
    folder = root / design.key
    spec = load_spec(design.spec, list(design.overrides))
    if design.instance is None:
        if not (folder / "rtl").is_dir():
            build(spec, folder, progress=lambda s: None)
        d = prepare(load_spec(folder / "spec.yaml"))
        return folder, d.hw.name, d.hw, None, "whole design"
    hw = prepare(spec).hw
    top, comp, row, template = instance_module(hw, design.instance)
    rtl = folder / "rtl" / f"{top}.v"
    if not rtl.is_file():
        rtl.parent.mkdir(parents=True, exist_ok=True)
        rtl.write_text(verilog.convert(comp, name=top, emit_src=False))
    return folder, top, hw, row, template


def reparse(data: dict, folder: Path, top: str) -> dict:
    """A reused result with its critical path and logic depth parsed again from the tool
    output kept beside it (so a reused run follows the current parsers)."""
    out = folder / "synth" / data["device"]
    hierarchy = Hierarchy.of_verilog(sorted((folder / "rtl").glob("*.v")), top,
                                     instances=(folder / "spec.yaml").is_file())
    if (out / "flat.json").is_file():
        data["logic_depth"] = read_logic_depth(out / "flat.json", top, hierarchy).to_json()
    if (out / "report.json").is_file():
        cp = read_report(out / "report.json", hierarchy).critical
        data["critical_path"] = cp.to_json() if cp else None
    return data


def run(design: Design, device: str, root: Path, args) -> dict:
    """One synthesis (reused when asked and the RTL is unchanged): a row dict."""
    kind = args.primitives if device == "ecp5_85f" else "generic"
    folder, top, hw, row, template = emit(design, root if kind == "generic" else root / kind,
                                          kind)
    dev = load_device(device)
    est = estimate(hw, dev)
    est_rows = [r for r in est.rows if row is None or r.name == row]
    row_out = {"key": design.key, "what": design.what, "template": template, "top": top,
               "est_BRAM": sum(r.bram for r in est_rows),
               "est_LUTRAM": sum(r.lutram for r in est_rows),
               "templates": {**{n: i.template for n, i in hw.instances.items()},
                             **{f"ch_{c}": "channel" for c in hw.channels}}}
    result_path = folder / "synth" / dev.name / RESULT_FILE
    digest = rtl_digest(sorted((folder / "rtl").glob("*.v")))
    if args.reuse and result_path.is_file():
        data = read_result(result_path)
        if data.get("rtl_sha256") == digest:
            log(f"  reused {result_path}")
            return row_out | {"status": "ok", "result": reparse(data, folder, top)}
    start = time.monotonic()
    try:
        synthesize(folder, dev, timeout=args.timeout, top=top, every=120,
                   out_of_context=True, progress=lambda m: log(f"  {m}"))
    except SynthError as e:
        status = "timed out" if "timed out" in str(e) else f"failed: {e}"
        log(f"  {status}")
        return row_out | {"status": status, "seconds": time.monotonic() - start}
    return row_out | {"status": "ok", "result": read_result(result_path)}


def _cp_end(end: dict) -> str:
    return f"{end['owner']}: `{end['signal']}`"


def ecp5_table(rows) -> str:
    lines = ["| design | placement | LUT4 | FF | MULT18X18D | Fmax (MHz) | critical path "
             "(ns, logic cells) | start | end | through | yosys + nextpnr (s) |",
             "|---" * 11 + "|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['what']} | - | - | - | - | {r['status']} | | | | | |")
            continue
        res, cp = r["result"], r["result"]["critical_path"]
        c = res["counts"]
        place = "out of context" if res["placement"].startswith("out of context") else "pinned"
        cp_cells = (f"{cp['delay_ns']:.1f} ({cp['logic_cells']})", _cp_end(cp["start"]),
                    _cp_end(cp["end"]), " -> ".join(cp["through"])) if cp else ("-",) * 4
        lines.append(f"| {r['what']} | {place} | {c['LUT']} | {c['FF']} | {c['DSP']} | "
                     f"**{res['fmax_mhz']:.2f}** | " + " | ".join(cp_cells) +
                     f" | {res['yosys_seconds']:.0f} + {res['pnr_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def depth_table(rows) -> str:
    lines = ["| design | template | owner | cells register to register | from | to |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['what']} | {r['template']} | | {r['status']} | | |")
            continue
        depth = r["result"]["logic_depth"]
        d = depth["design"]
        if r["template"] != "whole design":
            lines.append(f"| {r['what']} | {r['template']} | {r['top']} | **{d['cells']}** | "
                         f"`{d['start']}` | `{end_label(d)}` |")
            continue
        lines.append(f"| {r['what']} | whole design | (flattened) | **{d['cells']}** | "
                     f"`{d['start']}` | `{end_label(d)}` (through {' -> '.join(d['owners'])}) |")
        for owner, p in depth["owners"].items():
            lines.append(f"| | {r['templates'].get(owner, '')} | {owner} | {p['cells']} | "
                         f"`{p['start']}` | `{end_label(p)}` |")
    return "\n".join(lines) + "\n"


def bram_table(rows) -> str:
    lines = ["| design | BRAM est / meas | LUT RAM (LUTs) est / meas |", "|---|---|---|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['what']} | {r['est_BRAM']} / {r['status']} | |")
            continue
        c = r["result"]["counts"]
        lines.append(f"| {r['what']} | {r['est_BRAM']} / {c['BRAM']} | "
                     f"{r['est_LUTRAM']} / {c['LUTRAM']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="build/timing_study", help="work folder (kept)")
    ap.add_argument("--only", choices=("ecp5", "xilinx"), help="one flow only")
    ap.add_argument("--designs", nargs="+", help=f"keys of {', '.join(d.key for d in DESIGNS)}")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per tool run")
    ap.add_argument("--budget", type=float, default=6 * 3600,
                    help="start no run after this many seconds")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse a run's result.json when its Verilog is unchanged")
    ap.add_argument("--json", help="also write every row to this file")
    ap.add_argument("--primitives", choices=PRIMITIVE_KINDS, default="generic",
                    help="multipliers of the ECP5 runs: generic (Yosys' $mul mapping, the "
                         "verified Verilog) or ecp5 (MULT18X18D with its registers, "
                         "hdl.pipeline.primitives)")
    args = ap.parse_args(argv)
    known = {d.key: d for d in DESIGNS}
    for key in args.designs or ():
        if key not in known:
            ap.error(f"--designs: unknown {key!r}; known: {', '.join(known)}")
    root = Path(args.out)
    start, load = time.monotonic(), os.getloadavg()
    plan = [(dev, key) for dev, keys in (("u280", XILINX), ("ecp5_85f", ECP5))
            if args.only in (None, "ecp5" if dev == "ecp5_85f" else "xilinx")
            for key in keys if not args.designs or key in args.designs]
    rows = {"ecp5_85f": [], "u280": []}
    for dev, key in plan:
        if time.monotonic() - start > args.budget:
            rows[dev].append({"key": key, "what": known[key].what, "template": "",
                              "status": "not run (budget)", "est_BRAM": "-"})
            continue
        log(f"[{time.monotonic() - start:.0f} s, load {os.getloadavg()[0]:.1f}] {key} on {dev}")
        rows[dev].append(run(known[key], dev, root / dev, args))
    wall = time.monotonic() - start
    print(f"Timing study, {time.strftime('%Y-%m-%d')}: wall {wall:.0f} s; load average "
          f"{load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (2 cores).\n")
    if rows["ecp5_85f"]:
        print("nextpnr-ecp5 on ECP5-85F (LFE5U-85F-6BG381C), --freq 50, seed 1, out of "
              "context:\n")
        print(ecp5_table(rows["ecp5_85f"]))
    if rows["u280"]:
        print("Logic depth, Yosys `synth_xilinx -family xcup` (cells on the longest path "
              "register to register; per owner its own paths, ports as starts):\n")
        print(depth_table(rows["u280"]))
        print("BRAM (RAMB36 equivalents) and LUT RAM, estimate vs `synth_xilinx`:\n")
        print(bram_table(rows["u280"]))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

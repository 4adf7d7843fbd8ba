"""The build flow: spec -> simulation -> Verilog -> testbench -> report.md, report.html,
sim.json and channels.vcd."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import yaml

from .accounting import apply as apply_accounting, pace
from .api import Design, prepare_for, resolved_spec
from .hdl.axis import axis_name, axis_ports, registers as axis_registers
from .hdl.emit import emit_axis_wrapper, emit_verilog, write_rtl
from .hdl.testbench import write_testbench
from .ir.spec import ScheduleSpec, spec_to_dict
from .report_html import bottleneck, write_html_report
from .sim import SimResult
from .sim.vcd import write_vcd

#: stall pattern used by ``verify --stall-seed`` when the spec has none
DEFAULT_STALLS = dict(input_gap_prob=0.3, input_gap_max=3, output_ready_prob=0.7)


def row_period(hw) -> int:
    """Cycles per output token of the slowest template at full rate (its firings per
    token row, rounded down), from the templates' row count ``N`` param: W for a window
    head (a causal head's blocked triangle: its groups per row on average), the slowest
    folded stage's F for an encoder; 1 when the templates carry no
    row count (a full attention head's, whose default stalls stay the original ones)."""
    n = {i.param("N") for i in hw.instances.values() if i.param("N")}
    if len(n) != 1:
        return 1
    return max(1, max(i.contract.fires_per_sequence for i in hw.instances.values()) // n.pop())


def stall_schedule(spec, seed: int, period: int = 1) -> ScheduleSpec:
    """The stall pattern of ``verify --stall-seed``: the spec's own if it has stalls, else
    :data:`DEFAULT_STALLS` scaled to a design whose tokens leave every ``period`` cycles
    (gaps of up to period / 2 cycles, output ready 0.5 / period of the cycles, so output
    backpressure outlasts a period and reaches inside the pipeline)."""
    s = spec.schedule
    if s.has_stalls:
        return dataclasses.replace(s, seed=seed)
    if period <= 1:
        return ScheduleSpec(seed=seed, **DEFAULT_STALLS)
    return ScheduleSpec(seed=seed, input_gap_prob=DEFAULT_STALLS["input_gap_prob"],
                        input_gap_max=max(3, period // 2),
                        output_ready_prob=min(0.7, 0.5 / period))


def check_golden(design: Design, result: SimResult) -> int:
    """Number of output elements where the simulator differs from the golden model."""
    got = result.outputs[design.hw.outputs[0]]["x"]
    return int(np.count_nonzero(got != design.golden_run()))


def vectors(result: SimResult) -> dict:
    """The testbench's stimulus and expectations: exactly what the simulator saw and did
    (any HwGraph: the inputs, gaps, outputs, output cycles and ready pattern of the run)."""
    hw = result.hw
    total = result.total_cycles
    vec = {"top": hw.name, "clock_period_ns": 10,
           "max_cycles": total + 64 + total // 8, "inputs": [], "outputs": []}
    for name in hw.inputs:
        words = hw.channels[name].layout.pack(result.values[name])
        vec["inputs"].append({"name": name, "tokens": [str(w) for w in words],
                              "gaps": list(result.schedule.gaps[name])})
    for name in hw.outputs:
        words = hw.channels[name].layout.pack(result.values[name])
        vec["outputs"].append({"name": name, "tokens": [str(w) for w in words],
                               "cycles": list(result.output_cycles[name]),
                               "ready": result.schedule.ready[name].as_string(total)})
    return vec


def axis_vectors(vec: dict, hw) -> dict:
    """``vec`` (see :func:`vectors`) driven and checked at the AXI4-Stream wrapper's ports
    (``hdl.axis``): the same tokens, gaps, ready pattern and cycles, plus ``tlast`` (driven
    on inputs, checked on outputs, every ``per_sequence`` tokens)."""
    ports = axis_ports(hw)
    out = dict(vec, top=axis_name(hw.name),
               axil={name: addr for addr, name, _ in axis_registers(hw)})
    for key in ("inputs", "outputs"):
        out[key] = [dict(s, ports=ports[s["name"]]) for s in vec[key]]
    return out


def node_costs(hw) -> dict:
    """name -> {multipliers, memory_bits} per template instance and channel (multipliers:
    variable products, not constant or shift ones; memory bits: ROMs, RAMs, FIFO storage),
    from the resource models of ``targets.estimate``."""
    from .targets.estimate import channel_model, template_models
    out = {}
    models = template_models(hw)
    for name in hw.instances:
        m = models[name]
        out[name] = {"multipliers": sum(x.count for x in m.mults if x.const is None),
                     "memory_bits": sum(x.bits for x in m.mems)}
    for name, c in hw.channels.items():
        m = channel_model(c)
        out[name] = {"multipliers": 0, "memory_bits": sum(x.bits for x in m.mems)}
    return out


def _model_fields(design) -> dict:
    """What the summary says about the model and the cycles to expect: the design's
    kind (``attnflow.kinds``) says it."""
    return design.kind.fields(design)


def _encoder_fields(design) -> dict:
    """The summary's model fields of an encoder/decoder stack: the model, the folding
    table and the stack's cycle model (the layer kind's words: ``STACK_HEADS``)."""
    from .mappers.encoder import STACK_HEADS
    m = design.spec.model
    fold = design.folding
    heads = STACK_HEADS[m.attention.kind]
    weights = _weights_text(m.weights)
    return {"kind": "encoder", "attention": m.attention.kind, "seq_len": m.seq_len,
            "layers": m.layers, "d_model": m.d_model, "heads": m.heads, "d_ff": m.d_ff,
            "weights": weights,
            "model_text": f"{heads.what(m.attention)}, {m.layers} layer(s) "
                          f"({m.norm_position}-norm "
                          f"{m.norm}{', final norm' if m.final_norm else ''}, "
                          f"{m.activation}), N = {m.seq_len}, d_model = "
                          f"{m.d_model}, {m.heads} heads of {m.d_head}, d_ff = {m.d_ff}, "
                          f"{weights}",
            "folding": {"mode": fold.mode, "period": fold.period, "lanes": fold.lanes,
                        "text": fold.describe(),
                        "linears": _folding_table(m, fold)},
            "expected_cycles": fold.cycles,
            "expected_text": "cycle model mappers.folding.stack_cycles" + heads.cycles_note
                             + (" measured on the simulator: the model is a lower bound "
                                "for Q/K/V folded differently"
                                if fold.cycles_source == "simulator" else "")}


def _folding_table(m, fold) -> list:
    """One row per linear of every layer: dims, PE x SIMD, firings, who chose it."""
    from .ir.spec import HEAD_OPS
    from .mappers.folding import fires
    rows = []
    for i, fl in enumerate(fold.foldings):
        for op, (pe, simd) in fl.items():
            mm, kk = m.fold_dims(op)
            rows.append({"layer": i, "op": op, "instances": m.heads if op in HEAD_OPS
                         else 1, "M": mm, "K": kk, "pe": pe, "simd": simd,
                         "fires_per_token": fires(m, op, (pe, simd)),
                         "chosen": "auto" if (i, op) in fold.auto_ops else "spec"})
    return rows


def _weights_text(w) -> str:
    return (f"random weights (seed {w.seed})" if w.source == "random" else
            f"weights from {os.path.basename(w.path)}"
            + (f" ({w.naming} names)" if w.naming != "attnflow" else ""))


def design_notes(spec) -> list[str]:
    """Things the design builds as asked but that a better spec would avoid (one line
    each, in report.md and on ``attnflow sim``)."""
    from .ir.window import effective_window, row_slots
    notes = []
    m = spec.model
    a = m.attention
    if a.kind == "window" and a.window is not None:
        n = m.seq_len
        slots = row_slots(n, "window", a.window)
        if slots > n:
            notes.append(f"model.attention.window: {a.window} gives rows of 2w'+1 = {slots} "
                         f"slots (w' = {effective_window(a.window, n)}) for N = {n} keys, so "
                         f"each row takes more cycles than full attention's {n}; use window "
                         f"<= {(n - 1) // 2} (rows of at most N slots) or kind: full")
    if m.type == "encoder" and m.weights.source == "file" and m.weights.naming == "onnx":
        from .ir.onnx_frontend import recognise, skipped_lines
        notes += [f"{os.path.basename(m.weights.path)}: {line}"
                  for line in skipped_lines(recognise(m.weights.path, m.seq_len))]
    return notes


def input_notes(design) -> list[str]:
    """A note when real input values lie beyond a calibrated input format (they
    saturate, like every calibrated tensor's outliers)."""
    from .ir.user_inputs import calibrated, saturated_inputs
    if not design.kind.stack or not calibrated(design.spec):
        return []
    fmt = design.graph.node("x")["type"].fmt
    n = saturated_inputs(design.spec, fmt)
    if not n:
        return []
    return [f"inputs.file: {n} of the {design.x.size} input values lie beyond the "
            f"calibrated input format {fmt} [{fmt.min_value:g}, {fmt.max_value:g}] and "
            f"saturate; calibrate on inputs like them (calibration.file) or raise "
            f"calibration.headroom"]


def weight_notes(design) -> list[str]:
    """A note when more than 1 % of an encoder's float weights lie outside their stored
    format and are clipped (the design is built as asked; its accuracy says the rest)."""
    if not design.kind.stack:
        return []
    clipped = total = 0
    fmts = set()
    for plan in design.plans:
        for q in plan.lin.values():
            f = q.numerics.w
            if q.numerics.w_scales is not None:    # scaled from the weights: none clipped
                continue
            w = np.asarray(q.w_float)
            out = int(np.count_nonzero((w > f.max_value) | (w < f.min_value)))
            clipped, total = clipped + out, total + w.size
            if out:
                fmts.add(f"s{f.bits}.{f.frac} [{f.min_value:g}, {f.max_value:g}]")
    if not total or clipped * 100 <= total:
        return []
    return [f"model.weights: {100 * clipped / total:.1f} % of the {total} weights lie outside "
            f"their format ({', '.join(sorted(fmts))}) and are clipped; scale the weights or "
            f"widen formats.weight"]


def sim_summary(design, result: SimResult) -> dict:
    spec = design.spec
    clock = spec.hardware.clock_mhz
    total = result.total_cycles
    out = {"design": spec.name, **_model_fields(design),
           "schedule": dataclasses.asdict(design.spec.schedule),
           "notes": design_notes(spec) + weight_notes(design) + input_notes(design),
           "deadlock": result.deadlock.describe() if result.deadlock else None,
           "total_cycles": total, "clock_mhz": clock, **pace({}, total, clock)}
    costs = node_costs(design.hw)
    out["multipliers"] = sum(c["multipliers"] for c in costs.values())
    out["memory_bits"] = sum(c["memory_bits"] for c in costs.values())
    out["output_cycles"] = result.output_cycles
    out["channels"] = [dataclasses.asdict(c) | {"why": design.hw.depth_notes.get(c.name, ""),
                                                "memory_bits": costs[c.name]["memory_bits"]}
                       for c in result.channel_stats()]
    out["processes"] = [dataclasses.asdict(p) | costs.get(p.name, {})
                        for p in result.process_stats()]
    b = bottleneck(out, result)
    if b and total:
        b["cycles_over_bound"] = total / b["busy"]
    out["bottleneck"] = b
    if design.sequences > 1 and not result.deadlock:
        out.update(sequence_fields(design, result, out))
        out.update(pace(out, total, clock))
    if not result.deadlock:
        out["golden_mismatches"] = check_golden(design, result)
        out["accuracy"] = design.accuracy()
        if design.kind.stack:
            out["quantization"] = quantization_fields(design)
    return out


def sequence_text(summary: dict) -> str | None:
    """One line on a back-to-back run (``sequence_fields``), or None for one sequence."""
    q = summary.get("sequences")
    if not q:
        return None
    return (f"{q['count']} sequences back to back: the first ends in cycle {q['ends'][0]}, "
            f"then one every {q['interval']} cycles (II; model {q['interval_model']}: "
            f"{q['interval_text']}); latency per sequence {q['latencies'][0]} (first) .. "
            f"{q['latencies'][-1]} (last) cycles, first input to last output")


def sequence_fields(design, result: SimResult, summary: dict) -> dict:
    """A design running several sequences back to back (``mappers.sequences``): each
    sequence's last output cycle and latency (its first input token taken to its last
    output token, inclusive), the steady-state interval (II) simulated and modelled, and
    the cycle model of the whole run: one sequence's, plus (S - 1) x II."""
    from .mappers.sequences import interval_model, sequence_ends, sequence_starts
    hw, S = design.hw, design.sequences
    ends = sequence_ends(hw, result.output_cycles)
    starts = sequence_starts(hw, result.timing)
    ii, node = interval_model(hw)
    one = summary.get("expected_cycles")
    seq = {"count": S, "ends": ends.tolist(), "starts": starts.tolist(),
           "latencies": (ends - starts + 1).tolist(),
           "interval": int(ends[-1] - ends[-2]), "intervals": np.diff(ends).tolist(),
           "interval_model": ii, "interval_node": node,
           "interval_text": f"{node}'s {hw.instances[node].contract.fires_per_sequence} "
                            f"firings per sequence x ii {hw.instances[node].contract.ii}"}
    out = {"sequences": seq}
    if one is not None:
        out["expected_cycles"] = one + (S - 1) * ii
        out["expected_text"] = (f"{summary['expected_text']}, for the first sequence; then "
                                f"{S - 1} x II {ii} ({seq['interval_text']})")
    return out


#: tensors listed in the report's table of the error each tensor adds
LOSS_ROWS = 12


def quantization_fields(design) -> dict:
    """A stack's quantization: the modes, every tensor's format and how it was chosen."""
    q, fm = design.spec.quantization, design.graph.g.graph.get("formats")
    out = {"weights": q.weights, "activations": q.activations, "weight_bits":
           design.spec.formats.weight.bits}
    if fm is not None:
        out["formats"] = [{"tensor": n, "format": str(f), "source": fm.source(n)}
                          for n, f in fm.formats]
    return out


def loss_text(acc: dict, count: int = 3) -> str:
    """'l1.attn_q (s8.7) adds 1.64 % relative error, then ...' (``accuracy['worst']``)."""
    worst = [w for w in acc.get("worst", ()) if w["added"] > 0][:count]
    if not worst:
        return ""
    first, rest = worst[0], worst[1:]
    text = (f"{first['tensor']} ({first['format']}) adds {100 * first['added']:.3g} % "
            f"relative error")
    if rest:
        text += "; then " + ", ".join(f"{w['tensor']} {100 * w['added']:.3g} %" for w in rest)
    return text


def quantization_md(s: dict) -> list[str]:
    q, acc = s.get("quantization"), s.get("accuracy") or {}
    if not q or "tensors" not in acc:
        return []
    lines = ["", "## Quantization", "",
             f"- weights: {q['weights']} ({q['weight_bits']}-bit integers"
             + (", a step per output channel" if q["weights"] == "per_channel" else
                ", one step per tensor" if q["weights"] == "per_tensor" else
                ", formats.weight") + f"); activations: {q['activations']}",
             f"- most loss: {loss_text(acc)}", "",
             "Error each tensor adds (its integer value against its op's float semantics "
             "on the op's integer inputs, relative RMS), the largest first:", "",
             "| tensor | format | chosen | adds |", "|---|---|---|---|"]
    source = {f["tensor"]: f["source"] for f in q.get("formats", ())}
    for t in sorted(acc["tensors"], key=lambda t: -t["added"])[:LOSS_ROWS]:
        key = t["tensor"].rsplit(".", 1)[-1] if t["tensor"].endswith(
            ("attn_q", "attn_k", "attn_v")) else t["tensor"]
        key = {"attn_q": "q", "attn_k": "k", "attn_v": "v"}.get(key, key)
        lines.append(f"| {t['tensor']} | {t['format']} | {source.get(key, 'fixed')} | "
                     f"{100 * t['added']:.3g} % |")
    return lines


def resources_summary(design: Design, result: SimResult, target) -> tuple[dict, str]:
    """Estimate and fit check on a target device: (summary entry, Markdown section)."""
    from .report_extras import resource_rows, resource_totals_md
    from .targets import estimate, fit, load_device
    device = load_device(target)
    est = estimate(design.hw, device)
    over = fit(est)
    cycles = result.total_cycles
    entry = {
        "device": device.name, "part": device.part, "clock_mhz": device.clock_mhz,
        "fits": not over, "overflows": [str(o) for o in over],
        "latency_us_at_device_clock": cycles / device.clock_mhz if cycles else None,
        "sequences_per_second_at_device_clock":
            device.clock_mhz * 1e6 / cycles if cycles else None,
        "rows": resource_rows(est, device),
    }
    md = ["", "## Resources", "", *resource_totals_md(entry["rows"]), "",
          est.table().rstrip("\n"), ""]
    md.append(f"Fit on {device.name} ({device.part}): " +
              ("fits." if not over else "DOES NOT FIT: " + "; ".join(entry["overflows"])))
    if cycles:
        md.append(f"At the device's planning clock {device.clock_mhz:g} MHz: "
                  f"{entry['latency_us_at_device_clock']:.3f} us per sequence, "
                  f"{entry['sequences_per_second_at_device_clock']:.0f} sequences/s.")
    return entry, "\n".join(md) + "\n"


def report_md(summary: dict) -> str:
    from .accounting import clock_label, report_md_summary
    from .report_extras import schedule_text
    s = summary
    lines = [f"# attnflow build report: {s['design']}", "",
             f"- model: {s['model_text']}"]
    lines += [f"- note: {t}" for t in s.get("notes", ())]
    lines += [f"- schedule: seed {s['schedule']['seed']}, {schedule_text(s['schedule'])}"]
    if s["deadlock"]:
        lines += ["", f"**DEADLOCK**: {s['deadlock']}", ""]
    else:
        acc = s["accuracy"]
        lines += [
            f"- total cycles (reset to last output): **{s['total_cycles']}** "
            f"(expected {s['expected_cycles']}: {s['expected_text']})",
            f"- latency{' of the first sequence' if 'sequences' in s else ''} at "
            f"{s['clock_mhz']:g} MHz{clock_label(s)}: "
            f"{s['latency_us']:.3f} us, "
            f"{s['sequences_per_second']:.0f} sequences/s"
            + (" (one sequence at a time)" if "sequences" not in s else " (at the II)"),
            *([f"- {sequence_text(s)}"] if "sequences" in s else []),
            f"- simulator vs golden model: {s['golden_mismatches']} mismatching output elements",
            f"- integer vs float model: max abs error {acc['max_abs_error']:.3g} "
            f"(output LSB {acc['out_lsb']:.3g}), cosine similarity {acc['cosine']:.6f}",
        ]
        b = s["bottleneck"]
        if b and "costs" not in s:
            lines.append(f"- bottleneck (busiest node): {b['name']} ({b['template']}), busy "
                         f"{b['busy']} cycles; total / bottleneck = "
                         f"{b['cycles_over_bound']:.2f}")
    if "costs" in s:
        lines += report_md_summary(s)
    else:
        lines.append(f"- multipliers (variable products of every template, from the "
                     f"resource models): {s['multipliers']}; memory: {s['memory_bits']} "
                     f"bits (ROMs, RAMs and FIFO storage)")
    from .report_graph import graph_md
    lines += graph_md(s)
    if s["kind"] == "encoder":
        f = s["folding"]
        lines += ["", "## Folding", "", f["text"], "",
                  "| layer | op | instances | M x K | PE | SIMD | firings per token | chosen |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in f["linears"]:
            lines.append(f"| {r['layer']} | {r['op']} | {r['instances']} | {r['M']} x {r['K']} "
                         f"| {r['pe']} | {r['simd']} | {r['fires_per_token']} | {r['chosen']} |")
        if not s["deadlock"] and "layers" in s["accuracy"]:
            lines += ["", "## Accuracy per layer (integer stack vs float stack)", "",
                      "| layer | max abs error | cosine | max abs float value |",
                      "|---|---|---|---|"]
            for a in s["accuracy"]["layers"]:
                lines.append(f"| {a['layer']} | {a['max_abs_error']:.4g} | {a['cosine']:.6f} | "
                             f"{a['max_abs_float']:.4g} |")
        if not s["deadlock"]:
            lines += quantization_md(s)
    lines += ["", "## Channels", "",
              "| channel | depth | latency | tokens | max occupancy | producer stalled (full) | "
              "consumer stalled (empty) | memory bits | depth chosen as | token |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for c in s["channels"]:
        lines.append(f"| {c['name']} | {c['depth']} | {c['latency']} | {c['tokens']} | "
                     f"{c['max_occupancy']} | {c['full_stall']} | {c['empty_stall']} | "
                     f"{c['memory_bits']} | {c['why']} | {c.get('token', '')} |")
    lines += ["", "## Processes", "",
              "| process | template | firings | first | last | starved | blocked | "
              "multipliers | memory bits (ROM + RAM) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for p in s["processes"]:
        lines.append(f"| {p['name']} | {p['template']} | {p['fires']} | {p['first']} | "
                     f"{p['last']} | {p['starved']} | {p['blocked']} | {p.get('multipliers', '')} | "
                     f"{p.get('memory_bits', '')} |")
    return "\n".join(lines) + "\n"


def write_json(path: Path, data):
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")


def write_reports(design, result, out: Path, target=None, measured=None) -> dict:
    """sim.json, report.md (up to the RTL section) and report.html of a simulated design;
    ``measured``: a measured Fmax for the report's one clock (``accounting.clock``).
    Returns the summary."""
    summary = sim_summary(design, result)
    apply_accounting(summary, design, result, target, measured)   # one clock, one accounting
    section = ""
    if target is not None:
        summary["resources"], section = resources_summary(design, result, target)
    from .report_graph import write_graph
    graph_png = write_graph(design.hw, summary, out)
    write_json(out / "sim.json", summary)
    (out / "report.md").write_text(report_md(summary) + section)
    write_html_report(summary, result, out, resources=summary.get("resources"),
                      graph_png=graph_png)
    return summary


def refresh_clock(out_dir, design, measured: dict) -> dict:
    """Rewrite a build folder's sim.json and reports with a measured clock (after
    ``attnflow synth``): the design is simulated again (deterministic: the same cycles),
    the build's target, if it was a bundled device, and ``attnflow verify``'s verdicts
    kept. Returns the summary."""
    from .report_extras import rtl_section_md
    from .targets import DeviceError, load_device
    from .verify_record import md_section, record_verdict
    out = Path(out_dir)
    old = json.loads((out / "sim.json").read_text()) if (out / "sim.json").is_file() else {}
    target = (old.get("resources") or {}).get("device")
    if target is not None:
        try:
            load_device(target)
        except DeviceError:
            target = None   # a device file the folder does not record: no resource section
    result = design.simulate()
    summary = write_reports(design, result, out, target, measured)
    if any((out / "rtl").glob("*.v")):
        with open(out / "report.md", "a") as f:
            f.write(rtl_section_md(design.hw) + md_section([]))
    verdicts = old.get("verification") or []
    for entry in verdicts:                         # attnflow verify's verdicts stay
        record_verdict(out, entry)
    if verdicts:
        summary["verification"] = verdicts         # as record_verdict wrote them to sim.json
    return summary


def build(spec, out_dir, progress=print, target=None,
          limits=None) -> tuple[Design, SimResult, dict]:
    """Everything ``attnflow build`` writes. Returns (design, result, summary).
    ``target``: a device name or file: adds the resource estimate and fit check.
    ``limits``: an ``attnflow.limits.Limits`` (memory and cycle budget) to build within."""
    from . import limits as guards
    out = Path(out_dir)
    design = prepare_for(spec, target)   # a bad target fails before anything is written
    if limits is not None:
        guards.check_design(design, limits, build=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.yaml").write_text(yaml.safe_dump(spec_to_dict(resolved_spec(design)),
                                                  sort_keys=False))
    progress(f"mapped: {len(design.hw.instances)} templates, {len(design.hw.channels)} channels")
    if design.kind.stack:
        progress(design.folding.describe())
    result = design.simulate() if limits is None else guards.simulate(design, limits)
    summary = write_reports(design, result, out, target)
    if target is not None:
        for line in summary["resources"]["overflows"]:
            progress(f"does not fit: {line}")
    write_vcd(result, out / "channels.vcd", clock_mhz=design.spec.hardware.clock_mhz)
    if result.deadlock:
        progress(result.deadlock.describe())
        return design, result, summary
    progress(f"simulated: {result.total_cycles} cycles, "
             f"{summary['golden_mismatches']} mismatches against the golden model")
    progress(f"writing Verilog ({len(design.hw.instances)} templates; tens of seconds for "
             f"an encoder) ...")
    from .heartbeat import heartbeat
    with heartbeat(progress, "writing Verilog"):
        rtl = write_rtl(emit_verilog(design.hw), out / "rtl" / f"{design.hw.name}.v")
        rtl.append(out / "rtl" / f"{axis_name(design.hw.name)}.v")
        emit_axis_wrapper(design.hw, rtl[-1])
    write_testbench(out, vectors(result))
    from .accounting import clock
    from .export import write_export
    from .targets import load_device
    write_export(out, design.hw.name, clock(design.spec, target),
                 load_device(target) if target is not None else None, files=rtl)
    from .report_extras import rtl_section_md
    from .verify_record import md_section
    with open(out / "report.md", "a") as f:
        f.write(rtl_section_md(design.hw) + md_section([]))
    progress(f"wrote {out / 'rtl' / (design.hw.name + '.v')} and testbench {out / 'run_tb.py'}")
    return design, result, summary

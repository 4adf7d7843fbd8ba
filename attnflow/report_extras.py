"""Pieces of report.md / report.html that read the accounting (``attnflow.accounting``),
the RTL's ports and the channel widths: the cost rows of the summary, the resources
entry with labels instead of raw keys, the RTL section and the channel token widths."""
from __future__ import annotations

import html

from .accounting import dsp_text, fit_text, memory_text, product_text

#: label of each scalar of ``build.resources_summary``'s entry (None: not shown)
RESOURCE_LABELS = {
    "device": "device", "part": "part", "clock_mhz": "planning clock (MHz)",
    "fits": "fits", "overflows": "overflows",
    "latency_us_at_device_clock": "latency at the planning clock (us)",
    "sequences_per_second_at_device_clock": "sequences/s at the planning clock",
}


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def schedule_text(schedule) -> str:
    """A stall pattern in words: a ``ScheduleSpec`` or its dict (sim.json's
    ``schedule``)."""
    from .ir.spec import ScheduleSpec
    s = ScheduleSpec(**schedule) if isinstance(schedule, dict) else schedule
    if not s.has_stalls:
        return "no stalls"
    return (f"input gap prob {s.input_gap_prob:g} (gaps of 1..{s.input_gap_max} cycles), "
            f"output ready prob {s.output_ready_prob:g}")


def cost_rows(s: dict) -> list[tuple[str, str]]:
    """(label, HTML) rows of the summary: products, DSP, memory, fit."""
    costs = s["costs"]
    rows = [("multipliers", _e(product_text(costs)))]
    d = dsp_text(costs)
    if d:
        rows.append(("DSP blocks", _e(d)))
    rows.append(("memory", _e(memory_text(costs))))
    res = s.get("resources")
    cls = "" if not res else ' class="ok"' if res["fits"] else ' class="bad"'
    rows.append(("fit", f"<span{cls}>{_e(fit_text(s))}</span>"))
    return rows


def resource_rows(est, device) -> list[dict]:
    """One row per resource of the estimate: {resource, estimate, measured, ratio,
    budget} (budget: what the device has; LUT includes LUT RAM, as the fit check counts)."""
    from .targets.estimate import capacity
    need, have = est.totals, capacity(device)
    return [{"resource": r, "estimate": need.get(r, 0), "measured": None, "ratio": None,
             "budget": have.get(r)} for r in need]


def resource_totals_md(rows: list[dict]) -> list[str]:
    """The estimate against the device, as report.md and ``attnflow resources`` print it."""
    out = ["| resource | estimate | device has | used |", "|---|---|---|---|"]
    for r in rows:
        have = r["budget"]
        used = f"{100 * r['estimate'] / have:.1f}%" if have else "-"
        out.append(f"| {r['resource']} | {r['estimate']} | "
                   f"{have if have is not None else '-'} | {used} |")
    return out + ["", "LUT counts LUT RAM too (as the fit check does); the node table below "
                      "splits them (LUT RAM, LUT (logic))."]


def resources_kv(entry: dict) -> list[tuple[str, object]]:
    """The resources entry's scalars with labels; the overflows joined (or "none")."""
    out = []
    for key, value in entry.items():
        label = RESOURCE_LABELS.get(key, key.replace("_", " "))
        if key == "overflows":
            value = "; ".join(value) if value else "none"
        if isinstance(value, float) and key.startswith("latency"):
            value = f"{value:.3f}"
        elif isinstance(value, float) and key.startswith("sequences"):
            value = f"{value:.0f}"
        out.append((label, value))
    return out


def token_text(layout) -> str:
    """``128 bits: 16 x s8`` (fields named when there are several)."""
    fields = [f"{f.count} x {'s' if f.signed else 'u'}{f.bits}" for f in layout.fields]
    if len(layout.fields) > 1:
        fields = [f"{f.name} {t}" for f, t in zip(layout.fields, fields)]
    return f"{layout.width} bits: {' | '.join(fields)}"


def add_token_widths(summary: dict, hw) -> None:
    """Each summary channel gets ``token_bits`` and ``token`` (its layout)."""
    for c in summary["channels"]:
        ch = hw.channels.get(c["name"])
        if ch is not None:
            c["token_bits"] = ch.layout.width
            c["token"] = token_text(ch.layout)


def packing_text(layout, stream: str = "") -> str:
    """Where each element sits in the payload (a one-field token's elements are named
    after its ``stream``)."""
    out, offset = [], 0
    for f in layout.fields:
        name = stream if stream and len(layout.fields) == 1 else f.name
        kind = "two's complement" if f.signed else "unsigned"
        if f.count == 1:
            out.append(f"{name}: bits {offset + f.bits - 1}..{offset} ({kind})")
        else:
            base = f"{offset} + " if offset else ""
            out.append(f"{name}[j]: bits {base}{f.bits}j + {f.bits - 1} .. {base}{f.bits}j, "
                       f"j = 0..{f.count - 1} (element 0 lowest, {kind})")
        offset += f.width
    return "; ".join(out)


def rtl_ports(hw) -> list[dict]:
    """The top module's ports: {name, direction, width, stream, packing}."""
    ports = [{"name": "clk", "direction": "input", "width": 1, "stream": "",
              "packing": "clock, rising edge"},
             {"name": "rst", "direction": "input", "width": 1, "stream": "",
              "packing": "synchronous reset, active high"}]
    for names, into in ((hw.inputs, True), (hw.outputs, False)):
        for s in names:
            layout = hw.channels[s].layout
            d_in, d_out = ("input", "output") if into else ("output", "input")
            ports += [
                {"name": f"{s}__payload", "direction": d_in, "width": layout.width,
                 "stream": s, "packing": packing_text(layout, s)},
                {"name": f"{s}__valid", "direction": d_in, "width": 1, "stream": s,
                 "packing": "token offered"},
                {"name": f"{s}__ready", "direction": d_out, "width": 1, "stream": s,
                 "packing": "token accepted (moves when valid and ready are high)"}]
    return ports


def rtl_files(hw) -> list[tuple[str, str]]:
    from .hdl.axis import axis_name
    from .export import FILE_LIST, TCL_SCRIPT
    return [(f"rtl/{hw.name}.v", "the Verilog of the whole design (one module tree)"),
            ("rtl/*.hex", "initialised memories (weights, tables), read by $readmemh"),
            (f"rtl/{axis_name(hw.name)}.v", f"module {axis_name(hw.name)}: the same ports as "
             "AXI4-Stream (s_axis_*/m_axis_* tdata/tvalid/tready/tlast; "
             "attnflow verify --axis)"),
            (FILE_LIST, "the HDL file list (verilator -F)"),
            (f"{hw.name}.core", "FuseSoC core"),
            (f"constraints/{hw.name}.xdc, .sdc", "the clock constraint"),
            (TCL_SCRIPT, "Vivado: package as IP"),
            ("run_tb.py", "the testbench runner: python run_tb.py"),
            ("tb/cocotb_test.py", "the cocotb test"),
            ("tb/vectors.json", "stimulus, expected tokens and output cycles")]


def rtl_section_md(hw) -> str:
    lines = ["", "## RTL", "", f"Top module `{hw.name}`; one token per row, streams "
             "valid/ready (AXI-Stream style), payload element 0 in the lowest bits "
             "(README: payload packing).", "",
             "| port | direction | width | meaning / packing |", "|---|---|---|---|"]
    for p in rtl_ports(hw):
        lines.append(f"| {p['name']} | {p['direction']} | {p['width']} | {p['packing']} |")
    lines += ["", "Files:", ""] + [f"- `{f}`: {what}" for f, what in rtl_files(hw)]
    return "\n".join(lines) + "\n"


def rtl_section_html(hw) -> str:
    """The RTL section of report.html."""
    rows = "".join(f"<tr><td class=l><code>{_e(p['name'])}</code></td><td class=l>"
                   f"{p['direction']}</td><td>{p['width']}</td><td class=l>"
                   f"{_e(p['packing'])}</td></tr>" for p in rtl_ports(hw))
    files = "".join(f"<li><code>{_e(f)}</code>: {_e(w)}</li>" for f, w in rtl_files(hw))
    return (f"<h2>RTL</h2><p>Top module <code>{_e(hw.name)}</code>; one token per row, "
            "streams valid/ready (AXI-Stream style), payload element 0 in the lowest bits."
            "</p><table><tr><th class=l>port</th><th class=l>direction</th><th>width</th>"
            f"<th class=l>meaning / packing</th></tr>{rows}</table><ul>{files}</ul>")

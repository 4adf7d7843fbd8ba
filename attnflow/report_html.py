"""The design report as one self-contained HTML page: ``report.html``.

Everything is inline (CSS in a ``<style>`` element, plots as PNG ``data:`` URIs, no
script, no external asset), so the file can be mailed, archived or opened offline. The
page shows the design summary, the template/channel graph (``attnflow.report_graph``,
the bottleneck marked), a per-process bar chart (firings / starved / blocked cycles, the
bottleneck marked), the occupancy of every internal FIFO over time as one heatmap, the
channel and process tables, the resources (when estimated), the RTL's ports and the
verdicts ``attnflow verify`` adds (``attnflow.verify_record``).

The bytes are deterministic: the same summary and result give the same file (plots are
drawn with matplotlib's Agg renderer on its default style, without the PNG ``Software``
text chunk; the page carries no date).
"""
from __future__ import annotations

import base64
import dataclasses
import html
import io
import math
from pathlib import Path

import numpy as np

from .accounting import bound_text, clock_label
from .report_extras import cost_rows, resources_kv, rtl_section_html, schedule_text
from .report_graph import graph_html
from .verify_record import html_section
from .sim.engine import occupancy_bins, occupancy_series

__all__ = ["write_html_report", "bottleneck", "occupancy_series", "BOTTLENECK_RULE"]

#: the occupancy plot draws at most this many points per channel; longer runs are binned
MAX_POINTS = 1500
#: columns of the occupancy heatmap; longer runs are binned
HEAT_COLUMNS = 800
#: plot resolution (pixels per inch); figures are 11 inches wide
DPI = 90

BOTTLENECK_RULE = ("Bottleneck: the template process with the largest busy fraction, "
                   "busy cycles (firings × II) over the run length (reset to the last "
                   "output, or to the deadlock); every process tied at that count is "
                   "named (and marked). A process busy on every cycle sets the pace: the "
                   "others wait on it.")

COLORS = {"fires": "#2b6cb0", "starved": "#dd8a2b", "blocked": "#c53030",
          "other": "#e2e8f0"}


# ----------------------------------------------------------------------------- data

def run_length(summary: dict, result) -> int:
    """Cycles the run lasted: reset to the last output, or to the deadlock."""
    if result.deadlock:
        return max(int(result.deadlock.cycle), 1)
    return max(int(summary["total_cycles"]), 1)


def bottleneck(summary: dict, result) -> dict | None:
    """The template with the largest busy fraction (see ``BOTTLENECK_RULE``):
    {name, template, busy, fraction}, or None when no template fired."""
    total = run_length(summary, result)
    best = None
    for p in summary["processes"]:
        inst = result.hw.instances.get(p["name"])
        if inst is None or p["fires"] == 0:           # sources, sinks, idle templates
            continue
        busy = p["fires"] * inst.contract.ii
        key = (-busy, p["name"])
        if best is None or key < best[0]:
            ties = best[1]["ties"] if best and best[1]["busy"] == busy else []
            best = (key, {"name": p["name"], "template": p["template"], "busy": busy,
                          "fraction": busy / total, "ties": ties})
        if best[1]["busy"] == busy:
            best[1]["ties"] = sorted(set(best[1]["ties"]) | {p["name"]})
    return best[1] if best else None


def bound_names(summary: dict) -> set[str]:
    """The processes marked as the bottleneck: the accounting's bound (every tied
    process), else the processes tied in ``summary["bottleneck"]``."""
    bound = (summary.get("costs") or {}).get("bound")
    if bound:
        return set(bound["names"])
    b = summary.get("bottleneck")
    return set(b.get("ties") or [b["name"]]) if b else set()


# ----------------------------------------------------------------------------- plots

def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _style():
    import matplotlib.style
    # the default style, whatever the user's matplotlibrc says: same bytes everywhere
    return matplotlib.style.context(["default", {
        "font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10,
        "xtick.labelsize": 9, "ytick.labelsize": 9, "legend.fontsize": 9,
        "axes.spines.top": False, "axes.spines.right": False,
        "svg.hashsalt": "attnflow", "path.simplify": True}])


def _process_chart(summary: dict, result, bneck: dict | None, total: int) -> str:
    """One stacked bar per process: busy (firings x II), starved, blocked, and the rest
    of the run (before the first firing, after the last, or stuck at a deadlock)."""
    from matplotlib.figure import Figure
    procs = summary["processes"]
    n = len(procs)
    busy = np.array([p["fires"] * (result.hw.instances[p["name"]].contract.ii
                                   if p["name"] in result.hw.instances else 1)
                     for p in procs], dtype=float)
    starved = np.array([p["starved"] for p in procs], dtype=float)
    blocked = np.array([p["blocked"] for p in procs], dtype=float)
    other = np.maximum(total - busy - starved - blocked, 0)
    with _style():
        fig = Figure(figsize=(11, 1.0 + 0.36 * n), layout="constrained")
        ax = fig.add_subplot()
        y = np.arange(n)
        left = np.zeros(n)
        for vals, key, label in ((busy, "fires", "firing (busy)"),
                                 (starved, "starved", "starved (input empty)"),
                                 (blocked, "blocked", "blocked (output full)"),
                                 (other, "other", "other (not started, done, or stuck)")):
            ax.barh(y, vals, left=left, height=0.68, color=COLORS[key], label=label)
            left += vals
        hot_names = set(bneck.get("ties") or [bneck["name"]]) if bneck else set()
        labels = [f"{p['name']}  ({p['template']})  {100 * busy[i] / total:.1f}% busy"
                  + ("  bottleneck" if p["name"] in hot_names else "")
                  for i, p in enumerate(procs)]
        ax.set_yticks(y, labels)
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_xlabel(f"cycles (run length {total})")
        ax.set_xlim(0, total)
        for i, p in enumerate(procs):
            hot = p["name"] in hot_names
            if hot:
                tick = ax.get_yticklabels()[i]
                tick.set_color("#c53030")
                tick.set_fontweight("bold")
                ax.axhspan(i - 0.5, i + 0.5, color="#fed7d7", zorder=0)
        ax.legend(loc="lower left", frameon=False, ncols=4, bbox_to_anchor=(0.0, 1.0),
                  borderaxespad=0.2)
        ax.grid(axis="x", color="#ddd", linewidth=0.6)
        ax.set_axisbelow(True)
        return _png(fig)


def _occupancy_chart(result, total: int) -> tuple[str | None, int, list[str]]:
    """(data URI or None, cycles per column, internal channels that never held a token):
    one heatmap of the internal channels' occupancy over time, a row per channel (the
    bin's maximum occupancy over the channel's depth), labelled with peak / depth."""
    from matplotlib.figure import Figure
    hw, chans = result.hw, result.timing.chans
    internal = [c for c in hw.channels.values() if c.src is not None and c.dst is not None]
    unused = [c.name for c in internal if not chans[c.name].push]
    internal = [c for c in internal if chans[c.name].push]
    if not internal:
        return None, 1, unused
    end = total + 1                  # the last pop's token still counts in cycle total - 1
    step = max(1, math.ceil(end / HEAT_COLUMNS))
    rows, labels = [], []
    for c in internal:
        ch = chans[c.name]
        # per cycle only when the run fits the columns; else from the events (no
        # per-cycle array on long runs)
        hi = (occupancy_series(ch.push, ch.pop, end) if step == 1 else
              occupancy_bins(ch.push, ch.pop, end, step)[1])
        rows.append(hi / c.depth)
        labels.append(f"{c.name}  {int(hi.max())}/{c.depth}")
    heat = np.vstack(rows)
    with _style():
        fig = Figure(figsize=(11, max(1.8, 0.9 + 0.17 * len(internal))), layout="constrained")
        ax = fig.add_subplot()
        im = ax.imshow(heat, aspect="auto", interpolation="nearest", cmap="Blues",
                       vmin=0.0, vmax=1.0, extent=(0, heat.shape[1] * step, len(rows), 0))
        ax.set_yticks(np.arange(len(rows)) + 0.5, labels, fontsize=7)
        ax.set_xlim(0, end)
        ax.set_xlabel("cycle" + (f" (binned: {step} cycles per column, the bin's maximum)"
                                 if step > 1 else ""))
        bar = fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01)
        bar.set_label("occupancy / depth")
        return _png(fig), step, unused


def _int_locator():
    from matplotlib.ticker import MaxNLocator
    return MaxNLocator(nbins=3, integer=True)


# ----------------------------------------------------------------------------- html

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;
 color:#1a202c;background:#f7fafc;line-height:1.45}
main{max-width:1040px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:1.5em;margin:0 0 4px}h2{font-size:1.2em;margin:30px 0 8px;
 border-bottom:1px solid #e2e8f0;padding-bottom:4px}
.sub{color:#4a5568;margin:0 0 16px}
table{border-collapse:collapse;font-size:.9em;margin:8px 0}
th,td{padding:4px 10px;border-bottom:1px solid #e2e8f0;text-align:right}
th{background:#edf2f7;font-weight:600}
td:first-child,th:first-child,td.l,th.l{text-align:left}
table.kv td{text-align:left}table.kv td:first-child{color:#4a5568;width:16em}
tr.hot td{background:#fff5f5;font-weight:600;color:#9b2c2c}
.dead{background:#fff5f5;border:2px solid #c53030;color:#742a2a;padding:10px 14px;
 border-radius:4px;margin:12px 0;font-family:ui-monospace,Menlo,Consolas,monospace;
 font-size:.88em;white-space:pre-wrap}
.dead b{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;font-size:1.1em}
.ok{color:#276749;font-weight:600}.bad{color:#c53030;font-weight:600}
.note{color:#4a5568;font-size:.88em}
img{max-width:100%;height:auto;display:block;margin:6px 0}
code{background:#edf2f7;padding:0 3px;border-radius:3px}
footer{color:#a0aec0;font-size:.8em;margin-top:36px}
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _num(x) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}".replace(",", " ") if abs(x) >= 10000 else str(x)
    if isinstance(x, float):
        if not math.isfinite(x):
            return "—" if x != x else _e(x)
        if x.is_integer():
            return _num(int(x))
        return f"{x:.1f}" if abs(x) >= 100 else f"{x:.3g}"
    return _e(x)


def _row(r) -> dict:
    """A resources row as a dict: a mapping, a dataclass, or an object with attributes."""
    if isinstance(r, dict):
        return r
    if dataclasses.is_dataclass(r):
        return dataclasses.asdict(r)
    return {k: getattr(r, k, None) for k in ("resource", "estimate", "measured", "ratio",
                                              "budget")}


def _table(head: list[str], rows: list[list], hot: set[int] = frozenset(),
           left: tuple[int, ...] = (0,)) -> str:
    """Cells are HTML already; columns in ``left`` are left-aligned, the rest right."""
    ths = "".join(f'<th{" class=l" if i in left else ""}>{_e(h)}</th>'
                  for i, h in enumerate(head))
    body = []
    for r, row in enumerate(rows):
        tds = "".join(f'<td{" class=l" if i in left else ""}>{v}</td>'
                      for i, v in enumerate(row))
        body.append(f'<tr{" class=hot" if r in hot else ""}>{tds}</tr>')
    return f"<table><tr>{ths}</tr>{''.join(body)}</table>"


def _summary_html(s: dict, result, bneck: dict | None, total: int) -> str:
    kv = [("design", f"<code>{_e(s['design'])}</code>"),
          ("model", _e(s["model_text"]))]
    sched = s["schedule"]
    kv.append(("schedule", _e(f"seed {sched['seed']}, {schedule_text(sched)}")))
    out = []
    if s["deadlock"]:
        out.append(f'<div class="dead"><b>DEADLOCK</b>\n{_e(s["deadlock"])}</div>')
        kv += [("total cycles", f'<span class="bad">none: deadlock at cycle '
                                f'{result.deadlock.cycle}</span> ({s["expected_cycles"]} '
                                f'expected)'),
               ("clock", f"{s['clock_mhz']:g} MHz")]
    else:
        mism = s["golden_mismatches"]
        acc = s["accuracy"]
        kv += [("total cycles", f"<b>{s['total_cycles']}</b> (reset to last output; "
                                f"expected {s['expected_cycles']}: "
                                f"{_e(s['expected_text'])})"),
               ("latency", f"<b>{s['latency_us']:.3f} us</b> at {s['clock_mhz']:g} MHz"
                           f"{_e(clock_label(s))}, "
                           f"{s['sequences_per_second']:.0f} sequences/s"),
               *(cost_rows(s) if "costs" in s else
                 [("multipliers, memory", f"{s['multipliers']} multipliers, "
                                          f"{s['memory_bits']} memory bits")]),
               ("simulator vs golden model",
                f'<span class="{"ok" if mism == 0 else "bad"}">{mism} mismatching output '
                f'elements</span>'),
               ("integer vs float model",
                f"max abs error {acc['max_abs_error']:.3g} (output LSB "
                f"{acc['out_lsb']:.3g}), cosine similarity {acc['cosine']:.6f}")]
    if "costs" in s and s["costs"]["bound"]:
        kv.append(("bottleneck (bound)", _e(bound_text(s["costs"]))))
    elif bneck:
        kv.append(("bottleneck", f"<b>{_e(bneck['name'])}</b> (<code>{_e(bneck['template'])}"
                                 f"</code>): busy {bneck['busy']} of {total} cycles "
                                 f"({100 * bneck['fraction']:.1f}%)"))
    else:
        kv.append(("bottleneck", "none (no template fired)"))
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{v}</td></tr>" for k, v in kv)
    out.append(f'<table class="kv">{rows}</table>')
    return "\n".join(out)


def _encoder_html(s: dict) -> str:
    """Folding and per-layer accuracy of an encoder design ("" for other designs)."""
    if s.get("kind") != "encoder":
        return ""
    f = s["folding"]
    rows = [[r["layer"], _e(r["op"]), r["instances"], f"{r['M']} x {r['K']}", r["pe"],
             r["simd"], _num(r["fires_per_token"]), r["chosen"]] for r in f["linears"]]
    out = ["<h2>Folding</h2>", f"<p>{_e(f['text'])}</p>",
           _table(["layer", "op", "instances", "M x K", "PE", "SIMD", "firings per token",
                   "chosen"], rows, left=(1, 7))]
    acc = s.get("accuracy") or {}
    if acc.get("layers"):
        rows = [[a["layer"], f"{a['max_abs_error']:.4g}", f"{a['cosine']:.6f}",
                 f"{a['max_abs_float']:.4g}"] for a in acc["layers"]]
        out += ["<h2>Accuracy per layer</h2>",
                "<p>The integer stack against the float stack on the same input, after "
                "each layer (errors accumulate).</p>",
                _table(["layer", "max abs error", "cosine", "max abs float value"], rows)]
    return "\n".join(out)


def _resources_html(resources) -> str:
    if not resources:
        return ('<p class="note">not estimated: give <code>--target DEVICE</code> (u280, '
                'vu13p, zcu102, ice40up5k, ecp5_85f or a device .yaml) for the resource '
                'estimate and the fit check</p>')
    extra, rows = [], resources
    if isinstance(resources, dict):
        rows = resources.get("rows") or []
        extra = [(k, v) for k, v in resources.items() if k != "rows"]
    parts = []
    if extra:
        extra = resources_kv(dict(extra))
        kv = "".join(f"<tr><td>{_e(k)}</td><td>{_num(v) if not isinstance(v, str) else _e(v)}"
                     f"</td></tr>" for k, v in extra)
        parts.append(f'<table class="kv">{kv}</table>')
    if not rows:
        parts.append('<p class="note">not estimated</p>')
        return "\n".join(parts)
    cols = ["resource", "estimate", "measured", "ratio", "budget"]
    body, hot = [], set()
    for i, r in enumerate(map(_row, rows)):
        body.append([_e(r.get("resource", "")) if r.get("resource") is not None else "—"]
                    + [_num(r.get(c)) for c in cols[1:]])
        used = r.get("measured") if r.get("measured") is not None else r.get("estimate")
        budget = r.get("budget")
        if isinstance(used, (int, float)) and isinstance(budget, (int, float)) and \
                budget > 0 and used > budget:
            hot.add(i)
    parts.append(_table(["resource", "estimate", "measured", "ratio",
                         "budget"], body, hot))
    if hot:
        parts.append('<p class="note">Highlighted rows exceed their budget.</p>')
    return "\n".join(parts)


def render_html(summary: dict, result, resources=None, graph_png: bytes | None = None) -> str:
    """The page as a string (``write_html_report`` writes it); ``graph_png``: the drawing
    of the template/channel graph (``attnflow.report_graph``), or None."""
    s = summary
    total = run_length(s, result)
    bneck = bottleneck(s, result)
    proc_png = _process_chart(s, result, bneck, total)
    occ_png, step, unused = _occupancy_chart(result, total)

    kinds = {c.name: ("input" if c.src is None else "output" if c.dst is None else "internal")
             for c in result.hw.channels.values()}
    ch_rows, ch_hot = [], set()
    for i, c in enumerate(s["channels"]):
        ch_rows.append([f"<b>{_e(c['name'])}</b>", kinds.get(c["name"], ""), c["depth"],
                        c["latency"], _num(c["tokens"]),
                        f"{c['max_occupancy']}", _num(c["full_stall"]),
                        _num(c["empty_stall"]), _num(c.get("memory_bits")),
                        _e(c.get("why", "")), _e(c.get("token", ""))])
        if result.deadlock and c["max_occupancy"] >= c["depth"] and any(
                n == c["name"] and o >= d for n, o, d in result.deadlock.channels):
            ch_hot.add(i)
    pr_rows, pr_hot = [], set()
    for i, p in enumerate(s["processes"]):
        inst = result.hw.instances.get(p["name"])
        busy = p["fires"] * inst.contract.ii if inst else p["fires"]
        pr_rows.append([f"<b>{_e(p['name'])}</b>", _e(p["template"]), _num(p["fires"]),
                        f"{100 * busy / total:.1f}%", _num(p["first"]), _num(p["last"]),
                        _num(p["starved"]), _num(p["blocked"]), _num(p.get("multipliers")),
                        _num(p.get("memory_bits"))])
        if bneck and p["name"] in (bneck.get("ties") or [bneck["name"]]):
            pr_hot.add(i)

    rtl = rtl_section_html(result.hw)
    title = f"attnflow design report: {s['design']}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">{_e(s["model_text"])}, mapped to streaming dataflow templates; '
        f"cycle-accurate simulation ({len(result.hw.instances)} templates, "
        f"{len(result.hw.channels)} channels).</p>",
        "<h2>Summary</h2>", _summary_html(s, result, bneck, total),
        graph_html(s, graph_png) if graph_png else "",
        _encoder_html(s),
        "<h2>Processes</h2>",
        f'<p class="note">{_e(BOTTLENECK_RULE)} Starved: cycles lost waiting for an input '
        f"token; blocked: cycles lost waiting for a free output slot. Sources "
        f"(<code>&lt;input …&gt;</code>) and sinks (<code>&lt;output …&gt;</code>) are the "
        f"testbench.</p>",
        f'<img alt="per-process firings, starved and blocked cycles" src="{proc_png}">',
        _table(["process", "template", "firings", "busy", "first", "last", "starved",
                "blocked", "multipliers", "memory bits (ROM + RAM)"], pr_rows, pr_hot,
               left=(0, 1)),
        "<h2>FIFO occupancy</h2>",
        '<p class="note">Tokens held by each internal channel, in flight or stored, over '
        "its depth (capacity, in-flight tokens included), one row per channel labelled "
        "peak/depth: a token counts from the cycle after its enqueue up to and including "
        "its dequeue cycle; dark = full" + (f"; runs are binned, {step} cycles per "
        "column (the bin's maximum)" if step > 1 else "") + ".</p>",
        (f'<img alt="FIFO occupancy over time" src="{occ_png}">' if occ_png
         else '<p class="note">no internal channel held a token</p>'),
        (f'<p class="note">Never held a token (not plotted): {_e(", ".join(unused))}.</p>'
         if unused else ""),
        "<h2>Channels</h2>",
        _table(["channel", "kind", "depth", "latency", "tokens", "max occupancy",
                "producer stalled (full)", "consumer stalled (empty)", "memory bits",
                "depth chosen as", "token"], ch_rows, ch_hot, left=(0, 1, 9, 10)),
        ('<p class="note">Highlighted channels are full at the deadlock.</p>'
         if ch_hot else ""),
        "<h2>Resources</h2>", _resources_html(resources),
        rtl,
        html_section([]) if rtl and not result.deadlock else "",
        "<footer>Generated by attnflow. Waveform of every channel and process: "
        "<code>channels.vcd</code> (GTKWave); machine-readable numbers: "
        "<code>sim.json</code>.</footer>",
        "</main></body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def write_html_report(summary: dict, result, out_dir, resources=None,
                      graph_png: bytes | None = None) -> Path:
    """Write ``out_dir/report.html`` (one self-contained page) and return its path.

    ``summary``: ``attnflow.build.sim_summary(design, result)``; ``result``: the
    SimResult it describes (for the occupancy over time). ``resources``: None ("not
    estimated"), a list of rows ``{resource, estimate, measured, ratio, budget}`` (any may
    be None), or a dict with such a list under ``"rows"`` plus scalar fields (device,
    tool, ...) shown above the table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.html"
    path.write_text(render_html(summary, result, resources, graph_png), encoding="utf-8",
                    newline="\n")
    return path

"""Pieces of report.md / report.html that read the accounting (``attnflow.accounting``),
the RTL's ports and the channel widths: the cost rows of the summary, the resources
entry with labels instead of raw keys, the RTL section and the channel token widths."""
from __future__ import annotations

import html

from .accounting import dsp_text, fit_text, product_text

#: label of each scalar of ``build.resources_summary``'s entry (None: not shown)
RESOURCE_LABELS = {
    "device": "device", "part": "part", "clock_mhz": "planning clock (MHz)",
    "fits": "fits", "overflows": "overflows",
    "latency_us_at_device_clock": "latency at the planning clock (us)",
    "sequences_per_second_at_device_clock": "sequences/s at the planning clock",
}


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def cost_rows(s: dict) -> list[tuple[str, str]]:
    """(label, HTML) rows of the summary: products, DSP, memory, fit."""
    costs = s["costs"]
    rows = [("multipliers", _e(product_text(costs)))]
    d = dsp_text(costs)
    if d:
        rows.append(("DSP blocks", _e(d)))
    rows.append(("memory", f"{s['memory_bits']} bits (ROMs, RAMs and FIFO storage)"))
    res = s.get("resources")
    cls = "" if not res else ' class="ok"' if res["fits"] else ' class="bad"'
    rows.append(("fit", f"<span{cls}>{_e(fit_text(s))}</span>"))
    return rows


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

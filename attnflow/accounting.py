"""One accounting of a design's cost and pace, shared by report.md, report.html,
sim.json and the command line, so the same figure carries the same number everywhere.

Products (from the resource models of ``targets.estimate``, one per template):

* **variable products**: multipliers whose both operands are data, split by what holds
  them: ``linear`` (the PE x SIMD arrays), ``attention`` (scores, softmax, P.V, normalize,
  combine) and ``norm/activation`` (LayerNorm/RMSNorm, GELU, residual adds). The
  ``linear + attention`` part is what ``hardware.multiplier_budget`` and the folding line
  count (``mappers.folding.multipliers``);
* **constant products**: products by a constant that is not a power of two (a power of
  two is a shift, no multiplier);
* **memory bits**: ROMs (weights, function tables) + RAMs and FIFOs; the resource
  estimate's "memory bits" count the RAMs and FIFOs (it builds ROMs as logic);
* **DSP blocks** (with a target only): the device's DSP primitives after Yosys' mapping
  rules, a product wider than one block split over several, constant products included.

One clock per report: a measured Fmax when ``attnflow synth`` placed and routed the
design (nextpnr on a Lattice part; ``measured`` below), else the target device's planning
clock when a target is given, else the spec's ``hardware.clock_mhz``; ``clock.source``
says which, and a planning value says plainly that it was not measured.

The bottleneck is the bound on the schedule: the template processes with the most busy
cycles (firings x II); every process tied at that count is named, and the busy count is
the lower bound on the run length it sets.
"""
from __future__ import annotations

GROUPS = ("linear", "attention", "norm/activation")
NORM_ACTIVATION = frozenset({"layernorm", "rmsnorm", "activation", "residual_add", "fork",
                             "concat"})


def group_of(template: str) -> str:
    if template == "linear":
        return "linear"
    return "norm/activation" if template in NORM_ACTIVATION else "attention"


def product_counts(hw) -> dict:
    """{"variable": {group: n}, "constant": n} over the template instances of ``hw``."""
    from .targets.estimate import template_models
    variable = {g: 0 for g in GROUPS}
    constant = 0
    models = template_models(hw)
    for inst in hw.instances.values():
        model = models[inst.name]
        variable[group_of(inst.template)] += sum(m.count for m in model.mults
                                                 if m.const is None)
        constant += sum(m.count for m in model.mults
                        if m.const is not None and not m.is_shift)
    return {"variable": variable, "constant": constant}


def memory_counts(hw) -> dict:
    """{"total", "rom", "ram"} bits of every template and channel memory: ROMs (weights,
    function tables: read-only, built as logic by the resource estimate) and RAMs and
    FIFOs (what the estimate's "memory bits" column counts)."""
    from .targets.estimate import channel_model, template_models
    models = list(template_models(hw).values())
    models += [channel_model(c) for c in hw.channels.values()]
    rom = sum(m.bits for model in models for m in model.mems if m.rom)
    ram = sum(m.bits for model in models for m in model.mems if not m.rom)
    return {"total": rom + ram, "rom": rom, "ram": ram}


def dsp_counts(hw, device) -> dict:
    """{"total", "primitive", "device", group: n} of the resource estimate on ``device``."""
    from .targets import estimate, load_device
    device = load_device(device)
    est = estimate(hw, device)
    out = {"device": device.name, "primitive": device.dsp.primitive,
           "total": est.totals["DSP"], **{g: 0 for g in GROUPS}}
    for row in est.rows:
        if row.kind == "template":
            out[group_of(row.template)] += row.dsp
    return out


def clock(spec, device=None, measured: dict | None = None) -> dict:
    """The report's one clock: {"mhz", "source"}. ``measured``: {"mhz", "source"} of a
    measured Fmax (``SynthResult.clock_source``), which wins over the planning values."""
    if measured is not None:
        return {"mhz": float(measured["mhz"]), "source": measured["source"]}
    if device is not None:
        from .targets import load_device
        dev = load_device(device)
        return {"mhz": float(dev.clock_mhz),
                "source": f"planning clock of {dev.name}, not measured"}
    return {"mhz": float(spec.hardware.clock_mhz),
            "source": "spec hardware.clock_mhz, a planning value, not measured"}


def bound(summary: dict, result) -> dict | None:
    """The busiest template processes, ties together: {names, templates, busy, fraction,
    ii}; None when no template fired."""
    from .report_html import run_length
    total = run_length(summary, result)
    busy = {}
    for p in summary["processes"]:
        inst = result.hw.instances.get(p["name"])
        if inst is None or p["fires"] == 0:
            continue
        busy[p["name"]] = (p["fires"] * inst.contract.ii, p["template"], inst.contract.ii)
    if not busy:
        return None
    top = max(b for b, _, _ in busy.values())
    names = sorted(n for n, (b, _, _) in busy.items() if b == top)
    return {"names": names, "templates": sorted({busy[n][1] for n in names}),
            "ii": sorted({busy[n][2] for n in names}), "busy": top,
            "fraction": top / total}


def pace(summary: dict, total: int, mhz: float) -> dict:
    """``latency_us`` and ``sequences_per_second`` at ``mhz``: one sequence's ``total``
    cycles, or back to back (``summary["sequences"]``) the first sequence's latency and
    one sequence per interval (II)."""
    seq = summary.get("sequences")
    first = seq["ends"][0] + 1 if seq else total
    every = seq["interval"] if seq else total
    return {"latency_us": first / mhz if first else None,
            "sequences_per_second": mhz * 1e6 / every if every else None}


def accounting(design, result, summary: dict, device=None, measured=None) -> dict:
    """The ``costs`` entry of sim.json (see the module docstring)."""
    counts = product_counts(design.hw)
    var = counts["variable"]
    folding = design.folding
    clk = clock(design.spec, device, measured)
    out = {
        "variable_products": {"total": sum(var.values()), **var},
        "budgeted_products": var["linear"] + var["attention"],
        "multiplier_budget": design.spec.hardware.multiplier_budget,
        "folding_multipliers": folding.multipliers if folding is not None else None,
        "constant_products": counts["constant"],
        "memory_bits": memory_counts(design.hw),
        "dsp": dsp_counts(design.hw, device) if device is not None else None,
        "clock": clk,
        **pace(summary, result.total_cycles, clk["mhz"]),
        "bound": bound(summary, result),
    }
    return out


def apply(summary: dict, design, result, device=None, measured=None) -> dict:
    """Put the accounting into ``summary`` (``costs``) and make its clock and latency the
    report's one clock (``measured``: a measured Fmax, see :func:`clock`); returns the
    costs."""
    from .report_extras import add_token_widths
    costs = accounting(design, result, summary, device, measured)
    add_token_widths(summary, design.hw)
    summary["costs"] = costs
    summary["clock_mhz"] = costs["clock"]["mhz"]
    summary["clock_source"] = costs["clock"]["source"]
    summary["latency_us"] = costs["latency_us"]
    summary["sequences_per_second"] = costs["sequences_per_second"]
    return costs


def product_text(costs: dict) -> str:
    v = costs["variable_products"]
    parts = " + ".join(f"{v[g]} {g}" for g in GROUPS if v[g])
    text = f"{v['total']} variable products" + (f": {parts}" if parts else "")
    if v["linear"]:
        budget = costs["multiplier_budget"]
        text += (f" (linear + attention = {costs['budgeted_products']}: what the folding "
                 f"line and hardware.multiplier_budget"
                 f"{f' {budget}' if budget is not None else ''} count)")
    c = costs["constant_products"]
    return (text + f"; {c} constant product{'s' if c != 1 else ''} (by constants other "
                   f"than powers of two, which are shifts)")


def memory_text(costs: dict) -> str:
    m = costs["memory_bits"]
    return (f"{m['total']} bits = {m['rom']} in ROMs (weights, function tables) + {m['ram']} "
            f"in RAMs and FIFOs (what the resource estimate's memory bits count)")


def dsp_text(costs: dict) -> str | None:
    d = costs["dsp"]
    if d is None:
        return None
    return (f"{d['total']} {d['primitive']} on {d['device']} = {d['linear']} linear + "
            f"{d['attention']} attention + {d['norm/activation']} norm/activation (products "
            f"wider than one block take several; constant products included)")


def bound_text(costs: dict) -> str | None:
    b = costs["bound"]
    if b is None:
        return None
    tie = (f"{len(b['names'])} processes tied: " if len(b["names"]) > 1 else "")
    return (f"{tie}{', '.join(b['names'])} ({', '.join(b['templates'])}), busy {b['busy']} "
            f"cycles each (firings x II {'/'.join(map(str, b['ii']))}), "
            f"{100 * b['fraction']:.1f}% of the run: no schedule is shorter than "
            f"{b['busy']} cycles")


def latency_text(summary: dict) -> str:
    return (f"{summary['latency_us']:.3f} us at {summary['clock_mhz']:g} MHz "
            f"({summary['clock_source']})")


def clock_label(summary: dict) -> str:
    """`` (<source>)`` after a clock figure, or "" for a summary without one."""
    src = summary.get("clock_source")
    return f" ({src})" if src else ""


def fit_text(summary: dict) -> str:
    """The fit verdict with why, or how to get one."""
    res = summary.get("resources")
    if not res:
        return ("not checked: give --target DEVICE (u280, vu13p, zcu102, ice40up5k, "
                "ecp5_85f or a device .yaml) for the resource estimate and the fit")
    if res["fits"]:
        return f"fits on {res['device']} ({res['part']}): every resource within the device"
    return (f"DOES NOT FIT on {res['device']} ({res['part']}): "
            + "; ".join(res["overflows"]))


def report_md_summary(s: dict) -> list[str]:
    """The cost, bound and fit lines of report.md's summary."""
    costs = s["costs"]
    lines = []
    b = bound_text(costs)
    if b:
        over = s["total_cycles"] / costs["bound"]["busy"] if s["total_cycles"] else None
        lines.append(f"- bottleneck (the bound on the schedule): {b}"
                     + (f"; total / bound = {over:.2f}" if over else ""))
    lines.append(f"- multipliers: {product_text(costs)}")
    d = dsp_text(costs)
    if d:
        lines.append(f"- DSP blocks: {d}")
    lines.append(f"- memory: {memory_text(costs)}")
    lines.append(f"- fit: {fit_text(s)}")
    return lines


def cli_lines(s: dict) -> list[str]:
    """What ``attnflow sim`` prints under its cycle line: the same figures as report.md."""
    costs = s["costs"]
    lines = [f"clock: {s['clock_mhz']:g} MHz ({s['clock_source']})",
             f"multipliers: {product_text(costs)}"]
    d = dsp_text(costs)
    if d:
        lines.append(f"DSP blocks: {d}")
    lines.append(f"memory: {memory_text(costs)}")
    b = bound_text(costs)
    if b:
        lines.append(f"bottleneck: {b}")
    lines.append(f"fit: {fit_text(s)}")
    return lines

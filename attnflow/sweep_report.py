"""The outputs of ``attnflow sweep``: results.csv (always), results.parquet (with pyarrow),
pareto.png (latency against DSP blocks, or multipliers without a device) and report.html
(in the style of the build report: one self-contained page)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from .report_html import CSS, _e, _num, _style, _table


def write_csv(rows: list, columns: list, path: Path):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])


def write_parquet(rows: list, columns: list, path: Path) -> bool:
    """results.parquet when pyarrow is installed (``pip install attnflow[sweep]``)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return False
    data = {}
    for c in columns:
        vals = [r.get(c) for r in rows]
        kinds = {type(v) for v in vals if v is not None}
        if len(kinds) > 1 and not kinds <= {int, float}:
            vals = [None if v is None else str(v) for v in vals]   # mixed axis values
        data[c] = vals
    pq.write_table(pa.table(data), path)
    return True


def pareto_axes(rows: list) -> tuple[str, str, str, str]:
    """(cost field, latency field, cost label, latency label) the rows have figures for."""
    cost = "DSP" if any(r.get("DSP") is not None for r in rows) else "multipliers"
    lat = ("latency_us_device" if any(r.get("latency_us_device") is not None for r in rows)
           else "latency_us")
    return (cost, lat, "DSP blocks (estimate)" if cost == "DSP" else "multipliers",
            "latency per sequence (us, device clock)" if lat == "latency_us_device"
            else "latency per sequence (us, spec clock)")


def pareto_front(rows: list, cost: str, lat: str) -> list:
    """The ok rows no other ok row beats on both cost and latency (sorted by cost)."""
    ok = sorted((r for r in rows if r.get("status") == "ok" and r.get(cost) is not None
                 and r.get(lat) is not None), key=lambda r: (r[cost], r[lat], r["point"]))
    front, best = [], None
    for r in ok:
        if best is None or r[lat] < best:
            front.append(r)
            best = r[lat]
    return front


def accuracy_axes(rows: list) -> tuple[str, str, str, str]:
    """(cost field, error field, labels): the accuracy front, the cosine distance of the
    outputs to the float reference (1 - cosine similarity, :func:`with_distance`) against
    cost."""
    cost, _, xlabel, _ = pareto_axes(rows)
    return cost, "cosine_distance", xlabel, "1 - cosine similarity to the float reference"


def with_distance(rows: list) -> list:
    """The rows with ``cosine_distance`` = 1 - cosine where they have a cosine."""
    return [{**r, "cosine_distance": 1.0 - r["cosine"]} if r.get("cosine") is not None
            else r for r in rows]


def pareto_png(rows: list, path: Path, group: str | None, axes=None,
               what: str = "latency") -> list:
    """Plot every point with figures (failed ones as grey crosses) and the front of
    ``axes`` (cost field, figure field, labels; default :func:`pareto_axes`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    cost, lat, xlabel, ylabel = axes or pareto_axes(rows)
    front = pareto_front(rows, cost, lat)
    have = [r for r in rows if r.get(cost) is not None and r.get(lat) is not None]
    with _style():
        fig = Figure(figsize=(7.5, 4.8))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ok = [r for r in have if r["status"] == "ok"]
        groups = sorted({str(r.get(group)) for r in ok}) if group else [None]
        for g in groups:
            sel = [r for r in ok if group is None or str(r.get(group)) == g]
            ax.scatter([r[cost] for r in sel], [r[lat] for r in sel], s=22, alpha=0.8,
                       label=f"{group} = {g}" if group else "ok")
        bad = [r for r in have if r["status"] != "ok"]
        if bad:
            ax.scatter([r[cost] for r in bad], [r[lat] for r in bad], marker="x", s=22,
                       color="#a0aec0", label="failed (e.g. does not fit)")
        if front:
            xs, ys = [r[cost] for r in front], [r[lat] for r in front]
            ax.step(xs, ys, where="post", color="#c53030", lw=1.4, label="Pareto front")
            for r in front:
                ax.annotate(f"#{r['point']}", (r[cost], r[lat]), fontsize=7,
                            xytext=(3, 3), textcoords="offset points", color="#9b2c2c")
        lats = [r[lat] for r in have if r[lat] and r[lat] > 0]
        if lats and max(lats) > 20 * min(lats):
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{len(have)} points: {what} against cost")
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=90, metadata={"Software": None})
    return front


def _png_uri(path: Path) -> str:
    import base64
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _front_section(rows: list, axes: list, plot) -> list:
    title, (cost, figure, xlabel, ylabel), front, png = plot
    return [f"<h2>{_e(title)}</h2>", f'<img src="{_png_uri(png)}" alt="{_e(title)}">',
            f"<p class=note>{_e(ylabel)} against {_e(xlabel)}; the front: the ok points "
            "no other ok point beats on both.</p>",
            _table(["point", *axes, xlabel, ylabel, "cycles"],
                   [[str(r["point"]), *(_e(r.get(a)) for a in axes), _num(r[cost]),
                     _num(r[figure]), _num(r.get("cycles"))] for r in front],
                   left=tuple(range(len(axes) + 1)))]


def report_html(res, plots: list) -> str:
    """The page: the run, one section per plot (title, axes, front, png), every row."""
    s, rows = res.sweep, res.rows
    axes = [a.key for a in s.axes]
    ok = sum(r["status"] == "ok" for r in rows)
    mism = sum(r.get("golden_mismatches") or 0 for r in rows)
    kv = [("sweep file", f"<code>{_e(s.source)}</code>"), ("base spec", f"<code>{_e(s.base)}</code>"),
          ("axes", _e(", ".join(f"{a.key} ({len(a.values)})" for a in s.axes) or "none")),
          ("steps", _e(", ".join(s.run))),
          ("points", f"{len(rows)}: {ok} ok, {len(rows) - ok} failed"),
          ("this run", f"{res.computed} computed on {res.workers} worker(s), {res.cached} "
                       f"from the cache, {res.invalid} invalid; {res.wall_seconds:.1f} s"
                       + "".join(f"; worker {_e(w)} lost while running {_e(list(i))}, rerun"
                                 for w, i in res.lost)),
          ("golden mismatches (all sim points)", str(mism))]
    parts = [f"<!doctype html><html><head><meta charset=utf-8><title>attnflow sweep</title>"
             f"<style>{CSS}</style></head><body><main>",
             f"<h1>attnflow sweep: {_e(Path(s.source).name)}</h1>",
             '<table class=kv>' + "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in kv)
             + "</table>"]
    for plot in plots:
        parts += _front_section(rows, axes, plot)
    cols = ["point", *axes, "status", "cycles", "ii_cycles", "latency_us", "multipliers",
            "device", "DSP", "LUT", "BRAM", "fits", "golden_mismatches", "max_abs_error",
            "cosine", "verify", "synth_LUT", "fmax_mhz", "error"]
    bad = {i for i, r in enumerate(rows) if r["status"] != "ok"}
    parts += ["<h2>All points</h2>",
              _table(cols, [[_num(r.get(c)) if c != "error" else _e(r.get(c) or "")
                             for c in cols] for r in rows], hot=bad,
                     left=(*range(len(axes) + 2), len(cols) - 1)),
              "<footer>written by attnflow sweep; the rows are in results.csv</footer>",
              "</main></body></html>"]
    return "\n".join(parts) + "\n"


#: the plots of a sweep: file, section title, axes function, what the y axis is, the
#: axis whose values colour the points (the first axis key starting so; else none)
PLOTS = (("pareto.png", "Pareto front: latency against cost", pareto_axes, "latency",
          "target"),
         ("accuracy.png", "Pareto front: accuracy against cost", accuracy_axes,
          "cosine distance", "formats"))


def write_results(res, out: Path):
    out.mkdir(parents=True, exist_ok=True)
    write_csv(res.rows, res.columns, out / "results.csv")
    if not write_parquet(res.rows, res.columns, out / "results.parquet"):
        (out / "results.parquet").unlink(missing_ok=True)     # not an old run's
    rows, plots = with_distance(res.rows), []
    for name, title, axes_of, what, colour in PLOTS:
        axes = axes_of(rows)
        group = next((a.key for a in res.sweep.axes if a.key.startswith(colour)), None)
        png = out / name
        if any(r.get(axes[0]) is not None and r.get(axes[1]) is not None for r in rows):
            plots.append((title, axes, pareto_png(rows, png, group, axes, what), png))
        else:
            png.unlink(missing_ok=True)
    (out / "report.html").write_text(report_html(res, plots), encoding="utf-8")

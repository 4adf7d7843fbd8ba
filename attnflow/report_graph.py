"""The template/channel graph of a design, drawn for the report: ``graph.png`` and
``graph.svg`` in the build folder, shown in report.md and report.html.

One box per template instance (coloured by the cost group of ``attnflow.accounting``:
linear, attention, norm/activation), one per input and output stream, one arrow per
channel; data flows from top to bottom in ranks (a box sits one rank below the lowest
box feeding it, the longest path from the inputs), boxes in a rank ordered to shorten
the arrows (barycentre sweeps). The bottleneck (every process tied at the bound on the
schedule) is drawn red.

A stack keeps its drawing readable: layer 0 is drawn template by template, every later
layer (the same templates, other weights) is one box naming the bottleneck processes it
holds, if any. An arrow spanning several ranks (a residual path) runs in a lane right of
the boxes it passes.

The bytes are deterministic: the layout is a function of the graph (ties broken by
name), the figures are drawn on matplotlib's default style without dates or the PNG
``Software`` chunk.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

#: stacks with more layers than this draw layer 0 in full and the others as one box each
DETAIL_LAYERS = 1
#: channel names are written on the arrows of graphs with at most this many channels
EDGE_LABELS_MAX = 24
#: box size and spacing (inches): rank pitch, column pitch, box width, box height
RANK_PITCH, COLUMN_PITCH, BOX_W, BOX_H, LANE = 0.7, 1.42, 1.3, 0.4, 0.12
#: rank pitch of a drawing with channel names on its arrows (room for the names)
LABELLED_RANK_PITCH = 1.0
DPI = 100

FILL = {"linear": "#dbeafe", "attention": "#dcfce7", "norm/activation": "#fef9c3",
        "stream": "#edf2f7", "layers": "#f1f5f9"}
HOT_FILL, HOT_EDGE = "#fed7d7", "#c53030"
GRAPH_FILES = ("graph.png", "graph.svg")


@dataclass(frozen=True)
class Node:
    """A box: ``name`` (unique), two label lines, its fill group, bottleneck or not."""
    name: str
    title: str
    subtitle: str
    group: str
    hot: bool = False


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    label: str = ""


@dataclass(frozen=True)
class GraphView:
    """What is drawn: nodes, edges, and a caption line saying what was summarised."""
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    caption: str

    @property
    def rank_pitch(self) -> float:
        return LABELLED_RANK_PITCH if any(e.label for e in self.edges) else RANK_PITCH


# ----------------------------------------------------------------------------- view

def _layer_of(name: str) -> int | None:
    """The layer of a stack's instance (names prefixed ``mappers.encoder.layer_prefix``:
    ``l<i>_``), None for anything else (a head's, a final norm's)."""
    m = re.match(r"l(\d+)_", name)
    return int(m.group(1)) if m else None


def _what(inst) -> str:
    """A box's second line: the template (a linear's PE x SIMD, an activation's function)."""
    if inst.template == "linear":
        return f"linear, PE {inst.param('PE')} x SIMD {inst.param('SIMD')}"
    if inst.template == "activation":
        return f"activation {inst.param('fn')}"
    return inst.template


def _stream_nodes(hw, keep) -> tuple[list[Node], list[Edge]]:
    """Input and output stream boxes and their arrows (``keep`` maps an instance to the
    box that shows it)."""
    nodes, edges = [], []
    for c in hw.channels.values():
        if c.src is None:
            nodes.append(Node(f"<in {c.name}>", c.name, f"input, {c.layout.width} bits",
                              "stream"))
            edges.append(Edge(f"<in {c.name}>", keep(c.dst[0]), ""))
        if c.dst is None:
            nodes.append(Node(f"<out {c.name}>", c.name, f"output, {c.layout.width} bits",
                              "stream"))
            edges.append(Edge(keep(c.src[0]), f"<out {c.name}>", ""))
    return nodes, edges


def graph_view(hw, hot: set[str]) -> GraphView:
    """The boxes and arrows of ``hw`` with the processes ``hot`` marked; layers past
    :data:`DETAIL_LAYERS` of a stack become one box each."""
    from .accounting import group_of
    layers = sorted({n for n in map(_layer_of, hw.instances) if n is not None})
    collapse = len(layers) > DETAIL_LAYERS
    members: dict[int, list[str]] = {}            # a summarised layer -> its instances
    summary_of = {}                               # instance -> the box that shows it
    for name in hw.instances:
        layer = _layer_of(name)
        if collapse and layer is not None and layer > 0:
            members.setdefault(layer, []).append(name)
            summary_of[name] = f"<layer {layer}>"

    def keep(inst):
        return summary_of.get(inst, inst)

    nodes = [Node(i.name, i.name, _what(i), group_of(i.template), i.name in hot)
             for i in hw.instances.values() if i.name not in summary_of]
    for layer, names in sorted(members.items()):
        tied = sorted(n[len(f"l{layer}_"):] for n in names if n in hot)
        sub = (f"bottleneck: {', '.join(tied[:2])}"
               f"{f' +{len(tied) - 2}' if len(tied) > 2 else ''}" if tied else
               f"{len(names)} templates, as layer 0")
        nodes.append(Node(f"<layer {layer}>", f"layer {layer}", sub, "layers", bool(tied)))
    stream_nodes, edges = _stream_nodes(hw, keep)
    label = len(hw.channels) <= EDGE_LABELS_MAX
    seen = set()
    for c in hw.channels.values():
        if c.src is None or c.dst is None:
            continue
        a, b = keep(c.src[0]), keep(c.dst[0])
        if a == b or (a, b) in seen and not label:
            continue
        seen.add((a, b))
        edges.append(Edge(a, b, f"{c.name}, depth {c.depth}" if label else ""))
    caption = (f"{len(hw.instances)} templates, {len(hw.channels)} channels"
               + ("" if not collapse else f"; layers 1..{layers[-1]} drawn as one box each"
                  if layers[-1] > 1 else "; layer 1 drawn as one box")
               + (" (the templates of layer 0)" if collapse else ""))
    inputs = [n for n in stream_nodes if n.name.startswith("<in ")]
    outputs = [n for n in stream_nodes if n.name.startswith("<out ")]
    return GraphView(tuple(inputs + nodes + outputs), tuple(edges), caption)


# ----------------------------------------------------------------------------- layout

def _acyclic(names: list[str], edges: list[Edge]) -> set[tuple[str, str]]:
    """Edges closing a cycle (found by a depth-first search in name order): the layout
    ranks without them and draws them dashed."""
    succ = {n: [] for n in names}
    for e in edges:
        succ[e.src].append(e.dst)
    state, back = {}, set()
    for root in names:
        if root in state:
            continue
        stack = [(root, iter(succ[root]))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))
    return back


def ranks(view: GraphView) -> tuple[dict[str, int], set[tuple[str, str]]]:
    """Rank of every node (longest path from a node without inputs) and the back edges."""
    names = [n.name for n in view.nodes]
    back = _acyclic(names, list(view.edges))
    forward = [e for e in view.edges if (e.src, e.dst) not in back and e.src != e.dst]
    rank = {n: 0 for n in names}
    pred = {n: [] for n in names}
    for e in forward:
        pred[e.dst].append(e.src)
    done: set[str] = set()
    order = []

    def visit(n):                      # post-order over predecessors, iterative
        stack = [(n, iter(pred[n]))]
        while stack:
            node, it = stack[-1]
            p = next(it, None)
            if p is None:
                stack.pop()
                if node not in done:
                    done.add(node)
                    order.append(node)
            elif p not in done:
                stack.append((p, iter(pred[p])))

    for n in names:
        visit(n)
    for n in order:
        rank[n] = max((rank[p] + 1 for p in pred[n]), default=0)
    return rank, back


def positions(view: GraphView, rank: dict[str, int]) -> dict[str, tuple[float, int]]:
    """(column, rank) of every node: ranks centred, each rank ordered by the mean column
    of its neighbours (four down and up sweeps; ties keep the previous order)."""
    rows: dict[int, list[str]] = {}
    for n in view.nodes:
        rows.setdefault(rank[n.name], []).append(n.name)
    up = {n.name: [] for n in view.nodes}
    down = {n.name: [] for n in view.nodes}
    for e in view.edges:
        down[e.src].append(e.dst)
        up[e.dst].append(e.src)

    def column():
        return {n: i - (len(row) - 1) / 2 for row in rows.values() for i, n in enumerate(row)}

    for sweep in range(8):
        col = column()
        links = up if sweep % 2 == 0 else down
        keys = sorted(rows) if sweep % 2 == 0 else sorted(rows, reverse=True)
        for r in keys:
            row = rows[r]
            mean = {n: (sum(col[m] for m in links[n]) / len(links[n]) if links[n]
                        else col[n]) for n in row}
            rows[r] = sorted(row, key=lambda n: (mean[n], row.index(n)))
            col = column()
    col = column()
    return {n: (col[n], rank[n]) for n in col}


# ----------------------------------------------------------------------------- drawing

def lanes(view: GraphView, where: dict, back: set) -> dict[tuple[str, str], float]:
    """x (in columns) of the vertical run of every arrow spanning more than one rank:
    right of every box of the ranks it passes, arrows whose spans overlap side by side."""
    rightmost: dict[int, float] = {}
    for x, r in where.values():
        rightmost[r] = max(rightmost.get(r, x), x)
    out, taken = {}, []                       # taken: (first rank, last rank, slot)
    long = sorted(((where[e.src][1], where[e.dst][1], e.src, e.dst) for e in view.edges
                   if (e.src, e.dst) not in back and where[e.dst][1] - where[e.src][1] > 1))
    for r0, r1, a, b in long:
        slot = 0
        while any(s == slot and not (r1 <= t0 or r0 >= t1) for t0, t1, s in taken):
            slot += 1
        taken.append((r0, r1, slot))
        edge = max(rightmost[r] for r in range(r0 + 1, r1))
        out[(a, b)] = (edge * COLUMN_PITCH + BOX_W / 2 + LANE * (slot + 1)) / COLUMN_PITCH
    return out


def _arrow_path(view_where: dict, e: Edge, lane: float | None, pitch: float):
    """The vertices of an arrow: straight between adjacent ranks; else down into the gap
    below the source, across to its lane, down, across above the target, into it."""
    (xs, rs), (xd, rd) = view_where[e.src], view_where[e.dst]
    x0, y0 = xs * COLUMN_PITCH, -rs * pitch - BOX_H / 2
    x1, y1 = xd * COLUMN_PITCH, -rd * pitch + BOX_H / 2
    if lane is None:
        return [(x0, y0), (x1, y1)]
    xl, below, above = (lane * COLUMN_PITCH, y0 - (pitch - BOX_H) / 2,
                        y1 + (pitch - BOX_H) / 2)
    return [(x0, y0), (x0, below), (xl, below), (xl, above), (x1, above), (x1, y1)]


def _label_spot(verts, label: str, placed: list) -> tuple[float, float]:
    """Where an arrow's label goes: on its longest segment, at the first of a few
    fractions whose label box misses the labels ``placed`` so far (then added)."""
    longest = max(zip(verts, verts[1:]), key=lambda ab: abs(ab[1][0] - ab[0][0])
                  + abs(ab[1][1] - ab[0][1]))
    (x0, y0), (x1, y1) = longest
    half = len(label) * 0.026 + 0.03
    spots = [(x0 + t * (x1 - x0), y0 + t * (y1 - y0)) for t in (0.5, 0.3, 0.7, 0.2, 0.8)]
    for x, y in spots:
        if all(abs(x - px) > half + ph or abs(y - py) > 0.1 for px, py, ph in placed):
            break
    else:
        x, y = spots[0]
    placed.append((x, y, half))
    return x, y


def _figure(view: GraphView, where: dict, back: set, caption: str):
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path as MplPath
    lane = lanes(view, where, back)
    xs = [x * COLUMN_PITCH for x, _ in where.values()] + [x * COLUMN_PITCH
                                                          for x in lane.values()]
    depth = max(r for _, r in where.values()) + 1
    left, right = min(xs) - BOX_W / 2 - 0.3, max(xs) + BOX_W / 2 + 0.3
    width = max(right - left, 6.0)
    pitch = view.rank_pitch
    height = (depth - 1) * pitch + BOX_H + 0.75
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    pad = (width - (right - left)) / 2
    ax.set_xlim(left - pad, right + pad)
    top = BOX_H / 2 + 0.55
    ax.set_ylim(top - height, top)
    ax.axis("off")
    placed: list[tuple[float, float, float]] = []
    for e in view.edges:
        is_back = (e.src, e.dst) in back
        verts = _arrow_path(where, e, lane.get((e.src, e.dst)), pitch)
        codes = [MplPath.MOVETO] + [MplPath.LINETO] * (len(verts) - 1)
        ax.add_patch(FancyArrowPatch(path=MplPath(verts, codes), arrowstyle="-|>",
                                     mutation_scale=8, linewidth=0.7, color="#718096",
                                     linestyle="--" if is_back else "-", zorder=1))
        if e.label:
            x, y = _label_spot(verts, e.label, placed)
            ax.text(x, y, e.label, fontsize=6, color="#4a5568", ha="center", va="center",
                    zorder=3, bbox=dict(boxstyle="square,pad=0.05", fc="white", ec="none"))
    for n in view.nodes:
        x, r = where[n.name]
        x, y = x * COLUMN_PITCH, -r * pitch
        ax.add_patch(FancyBboxPatch((x - BOX_W / 2, y - BOX_H / 2), BOX_W, BOX_H,
                                    boxstyle="round,pad=0,rounding_size=0.06",
                                    fc=HOT_FILL if n.hot else FILL[n.group],
                                    ec=HOT_EDGE if n.hot else "#4a5568",
                                    linewidth=1.6 if n.hot else 0.6, zorder=2))
        ax.text(x, y + 0.07, n.title, fontsize=7, ha="center", va="center", zorder=3,
                fontweight="bold" if n.hot else "normal",
                color=HOT_EDGE if n.hot else "#1a202c")
        ax.text(x, y - 0.1, n.subtitle, fontsize=5.5, ha="center", va="center",
                color="#4a5568", zorder=3)
    ax.text(ax.get_xlim()[0] + 0.15, top - 0.25, caption, fontsize=7, ha="left",
            va="center", color="#1a202c", wrap=True)
    return fig


def caption_text(view: GraphView, summary: dict) -> str:
    bound = (summary.get("costs") or {}).get("bound")
    if bound:
        marked = (f"red: the bottleneck, {len(bound['names'])} processes tied at "
                  if len(bound["names"]) > 1 else "red: the bottleneck, ")
        marked += f"{bound['busy']} busy cycles (the bound on the schedule)"
    else:
        marked = "red: the bottleneck" if any(n.hot for n in view.nodes) else "no bottleneck"
    return f"{view.caption}; data flows top to bottom; {marked}"


def write_graph(hw, summary: dict, out_dir) -> bytes:
    """Draw ``hw`` (the bottleneck of ``summary`` marked) to ``out_dir/graph.png`` and
    ``graph.svg``; returns the PNG bytes (report.html embeds them)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from .report_html import _style, bound_names
    view = graph_view(hw, bound_names(summary))
    rank, back = ranks(view)
    where = positions(view, rank)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with _style():
        fig = _figure(view, where, back, caption_text(view, summary))
        FigureCanvasAgg(fig)
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=DPI, metadata={"Software": None})
        svg = io.BytesIO()
        fig.savefig(svg, format="svg", metadata={"Date": None})
    (out / GRAPH_FILES[0]).write_bytes(png.getvalue())
    (out / GRAPH_FILES[1]).write_bytes(svg.getvalue())
    return png.getvalue()


def graph_md(summary: dict) -> list[str]:
    """report.md's section: the PNG, the SVG, what is marked."""
    names = sorted(_marked(summary))
    return ["", "## Template/channel graph", "",
            "![template/channel graph: boxes are template instances and streams, arrows "
            "channels, red the bottleneck](graph.png)", "",
            "Boxes: template instances (blue linear, green attention, yellow "
            "norm/activation) and the input/output streams; arrows: channels; data flows "
            "top to bottom. Red: the bottleneck"
            + (f" ({', '.join(names)})" if names else " (none: nothing fired)")
            + ". Vector drawing: `graph.svg`."]


def graph_html(summary: dict, png: bytes) -> str:
    import base64
    import html
    names = sorted(_marked(summary))
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return ("<h2>Template/channel graph</h2>"
            '<p class="note">Boxes: template instances (blue linear, green attention, '
            "yellow norm/activation) and the input/output streams; arrows: channels; data "
            "flows top to bottom. Red: the bottleneck"
            + html.escape(f" ({', '.join(names)})" if names else " (none: nothing fired)")
            + '. Vector drawing: <code>graph.svg</code>.</p>'
            f'<img alt="template/channel graph, the bottleneck in red" src="{uri}">')


def _marked(summary: dict) -> set[str]:
    from .report_html import bound_names
    return bound_names(summary)

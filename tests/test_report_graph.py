"""The drawing of the template/channel graph (graph.png, graph.svg, in report.md and
report.html): boxes, arrows, ranks, the bottleneck marked, later layers of a stack
summarised, residual arrows in lanes, cycles tolerated, same bytes on every run."""
import base64
import html
import re

import pytest

from attnflow.api import prepare
from attnflow.cli import main
from attnflow.ir.spec import load_spec
from attnflow.report_graph import (Edge, GraphView, Node, graph_view, lanes, positions,
                                   ranks, write_graph)


@pytest.fixture(scope="module")
def head():
    return prepare(load_spec("examples/sdpa_online.yaml", ["model.seq_len=8",
                                                           "model.head_dim=4"]))


def test_head_view_ranks_and_marks(head):
    view = graph_view(head.hw, {"qk", "vstore"})
    names = {n.name: n for n in view.nodes}
    assert set(names) == {"<in q>", "<in k>", "<in v>", "qk", "vstore", "softmax", "norm",
                          "<out o>"}
    assert [n for n, node in names.items() if node.hot] == ["qk", "vstore"]
    assert names["softmax"].subtitle == "online_softmax_pv"
    assert names["<in q>"].subtitle == "input, 32 bits"        # 4 x s8
    assert names["<out o>"].subtitle == "output, 64 bits"      # 4 x s16
    # every internal channel is one arrow, named with its depth (the head has 7 channels)
    depth = {c.name: c.depth for c in head.hw.channels.values()}
    assert {(e.src, e.dst, e.label) for e in view.edges if e.label} == {
        ("qk", "softmax", f"s, depth {depth['s']}"), ("vstore", "softmax", f"vr, depth {depth['vr']}"),
        ("softmax", "norm", f"ol, depth {depth['ol']}")}
    assert (depth["s"], depth["vr"], depth["ol"]) == (11, 4, 18)   # pipelined: latency + 1
    assert len(view.edges) == 7
    rank, back = ranks(view)
    assert back == set()
    assert rank == {"<in q>": 0, "<in k>": 0, "<in v>": 0, "qk": 1, "vstore": 1,
                    "softmax": 2, "norm": 3, "<out o>": 4}
    where = positions(view, rank)
    assert sorted(x for x, r in where.values() if r == 0) == [-1.0, 0.0, 1.0]
    assert where["softmax"] == (0.0, 2)


def test_stack_layers_after_the_first_are_one_box_each():
    design = prepare(load_spec("examples/encoder_tiny.yaml", ["model.layers=3",
                                                              "model.seq_len=8"]))
    hot = {"l0_act", "l2_act", "l2_lin_up", "l2_lin_down"}
    view = graph_view(design.hw, hot)
    names = {n.name: n for n in view.nodes}
    per_layer = len([i for i in design.hw.instances if i.startswith("l0_")])
    assert per_layer == 25
    assert len(names) == per_layer + 2 + 2               # layer 0, layers 1 and 2, x, y
    assert names["<layer 1>"].subtitle == "25 templates, as layer 0"
    assert not names["<layer 1>"].hot
    assert names["<layer 2>"].hot
    assert names["<layer 2>"].subtitle == "bottleneck: act, lin_down +1"
    assert names["l0_act"].hot and names["l0_act"].subtitle == "activation gelu"
    edges = {(e.src, e.dst) for e in view.edges}
    assert ("l0_ln2", "<layer 1>") in edges and ("<layer 1>", "<layer 2>") in edges
    assert ("<layer 2>", "<out y>") in edges
    assert view.caption == ("75 templates, 97 channels; layers 1..2 drawn as one box each "
                            "(the templates of layer 0)")
    # the residual arrows (fork -> residual add) run in lanes right of the boxes they pass
    rank, back = ranks(view)
    where = positions(view, rank)
    lane = lanes(view, where, back)
    assert set(lane) == {("l0_fork_in", "l0_res1"), ("l0_fork_ffn", "l0_res2")}
    for (a, b), x in lane.items():
        passed = [where[n][0] for n in where if rank[a] < rank[n] < rank[b]]
        assert x > max(passed)


def test_a_cycle_is_drawn_with_a_back_edge():
    view = GraphView((Node("a", "a", "", "linear"), Node("b", "b", "", "linear"),
                      Node("c", "c", "", "attention")),
                     (Edge("a", "b"), Edge("b", "c"), Edge("c", "a")), "")
    rank, back = ranks(view)
    assert back == {("c", "a")} and rank == {"a": 0, "b": 1, "c": 2}


def test_same_bytes_twice_and_marked_in_png(head, tmp_path):
    summary = {"costs": {"bound": {"names": ["qk", "vstore"], "busy": 72}}}
    a = write_graph(head.hw, summary, tmp_path / "a")
    b = write_graph(head.hw, summary, tmp_path / "b")
    assert a == b == (tmp_path / "a" / "graph.png").read_bytes()
    assert a.startswith(b"\x89PNG") and b"tEXt" not in a and b"tIME" not in a
    svg = (tmp_path / "a" / "graph.svg").read_text()
    assert svg == (tmp_path / "b" / "graph.svg").read_text() and "<dc:date>" not in svg
    # the bottleneck boxes are filled red (#fed7d7), the others are not
    assert svg.count("fill: #fed7d7") == 2


def test_build_puts_the_graph_in_both_reports(tmp_path):
    out = tmp_path / "b"
    assert main(["build", "examples/sdpa_online.yaml", "-o", str(out), "--seq-len", "8",
                 "--set", "model.head_dim=4"]) == 0
    md = (out / "report.md").read_text()
    assert "## Template/channel graph\n\n![template/channel graph" in md
    assert "](graph.png)" in md and "Red: the bottleneck (qk, vstore)" in md
    page = html.unescape((out / "report.html").read_text())
    assert "<h2>Template/channel graph</h2>" in page
    pngs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert base64.b64decode(pngs[0]) == (out / "graph.png").read_bytes()
    # the summary's order: summary, graph, then the rest
    assert md.index("- fit:") < md.index("## Template/channel graph") < md.index("## Channels")

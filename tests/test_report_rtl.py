"""report.md's RTL section and token widths; report.html's one occupancy heatmap."""
import re

from attnflow.cli import main


def test_rtl_section_and_token_widths(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["build", "examples/sdpa_online.yaml", "-o", str(out), "--seq-len", "8",
                 "--set", "model.head_dim=4"]) == 0
    md = (out / "report.md").read_text()
    assert "## RTL\n\nTop module `sdpa_online_n8`" in md
    # s8.4 rows of 4 elements: 32-bit payloads; the output s16.8: 64 bits
    assert "| q__payload | input | 32 | q[j]: bits 8j + 7 .. 8j, j = 0..3 (element 0 " \
           "lowest, two's complement) |" in md
    assert "| o__payload | output | 64 | o[j]: bits 16j + 15 .. 16j, j = 0..3" in md
    assert "| o__ready | input | 1 |" in md and "| rst | input | 1 | synchronous reset" in md
    assert "- `rtl/sdpa_online_n8.v`: " in md
    assert (out / "rtl" / "sdpa_online_n8.v").read_text().count("q__payload") >= 2
    assert "input [31:0] q__payload;" in (out / "rtl" / "sdpa_online_n8.v").read_text()
    assert re.search(r"\| q \| 2 \| 1 \| 8 \| .* \| 32 bits: 4 x s8 \|", md)
    page = (out / "report.html").read_text()
    # the graph, the process chart and one heatmap
    assert page.count('src="data:image/png') == 3
    assert "<h2>RTL</h2>" in page and "<code>o__payload</code>" in page
    assert "<td class=l>32 bits: 4 x s8</td>" in page
    assert "- fit: not checked: give --target DEVICE" in md

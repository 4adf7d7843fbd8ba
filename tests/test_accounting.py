"""One accounting of cost: report.md, report.html, sim.json and the CLI give the same
products, DSP blocks, clock and bound, labelled."""
import html
import json
import re

import pytest

from attnflow.cli import main
from attnflow.report_html import _num

HEAD = "examples/sdpa_online.yaml"
ENC = "examples/encoder_tiny.yaml"


def _build_and_sim(spec, tmp_path, capsys, *extra):
    out = tmp_path / "b"
    assert main(["build", spec, "-o", str(out), *extra]) == 0
    capsys.readouterr()
    assert main(["sim", spec, *extra]) == 0
    cli = capsys.readouterr().out
    sim = json.loads((out / "sim.json").read_text())
    return sim, (out / "report.md").read_text(), html.unescape(
        (out / "report.html").read_text()), cli


def test_head_figures_agree(tmp_path, capsys):
    sim, md, page, cli = _build_and_sim(HEAD, tmp_path, capsys, "--target", "u280")
    c = sim["costs"]
    # d = 16: qk d, softmax/PV 2d + 1, normalize d (mappers.folding.attention_multipliers)
    assert c["variable_products"] == {"total": 65, "linear": 0, "attention": 65,
                                      "norm/activation": 0}
    assert sim["multipliers"] == 65
    assert c["clock"] == {"mhz": 300.0, "source": "planning clock of u280, not measured"}
    assert sim["clock_mhz"] == 300.0 and sim["latency_us"] == pytest.approx(1118 / 300)
    products = ("65 variable products: 65 attention; 1 constant product (by constants "
                "other than powers of two, which are shifts)")
    dsp = (f"{c['dsp']['total']} DSP48E2 on u280 = 0 linear + {c['dsp']['attention']} "
           f"attention + 0 norm/activation")
    assert c["dsp"]["total"] == c["dsp"]["attention"] == sim["resources"]["rows"][
        [r["resource"] for r in sim["resources"]["rows"]].index("DSP")]["estimate"]
    bound = ("2 processes tied: qk, vstore (kv_replay, qk_scores), busy 1056 cycles each "
             "(firings x II 1)")
    for text in (md, page, cli):
        assert products in text and dsp in text and bound in text
    assert "latency at 300 MHz (planning clock of u280, not measured): 3.727 us" in md
    assert "3.727 us</b> at 300 MHz (planning clock of u280, not measured)" in page
    assert "3.727 us at 300 MHz" in cli
    assert "clock: 300 MHz (planning clock of u280, not measured)" in cli
    assert "- fit: fits on u280 (xcu280-fsvh2892-2L-e)" in md
    # memory: the exp ROM 256 x 16; K and V stores 32 x 128; the q file of the R = 4
    # interleaved rows 4 x 128; softmax's row files m 4 x 18 and (l, O) 4 x 485;
    # normalize's delay line of O while the divider runs 32 x 464; FIFOs q, k, v 2 x 128,
    # vr 4 x 128, s 14 x 18, ol 19 x 485, o 31 x 256 (the depths the FIFO sizing gives the
    # pipelined head: the scores' and rows' FIFOs cover the stages in flight)
    ram = (2 * 32 * 128 + 4 * 128 + 4 * 18 + 4 * 485 + 32 * 464
           + 3 * 2 * 128 + 4 * 128 + 14 * 18 + 19 * 485 + 31 * 256)
    assert c["memory_bits"] == {"total": 4096 + ram, "rom": 4096, "ram": ram} and ram == 44247
    assert sim["memory_bits"] == 4096 + ram
    memory = (f"{4096 + ram} bits = 4096 in ROMs (weights, function tables) + {ram} in RAMs "
              f"and FIFOs (what the resource estimate's memory bits count)")
    for text in (md, page, cli):
        assert memory in text
    assert f"| **total** | | **{c['dsp']['total']}** | | **{ram}** |" in md
    # the estimate against the device: the same figures in sim.json, report.md,
    # report.html and `attnflow resources`
    assert main(["resources", HEAD, "--target", "u280"]) == 0
    res_cli = capsys.readouterr().out
    assert res_cli.endswith("fit: fits on u280 (xcu280-fsvh2892-2L-e): every resource "
                            "within the device\n")
    for r in sim["resources"]["rows"]:
        have = r["budget"]
        used = f"{100 * r['estimate'] / have:.1f}%" if have else "-"
        line = (f"| {r['resource']} | {r['estimate']} | "
                f"{have if have is not None else '-'} | {used} |")
        assert line in md and line in res_cli
        assert f"<td class=l>{r['resource']}</td><td>{_num(r['estimate'])}</td>" in page
    lut = {r["resource"]: r["estimate"] for r in sim["resources"]["rows"]}
    total_row = re.search(r"\| \*\*total\*\* \|.*\| \*\*(\d+)\*\* \| \*\*(\d+)\*\* \| "
                          r"\*\*(\d+)\*\* \|", res_cli)
    assert (int(total_row[1]), int(total_row[1]) + int(total_row[2]), int(total_row[3])) == (
        lut["LUTRAM"], lut["LUT"], lut["FF"])


def test_encoder_figures_agree(tmp_path, capsys):
    small = ["--set", "model.layers=1", "--set", "model.seq_len=8"]
    sim, md, page, cli = _build_and_sim(ENC, tmp_path, capsys, *small)
    c = sim["costs"]
    v = c["variable_products"]
    # the folding model (mappers.folding.multipliers) and the resource models agree
    assert c["budgeted_products"] == v["linear"] + v["attention"] == c["folding_multipliers"]
    assert v["total"] == sim["multipliers"] == sum(p.get("multipliers", 0)
                                                   for p in sim["processes"])
    assert f"model {sim['total_cycles']} cycles per sequence, {c['folding_multipliers']} " \
           f"linear + attention multipliers" in md
    line = (f"{v['total']} variable products: {v['linear']} linear + {v['attention']} "
            f"attention + {v['norm/activation']} norm/activation (linear + attention = "
            f"{c['budgeted_products']}: what the folding line and "
            f"hardware.multiplier_budget 1500 count)")
    assert c["dsp"] is None and c["clock"]["source"] == (
        "spec hardware.clock_mhz, a planning value, not measured")
    for text in (md, page, cli):
        assert line in text
    lat = f"{sim['latency_us']:.3f} us"
    planning = "(spec hardware.clock_mhz, a planning value, not measured)"
    assert f"latency at 200 MHz {planning}: {lat}" in md
    assert f"{lat}</b> at 200 MHz {planning}" in page
    assert f"{lat} at 200 MHz" in cli
    assert "- fit: not checked: give --target DEVICE" in md
    m = c["memory_bits"]
    assert m["total"] == m["rom"] + m["ram"] == sim["memory_bits"]
    assert m["rom"] > 0 and m["ram"] == sum(ch["memory_bits"] for ch in sim["channels"]) + sum(
        p.get("memory_bits", 0) for p in sim["processes"]) - m["rom"]
    memory = f"{m['total']} bits = {m['rom']} in ROMs (weights, function tables) + {m['ram']}"
    for text in (md, page, cli):
        assert memory in text

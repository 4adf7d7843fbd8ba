"""--version, exit 3 for a missing simulator, the resources error line, names that follow
--set overrides, and verify's verdict in report.md."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from attnflow.cli import main
from attnflow.cli_extras import renamed
from attnflow.hdl.testbench import TestbenchResult
from attnflow.ir.spec import InputsSpec, ScheduleSpec
from attnflow.verify_record import (HEADING, HTML_BEGIN, HTML_END, html_section, md_section,
                                    record_verdict, stimulus_text, verdict_entry)

SPEC = "examples/sdpa_online.yaml"
PASS = "PASS 8 output tokens: bits and cycles match"


def test_version():
    r = subprocess.run([sys.executable, "-m", "attnflow.cli", "--version"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "attnflow 0.1.0\n"


def test_missing_icarus_exits_3_in_one_line(tmp_path, capsys, monkeypatch):
    assert main(["build", SPEC, "-o", str(tmp_path), "--seq-len", "4"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("PATH", str(tmp_path))         # no iverilog here
    assert main(["verify", str(tmp_path), "--simulator", "icarus"]) == 3
    assert capsys.readouterr().err == (
        "error: cannot run the testbench on icarus: iverilog (Icarus Verilog) is not on PATH "
        "(Debian: apt-get install iverilog); or run with --simulator verilator\n")


def test_resources_does_not_fit_is_an_error_line(capsys):
    assert main(["resources", SPEC, "--target", "ice40up5k"]) == 1
    cap = capsys.readouterr()
    assert "does not fit" not in cap.out
    assert cap.err.splitlines()[2] == ("error: does not fit on ice40up5k: DSP: needs 150, "
                                      "ice40up5k has 8 (+142, 1875%)")
    assert all(line.startswith("error: does not fit on ice40up5k: ")
               for line in cap.err.splitlines())


def test_renamed():
    assert renamed("sdpa_online_n32", 32, 16) == "sdpa_online_n16"
    assert renamed("sdpa_online_n32", 32, 32) is None
    assert renamed("n32_head", 32, 8) == "n8_head"
    assert renamed("sdpa_online_n320", 32, 16) is None
    assert renamed("attnflow_top", 32, 16) is None


def test_name_follows_seq_len_or_notes(capsys):
    assert main(["sim", SPEC, "--seq-len", "8", "--set", "model.head_dim=4"]) == 0
    cap = capsys.readouterr()
    assert cap.out.startswith("design sdpa_online_n8: ")
    assert cap.err == ("note: design name 'sdpa_online_n8' follows model.seq_len; --set "
                       "also changed model.head_dim: give --set name=... to name the "
                       "changed design\n")
    assert main(["sim", SPEC, "--set", "model.seq_len=8", "--set", "name=mine"]) == 0
    cap = capsys.readouterr()
    assert cap.out.startswith("design mine: ") and cap.err == ""
    assert main(["sim", SPEC, "--set", "schedule.seed=3"]) == 0
    cap = capsys.readouterr()
    assert cap.out.startswith("design sdpa_online_n32: ") and cap.err == ""


def _res(ok, message, cycles):
    return TestbenchResult(ok=ok, message=message, returncode=0 if ok else 1,
                           wall_seconds=1.0, cycles_simulated=cycles, log=Path("x.log"))


def test_verify_verdicts_go_to_sim_json_report_md_and_html(tmp_path):
    """One entry per simulator and vectors file, the latest run's, in all three files."""
    (tmp_path / "report.md").write_text("# report\n\n- total cycles 73\n" + md_section([]))
    (tmp_path / "report.html").write_text("<main><h1>r</h1>\n" + html_section([])
                                          + "\n<footer>f</footer></main>\n")
    (tmp_path / "sim.json").write_text(json.dumps({"total_cycles": 73}))
    spec = ScheduleSpec(seed=0)
    stalls = ScheduleSpec(seed=4, input_gap_prob=0.3, input_gap_max=3, output_ready_prob=0.7)
    base = stimulus_text(spec, None, InputsSpec(seed=1))
    assert base == "random inputs, seed 1; spec schedule, seed 0: no stalls"
    assert stimulus_text(spec, None, InputsSpec(file="/d/q.npz")) == (
        "inputs /d/q.npz; spec schedule, seed 0: no stalls")
    record_verdict(tmp_path, verdict_entry("verilator", tmp_path / "tb" / "vectors.json",
                                           base, _res(False, "FAIL o token 3: bits differ", 73)))
    record_verdict(tmp_path, verdict_entry("verilator", tmp_path / "tb" / "vectors.json",
                                           base, _res(True, PASS, 73)))
    stalled = stimulus_text(stalls, 4, "x.npz")
    assert stalled == ("inputs x.npz; stall seed 4: input gap prob 0.3 (gaps of 1..3 "
                       "cycles), output ready prob 0.7")
    record_verdict(tmp_path, verdict_entry("verilator", "tb/vectors_stall4.json", stalled,
                                           _res(True, PASS, 91)))
    assert (tmp_path / "report.md").read_text() == (
        "# report\n\n- total cycles 73\n\n" + HEADING + "\n\n"
        "RTL against the simulator, every output bit and output cycle; one line per "
        "simulator and vectors file (the latest run).\n\n"
        "- verilator, `tb/vectors.json` (random inputs, seed 1; spec schedule, seed 0: no "
        "stalls): **PASS** 8 output tokens: bits and cycles match; 73 cycles\n"
        "- verilator, `tb/vectors_stall4.json` (inputs x.npz; stall seed 4: input gap prob 0.3 "
        "(gaps of 1..3 cycles), output ready prob 0.7): **PASS** 8 output tokens: bits and "
        "cycles match; 91 cycles\n")
    sim = json.loads((tmp_path / "sim.json").read_text())
    assert sim["total_cycles"] == 73
    assert sim["verification"] == [
        {"simulator": "verilator", "vectors": "tb/vectors.json", "stimulus": base,
         "verdict": "PASS", "message": "8 output tokens: bits and cycles match", "cycles": 73},
        {"simulator": "verilator", "vectors": "tb/vectors_stall4.json", "stimulus": stalled,
         "verdict": "PASS", "message": "8 output tokens: bits and cycles match", "cycles": 91}]
    page = (tmp_path / "report.html").read_text()
    assert page.count(HTML_BEGIN) == page.count(HTML_END) == 1 and "not run yet" not in page
    rows = re.findall(r"<tr><td class=l>verilator</td>.*?</tr>", page)
    assert rows == [
        "<tr><td class=l>verilator</td><td class=l><code>tb/vectors.json</code></td>"
        "<td class=l>random inputs, seed 1; spec schedule, seed 0: no stalls</td>"
        "<td class=l><span class=\"ok\">"
        "PASS</span> 8 output tokens: bits and cycles match</td><td>73</td></tr>",
        "<tr><td class=l>verilator</td><td class=l><code>tb/vectors_stall4.json</code></td>"
        "<td class=l>inputs x.npz; stall seed 4: input gap prob 0.3 (gaps of 1..3 cycles), "
        "output ready prob 0.7</td><td class=l><span class=\"ok\">PASS</span> 8 output "
        "tokens: bits and cycles match</td><td>91</td></tr>"]
    assert page.endswith("\n<footer>f</footer></main>\n")


def test_a_failed_check_is_red_in_html(tmp_path):
    (tmp_path / "report.html").write_text("<main>\n<footer>f</footer></main>\n")   # no markers
    record_verdict(tmp_path, verdict_entry("icarus", "tb/vectors.json", "spec schedule",
                                           _res(False, "FAIL o token 3: bits differ", None)))
    page = (tmp_path / "report.html").read_text()
    assert '<span class="bad">FAIL</span> o token 3: bits differ</td><td>—</td>' in page
    assert page.index(HTML_END) < page.index("<footer>")

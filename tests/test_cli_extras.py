"""--version, exit 3 for a missing simulator, the resources error line, names that follow
--set overrides, and verify's verdict in report.md."""
import subprocess
import sys
from pathlib import Path

import pytest

from attnflow.cli import main
from attnflow.cli_extras import renamed
from attnflow.hdl.testbench import TestbenchResult
from attnflow.verify_record import HEADING, append_verdict

SPEC = "examples/sdpa_online.yaml"


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


class _Args:
    simulator = "verilator"
    stall_seed = None
    inputs = None


def test_verify_verdict_is_appended_once_per_check(tmp_path):
    (tmp_path / "report.md").write_text("# report\n\n- total cycles 73\n")
    append_verdict(tmp_path, _Args, _res(False, "FAIL o token 3: bits differ", 73), None)
    append_verdict(tmp_path, _Args, _res(True, "PASS 8 output tokens: bits and cycles match", 73), None)
    stall = type("S", (_Args,), {"stall_seed": 4})
    append_verdict(tmp_path, stall, _res(True, "PASS 8 output tokens: bits and cycles match", 91),
                   tmp_path / "tb" / "vectors_stall4.json")
    assert (tmp_path / "report.md").read_text() == (
        "# report\n\n- total cycles 73\n\n" + HEADING + "\n\n"
        "RTL against the simulator, every output bit and output cycle; one line per "
        "simulator and vectors file (the latest run).\n\n"
        "- verilator, `tb/vectors.json` (the spec's schedule): **PASS** 8 output tokens: "
        "bits and cycles match; 73 cycles\n"
        "- verilator, `tb/vectors_stall4.json` (stall seed 4): **PASS** 8 output tokens: "
        "bits and cycles match; 91 cycles\n")

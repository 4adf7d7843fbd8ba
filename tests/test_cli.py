"""The command line: build outputs, determinism, error lines."""
import json
import subprocess
import sys
from pathlib import Path

import re

import pytest

from attnflow.cli import main

SPEC = "examples/sdpa_online.yaml"
SMALL = ["--set", "model.seq_len=8", "--set", "model.head_dim=4"]


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_build_writes_everything_and_is_deterministic(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["build", SPEC, "-o", str(a), *SMALL]) == 0
    assert main(["build", SPEC, "-o", str(b), *SMALL]) == 0
    fa, fb = files(a), files(b)
    assert set(fa) == {"spec.yaml", "sim.json", "report.md", "report.html", "channels.vcd",
                       "graph.png", "graph.svg", "run_tb.py", "rtl/sdpa_online_n8.v",
                       "rtl/sdpa_online_n8_axis.v", "rtl/sdpa_online_n8.softmax.exp0_rom.hex",
                       "tb/cocotb_test.py", "tb/axis_random_test.py", "tb/vectors.json",
                       "files.f", "sdpa_online_n8.core",
                       "constraints/sdpa_online_n8.xdc", "constraints/sdpa_online_n8.sdc",
                       "package_ip.tcl"}
    assert fa == fb  # same spec + seed -> same bytes
    sim = json.loads(fa["sim.json"])
    assert sim["total_cycles"] == 128 and sim["golden_mismatches"] == 0   # helpers.online_cycles
    assert len(sim["output_cycles"]["o"]) == 8
    assert {c["name"] for c in sim["channels"]} >= {"q", "k", "v", "s", "vr", "ol", "o"}
    vec = json.loads(fa["tb/vectors.json"])
    assert vec["outputs"][0]["cycles"] == sim["output_cycles"]["o"]
    assert "| s | 11 | 10 | 64 |" in fa["report.md"].decode()      # depth L + 1, latency L


def test_sim_prints_cycles(capsys):
    assert main(["sim", SPEC, *SMALL]) == 0
    out = capsys.readouterr().out
    assert "total cycles 128" in out and "golden mismatches 0" in out


def test_sim_reports_deadlock_with_exit_1(capsys):
    rc = main(["sim", "examples/sdpa_naive.yaml", "--set", "hardware.fifo_depths.s_b=20"])
    assert rc == 1
    assert "deadlock at cycle" in capsys.readouterr().out


@pytest.mark.parametrize("args,field", [
    (["--set", "model.seq_len=0"], "model.seq_len: must be an integer >= 1, got 0"),
    (["--set", "model.seq_len=-4"], "model.seq_len"),
    (["--set", "model.attention.variant=flash"], "allowed: naive, online"),
    (["--set", "model.colour=red"], "model.colour: unknown field"),
    (["--set", "model.head_dim=four"], "model.head_dim"),
    (["--set", "inputs.range=100"], "formats.q"),
    (["--set", "nonsense"], "--set"),
])
def test_bad_spec_is_one_line_exit_2(args, field, capsys):
    assert main(["sim", SPEC, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ")
    assert field in err


def test_missing_spec_file(capsys):
    assert main(["sim", "no/such/spec.yaml"]) == 2
    assert "no/such/spec.yaml" in capsys.readouterr().err


def test_verify_rejects_a_non_build_folder(tmp_path, capsys):
    assert main(["verify", str(tmp_path)]) == 2
    assert "not an attnflow build folder" in capsys.readouterr().err


def test_help_of_every_command():
    for cmd in ([], ["build"], ["sim"], ["verify"]):
        r = subprocess.run([sys.executable, "-m", "attnflow.cli", *cmd, "--help"],
                           capture_output=True, text=True)
        assert r.returncode == 0 and "usage: attnflow" in r.stdout


@pytest.mark.rtl
def test_verify_relative_folder_with_and_without_stalls(tmp_path, monkeypatch, capsys):
    spec = str(Path(SPEC).resolve())
    monkeypatch.chdir(tmp_path)
    assert main(["build", spec, "-o", "out", "--set", "model.seq_len=4",
                 "--set", "model.head_dim=2"]) == 0
    assert main(["verify", "out"]) == 0
    assert main(["verify", "out", "--stall-seed", "4"]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS 4 output tokens: bits and cycles match") == 2


def test_build_bytes_do_not_depend_on_python_hash_seed(tmp_path):
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / seed
        r = subprocess.run([sys.executable, "-m", "attnflow.cli", "build",
                            "examples/sdpa_naive.yaml", "-o", str(out), *SMALL],
                           capture_output=True, text=True, env={**__import__("os").environ,
                                                                "PYTHONHASHSEED": seed})
        assert r.returncode == 0, r.stderr
        outs.append(files(out))
    assert outs[0] == outs[1]


def test_target_fit_check(tmp_path, capsys):
    assert main(["sim", SPEC, "--target", "u280"]) == 0
    out = capsys.readouterr().out
    assert "Fit on u280 (xcu280-fsvh2892-2L-e): fits." in out
    assert main(["build", SPEC, "-o", str(tmp_path), "--target", "ice40up5k"]) == 1
    err = capsys.readouterr().err
    assert "error: does not fit on ice40up5k: DSP: needs 150, ice40up5k has 8 (+142, 1875%)" in err
    sim = json.loads((tmp_path / "sim.json").read_text())
    assert sim["resources"]["fits"] is False
    assert "DOES NOT FIT" in (tmp_path / "report.md").read_text()
    assert main(["sim", SPEC, "--target", "xc7z020"]) == 2
    assert "unknown device; known devices: ecp5_85f, ice40up5k" in capsys.readouterr().err


@pytest.mark.parametrize("spec", ["examples/encoder_tiny.yaml", "examples/hf_bert_tiny/config.json"])
def test_encoder_sim_from_spec_and_hf_config(spec, capsys):
    """An encoder spec and a Hugging Face config.json (--seq-len) simulate: the cycle
    model's count is met exactly and the output equals the golden model."""
    assert main(["sim", spec, "--seq-len", "16"]) == 0
    out = capsys.readouterr().out
    assert "design " in out and "N = 16" in out
    m = re.search(r"total cycles (\d+) \(expected (\d+)\)", out)
    assert m and m.group(1) == m.group(2), out[-400:]
    assert "golden mismatches 0" in out


def test_hf_config_needs_a_sequence_length(capsys):
    assert main(["sim", "examples/hf_bert_tiny/config.json"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "model.seq_len" in err

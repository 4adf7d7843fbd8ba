"""Values are checked where they enter (issue 18): every reproducer below ends in exit 2
and exactly one line ``error: <file>: <field>: <what>``, never a traceback or a silently
wrong answer. Files are written into ``tmp_path`` (``{T}`` in the expected messages)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from attnflow.cli import main
from attnflow.ir.numerics import quantize, round_int, round_saturate
from attnflow.ir.spec import load_spec
from attnflow.ir.types import FixedFormat

ROOT = Path(__file__).resolve().parent.parent
HEAD = str(ROOT / "examples" / "sdpa_online.yaml")
ENC = str(ROOT / "examples" / "encoder_tiny.yaml")
DEVICE = (ROOT / "targets" / "devices" / "ice40up5k.yaml").read_text()
BERT = (ROOT / "examples" / "hf_bert_tiny" / "config.json").read_text()


def one_line_error(capsys, argv) -> str:
    """Run the CLI; assert exit 2 and a single stderr line; return it."""
    try:
        rc = main(argv)
    except SystemExit as e:      # argparse
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, (rc, err)
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err[:-1]


# ---------------------------------------------------------------- numerics: saturate, then cast

def test_quantize_saturates_before_the_integer_cast():
    s8_6 = FixedFormat(8, 6)
    # issue 18: [1e30, 2**57] gave [-128, -128] (cast to int64 first)
    assert quantize([1e30, 2.0 ** 57, -1e30, float("inf"), -float("inf")], s8_6).tolist() == \
        [127, 127, -128, 127, -128]
    assert quantize([1.0, -0.5, 0.0078125, 1.9921875], s8_6).tolist() == [64, -32, 1, 127]
    assert quantize([2.0 ** 70], FixedFormat(64, 0)).tolist() == [2 ** 63 - 1]
    with pytest.raises(ValueError, match="NaN"):
        quantize([float("nan")], s8_6)
    assert round_saturate([2.5, -2.5, 1e300], -4, 4).tolist() == [3, -2, 4]
    assert (round_int(2.5), round_int(-2.5), round_int(1e300, -4, 4), round_int(-1e300, -4, 4)) \
        == (3, -2, 4, -4)
    with pytest.raises(ValueError, match="inf"):
        round_int(float("inf"))


# ---------------------------------------------------------------- YAML 1.2, strictly

SET_CASES = [
    ("model.seq_len=1:30", "1:30 is a YAML 1.1 base-60 number; write the number itself "
                           "(or quote it for text)"),
    ("model.seq_len=010", "010 is an integer with a leading zero (YAML 1.1 reads it as octal); "
                          "write it without the leading zero, or 0o... for octal (or quote it "
                          "for text)"),
    ("model.seq_len=yes", "yes is a YAML 1.1 boolean; write true or false (or quote it for text)"),
    ("model.seq_len=on", "on is a YAML 1.1 boolean; write true or false (or quote it for text)"),
    ("model.seq_len=1_000", "1_000 is a number with '_' separators (YAML 1.1 only); write it "
                            "without them (or quote it for text)"),
    ("model.seq_len=.inf", ".inf is not a finite number; give a finite number"),
    ("model.seq_len=.nan", ".nan is not a finite number; give a finite number"),
    ("model.seq_len=" + "9" * 5000, "an integer of 5000 digits; at most 100 digits are read"),
    ("model.seq_len=" + "[" * 900 + "]" * 900, "nested deeper than 64 levels"),
]


@pytest.mark.parametrize("setting,problem", SET_CASES, ids=[c[0][:24] for c in SET_CASES])
def test_set_values_read_as_yaml_1_2(capsys, setting, problem):
    key = setting.partition("=")[0]
    assert one_line_error(capsys, ["sim", HEAD, "--set", setting]) == \
        f"error: <command line>: --set: value of {key} is not valid YAML: {problem}"


FILE_CASES = [
    ("model:\n  seq_len: 1:30\n  head_dim: 4\n",
     "invalid YAML: 1:30 is a YAML 1.1 base-60 number; write the number itself (or quote it "
     "for text) at line 2, column 12"),
    ("model:\n  seq_len: 8\n  head_dim: 4\nschedule:\n  output_ready_prob: on\n",
     "invalid YAML: on is a YAML 1.1 boolean; write true or false (or quote it for text) "
     "at line 5, column 22"),
    ("model:\n  seq_len: 010\n  head_dim: 4\n",
     "invalid YAML: 010 is an integer with a leading zero (YAML 1.1 reads it as octal); write "
     "it without the leading zero, or 0o... for octal (or quote it for text) at line 2, "
     "column 12"),
    ("model:\n  seq_len: 8\n  seq_len: 16\n  head_dim: 4\n",
     "invalid YAML: duplicate key 'seq_len' at line 3, column 3"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
     "g: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nmodel: {seq_len: 8, head_dim: 4}\n",
     "invalid YAML: the document expands to more than 100000 values (through its aliases) "
     "at line 5, column 4"),
]


@pytest.mark.parametrize("text,problem", FILE_CASES, ids=["base60", "on", "octal", "dup", "bomb"])
def test_spec_files_read_as_yaml_1_2(capsys, tmp_path, text, problem):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    assert one_line_error(capsys, ["sim", str(path)]) == f"error: {path}: <file>: {problem}"


def test_yaml_1_2_forms_and_merge_keys_are_read(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("model:\n  <<: {seq_len: 8, head_dim: 4}\n  head_dim: 0x8\n"
                    "schedule: {input_gap_prob: 1e-1, output_ready_prob: 1.0}\n")
    spec = load_spec(path)
    assert (spec.model.seq_len, spec.model.head_dim) == (8, 8)
    assert (spec.schedule.input_gap_prob, spec.schedule.output_ready_prob) == (0.1, 1.0)
    assert load_spec(HEAD, ["model.seq_len=0o20", "name='yes'"]).model.seq_len == 16


# ---------------------------------------------------------------- device files

DEVICE_CASES = [
    (("clock_mhz: 24", "clock_mhz: .nan"),
     "<file>: not valid YAML: .nan is not a finite number; give a finite number at line 28, column 12"),
    (("clock_mhz: 24", "clock_mhz: .inf"),
     "<file>: not valid YAML: .inf is not a finite number; give a finite number at line 28, column 12"),
    (("ffs: 5280", "ffs: 5280\nluts: 100"),
     "<file>: not valid YAML: duplicate key 'luts' at line 11, column 1"),
    (("lut_inputs: 4", "lut_inputs: 1000000000000000000000000000000"),
     "lut_inputs: must be <= 8, got 1000000000000000000000000000000"),
    (("clock_mhz: 24", "clock_mhz: 1e30"), "clock_mhz: must be <= 10000, got 1e+30"),
]


@pytest.mark.parametrize("edit,problem", DEVICE_CASES, ids=["nan", "inf", "dup", "lut", "clock"])
def test_device_files(capsys, tmp_path, edit, problem):
    path = tmp_path / "dev.yaml"
    path.write_text(DEVICE.replace(*edit))
    assert one_line_error(capsys, ["resources", HEAD, "--target", str(path)]) == \
        f"error: {path}: {problem}"


# ---------------------------------------------------------------- Hugging Face folders

HF_CASES = [
    (('"max_position_embeddings": 512', '"max_position_embeddings": "512"'),
     "max_position_embeddings: must be an integer >= 1 (the model's positions), got '512' (str)"),
    (('"max_position_embeddings": 512', '"max_position_embeddings": -5'),
     "max_position_embeddings: must be an integer >= 1 (the model's positions), got -5"),
    (('"max_position_embeddings": 512', '"max_position_embeddings": true'),
     "max_position_embeddings: must be an integer >= 1 (the model's positions), got true (a boolean)"),
    (('"max_position_embeddings": 512', '"max_position_embeddings": NaN'),
     "<file>: invalid JSON: NaN is not a finite number; give a finite number"),
    (('"layer_norm_eps": 1e-12', '"layer_norm_eps": 1e400'),
     "<file>: invalid JSON: 1e400 is not a finite number; give a finite number"),
    (('"hidden_size": 128', '"hidden_size": 128, "hidden_size": 64'),
     "<file>: invalid JSON: duplicate key 'hidden_size'"),
    (('"hidden_size": 128', '"hidden_size": ' + "1" * 200),
     "<file>: invalid JSON: an integer of 200 digits; at most 100 digits are read"),
    (('"use_cache": true', '"use_cache": ' + "[" * 900 + "]" * 900),
     "<file>: invalid JSON: nested deeper than 64 levels"),
    (('"position_embedding_type": "absolute"', '"position_embedding_type": "rotary"'),
     "position_embedding_type: unknown value 'rotary'; transformers knows "
     "absolute, relative_key and relative_key_query, and attnflow builds absolute"),
    (('"position_embedding_type": "absolute"', '"position_embedding_type": 7'),
     "position_embedding_type: unknown value 7; transformers "
     "knows absolute, relative_key and relative_key_query, and attnflow builds absolute"),
]


@pytest.mark.parametrize("edit,problem", HF_CASES,
                         ids=["mpe_str", "mpe_neg", "mpe_bool", "nan", "inf", "dup", "digits", "deep",
                              "pos_unknown", "pos_int"])
def test_hf_config_values(capsys, tmp_path, edit, problem):
    (tmp_path / "config.json").write_text(BERT.replace(*edit))
    assert one_line_error(capsys, ["sim", str(tmp_path), "--set", "model.seq_len=8"]) == \
        f"error: {tmp_path / 'config.json'}: {problem}"


@pytest.mark.parametrize("kind", ["dangling", "folder"])
def test_checkpoint_that_is_not_a_file(capsys, tmp_path, kind):
    (tmp_path / "config.json").write_text(BERT)
    ckpt = tmp_path / "model.safetensors"
    if kind == "dangling":      # a Hugging Face cache whose blob is missing
        os.symlink("../../blobs/0123abcd", ckpt)
        what = "is a dangling symbolic link (to ../../blobs/0123abcd)"
    else:
        ckpt.mkdir()
        what = "is a folder, not a file"
    assert one_line_error(capsys, ["sim", str(tmp_path), "--set", "model.seq_len=8"]) == \
        (f"error: {tmp_path / 'config.json'}: model.weights: {ckpt} {what}; restore the file, "
         "or --set model.weights.source=random")


# ---------------------------------------------------------------- names

PORTS = "clk, k, o, q, rst, v, x, y"
NAME_CASES = [
    ("clk", f"'clk' is the name of a port of the top level ({PORTS}); choose another name"),
    ("rst", f"'rst' is the name of a port of the top level ({PORTS}); choose another name"),
    ("o", f"'o' is the name of a port of the top level ({PORTS}); choose another name"),
    ("module", "'module' is a Verilog/SystemVerilog keyword; choose another name"),
    ("logic", "'logic' is a Verilog/SystemVerilog keyword; choose another name"),
    ("a" * 65, "65 characters long; at most 64 (it names the generated files)"),
]


@pytest.mark.parametrize("name,problem", NAME_CASES, ids=[c[0][:8] for c in NAME_CASES])
def test_design_names(capsys, name, problem):
    assert one_line_error(capsys, ["sim", HEAD, "--set", f"name={name}"]) == \
        f"error: {HEAD}: name: {problem}"


# ---------------------------------------------------------------- crashes that were tracebacks

SMALL_BOMB = ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
              "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
              "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n")


def test_deep_yaml_file_and_a_bad_value_holding_aliases(capsys, tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("model:\n  seq_len: " + "[" * 900 + "]" * 900 + "\n")
    assert one_line_error(capsys, ["sim", str(deep)]) == \
        f"error: {deep}: <file>: invalid YAML: nested deeper than 64 levels"
    # 10**4 values through aliases in a field: the message renders the value bounded (the
    # whole repr of an alias bomb exhausted memory in ir/spec.py _show)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("model:\n  head_dim: 4\n  seq_len: " + SMALL_BOMB.replace("\n", " ").replace(
        "a: &a", "[&a").replace("b: &b", ", &b").replace("c: &c", ", &c").replace("d: &d", ", &d")
        + "]\n")
    assert one_line_error(capsys, ["sim", str(bomb)]) == \
        (f"error: {bomb}: model.seq_len: must be an integer >= 1, got [['x', 'x', 'x', 'x', "
         "'x', 'x', ...],... (list)")
    assert one_line_error(capsys, ["sim", HEAD, "--set",
                                   "model.seq_len=[[[[1, 2], [3]]], [4], 5, 6, 7, 8, 9]"]) == \
        (f"error: {HEAD}: model.seq_len: must be an integer >= 1, got [[[[...], [...]]], [4], 5, "
         "6, 7, 8, ...] (list)")


ENC_CASES = [
    # the head path printed these as one line; the encoder path as a traceback
    ("model.seq_len=1000000000", "formats.prob_frac: the datapath needs 69-bit intermediates "
     "(limit 62); lower formats.prob_frac, the input formats' bits or model.seq_len"),
    ("model.norm_eps=1e18", "formats.x: the LayerNorm datapath needs 89-bit intermediates "
     "(limit 62); narrow the input, gamma or beta formats or the row"),
    # was OverflowError: cannot convert float infinity to integer
    ("model.norm_eps=1e308", "formats.x: the LayerNorm datapath needs 1053-bit intermediates "
     "(limit 62); narrow the input, gamma or beta formats or the row"),
    # 65 channels on one line before
    ("hardware.fifo_depths.l0_skp1=4", "hardware.fifo_depths.l0_skp1: no such channel; did you "
     "mean l0_skip1 or l0_s1 or l0_k1? 65 channels: x, l0_x_lin_q0, l0_x_lin_k0, l0_x_lin_v0, "
     "l0_q0, l0_k0, ... (all in report.md, or attnflow sim --json)"),
]


@pytest.mark.parametrize("setting,problem", ENC_CASES, ids=["69bit", "89bit", "eps1e308", "chan"])
def test_encoder_messages_are_one_line(capsys, setting, problem):
    # a memory limit no design reaches: the datapath checks, not the size guard, answer
    assert one_line_error(capsys, ["sim", ENC, "--set", setting, "--max-memory", "1000000000000T"]) \
        == f"error: {ENC}: {problem}"


def test_wide_weights_with_no_fraction_build(capsys):
    """formats.weight {bits: 32, frac: 0}: a zero requantization shift (was 'negative shift
    count'); the design simulates and matches its golden model."""
    assert main(["sim", ENC, "--set", "formats.weight={bits: 32, frac: 0}",
                 "--set", "model.layers=1", "--set", "model.seq_len=8"]) == 0
    assert "golden mismatches 0" in capsys.readouterr().out


def test_fifo_depth_beyond_a_register(capsys):
    # sim accepted it, build raised OverflowError in hdl/channel.py
    assert one_line_error(capsys, ["sim", HEAD, "--set", f"hardware.fifo_depths.s={2 ** 64}"]) == \
        (f"error: {HEAD}: hardware.fifo_depths.s: must be an integer in 1..2147483648, "
         f"got {2 ** 64}")


def test_weight_files(capsys, tmp_path):
    import json
    import struct
    header = json.dumps({"layers.0.attn.q.weight": {"dtype": "F32", "shape": [True, 64],
                                                    "data_offsets": [0, 256]}}).encode()
    st = tmp_path / "w.safetensors"
    st.write_bytes(struct.pack("<Q", len(header)) + header + bytes(256))
    assert one_line_error(capsys, ["sim", ENC, "--set", f"model.weights={{source: file, path: {st}}}"]) == \
        (f"error: {ENC}: model.weights.path: {st} is not a valid safetensors file: entry "
         "'layers.0.attn.q.weight' needs an integer shape and two data_offsets")
    header = b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": 1}'
    st.write_bytes(struct.pack("<Q", len(header)) + header + bytes(4))
    assert one_line_error(capsys, ["sim", ENC, "--set", f"model.weights={{source: file, path: {st}}}"]) == \
        (f"error: {ENC}: model.weights.path: {st} is not a safetensors file: its header is not "
         "JSON (duplicate key 'a')")
    npz = tmp_path / "w.npz"
    npz.write_bytes(bytes(range(256)) * 4)      # was numpy's "allow_pickle=True" advice
    assert one_line_error(capsys, ["sim", ENC, "--set", f"model.weights={{source: file, path: {npz}}}"]) == \
        (f"error: {ENC}: model.weights.path: cannot read {npz} as a numpy .npz archive: "
         "not a zip file")


def test_output_folders(capsys, tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    cases = [
        (str(f), f"{f} is a file, not a folder; give a folder (it is created if missing)"),
        (str(f / "sub"), f"{f} is a file, so {f / 'sub'} cannot be created under it"),
        (str(tmp_path / ("n" * 300)),
         "a folder name of 300 characters is too long for the file system (255 bytes)"),
        ("", "the output folder name is empty"),
        ("/proc/attnflow_out", "cannot create /proc/attnflow_out: No such file or directory"),
    ]
    for out, problem in cases:
        assert one_line_error(capsys, ["build", HEAD, "-o", out]) == \
            f"error: <command line>: -o: {problem}"


def test_unwritable_output_folder(capsys, tmp_path, monkeypatch):
    # as root every folder is writable: ask os.access as a user would get it
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == ro else real(p, mode))
    assert one_line_error(capsys, ["build", HEAD, "-o", str(ro / "out")]) == \
        f"error: <command line>: -o: {ro / 'out'} cannot be created: {ro} is not writable"


USAGE_CASES = [
    (["verify", "somewhere", "--stall-seed", "-1"],
     "error: attnflow verify: argument --stall-seed: must be an integer >= 0, got '-1' "
     "(see attnflow verify --help)"),
    (["build", HEAD], "error: attnflow build: the following arguments are required: "
                      "-o/--output (see attnflow build --help)"),
    ([], "error: attnflow: the following arguments are required: cmd (see attnflow --help)"),
    (["sim", HEAD, "--seq-len", "x"],
     "error: attnflow sim: argument --seq-len: invalid int value: 'x' (see attnflow sim --help)"),
    (["sim", ""], "error: <command line>: spec: is empty; give a value"),
    (["sim", HEAD, "--target", ""], "error: <command line>: --target: is empty; give a value"),
]


@pytest.mark.parametrize("argv,line", USAGE_CASES,
                         ids=["seed", "no_o", "no_cmd", "int", "empty_spec", "empty_target"])
def test_usage_errors_are_one_line(capsys, argv, line):
    assert one_line_error(capsys, argv) == line


def test_clipped_weights_are_noted(capsys):
    """Weights far outside formats.weight saturate (no wrap-around): the run succeeds with
    its (poor) accuracy and a note says how many weights were clipped; the bundled
    example has none."""
    from attnflow.cli import main
    assert main(["sim", ENC, "--set", "model.weights.std=1e18"]) == 0
    out = capsys.readouterr().out
    assert ("note: model.weights: 100.0 % of the 98304 weights lie outside their format "
            "(s8.6 [-2, 1.98438]) and are clipped; scale the weights or widen "
            "formats.weight") in out
    assert main(["sim", ENC]) == 0
    assert "clipped" not in capsys.readouterr().out


def test_gap_longer_than_a_drawable_gap(capsys):
    """Found by the long fuzz profile: a gap bound past int64 reached numpy's generator
    (ValueError: high is out of bounds) when the gap probability kept the cycle estimate
    under the budget."""
    assert one_line_error(capsys, ["sim", "examples/sdpa_online.yaml",
                                   "--set", "schedule.input_gap_max=9223372036854775807",
                                   "--set", "schedule.input_gap_prob=1e-30"]) == (
        "error: examples/sdpa_online.yaml: schedule.input_gap_max: must be an integer in "
        "1..2147483648, got 9223372036854775807")

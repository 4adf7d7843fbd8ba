"""User input vectors (inputs.file / --inputs): the golden model, the simulator and the
testbench vectors all run on the file's values; bad files are one error line."""
import json

import numpy as np
import pytest

from attnflow.api import prepare
from attnflow.build import build
from attnflow.cli import main
from attnflow.ir.spec import load_spec, spec_to_dict

HEAD = "examples/sdpa_online.yaml"
ENC = "examples/encoder_tiny.yaml"
SMALL = [("model.seq_len", 8), ("model.head_dim", 4)]
ENC_SMALL = [("model.seq_len", 4), ("model.d_model", 8), ("model.d_ff", 16),
             ("model.layers", 1), ("hardware.multiplier_budget", None)]


def _with_file(path, base, extra):
    return load_spec(path, [*extra, ("inputs.file", str(base))])


def test_head_on_stored_integers_equals_the_random_design(tmp_path):
    """The random design's Q, K, V saved as stored integers rebuild the same design:
    same inputs, same golden output, and the simulator equals that golden output."""
    rand = prepare(load_spec(HEAD, SMALL))
    f = tmp_path / "qkv.npz"
    np.savez(f, **{n: rand.inputs[n].astype(np.int16) for n in ("q", "k", "v")})
    user = prepare(_with_file(HEAD, f, SMALL))
    for n in "qkv":
        assert np.array_equal(user.inputs[n], rand.inputs[n])
    res = user.simulate()
    assert np.array_equal(res.outputs["o"]["x"], rand.golden())


def test_head_real_values_are_rounded_half_up(tmp_path):
    q = np.full((8, 4), 0.03125)           # 0.5 lsb of s8.4 -> 1 (half up)
    k = np.full((8, 4), -7.96875)          # -127.5 lsb -> -127
    v = np.arange(32).reshape(8, 4) / 16.0 - 1.0
    f = tmp_path / "qkv.npz"
    np.savez(f, q=q, k=k, v=v)
    d = prepare(_with_file(HEAD, f, SMALL))
    assert (d.inputs["q"] == 1).all() and (d.inputs["k"] == -127).all()
    assert d.inputs["v"].tolist() == (np.arange(32).reshape(8, 4) - 16).tolist()
    assert np.array_equal(d.simulate().outputs["o"]["x"], d.golden())


def test_build_writes_the_file_values_into_the_testbench(tmp_path):
    f = tmp_path / "x.npy"
    x = (np.arange(32).reshape(4, 8) - 16) / 8.0      # stored ints of s16.8: 32 * (i - 16)
    np.save(f, x)
    spec = _with_file(ENC, f, ENC_SMALL)
    design, result, summary = build(spec, tmp_path / "out")
    assert summary["golden_mismatches"] == 0
    stored = (np.arange(32).reshape(4, 8) - 16) * 32
    assert design.x.tolist() == stored.tolist()
    vec = json.loads((tmp_path / "out" / "tb" / "vectors.json").read_text())
    words = design.hw.channels["x"].layout.pack({"x": stored})
    assert vec["inputs"][0]["name"] == "x"
    assert vec["inputs"][0]["tokens"] == [str(w) for w in words]
    # payload packing: element 0 in the low bits, 16 bits each, two's complement
    assert int(vec["inputs"][0]["tokens"][0]) & 0xFFFF == (-16 * 32) & 0xFFFF
    assert (int(vec["inputs"][0]["tokens"][0]) >> 16) & 0xFFFF == (-15 * 32) & 0xFFFF
    # the build folder's spec rebuilds on the same file
    again = load_spec(tmp_path / "out" / "spec.yaml")
    assert again.inputs.file == str(f)
    assert spec_to_dict(again)["inputs"]["file"] == str(f)


@pytest.mark.parametrize("make, message", [
    (lambda p: np.savez(p, q=np.zeros((16, 16)), k=np.zeros((32, 16)), v=np.zeros((32, 16))),
     "array 'q' has shape (16, 16), expected (32, 16) (q in s8.4)"),
    (lambda p: np.savez(p, q=np.zeros((32, 16)), k=np.zeros((32, 16))),
     "arrays q, k: missing v; expected q (32, 16) in s8.4, k (32, 16) in s8.4, v (32, 16) in s8.4"),
    (lambda p: np.savez(p, q=np.zeros((32, 16)), k=np.zeros((32, 16)),
                        v=np.full((32, 16), 8.0)),
     "array 'v': element [0, 0] = 8.0 is outside [-8, 7.9375], the real values of s8.4 (v)"),
    (lambda p: np.savez(p, q=np.zeros((32, 16), np.int32), k=np.zeros((32, 16)),
                        v=np.full((32, 16), 128, np.int32)),
     "array 'v': element [0, 0] = 128 is outside [-128, 127], the stored integers of s8.4 (v)"),
    (lambda p: np.savez(p, q=np.zeros((32, 16), bool), k=np.zeros((32, 16)),
                        v=np.zeros((32, 16))),
     "array 'q' has dtype bool; expected float (real values) or integer (stored integers of s8.4)"),
])
def test_bad_head_files_are_one_line(tmp_path, capsys, make, message):
    f = tmp_path / "in.npz"
    make(f)
    assert main(["sim", HEAD, "--inputs", str(f)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {f}: inputs.file: {message}\n"


def test_wrong_shaped_npy_is_refused_in_one_line(tmp_path, capsys):
    f = tmp_path / "x.npy"
    np.save(f, np.zeros((32, 63)))
    assert main(["build", ENC, "--inputs", str(f), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {f}: inputs.file: the array has shape (32, 63), expected "
                   f"(32, 64) (x in s16.8)\n")
    assert not (tmp_path / "o").exists()          # refused before writing: no empty folder
    (tmp_path / "kept").mkdir()                    # a folder the user had is left alone
    assert main(["build", ENC, "--inputs", str(f), "-o", str(tmp_path / "kept")]) == 2
    assert (tmp_path / "kept").is_dir()


def test_npy_for_a_three_stream_head_and_missing_file(tmp_path, capsys):
    f = tmp_path / "x.npy"
    np.save(f, np.zeros((32, 16)))
    assert main(["sim", HEAD, "--inputs", str(f)]) == 2
    assert capsys.readouterr().err == (
        f"error: {f}: inputs.file: a .npy holds one array, the design has 3 input streams: "
        "give a .npz with arrays q (32, 16) in s8.4, k (32, 16) in s8.4, v (32, 16) in s8.4\n")
    g = tmp_path / "none.npz"
    assert main(["sim", HEAD, "--inputs", str(g)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {g}: inputs.file: file not found; ")


def test_spec_file_path_is_relative_to_the_spec(tmp_path):
    (tmp_path / "v").mkdir()
    np.savez(tmp_path / "v" / "in.npz", q=np.zeros((32, 16)), k=np.zeros((32, 16)),
             v=np.zeros((32, 16)))
    text = open(HEAD).read().replace("  seed: 1                      # RNG seed for the random Q, K, V",
                                     "  file: v/in.npz\n  seed: 1  #")
    (tmp_path / "s.yaml").write_text(text)
    spec = load_spec(tmp_path / "s.yaml")
    assert spec.inputs.file == str(tmp_path / "v" / "in.npz")
    assert (prepare(spec).inputs["q"] == 0).all()


def test_verify_inputs_writes_vectors_for_the_file(tmp_path, capsys):
    from attnflow.verify_inputs import resimulate_on_inputs
    out = tmp_path / "b"
    assert main(["build", HEAD, "-o", str(out), "--set", "model.seq_len=8",
                 "--set", "model.head_dim=4"]) == 0
    rand = prepare(load_spec(out / "spec.yaml"))
    f = tmp_path / "qkv.npz"
    np.savez(f, q=-rand.inputs["q"], k=rand.inputs["k"], v=rand.inputs["v"])
    path = resimulate_on_inputs(out, str(f))
    assert path == (out / "tb" / "vectors_inputs.json").resolve()
    vec = json.loads(path.read_text())
    q = next(s for s in vec["inputs"] if s["name"] == "q")
    layout = rand.hw.channels["q"].layout
    assert q["tokens"] == [str(w) for w in layout.pack({"x": -rand.inputs["q"]})]

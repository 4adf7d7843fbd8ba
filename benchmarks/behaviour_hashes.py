"""Hashes of everything a build writes that must not change when the code is only reshaped:
the emitted Verilog, the testbench vectors (no stalls and one stalled schedule) and sim.json,
for every example and a list of further specs covering each attention kind, lanes, split,
decode, window stacks and decoders.

    python benchmarks/behaviour_hashes.py [-o hashes.txt] [-k SUBSTRING]

Prints one line per file: ``<design> <file> <sha256>``. Run it before and after a refactor
and diff the two outputs (equal files: no behaviour change).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAD, ENC, DEC = "examples/sdpa_online.yaml", "examples/encoder_tiny.yaml", "examples/decoder_tiny.yaml"
SMALL_HEAD = ["model.head_dim=4"]

#: (label, spec file, overrides): the examples, then one spec per kind / lanes / stack shape
CASES = [
    ("ex_online", HEAD, []),
    ("ex_naive", "examples/sdpa_naive.yaml", []),
    ("ex_encoder_tiny", ENC, []),
    ("ex_decoder_tiny", DEC, []),
    ("ex_bert_tiny_n8", "examples/encoder_bert_tiny.yaml", ["model.seq_len=8"]),
    ("ex_hf_bert_n8", "examples/hf_bert_tiny/config.json", ["model.seq_len=8"]),
    ("ex_hf_gpt2_n8", "examples/hf_gpt2_tiny/config.json", ["model.seq_len=8"]),
    ("naive_n8", HEAD, SMALL_HEAD + ["model.seq_len=8", "model.attention.variant=naive"]),
    ("lanes_n7_l3", HEAD, SMALL_HEAD + ["model.seq_len=7", "model.attention.lanes=3"]),
    ("window_n12_w3", HEAD, SMALL_HEAD + ["model.seq_len=12", "model.attention.kind=window",
                                          "model.attention.window=3"]),
    ("window_n12_w3_l3", HEAD, SMALL_HEAD + ["model.seq_len=12", "model.attention.kind=window",
                                             "model.attention.window=3", "model.attention.lanes=3"]),
    ("window_n5_w20", HEAD, SMALL_HEAD + ["model.seq_len=5", "model.attention.kind=window",
                                          "model.attention.window=20"]),
    ("causal_n9", HEAD, SMALL_HEAD + ["model.seq_len=9", "model.attention.kind=causal"]),
    ("causal_n9_l4", HEAD, SMALL_HEAD + ["model.seq_len=9", "model.attention.kind=causal",
                                         "model.attention.lanes=4"]),
    ("causal_window_n12_w3", HEAD, SMALL_HEAD + ["model.seq_len=12", "model.attention.kind=causal",
                                                 "model.attention.window=3"]),
    ("causal_window_n9_w4_l2", HEAD, SMALL_HEAD + ["model.seq_len=9", "model.attention.kind=causal",
                                                   "model.attention.window=4", "model.attention.lanes=2"]),
    ("split_n8_p2", HEAD, SMALL_HEAD + ["model.seq_len=8", "model.attention.split=2"]),
    ("split_n7_p3", HEAD, SMALL_HEAD + ["model.seq_len=7", "model.attention.split=3"]),
    ("decode_n8_s4", HEAD, SMALL_HEAD + ["model.seq_len=8", "model.attention.kind=causal",
                                         "model.attention.decode=4"]),
    ("window_stack_n16_w3", ENC, ["model.seq_len=16", "model.attention.kind=window",
                                  "model.attention.window=3"]),
    ("decoder_n16_cw6_l2", DEC, ["model.seq_len=16", "model.attention.window=6",
                                 "model.attention.lanes=2"]),
    ("decoder_n16_l3", DEC, ["model.seq_len=16", "model.attention.lanes=3"]),
    ("encoder_rms_post_n8", ENC, ["model.seq_len=8", "model.norm=rmsnorm", "model.activation=relu"]),
    ("encoder_budget_700", ENC, ["model.seq_len=8", "hardware.multiplier_budget=700"]),
]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def case_hashes(label: str, spec_file: str, overrides: list[str]) -> list[str]:
    from attnflow.build import build, stall_schedule, row_period, vectors
    from attnflow.ir.spec import load_spec
    spec = load_spec(str(ROOT / spec_file), overrides)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        design, _, _ = build(spec, out, progress=lambda *_: None)
        stalled = design.simulate(stall_schedule(design.spec, 1, row_period(design.hw)))
        (out / "vectors_stall1.json").write_text(repr(vectors(stalled)))
        files = sorted(p for p in out.rglob("*") if p.is_file() and
                       (p.suffix == ".v" or p.name.startswith("vectors") or p.name == "sim.json"))
        return [f"{label} {p.relative_to(out)} {digest(p)}" for p in files]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output")
    ap.add_argument("-k", default="")
    args = ap.parse_args(argv)
    lines = []
    for label, spec_file, overrides in CASES:
        if args.k in label:
            for line in case_hashes(label, spec_file, overrides):
                print(line, flush=True)
                lines.append(line)
    if args.output:
        Path(args.output).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""attnflow's ONNX front-end against onnxruntime on torch.onnx.export graphs of every
family (needs the extra ``hf`` plus ``onnx`` and ``onnxruntime``).

Each tiny model (the family's own random initialisation) is exported with the
torch.export-based exporter (default opset, dynamic sequence axis) and with the
TorchScript exporter at opset 14, each with transformers' eager attention without and
with an ``attention_mask`` input and with its SDPA attention (with the mask input), under
``build/onnx/``; attnflow reads the .onnx, and at the stack output on the family's hidden
states it prints attnflow's float model against onnxruntime (max abs error), the integer
design's cosine and max abs error (activations calibrated on other hidden states) and
the simulator's mismatches against the golden model.

    python benchmarks/onnx_families.py
    python benchmarks/onnx_families.py --only gpt2
    python benchmarks/onnx_families.py --real      # BERT-base N = 128, GPT-2 small N = 256
                                                   # (default exporter only)
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from attnflow import hf_reference as hf  # noqa: E402
from attnflow.onnx_reference import compare, export_model  # noqa: E402
from test_onnx_export import EXPORTERS, MODELS  # noqa: E402

#: real dimensions (vocab 1000: only the embeddings change)
REAL = {
    "bert_base": ("bert", dict(hf.bert_base(), vocab_size=1000), 128),
    "gpt2_small": ("gpt2", dict(hf.gpt2_small(), vocab_size=1000, bos_token_id=0,
                                eos_token_id=0), 256),
}


def run(name: str, exporter: str, out: Path) -> str:
    family, config, n = {**MODELS, **REAL}[name]
    opset, dynamo, dynamic, mask, attention = EXPORTERS[exporter]
    mask = mask and family != "vit"
    path = out / f"{name}_{exporter}.onnx"
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = export_model(family, config, path, n, opset, dynamo, dynamic,
                             attention_mask=mask, attention=attention)
    model = copy.deepcopy(model).double()
    x = hf.hidden_states(model, family, n, 0)
    cal = out / f"{name}_cal.npy"
    np.save(cal, hf.hidden_states(model, family, n, 1))
    c = compare(path, x, n, calibration=cal)
    res = c.design.simulate()
    got = res.outputs[c.design.hw.outputs[0]]["x"]
    mismatches = int(np.count_nonzero(got != c.design.golden()))
    m = c.design.spec.model
    return (f"{name:<11} {exporter:<13} N={n:<3} {m.attention.kind:<6} {m.norm_position:<4} "
            f"{m.activation:<9} float max abs err {c.float_model['max_abs_error']:.2e}  "
            f"integer cosine {c.integer['cosine']:.6f} max abs err "
            f"{c.integer['max_abs_error']:.3g}  sim vs golden {mismatches} mismatches  "
            f"({time.perf_counter() - start:.1f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", choices=list(MODELS) + list(REAL))
    ap.add_argument("--real", action="store_true", help="the real-sized models only")
    ap.add_argument("--out", default=str(ROOT / "build" / "onnx"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.real:
        for name in args.only or list(REAL):
            print(run(name, "default", out), flush=True)
        return
    for name in args.only or list(MODELS):
        for exporter in EXPORTERS:
            if exporter.endswith("_mask") and MODELS[name][0] == "vit":
                continue            # no attention_mask input
            print(run(name, exporter, out), flush=True)


if __name__ == "__main__":
    main()

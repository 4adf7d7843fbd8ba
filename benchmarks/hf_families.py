"""attnflow against transformers on checkpoints of every family, tiny and real-sized.

Needs the optional extra (``pip install -e '.[hf]'``: torch, transformers). Each model is
built from its config with the family's own random initialisation and saved with
``save_pretrained`` under ``build/hf/<name>`` (reused when there); its hidden states are
the family's own embeddings of random tokens (``attnflow.hf_reference``). Printed per
model: attnflow's float model against transformers (max abs error, last layer), the
integer design's cosine and max abs error at the last layer, and its cosine after every
layer.

    python benchmarks/hf_families.py                 # the tiny models of every family
    python benchmarks/hf_families.py --real          # + BERT-base N = 128, GPT-2 small N = 256
    python benchmarks/hf_families.py --only gpt2_small --set formats.weight.bits=16
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attnflow import hf_reference as hf  # noqa: E402

TINY = dict(num_hidden_layers=2, num_attention_heads=2, hidden_size=64,
            intermediate_size=256)
#: name -> (family, config, N)
MODELS = {
    "tiny_bert": ("bert", dict(TINY, max_position_embeddings=64, vocab_size=1000), 32),
    "tiny_roberta": ("roberta", dict(TINY, max_position_embeddings=64, vocab_size=1000), 32),
    "tiny_distilbert": ("distilbert", dict(dim=64, n_layers=2, n_heads=2, hidden_dim=256,
                                          max_position_embeddings=64, vocab_size=1000), 32),
    "tiny_vit": ("vit", dict(TINY, image_size=16, patch_size=4), 17),
    "tiny_gpt2": ("gpt2", dict(n_embd=64, n_layer=2, n_head=2, n_positions=64,
                               vocab_size=1000), 32),
}
REAL = {
    "bert_base": ("bert", dict(hf.bert_base(), vocab_size=1000), 128),
    "gpt2_small": ("gpt2", dict(hf.gpt2_small(), vocab_size=1000), 256),
}


def checkpoint(name: str, family: str, config: dict) -> Path:
    folder = ROOT / "build" / "hf" / name
    if not (folder / "model.safetensors").is_file():
        hf.make_checkpoint(family, config, folder)
    return folder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", action="store_true", help="also BERT-base and GPT-2 small")
    ap.add_argument("--only", nargs="*", help="model names to run")
    ap.add_argument("--set", action="append", default=[], help="attnflow spec overrides")
    ap.add_argument("--seq-len", type=int, help="override every model's N")
    args = ap.parse_args(argv)
    models = dict(MODELS, **(REAL if args.real or args.only else {}))
    if args.only:
        models = {k: v for k, v in models.items() if k in args.only}
    print("| model | N | float max abs err | int cosine | int max abs err | max abs ref "
          "| cosine per layer | s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (family, config, n) in models.items():
        n = args.seq_len or n
        folder = checkpoint(name, family, config)
        t0 = time.perf_counter()
        c = hf.compare(folder, family, n, overrides=args.set)
        last_f, last_i = c.float_model[-1], c.integer[-1]
        per = ", ".join(f"{f['cosine']:.6f}" for f in c.integer)
        print(f"| {name} | {n} | {last_f['max_abs_error']:.2e} | {last_i['cosine']:.6f} | "
              f"{last_i['max_abs_error']:.4f} | {last_i['max_abs_ref']:.3f} | {per} | "
              f"{time.perf_counter() - t0:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

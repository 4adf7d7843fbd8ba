"""Wall time and peak memory of ``attnflow sim`` on real-sized checkpoints (needs the
extra hf to make them: ``pip install -e '.[hf]'``).

For each model (``benchmarks/hf_families.py``'s checkpoints under ``build/hf``), the
family's hidden states of seed 0 are the input and those of seed 1 the calibration, and
``attnflow sim`` runs under ``/usr/bin/time -v``; printed: wall seconds, peak RSS, the
load average before and after (the machine is shared), golden mismatches, cosine.

    python benchmarks/real_size_sim.py                         # BERT-base N 128, GPT-2 N 256
    python benchmarks/real_size_sim.py --only gpt2_small --seq-len 1024 --set model.attention.lanes=4
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from hf_families import MODELS, REAL, checkpoint  # noqa: E402


def hidden(folder: Path, family: str, n: int, seed: int) -> Path:
    import numpy as np
    from attnflow import hf_reference as hf
    path = folder / f"hidden_n{n}_s{seed}.npy"
    if not path.is_file():
        np.save(path, hf.hidden_states(hf.load_model(family, folder), family, n, seed))
    return path


def run(name: str, family: str, config: dict, n: int, extra: list[str]) -> str:
    folder = checkpoint(name, family, config)
    x, cal = hidden(folder, family, n, 0), hidden(folder, family, n, 1)
    attnflow = Path(sys.executable).with_name("attnflow")
    cmd = ["/usr/bin/time", "-v", str(attnflow), "sim", str(folder), "--seq-len", str(n),
           "--inputs", str(x), "--set", f"calibration.file={cal}"]
    for s in extra:
        cmd += ["--set", s]
    load0 = os.getloadavg()[0]
    p = subprocess.run(cmd, capture_output=True, text=True)
    load1 = os.getloadavg()[0]
    wall = re.search(r"Elapsed \(wall clock\) time .*: (\S+)", p.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    last = re.search(r"golden mismatches (\d+); vs float: .*cosine ([0-9.]+)", p.stdout)
    if p.returncode or not (wall and rss and last):
        return f"| {name} | {n} | failed (exit {p.returncode}): {p.stderr.strip()[:200]} |"
    parts = [float(v) for v in wall.group(1).split(":")]
    secs = sum(v * 60 ** i for i, v in enumerate(reversed(parts)))
    return (f"| {name} | {n} | {secs:.1f} | {int(rss.group(1)) / 1e6:.2f} | "
            f"{load0:.1f} - {load1:.1f} | {last.group(1)} | {last.group(2)} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="model names (default: the real-sized ones)")
    ap.add_argument("--seq-len", type=int)
    ap.add_argument("--set", action="append", default=[], help="spec overrides")
    args = ap.parse_args(argv)
    models = {**MODELS, **REAL}
    names = args.only or list(REAL)
    print("| model | N | wall s | peak RSS GB | load | golden mismatches | cosine vs float |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        family, config, n = models[name]
        print(run(name, family, config, args.seq_len or n, args.set), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

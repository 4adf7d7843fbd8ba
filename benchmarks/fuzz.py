"""The long fuzz profile of tests/test_fuzz.py: N generated inputs per family (mutated
spec files, --set values, device files, size and stall fields), run in-process through the CLI under a low
--max-memory / --max-cycles; prints the count per outcome class, the runtime, and every
input outside the accepted classes (a crash, a run past its budget, a malformed error).

    python benchmarks/fuzz.py [N]        (default 300 per family)
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import test_fuzz  # noqa: E402


def main(n: int = 300) -> int:
    import os
    os.chdir(ROOT)
    counts, findings = Counter(), []
    start = time.monotonic()
    test_fuzz._profile(n, counts, findings)
    wall = time.monotonic() - start
    total = sum(counts.values())
    print(f"fuzz: {total} inputs ({n} per family: spec files, --set values, device files, sizes/stalls) "
          f"in {wall:.1f} s ({wall / max(total, 1) * 1000:.0f} ms per input)")
    for kind, count in counts.most_common():
        tag = "accepted" if kind in test_fuzz.ACCEPTED else "FINDING"
        print(f"  {kind:<10} {count:>6}  {tag}")
    for family, kind, detail in findings:
        print(f"{family} {kind}: {detail.splitlines()[0] if detail else ''}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300))

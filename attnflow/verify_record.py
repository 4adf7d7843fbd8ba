"""``attnflow verify`` appends its verdict to the build's ``report.md``: one line per
(simulator, vectors file), replaced when the same check runs again, so the report says
which RTL checks passed (seeds, cycles, PASS/FAIL) without growing on every rerun."""
from __future__ import annotations

from pathlib import Path

HEADING = "## Verification (attnflow verify)"
INTRO = ("RTL against the simulator, every output bit and output cycle; one line per "
         "simulator and vectors file (the latest run).")


def verdict_line(simulator: str, vectors: Path, what: str, res) -> str:
    cycles = f"{res.cycles_simulated} cycles" if res.cycles_simulated else "cycles unknown"
    return (f"- {simulator}, `tb/{vectors.name}` ({what}): **{res.message.split()[0]}** "
            f"{' '.join(res.message.split()[1:])}; {cycles}")


def _what(args, spec_schedule: str) -> str:
    if getattr(args, "stall_seed", None) is not None:
        return f"stall seed {args.stall_seed}"
    parts = [spec_schedule]
    if getattr(args, "inputs", None):
        parts.append(f"inputs {args.inputs}")
    return ", ".join(parts)


def append_verdict(out: Path, args, res, vectors) -> None:
    """Add or replace this run's line in ``out/report.md`` (nothing without a report)."""
    report = Path(out) / "report.md"
    if not report.is_file():
        return
    vec = Path(vectors) if vectors is not None else Path(out) / "tb" / "vectors.json"
    line = verdict_line(args.simulator, vec, _what(args, "the spec's schedule"), res)
    text = report.read_text(encoding="utf-8")
    head, sep, section = text.partition("\n" + HEADING + "\n")
    entries = [ln for ln in section.splitlines() if ln.startswith("- ")] if sep else []
    key = line.split(" (", 1)[0]
    entries = [e for e in entries if e.split(" (", 1)[0] != key] + [line]
    body = "\n".join(entries)
    report.write_text(f"{head.rstrip(chr(10))}\n\n{HEADING}\n\n{INTRO}\n\n{body}\n",
                      encoding="utf-8")

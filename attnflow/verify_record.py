"""``attnflow verify`` records its verdict in the build folder: one entry per (simulator,
vectors file) in ``sim.json`` (``verification``; a rerun of the same check replaces its
entry), and the list rendered into ``report.md`` (section :data:`HEADING`) and
``report.html`` (between :data:`HTML_BEGIN` and :data:`HTML_END`), so both reports say
which RTL checks ran: simulator, vectors, seeds and stall pattern, PASS/FAIL, cycles."""
from __future__ import annotations

import html
import json
from pathlib import Path

from .report_extras import schedule_text

HEADING = "## Verification (attnflow verify)"
INTRO = ("RTL against the simulator, every output bit and output cycle; one line per "
         "simulator and vectors file (the latest run).")
NOT_RUN = "not run yet: `attnflow verify DIR` adds its verdict here."
HTML_BEGIN, HTML_END = "<!-- attnflow verify: begin -->", "<!-- attnflow verify: end -->"


def stimulus_text(schedule, stall_seed: int | None, inputs) -> str:
    """What drove a run: the inputs (a spec's ``InputsSpec``: random with its seed, or
    its file; or the path ``verify --inputs`` gave) and the stall pattern (the spec's
    schedule or a ``--stall-seed``)."""
    if isinstance(inputs, str):
        what = f"inputs {inputs}"
    elif inputs is not None and inputs.file:
        what = f"inputs {inputs.file}"
    else:
        what = f"random inputs, seed {inputs.seed}" if inputs is not None else ""
    stalls = (f"stall seed {stall_seed}: " if stall_seed is not None else
              f"spec schedule, seed {schedule.seed}: ") + schedule_text(schedule)
    return f"{what}; {stalls}" if what else stalls


def verdict_entry(simulator: str, vectors: Path, stimulus: str, res) -> dict:
    """sim.json's record of one run: the verdict is the first word of the message."""
    words = res.message.split()
    return {"simulator": simulator, "vectors": f"tb/{Path(vectors).name}",
            "stimulus": stimulus, "verdict": words[0] if words else "FAIL",
            "message": " ".join(words[1:]), "cycles": res.cycles_simulated}


def md_lines(entries: list[dict]) -> list[str]:
    if not entries:
        return [NOT_RUN]
    return [f"- {e['simulator']}, `{e['vectors']}` ({e['stimulus']}): **{e['verdict']}** "
            f"{e['message']}; "
            + (f"{e['cycles']} cycles" if e["cycles"] else "cycles unknown")
            for e in entries]


def md_section(entries: list[dict]) -> str:
    return "\n".join(["", HEADING, "", INTRO, "", *md_lines(entries)]) + "\n"


def html_section(entries: list[dict]) -> str:
    """The verification section of report.html, markers included."""
    if not entries:
        body = ('<p class="note">not run yet: <code>attnflow verify DIR</code> adds its '
                'verdict here (and to report.md and sim.json).</p>')
    else:
        rows = "".join(
            f"<tr><td class=l>{html.escape(e['simulator'])}</td><td class=l><code>"
            f"{html.escape(e['vectors'])}</code></td><td class=l>"
            f"{html.escape(e['stimulus'])}</td><td class=l><span class="
            f"\"{'ok' if e['verdict'] == 'PASS' else 'bad'}\">{html.escape(e['verdict'])}"
            f"</span> {html.escape(e['message'])}</td><td>{e['cycles'] or '—'}</td></tr>"
            for e in entries)
        body = ("<table><tr><th class=l>simulator</th><th class=l>vectors</th>"
                "<th class=l>stimulus</th><th class=l>verdict</th><th>cycles</th></tr>"
                f"{rows}</table>")
    return (f"{HTML_BEGIN}\n<h2>Verification</h2>\n<p class=\"note\">{html.escape(INTRO)}"
            f"</p>\n{body}\n{HTML_END}")


def _replace_md(text: str, entries: list[dict]) -> str:
    head, sep, _ = text.partition("\n" + HEADING + "\n")
    return f"{head.rstrip(chr(10))}\n{md_section(entries)}"


def _replace_html(text: str, entries: list[dict]) -> str:
    start, end = text.find(HTML_BEGIN), text.find(HTML_END)
    if start >= 0 and end > start:
        return text[:start] + html_section(entries) + text[end + len(HTML_END):]
    at = text.find("<footer>")
    return text if at < 0 else text[:at] + html_section(entries) + "\n" + text[at:]


def record_verdict(out: Path, entry: dict) -> None:
    """Add (or replace) ``entry`` in ``out``'s sim.json and rewrite the verification
    sections of report.md and report.html from the list (files that are absent are
    left absent)."""
    out = Path(out)
    sim_path = out / "sim.json"
    entries: list[dict] = []
    summary = None
    if sim_path.is_file():
        summary = json.loads(sim_path.read_text(encoding="utf-8"))
        entries = list(summary.get("verification") or [])
    key = (entry["simulator"], entry["vectors"])
    entries = [e for e in entries if (e["simulator"], e["vectors"]) != key] + [entry]
    if summary is not None:
        summary["verification"] = entries
        sim_path.write_text(json.dumps(summary, indent=1, sort_keys=False) + "\n",
                            encoding="utf-8")
    for name, replace in (("report.md", _replace_md), ("report.html", _replace_html)):
        path = out / name
        if path.is_file():
            path.write_text(replace(path.read_text(encoding="utf-8"), entries),
                            encoding="utf-8", newline="\n")

"""Every ``attnflow ...`` command of README.md runs as written and exits 0, and prints what
the README shows under it:

- the command lines of its code blocks (a ``# comment`` after a command is dropped;
  synopsis lines with placeholders such as SPEC, DIR or [options] are skipped); in a
  console block (``$ attnflow ...``) every output line the README shows under a command
  must be a line of that command's output (lines saying how long something still runs
  are timing and skipped);
- the complete commands written inline (`` `attnflow build examples/... -o ...` ``);
- the ``--set`` examples of the command-line section, each on the attention head
  example they sit beside (``attnflow sim examples/sdpa_online.yaml --set ...``).

Builds and simulations run in CI; ``verify`` (Verilator, minutes) is marked ``rtl`` and
``slow``, the BERT-tiny-sized build (its Verilog alone takes minutes) ``rtl_full``. The
commands run in a scratch folder holding a link to ``examples/``, so ``build/...``
outputs stay there."""
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
HEAD_EXAMPLE = "examples/sdpa_online.yaml"
#: output lines that depend on the machine's speed
TIMING = re.compile(r"still running|\(\d+(\.\d+)? s\)")


def _synopsis(cmd: str) -> bool:
    return bool(re.search(r"\b[A-Z]{3,}\b|\[|\||\.\.\.", cmd))


def readme_blocks(text: str) -> list[tuple[str, list[str]]]:
    """(command, the output lines the README shows under it) of every code block (a
    console block's commands start with ``$ ``; other blocks show no output)."""
    out = []
    for block in re.findall(r"^ *```[^\n]*\n(.*?)^ *```", text, re.S | re.M):
        lines = [raw.strip() for raw in block.splitlines()]
        console = any(line.startswith("$ ") for line in lines)
        current = None
        for line in lines:
            if console and not line.startswith("$ "):
                if current is not None and line and not TIMING.search(line):
                    current[1].append(line)
                continue
            cmd = re.split(r"\s#", line.removeprefix("$ ").strip(), maxsplit=1)[0].strip()
            current = None
            if cmd.startswith("attnflow ") and not _synopsis(cmd):
                current = (cmd, [])
                out.append(current)
    return out


def inline_commands(text: str) -> list[str]:
    """Complete commands written in inline code: a spec or folder argument, no
    placeholder."""
    out = []
    for span in re.findall(r"(?<!`)`(attnflow [^`]+)`(?!`)", text):
        cmd = " ".join(span.split())
        args = cmd.split()
        if cmd == "attnflow --version":
            out.append(cmd)
        elif len(args) >= 3 and args[1] in ("build", "sim", "resources") and \
                args[2].startswith("examples/") and not _synopsis(cmd):
            out.append(cmd)
    return out


def set_examples(text: str) -> list[str]:
    """The ``--set`` examples of the bullet explaining ``--set``."""
    bullet = text[text.index("- `--set` overrides any spec field"):]
    bullet = bullet[:bullet.index("\n- ")]
    return re.findall(r"`(--set [^`]+)`", bullet)


def excerpts(text: str) -> dict[str, list[str]]:
    """file -> its lines the README quotes as "`build/.../file` (excerpt):" + a block."""
    return {path: [ln.strip() for ln in body.splitlines() if ln.strip()]
            for path, body in re.findall(r"`(build/[^`]+)` \(excerpt\):\s*\n```[^\n]*\n(.*?)^```",
                                         text, re.S | re.M)}


BLOCKS = readme_blocks(README)
EXCERPTS = excerpts(README)
COMMANDS = [c for c, _ in BLOCKS] + inline_commands(README) + [
    f"attnflow sim {HEAD_EXAMPLE} {s}" for s in set_examples(README)]
SHOWN = {c: shown for c, shown in BLOCKS}


def _out_dir(cmd: str) -> str | None:
    args = shlex.split(cmd)
    for flag in ("-o", "--output"):
        if flag in args:
            return args[args.index(flag) + 1]
    return None


def _params():
    for cmd in dict.fromkeys(COMMANDS):
        sub = cmd.split()[1]
        marks = []
        if sub in ("verify", "synth"):
            marks = [pytest.mark.rtl, pytest.mark.slow]
        elif sub == "build" and "hf_bert_tiny" in cmd:
            marks = [pytest.mark.rtl_full]
        yield pytest.param(cmd, marks=marks, id=cmd)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("readme")
    (d / "examples").symlink_to(ROOT / "examples")
    return d


def _run(cmd: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "attnflow.cli", *shlex.split(cmd)[1:]],
                          cwd=cwd, capture_output=True, text=True, timeout=1800)


def test_readme_has_the_commands():
    assert "attnflow build examples/encoder_tiny.yaml -o build/demo" in COMMANDS
    assert "attnflow verify build/demo --stall-seed 1" in COMMANDS
    assert "attnflow build examples/sdpa_online.yaml -o build/head" in COMMANDS
    assert f"attnflow sim {HEAD_EXAMPLE} --set hardware.fifo_depths.s=20" in COMMANDS
    assert not [c for c in COMMANDS if "SPEC" in c or "[" in c]
    assert len(EXCERPTS["build/demo/report.md"]) == 10
    # the worked example shows its output, checked line by line
    assert "[attnflow] simulated: 11912 cycles, 0 mismatches against the golden model" in \
        SHOWN["attnflow build examples/encoder_tiny.yaml -o build/demo"]


@pytest.mark.parametrize("cmd", list(_params()))
def test_readme_command(cmd, workdir):
    args = shlex.split(cmd)
    if args[1] in ("verify", "synth"):
        # the build the README ran before it, on the same folder
        folder = args[2]
        builds = [c for c in COMMANDS if c.split()[1] == "build" and _out_dir(c) == folder]
        assert builds, f"no README build writes {folder}"
        if not (workdir / folder / "run_tb.py").is_file():
            r = _run(builds[0], workdir)
            assert r.returncode == 0, r.stderr
    r = _run(cmd, workdir)
    assert r.returncode == 0, f"{cmd}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    printed = {line.strip() for line in (r.stdout + r.stderr).splitlines()}
    missing = [line for line in SHOWN.get(cmd, []) if line not in printed]
    assert not missing, f"{cmd}: the README shows lines it does not print: {missing}"
    folder = _out_dir(cmd)
    for path, lines in EXCERPTS.items():
        if folder and path.startswith(folder + "/"):
            written = {ln.strip() for ln in (workdir / path).read_text().splitlines()}
            missing = [line for line in lines if line not in written]
            assert not missing, f"{path}: the README quotes lines it does not hold: {missing}"

"""Every ``attnflow ...`` command line in README.md's code blocks runs as written and
exits 0. Builds and simulations run in CI; ``verify`` (Verilator, minutes) is marked
``rtl`` and ``slow``. Synopsis lines (placeholders such as SPEC, DIR or [options]) and
output lines are skipped; a ``# comment`` after a command is dropped. The commands run
in a scratch folder holding a link to ``examples/``, so ``build/...`` outputs stay there."""
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_commands(text: str) -> list[str]:
    out = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, re.S | re.M):
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("$ "):
                line = line[2:].strip()
            if not line.startswith("attnflow "):
                continue
            cmd = re.split(r"\s#", line, maxsplit=1)[0].strip()
            if re.search(r"\b[A-Z]{3,}\b|\[|\||\.\.\.", cmd):     # a synopsis line
                continue
            out.append(cmd)
    return out


COMMANDS = readme_commands((ROOT / "README.md").read_text(encoding="utf-8"))


def _out_dir(cmd: str) -> str | None:
    args = shlex.split(cmd)
    for flag in ("-o", "--output"):
        if flag in args:
            return args[args.index(flag) + 1]
    return None


def _params():
    for cmd in COMMANDS:
        slow = cmd.split()[1] in ("verify", "synth")
        marks = [pytest.mark.rtl, pytest.mark.slow] if slow else []
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
    assert not [c for c in COMMANDS if "SPEC" in c or "[" in c]


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

"""README.md's Python API snippet, run as a script from the repository's folder, prints
exactly the output block the README shows under it."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def snippet_and_output(text: str) -> tuple[str, str]:
    section = text[text.index("## Python API\n"):]
    section = section[:section.index("\n## ", 1)]
    code = re.search(r"^```python\n(.*?)^```", section, re.S | re.M).group(1)
    shown = re.search(r"^```text\n(.*?)^```", section, re.S | re.M).group(1)
    return code, shown


def test_python_api_snippet_prints_what_the_readme_shows(tmp_path):
    code, shown = snippet_and_output((ROOT / "README.md").read_text(encoding="utf-8"))
    assert "print(" in code and shown.count("\n") == 9
    script = tmp_path / "api_snippet.py"
    script.write_text(code, encoding="utf-8")
    r = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout == shown

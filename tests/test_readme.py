"""The Python examples of the README and of docs/integrations.md (where the README's longer
examples live) must run as written.

A block right after a line ``<!-- sketch -->`` shows only the lines thrifty adds to code
that is not all there (a Lightning module, a Hugging Face trainer, a workload file): it is
compiled, not run. Every other block runs and prints its result.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = (README, ROOT / "docs" / "integrations.md")
BLOCK = re.compile(r"(<!-- sketch -->\n)?```python\n(.*?)```", flags=re.S)


def _blocks():
    found = []
    for page in PAGES:
        for i, match in enumerate(BLOCK.finditer(page.read_text())):
            sketch = match.group(1) is not None
            found.append(pytest.param(page, match.group(2), sketch,
                                      id=f"{page.name}-{i}{'-sketch' if sketch else ''}"))
    return found


BLOCKS = _blocks()


def test_readme_has_python_examples():
    runnable = [p for p in BLOCKS if p.values[0] == README and not p.values[2]]
    assert runnable, "README lost its runnable Python API example"


@pytest.mark.parametrize("page,code,sketch", BLOCKS)
def test_python_example_runs(page, code, sketch, tmp_path, monkeypatch, capsys):
    compiled = compile(code, str(page), "exec")  # a sketch must at least be valid Python
    if sketch:
        return
    monkeypatch.chdir(tmp_path)
    exec(compiled, {"__name__": "__readme__"})
    assert capsys.readouterr().out.strip(), "the example should print its result"

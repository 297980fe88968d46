"""The documentation's runnable examples run: every ```python block after ``<!-- run -->``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"<!-- run -->\s*```python\n(.*?)```", re.S)


def examples() -> list[tuple[str, str]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for n, match in enumerate(BLOCK.finditer(page.read_text()), 1):
            found.append((f"{page.name}#{n}", match.group(1)))
    return found


def test_the_docs_have_runnable_examples() -> None:
    assert any(name.startswith("grpc.md") for name, _ in examples())


@pytest.mark.parametrize(("name", "code"), examples(), ids=[name for name, _ in examples()])
def test_example_runs(name: str, code: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code)
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        timeout=60,
        cwd=DOCS.parent,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]

"""Every Python example in the library docs runs as it is (offline, on the simulator).

A docs page whose examples do not run teaches the wrong API; this keeps them true.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = ["library.md", "tasks.md", "recursive.md"]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        path = DOCS / page
        if path.exists():
            for number, code in enumerate(_BLOCK.findall(path.read_text()), start=1):
                found.append((f"{page}#{number}", code))
    return found


def test_the_pages_have_examples():
    assert {name.split("#")[0] for name, _ in blocks()} == set(PAGES)


@pytest.mark.parametrize(("name", "code"), blocks(), ids=[name for name, _ in blocks()])
def test_docs_example_runs(tmp_path, name, code):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, f"{name} failed:\n{result.stderr[-2000:]}"


def test_the_task_listing_in_the_docs_is_what_maker_tasks_prints():
    listing = subprocess.run([sys.executable, "-m", "maker.cli", "tasks"], capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0
    assert listing.stdout in (DOCS / "tasks.md").read_text()

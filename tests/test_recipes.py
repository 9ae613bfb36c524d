"""docs/recipes.md runs as written: each code block, against a real trace, plain and gzip.

The recipes use DuckDB and polars, which the test extra installs; without
them (a developer's minimal install) the blocks are skipped, in CI they must run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from _http import run_maker

RECIPES = Path(__file__).resolve().parent.parent / "docs" / "recipes.md"
BLOCKS = re.findall(r"```python\n(.*?)```", RECIPES.read_text(), flags=re.S)


@pytest.fixture(scope="module", params=[".jsonl", ".jsonl.gz"])
def trace(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("recipes")
    path = where / f"hanoi{request.param}"
    done = run_maker(
        "hanoi", "--disks", "7", "--model", "sim/hostile", "--k", "4", "--trace", str(path), "--quiet", cwd=where
    )
    assert path.exists(), done.stderr
    return path


@pytest.mark.parametrize("block", range(len(BLOCKS)), ids=["duckdb", "polars"][: len(BLOCKS)])
def test_recipe_runs_against_a_real_trace(block: int, trace: Path) -> None:
    code = BLOCKS[block]
    for library in ("duckdb", "polars"):
        if f"import {library}" in code:
            if os.environ.get("CI"):
                __import__(library)
            else:
                pytest.importorskip(library)
    namespace: dict[str, object] = {"TRACE": str(trace)}
    exec(compile(code, str(RECIPES), "exec"), namespace)
    if "rounds" in namespace:  # DuckDB: every decided step is counted once
        assert sum(n for _, n in namespace["rounds"]) == 127  # type: ignore[attr-defined]
    if "hardest" in namespace:
        assert namespace["hardest"].height == 10  # type: ignore[attr-defined]

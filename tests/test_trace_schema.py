"""docs/traces.md, `traces.EVENT_FIELDS` and real runs agree on the trace format.

The page is the contract users read; the table in code is what readers rely on;
real runs are what gets written. Each test pins one pair of them together.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from _scripted import ScriptedBackend, WordStep, vote

import maker
from maker import Totals
from maker.tasks import build_task
from maker.traces import EVENT_FIELDS, OUTCOMES, SCHEMA_VERSION, read_events
from maker.voting import AheadByK, Majority, Voting

DOC = Path(__file__).resolve().parent.parent / "docs" / "traces.md"


def documented() -> tuple[dict[str, dict[str, bool]], dict[str, list[dict[str, Any]]]]:
    """(section → {field: required}, event type → example events) from docs/traces.md.

    Sections are `### \\`type\\`` for events and `#### \\`type.field\\`` for objects inside them.
    """
    tables: dict[str, dict[str, bool]] = {}
    examples: dict[str, list[dict[str, Any]]] = {}
    section = None
    in_json = False
    for line in DOC.read_text(encoding="utf-8").splitlines():
        heading = re.fullmatch(r"#{3,4} `([a-z_.]+)`", line)
        if heading:
            section = heading.group(1)
            tables[section] = {}
            continue
        if line.startswith("## "):
            section = None
        if line.startswith("```"):
            in_json = line == "```json"
            continue
        if section is None:
            continue
        if in_json:
            examples.setdefault(section.split(".")[0], []).append(json.loads(line))
            continue
        row = re.match(r"\| `([a-z_]+)` \| (yes|no) \|", line)
        if row:
            tables[section][row.group(1)] = row.group(2) == "yes"
    return tables, examples


TABLES, EXAMPLES = documented()
EVENTS = {name: table for name, table in TABLES.items() if "." not in name}


def required(event_type: str) -> set[str]:
    return {name for name, must in EVENTS[event_type].items() if must}


def test_the_page_documents_every_event_type_and_nothing_else() -> None:
    assert set(EVENTS) == set(EVENT_FIELDS)


@pytest.mark.parametrize("event_type", sorted(EVENT_FIELDS))
def test_required_fields_on_the_page_are_the_schema_table(event_type: str) -> None:
    assert required(event_type) == set(EVENT_FIELDS[event_type])


@pytest.mark.parametrize("event_type", sorted(EXAMPLES))
def test_the_pages_examples_follow_the_page(event_type: str) -> None:
    for example in EXAMPLES[event_type]:
        assert example["type"] == event_type
        assert required(event_type) <= set(example) <= set(EVENTS[event_type])


def test_the_page_names_every_outcome_and_every_total() -> None:
    text = DOC.read_text(encoding="utf-8")
    for outcome in OUTCOMES:
        assert f"`{outcome}`" in text
    assert set(TABLES["end.totals"]) == {f.name for f in fields(Totals)}
    assert f"(now {SCHEMA_VERSION})" in text


def check(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Every event carries its required fields and only documented ones; return them by type."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        kind = event["type"]
        assert kind in EVENTS, f"undocumented event type {kind!r}"
        keys = set(event)
        assert required(kind) <= keys, f"{kind} lacks {required(kind) - keys}"
        assert keys <= set(EVENTS[kind]), f"{kind} has undocumented {keys - set(EVENTS[kind])}"
        by_type.setdefault(kind, []).append(event)
    header = by_type["header"][0]
    for name in ("task", "voting", "settings"):
        table = TABLES[f"header.{name}"]
        keys = set(header[name])
        assert {f for f, must in table.items() if must} <= keys <= set(table), f"header.{name}: {keys}"
    for end in by_type.get("end", []):
        assert set(end["totals"]) == set(TABLES["end.totals"])
        t = end["totals"]
        assert t["samples"] == t["votes"] + t["red_flags"] + t["late"]
        assert end["outcome"] in OUTCOMES
    return by_type


def test_a_real_hanoi_run_writes_exactly_the_documented_fields(tmp_path: Path) -> None:
    path = tmp_path / "hanoi.jsonl"
    maker.run(build_task("hanoi", disks=5), model="sim/hostile", voting=Voting(rule=AheadByK(3)), trace=path)
    events = list(read_events(path))
    assert events[0]["type"] == "header" and events[-1]["type"] == "end"
    by_type = check(events)
    assert len(by_type["decision"]) == 31
    assert {s["flag"].split(":")[0] for s in by_type["sample"] if s["flag"]} <= {"length", "format", "user"}
    assert any(s["flag"] for s in by_type["sample"])  # the hostile model got red-flagged


def test_a_gzip_trace_reads_back_the_same_events(tmp_path: Path) -> None:
    plain, packed = tmp_path / "t.jsonl", tmp_path / "t.jsonl.gz"
    for path in (plain, packed):
        maker.run(build_task("hanoi", disks=4), model="sim/hostile", voting=Voting(rule=AheadByK(3)), trace=path)
    strip = {"run_id", "created", "wall_s"}
    a = [{k: v for k, v in e.items() if k not in strip} for e in read_events(plain)]
    b = [{k: v for k, v in e.items() if k not in strip} for e in read_events(packed)]
    assert a == b
    assert packed.stat().st_size < plain.stat().st_size / 3


def test_a_dag_run_with_python_steps_late_samples_and_an_error(tmp_path: Path) -> None:
    class Boom:
        def run(self, inputs: dict[str, Any]) -> Any:
            raise ValueError("no")

    graph = nx.DiGraph()
    graph.add_node("word", step=WordStep(truth="A"))
    graph.add_node("boom", step=Boom())
    graph.add_edge("word", "boom")
    path = tmp_path / "dag.jsonl"
    backend = ScriptedBackend([vote("A"), vote("A"), vote("B")])
    result = maker.run(graph, backend=backend, voting=Voting(rule=Majority(3)), trace=path)

    assert result.outcome == "error"
    by_type = check(list(read_events(path)))
    assert [s["late"] for s in by_type["sample"]] == [False, False, True]
    assert [e["error"] for e in by_type["step_error"]] == ["StepFailed"]
    assert by_type["header"][0]["task"] == {"name": "custom", "params": {"nodes": 2, "edges": 1}}


def test_an_independent_run_and_a_model_with_options(tmp_path: Path) -> None:
    path = tmp_path / "ind.jsonl"
    maker.run(build_task("hanoi", disks=6), model="sim/gpt-4.1-mini?error_rate=0.1", independent=[0, 5, 40], trace=path)
    by_type = check(list(read_events(path)))
    header = by_type["header"][0]
    assert (header["mode"], header["steps_evaluated"]) == ("independent", 3)
    assert by_type["end"][0]["outcome"] == "measured"


def test_an_undecided_run(tmp_path: Path) -> None:
    path = tmp_path / "u.jsonl"
    maker.run(
        build_task("hanoi", disks=3),
        model="sim/gpt-4.1-mini?error_rate=0.45&correlated=1",
        voting=Voting(rule=AheadByK(3), max_samples_per_step=6),
        trace=path,
    )
    by_type = check(list(read_events(path)))
    assert by_type["end"][0]["outcome"] == "undecided"
    assert by_type["step_error"][0]["error"] == "VoteUndecided"

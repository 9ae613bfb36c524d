"""The trace writer's fast event encoder writes exactly what json.dumps writes."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from maker.traces._writer import encode_event

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
trees = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20
)


@given(st.dictionaries(st.text(), trees, max_size=8))
def test_fast_encoder_matches_json_dumps(event: dict) -> None:
    assert encode_event(event) == json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def test_a_real_sample_event_round_trips() -> None:
    event = {
        "type": "sample",
        "step": 7,
        "i": 0,
        "temperature": 0.1,
        "text": "move = [1, 0, 2]\nnext_state = ✓",
        "finish": "stop",
        "tokens_in": 600,
        "tokens_out": 538,
        "latency": 0.0,
        "retries": 0,
        "flag": None,
        "key": "[[1, 0, 2], [[2], [], [1]]]",
        "late": False,
    }
    assert json.loads(encode_event(event)) == event

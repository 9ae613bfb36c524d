"""Request options: sampling and output controls sent with every request, for servers that take them.

`top_p`, `top_k`, `min_p`, `stop`, `seed`, `response_format` and llama.cpp's
`grammar`. They come from a model option (`openai/m?top_p=0.9`) or from
`--request-option KEY=VALUE` (repeatable), and are recorded in the trace
header (`request_options`), because they change p: a run is only comparable
to one drawn the same way. Values are typed: JSON where the text is JSON
(`0.9`, `["\\n\\n"]`, `{"type": "json_object"}`), else the plain string.

The OpenAI API takes `top_p`, `stop`, `seed` and `response_format` as
parameters; `top_k`, `min_p` and `grammar` are not in it, and go in the
request body beside them (`extra_body`), where llama.cpp and vLLM read them.

`seed` is a run seed, not a request seed: each request gets its own seed
derived from it, the step and the sample index (`sample_seed`). One seed
sent with every request would make a seeded server answer a step's k
samples identically, and voting would cost k times for one vote. Derived
seeds keep the samples independent draws, and make a rerun (or a resume)
draw the same samples where the server honours seeds (llama.cpp does, for
the same build, model and threads).

Structured output stays opt-in: the format red flag is the paper's main
decorrelation device, and a grammar turns a confused model's garbage (which
the red flag discards) into well-formed wrong votes (which it cannot).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from maker.errors import ConfigError

# Sent as the API's own parameters, and the rest through extra_body.
STANDARD = ("top_p", "stop", "seed", "response_format")
EXTRA = ("top_k", "min_p", "grammar")
KNOWN = STANDARD + EXTRA


def _probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"request option {name} must be a number from 0 to 1, got {value!r}")
    return float(value)


def _whole(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"request option {name} must be an integer, got {value!r}")
    return value


def _top_k(name: str, value: Any) -> int:
    whole = _whole(name, value)
    if whole < 0:
        raise ConfigError(f"request option {name} must be >= 0 (0: off), got {whole}")
    return whole


def _stop(name: str, value: Any) -> str | list[str]:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and 1 <= len(value) <= 4 and all(isinstance(s, str) and s for s in value):
        return list(value)
    raise ConfigError(f"request option {name} must be a string or a list of 1 to 4 strings, got {value!r}")


def _response_format(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str) and value in ("text", "json_object"):
        return {"type": value}
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        return dict(value)
    raise ConfigError(
        f'request option {name} must be "text", "json_object" or an object like {{"type": "json_schema", ...}}, '
        f"got {value!r}"
    )


def _grammar(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"request option {name} must be a GBNF grammar (text), got {value!r}")
    return value


_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "top_p": _probability,
    "min_p": _probability,
    "top_k": _top_k,
    "seed": _whole,
    "stop": _stop,
    "response_format": _response_format,
    "grammar": _grammar,
}


def typed(text: str) -> Any:
    """The value `text` stands for: JSON where it is JSON (numbers, lists, objects, true/false), else the string."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, float) and not math.isfinite(value):
        return text
    return value


def check(options: Mapping[str, Any]) -> dict[str, Any]:
    """Checked request options (unknown names and wrong types are a ConfigError)."""
    out = {}
    for name, value in options.items():
        if name not in _CHECKS:
            raise ConfigError(f"unknown request option {name!r} (known: {', '.join(KNOWN)})")
        out[name] = _CHECKS[name](name, value)
    return out


def parse_pairs(pairs: Iterable[str]) -> dict[str, Any]:
    """`--request-option KEY=VALUE` arguments as checked options; a key given twice is an error."""
    raw: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"--request-option takes KEY=VALUE, got {pair!r}")
        if name in raw:
            raise ConfigError(f"request option {name} is given twice")
        raw[name] = typed(text)
    return check(raw)


def merge(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, Any]:
    """Two sources of options (model name, command line); the same name with two values is an error."""
    out = dict(first)
    for name, value in second.items():
        if name in out and out[name] != value:
            raise ConfigError(f"request option {name} is given twice with different values ({out[name]!r}, {value!r})")
        out[name] = value
    return out


def request_kwargs(options: Mapping[str, Any]) -> dict[str, Any]:
    """What to pass to `chat.completions.create`: the API's own parameters, the rest in `extra_body`."""
    kwargs = {name: options[name] for name in STANDARD if name in options}
    extra = {name: options[name] for name in EXTRA if name in options}
    if extra:
        kwargs["extra_body"] = extra
    return kwargs


__all__ = ["EXTRA", "KNOWN", "STANDARD", "check", "merge", "parse_pairs", "request_kwargs", "typed"]


def sample_seed(seed: int, step: object, sample: int) -> int:
    """The seed for one sample: stable across processes (not `hash()`), distinct per step and sample index."""
    key = f"{seed}|{step!r}|{sample}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "big") & 0x7FFFFFFF


def for_sample(kwargs: Mapping[str, Any], step: object, sample: int) -> dict[str, Any]:
    """`request_kwargs` for one request: the run seed, if any, replaced by the sample's own."""
    out = dict(kwargs)
    if "seed" in out:
        out["seed"] = sample_seed(out["seed"], step, sample)
    return out

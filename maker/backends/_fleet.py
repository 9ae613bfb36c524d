"""Several endpoints serving one model: least-in-flight routing, a governor each, cooldown for a failing one.

A self-hosted fleet (vLLM replicas behind no load balancer, llama.cpp on
several machines) or several provider accounts serve the same model. The
fleet sends each request to the endpoint with the fewest requests of ours
out (waiting in its governor's line or on the wire); each endpoint keeps its
own rate governor, since limits and 429s are per endpoint.

An endpoint that fails (its few quick retries exhausted) is cooled down:
left out of routing for `cooldown` seconds, doubling while it keeps failing,
and the request goes to another endpoint. A run finishes on the healthy ones
with no error as long as one is left; only when every endpoint fails the
same request in turn does it fail. A refusal (bad key, unknown model) is not
a failure of the endpoint but of the run's configuration, and stops it.

`sticky`: a step's samples go to one endpoint (the first one routed to),
so a server's prefix cache holds the step's prompt for every vote.

Each sample records the endpoint that drew it (`endpoint` in the trace).
"""

from __future__ import annotations

import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from maker.backends._governor import Emit
from maker.backends._protocol import Completion, Request
from maker.errors import BackendError, BackendRejected, BackendUnavailable, ConfigError

DEFAULT_COOLDOWN = 5.0
_COOLDOWN_MAX = 300.0
_STICKY_MAX = 1 << 16  # steps remembered for sticky routing


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """One endpoint of a fleet: where, which variable holds its key, and its limits (None: from headers)."""

    base_url: str
    key_env: str | None = None
    rpm: float | None = None
    tpm: float | None = None
    concurrency: int | None = None

    def key(self) -> str | None:
        if self.key_env is None:
            return None
        key = os.environ.get(self.key_env)
        if not key:
            raise ConfigError(f"endpoint {self.base_url}: ${self.key_env} (its key) is not set")
        return key


def load_endpoints(path: str | os.PathLike[str]) -> list[EndpointSpec]:
    """An endpoints file: JSON, a list of {"base_url", "key_env"?, "rpm"?, "tpm"?, "concurrency"?}."""
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"endpoints file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"endpoints file {path}: not JSON ({exc})") from None
    if isinstance(raw, dict):
        raw = raw.get("endpoints")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f'endpoints file {path}: expected a non-empty list of {{"base_url": ...}} objects')
    return [_spec(path, n, item) for n, item in enumerate(raw, 1)]


_FIELDS = {"base_url": str, "key_env": str, "rpm": float, "tpm": float, "concurrency": int}


def _spec(path: str | os.PathLike[str], n: int, item: Any) -> EndpointSpec:
    if not isinstance(item, dict) or not isinstance(item.get("base_url"), str):
        raise ConfigError(f"endpoints file {path}: entry {n} needs a base_url")
    unknown = item.keys() - _FIELDS.keys()
    if unknown:
        raise ConfigError(f"endpoints file {path}: entry {n} has unknown field {sorted(unknown)[0]!r}")
    values: dict[str, Any] = {}
    for name, value in item.items():
        kind = _FIELDS[name]
        ok = isinstance(value, str) if kind is str else isinstance(value, int | float) and not isinstance(value, bool)
        if value is not None and not ok:
            raise ConfigError(f"endpoints file {path}: entry {n}: {name} must be a {kind.__name__}")
        values[name] = kind(value) if value is not None else None
    return EndpointSpec(**values)


class _Member:
    """One endpoint as the fleet sees it: its backend, what is out there, and whether it is cooling down."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.where = str(backend.base_label)
        self.out = 0
        self.failures = 0
        self.cool_until = 0.0
        self.cooldowns = 0


def _described(backend: Any) -> dict[str, Any]:
    options = getattr(backend, "options", None)
    entry: dict[str, Any] = {"base_url": str(backend.base_label)}
    if getattr(backend, "key_env", None):
        entry["key_env"] = backend.key_env
    for name in ("rpm", "tpm", "concurrency"):
        value = getattr(options, name, None)
        if value is not None:
            entry[name] = value
    return entry


class Fleet:
    """Endpoints serving one model, as one backend. Build it with `open_fleet`."""

    def __init__(
        self,
        members: Sequence[Any],
        *,
        sticky: bool = False,
        cooldown: float = DEFAULT_COOLDOWN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not members:
            raise ConfigError("a fleet needs at least one endpoint")
        models = {m.model for m in members}
        if len(models) > 1:
            raise ConfigError(f"a fleet serves one model, got {', '.join(sorted(models))}")
        self.model = members[0].model
        self.members = [_Member(m) for m in members]
        self.sticky = sticky
        self.cooldown = cooldown
        self.request_options = dict(getattr(members[0], "request_options", {}) or {})
        self.where = f"{self.model} at {len(members)} endpoints"
        self._clock = clock
        self._homes: OrderedDict[Hashable, _Member] = OrderedDict()

    @property
    def endpoints(self) -> list[dict[str, Any]]:
        """Each endpoint as the trace header records it: where (credentials removed), whose key, what limits."""
        return [_described(m.backend) for m in self.members]

    def watch(self, emit: Emit | None) -> None:
        for m in self.members:
            m.backend.watch(emit)

    async def aclose(self) -> None:
        for m in self.members:
            await m.backend.aclose()

    # -- routing ---------------------------------------------------------------------------

    def _route(self, request: Request, tried: set[int]) -> _Member:
        now = self._clock()
        home = self._homes.get(request.step) if self.sticky and request.step is not None else None
        if home is not None and id(home) not in tried and home.cool_until <= now:
            return home
        fresh = [m for m in self.members if id(m) not in tried] or self.members
        ready = [m for m in fresh if m.cool_until <= now] or sorted(fresh, key=lambda m: m.cool_until)[:1]
        chosen = min(ready, key=lambda m: (m.out, m.failures))
        if self.sticky and request.step is not None:
            self._homes[request.step] = chosen
            self._homes.move_to_end(request.step)
            if len(self._homes) > _STICKY_MAX:
                self._homes.popitem(last=False)
        return chosen

    async def complete(self, request: Request) -> Completion:
        tried: set[int] = set()
        last: BackendError | None = None
        for _ in range(2 * len(self.members)):
            member = self._route(request, tried)
            wait = member.cool_until - self._clock()
            if wait > 0:
                await anyio.sleep(wait)  # every endpoint is cooling down: wait for the first back
            member.out += 1
            try:
                completion: Completion = await member.backend.complete(request)
            except BackendRejected:
                raise
            except BackendUnavailable as exc:
                last = exc
                tried.add(id(member))
                self._failed(member)
                continue
            finally:
                member.out -= 1
            member.failures = 0
            member.cooldowns = 0
            return completion._replace(endpoint=member.where)
        assert last is not None
        raise BackendUnavailable(
            f"{self.where}: every endpoint failed this request (last: {last})", step=last.step, attempt=last.attempt
        ) from None

    def _failed(self, member: _Member) -> None:
        member.failures += 1
        seconds = min(_COOLDOWN_MAX, self.cooldown * 2.0 ** min(member.cooldowns, 30))
        member.cooldowns += 1
        member.cool_until = max(member.cool_until, self._clock() + seconds)
        governor = getattr(member.backend, "governor", None)
        if governor is not None:
            governor._event("cooldown", seconds=round(seconds, 3))


__all__ = ["EndpointSpec", "Fleet", "load_endpoints"]

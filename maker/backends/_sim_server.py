"""`maker serve-sim`: the simulated model behind an OpenAI-compatible HTTP API.

The replies come from the very `SimModel` the in-process `sim/` backend uses,
so a run over HTTP exercises the real client path (the `openai` package,
connection pooling, timeouts, retries) against a model whose error rates are
known. On top of it, scripted faults: 429 with Retry-After, 500/502/503,
dropped connections, replies slower than the client's timeout, invalid JSON
bodies, `finish_reason = "length"` truncation, and a mode that ignores `n`.

It is a small HTTP/1.1 server on anyio's TCP listener (keep-alive,
Content-Length bodies): no web framework. It listens on 127.0.0.1 only.
Whether a request is faulted is a pure function of (seed, request body, how
many times that body was seen), so a run is reproducible given its seed.

Rate limits (`Limits`: `--rpm`, `--tpm`) are enforced like OpenAI's: token
buckets of `limit` units refilling over a minute (`window`), a request
weighing 1 and its prompt plus `max_tokens`; a request over a limit is a 429
with `x-ratelimit-*` headers (unless `--no-rate-headers`), Retry-After and a
"try again in" hint in the body (unless `--no-retry-after`). Successful
replies carry the same headers, and `usage.prompt_tokens_details.cached_tokens`
(a prompt seen before counts as cached, in 128-token blocks, as OpenAI does).

Endpoints: POST /v1/chat/completions, GET /v1/models, GET /health, and
GET /stats (the server's own counters: requests, faults, peak in-flight).
"""

from __future__ import annotations

import json
import logging
import math
import signal
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from random import Random
from typing import Any

import anyio
from anyio.abc import SocketStream, TaskGroup
from anyio.streams.buffered import BufferedByteReceiveStream

from maker.backends._governor import Bucket, go_duration
from maker.backends._sim import PROFILES, SimModel, SimProfile, input_tokens
from maker.errors import ConfigError
from maker.tasks._protocol import Messages

log = logging.getLogger("maker.serve_sim")

FAULT_KINDS = ("rate_limit", "server_error", "drop", "slow", "bad_json", "truncate")
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_MAX_HEAD = 64 * 1024
_MAX_BODY = 16 * 1024 * 1024
_OPTION_NAMES = ("top_p", "top_k", "min_p", "stop", "seed", "response_format", "grammar")
_SEEN_MAX = 1 << 16  # prompts remembered for sample numbering (a million-step dry run stays small)


@dataclass(frozen=True, slots=True)
class Faults:
    """Share of requests that fail each way (each a probability; they add up to at most 1).

    rate_limit: 429 with `Retry-After` (seconds, rounded up) and `retry-after-ms`.
    server_error: 500, 502 or 503, evenly.
    drop: the connection closes without a reply.
    slow: the reply comes after `slow_seconds` (set it above the client timeout).
    bad_json: 200 with a body that is not JSON.
    truncate: a normal reply cut short with finish_reason "length" (a red flag, not a retry).
    ignore_n: answer one choice whatever `n` asks for (as many local servers do).
    """

    rate_limit: float = 0.0
    server_error: float = 0.0
    drop: float = 0.0
    slow: float = 0.0
    bad_json: float = 0.0
    truncate: float = 0.0
    ignore_n: bool = False
    retry_after: float = 1.0
    slow_seconds: float = 3.0

    def __post_init__(self) -> None:
        for name in FAULT_KINDS:
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ConfigError(f"fault rate {name} must be in [0, 1], got {value}")
        if self.total > 1 + 1e-9:
            raise ConfigError(f"fault rates add up to {self.total:.3f}; they must add up to at most 1")
        if self.retry_after < 0 or self.slow_seconds < 0:
            raise ConfigError("retry_after and slow_seconds must be >= 0")

    @property
    def total(self) -> float:
        return sum(float(getattr(self, name)) for name in FAULT_KINDS)

    @classmethod
    def mixed(cls, total: float, **knobs: Any) -> Faults:
        """`total` spread evenly over every fault kind (`maker serve-sim --faults 0.3`)."""
        share = total / len(FAULT_KINDS)
        # Spelled out (one per FAULT_KINDS entry) so the knobs stay type-checked.
        return cls(
            rate_limit=share, server_error=share, drop=share, slow=share, bad_json=share, truncate=share, **knobs
        )

    def pick(self, roll: float) -> str | None:
        """The fault for a uniform `roll` in [0, 1), or None for a clean reply."""
        edge = 0.0
        for name in FAULT_KINDS:
            edge += getattr(self, name)
            if roll < edge:
                return name
        return None


@dataclass(frozen=True, slots=True)
class Limits:
    """Rate limits the server enforces (None: unlimited), and what it tells clients about them.

    window: seconds the limits are counted over (60, as providers do; shorter for quick benchmarks).
    burst: seconds' worth a bucket holds (default: the whole window). Providers enforce
        per-minute limits over shorter periods ("60,000 RPM may be enforced as 1,000 a second"),
        so a client that spends a minute's allowance at once meets 429s.
    headers: send `x-ratelimit-limit/remaining/reset-{requests,tokens}` on every chat reply.
    retry_after: a 429 carries Retry-After and retry-after-ms.
    body_hint: a 429's message says "Please try again in 289ms".
    """

    rpm: float | None = None
    tpm: float | None = None
    window: float = 60.0
    burst: float | None = None
    headers: bool = True
    retry_after: bool = True
    body_hint: bool = True

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be > 0, got {value}")
        if not self.window > 0:
            raise ConfigError(f"the rate window must be > 0 seconds, got {self.window}")
        if self.burst is not None and not 0 < self.burst <= self.window:
            raise ConfigError(f"burst must be in (0, window] seconds, got {self.burst}")

    def capacity(self, limit: float) -> float:
        """What a bucket holds: the limit, or `burst` seconds of it (at least one request's worth)."""
        return limit if self.burst is None else max(1.0, limit * self.burst / self.window)

    @property
    def active(self) -> bool:
        return self.rpm is not None or self.tpm is not None


class _Enforcer:
    """The server's buckets: admits a request or says how long until it would fit."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        now = time.monotonic()
        self.buckets = {
            kind: Bucket(limits.capacity(limit), limit / limits.window, limits.capacity(limit), now)
            for kind, limit in (("requests", limits.rpm), ("tokens", limits.tpm))
            if limit is not None
        }
        self.limit = {"requests": limits.rpm, "tokens": limits.tpm}

    def admit(self, weight: int) -> tuple[bool, float, str]:
        """(admitted?, seconds until it would be, the limit in the way) for a request of `weight` tokens."""
        now = time.monotonic()
        amounts = {"requests": 1, "tokens": weight}
        waits = {kind: b.wait(amounts[kind], now) for kind, b in self.buckets.items()}
        blocked = max(waits, key=lambda kind: waits[kind], default=None)
        if blocked is not None and waits[blocked] > 0:
            return False, waits[blocked], blocked
        for kind, bucket in self.buckets.items():
            bucket.take(amounts[kind], now)
        return True, 0.0, ""

    def headers(self) -> dict[str, str]:
        if not self.limits.headers:
            return {}
        now = time.monotonic()
        out = {}
        for kind, bucket in self.buckets.items():
            bucket.refill(now)
            out[f"x-ratelimit-limit-{kind}"] = str(int(self.limit[kind] or 0))
            out[f"x-ratelimit-remaining-{kind}"] = str(max(0, int(bucket.level)))
            out[f"x-ratelimit-reset-{kind}"] = go_duration((bucket.capacity - bucket.level) / bucket.rate)
        return out

    def refusal(self, wait: float, kind: str, weight: int) -> _Reply:
        limits = self.limits
        bucket = self.buckets[kind]
        used = int(bucket.capacity - max(0.0, bucket.level))
        limit = int(self.limit[kind] or 0)
        asked = 1 if kind == "requests" else weight
        unit = "RPM" if kind == "requests" else "TPM"
        message = (
            f"Rate limit reached for sim in organization org-sim on {kind} per min ({unit}): "
            f"Limit {limit}, Used {used}, Requested {asked}."
        )
        if limits.body_hint:
            message += f" Please try again in {go_duration(wait)}."
        headers = self.headers()
        if limits.retry_after:
            headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
        reply = _error(429, message, kind, "rate_limit_exceeded")
        reply.headers.update(headers)
        return reply


@dataclass(frozen=True, slots=True)
class SimServerConfig:
    """What `maker serve-sim` serves.

    profile: a name from `PROFILES`, optionally with options (`gpt-4.1-mini?latency=0.02`).
    models: the model ids the server answers to; any other is a 404 like OpenAI's.
    api_key: if set, requests must carry it as a bearer token (else 401).
    """

    profile: str = "gpt-4.1-mini"
    seed: int = 0
    faults: Faults = field(default_factory=Faults)
    models: tuple[str, ...] = ()
    api_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        self.sim_profile()  # validate now, not at the first request
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {self.port}")

    def sim_profile(self) -> SimProfile:
        name, _, query = self.profile.partition("?")
        profile = PROFILES.get(name)
        if profile is None:
            raise ConfigError(f"unknown simulated model {name!r} (profiles: {', '.join(sorted(PROFILES))})")
        options = dict(part.split("=", 1) for part in query.split("&") if "=" in part) if query else {}
        return profile.with_options(options)

    @property
    def model_ids(self) -> tuple[str, ...]:
        return self.models or (self.profile.partition("?")[0],)


@dataclass(slots=True)
class ServerStats:
    """The server's own view of chat requests: what arrived, what was faulted, how many at once.

    requests counts every HTTP request; the rest count chat completions only.
    statuses: replies sent, by HTTP status (dropped connections are not replies).
    """

    requests: int = 0
    chat_requests: int = 0
    completions: int = 0
    choices: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    n_requested: Counter[int] = field(default_factory=Counter)
    rate_limited: int = 0  # 429s for the enforced limits (not the scripted rate_limit fault)
    admitted_tokens: int = 0  # what requests let through weighed against the token limit
    options: Counter[str] = field(default_factory=Counter)  # request options seen (top_p, grammar, …), by name
    seeds: int = 0  # distinct `seed` values seen (a seeded run sends one per sample, not one per run)
    _seed_values: set[int] = field(default_factory=set, repr=False)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["faults"] = dict(self.faults)
        data["statuses"] = {str(k): v for k, v in self.statuses.items()}
        data["n_requested"] = {str(k): v for k, v in self.n_requested.items()}
        data["options"] = dict(self.options)
        data.pop("_seed_values")
        return data


@dataclass(slots=True)
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False  # drop the connection instead of answering


def _json_reply(status: int, payload: Any, **headers: str) -> _Reply:
    return _Reply(status, json.dumps(payload).encode(), dict(headers))


def _error(status: int, message: str, kind: str, code: str | None = None) -> _Reply:
    return _json_reply(status, {"error": {"message": message, "type": kind, "param": None, "code": code}})


class SimServer:
    """The HTTP server. Use `async with serve_sim(config) as server:` (tests) or `run_sim_server` (CLI)."""

    def __init__(self, config: SimServerConfig) -> None:
        self.config = config
        self.model = SimModel(config.sim_profile(), seed=config.seed)
        self.stats = ServerStats()
        self.port = 0
        self._seen: dict[int, int] = {}
        self._prefixes: dict[int, None] = {}  # first messages seen (the cached-prefix model)
        self._limits = _Enforcer(config.limits) if config.limits.active else None

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}/v1"

    # -- connection handling -------------------------------------------------------------

    async def handle(self, stream: SocketStream) -> None:
        """Serve one connection: requests one after another until either side closes."""
        reader = BufferedByteReceiveStream(stream)
        async with stream:
            try:
                while await self._one_request(stream, reader):
                    pass
            except (
                anyio.EndOfStream,
                anyio.IncompleteRead,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
                anyio.DelimiterNotFound,
                ConnectionError,
            ):
                return  # the client went away; nothing to answer
            except Exception:
                log.exception("serve-sim: dropped a connection after an unexpected error")

    async def _one_request(self, stream: SocketStream, reader: BufferedByteReceiveStream) -> bool:
        head = await reader.receive_until(b"\r\n\r\n", _MAX_HEAD)
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, _version = lines[0].split(" ", 2)
        except ValueError:
            await self._send(stream, _error(400, "malformed request line", "invalid_request_error"))
            return False
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        try:
            length = int(headers.get("content-length", "0") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            await self._send(stream, _error(400 if length < 0 else 413, "bad Content-Length", "invalid_request_error"))
            return False
        body = await reader.receive_exactly(length) if length else b""
        self.stats.requests += 1
        reply = await self._route(method, target.split("?", 1)[0], headers, body, reader)
        if reply.close:
            return False
        await self._send(stream, reply)
        return headers.get("connection", "").lower() != "close"

    async def _send(self, stream: SocketStream, reply: _Reply) -> None:
        head = [
            f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}",
            "Content-Type: application/json",
            f"Content-Length: {len(reply.body)}",
        ]
        head += [f"{k}: {v}" for k, v in reply.headers.items()]
        await stream.send(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.body)

    # -- routing ---------------------------------------------------------------------------

    async def _route(
        self, method: str, path: str, headers: dict[str, str], body: bytes, reader: BufferedByteReceiveStream
    ) -> _Reply:
        path = path.rstrip("/")
        if path in ("/v1/health", "/v1/stats"):
            path = path.removeprefix("/v1")
        if path == "/health":
            return _json_reply(200, {"status": "ok"})
        if path == "/stats":
            return _json_reply(200, self.stats.as_dict())
        if path in ("/v1/models", "/models"):
            return self._auth(headers) or _json_reply(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "maker-sim"}
                        for m in self.config.model_ids
                    ],
                },
            )
        if path in ("/v1/chat/completions", "/chat/completions"):
            if method != "POST":
                return _error(405, "use POST", "invalid_request_error")
            return self._auth(headers) or await self._counted(body, reader)
        return _error(404, f"no route for {method} {path}", "invalid_request_error", "not_found")

    def _auth(self, headers: dict[str, str]) -> _Reply | None:
        want = self.config.api_key
        if want is None:
            return None
        given = headers.get("authorization", "").removeprefix("Bearer ").strip()
        if given == want:
            return None
        # Like some real providers, echo what was sent: clients must keep it out of their logs.
        return _error(401, f"Incorrect API key provided: {given}.", "invalid_request_error", "invalid_api_key")

    async def _counted(self, body: bytes, reader: BufferedByteReceiveStream) -> _Reply:
        """A chat request, counted while the server works on it (what a client's limit bounds)."""
        stats = self.stats
        stats.chat_requests += 1
        stats.in_flight += 1
        stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
        try:
            reply = await self._chat(body, reader)
        finally:
            stats.in_flight -= 1
        if not reply.close:
            stats.statuses[reply.status] += 1
        return reply

    async def _chat(self, body: bytes, reader: BufferedByteReceiveStream) -> _Reply:
        try:
            payload = json.loads(body)
            messages = payload["messages"]
            model = payload["model"]
        except (ValueError, KeyError, TypeError):
            return _error(400, "body must be JSON with 'model' and 'messages'", "invalid_request_error")
        if model not in self.config.model_ids:
            return _error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            )
        n = int(payload.get("n") or 1)
        self.stats.n_requested[n] += 1
        self.stats.options.update(k for k in _OPTION_NAMES if k in payload)
        if isinstance(payload.get("seed"), int):
            self.stats._seed_values.add(payload["seed"])
            self.stats.seeds = len(self.stats._seed_values)
        cap = payload.get("max_completion_tokens", payload.get("max_tokens"))
        max_tokens = 4096 if cap is None else int(cap)
        if not isinstance(messages, list) or not messages or max_tokens < 1 or n < 1:
            return _error(
                400, "messages must be a non-empty list, and max_tokens and n at least 1", "invalid_request_error"
            )
        temperature = 1.0 if payload.get("temperature") is None else float(payload["temperature"])
        if self._limits is not None:
            weight = input_tokens(tuple(messages)) + max_tokens * n
            admitted, wait, kind = self._limits.admit(weight)
            if not admitted:
                self.stats.rate_limited += 1
                return self._limits.refusal(wait, kind, weight)
            self.stats.admitted_tokens += weight
        key = zlib.crc32(body)
        seen = self._seen.pop(key, 0)
        self._seen[key] = seen + n  # re-inserted: the dict stays in least-recently-seen order
        if len(self._seen) > _SEEN_MAX:
            del self._seen[next(iter(self._seen))]  # a prompt not seen for this long is done with
        fault = self._fault(key, seen)
        if fault is not None:
            self.stats.faults[fault] += 1
            early = await self._faulted(fault, reader)
            if early is not None:
                return early
        self.stats.completions += 1
        draws = range(seen, seen + (1 if self.config.faults.ignore_n else n))
        cached = self._cached(tuple(messages), seen)
        reply = await self._completion(
            model, tuple(messages), temperature, max_tokens, draws, fault == "truncate", cached
        )
        if self._limits is not None:
            reply.headers.update(self._limits.headers())
        return reply

    def _cached(self, messages: Messages, seen: int) -> int:
        """Prompt tokens a provider's prefix cache would hold: all of a prompt seen before, else a known first message.

        In whole 128-token blocks, and none below 1,024 tokens, as OpenAI counts them.
        """
        prompt = input_tokens(messages)
        first = zlib.crc32(json.dumps(messages[0], sort_keys=True).encode())
        known = first in self._prefixes
        self._prefixes[first] = None
        if len(self._prefixes) > _SEEN_MAX:
            del self._prefixes[next(iter(self._prefixes))]
        if prompt < 1024:
            return 0
        hit = prompt if seen else (input_tokens(messages[:1]) if known else 0)
        return hit // 128 * 128

    def _fault(self, key: int, seen: int) -> str | None:
        faults = self.config.faults
        if faults.total <= 0:
            return None
        return faults.pick(Random(f"{self.config.seed}:{key}:{seen}").random())

    async def _faulted(self, fault: str, reader: BufferedByteReceiveStream) -> _Reply | None:
        """The reply for a fault, or None if the request goes on to a (possibly late) answer."""
        faults = self.config.faults
        wait = faults.retry_after
        if fault == "rate_limit":
            return _json_reply(
                429,
                {
                    "error": {
                        "message": "Rate limit reached; retry later.",
                        "type": "requests",
                        "code": "rate_limit_exceeded",
                    }
                },
                **{"Retry-After": str(math.ceil(wait)), "retry-after-ms": str(int(wait * 1000))},
            )
        if fault == "server_error":
            status = (500, 502, 503)[(self.stats.faults[fault] - 1) % 3]
            return _error(status, "The server had an error while processing your request.", "server_error")
        if fault == "drop":
            return _Reply(0, b"", close=True)
        if fault == "bad_json":
            return _Reply(200, b'{"id": "chatcmpl-sim", "object": "chat.completion", "choices": [{"index": 0, ')
        if fault == "slow":
            # Wait, but stop early if the client gives up and closes the connection.
            with anyio.move_on_after(faults.slow_seconds):
                await reader.receive(1)
                return _Reply(0, b"", close=True)
        return None

    async def _completion(
        self,
        model: str,
        messages: Messages,
        temperature: float,
        max_tokens: int,
        draws: range,
        truncate: bool,
        cached: int = 0,
    ) -> _Reply:
        choices, out_total = [], 0
        latency = 0.0
        for index, draw in enumerate(draws):
            text, finish, out = self.model.reply(messages, temperature, max_tokens, draw)
            if truncate:
                text, finish, out = text[: max(1, len(text) // 4)], "length", max_tokens
            latency = max(latency, self.model.latency(Random(draw * 31 + len(text)), messages))
            choices.append(
                {
                    "index": index,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                    "logprobs": None,
                }
            )
            out_total += out
        if latency > 0:
            await anyio.sleep(latency)
        self.stats.choices += len(choices)
        prompt = input_tokens(messages)
        return _json_reply(
            200,
            {
                "id": f"chatcmpl-sim-{self.stats.completions}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": choices,
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": out_total,
                    "total_tokens": prompt + out_total,
                    "prompt_tokens_details": {"cached_tokens": cached},
                },
            },
        )


@asynccontextmanager
async def serve_sim(config: SimServerConfig | None = None) -> AsyncIterator[SimServer]:
    """Run a `SimServer` in the current event loop for the duration of the block."""
    server = SimServer(config or SimServerConfig())
    if server.config.host not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError("serve-sim listens on loopback only")
    listener = await anyio.create_tcp_listener(local_host=server.config.host, local_port=server.config.port)
    async with listener, anyio.create_task_group() as tg:
        server.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        tg.start_soon(_serve, listener, server.handle, tg)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


async def _serve(listener: Any, handler: Callable[[SocketStream], Any], tg: TaskGroup) -> None:
    await listener.serve(handler, tg)


async def run_sim_server(config: SimServerConfig, on_ready: Callable[[SimServer], None]) -> None:
    """Serve until SIGINT (Ctrl-C) or SIGTERM; `on_ready` gets the listening server."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with serve_sim(config) as server:
            on_ready(server)
            async for _ in signals:
                return

"""`openai/<model>`: any OpenAI-compatible chat-completions server over HTTP.

OpenAI itself, llama.cpp, vLLM, Ollama and `maker serve-sim` all speak this
API, each with quirks, so the backend relies on the common core only: one
request per sample, `temperature` and `max_tokens`; never `logprobs`, `n`
only when asked (`?batch_n=1`) and only while the server honours it, and
sampling options (`top_p`, `top_k`, `min_p`, `stop`, `seed`,
`response_format`, `grammar`) only when asked (`maker.backends._options`).

Where it connects: `base_url` (model option or `--base-url`), else
$MAKER_BASE_URL, else $OPENAI_BASE_URL, else OpenAI. The key comes from
$OPENAI_API_KEY; a local server (loopback, private network, `localhost`)
gets a placeholder when none is set, while a remote one without a key is a
ConfigError before anything is sent. The key is never written anywhere:
error messages are scrubbed of it, and it cannot be put in a model name.

The openai client's own retries are off; `maker.backends._retry` is the one
retry layer. Errors come out as `BackendRejected` (never retried) or
`BackendUnavailable` (retries exhausted), each one readable line.

A server is not trusted to behave: each attempt has an overall deadline
(`timeout`, so a reply trickling in a byte at a time is cut off and retried),
a reply body is capped (`max_reply_bytes`, counted after decompression), and
a 200 of the wrong shape is an invalid reply, retried (`maker.backends._wire`).
Token counts a server reports are used only when they are sane integers;
otherwise they are estimated high (every token is at least one byte).
URLs with credentials (`http://user:pass@host`) are refused: httpx would send
them as Basic auth in place of the key, and a server echoing them leaks them.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Hashable, Iterable
from contextlib import AbstractAsyncContextManager as AsyncContextManager
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from random import Random
from typing import Any, cast
from urllib.parse import urlsplit

import anyio
import httpx
import openai
from anyio.lowlevel import RunVar
from openai import AsyncOpenAI, DefaultAsyncHttpxClient
from openai.types.chat import ChatCompletionMessageParam

from maker._escape import visible
from maker.backends import _options as request_options
from maker.backends._fleet import DEFAULT_COOLDOWN, EndpointSpec, Fleet, load_endpoints
from maker.backends._governor import DEFAULT_MOST, DEFAULT_START, DEFAULT_WINDOW, Emit, Governor, Ticket, body_hint
from maker.backends._protocol import Completion, Request
from maker.backends._registry import ModelName, int_setting
from maker.backends._retry import RetryEvent, RetryPolicy, call_with_retries, parse_retry_after, status_is_transient
from maker.backends._wire import (
    DEFAULT_MAX_REPLY_BYTES,
    BadBody,
    InvalidReply,
    Reply,
    cap_bodies,
    parse_reply,
)
from maker.errors import BackendError, BackendRejected, BackendUnavailable, ConfigError

log = logging.getLogger("maker.backends.openai")

OPENAI_BASE_URL = "https://api.openai.com/v1"
PLACEHOLDER_KEY = "sk-no-key-needed"
_KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{6,}|Bearer\s+\S+)")
_MESSAGE_OVERHEAD = 8  # chat-template tokens around each message, generously (as the budget assumes)


# -- where to connect, with which key ------------------------------------------------------


def resolve_base_url(explicit: str | None = None) -> str:
    """The base URL to connect to, checked once here: a bad one is one ConfigError naming where it came from."""
    for url, source in (
        (explicit, "--base-url or ?base_url="),
        (os.environ.get("MAKER_BASE_URL"), "$MAKER_BASE_URL"),
        (os.environ.get("OPENAI_BASE_URL"), "$OPENAI_BASE_URL"),
    ):
        if url:
            return check_base_url(url, source)
    return OPENAI_BASE_URL


def check_base_url(url: str, source: str = "base URL") -> str:
    """`url` without a trailing slash, if it is an http(s) URL with a host and a usable port."""
    shown = redact_url(url)
    usage = "it must look like http://HOST:PORT/v1"
    try:
        parts = urlsplit(url)
        port = parts.port  # parsed lazily: raises for ':abc' and ':99999'
    except ValueError as exc:
        why = "its port must be a number in 1..65535" if "port" in str(exc).lower() else str(exc)
        raise ConfigError(f"base URL {shown!r} (from {source}) is not a valid URL ({why}); {usage}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"base URL {shown!r} (from {source}) {usage}")
    if port == 0 or parts.netloc.endswith(":"):
        raise ConfigError(f"base URL {shown!r} (from {source}) has no usable port (1..65535); {usage}")
    if parts.username or parts.password:
        raise ConfigError(
            f"base URL {shown!r} holds a user name or password: maker would send them instead of "
            "the API key (and a server may echo them); remove them and set OPENAI_API_KEY"
        )
    return url.rstrip("/")


def is_local(url: str) -> bool:
    """Loopback, private-network or plainly local hosts: servers that usually want no key."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith((".localhost", ".local")) or ("." not in host and ":" not in host):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local


def resolve_key(base_url: str, explicit: str | None = None) -> str:
    key = explicit or os.environ.get("OPENAI_API_KEY")
    if key:
        return key
    if is_local(base_url):
        return PLACEHOLDER_KEY
    raise ConfigError(
        f"no API key for {redact_url(base_url)}: set OPENAI_API_KEY (for a keyless remote server, "
        "set it to any placeholder)"
    )


def redact_url(url: str) -> str:
    """The URL without user:password and query (both can hold secrets), the port as written.

    Never raises: it also shows URLs too broken to parse (`http://[::1/v1`, `:abc`).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return f"{scheme}{sep}{netloc}{slash}{path}"


# -- options -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenAIOptions:
    """Connection settings, from `openai/MODEL?name=value&...` or keyword arguments.

    timeout: seconds per HTTP attempt, start to last byte (a reply still
        arriving then is cut off and retried).
    max_reply_bytes: the most bytes of one reply body read (after
        decompression); a longer one fails its attempt and is retried.
    concurrency: most requests in flight to this endpoint (None: only the run's limit).
    batch_n: send same-temperature samples of a step as one request with `n`
        (pays the input once where `n` is honoured; turns itself off on a
        server that ignores it).
    max_completion_tokens: send the output cap under that name (OpenAI's
        reasoning models reject `max_tokens`).
    governor: pace requests to the endpoint's rate limits (`maker.backends._governor`);
        off, requests go out at the in-flight limit and each 429 backs off alone.
    rpm / tpm: the endpoint's limits by hand, for servers that send no
        `x-ratelimit-*` headers (they also cap what headers say).
    rate_window: seconds the limits count over (60 everywhere; shorter only
        against `maker serve-sim --rate-window`).
    """

    base_url: str | None = None
    timeout: float = 120.0
    concurrency: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    batch_n: bool = False
    batch_window: float = 0.005
    max_completion_tokens: bool = False
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    governor: bool = True
    rpm: float | None = None
    tpm: float | None = None
    rate_window: float = DEFAULT_WINDOW
    request: dict[str, Any] = field(default_factory=dict)  # checked request options (see _options)

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ConfigError(f"request timeout must be > 0 seconds, got {self.timeout}")
        if self.max_reply_bytes < 1024:
            raise ConfigError(f"max_reply_bytes must be >= 1024, got {self.max_reply_bytes}")
        if self.concurrency is not None and self.concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {self.concurrency}")
        for name in ("rpm", "tpm", "rate_window"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a number > 0, got {value}")

    @property
    def pool_size(self) -> int:
        """Connections kept: the in-flight roof (the openai client's own 1,000 would cap a fast tier)."""
        return self.concurrency or DEFAULT_MOST

    @classmethod
    def parse(cls, options: dict[str, str], **explicit: Any) -> OpenAIOptions:
        if {"api_key", "key", "token"} & options.keys():
            raise ConfigError(
                "never put an API key in a model name (it would be written to traces); set OPENAI_API_KEY instead"
            )
        unknown = options.keys() - _PLAIN.keys() - _RETRY.keys() - set(request_options.KNOWN)
        if unknown:
            known = ", ".join(sorted(_PLAIN.keys() | _RETRY.keys() | set(request_options.KNOWN)))
            raise ConfigError(f"unknown openai option {sorted(unknown)[0]!r} (known: {known})")
        named = request_options.check(
            {k: request_options.typed(v) for k, v in options.items() if k in request_options.KNOWN}
        )
        given = explicit.pop("request", None) or {}
        request = request_options.merge(named, request_options.check(given))
        plain = {k: _convert(k, v, _PLAIN[k]) for k, v in options.items() if k in _PLAIN}
        for key, value in explicit.items():
            if value is None:
                continue
            if key in plain and plain[key] != value:
                raise ConfigError(f"{key} is given twice with different values ({plain[key]!r} and {value!r})")
            plain[key] = value
        retry = RetryPolicy(**{k: _convert(k, v, _RETRY[k]) for k, v in options.items() if k in _RETRY})
        return cls(retry=retry, request=request, **plain)


_PLAIN: dict[str, type] = {
    "base_url": str,
    "timeout": float,
    "concurrency": int,
    "batch_n": bool,
    "batch_window": float,
    "max_completion_tokens": bool,
    "max_reply_bytes": int,
    "governor": bool,
    "rpm": float,
    "tpm": float,
    "rate_window": float,
}
_RETRY: dict[str, type] = {
    "max_attempts": int,
    "backoff": float,
    "backoff_max": float,
    "jitter": float,
    "retry_after_max": float,
}


def _convert(name: str, raw: str, kind: type) -> Any:
    if kind is str:
        return raw
    if kind is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"option {name} is yes/no, got {raw!r}")
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"option {name} needs a number, got {raw!r}") from None


# -- the backend ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Batch:
    """Samples of one step at one temperature waiting to share a request with `n`."""

    members: list[Request]
    done: anyio.Event = field(default_factory=anyio.Event)
    results: list[Completion] = field(default_factory=list)
    error: Exception | None = None


@dataclass(slots=True)
class _LoopState:
    client: AsyncOpenAI
    limiter: anyio.CapacityLimiter | None


class OpenAIBackend:
    """One OpenAI-compatible endpoint. `model` is what traces record: `openai/NAME`."""

    def __init__(
        self,
        name: str,
        options: OpenAIOptions | None = None,
        *,
        api_key: str | None = None,
        on_retry: Callable[[RetryEvent], object] | None = None,
        seed: int = 0,
    ) -> None:
        self.options = options or OpenAIOptions()
        self.name = name
        self.model = f"openai/{name}"
        self.base_url = resolve_base_url(self.options.base_url)
        self._key = resolve_key(self.base_url, api_key)
        # One HTTP client (and limiter) per event loop: the blocking `maker.run` runs a
        # fresh loop each call, and a connection pool cannot outlive the loop it was made in.
        self._loop_state: RunVar[_LoopState | None] = RunVar(f"maker-openai-{id(self)}", None)
        self._on_retry = on_retry
        self._rng = Random(seed)
        self._batches: dict[Hashable, _Batch] = {}
        self.base_label = redact_url(self.base_url)
        self.where = f"{self.model} at {self.base_label}"
        self.key_env: str | None = None  # in a fleet: the variable its key came from (recorded, never the key)
        self.n_ignored = False
        self._warned_usage = False
        self.governor = self._governor_for(self.options, seed)
        self.request_options = dict(self.options.request)  # recorded in the trace header
        self._request_kwargs = request_options.request_kwargs(self.options.request)

    @property
    def _state(self) -> _LoopState:
        state = self._loop_state.get()
        if state is None:
            state = _LoopState(self._new_client(), self._new_limiter())
            self._loop_state.set(state)
        return state

    @property
    def _client(self) -> AsyncOpenAI:
        return self._state.client

    @property
    def _limiter(self) -> anyio.CapacityLimiter | None:
        return self._state.limiter

    def _new_client(self) -> AsyncOpenAI:
        return AsyncOpenAI(
            api_key=self._key,
            base_url=self.base_url,
            timeout=self.options.timeout,
            max_retries=0,
            http_client=DefaultAsyncHttpxClient(
                timeout=self.options.timeout,
                event_hooks=cap_bodies(self.options.max_reply_bytes),
                limits=httpx.Limits(
                    max_connections=self.options.pool_size, max_keepalive_connections=self.options.pool_size
                ),
            ),
        )

    def _new_limiter(self) -> anyio.CapacityLimiter | None:
        governed = self.governor is not None  # the governor holds the in-flight ceiling itself
        return anyio.CapacityLimiter(self.options.concurrency) if self.options.concurrency and not governed else None

    async def release_loop(self) -> None:
        """Close this event loop's connections; the backend stays usable (the blocking `maker.run` calls it)."""
        state = self._loop_state.get()
        if state is not None:
            self._loop_state.set(None)
            await state.client.close()

    def _governor_for(self, options: OpenAIOptions, seed: int) -> Governor | None:
        if not options.governor:
            return None
        most = options.concurrency or DEFAULT_MOST
        return Governor(
            self.where,
            rpm=options.rpm,
            tpm=options.tpm,
            window=options.rate_window,
            start=min(DEFAULT_START, most),
            most=most,
            backoff=options.retry.backoff,
            backoff_max=options.retry.backoff_max,
            pause_max=options.retry.retry_after_max,
            seed=seed,
        )

    def watch(self, emit: Emit | None) -> None:
        """Trace the governor's changes through `emit` (None: a last running total, then stop)."""
        if self.governor is not None:
            self.governor.watch(emit)

    async def aclose(self) -> None:
        """Close the connections of the current event loop. Safe in any loop, and twice."""
        await self.release_loop()

    async def complete(self, request: Request) -> Completion:
        if self.options.batch_n and not self.n_ignored:
            return await self._complete_batched(request)
        return (await self._send(request, 1))[0]

    # -- one HTTP request (with retries) -----------------------------------------------------

    def _slot(self) -> AsyncContextManager[Any]:
        return self._limiter if self._limiter is not None else nullcontext()

    async def _send(self, request: Request, n: int) -> list[Completion]:
        start = time.perf_counter()
        async with self._slot():
            try:
                response, retries = await call_with_retries(
                    lambda: self._attempt(request, n),
                    self.options.retry,
                    classify if self.governor is None else governed_classify,
                    rng=self._rng,
                    on_retry=self._retried,
                )
            except (openai.OpenAIError, InvalidReply, BadBody, TimeoutError, ValueError) as exc:
                raise self._error(exc, request) from None  # `from None`: the cause may echo the key
        if response.usage_garbled and not self._warned_usage:
            self._warned_usage = True
            log.warning("%s reports token usage that is not sane counts: estimating it high instead", self.where)
        return self._completions(response, request, retries, time.perf_counter() - start)

    async def _attempt(self, request: Request, n: int) -> Reply:
        """One attempt, through the governor's line when there is one; what came back goes to it."""
        governor = self.governor
        if governor is None:
            return (await self._create(request, n))[0]
        async with governor.slot(rate_weight(request, n)) as ticket:
            try:
                reply, headers = await self._create(request, n)
            except openai.APIStatusError as exc:
                _tell(governor, ticket, exc)
                raise
            except (openai.APITimeoutError, TimeoutError):
                governor.congested(ticket)
                raise
            governor.observe(headers, ticket)
            governor.succeeded(ticket)
        return reply

    async def _create(self, request: Request, n: int) -> tuple[Reply, httpx.Headers]:
        """One attempt, start to last byte within `timeout`: a trickling reply is cut off, not waited for."""
        cap = "max_completion_tokens" if self.options.max_completion_tokens else "max_tokens"
        extra: dict[str, Any] = {cap: request.max_tokens}
        if n > 1:
            extra["n"] = n
        extra.update(request_options.for_sample(self._request_kwargs, request.step, request.sample))
        # Messages are plain {"role", "content"} dicts, which is what the API takes;
        # the client types each role as its own TypedDict, which a dict[str, str] is not.
        messages = cast("Iterable[ChatCompletionMessageParam]", request.messages)
        with anyio.fail_after(self.options.timeout):
            raw = await self._client.chat.completions.with_raw_response.create(
                model=self.name, messages=messages, temperature=request.temperature, **extra
            )
            body = raw.http_response.content  # read already, within the cap
        return parse_reply(body, n), raw.http_response.headers

    def _retried(self, event: RetryEvent) -> None:
        log.debug("%s: attempt %d failed (%s); retrying in %.3f s", self.where, event.attempt, event.reason, event.wait)
        if self._on_retry is not None:
            self._on_retry(event)

    def _error(self, exc: BaseException, request: Request) -> BackendError:
        transient, reason, _ = classify(exc)
        where = (request.step, request.sample)
        if transient:
            attempts = self.options.retry.max_attempts
            message = (
                f"{self.where}: still failing after {attempts} attempt{'s' * (attempts > 1)} "
                f"(last: {self._detail(exc, reason)})"
            )
            return BackendUnavailable(message, step=where[0], attempt=where[1])
        return BackendRejected(self._rejection(exc, reason), step=where[0], attempt=where[1])

    def _rejection(self, exc: BaseException, reason: str) -> str:
        if not isinstance(exc, openai.APIStatusError):
            return f"{self.where}: {self._detail(exc, reason)}"
        status, detail = exc.status_code, self._detail(exc, reason)
        body = exc.body if isinstance(exc.body, dict) else {}
        if status == 401:
            return f"{self.where} rejected the API key ({detail}); check OPENAI_API_KEY"
        if status == 403:
            return f"{self.where} refused access ({detail}); check the key's permissions"
        if status == 404 and (body.get("code") == "model_not_found" or "model" in str(body.get("message", ""))):
            return f"{self.where}: no model named {self.name!r} there ({detail}); check the name after 'openai/'"
        if status == 404:
            return (
                f"{self.where}: {detail}; is this an OpenAI-compatible endpoint? check --base-url "
                "(it usually ends in /v1)"
            )
        if status == 429:
            return f"{self.where}: {detail}; the account is out of quota"
        return f"{self.where} rejected the request ({detail})"

    def _detail(self, exc: BaseException, reason: str) -> str:
        """A short, key-free description of what the server said."""
        text = reason
        if isinstance(exc, openai.APIStatusError):
            body = exc.body
            said = body.get("message") if isinstance(body, dict) else body
            text = f"HTTP {exc.status_code}" + (f": {str(said)[:1000]}" if said else "")
        elif isinstance(exc, (InvalidReply, BadBody)):
            text = f"{reason}: {exc}"
        elif (
            isinstance(exc, openai.APIConnectionError)
            and not isinstance(exc, openai.APITimeoutError)
            and exc.__cause__ is not None
        ):
            text = f"{reason}: {_root(exc.__cause__)}"
        elif isinstance(exc, TimeoutError):
            text = f"{reason} (no complete reply within {self.options.timeout:g} s)"
        return visible(self.scrub(" ".join(str(text).split())))[:300]

    def scrub(self, text: str) -> str:
        """`text` without the API key or anything shaped like one."""
        if len(self._key) >= 4:
            text = text.replace(self._key, "[redacted]")
        return _KEYLIKE.sub("[redacted]", text)

    def scrub_reply(self, text: str) -> str:
        """A model's reply without the API key (which a hostile server may echo into it).

        Only the key itself: key-shaped strings in a reply are the model's own
        words, and rewriting them would change what is voted on.
        """
        if self._key != PLACEHOLDER_KEY and len(self._key) >= 8 and self._key in text:
            return text.replace(self._key, "[redacted]")
        return text

    # -- what a reply cost ---------------------------------------------------------------

    def _completions(self, reply: Reply, request: Request, retries: int, latency: float) -> list[Completion]:
        """One Completion per choice; a batch's input tokens and retries are booked on its first sample."""
        texts = [self.scrub_reply(c.text) for c in reply.choices]
        finishes = [self.scrub_reply(c.finish_reason) if c.finish_reason else None for c in reply.choices]
        tokens_in = reply.prompt_tokens if reply.prompt_tokens is not None else input_bound(request.messages)
        outs = _split_output(texts, finishes, reply.completion_tokens, request.max_tokens)
        cached = reply.cached_tokens if reply.prompt_tokens is not None else None
        return [
            Completion(
                text,
                finish or "unknown",
                tokens_in if i == 0 else 0,
                outs[i],
                latency,
                retries if i == 0 else 0,
                cached if i == 0 else (None if cached is None else 0),
            )
            for i, (text, finish) in enumerate(zip(texts, finishes, strict=True))
        ]

    # -- optional n-batching ---------------------------------------------------------------

    async def _complete_batched(self, request: Request) -> Completion:
        key = (tuple((m["role"], m["content"]) for m in request.messages), request.temperature, request.max_tokens)
        batch = self._batches.get(key)
        if batch is not None:
            slot = len(batch.members)
            batch.members.append(request)
            await batch.done.wait()
            if batch.error is not None:
                raise batch.error
            if slot < len(batch.results):
                return batch.results[slot]
            return (await self._send(request, 1))[0]  # the server ignored n, or the leader was cancelled
        return await self._lead(key, request)

    async def _lead(self, key: Hashable, request: Request) -> Completion:
        batch = self._batches[key] = _Batch([request])
        try:
            # The other samples of the round are being launched right now: let them join.
            await anyio.sleep(self.options.batch_window)
        except BaseException:
            batch.done.set()  # cancelled: whoever joined draws their own sample
            raise
        finally:
            del self._batches[key]
        try:
            batch.results = await self._send(request, len(batch.members))
        except Exception as exc:
            batch.error = exc
            raise
        finally:
            batch.done.set()
        if len(batch.results) < len(batch.members) and not self.n_ignored:
            self.n_ignored = True
            log.warning(
                "%s ignores n (asked %d, got %d): sending one request per sample from now on",
                self.where,
                len(batch.members),
                len(batch.results),
            )
        return batch.results[0]


def _root(exc: BaseException) -> str:
    """The innermost cause's message ("[Errno 111] Connection refused"), or its type."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return str(exc) or type(exc).__name__


def classify(exc: BaseException) -> tuple[bool, str, float | None]:
    """(retry it?, short reason, the server's Retry-After) for an exception from one attempt."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        body = exc.body if isinstance(exc.body, dict) else {}
        if status == 429 and body.get("code") == "insufficient_quota":
            return False, "HTTP 429 insufficient quota", None  # waiting will not refill an account
        return status_is_transient(status), f"HTTP {status}", parse_retry_after(exc.response.headers)
    if isinstance(exc, (openai.APITimeoutError, TimeoutError)):
        return True, "timed out", None
    if isinstance(exc, BadBody):
        return True, "unreadable response body", None
    if isinstance(exc, openai.APIConnectionError):
        if isinstance(exc.__cause__, BadBody):
            return True, "unreadable response body", None
        return True, "connection failed", None
    if isinstance(exc, (json.JSONDecodeError, InvalidReply, openai.APIResponseValidationError)):
        return True, "invalid response body", None
    return False, type(exc).__name__, None


def governed_classify(exc: BaseException) -> tuple[bool, str, float | None]:
    """As `classify`, but a 429 that names no wait waits out the governor's pause (not a backoff of its own)."""
    transient, reason, hint = classify(exc)
    if hint is None and transient:
        hint = getattr(exc, _PAUSE, None)
    return transient, reason, hint


_PAUSE = "maker_governor_pause"  # set on a 429's exception: the pause the governor chose for it


def _tell(governor: Governor, ticket: Ticket, exc: openai.APIStatusError) -> None:
    """What an error reply says about the endpoint's load."""
    headers = exc.response.headers
    body = exc.body if isinstance(exc.body, dict) else {}
    if exc.status_code == 429 and body.get("code") != "insufficient_quota":
        hint = parse_retry_after(headers)
        if hint is None:
            hint = body_hint(str(body.get("message") or exc.message))
        setattr(exc, _PAUSE, governor.throttled(ticket, headers, hint))
        return
    governor.observe(headers)
    if exc.status_code == 503:
        governor.congested(ticket)


def rate_weight(request: Request, n: int = 1) -> int:
    """Tokens a provider counts against TPM: its prompt estimate (about 4 characters a token) plus every output cap."""
    chars = sum(len(str(m["content"])) for m in request.messages)
    return chars // 4 + 4 * len(request.messages) + request.max_tokens * n


def input_bound(messages: Any) -> int:
    """Input tokens at most (no tokenizer here): one a byte, as byte-level BPE never does worse."""
    return sum(len(str(m["content"]).encode()) for m in messages) + _MESSAGE_OVERHEAD * len(messages)


def _split_output(texts: list[str], finishes: list[str | None], total: int | None, cap: int) -> list[int]:
    """Per-choice output tokens: exact for one choice; for several, `usage` gives only the sum.

    Without a sane count from the server, the most it could be: the output
    cap for a reply cut off there, else one token a byte, within the cap.
    """
    if total is None:
        return [
            cap if f == "length" else min(cap, max(1, len(t.encode()))) for t, f in zip(texts, finishes, strict=True)
        ]
    if len(texts) == 1:
        return [total]
    lengths = [max(1, len(t)) for t in texts]
    shares = [total * n // sum(lengths) for n in lengths]
    shares[0] += total - sum(shares)
    return shares


def _mapping(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"request_options must be a mapping of option names to values, got {type(value).__name__}")
    return dict(value)


def open_openai(name: ModelName, settings: dict[str, object]) -> OpenAIBackend | Fleet:
    """The `openai` provider's factory for `open_backend`: one endpoint, or a fleet of several."""
    if settings.get("base_urls") or settings.get("endpoints"):
        return _open_fleet(name, settings)
    options = OpenAIOptions.parse(
        name.options,
        base_url=settings.get("base_url"),
        timeout=settings.get("timeout"),
        concurrency=settings.get("concurrency"),
        rpm=settings.get("rpm"),
        tpm=settings.get("tpm"),
        request=_mapping(settings.get("request_options")),
    )
    api_key, on_retry = _key_and_hook(settings)
    return OpenAIBackend(name.name, options, api_key=api_key, on_retry=on_retry, seed=int_setting(settings, "seed"))


def _key_and_hook(settings: dict[str, object]) -> tuple[str | None, Callable[[RetryEvent], object] | None]:
    api_key, on_retry = settings.get("api_key"), settings.get("on_retry")
    if api_key is not None and not isinstance(api_key, str):
        raise ConfigError(f"api_key must be a string, got {type(api_key).__name__}")
    if on_retry is not None and not callable(on_retry):
        raise ConfigError(f"on_retry must be callable, got {type(on_retry).__name__}")
    return api_key, on_retry


FLEET_ATTEMPTS = 3  # tries on one endpoint of a fleet before another gets the request (and it cools down)


def _fleet_specs(settings: dict[str, object]) -> list[EndpointSpec]:
    endpoints, urls = settings.get("endpoints"), settings.get("base_urls")
    if endpoints is not None and urls:
        raise ConfigError("give several base URLs or an endpoints file, not both")
    if isinstance(endpoints, str | os.PathLike):
        return load_endpoints(endpoints)
    if endpoints is not None:
        if not isinstance(endpoints, list | tuple) or not all(isinstance(e, EndpointSpec) for e in endpoints):
            raise ConfigError("endpoints must be a file path or a list of EndpointSpec")
        return list(endpoints)
    if not isinstance(urls, list | tuple) or not all(isinstance(u, str) for u in urls):
        raise ConfigError("base_urls must be a list of URLs")
    return [EndpointSpec(u) for u in urls]


def _open_fleet(name: ModelName, settings: dict[str, object]) -> Fleet:
    if settings.get("base_url"):
        raise ConfigError("give base_url or base_urls (several endpoints), not both")
    specs = _fleet_specs(settings)
    api_key, on_retry = _key_and_hook(settings)
    seed = int_setting(settings, "seed")
    members = []
    for n, spec in enumerate(specs):
        options = OpenAIOptions.parse(
            name.options,
            base_url=spec.base_url,
            timeout=settings.get("timeout"),
            concurrency=spec.concurrency or settings.get("concurrency"),
            rpm=spec.rpm or settings.get("rpm"),
            tpm=spec.tpm or settings.get("tpm"),
            request=_mapping(settings.get("request_options")),
        )
        quick = replace(options.retry, max_attempts=min(FLEET_ATTEMPTS, options.retry.max_attempts))
        options = replace(options, retry=quick)
        key = spec.key() or api_key
        member = OpenAIBackend(name.name, options, api_key=key, on_retry=on_retry, seed=seed + n)
        member.key_env = spec.key_env  # recorded in the trace header (the name of the variable, never the key)
        members.append(member)
    cooldown = settings.get("cooldown")
    if cooldown is not None and not (isinstance(cooldown, int | float) and cooldown > 0):
        raise ConfigError(f"cooldown must be a number of seconds > 0, got {cooldown!r}")
    return Fleet(
        members, sticky=bool(settings.get("sticky")), cooldown=float(cooldown) if cooldown else DEFAULT_COOLDOWN
    )

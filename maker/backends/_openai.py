"""`openai/<model>`: any OpenAI-compatible chat-completions server over HTTP.

OpenAI itself, llama.cpp, vLLM, Ollama and `maker serve-sim` all speak this
API, each with quirks, so the backend relies on the common core only: one
request per sample, `temperature` and `max_tokens`; never `seed` or
`logprobs`, and `n` only when asked (`?batch_n=1`) and only while the server
honours it.

Where it connects: `base_url` (model option or `--base-url`), else
$MAKER_BASE_URL, else $OPENAI_BASE_URL, else OpenAI. The key comes from
$OPENAI_API_KEY; a local server (loopback, private network, `localhost`)
gets a placeholder when none is set, while a remote one without a key is a
ConfigError before anything is sent. The key is never written anywhere:
error messages are scrubbed of it, and it cannot be put in a model name.

The openai client's own retries are off; `maker.backends._retry` is the one
retry layer. Errors come out as `BackendRejected` (never retried) or
`BackendUnavailable` (retries exhausted), each one readable line.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import time
from collections.abc import Callable, Hashable, Iterable
from contextlib import AbstractAsyncContextManager as AsyncContextManager
from contextlib import nullcontext
from dataclasses import dataclass, field
from random import Random
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import anyio
import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from maker.backends._protocol import Completion, Request
from maker.backends._registry import ModelName, int_setting
from maker.backends._retry import RetryEvent, RetryPolicy, call_with_retries, parse_retry_after, status_is_transient
from maker.backends._sim import input_tokens
from maker.errors import BackendError, BackendRejected, BackendUnavailable, ConfigError

log = logging.getLogger("maker.backends.openai")

OPENAI_BASE_URL = "https://api.openai.com/v1"
PLACEHOLDER_KEY = "sk-no-key-needed"
_KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{6,}|Bearer\s+\S+)")


class _InvalidReply(Exception):
    """A 200 whose body is not a usable chat completion (not JSON, no choices)."""


# -- where to connect, with which key ------------------------------------------------------


def resolve_base_url(explicit: str | None = None) -> str:
    url = explicit or os.environ.get("MAKER_BASE_URL") or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"base URL {redact_url(url)!r} must look like http://HOST:PORT/v1")
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
    """The URL without user:password and query (both can hold secrets)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    if parts.username or parts.password:
        netloc = f"***@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# -- options -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenAIOptions:
    """Connection settings, from `openai/MODEL?name=value&...` or keyword arguments.

    timeout: seconds per HTTP attempt (connect, read, write).
    concurrency: most requests in flight to this endpoint (None: only the run's limit).
    batch_n: send same-temperature samples of a step as one request with `n`
        (pays the input once where `n` is honoured; turns itself off on a
        server that ignores it).
    max_completion_tokens: send the output cap under that name (OpenAI's
        reasoning models reject `max_tokens`).
    """

    base_url: str | None = None
    timeout: float = 120.0
    concurrency: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    batch_n: bool = False
    batch_window: float = 0.005
    max_completion_tokens: bool = False

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ConfigError(f"request timeout must be > 0 seconds, got {self.timeout}")
        if self.concurrency is not None and self.concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {self.concurrency}")

    @classmethod
    def parse(cls, options: dict[str, str], **explicit: Any) -> OpenAIOptions:
        if {"api_key", "key", "token"} & options.keys():
            raise ConfigError(
                "never put an API key in a model name (it would be written to traces); set OPENAI_API_KEY instead"
            )
        unknown = options.keys() - _PLAIN.keys() - _RETRY.keys()
        if unknown:
            known = ", ".join(sorted(_PLAIN.keys() | _RETRY.keys()))
            raise ConfigError(f"unknown openai option {sorted(unknown)[0]!r} (known: {known})")
        plain = {k: _convert(k, v, _PLAIN[k]) for k, v in options.items() if k in _PLAIN}
        for key, value in explicit.items():
            if value is None:
                continue
            if key in plain and plain[key] != value:
                raise ConfigError(f"{key} is given twice with different values ({plain[key]!r} and {value!r})")
            plain[key] = value
        try:
            retry = RetryPolicy(**{k: _convert(k, v, _RETRY[k]) for k, v in options.items() if k in _RETRY})
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return cls(retry=retry, **plain)


_PLAIN: dict[str, type] = {
    "base_url": str,
    "timeout": float,
    "concurrency": int,
    "batch_n": bool,
    "batch_window": float,
    "max_completion_tokens": bool,
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
        self._client = AsyncOpenAI(
            api_key=self._key, base_url=self.base_url, timeout=self.options.timeout, max_retries=0
        )
        self._limiter = anyio.CapacityLimiter(self.options.concurrency) if self.options.concurrency else None
        self._on_retry = on_retry
        self._rng = Random(seed)
        self._batches: dict[Hashable, _Batch] = {}
        self.where = f"{self.model} at {redact_url(self.base_url)}"
        self.n_ignored = False

    async def aclose(self) -> None:
        await self._client.close()

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
                    lambda: self._create(request, n),
                    self.options.retry,
                    classify,
                    rng=self._rng,
                    on_retry=self._retried,
                )
            except (openai.OpenAIError, _InvalidReply, ValueError) as exc:
                raise self._error(exc, request) from None  # `from None`: the cause may echo the key
        return _completions(response, request, retries, time.perf_counter() - start)

    async def _create(self, request: Request, n: int) -> Any:
        cap = "max_completion_tokens" if self.options.max_completion_tokens else "max_tokens"
        extra: dict[str, Any] = {cap: request.max_tokens}
        if n > 1:
            extra["n"] = n
        # Messages are plain {"role", "content"} dicts, which is what the API takes;
        # the client types each role as its own TypedDict, which a dict[str, str] is not.
        messages = cast("Iterable[ChatCompletionMessageParam]", request.messages)
        response = await self._client.chat.completions.create(
            model=self.name, messages=messages, temperature=request.temperature, **extra
        )
        if not getattr(response, "choices", None):
            raise _InvalidReply(
                "a reply without choices" if hasattr(response, "choices") else "a body that is not JSON"
            )
        return response

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
            text = f"HTTP {exc.status_code}" + (f": {said}" if said else "")
        elif isinstance(exc, _InvalidReply):
            text = f"{reason}: {exc}"
        elif (
            isinstance(exc, openai.APIConnectionError)
            and not isinstance(exc, openai.APITimeoutError)
            and exc.__cause__ is not None
        ):
            text = f"{reason}: {_root(exc.__cause__)}"
        return self.scrub(" ".join(str(text).split()))[:300]

    def scrub(self, text: str) -> str:
        """`text` without the API key or anything shaped like one."""
        if len(self._key) >= 4:
            text = text.replace(self._key, "[redacted]")
        return _KEYLIKE.sub("[redacted]", text)

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
    if isinstance(exc, openai.APITimeoutError):
        return True, "timed out", None
    if isinstance(exc, openai.APIConnectionError):
        return True, "connection failed", None
    if isinstance(exc, (json.JSONDecodeError, _InvalidReply, openai.APIResponseValidationError)):
        return True, "invalid response body", None
    return False, type(exc).__name__, None


def _completions(response: Any, request: Request, retries: int, latency: float) -> list[Completion]:
    """One Completion per choice; a batch's input tokens and retries are booked on its first sample."""
    choices = sorted(response.choices, key=lambda c: c.index or 0)
    texts = [(c.message.content if c.message else None) or "" for c in choices]
    usage = getattr(response, "usage", None)
    tokens_in = usage.prompt_tokens if usage and usage.prompt_tokens is not None else input_tokens(request.messages)
    total_out = usage.completion_tokens if usage and usage.completion_tokens is not None else None
    outs = _split_output(texts, [c.finish_reason for c in choices], total_out, request.max_tokens)
    return [
        Completion(
            text,
            choice.finish_reason or "unknown",
            tokens_in if i == 0 else 0,
            outs[i],
            latency,
            retries if i == 0 else 0,
        )
        for i, (text, choice) in enumerate(zip(texts, choices, strict=False))
    ]


def _split_output(texts: list[str], finishes: list[str | None], total: int | None, cap: int) -> list[int]:
    """Per-choice output tokens: exact for one choice; for several, `usage` gives only the sum."""
    if total is None:
        return [cap if f == "length" else max(1, len(t) // 4) for t, f in zip(texts, finishes, strict=False)]
    if len(texts) == 1:
        return [total]
    lengths = [max(1, len(t)) for t in texts]
    shares = [total * n // sum(lengths) for n in lengths]
    shares[0] += total - sum(shares)
    return shares


def open_openai(name: ModelName, settings: dict[str, object]) -> OpenAIBackend:
    """The `openai` provider's factory for `open_backend`."""
    options = OpenAIOptions.parse(
        name.options,
        base_url=settings.get("base_url"),
        timeout=settings.get("timeout"),
        concurrency=settings.get("concurrency"),
    )
    api_key, on_retry = settings.get("api_key"), settings.get("on_retry")
    if api_key is not None and not isinstance(api_key, str):
        raise ConfigError(f"api_key must be a string, got {type(api_key).__name__}")
    if on_retry is not None and not callable(on_retry):
        raise ConfigError(f"on_retry must be callable, got {type(on_retry).__name__}")
    return OpenAIBackend(name.name, options, api_key=api_key, on_retry=on_retry, seed=int_setting(settings, "seed"))

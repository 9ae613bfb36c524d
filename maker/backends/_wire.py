"""What comes off the wire from an OpenAI-compatible server, bounded and checked.

A server is trusted to answer, not to answer sanely. Two defences, both for
every reply the `openai` backend reads:

- `cap_bodies`: httpx event hooks that let at most `cap` bytes of a reply's
  body in, counted after decompression (gzip and deflate are decoded here, a
  bounded 64 KiB at a time, so a 1 MB gzip bomb never becomes 1 GB). A body
  past the cap, an endless one, or one in an encoding we did not ask for is
  `BadBody`: the attempt fails and is retried like any transport error.
- `parse_reply`: the body of a 200 as a chat completion, every field's type
  checked: not UTF-8, not JSON, nested too deeply, `choices` not a list of
  objects, `content` not text, and so on are `InvalidReply` (retried). Token
  counts that are missing, negative or not integers are reported as None,
  and the backend estimates them conservatively instead.

Nothing here trusts the openai client's own parsing: it builds models without
validating them, so a wrong-typed field surfaced later as a traceback.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_MAX_REPLY_BYTES = 4 * 1024 * 1024
_STEP = 64 * 1024  # decompressed bytes produced per step
_MAX_COUNT = 2**40  # a token count beyond this is garbage, not usage
_MAX_FINISH = 64  # characters of finish_reason kept (it goes to the trace)


class BadBody(Exception):
    """A reply body that is too large, endless, or undecodable: a failed attempt, retried."""


class InvalidReply(Exception):
    """A 200 whose body is not a usable chat completion: a failed attempt, retried."""


# -- bounded bodies -------------------------------------------------------------------------


class _CappedBody(httpx.AsyncByteStream):
    """A response stream that decodes and yields at most `cap` bytes, then raises `BadBody`."""

    def __init__(self, inner: Any, decoder: Any, cap: int) -> None:
        self._inner = inner
        self._decoder = decoder
        self._cap = cap
        self._kept = 0

    def _count(self, chunk: bytes) -> bytes:
        self._kept += len(chunk)
        if self._kept > self._cap:
            raise BadBody(f"a reply body over {self._cap:,} bytes (cut off there)")
        return chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for raw in self._inner:
            for chunk in self._decode(raw):
                yield self._count(chunk)
        if self._decoder is not None:
            try:
                tail = self._decoder.flush()
            except zlib.error:
                raise BadBody("a compressed reply body that does not decompress") from None
            if tail:
                yield self._count(tail)

    def _decode(self, data: bytes) -> list[bytes]:
        if self._decoder is None:
            return [data]
        out = []
        try:
            while data:
                out.append(self._decoder.decompress(data, _STEP))
                if not out[-1] and self._decoder.unconsumed_tail == data:
                    break  # no progress (past the end of the compressed stream)
                data = self._decoder.unconsumed_tail
                if sum(map(len, out)) + self._kept > self._cap:
                    break  # `_count` raises on the way out; decode no further
        except zlib.error:
            raise BadBody("a compressed reply body that does not decompress") from None
        return out

    async def aclose(self) -> None:
        await self._inner.aclose()


def cap_bodies(cap: int) -> dict[str, list[Callable[[Any], Awaitable[None]]]]:
    """httpx `event_hooks` that bound every reply body (errors included) to `cap` decoded bytes."""

    async def ask(request: httpx.Request) -> None:
        request.headers["accept-encoding"] = "gzip, deflate"  # what `_CappedBody` decodes

    async def bound(response: httpx.Response) -> None:
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            decoder: Any = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header
        elif encoding in ("", "identity"):
            decoder = None
        else:
            raise BadBody(f"a reply body in an encoding not asked for ({encoding[:20]!r})")
        declared = response.headers.get("content-length", "")
        if decoder is None and declared.isdigit() and int(declared) > cap:
            raise BadBody(f"a reply body of {int(declared):,} bytes, over the cap of {cap:,}")
        if "content-encoding" in response.headers:
            del response.headers["content-encoding"]  # decoded here, not again by httpx
        response.stream = _CappedBody(response.stream, decoder, cap)

    return {"request": [ask], "response": [bound]}


# -- checked replies ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Choice:
    index: int
    text: str
    finish_reason: str | None


@dataclass(frozen=True, slots=True)
class Reply:
    """A chat completion's parts maker uses; a token count is None where the server gave no sane one."""

    choices: list[Choice]
    prompt_tokens: int | None
    completion_tokens: int | None
    usage_garbled: bool  # usage was there but unusable (negative, not integers, not an object)
    cached_tokens: int | None = None  # usage.prompt_tokens_details.cached_tokens, where sent and sane


def parse_reply(body: bytes, most: int) -> Reply:
    """The chat completion in `body`, keeping at most `most` choices (the `n` asked for)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidReply(f"a body that is not UTF-8 (bad byte at offset {exc.start})") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise InvalidReply("a body nested too deeply") from None
    except ValueError:
        raise InvalidReply("a body that is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidReply(f"a JSON {_kind(data)} where an object belongs")
    raw = data.get("choices")
    if not isinstance(raw, list) or not raw:
        raise InvalidReply("a reply without choices" if not raw else f"choices as a {_kind(raw)}, not a list")
    choices = sorted((_choice(c, n) for n, c in enumerate(raw)), key=lambda c: c.index)[:most]
    usage = data.get("usage")
    prompt, completion = _count(usage, "prompt_tokens"), _count(usage, "completion_tokens")
    garbled = usage is not None and (prompt is None or completion is None)
    return Reply(choices, prompt, completion, garbled, _cached(usage, prompt))


def _cached(usage: Any, prompt: int | None) -> int | None:
    """Cached prompt tokens: a sane count no larger than the prompt, else unknown."""
    details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
    cached = _count(details, "cached_tokens")
    return cached if cached is not None and (prompt is None or cached <= prompt) else None


def _choice(raw: Any, position: int) -> Choice:
    if not isinstance(raw, dict):
        raise InvalidReply(f"a choice that is a {_kind(raw)}, not an object")
    message = raw.get("message")
    if message is not None and not isinstance(message, dict):
        raise InvalidReply(f"a message that is a {_kind(message)}, not an object")
    content = (message or {}).get("content")
    if content is not None and not isinstance(content, str):
        raise InvalidReply(f"message content that is a {_kind(content)}, not text")
    finish = raw.get("finish_reason")
    if finish is not None and not isinstance(finish, str):
        raise InvalidReply(f"a finish_reason that is a {_kind(finish)}, not text")
    index = raw.get("index")
    if index is None:
        index = position
    elif type(index) is not int:
        raise InvalidReply(f"a choice index that is a {_kind(index)}, not an integer")
    text = content or ""
    for part in (text, finish or ""):
        try:
            part.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidReply("text with an unpaired surrogate (not valid Unicode)") from None
    return Choice(index, text, finish[:_MAX_FINISH] if finish is not None else None)


def _count(usage: Any, name: str) -> int | None:
    value = usage.get(name) if isinstance(usage, dict) else None
    return value if type(value) is int and 0 <= value <= _MAX_COUNT else None


def _kind(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


__all__ = ["DEFAULT_MAX_REPLY_BYTES", "BadBody", "Choice", "InvalidReply", "Reply", "cap_bodies", "parse_reply"]

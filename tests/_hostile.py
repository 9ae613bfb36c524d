"""A hostile OpenAI-compatible server for tests: `serve-sim`, with its replies spoiled on purpose.

It is `SimServer` (the same HTTP machinery and the same simulated model, so a
clean reply is a right answer), except that `spoil(n)` may replace the reply
to the n-th chat request (1-based) with something a broken or malicious
server would send: a reply trickling in a byte at a time, a 50 MB or endless
body, a gzip bomb, a body of the wrong shape, or bytes written by hand.
Large bodies are generated as they are sent, never held, so what the test
process holds in memory is the client's doing.

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import anyio
import anyio.from_thread
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from maker.backends._sim_server import SimServer, SimServerConfig, _Reply

Send = Callable[[SocketStream, bytes], Awaitable[None]]  # writes a whole HTTP response, given the clean body
Spoil = Callable[[int], "Send | None"]

_CHUNK = 64 * 1024
_HEAD = b'{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"'
_TAIL = b'"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":10}}'


def _head(status: int, length: int | None, **extra: str) -> bytes:
    lines = [f"HTTP/1.1 {status} X", "Content-Type: application/json"]
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# -- what a hostile server sends -----------------------------------------------------------


def body(make: Callable[[dict[str, Any]], bytes | str], status: int = 200, **headers: str) -> Send:
    """A reply whose body is `make(clean reply as a dict)`."""

    async def send(stream: SocketStream, clean: bytes) -> None:
        data = make(json.loads(clean))
        raw = data.encode() if isinstance(data, str) else data
        await stream.send(_head(status, len(raw), **headers) + raw)

    return send


def reshaped(change: Callable[[dict[str, Any]], None]) -> Send:
    """The clean reply, edited in place by `change` (a wrong type here, a negative count there)."""

    def make(reply: dict[str, Any]) -> str:
        change(reply)
        return json.dumps(reply)

    return body(make)


def slow_loris(interval: float = 0.05) -> Send:
    """The clean reply, one byte every `interval` seconds: each read is quick, the reply never ends in time."""

    async def send(stream: SocketStream, clean: bytes) -> None:
        padded = clean + b" " * 100_000  # JSON allows trailing whitespace; hours at this pace
        await stream.send(_head(200, len(padded)))
        for byte in padded:
            await stream.send(bytes([byte]))
            await anyio.sleep(interval)

    return send


def huge(size: int = 50 * 1024 * 1024) -> Send:
    """A well-formed reply whose text is `size` bytes, with an honest Content-Length."""

    async def send(stream: SocketStream, clean: bytes) -> None:
        await stream.send(_head(200, len(_HEAD) + size + len(_TAIL)) + _HEAD)
        for _ in range(size // _CHUNK):
            await stream.send(b"x" * _CHUNK)
        await stream.send(b"x" * (size % _CHUNK) + _TAIL)

    return send


def huge_undeclared(size: int = 50 * 1024 * 1024) -> Send:
    """The same, chunked: no Content-Length to refuse it by."""

    async def send(stream: SocketStream, clean: bytes) -> None:
        await stream.send(_head(200, None) + _chunk(_HEAD))
        for _ in range(size // _CHUNK):
            await stream.send(_chunk(b"x" * _CHUNK))
        await stream.send(_chunk(_TAIL) + b"0\r\n\r\n")

    return send


def endless() -> Send:
    """A chunked body that never ends, as fast as the client reads it."""

    async def send(stream: SocketStream, clean: bytes) -> None:
        await stream.send(_head(200, None) + _chunk(_HEAD))
        while True:
            await stream.send(_chunk(b"x" * _CHUNK))

    return send


def gzip_bomb(inflated: int = 1024 * 1024 * 1024) -> Send:
    """About 1 MB of gzip that inflates to `inflated` bytes of one well-formed reply."""
    bomb = _bomb(inflated)

    async def send(stream: SocketStream, clean: bytes) -> None:
        await stream.send(_head(200, len(bomb), Content_Encoding="gzip") + bomb)

    return send


def gzipped() -> Send:
    """The clean reply, gzip-compressed (what a proxy in front of a real server may do)."""

    async def send(stream: SocketStream, clean: bytes) -> None:
        packer = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        packed = packer.compress(clean) + packer.flush()
        await stream.send(_head(200, len(packed), Content_Encoding="gzip") + packed)

    return send


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@cache
def _bomb(inflated: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    parts = [packer.compress(_HEAD)]
    block = b"x" * (1024 * 1024)
    for _ in range(inflated // len(block)):
        parts.append(packer.compress(block))
    parts += [packer.compress(_TAIL), packer.flush()]
    return b"".join(parts)


# -- which requests are spoiled ------------------------------------------------------------


def always(send: Send) -> Spoil:
    return lambda n: send


def first(count: int, send: Send) -> Spoil:
    """The first `count` chat requests spoiled, the rest answered cleanly: a retry must get through."""
    return lambda n: send if n <= count else None


@dataclass(slots=True)
class _Spoiled(_Reply):
    send: Send | None = None


class HostileServer(SimServer):
    def __init__(self, config: SimServerConfig, spoil: Spoil) -> None:
        super().__init__(config)
        self.spoil = spoil
        self.spoiled = 0  # replies spoiled so far

    async def _counted(self, body: bytes, reader: BufferedByteReceiveStream) -> _Reply:
        reply = await super()._counted(body, reader)
        send = self.spoil(self.stats.chat_requests)
        if send is None or reply.close:
            return reply
        self.spoiled += 1
        return _Spoiled(reply.status, reply.body, reply.headers, False, send)

    async def _send(self, stream: SocketStream, reply: _Reply) -> None:
        if isinstance(reply, _Spoiled) and reply.send is not None:
            await reply.send(stream, reply.body)
        else:
            await super()._send(stream, reply)


@asynccontextmanager
async def serve_hostile(spoil: Spoil, **config: Any) -> AsyncIterator[HostileServer]:
    """A `HostileServer` in this event loop for the block (model id `perfect`, every answer right)."""
    server = HostileServer(SimServerConfig(profile="perfect", **config), spoil)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with listener, anyio.create_task_group() as tg:
        server.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        tg.start_soon(listener.serve, server.handle, tg)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


@contextmanager
def hostile_in_thread(spoil: Spoil, **config: Any) -> Iterator[HostileServer]:
    """The same server on its own thread and event loop, for `maker` runs in a subprocess."""
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(serve_hostile(spoil, **config)) as server,
    ):
        assert threading.current_thread() is threading.main_thread()
        yield server

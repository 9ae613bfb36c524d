"""Shared fixtures: tests run on anyio's asyncio backend (the scripted, in-process
modules, test_scheduler and test_microagent, on trio too), and no test may talk
to anything but loopback (a real model endpoint on the internet would be a
silent dependency, and a cost)."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check(address: Any) -> None:
    if isinstance(address, tuple) and address:
        host = address[0]
        try:
            ip = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            raise RuntimeError(
                f"test tried to connect to unresolved host {host!r}; tests may only use loopback"
            ) from None
        if not ip.is_loopback:
            raise RuntimeError(f"test tried to connect to {host}; tests may only use loopback")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check(address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def loopback_only() -> Any:
    """Fail any connection to a non-loopback address, in this process."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]

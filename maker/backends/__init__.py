"""Backends: where a sample is drawn. One request in, one `Completion` out.

`sim/PROFILE` is the in-process simulated model; `openai/MODEL` any
OpenAI-compatible HTTP server (OpenAI, llama.cpp, vLLM, Ollama, `maker
serve-sim`); other providers register themselves with `register_provider`.
`SimServer` and `LocalServer` are servers to point `openai/` at (docs/backends.md).
"""

from __future__ import annotations

from typing import Any

from maker._local_server import LocalServer, LocalServerConfig
from maker.backends._protocol import Backend, Completion, Request
from maker.backends._registry import ModelName, open_backend, register_provider
from maker.backends._retry import RetryEvent, RetryPolicy
from maker.backends._sim import PROFILES, SimBackend, SimModel, SimProfile
from maker.backends._sim_server import Faults, SimServer, SimServerConfig, serve_sim

__all__ = [
    "PROFILES",
    "Backend",
    "Completion",
    "Faults",
    "LocalServer",
    "LocalServerConfig",
    "ModelName",
    "OpenAIBackend",
    "OpenAIOptions",
    "Request",
    "RetryEvent",
    "RetryPolicy",
    "SimBackend",
    "SimModel",
    "SimProfile",
    "SimServer",
    "SimServerConfig",
    "open_backend",
    "register_provider",
    "serve_sim",
]


def __getattr__(name: str) -> Any:
    # The openai package takes a while to import: only when asked for.
    if name in ("OpenAIBackend", "OpenAIOptions"):
        from maker.backends import _openai

        return getattr(_openai, name)
    raise AttributeError(f"module 'maker.backends' has no attribute {name!r}")

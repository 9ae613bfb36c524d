"""Backends: where a sample is drawn. One request in, one `Completion` out.

`sim/PROFILE` is the in-process simulated model; other providers register
themselves with `register_provider`.
"""

from __future__ import annotations

from maker.backends._protocol import Backend, Completion, Request
from maker.backends._registry import ModelName, open_backend, register_provider
from maker.backends._sim import PROFILES, SimBackend, SimModel, SimProfile

__all__ = [
    "PROFILES",
    "Backend",
    "Completion",
    "ModelName",
    "Request",
    "SimBackend",
    "SimModel",
    "SimProfile",
    "open_backend",
    "register_provider",
]

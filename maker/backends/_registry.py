"""Model names → backends. Names follow `provider/model[?option=value&...]`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import SupportsIndex
from urllib.parse import parse_qsl

from maker.backends._protocol import Backend
from maker.backends._sim import PROFILES, SimBackend
from maker.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ModelName:
    """A parsed model name: `sim/gpt-4.1-mini?latency=0.02` → provider, name, options."""

    provider: str
    name: str
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> ModelName:
        head, _, query = text.partition("?")
        provider, sep, name = head.partition("/")
        if not sep or not provider or not name:
            raise ConfigError(
                f"model {text!r} must look like provider/model, e.g. sim/gpt-4.1-mini or openai/gpt-4.1-mini"
            )
        try:
            options = dict(parse_qsl(query, strict_parsing=True)) if query else {}
        except ValueError:
            raise ConfigError(f"model {text!r}: options after '?' must be name=value pairs joined by '&'") from None
        return cls(provider, name, options)


BackendFactory = Callable[[ModelName, dict[str, object]], Backend]
_PROVIDERS: dict[str, BackendFactory] = {}


def int_setting(settings: Mapping[str, object], key: str, default: int = 0) -> int:
    """An integer setting (None: the default); anything else that is not a whole number is a ConfigError."""
    value = settings.get(key)
    if value is None:
        return default
    # SupportsIndex, not int: numpy's integers count too, floats do not.
    if isinstance(value, bool) or not isinstance(value, str | SupportsIndex):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{key} must be an integer, got {value!r}") from None


def register_provider(provider: str, factory: BackendFactory) -> None:
    """Teach `open_backend` a new provider prefix."""
    _PROVIDERS[provider] = factory


def _open_sim(name: ModelName, settings: dict[str, object]) -> Backend:
    profile = PROFILES.get(name.name)
    if profile is None:
        raise ConfigError(f"unknown simulated model {name.name!r} (profiles: {', '.join(sorted(PROFILES))})")
    profile = profile.with_options(name.options)
    oracles = settings.get("oracles")  # a user's own steps (maker.sim_backend); default: the tasks'
    if oracles is not None and not isinstance(oracles, Iterable):
        raise ConfigError(f"oracles must be a list of oracles, got {type(oracles).__name__}")
    return SimBackend(
        f"sim/{name.name}",
        profile,
        seed=int_setting(settings, "seed"),
        oracles=list(oracles) if oracles is not None else None,
    )


register_provider("sim", _open_sim)


def _open_openai(name: ModelName, settings: dict[str, object]) -> Backend:
    # Imported on first use: the openai package takes a moment to import.
    from maker.backends._openai import open_openai

    return open_openai(name, settings)


register_provider("openai", _open_openai)


def open_backend(model: str, **settings: object) -> Backend:
    """Build the backend a model name asks for; unknown providers are a ConfigError."""
    name = ModelName.parse(model)
    factory = _PROVIDERS.get(name.provider)
    if factory is None:
        raise ConfigError(
            f"unknown model provider {name.provider!r} in {model!r} (known: {', '.join(sorted(_PROVIDERS))})"
        )
    return factory(name, settings)

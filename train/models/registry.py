"""A timm-style registry of model factories, one namespace per kind (teacher, student).

Usage::

    @register_model("teacher", "convnext_atto_s4g")
    def _convnext_atto(**kwargs) -> nn.Module: ...

    model = create_model("teacher", "convnext_atto_s4g", embed_dim=512)

Registering a name twice is an error, and an unknown name lists the valid ones and the
closest match, so a typo never silently falls back to something else. The registry knows
none of its models: ``train.models`` imports the model modules, whose decorators register
them (timm's direction).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

_REGISTRY: dict[str, dict[str, Callable[..., Any]]] = {}


class UnknownModelError(KeyError, ValueError):
    """An unknown model name; the message lists the registered names and the closest one.

    A ``ValueError`` too, so the CLIs report it as a user error (exit 2, no traceback); a
    ``KeyError`` for callers that looked names up like a mapping.
    """

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def register_model(kind: str, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``fn`` as the factory of model ``name`` of ``kind``."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        table = _REGISTRY.setdefault(kind, {})
        if name in table:
            raise ValueError(f"{kind} model {name!r} is already registered by {table[name]!r}")
        table[name] = fn
        return fn

    return deco


def list_models(kind: str) -> list[str]:
    """Sorted names registered for ``kind``."""
    return sorted(_REGISTRY.get(kind, {}))


def create_model(kind: str, name: str, **kwargs: Any) -> Any:
    """Build the registered model ``name`` of ``kind`` with factory ``kwargs``."""
    table = _REGISTRY.get(kind, {})
    if name not in table:
        close = difflib.get_close_matches(name, list(table), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownModelError(
            f"unknown {kind} model {name!r}.{hint} Registered {kind} models: "
            f"{', '.join(sorted(table)) or '(none)'}"
        )
    return table[name](**kwargs)

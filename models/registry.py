"""The registry half of the zoo's contract (timm-style).

A model is registered under a short name by decorating its class (or any factory returning a
:class:`~pyro.nn.PyroModule`)::

    @register_model("bnn")
    class BayesianMLP(ZooModel): ...

    model = create_model("bnn", in_features=1, widths=(50,))

Guides register themselves in :mod:`guides.registry` against the model names they support; the pair
list (:func:`guides.registry.list_pairs`) is what the parametrised tests and the CLI iterate over.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable
from typing import Any


class Registry:
    """A name -> factory table that refuses duplicates and explains unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, factory: Callable[..., Any], **meta: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            raise ValueError(
                f"a {self.kind} named {name!r} is already registered "
                f"(by {self._entries[name].__module__}.{self._entries[name].__qualname__}); "
                "pick another name"
            )
        self._entries[name] = factory
        self._meta[name] = meta

    def unregister(self, name: str) -> None:
        """Remove ``name`` (used by tests that register throw-away entries)."""
        self._entries.pop(name, None)
        self._meta.pop(name, None)

    def get(self, name: str) -> Callable[..., Any]:
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), self._entries, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise KeyError(
                f"unknown {self.kind} {name!r}; registered: {', '.join(sorted(self._entries))}.{hint}"
            ) from None

    def meta(self, name: str) -> dict[str, Any]:
        self.get(name)
        return self._meta[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries


MODELS = Registry("model")


def register_model(name: str, **meta: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Class/function decorator registering a model factory under ``name``.

    :param str name: the registry name (``create_model(name)``); duplicates raise ``ValueError``.
    :param meta: free-form metadata shown by ``python -m experiments pairs`` (e.g. ``family="bnn"``).
    """

    def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
        MODELS.register(name, factory, **meta)
        return factory

    return decorator


def create_model(name: str, **cfg: Any):
    """Instantiate the model registered as ``name`` with keyword configuration ``cfg``."""
    return MODELS.get(name)(**cfg)


def model_name_of(model) -> str | None:
    """The registered name of ``model``'s class (``None`` if it was not registered)."""
    for name in MODELS.names():
        factory = MODELS.get(name)
        if isinstance(factory, type) and type(model) is factory:
            return name
    return None


def list_models() -> list[str]:
    return MODELS.names()


def import_submodules(package_name: str) -> None:
    """Import every module of a package so that their ``@register_*`` decorators run.

    This is what makes "drop a file into ``models/`` or ``guides/``" enough to register a pair.
    """
    package = importlib.import_module(package_name)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package_name}.{info.name}")

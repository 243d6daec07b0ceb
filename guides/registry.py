"""The guide half of the contract: ``register_guide(name, models=(...))`` and ``create_guide``.

A guide *builder* takes the model and keyword configuration and returns a callable guide with the
model's signature (``guide(x, y=None)``), in the shape of Pyro's autoguides
(``AutoNormal(model)``). A guide may also define ``elbo_context()``, a context manager (a Pyro
effect handler) that :func:`experiments.common.training.fit` enters around every loss evaluation;
the mean-field guide uses it for the local reparameterisation trick and flipout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from models.registry import MODELS, Registry

GUIDES = Registry("guide")


def register_guide(name: str, models: Sequence[str], **meta: Any):
    """Decorator registering a guide builder ``build(model, **cfg) -> guide`` for ``models``.

    :param str name: registry name, e.g. ``"mean-field"``.
    :param models: names of the registered models this guide supports (their pairs are tested).
    """
    if isinstance(models, str) or not models:
        raise ValueError(f"models must be a non-empty sequence of model names, got {models!r}")

    def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
        GUIDES.register(name, builder, models=tuple(models), **meta)
        return builder

    return decorator


def create_guide(name: str, model, **cfg: Any):
    """Build the guide registered as ``name`` for ``model``."""
    return GUIDES.get(name)(model, **cfg)


def list_guides() -> list[str]:
    return GUIDES.names()


def list_pairs() -> list[tuple[str, str]]:
    """Every (model, guide) pair of registered names, sorted; pairs naming an unregistered model
    are left out."""
    return sorted(
        (m, g) for g in GUIDES.names() for m in GUIDES.meta(g)["models"] if m in MODELS
    )

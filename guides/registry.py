"""The guide half of the contract: ``register_guide(name, models=(...))`` and ``create_guide``.

A guide *builder* takes the model and keyword configuration and returns a callable guide with the
model's signature (``guide(x, y=None)``), in the shape of Pyro's autoguides
(``AutoNormal(model)``). The hooks ``fit`` and the predictive call on a guide are declared by
:class:`guides.base.ZooGuide` (``elbo_context(closed_form_kl=False)``, ``predictive_guide(*data)``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

from models.registry import MODELS, Registry, model_name_of

from .base import ZooGuide

GUIDES = Registry("guide")
#: the names of guides built by create_guide that are not ZooGuide objects (no attribute to hold it)
_OTHER_NAMES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def register_guide(name: str, models: Sequence[str], **meta: Any):
    """Decorator registering a guide builder ``build(model, **cfg) -> guide`` for ``models``.

    :param str name: registry name, e.g. ``"mean-field"``; one builder per name (families whose
        guides differ take their own names, e.g. ``mean-field`` for weights and ``mean-field-u``
        for inducing values).
    :param models: names of the registered models this guide supports (their pairs are tested).
    """
    if isinstance(models, str) or not models:
        raise ValueError(f"models must be a non-empty sequence of model names, got {models!r}")

    def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
        GUIDES.register(name, builder, models=tuple(models), **meta)
        return builder

    return decorator


def guide_builder(name: str, model_name: str | None = None) -> Callable[..., Any]:
    """The builder registered as ``name``; with ``model_name``, checked to support that model."""
    builder = GUIDES.get(name)
    supported = GUIDES.meta(name)["models"]
    if model_name is not None and model_name not in supported:
        valid = sorted(g for m, g in list_pairs() if m == model_name)
        raise ValueError(f"guide {name!r} supports models {sorted(supported)}, not "
                         f"{model_name!r}; the guides of {model_name!r} are {valid}")
    return builder


def create_guide(name: str, model, **cfg: Any):
    """Build the guide registered as ``name`` for ``model`` (a model of another class, e.g. a
    user's subclass, is accepted: the builder only reads what it needs)."""
    model_name = model_name_of(model)
    guide = guide_builder(name, model_name if model_name in MODELS else None)(model, **cfg)
    if isinstance(guide, ZooGuide):  # read by guide_name_of (e.g. fit's CUDA-graph support list)
        guide.zoo_guide_name = name
    else:  # a builder may return another callable (a plain Pyro guide, a function)
        try:
            _OTHER_NAMES[guide] = name
        except TypeError:  # (not weakly referable)
            pass
    return guide


def guide_name_of(guide) -> str | None:
    """The registered name ``guide`` was built under by :func:`create_guide`
    (:attr:`guides.base.ZooGuide.zoo_guide_name`; ``None`` for a guide built otherwise)."""
    if isinstance(guide, ZooGuide):
        return guide.zoo_guide_name
    try:
        return _OTHER_NAMES.get(guide)
    except TypeError:
        return None


def list_guides() -> list[str]:
    return GUIDES.names()


def list_pairs() -> list[tuple[str, str]]:
    """Every (model, guide) pair of registered names, sorted; pairs naming an unregistered model
    are left out."""
    return sorted(
        (m, g) for g in GUIDES.names() for m in GUIDES.meta(g)["models"] if m in MODELS
    )

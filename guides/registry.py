"""The guide half of the contract: ``register_guide(name, models=(...))`` and ``create_guide``.

A guide *builder* takes the model and keyword configuration and returns a callable guide with the
model's signature (``guide(x, y=None)``), in the shape of Pyro's autoguides
(``AutoNormal(model)``). A guide may also define ``elbo_context()``, a context manager (a Pyro
effect handler) that :func:`experiments.common.training.fit` enters around every loss evaluation;
the mean-field guide uses it for the local reparameterisation trick and flipout. If
``elbo_context`` takes a keyword ``closed_form_kl``, ``fit`` passes ``closed_form_kl=True`` for
the ``"meanfield"`` ELBO (:class:`experiments.common.elbo.MeanFieldELBO`: KL in closed form where
torch registers it, latent values read nowhere else), so a guide may skip work only a Monte Carlo
KL needs (the mean-field guide skips the weight draw under local reparameterisation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from models.registry import MODELS, Registry, model_name_of

GUIDES = Registry("guide")
# (guide name, model name) -> builder, for guide names shared by several model families
_BUILDERS: dict[tuple[str, str], Callable[..., Any]] = {}


def register_guide(name: str, models: Sequence[str], **meta: Any):
    """Decorator registering a guide builder ``build(model, **cfg) -> guide`` for ``models``.

    :param str name: registry name, e.g. ``"mean-field"``. One name may be registered again for
        a *disjoint* set of models (the mean-field guide of a BNN and of a GP are different code
        under one name): :func:`create_guide` then picks the builder by the model's registered
        name.
    :param models: names of the registered models this guide supports (their pairs are tested).
    """
    if isinstance(models, str) or not models:
        raise ValueError(f"models must be a non-empty sequence of model names, got {models!r}")

    def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in GUIDES:
            taken = set(GUIDES.meta(name)["models"]) & set(models)
            if taken:
                raise ValueError(f"guide {name!r} is already registered for models "
                                 f"{sorted(taken)}; pick another name")
            GUIDES.meta(name)["models"] = GUIDES.meta(name)["models"] + tuple(models)
        else:
            GUIDES.register(name, builder, models=tuple(models), **meta)
        for m in models:
            _BUILDERS[(name, m)] = builder
        return builder

    return decorator


def guide_builder(name: str, model_name: str | None = None) -> Callable[..., Any]:
    """The builder registered as ``name`` for the model registered as ``model_name``."""
    builder = GUIDES.get(name)
    builders = {m: b for (g, m), b in _BUILDERS.items() if g == name}
    if len(set(builders.values())) > 1:
        if model_name not in builders:
            raise ValueError(f"guide {name!r} supports models {sorted(builders)}, not "
                             f"{model_name!r}")
        builder = builders[model_name]
    return builder


def create_guide(name: str, model, **cfg: Any):
    """Build the guide registered as ``name`` for ``model``."""
    model_name = model_name_of(model)
    try:
        builder = guide_builder(name, model_name)
    except ValueError:
        raise ValueError(f"guide {name!r} supports models "
                         f"{sorted(m for (g, m) in _BUILDERS if g == name)}, not "
                         f"{model_name or type(model).__name__!r}") from None
    return builder(model, **cfg)


def list_guides() -> list[str]:
    return GUIDES.names()


def list_pairs() -> list[tuple[str, str]]:
    """Every (model, guide) pair of registered names, sorted; pairs naming an unregistered model
    are left out."""
    return sorted(
        (m, g) for g in GUIDES.names() for m in GUIDES.meta(g)["models"] if m in MODELS
    )

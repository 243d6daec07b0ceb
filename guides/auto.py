"""Pyro autoguide builders, each ``build(model, **cfg) -> guide``.

Every builder starts the guide's location at the model's :meth:`initial_values` (e.g.
Kaiming-uniform weights) through :func:`pyro.infer.autoguide.init_to_value`; sites the model does
not initialise fall back to Pyro's ``init_to_median``.

Notes
- ``auto-normal`` draws each site as a ``Delta`` around an auxiliary ``Normal``; the ELBO is the
  same but :class:`~pyro.infer.TraceMeanField_ELBO` cannot use a closed-form KL with it (use
  ``mean-field`` for that).
- ``laplace`` trains a MAP point (like ``map``); call ``guide.laplace_approximation(x, y)`` after
  training for the Gaussian at the mode (its Hessian costs O(P^2) memory in P parameters: small
  nets only). :func:`experiments.common.predictive.posterior_guide` does this for you.
"""

from __future__ import annotations

import contextlib

from pyro.infer.autoguide import (
    AutoDelta,
    AutoIAFNormal,
    AutoLaplaceApproximation,
    AutoLowRankMultivariateNormal,
    AutoNormal,
    init_to_median,
    init_to_value,
)
from pyro.nn import PyroModule

from .registry import register_guide


def _init_loc_fn(model):
    return init_to_value(values=model.initial_values(), fallback=init_to_median)


@register_guide("auto-normal", models=("bnn", "rff-gp"), family="bnn")
def build_auto_normal(model, init_scale: float = 1e-2):
    """Diagonal Gaussian autoguide (:class:`~pyro.infer.autoguide.AutoNormal`)."""
    return AutoNormal(model, init_loc_fn=_init_loc_fn(model), init_scale=init_scale)


@register_guide("auto-lowrank", models=("bnn", "rff-gp"), family="bnn")
def build_auto_lowrank(model, rank: int = 10, init_scale: float = 1e-2):
    """Low-rank plus diagonal multivariate normal over all latents jointly
    (:class:`~pyro.infer.autoguide.AutoLowRankMultivariateNormal`)."""
    return AutoLowRankMultivariateNormal(model, rank=rank, init_loc_fn=_init_loc_fn(model),
                                         init_scale=init_scale)


@register_guide("auto-iaf", models=("bnn",), family="bnn")
def build_auto_iaf(model, hidden_dim: int | None = None, num_transforms: int = 1):
    """Inverse autoregressive flow over all latents (:class:`~pyro.infer.autoguide.AutoIAFNormal`).
    Pyro ignores ``init_loc_fn`` for this guide (the flow starts near its standard-normal base), so
    none is passed. Memory grows with (#latents × hidden_dim): meant for small nets."""
    hidden = [hidden_dim] if hidden_dim is not None else None
    return AutoIAFNormal(model, hidden_dim=hidden, num_transforms=num_transforms)


@register_guide("laplace", models=("bnn",), family="bnn", point_estimate=True)
def build_laplace(model):
    """MAP during training, Gaussian at the mode with the inverse Hessian as covariance after
    (:class:`~pyro.infer.autoguide.AutoLaplaceApproximation`)."""
    return AutoLaplaceApproximation(model, init_loc_fn=_init_loc_fn(model))


@register_guide("map", models=("bnn",), family="bnn", point_estimate=True)
def build_map(model):
    """Point estimate at the posterior mode (:class:`~pyro.infer.autoguide.AutoDelta`): MAP."""
    return AutoDelta(model, init_loc_fn=_init_loc_fn(model))


class EmptyGuide(PyroModule):
    """The guide of a model without latent sites: the ELBO is then the log-likelihood and SVI is
    maximum likelihood (with dropout in the model: MC-dropout training)."""

    def forward(self, *args, **kwargs):
        return {}

    def elbo_context(self):
        return contextlib.nullcontext()


@register_guide("deterministic", models=("mlp",), family="bnn")
def build_deterministic(model):
    if getattr(model, "latent_sites", []):
        raise ValueError(
            f"the deterministic guide is for models without latent sites; this model has "
            f"{model.latent_sites}"
        )
    return EmptyGuide()

"""Pyro autoguide builders, each ``build(model, **cfg) -> guide``.

Every builder starts the guide's location at the model's :meth:`initial_values` (e.g.
Kaiming-uniform weights), handed over on the model's device at the guide's first call; sites the
model does not initialise fall back to Pyro's ``init_to_median``.

Notes
- ``auto-normal`` draws each site as a ``Delta`` around an auxiliary ``Normal``; the ELBO is the
  same but :class:`~pyro.infer.TraceMeanField_ELBO` cannot use a closed-form KL with it (use
  ``mean-field`` for that).
- ``laplace`` trains a MAP point (like ``map``); call ``guide.laplace_approximation(x, y)`` after
  training for the Gaussian at the mode (its Hessian costs O(P^2) memory in P parameters: small
  nets only). :func:`experiments.engine.predictive.posterior_guide` does this for you.
"""

from __future__ import annotations

import torch
from pyro.infer.autoguide import (
    AutoDelta,
    AutoIAFNormal,
    AutoLaplaceApproximation,
    AutoLowRankMultivariateNormal,
    AutoNormal,
    init_to_median,
)
from pyro.nn import PyroModule

from models.base import first_tensor

from .base import ZooGuide, warn_init_scale
from .registry import register_guide


class ZooAutoNormal(ZooGuide, AutoNormal):
    """:class:`~pyro.infer.autoguide.AutoNormal` with the zoo's guide hooks (defaults)."""


class ZooAutoLowRank(ZooGuide, AutoLowRankMultivariateNormal):
    """:class:`~pyro.infer.autoguide.AutoLowRankMultivariateNormal` with the zoo's hooks."""


class ZooAutoDelta(ZooGuide, AutoDelta):
    """:class:`~pyro.infer.autoguide.AutoDelta` (MAP) with the zoo's hooks."""


class ZooLaplace(ZooGuide, AutoLaplaceApproximation):
    """MAP in training; for prediction, the Gaussian at the mode with the inverse Hessian of the
    negative log joint (evaluated on the training data) as covariance."""

    def predictive_guide(self, *data):
        try:
            return self.laplace_approximation(*data)
        except torch.linalg.LinAlgError as exc:
            raise RuntimeError(
                "the Laplace approximation failed: the Hessian of the negative log joint at the "
                "trained point is not positive definite, so the point is not a local optimum. "
                "Train the laplace guide longer (or with a smaller lr) before predicting") from exc


def init_at_model_values(model):
    """An autoguide ``init_loc_fn``: the model's :meth:`initial_values`, falling back to
    ``init_to_median`` for sites it does not initialise.

    The values are drawn now (so that building the guide consumes the random stream as before), but
    handed over *when the guide is first run*, on the device and in the dtype of the model at that
    moment: :func:`~experiments.engine.training.fit` moves the model to CUDA between building the
    guide and running it, and a value kept on the CPU would meet GPU activations."""
    values = model.initial_values()

    def init(site):
        if site["name"] in values:
            like = first_tensor(model)
            value = values[site["name"]]
            return value if like is None else value.to(device=like.device, dtype=like.dtype)
        return init_to_median(site)

    return init


@register_guide("auto-normal", models=("bnn", "rff-gp"), family="bnn")
def build_auto_normal(model, init_scale: float = 1e-2):
    """Diagonal Gaussian autoguide (:class:`~pyro.infer.autoguide.AutoNormal`)."""
    warn_init_scale(init_scale)
    return ZooAutoNormal(model, init_loc_fn=init_at_model_values(model), init_scale=init_scale)


@register_guide("auto-lowrank", models=("bnn", "rff-gp"), family="bnn")
def build_auto_lowrank(model, rank: int = 10, init_scale: float = 1e-2):
    """Low-rank plus diagonal multivariate normal over all latents jointly
    (:class:`~pyro.infer.autoguide.AutoLowRankMultivariateNormal`)."""
    return ZooAutoLowRank(model, rank=rank, init_loc_fn=init_at_model_values(model),
                          init_scale=init_scale)


@register_guide("auto-iaf", models=("bnn",), family="bnn")
def build_auto_iaf(model, hidden_dim: int | None = None, num_transforms: int = 1):
    """Inverse autoregressive flow over all latents (:class:`~pyro.infer.autoguide.AutoIAFNormal`).
    Pyro ignores ``init_loc_fn`` for this guide (the flow starts near its standard-normal base), so
    none is passed. Memory grows with (#latents × hidden_dim): meant for small nets."""
    hidden = [hidden_dim] if hidden_dim is not None else None
    return _AutoIAFNormal(model, hidden_dim=hidden, num_transforms=num_transforms)


class _AutoIAFNormal(ZooGuide, AutoIAFNormal):
    """:class:`~pyro.infer.autoguide.AutoIAFNormal` whose flow is built on the model's device.

    Pyro's version (1.9) builds the flow's networks lazily, at the first call, with torch's default
    device and dtype, and its base distribution from a CPU ``torch.tensor(0.0)``; after ``fit`` has
    moved the model to CUDA the first call then mixes devices. Here the flow and the base are
    created like the prototype trace's latent values, which live where the model's priors live."""

    def _setup_prototype(self, *args, **kwargs):
        super()._setup_prototype(*args, **kwargs)
        like = next(site["value"] for _, site in self.prototype_trace.iter_stochastic_nodes())
        self.transform = self._init_transform_fn(self.latent_dim).to(device=like.device,
                                                                     dtype=like.dtype)
        self._prototype_tensor = like.new_zeros(())


@register_guide("laplace", models=("bnn",), family="bnn", point_estimate=True)
def build_laplace(model):
    """MAP during training, Gaussian at the mode with the inverse Hessian as covariance after
    (:class:`~pyro.infer.autoguide.AutoLaplaceApproximation`)."""
    return ZooLaplace(model, init_loc_fn=init_at_model_values(model))


@register_guide("map", models=("bnn",), family="bnn", point_estimate=True)
def build_map(model):
    """Point estimate at the posterior mode (:class:`~pyro.infer.autoguide.AutoDelta`): MAP."""
    return ZooAutoDelta(model, init_loc_fn=init_at_model_values(model))


class EmptyGuide(ZooGuide, PyroModule):
    """The guide of a model without latent sites: the ELBO is then the log-likelihood and SVI is
    maximum likelihood (with dropout in the model: MC-dropout training)."""

    def forward(self, *args, **kwargs):
        return {}


@register_guide("deterministic", models=("mlp", "cnn"), family="bnn")
def build_deterministic(model):
    if model.latent_sites:
        raise ValueError(
            f"the deterministic guide is for models without latent sites; this model has "
            f"{model.latent_sites}"
        )
    return EmptyGuide()

r"""Guides of the deep-kernel model (:mod:`models.dkl`): the trunk's guide composed with q(u).

.. math::
    q(W, u) = q(W)\, q(u), \qquad q(u) = \mathcal N(\mu, RR^\top)\ \text{(the SVGP's Cholesky
    guide)},

with :math:`q(W)` by trunk:

* ``dkl-cholesky``: no :math:`q(W)`; the deterministic trunk's weights are point estimates, plain
  parameters of the model trained with the kernel hyperparameters (SV-DKL).
* ``dkl-mean-field``: :math:`q(W) = \prod_i \mathcal N(\mu_i, \sigma_i^2)`, the zoo's Bayes by
  Backprop guide (:class:`guides.mean_field.MeanFieldGuide`: closed-form KL under
  ``elbo="meanfield"``, local reparameterisation or flipout) over the ``bayes-mlp`` trunk's
  sites ``w{i}``. On a deterministic trunk there are no weight sites and it is ``dkl-cholesky``.
* ``dkl-auto-normal``: :math:`q(W)` diagonal by Pyro's ``AutoNormal`` (the same family as
  ``dkl-mean-field``, drawn as ``Delta`` sites around auxiliary Normals, so no closed-form KL).

The weight guide sees the model with the ``u`` site hidden (:class:`TrunkView`), the q(u) guide
sees the whole model (it reads the shape and prior of ``u``). :meth:`DKLGuide.elbo_context` enters
both parts' handlers: the weight guide's local reparameterisation and the q(u) guide's
``MarginalizeInducing`` (the marginal :math:`q(f_n)` in training: closed-form data term for the
Gaussian likelihood). :math:`q(W)` and :math:`q(u)` are independent, so the KL splits into the
two parts' KLs; the marginalisation over :math:`u` holds given each weight draw.
"""

from __future__ import annotations

import contextlib

import torch
from pyro import poutine
from pyro.nn import PyroModule

from models.dkl import DKL

from .auto import ZooAutoNormal, init_at_model_values
from .base import ZooGuide, warn_init_scale
from .mean_field import MeanFieldGuide
from .registry import register_guide
from .svgp import CholeskyGuide


class TrunkView:
    """The DKL model with its inducing-value site ``u`` hidden: what a weight guide is built
    from (its set-up traces this and reads :meth:`initial_values`). A plain object, so the model
    is not registered as a submodule of the guide."""

    def __init__(self, model):
        self.model = model

    def __call__(self, *args, **kwargs):
        return poutine.block(self.model, hide=["u"])(*args, **kwargs)

    def initial_values(self) -> dict[str, torch.Tensor]:
        return self.model.initial_values()


class _Both(contextlib.ExitStack):
    """Enter several handlers as one context manager (outermost first)."""

    def __init__(self, *contexts):
        super().__init__()
        self._contexts = contexts

    def __enter__(self):
        super().__enter__()
        for c in self._contexts:
            self.enter_context(c)
        return self


class DKLGuide(ZooGuide, PyroModule):
    """:math:`q(W)\\,q(u)`: ``weights`` (a guide of the trunk's sites, or ``None`` for a
    deterministic trunk) and ``inducing`` (a q(u) guide of :mod:`guides.svgp`).

    It exposes :meth:`q_u` and :meth:`set_q_u` of the q(u) guide (Titsias' start, predictions)."""

    has_q_u = True

    def __init__(self, weights, inducing: CholeskyGuide):
        super().__init__()
        self.weights = weights
        self.inducing = inducing

    def forward(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        out = dict(self.weights(*args, **kwargs) or {}) if self.weights is not None else {}
        out.update(self.inducing(*args, **kwargs))
        return out

    def elbo_context(self, closed_form_kl: bool = False):
        parts = [g.elbo_context(closed_form_kl=closed_form_kl)
                 for g in (self.weights, self.inducing) if isinstance(g, ZooGuide)]
        return _Both(*parts)

    def q_u(self):
        return self.inducing.q_u()

    def set_q_u(self, loc, scale_tril=None) -> None:
        self.inducing.set_q_u(loc, scale_tril)


def _check(model, bayesian: bool, name: str) -> None:
    if not isinstance(model, DKL):
        raise ValueError(f"{name} is a guide of the dkl model, got {type(model).__name__}")
    sites = model.latent_sites
    if sites and not bayesian:
        raise ValueError(f"{name} treats the trunk as deterministic, but this dkl model's trunk "
                         f"{model.trunk_kind!r} has weight sites {sites}; use dkl-mean-field or "
                         "dkl-auto-normal")


@register_guide("dkl-cholesky", models=("dkl",), family="gp")
def build_dkl_cholesky(model, init_scale: float = 1.0) -> DKLGuide:
    """Deterministic trunk (``mlp``/``conv``), full-covariance q(u) with R starting at
    ``init_scale`` times the prior's factor."""
    _check(model, False, "dkl-cholesky")
    return DKLGuide(None, CholeskyGuide(model, init_scale))


@register_guide("dkl-mean-field", models=("dkl",), family="gp")
def build_dkl_mean_field(model, init_scale: float = 1e-2, local_reparam: bool = False,
                         flipout: bool = False, u_init_scale: float = 1.0) -> DKLGuide:
    """Bayes by Backprop on the ``bayes-mlp`` trunk (``init_scale``, ``local_reparam``,
    ``flipout`` as for ``mean-field``) and a Cholesky q(u) (``u_init_scale``)."""
    _check(model, True, "dkl-mean-field")
    weights = None
    if model.latent_sites:
        weights = MeanFieldGuide(TrunkView(model), init_scale=init_scale,
                                 local_reparam=local_reparam, flipout=flipout)
    return DKLGuide(weights, CholeskyGuide(model, u_init_scale))


@register_guide("dkl-auto-normal", models=("dkl",), family="gp")
def build_dkl_auto_normal(model, init_scale: float = 1e-2, u_init_scale: float = 1.0
                          ) -> DKLGuide:
    """Pyro's ``AutoNormal`` on the ``bayes-mlp`` trunk's weights (started at the model's
    :meth:`initial_values`) and a Cholesky q(u)."""
    _check(model, True, "dkl-auto-normal")
    weights = None
    if model.latent_sites:
        warn_init_scale(init_scale)
        weights = ZooAutoNormal(TrunkView(model), init_loc_fn=init_at_model_values(model),
                                init_scale=init_scale)
    return DKLGuide(weights, CholeskyGuide(model, u_init_scale))

r"""Guides on the inducing values of the sparse variational GP (:mod:`models.svgp`).

.. math::
    \texttt{cholesky}:\ q(u) = \mathcal N(\mu, RR^\top),\ R \text{ lower triangular};\qquad
    \texttt{mean-field}:\ R = \mathrm{diag}(\sigma);\qquad
    \texttt{delta}:\ q(u) = \delta_\mu \text{ (MAP inducing values)},

one per latent function (site ``u`` of event shape (L, M)). Parameters start at the prior
(whitened: :math:`\mu = 0, R = I`, as GPyTorch does; unwhitened: :math:`R = L_{ZZ}` at set-up),
times ``init_scale`` for R. Gaussian q(u) are ``MultivariateNormal`` sites, so
:class:`~pyro.infer.TraceMeanField_ELBO` (``elbo="meanfield"``) uses the closed-form KL.

Each guide's :meth:`elbo_context` is :class:`MarginalizeInducing`, which lets the model use the
marginal q(f) in training (closed-form data term for Gaussian likelihoods). The q(u) it uses is
the distribution of the guide's sample at *this* step, so no stale cache can arise.

Natural gradients on q(u) (Salimbeni et al. 2018; GPyTorch's ``NaturalVariationalDistribution``
with ``gpytorch.optim.NGD``) are not offered: they need a second optimiser stepping q(u) in the
natural parameters while Adam steps the rest, which the single-optimiser :func:`fit` loop and its
checkpoint format do not have yet (REFERENCES.md: GPyTorch's elevators MAE 0.1115 → 0.0751 with
NGD). It is a planned extension of the loop, not of the guide.
"""

from __future__ import annotations

from typing import Literal

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.nn import PyroModule, PyroParam
from pyro.poutine.messenger import Messenger

from models.svgp import marginal_moments

from .base import ZooGuide
from .registry import register_guide


class MarginalizeInducing(Messenger):
    """Replace :func:`models.svgp.svgp_conditional` by the moments of the marginal q(f).

    It records the distribution each ``u`` sample came from (the guide runs first under SVI and
    the model replays the very same tensor), then answers ``svgp_conditional(cond, u, name="u")``
    from that distribution. A ``u`` it has not seen (e.g. drawn from the prior) goes through to
    the conditional given ``u``.
    """

    def __init__(self):
        super().__init__()
        self._q: dict[str, tuple[torch.Tensor, object]] = {}

    def _pyro_post_sample(self, msg):
        if msg["is_observed"]:
            return
        seen = self._q.get(msg["name"])
        if seen is not None and seen[0] is msg["value"]:
            return  # the model replaying the guide's draw: keep the guide's distribution
        fn = msg["fn"]
        while isinstance(fn, torch.distributions.Independent):
            fn = fn.base_dist
        self._q[msg["name"]] = (msg["value"], fn)

    def _pyro_svgp_conditional(self, msg):
        cond, u = msg["args"]
        seen = self._q.get(msg["name"])
        if seen is None or seen[0] is not u:
            return
        fn = seen[1]
        if isinstance(fn, dist.MultivariateNormal):
            # the unexpanded factor (L, M, M): particles share it, no P-fold copies
            msg["value"] = marginal_moments(cond, fn.loc, fn._unbroadcasted_scale_tril)
        elif isinstance(fn, dist.Delta):
            msg["value"] = marginal_moments(cond, fn.v, None)
        else:
            return
        msg["done"] = True


class InducingGuide(ZooGuide, PyroModule):
    """Base of the three q(u) guides: lazy set-up from the model's ``u`` site shape."""

    def __init__(self, model, init_scale: float = 1.0):
        super().__init__()
        if not init_scale > 0:
            raise ValueError(f"init_scale must be > 0, got {init_scale!r}")
        self._model = (model,)  # a tuple, so the model's parameters are not registered here
        self.init_scale = float(init_scale)
        self._setup_done = False

    def _setup(self, *args, **kwargs):
        model = self._model[0]
        trace = poutine.block(poutine.trace(model).get_trace)(*args, **kwargs)
        prior = trace.nodes["u"]["fn"]
        while isinstance(prior, torch.distributions.Independent):
            prior = prior.base_dist
        loc = prior.loc.detach().clone()
        tril = prior.scale_tril.detach().clone() * self.init_scale
        self._init_params(loc, tril)
        self._setup_done = True

    def forward(self, *args, **kwargs):
        if not self._setup_done:
            self._setup(*args, **kwargs)
        return {"u": pyro.sample("u", self.distribution())}

    def elbo_context(self, closed_form_kl: bool = False):
        return MarginalizeInducing()

    def q_u(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(loc (L, M), scale_tril (L, M, M) or None)`` of q(u) at the current parameters."""
        fn = self.distribution()
        while isinstance(fn, torch.distributions.Independent):
            fn = fn.base_dist
        if isinstance(fn, dist.Delta):
            return fn.v, None
        return fn.loc, fn.scale_tril

    @torch.no_grad()
    def set_q_u(self, loc: torch.Tensor, scale_tril: torch.Tensor | None = None) -> None:
        """Set q(u) to :math:`\\mathcal N(\text{loc}, RR^\top)`, ``R = scale_tril`` (e.g. Titsias'
        optimum, :meth:`models.svgp.SVGP.optimal_q_u`), in the model's parameterisation (v when
        whitened). It works whether or not the guide has run: before its first run this *is*
        its set-up, and ``fit`` keeps it (it sets up only guides that are not set up).

        :param loc: ``(L, M)``, L latent GPs, M inducing points.
        :param scale_tril: ``(L, M, M)`` lower-triangular (the mean-field guide keeps its
            diagonal, the delta guide ignores it; required by the other two before set-up).
        """
        model = self._model[0]
        shape = (model.num_latents, model.num_inducing)
        loc = torch.as_tensor(loc)
        if tuple(loc.shape) != shape:
            raise ValueError(f"set_q_u: loc must have shape {shape} (num_latents, num_inducing), "
                             f"got {tuple(loc.shape)}")
        if scale_tril is not None and tuple(scale_tril.shape) != shape + shape[-1:]:
            raise ValueError(f"set_q_u: scale_tril must have shape {shape + shape[-1:]}, got "
                             f"{tuple(scale_tril.shape)}")
        like = model.inducing_points
        loc = loc.to(like.device, like.dtype).clone()
        if scale_tril is not None:
            scale_tril = scale_tril.to(like.device, like.dtype).clone()
        if not self._setup_done:
            if scale_tril is None and not isinstance(self, DeltaGuide):
                raise ValueError(f"set_q_u on a {type(self).__name__} that has not run yet needs "
                                 "scale_tril too (or run the guide once first)")
            self._init_params(loc, scale_tril)
            self._setup_done = True
        else:
            self._assign(loc, scale_tril)

    def _assign(self, loc, scale_tril):
        raise NotImplementedError

    def initialize(self, init: str, data=None) -> None:
        """``"prior"`` (q(u) = p(u) scaled by init_scale, at the first run) or ``"titsias"``: q(u) at
        Titsias' optimum for the current hyperparameters and inducing inputs on ``data = (x, y)``
        (Gaussian likelihood), the collapsed bound's start (:meth:`models.svgp.SVGP.optimal_q_u`).
        """
        if init == "prior":
            return
        if init != "titsias":
            raise ValueError(f"init must be 'prior' or 'titsias', got {init!r}")
        if not (isinstance(data, (tuple, list)) and len(data) == 2):
            raise ValueError("init='titsias' needs data=(x, y), the training inputs and targets")
        self.set_q_u(*self._model[0].optimal_q_u(*data))


class CholeskyGuide(InducingGuide):
    def _init_params(self, loc, tril):
        self.u_loc = PyroParam(loc)
        self.u_scale_tril = PyroParam(tril, constraints.lower_cholesky)

    def distribution(self):
        return dist.MultivariateNormal(self.u_loc, scale_tril=self.u_scale_tril).to_event(1)

    def _assign(self, loc, scale_tril):
        self.u_loc = loc
        if scale_tril is not None:
            self.u_scale_tril = scale_tril


class MeanFieldInducingGuide(InducingGuide):
    def _init_params(self, loc, tril):
        self.u_loc = PyroParam(loc)
        self.u_scale = PyroParam(tril.diagonal(dim1=-2, dim2=-1).clone(),
                                 constraints.softplus_positive)

    def distribution(self):
        # a diagonal scale_tril rather than Normal(...).to_event: the closed-form KL against the
        # MultivariateNormal prior is then available to TraceMeanField_ELBO
        return dist.MultivariateNormal(self.u_loc, scale_tril=torch.diag_embed(self.u_scale)
                                       ).to_event(1)

    def _assign(self, loc, scale_tril):
        self.u_loc = loc
        if scale_tril is not None:
            self.u_scale = scale_tril.diagonal(dim1=-2, dim2=-1).clone()


class DeltaGuide(InducingGuide):
    def _init_params(self, loc, tril):
        self.u_loc = PyroParam(loc)

    def distribution(self):
        return dist.Delta(self.u_loc, event_dim=2)

    def _assign(self, loc, scale_tril=None):
        self.u_loc = loc


Init = Literal["prior", "titsias"]


def _built(guide: InducingGuide, init: str, data) -> InducingGuide:
    guide.initialize(init, data)
    return guide


@register_guide("cholesky", models=("svgp",), family="gp")
def build_cholesky(model, init_scale: float = 1.0, init: Init = "prior",
                   data: tuple | None = None) -> CholeskyGuide:
    """Full-covariance q(u) = N(μ, RRᵀ) (Hensman et al. 2013); ``init="titsias", data=(x, y)``
    starts it at Titsias' optimum (set the inducing inputs first)."""
    return _built(CholeskyGuide(model, init_scale), init, data)


@register_guide("mean-field-u", models=("svgp",), family="gp")
def build_mean_field_u(model, init_scale: float = 1.0, init: Init = "prior",
                       data: tuple | None = None) -> MeanFieldInducingGuide:
    """Diagonal q(u) = N(μ, diag σ²) (``init``, ``data``: as for ``cholesky``)."""
    return _built(MeanFieldInducingGuide(model, init_scale), init, data)


@register_guide("delta", models=("svgp",), family="gp", point_estimate=True)
def build_delta(model, init: Init = "prior", data: tuple | None = None) -> DeltaGuide:
    """MAP inducing values q(u) = δ(μ) (``init``, ``data``: as for ``cholesky``)."""
    return _built(DeltaGuide(model), init, data)

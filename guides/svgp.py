r"""Guides on the inducing values of the sparse variational GP (:mod:`models.svgp`).

.. math::
    \texttt{cholesky}:\ q(u) = \mathcal N(\mu, RR^\top),\ R \text{ lower triangular};\qquad
    \texttt{mean-field}:\ R = \mathrm{diag}(\sigma);\qquad
    \texttt{delta}:\ q(u) = \delta_\mu \text{ (MAP inducing values)},

one per latent function (site ``u`` of event shape (L, M)). Parameters start at the prior
(whitened: :math:`\mu = 0, R = I`, as GPyTorch does; unwhitened: :math:`R = L_{ZZ}` at set-up),
times ``init_scale`` for R. Gaussian q(u) are ``MultivariateNormal`` sites, so
:class:`~pyro.infer.TraceMeanField_ELBO` (``elbo="meanfield"``) uses the closed-form KL.

Each guide's :meth:`elbo_context` is :class:`~guides.svgp_marginal.MarginalizeInducing`, which
lets the model use the marginal q(f) in training (closed-form data term for Gaussian
likelihoods). The q(u) it uses is the distribution of the guide's sample at *this* step, so no
stale cache can arise.

``cholesky`` with ``natural_gradient=True`` (:class:`NaturalCholeskyGuide`) stores the same
full-covariance q(u) in its *natural* parameters :math:`\theta_1 = S^{-1}\mu,\ \theta_2 =
-\tfrac12 S^{-1}` and makes their ``.grad`` the gradient in the *expectation* parameters, so that
plain SGD on them is natural-gradient descent (Hensman et al. 2013; Salimbeni et al. 2018;
GPyTorch's ``NaturalVariationalDistribution``). ``fit`` steps them with their own
``torch.optim.SGD(lr=ngd_lr)`` and everything else with the configured optimiser
(:meth:`guides.base.ZooGuide.natural_gradient_parameters`). Full batch, Gaussian likelihood,
fixed hyperparameters: one step of size 1 lands on Titsias' optimum.
"""

from __future__ import annotations

import warnings
from typing import Literal

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.nn import PyroModule, PyroParam

from models.sparse_gp import CholeskyError, stable_cholesky

from .base import ImplausibleSettingWarning, ZooGuide, generic_advice
from .registry import register_guide
from .svgp_marginal import DrawnMultivariateNormal, MarginalizeInducing  # noqa: F401


class InducingGuide(ZooGuide, PyroModule):
    """Base of the three q(u) guides: lazy set-up from the model's ``u`` site shape."""

    has_q_u = True

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

    @torch.no_grad()
    def numerical_problems(self) -> list[str]:
        r"""The condition number :math:`\sigma_{\max}(R)/\sigma_{\min}(R)` of each q(u) Cholesky
        factor R (singular values in float64), when it is beyond :math:`1/\epsilon` of the
        model's dtype: then :math:`S = RR^\top` is singular to working precision, and every
        solve or log-density with it is noise."""
        if not self._setup_done:
            return []
        _, tril = self.q_u()
        if tril is None:
            return []
        limit = 1.0 / torch.finfo(tril.dtype).eps
        sv = torch.linalg.svdvals(tril.detach().double())
        cond = (sv[..., 0] / sv[..., -1].clamp_min(1e-300)).max().item()
        if cond > limit:
            return [f"the Cholesky factor of q(u) has condition number {cond:.3g}, beyond "
                    f"{tril.dtype} precision (1/eps = {limit:.3g}): q(u) is singular to working "
                    "precision"]
        return []

    def fit_advice(self, model, config) -> list[str]:
        """For q(u): the closed-form KL first (``elbo=meanfield``, GPyTorch's), then natural
        gradients on q(u), then a smaller lr for the rest."""
        tips = []
        if config.elbo != "meanfield":
            tips.append("--set fit.elbo=meanfield (the closed-form KL of q(u), as GPyTorch's "
                        "VariationalELBO)")
        if not isinstance(self, NaturalCholeskyGuide) and isinstance(self, CholeskyGuide):
            tips.append("--set guide_cfg.natural_gradient=true (natural-gradient steps on q(u); "
                        "needs elbo=meanfield)")
        return tips + generic_advice(config)

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
        return DrawnMultivariateNormal(self.u_loc, scale_tril=self.u_scale_tril).to_event(1)

    def _assign(self, loc, scale_tril):
        self.u_loc = loc
        if scale_tril is not None:
            self.u_scale_tril = scale_tril


def _natural_precision_cholesky(theta2: torch.Tensor) -> torch.Tensor:
    r"""Lower ``R`` with :math:`RR^\top = S = (-2\theta_2)^{-1}` from one Cholesky factorisation of
    the precision :math:`P = -2\theta_2`: the reversed matrix :math:`JPJ = KK^\top` (:math:`J` the
    exchange matrix) gives :math:`P = UU^\top` with :math:`U = JKJ` upper triangular, hence
    :math:`S = U^{-\top}U^{-1}` and :math:`R = U^{-\top}` (GPyTorch takes a second Cholesky of
    :math:`S` instead)."""
    prec = -(theta2 + theta2.mT)  # -2θ₂, symmetrised against round-off
    try:
        K = stable_cholesky(prec.flip(-2, -1), 0.0, what="the natural precision -2θ₂ of q(u)")
    except CholeskyError:
        raise CholeskyError(
            f"the natural precision -2θ₂ = S⁻¹ of q(u) ({tuple(prec.shape)}, {prec.dtype}) is not "
            "positive definite, even with jitter: θ₂ must be stepped only by SGD on "
            "natural_gradient_parameters() (fit does this; Adam on it breaks it), with ngd_lr <= 1 "
            "(smaller for a non-Gaussian likelihood), and elbo='meanfield' (a closed-form KL; "
            "'trace' estimates its gradient from one draw)") from None
    U = K.flip(-2, -1)
    eye = torch.eye(U.shape[-1], dtype=U.dtype, device=U.device)
    return torch.linalg.solve_triangular(U.mT, eye, upper=False)  # U⁻ᵀ, lower


class _NaturalToMeanCholesky(torch.autograd.Function):
    r""":math:`(\theta_1, \theta_2) \mapsto (\mu, R)`, :math:`S = RR^\top = (-2\theta_2)^{-1}`,
    :math:`\mu = S\theta_1`, whose backward returns the gradient with respect to the *expectation*
    parameters :math:`\eta_1 = \mu,\ \eta_2 = S + \mu\mu^\top` in place of that with respect to
    :math:`\theta` (GPyTorch's ``_NaturalToMuVarSqrt``). With
    :math:`\bar S = \partial\ell/\partial S` from the Cholesky backward (symmetric),

    .. math:: \frac{\partial\ell}{\partial\eta_2} = \bar S, \qquad
              \frac{\partial\ell}{\partial\eta_1} = \frac{\partial\ell}{\partial\mu} - 2\bar S\mu,

    since :math:`\mu = \eta_1` and :math:`S = \eta_2 - \eta_1\eta_1^\top`."""

    @staticmethod
    def forward(ctx, theta1, theta2):
        R = _natural_precision_cholesky(theta2)
        loc = (R @ (R.mT @ theta1.unsqueeze(-1))).squeeze(-1)
        ctx.save_for_backward(loc, R)
        return loc, R

    @staticmethod
    def backward(ctx, grad_loc, grad_tril):
        loc, R = ctx.saved_tensors
        grad_loc = torch.zeros_like(loc) if grad_loc is None else grad_loc
        if grad_tril is None:
            grad_S = torch.zeros_like(R)
        else:  # torch's linalg_cholesky_backward (Murray 2016): R⁻ᵀ Φ(Rᵀ R̄) R⁻¹, symmetrised
            phi = (R.mT @ grad_tril).tril()
            phi = 0.5 * (phi + phi.tril(-1).mT)
            grad_S = torch.linalg.solve_triangular(R.mT, phi, upper=True)
            grad_S = torch.linalg.solve_triangular(R, grad_S, upper=False, left=False)
            grad_S = 0.5 * (grad_S + grad_S.mT)
        grad_eta1 = grad_loc - 2.0 * (grad_S @ loc.unsqueeze(-1)).squeeze(-1)
        return grad_eta1, grad_S


class NaturalCholeskyGuide(InducingGuide):
    r"""Full-covariance :math:`q(u) = \mathcal N(\mu, S)` per latent GP (in the model's
    parameterisation: the whitened ``v`` or ``u`` itself), stored in natural parameters and
    stepped by natural-gradient descent.

    **Parameters.** The exponential-family form of :math:`q` has sufficient statistics
    :math:`(u, uu^\top)`, natural parameters :math:`\theta = (\theta_1, \theta_2) = (S^{-1}\mu,
    -\tfrac12 S^{-1})` (``u_theta1`` (L, M), ``u_theta2`` (L, M, M), plain ``nn.Parameter``) and
    expectation parameters :math:`\eta = \mathbb E_q[(u, uu^\top)] = (\mu, S + \mu\mu^\top)`.
    Each forward pass maps :math:`\theta` to :math:`(\mu, \mathrm{chol}\,S)` for the
    ``MultivariateNormal`` site ``u`` (:class:`_NaturalToMeanCholesky`); its backward leaves
    :math:`\partial\ell/\partial\eta` in ``.grad`` of :math:`\theta`.

    **Why SGD on θ with η-gradients is NGD.** The Fisher information of an exponential family in
    its natural parameters is :math:`F(\theta) = \partial\eta/\partial\theta`, so the natural
    gradient is :math:`F^{-1}\nabla_\theta\ell = (\partial\theta/\partial\eta)\,
    (\partial\eta/\partial\theta)^\top\nabla_\eta\ell = \nabla_\eta\ell` (F is symmetric). The
    update :math:`\theta \leftarrow \theta - \rho\,\partial\ell/\partial\eta`, i.e.
    ``torch.optim.SGD(natural_gradient_parameters(), lr=ngd_lr)``, is natural-gradient descent
    (no momentum, no weight decay, no clipping: any other optimiser leaves the method, and may
    leave :math:`\theta_2` indefinite).

    **One step of size 1 is optimal for a conjugate model.** With a Gaussian likelihood the
    expected log-joint is linear in :math:`\eta`: :math:`\mathbb E_q[\log p(y, u)] =
    \langle\theta^\star, \eta\rangle + c`, :math:`\theta^\star` the natural parameters of Titsias'
    optimum (:meth:`models.svgp.SVGP.optimal_q_u`), and the entropy term
    :math:`-\langle\theta, \eta\rangle + A(\theta)` has :math:`\eta`-gradient :math:`-\theta`
    (because :math:`\nabla A = \eta`). Hence :math:`\partial(-\mathrm{ELBO})/\partial\eta =
    \theta - \theta^\star` and :math:`\theta - \rho(\theta - \theta^\star) = (1-\rho)\theta +
    \rho\theta^\star`: step 1 lands on the optimum, a step :math:`\rho < 1` moves a fraction
    :math:`\rho` of the way (a convex combination, so :math:`\theta_2` stays negative definite).
    With minibatches the step is a stochastic estimate of the same (Hensman et al. 2013).

    **The num_data factor.** The zoo's loss is Pyro's full-data-scaled negative ELBO,
    :math:`\tfrac NB\sum_{n\in\mathcal B}(-\mathbb E\log p(y_n\mid f_n)) + \mathrm{KL}`, so its
    :math:`\eta`-gradient *is* the natural gradient of :math:`-\mathrm{ELBO}` and the step is
    :math:`\rho\,\partial\ell/\partial\eta` with no further factor. GPyTorch's
    ``gpytorch.optim.NGD`` multiplies by ``num_data`` because GPyTorch's loss is the ELBO divided
    by N; ``ngd_lr`` here has the meaning of GPyTorch's ``lr`` (0.1 in its examples).

    **Likelihoods.** Any likelihood of the model trains: for non-Gaussian ones (bernoulli,
    softmax, student-t) the expected log-likelihood is no longer linear in :math:`\eta`, the step
    is a valid natural-gradient step but not one-step optimal; keep ``ngd_lr`` well below 1 (0.1
    is usual; on a bernoulli toy ``ngd_lr=1`` made :math:`\theta_2` indefinite within 30 steps).
    Train with ``elbo="meanfield"``: its KL is in closed form, so the step is exact for a
    Gaussian likelihood, where ``"trace"`` estimates the KL's gradient from one draw of u.
    Whitened (default) and unwhitened models are both supported; unwhitened, the
    starting precision is :math:`K_{ZZ}^{-1}`, which float32 may not represent for close
    inducing inputs (use float64 or the whitened model).

    The q(u) is recomputed from :math:`\theta` at every call (one M×M Cholesky per latent GP,
    O(L M³)), so the hyperparameters' optimiser and this one see the same state.
    """

    def __init__(self, model, init_scale: float = 1.0, ngd_lr: float = 0.1):
        super().__init__(model, init_scale)
        if not ngd_lr > 0:
            raise ValueError(f"ngd_lr must be > 0, got {ngd_lr!r}")
        if ngd_lr > 1:
            warnings.warn(f"ngd_lr={ngd_lr:g} > 1 overshoots even the conjugate optimum (step 1 "
                          "lands on it) and can make θ₂ indefinite; usual values are 0.01 to 1",
                          ImplausibleSettingWarning, stacklevel=3)
        self.ngd_lr = float(ngd_lr)

    @staticmethod
    def _natural(loc, tril):
        prec = torch.cholesky_inverse(tril)  # S⁻¹ from R
        return (prec @ loc.unsqueeze(-1)).squeeze(-1), -0.5 * prec

    def _init_params(self, loc, tril):
        theta1, theta2 = self._natural(loc, tril)
        self.u_theta1 = torch.nn.Parameter(theta1)
        self.u_theta2 = torch.nn.Parameter(theta2)

    def distribution(self):
        loc, tril = _NaturalToMeanCholesky.apply(self.u_theta1, self.u_theta2)
        return DrawnMultivariateNormal(loc, scale_tril=tril).to_event(1)

    def _assign(self, loc, scale_tril):
        if scale_tril is None:  # keep S: the new mean in the current precision
            theta1 = (-2.0 * self.u_theta2 @ loc.unsqueeze(-1)).squeeze(-1)
            self.u_theta1.copy_(theta1)
            return
        theta1, theta2 = self._natural(loc, scale_tril)
        self.u_theta1.copy_(theta1)
        self.u_theta2.copy_(theta2)

    def natural_gradient_parameters(self) -> list[torch.nn.Parameter]:
        """``[u_theta1, u_theta2]``: step them by ``torch.optim.SGD(lr=self.ngd_lr)`` only."""
        if not self._setup_done:
            raise RuntimeError("natural_gradient_parameters() before the guide's first run: run "
                               "it once (fit's setup does) or call set_q_u first")
        return [self.u_theta1, self.u_theta2]


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
                   data: tuple | None = None, natural_gradient: bool = False,
                   ngd_lr: float = 0.1) -> CholeskyGuide | NaturalCholeskyGuide:
    """Full-covariance q(u) = N(μ, RRᵀ) (Hensman et al. 2013); ``init="titsias", data=(x, y)``
    starts it at Titsias' optimum (set the inducing inputs first). ``natural_gradient=True``:
    q(u) in natural parameters, stepped by natural-gradient descent of step ``ngd_lr`` while the
    configured optimiser steps the rest (:class:`NaturalCholeskyGuide`; ``ngd_lr`` is ignored
    otherwise)."""
    if natural_gradient:
        return _built(NaturalCholeskyGuide(model, init_scale, ngd_lr), init, data)
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

r"""The contract of an observation model, :class:`Likelihood` (the classes and their table are
:mod:`models.likelihoods`, where it is importable too).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule

from .base import record

#: the values of :attr:`Likelihood.kind` :func:`experiments.engine.predict.predict` knows
PREDICTIVE_KINDS = ("regression", "binary", "classification")


class Likelihood(PyroModule):
    r"""Base class: ``forward(f, y=None)`` records ``obs`` and returns its value.

    The contract, which models, guides and the predictive read instead of the class:

    * ``distribution(f)`` (required): :math:`p(y_n \mid f_n)` for ``f`` of shape
      ``(..., N, num_outputs)``, batch shape ``(..., N)``.
    * :attr:`kind`: ``"regression"`` (real :math:`y`; the predictive reports a mean and a
      variance), ``"binary"`` (labels 0/1; class probabilities :math:`(1 - p, p)`),
      ``"classification"`` (integer labels :math:`0..C-1`; class probabilities) or ``"image"``
      (an event of D pixels per row, the VAE's).
    * :attr:`integer_targets`: ``y`` must have an integer dtype (checked per batch by models).
    * :attr:`conjugate`: :math:`\mathbb E_{\mathcal N(f; \mu, s^2)}\log p(y \mid f)` is closed
      form and, for a GP prior, so is the optimal :math:`q(u)` (Titsias 2009): the Gaussian.
    * :meth:`expected_log_prob` ``(loc, var, y)``: the data term
      :math:`\mathbb E_{q(f_n) = \mathcal N(\mu_n, s_n^2)}\log p(y_n \mid f_n)` as Pyro sites;
      Monte Carlo with one reparameterised draw :math:`f_n = \mu_n + s_n\epsilon_n` by default,
      closed form where it exists.
    * Predictive moments from S draws :math:`f^{(s)}` (tensors ``(S, N, L)`` on the CPU):
      :meth:`class_probabilities` :math:`p(y_n = k \mid f^{(s)}_n)` (classifiers),
      :meth:`noise_scale` (the scale :math:`\sigma^{(s)}_n` of a Gaussian observation model, whose
      predictive log-density is then computed in closed form per draw; ``None`` otherwise: Monte
      Carlo with :meth:`distribution`), :meth:`noise_variance`
      :math:`\frac1S\sum_s \mathrm{Var}[y_n \mid f^{(s)}_n]` (the aleatoric part) and
      :meth:`predictive_moments` (closed-form :math:`\mathbb E[y_n]`, :math:`\mathrm{Var}[y_n]`
      under a Gaussian :math:`q(f_n)`, ``None`` where there is none).
    * Targets: :meth:`check_targets` (the whole training set, once), :meth:`score_targets`
      (targets handed to the predictive for scoring, converted to the dtype scored),
      :meth:`example_targets` (synthetic targets for tests).
    * :meth:`capture_blockers`: why a step through it cannot be captured in a CUDA graph.

    :ivar num_outputs: the size of the last dim of ``f`` this likelihood reads.
    """

    num_outputs: int = 1
    kind: str = "regression"
    integer_targets: bool = False
    conjugate: bool = False

    def distribution(self, f: torch.Tensor) -> dist.Distribution:
        raise NotImplementedError

    def expected_log_prob(self, loc: torch.Tensor, var: torch.Tensor, y: torch.Tensor | None
                          ) -> torch.Tensor:
        r"""The data term under :math:`q(f_n) = \mathcal N(\mu_n, s_n^2)`, ``loc`` and ``var``
        ``(..., N, num_outputs)``, called inside the data plate. Default (Monte Carlo): one
        reparameterised draw :math:`f_n = \mu_n + s_n \epsilon_n`, recorded as ``f``, observed
        through :meth:`forward`."""
        eps = torch.randn(loc.shape, dtype=loc.dtype, device=loc.device)
        f = record("f", loc + var.sqrt() * eps, event_dim=1)
        return self(f, y)

    def class_probabilities(self, f: torch.Tensor) -> torch.Tensor:
        """``(S, N, K)`` class probabilities per draw of ``f`` ``(S, N, L)`` (classifiers only)."""
        raise NotImplementedError(f"{type(self).__name__} is not a classifier")

    def noise_scale(self, f: torch.Tensor) -> torch.Tensor | None:
        r"""The scale ``(S, N)`` of a Gaussian :math:`p(y_n \mid f^{(s)}_n)` per draw, or ``None``
        when the observation model is not Gaussian (default)."""
        return None

    def noise_variance(self, f: torch.Tensor) -> torch.Tensor:
        r"""The aleatoric variance ``(N,)``: :math:`\mathrm{Var}[y_n \mid f^{(s)}_n]` averaged over
        the S draws of ``f`` ``(S, N, L)`` (regression only)."""
        raise NotImplementedError(f"{type(self).__name__} has no predictive variance")

    def predictive_moments(self, f_mean: torch.Tensor, f_var: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor] | None:
        r"""Closed-form ``(E[y_n], Var[y_n])`` ``(N,)`` under :math:`q(f_n) = \mathcal N(f_{mean},
        f_{var})` ``(N, L)`` on the CPU, or ``None`` when there is no closed form (default)."""
        return None

    def example_targets(self, signal: torch.Tensor, generator: torch.Generator | None = None,
                        score: torch.Tensor | None = None) -> torch.Tensor:
        """Synthetic targets ``(N,)`` for a noiseless ``signal`` ``(N,)`` (tests, smoke runs);
        classifiers label by ``score`` (default ``signal``). Default: ``signal + 0.1 ε``."""
        return signal + 0.1 * torch.randn(len(signal), generator=generator, dtype=signal.dtype)

    def score_targets(self, y: torch.Tensor) -> torch.Tensor:
        """Targets ``(N,)`` (finite, on the CPU) converted to what the predictive scores, their
        values checked; default: real numbers in their float dtype (integers: the default)."""
        return y.to(torch.get_default_dtype() if not y.is_floating_point() else y.dtype)

    def capture_blockers(self) -> list[str]:
        """Why a step through this likelihood cannot be captured in a CUDA graph (default: none)."""
        return []

    def forward(self, f: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return pyro.sample("obs", self.distribution(f), obs=y)

    def max_log_density(self) -> float | None:
        r"""The supremum over ``f`` and ``y`` of :math:`\log p(y \mid f)` for one observation at
        the current parameters (``None``: unbounded or unknown). ``fit`` refuses an epoch whose
        expected log-likelihood (hence ELBO) exceeds ``num_data`` times it: no posterior can."""
        return None

    def check_targets(self, y: torch.Tensor) -> None:
        """Check a whole set of targets once, before training (``fit`` calls it through
        :meth:`models.base.ZooModel.validate_data`); the default accepts any finite reals."""
        if not y.is_floating_point():
            raise ValueError(f"{type(self).__name__} targets must be real numbers (a floating "
                             f"dtype), got dtype {y.dtype}; convert them with y.float()")


__all__ = ["PREDICTIVE_KINDS", "Likelihood"]

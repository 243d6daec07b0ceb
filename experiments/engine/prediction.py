r"""What :func:`~experiments.engine.predict.predict` returns: :class:`Prediction` (its own module so
that the ensemble's mixture and the predictive share it without importing each other)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Prediction:
    """What :func:`predict` returns (every tensor on the CPU; see the module docstring for the math).

    :ivar kind: ``"regression"``, ``"classification"`` or ``"reconstruction"`` (the VAE).
    :ivar mean: predictive mean :math:`\\mathbb E[y_n]`: (N,) for regression and the Bernoulli
        (:math:`P(y_n = 1)`), (N, C) class probabilities for the categorical, the
        reconstruction (shaped like ``x``) for the VAE.
    :ivar variance: total predictive variance, shaped like ``mean`` (``None`` for the VAE).
    :ivar epistemic: :math:`\\mathrm{Var}_q[\\mu(f)]`, the part a better posterior could remove.
    :ivar aleatoric: :math:`\\mathbb E_q[\\sigma^2(f)]`, the noise; ``epistemic + aleatoric =
        variance``.
    :ivar probs: (N, C) predictive class probabilities (C = 2 for the Bernoulli: columns
        :math:`P(y=0), P(y=1)`); ``None`` for regression.
    :ivar samples: with ``return_samples=True``, (S, N, ...) per-draw conditional means
        :math:`\\mu(f_s)`: function values (regression), class probabilities (classification,
        (S, N, C)), decoder means (VAE).
    :ivar log_likelihood: mean log predictive density of the given targets (nats per point),
        ``None`` without targets.
    :ivar log_likelihood_per_point: (N,) the same per point.
    :ivar num_samples: S, the draws behind the Monte Carlo parts (0: all closed form).
    """

    kind: str
    mean: torch.Tensor
    variance: torch.Tensor | None = None
    epistemic: torch.Tensor | None = None
    aleatoric: torch.Tensor | None = None
    probs: torch.Tensor | None = None
    samples: torch.Tensor | None = None
    log_likelihood: float | None = None
    log_likelihood_per_point: torch.Tensor | None = None
    num_samples: int = 0

    @property
    def sd(self) -> torch.Tensor | None:
        """Predictive standard deviation, ``variance.sqrt()``."""
        return None if self.variance is None else self.variance.sqrt()

    def to_original_units(self, y_mean: float, y_std: float) -> Prediction:
        """The regression prediction for targets standardised as :math:`\\tilde y = (y - m) / s`,
        mapped back to original units: means :math:`m + s\\,\\mu`, variances times
        :math:`s^2`, samples :math:`m + s f`, and log densities minus :math:`\\log s` (the
        Jacobian of the map)."""
        if self.kind != "regression":
            raise ValueError(f"to_original_units is for regression predictions, this one is "
                             f"{self.kind!r}")
        y_std = float(y_std)
        if not (y_std > 0 and math.isfinite(y_std)):
            raise ValueError(f"y_std must be a positive finite number, got {y_std!r}")

        def scale_var(v):
            return None if v is None else v * y_std ** 2

        ll_pp = None if self.log_likelihood_per_point is None else \
            self.log_likelihood_per_point - math.log(y_std)
        return dataclasses.replace(
            self, mean=self.mean * y_std + y_mean, variance=scale_var(self.variance),
            epistemic=scale_var(self.epistemic), aleatoric=scale_var(self.aleatoric),
            samples=None if self.samples is None else self.samples * y_std + y_mean,
            log_likelihood_per_point=ll_pp,
            log_likelihood=None if ll_pp is None else float(ll_pp.mean()))

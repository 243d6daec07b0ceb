r"""Regression metrics of :mod:`experiments.engine.metrics`: errors of point predictions (RMSE,
MAE) and the test log-likelihood, from Monte Carlo samples or from a Gaussian predictive."""

from __future__ import annotations

import math
from typing import Any

import torch

from experiments.engine.metric_checks import (
    _check_broadcastable,
    _check_ndim,
    _check_nonempty,
    _check_same_shape,
    _check_samples_and_targets,
    _float_tensor,
)


def rmse(mean: Any, y: Any) -> float:
    r"""Root mean squared error of point predictions.

    .. math:: \mathrm{RMSE} = \sqrt{\frac1N \sum_n (\mu_n - y_n)^2}

    :param torch.Tensor mean: (N,) point predictions (e.g. the predictive mean).
    :param torch.Tensor y: (N,) targets.
    :rtype: float
    """
    mean = _float_tensor(mean, "mean")
    y = _float_tensor(y, "y", like=mean)
    _check_same_shape(mean, y, ("mean", "y"))
    _check_nonempty(y, "y")
    return float(torch.sqrt(torch.mean((mean - y) ** 2)))


def mae(mean: Any, y: Any) -> float:
    r"""Mean absolute error of point predictions.

    .. math:: \mathrm{MAE} = \frac1N \sum_n |\mu_n - y_n|

    :param torch.Tensor mean: (N,) point predictions (e.g. the predictive median or mean).
    :param torch.Tensor y: (N,) targets.
    :rtype: float
    """
    mean = _float_tensor(mean, "mean")
    y = _float_tensor(y, "y", like=mean)
    _check_same_shape(mean, y, ("mean", "y"))
    _check_nonempty(y, "y")
    return float(torch.mean((mean - y).abs()))


def log_mean_exp(log_probs: Any, dim: int = 0) -> torch.Tensor:
    r"""Numerically stable :math:`\log \frac1S \sum_s \exp(a_s)` along ``dim``.

    .. math:: \mathrm{LME}(a) = \operatorname{logsumexp}_s(a_s) - \log S

    :param torch.Tensor log_probs: tensor with a non-empty dimension ``dim`` of size S.
    :param int dim: the sample dimension.
    :returns: the tensor with ``dim`` reduced.
    :rtype: torch.Tensor
    """
    a = _float_tensor(log_probs, "log_probs")
    if a.dim() == 0:
        raise ValueError("log_probs must have at least one dimension (the sample dimension S)")
    _check_nonempty(a, "log_probs")
    return torch.logsumexp(a, dim=dim) - math.log(a.shape[dim])


def log_likelihood_from_samples(log_probs: Any) -> float:
    r"""Average log predictive density from per-sample log-likelihoods.

    Given :math:`\ell_{sn} = \log p(y_n \mid \theta_s)` for posterior samples
    :math:`\theta_s \sim q(\theta)`, the Monte Carlo estimate of the log predictive density is

    .. math::

        \frac1N \sum_n \log \frac1S \sum_s p(y_n \mid \theta_s)
        = \frac1N \sum_n \Big[\operatorname{logsumexp}_s \ell_{sn} - \log S\Big].

    By Jensen's inequality this is at least :math:`\frac1{NS}\sum_{n,s} \ell_{sn}`
    (the expected log-likelihood term of the ELBO).

    :param torch.Tensor log_probs: (S, N) per-sample log-likelihoods.
    :rtype: float
    """
    a = _float_tensor(log_probs, "log_probs")
    _check_ndim(a, "log_probs", (2,), "(S, N)")
    _check_nonempty(a, "log_probs")
    return float(log_mean_exp(a, dim=0).mean())


def gaussian_log_likelihood_per_point(
    loc: Any, scale: Any, y: Any, y_scale: float = 1.0
) -> torch.Tensor:
    r"""Per-point log predictive density under a mixture of Gaussians.

    .. math::

        \log p(y_n) = \log \frac1S \sum_s \mathcal N\big(y_n \mid \mu_{sn}, \sigma_{sn}^2\big)
        - \log \sigma_y

    If the model works in standardised units (:math:`\tilde y = (y - m_y) / \sigma_y`), pass the
    *standardised* ``loc``, ``scale`` and ``y`` together with ``y_scale`` :math:`= \sigma_y`, the
    training standard deviation of the target: the density in original units is the
    standardised one times the Jacobian :math:`1/\sigma_y`, so :math:`\log\sigma_y` is subtracted.
    With the default ``y_scale=1.0`` nothing is subtracted.

    :param torch.Tensor loc: (S, N) per-sample predictive means; an (N,) tensor is taken as S=1.
    :param torch.Tensor scale: per-sample predictive standard deviations (not variances), of
        shape (S, N) or broadcastable to it (a scalar, (S, 1), (N,) ...); must be positive.
    :param torch.Tensor y: (N,) targets.
    :param float y_scale: positive standard deviation used to standardise the targets.
    :returns: (N,) tensor of log predictive densities.
    :rtype: torch.Tensor
    """
    loc = _float_tensor(loc, "loc")
    y = _float_tensor(y, "y", like=loc).to(loc.dtype)
    scale = _float_tensor(scale, "scale", like=loc).to(loc.dtype)
    if loc.dim() == 1:
        loc = loc.unsqueeze(0)
    _check_samples_and_targets(loc, y, "loc", "(S, N) or (N,)")
    _check_broadcastable(scale, loc, ("scale", "loc"), "(S, N)")
    if not (scale > 0).all():
        raise ValueError("scale must be strictly positive (it is a standard deviation)")
    y_scale_f = float(y_scale)
    if not (y_scale_f > 0 and math.isfinite(y_scale_f)):
        raise ValueError(f"y_scale must be a positive finite number, got {y_scale}")

    z = (y - loc) / scale
    log_probs = -0.5 * z**2 - torch.log(scale) - 0.5 * math.log(2 * math.pi)
    ll = log_mean_exp(log_probs, dim=0)
    if y_scale_f != 1.0:
        ll = ll - math.log(y_scale_f)
    return ll


def gaussian_log_likelihood(loc: Any, scale: Any, y: Any, y_scale: float = 1.0) -> float:
    r"""Average log predictive density under a mixture of Gaussians.

    .. math::

        \mathrm{LL} = \frac1N \sum_n \Big[\log \frac1S \sum_s
        \mathcal N\big(y_n \mid \mu_{sn}, \sigma_{sn}^2\big)\Big] - \log \sigma_y

    computed as log-mean-exp over samples (``torch.logsumexp - log S``), not as the mean of the
    per-sample log-likelihoods. See :func:`gaussian_log_likelihood_per_point` for the
    parameters; pass standardised ``loc``/``scale``/``y`` and ``y_scale`` = the target's
    training standard deviation to report the log-likelihood in original units.

    :param torch.Tensor loc: (S, N) per-sample predictive means ((N,) is taken as S=1).
    :param torch.Tensor scale: (S, N) or broadcastable per-sample standard deviations.
    :param torch.Tensor y: (N,) targets.
    :param float y_scale: positive standard deviation used to standardise the targets.
    :rtype: float
    """
    return float(gaussian_log_likelihood_per_point(loc, scale, y, y_scale=y_scale).mean())

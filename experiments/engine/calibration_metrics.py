r"""Calibration of regression uncertainty, for :mod:`experiments.engine.metrics`: the coverage of
central predictive intervals (empirical from samples, or Gaussian), the coverage curve over
nominal levels and its calibration error."""

from __future__ import annotations

from typing import Any

import torch

from experiments.engine.metric_checks import (
    _check_broadcastable,
    _check_level,
    _check_ndim,
    _check_nonempty,
    _check_same_shape,
    _check_samples_and_targets,
    _float_tensor,
    _quantile_dim0,
)

#: Nominal levels of :func:`coverage_calibration_error`: 0.05, 0.10, ..., 0.95.
CALIBRATION_LEVELS = tuple(round(0.05 * k, 2) for k in range(1, 20))


def interval_coverage(samples: Any, y: Any, level: float = 0.95) -> float:
    r"""Fraction of targets inside the central empirical predictive interval.

    With :math:`\hat Q_n(q)` the empirical q-quantile (linear interpolation) of the S samples
    for point n and :math:`\alpha = 1 - \text{level}`,

    .. math::

        \mathrm{cov} = \frac1N \sum_n \mathbb 1\big[\hat Q_n(\alpha/2) \le y_n
        \le \hat Q_n(1 - \alpha/2)\big].

    A calibrated predictive distribution gives a coverage close to ``level``.

    :param torch.Tensor samples: (S, N) samples from the predictive distribution.
    :param torch.Tensor y: (N,) targets.
    :param float level: nominal coverage in (0, 1).
    :rtype: float
    """
    level = _check_level(level)
    x = _float_tensor(samples, "samples")
    y = _float_tensor(y, "y", like=x).to(x.dtype)
    _check_samples_and_targets(x, y, "samples", "(S, N)")
    alpha = 1.0 - level
    lower = _quantile_dim0(x, alpha / 2)
    upper = _quantile_dim0(x, 1.0 - alpha / 2)
    return float(((y >= lower) & (y <= upper)).double().mean())


def gaussian_interval_coverage(mean: Any, std: Any, y: Any, level: float = 0.95) -> float:
    r"""Fraction of targets inside the central interval of a Gaussian predictive.

    With :math:`z = \Phi^{-1}\big(\tfrac{1 + \text{level}}{2}\big)` (e.g. 1.96 for 0.95),

    .. math:: \mathrm{cov} = \frac1N \sum_n \mathbb 1\big[|y_n - \mu_n| \le z\, \sigma_n\big].

    :param torch.Tensor mean: (N,) predictive means.
    :param torch.Tensor std: (N,) predictive standard deviations, or broadcastable to (N,)
        (e.g. a scalar); non-negative.
    :param torch.Tensor y: (N,) targets.
    :param float level: nominal coverage in (0, 1).
    :rtype: float
    """
    level = _check_level(level)
    mean = _float_tensor(mean, "mean")
    std = _float_tensor(std, "std", like=mean).to(mean.dtype)
    y = _float_tensor(y, "y", like=mean).to(mean.dtype)
    _check_ndim(mean, "mean", (1,), "(N,)")
    _check_same_shape(mean, y, ("mean", "y"))
    _check_nonempty(y, "y")
    _check_broadcastable(std, mean, ("std", "mean"), "(N,)")
    if (std < 0).any():
        raise ValueError("std must be non-negative")
    normal = torch.distributions.Normal(
        torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    )
    z = float(normal.icdf(torch.tensor((1.0 + level) / 2, dtype=torch.float64)))
    return float(((y - mean).abs() <= z * std).double().mean())


def coverage_curve(mean: Any, std: Any, y: Any, levels: Any = CALIBRATION_LEVELS) -> torch.Tensor:
    r"""Observed coverage of the central Gaussian intervals at several nominal levels.

    For each level :math:`\ell` (with :math:`z_\ell = \Phi^{-1}\big(\tfrac{1 + \ell}{2}\big)`),

    .. math:: \hat c(\ell) = \frac1N \sum_n \mathbb 1\big[|y_n - \mu_n| \le z_\ell\,
        \sigma_n\big],

    i.e. :func:`gaussian_interval_coverage` at every level. For a mixture predictive (MC
    dropout, Bayes by Backprop, a deep ensemble) ``mean`` / ``std`` are its first two moments,
    so the curve is that of the moment-matched Gaussian.

    :param torch.Tensor mean: (N,) predictive means.
    :param torch.Tensor std: (N,) predictive standard deviations (or broadcastable to (N,)).
    :param torch.Tensor y: (N,) targets.
    :param levels: nominal levels, each in (0, 1).
    :returns: (L,) float64 tensor of observed coverages, one per level, on the CPU.
    :rtype: torch.Tensor
    """
    levels = [float(v) for v in torch.as_tensor(levels, dtype=torch.float64).reshape(-1)]
    if not levels:
        raise ValueError("levels is empty; pass at least one nominal level in (0, 1)")
    return torch.tensor([gaussian_interval_coverage(mean, std, y, lv) for lv in levels],
                        dtype=torch.float64)


def coverage_calibration_error(mean: Any, std: Any, y: Any,
                               levels: Any = CALIBRATION_LEVELS) -> float:
    r"""Regression calibration error: the mean gap between observed and nominal coverage.

    With :math:`\hat c(\ell)` the observed coverage of the central interval of nominal level
    :math:`\ell` (:func:`coverage_curve`) and L levels (default :data:`CALIBRATION_LEVELS`,
    0.05, 0.10, ..., 0.95),

    .. math:: \mathrm{CE} = \frac1L \sum_{l=1}^{L} \big|\hat c(\ell_l) - \ell_l\big|.

    0 for a perfectly calibrated predictive; at most :math:`\max_l \max(\ell_l, 1 - \ell_l)`
    (0.95 by default). Over- and under-confidence both count: an interval that is too narrow
    covers too little, one that is too wide too much.

    :param torch.Tensor mean: (N,) predictive means.
    :param torch.Tensor std: (N,) predictive standard deviations (or broadcastable to (N,)).
    :param torch.Tensor y: (N,) targets.
    :param levels: nominal levels, each in (0, 1).
    :rtype: float
    """
    curve = coverage_curve(mean, std, y, levels)
    nominal = torch.as_tensor(levels, dtype=torch.float64).reshape(-1)
    return float((curve - nominal).abs().mean())

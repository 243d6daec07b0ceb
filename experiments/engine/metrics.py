r"""Evaluation metrics for regression and classification, as pure torch functions.

Every function accepts tensors (array-likes are converted with :func:`torch.as_tensor`) and
returns a python ``float`` unless its docstring says it returns a tensor. Inputs may live on any
device: targets and labels are moved to the device of the predictions (the first argument), and a
returned tensor lives there too. Nothing here touches
Pyro's parameter store or the random state.

Shape conventions used throughout:

* ``S`` -- number of Monte Carlo samples (draws of the weights / function values),
* ``N`` -- number of data points,
* ``C`` -- number of classes.

Regression metrics take point predictions of shape ``(N,)`` or per-sample predictive
parameters of shape ``(S, N)``; classification metrics take class probabilities, either the
predictive mean :math:`\bar p_{nc} = \frac1S \sum_s p_{snc}` of shape ``(N, C)`` or the
samples ``(S, N, C)`` themselves.

Invalid inputs (mismatched shapes, empty tensors, interval levels outside :math:`(0, 1)`,
probabilities that do not sum to one within ``1e-3``) raise :class:`ValueError` with a message
naming the shapes received and expected.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = [
    "PROB_ATOL",
    "accuracy",
    "CALIBRATION_LEVELS",
    "confidence_bins",
    "coverage_calibration_error",
    "coverage_curve",
    "expected_calibration_error",
    "expected_entropy",
    "gaussian_interval_coverage",
    "gaussian_log_likelihood",
    "gaussian_log_likelihood_per_point",
    "interval_coverage",
    "log_likelihood_from_samples",
    "log_mean_exp",
    "mae",
    "mutual_information",
    "nll",
    "predictive_entropy",
    "predictive_mean",
    "rmse",
]

#: Tolerance on :math:`|\sum_c p_c - 1|` accepted by the classification metrics.
PROB_ATOL = 1e-3

#: Nominal levels of :func:`coverage_calibration_error`: 0.05, 0.10, ..., 0.95.
CALIBRATION_LEVELS = tuple(round(0.05 * k, 2) for k in range(1, 20))


# ---------------------------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------------------------


def _float_tensor(x: Any, name: str, like: torch.Tensor | None = None) -> torch.Tensor:
    """``x`` as a floating-point tensor (integer/bool input is cast to the default dtype); with
    ``like``, on ``like``'s device (targets follow the predictions)."""
    t = torch.as_tensor(x)
    if like is not None:
        t = t.to(like.device)
    if not (t.is_floating_point() or t.is_complex()):
        t = t.to(torch.get_default_dtype())
    if t.is_complex():
        raise ValueError(f"{name} must be real-valued, got dtype {t.dtype}")
    return t


def _check_nonempty(t: torch.Tensor, name: str) -> None:
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}); need at least one element")



def _check_samples_and_targets(x: torch.Tensor, y: torch.Tensor, name: str, expected: str) -> None:
    """(S, N) samples against (N,) targets: ranks, non-empty, matching N."""
    _check_ndim(x, name, (2,), expected)
    _check_ndim(y, "y", (1,), "(N,)")
    _check_nonempty(x, name)
    if x.shape[1] != y.shape[0]:
        raise ValueError(
            f"{name} must have shape (S, N) with N = len(y) = {y.shape[0]}, "
            f"got {name} {tuple(x.shape)} and y {tuple(y.shape)}"
        )


def _check_broadcastable(t: torch.Tensor, target: torch.Tensor, names: tuple[str, str],
                         label: str) -> None:
    """``t`` must broadcast to exactly ``target``'s shape."""
    try:
        shape = torch.broadcast_shapes(t.shape, target.shape)
    except RuntimeError:
        shape = None
    if shape != target.shape:
        raise ValueError(
            f"{names[0]} must be broadcastable to {names[1]}'s shape {label} = "
            f"{tuple(target.shape)}, got {names[0]} {tuple(t.shape)}"
        )

def _check_ndim(t: torch.Tensor, name: str, ndims: tuple[int, ...], expected: str) -> None:
    if t.dim() not in ndims:
        raise ValueError(f"{name} must have shape {expected}, got shape {tuple(t.shape)}")


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape (N,), got "
            f"{names[0]} {tuple(a.shape)} and {names[1]} {tuple(b.shape)}"
        )


def _check_level(level: float) -> float:
    level = float(level)
    if not (0.0 < level < 1.0):
        raise ValueError(f"level must lie strictly inside (0, 1), got {level}")
    return level


def _labels(y: Any, n: int, num_classes: int) -> torch.Tensor:
    """Validate integer class labels of shape ``(n,)`` with values in ``[0, num_classes)``."""
    y = torch.as_tensor(y)
    if y.dim() != 1 or y.shape[0] != n:
        raise ValueError(
            f"labels y must have shape (N,) = ({n},) to match the probabilities, "
            f"got shape {tuple(y.shape)}"
        )
    if y.is_floating_point():
        if not torch.equal(y, torch.round(y)):
            raise ValueError("labels y must be integer class indices, got non-integral floats")
        y = y.long()
    elif y.dtype == torch.bool or y.is_complex():
        raise ValueError(f"labels y must be integer class indices, got dtype {y.dtype}")
    y = y.long()
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"labels y must lie in [0, C) = [0, {num_classes}), "
            f"got values in [{int(y.min())}, {int(y.max())}]"
        )
    return y


def _check_probs(p: torch.Tensor, name: str) -> None:
    """Probabilities along the last dim: finite, non-negative, summing to 1 within PROB_ATOL."""
    if not torch.isfinite(p).all():
        raise ValueError(f"{name} contains non-finite values")
    if (p < 0).any():
        raise ValueError(f"{name} contains negative probabilities (min {float(p.min()):.3g})")
    err = (p.sum(-1) - 1.0).abs().max()
    if float(err) > PROB_ATOL:
        raise ValueError(
            f"{name} of shape {tuple(p.shape)} must sum to 1 over the last (class) dimension "
            f"within {PROB_ATOL:g}; the largest deviation is {float(err):.3g}"
        )


def _mean_probs(probs: Any, name: str = "mean_probs") -> torch.Tensor:
    """Validated ``(N, C)`` predictive mean from ``(N, C)`` or ``(S, N, C)`` input."""
    p = _float_tensor(probs, name)
    _check_ndim(p, name, (2, 3), "(N, C) or (S, N, C)")
    _check_nonempty(p, name)
    _check_probs(p, name)
    return p.mean(0) if p.dim() == 3 else p


def _prob_samples(probs: Any) -> torch.Tensor:
    """Validated ``(S, N, C)`` probability samples."""
    p = _float_tensor(probs, "probs")
    _check_ndim(p, "probs", (3,), "(S, N, C)")
    _check_nonempty(p, "probs")
    _check_probs(p, "probs")
    return p


def _entropy(p: torch.Tensor) -> torch.Tensor:
    r""":math:`-\sum_c p_c \log p_c` over the last dim, with :math:`0 \log 0 = 0`."""
    return -torch.special.xlogy(p, p).sum(-1)


def _quantile_dim0(x: torch.Tensor, q: float) -> torch.Tensor:
    """Linear-interpolation empirical quantile along dim 0 (as ``torch.quantile``'s default),
    without ``torch.quantile``'s limit on the input size."""
    s = x.shape[0]
    xs = torch.sort(x, dim=0).values
    pos = q * (s - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, s - 1)
    w = pos - lo
    return xs[lo] + w * (xs[hi] - xs[lo])


# ---------------------------------------------------------------------------------------------
# regression
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------------------------


def predictive_mean(probs: Any) -> torch.Tensor:
    r"""Predictive class probabilities :math:`\bar p_{nc} = \frac1S \sum_s p_{snc}`.

    :param torch.Tensor probs: (S, N, C) probability samples.
    :returns: (N, C) tensor.
    :rtype: torch.Tensor
    """
    return _prob_samples(probs).mean(0)


def accuracy(mean_probs: Any, y: Any) -> float:
    r"""Fraction of points whose most probable class is the true class.

    .. math:: \mathrm{acc} = \frac1N \sum_n \mathbb 1\big[\arg\max_c \bar p_{nc} = y_n\big]

    :param torch.Tensor mean_probs: (N, C) predictive probabilities; (S, N, C) samples are
        averaged over S first.
    :param torch.Tensor y: (N,) integer labels in [0, C).
    :rtype: float
    """
    p = _mean_probs(mean_probs)
    y = _labels(y, p.shape[0], p.shape[1]).to(p.device)
    return float((p.argmax(-1) == y).double().mean())


def nll(mean_probs: Any, y: Any) -> float:
    r"""Mean negative log predictive probability of the true class.

    .. math:: \mathrm{NLL} = -\frac1N \sum_n \log \bar p_{n, y_n}

    Probabilities are clamped below at the dtype's smallest normal number so that a zero
    probability gives a large finite value instead of ``inf``.

    :param torch.Tensor mean_probs: (N, C) predictive probabilities; (S, N, C) samples are
        averaged over S first.
    :param torch.Tensor y: (N,) integer labels in [0, C).
    :rtype: float
    """
    p = _mean_probs(mean_probs)
    y = _labels(y, p.shape[0], p.shape[1]).to(p.device)
    p_true = p.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    return float(-torch.log(p_true.clamp_min(torch.finfo(p.dtype).tiny)).mean())


def confidence_bins(p: torch.Tensor, y: torch.Tensor, n_bins: int):
    r"""The equal-width confidence bins of :func:`expected_calibration_error` for (N, C)
    probabilities ``p`` and (N,) labels ``y`` (checked by the caller): each point's bin index in
    [0, n_bins), its confidence :math:`\max_c p_{nc}`, and whether its prediction is correct
    (in ``p``'s dtype). Bin b holds confidences in (b/M, (b+1)/M]."""
    conf, pred = p.max(-1)
    correct = (pred == y).to(p.dtype)
    # bucketize(right=False) gives boundaries[i-1] < x <= boundaries[i]
    inner = torch.linspace(0.0, 1.0, n_bins + 1, dtype=p.dtype, device=p.device)[1:-1]
    return torch.bucketize(conf.contiguous(), inner, right=False), conf, correct


def expected_calibration_error(mean_probs: Any, y: Any, n_bins: int = 15) -> float:
    r"""Expected calibration error with equal-width confidence bins.

    Following Naeini et al. (2015) and Guo et al. (2017): the confidence
    :math:`c_n = \max_c \bar p_{nc}` of each point is put in one of ``n_bins`` equal-width bins
    :math:`B_b = \big(\tfrac{b-1}{M}, \tfrac{b}{M}\big]`, and

    .. math::

        \mathrm{ECE} = \sum_{b=1}^{M} \frac{|B_b|}{N}
        \big|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\big|,

    where :math:`\mathrm{acc}(B_b)` is the fraction of correct predictions and
    :math:`\mathrm{conf}(B_b)` the mean confidence in the bin (empty bins contribute 0).

    :param torch.Tensor mean_probs: (N, C) predictive probabilities; (S, N, C) samples are
        averaged over S first.
    :param torch.Tensor y: (N,) integer labels in [0, C).
    :param int n_bins: number of bins M (positive).
    :rtype: float
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    p = _mean_probs(mean_probs)
    y = _labels(y, p.shape[0], p.shape[1]).to(p.device)
    idx, conf, correct = confidence_bins(p, y, n_bins)
    count = torch.zeros(n_bins, dtype=p.dtype, device=p.device).index_add_(
        0, idx, torch.ones_like(conf)
    )
    sum_conf = torch.zeros_like(count).index_add_(0, idx, conf)
    sum_acc = torch.zeros_like(count).index_add_(0, idx, correct)
    # sum_b |B_b|/N |acc_b - conf_b| = (1/N) sum_b |sum_acc_b - sum_conf_b|
    return float((sum_acc - sum_conf).abs().sum() / conf.shape[0])


def predictive_entropy(probs: Any) -> torch.Tensor:
    r"""Entropy of the predictive mean (total uncertainty).

    .. math:: \mathbb H[\bar p_n] = -\sum_c \bar p_{nc} \log \bar p_{nc},
        \qquad \bar p_{nc} = \frac1S \sum_s p_{snc}

    :param torch.Tensor probs: (S, N, C) probability samples.
    :returns: (N,) tensor, in nats, in :math:`[0, \log C]`.
    :rtype: torch.Tensor
    """
    return _entropy(_prob_samples(probs).mean(0))


def expected_entropy(probs: Any) -> torch.Tensor:
    r"""Mean entropy of the per-sample predictions (aleatoric uncertainty).

    .. math:: \mathbb E_s \mathbb H[p_{sn}] = -\frac1S \sum_s \sum_c p_{snc} \log p_{snc}

    :param torch.Tensor probs: (S, N, C) probability samples.
    :returns: (N,) tensor, in nats.
    :rtype: torch.Tensor
    """
    return _entropy(_prob_samples(probs)).mean(0)


def mutual_information(probs: Any) -> torch.Tensor:
    r"""Mutual information between the label and the parameters (BALD, epistemic uncertainty).

    .. math:: \mathbb I[y_n; \theta] = \mathbb H[\bar p_n] - \mathbb E_s \mathbb H[p_{sn}]

    Non-negative by concavity of the entropy; tiny negative values from rounding are clamped
    to 0.

    :param torch.Tensor probs: (S, N, C) probability samples.
    :returns: (N,) tensor, in nats.
    :rtype: torch.Tensor
    """
    p = _prob_samples(probs)
    return (_entropy(p.mean(0)) - _entropy(p).mean(0)).clamp_min(0.0)


# ---------------------------------------------------------------------------------------------
# coverage
# ---------------------------------------------------------------------------------------------


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

r"""Classification metrics of :mod:`experiments.engine.metrics`: the predictive mean of sampled
class probabilities, accuracy, NLL, expected calibration error (ECE) and its confidence bins, and
the entropy-based uncertainties (predictive entropy, expected entropy, mutual information)."""

from __future__ import annotations

from typing import Any

import torch

from experiments.engine.metric_checks import (
    _entropy,
    _labels,
    _mean_probs,
    _prob_samples,
)


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

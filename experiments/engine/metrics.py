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

The functions live in :mod:`~experiments.engine.regression_metrics`,
:mod:`~experiments.engine.classification_metrics` and
:mod:`~experiments.engine.calibration_metrics` (coverage of regression intervals), their shared
input checks in :mod:`~experiments.engine.metric_checks`; this module is their one public face
(``from experiments import metrics``).
"""

from __future__ import annotations

from experiments.engine.calibration_metrics import (
    CALIBRATION_LEVELS,
    coverage_calibration_error,
    coverage_curve,
    gaussian_interval_coverage,
    interval_coverage,
)
from experiments.engine.classification_metrics import (
    accuracy,
    confidence_bins,
    expected_calibration_error,
    expected_entropy,
    mutual_information,
    nll,
    predictive_entropy,
    predictive_mean,
)
from experiments.engine.metric_checks import PROB_ATOL
from experiments.engine.regression_metrics import (
    gaussian_log_likelihood,
    gaussian_log_likelihood_per_point,
    log_likelihood_from_samples,
    log_mean_exp,
    mae,
    rmse,
)

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

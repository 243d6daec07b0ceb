r"""Bayesian multilayer perceptron (Bayes by Backprop) and its deterministic / MC-dropout baseline.

The Pyro model of :class:`BayesianMLP` is

.. math::
    W_l \sim p(W_l) \;(l \in \text{Bayesian layers}), \qquad
    h_0 = x,\; h_l = \phi(W_l [h_{l-1}; 1]),\qquad
    y_n \mid x_n, W \sim p(y_n \mid f(x_n; W)),

with one sample site ``w{l}`` per Bayesian layer holding weights and bias together as an
``(out, in + 1)`` matrix (Pyro's per-site overhead dominates small nets, so sites are kept few).
Non-Bayesian layers are ordinary parameters (point estimates), which gives last-layer BNNs.

References

[1] Blundell, Cornebise, Kavukcuoglu, Wierstra. *Weight Uncertainty in Neural Networks*. ICML 2015.
[2] Gal, Ghahramani. *Dropout as a Bayesian Approximation*. ICML 2016.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro
import torch
import torch.nn.functional as F
from torch import nn

from .base import ZooModel, bayes_linear, check_size, expand_to_plates, record
from .likelihoods import likelihood_for
from .priors import WeightPrior
from .registry import register_model

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "elu": F.elu,
               "gelu": F.gelu, "erf": torch.erf, "identity": lambda h: h}


def _activation(name: str):
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}") from None


#: the likelihoods of :mod:`models.likelihoods` a network's output can feed
LIKELIHOODS = ("gaussian", "heteroscedastic-gaussian", "student-t", "bernoulli", "categorical",
               "softmax")


def _likelihood(task: str, likelihood: str | None, out_features: int, noise_std: float,
                learn_noise: bool, student_df: float):
    if task not in ("regression", "classification"):
        raise ValueError(f"task must be 'regression' or 'classification', got {task!r}")
    name = likelihood or ("gaussian" if task == "regression" else "categorical")
    lik = likelihood_for(name, LIKELIHOODS, noise_std=noise_std, learn_noise=learn_noise,
                         num_classes=out_features, student_df=student_df)
    if lik.num_outputs != out_features:
        raise ValueError(f"the {name} likelihood reads {lik.num_outputs} output(s) per row, but "
                         f"out_features={out_features}; set out_features={lik.num_outputs}")
    return lik


def _kaiming_uniform(out_f: int, in_f: int, generator=None) -> torch.Tensor:
    """``nn.Linear``'s default initialisation as one ``(out, in + 1)`` matrix [W | b]."""
    bound = 1.0 / math.sqrt(in_f)
    return (torch.rand(out_f, in_f + 1, generator=generator) * 2 - 1) * bound


class _MLPBase(ZooModel):
    def __init__(self, in_features, widths, out_features, activation, task, noise_std, learn_noise,
                 num_data, likelihood=None, student_df=4.0):
        super().__init__(num_data=num_data)
        if in_features < 1 or out_features < 1 or any(int(w) < 1 for w in widths):
            raise ValueError(
                f"layer sizes must be positive, got in={in_features}, widths={tuple(widths)}, "
                f"out={out_features}"
            )
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.widths = tuple(int(w) for w in widths)
        self.sizes = (self.in_features, *self.widths, self.out_features)
        check_size(sum((a + 1) * b for a, b in zip(self.sizes, self.sizes[1:])),
                   f"widths={list(self.widths)} with {self.in_features} inputs", "use smaller widths")
        self.activation = activation
        self._act = _activation(activation)
        self.task = task
        self.likelihood = _likelihood(task, likelihood, out_features, noise_std, learn_noise,
                                      student_df)

    def _check(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        if x.dim() != 2 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"x must have shape (N, {self.in_features}), got {tuple(x.shape)}; reshape your "
                "inputs (e.g. x.reshape(len(x), -1) for images)"
            )
        if y is not None:
            if y.shape != x.shape[:1]:
                raise ValueError(f"y must have shape ({x.shape[0]},) to match x, got {tuple(y.shape)}")
            if self.likelihood.integer_targets and y.dtype not in (torch.int64, torch.int32):
                raise ValueError(f"classification labels must be integers, got dtype {y.dtype}")

    def example_data(self, num_data: int, generator: torch.Generator | None = None):
        x = torch.randn(num_data, self.in_features, generator=generator)
        s = x.sum(-1)  # (a Bernoulli net labels by the sign of s, the others see sin s)
        return x, self.likelihood.example_targets(s.sin(), generator, score=s)

    def _observe(self, x, f, y):
        with self.data_plate(x):
            record("f", f, event_dim=1)
            return self.likelihood(f, y)


@register_model("bnn", family="bnn",
                test_config=dict(in_features=2, widths=(4,), out_features=1))
class BayesianMLP(_MLPBase):
    """A fully-connected Bayesian network; the model side of Bayes by Backprop.

    :param int in_features: input dimension D.
    :param widths: hidden layer widths, e.g. ``(400, 400)``; ``()`` is Bayesian linear regression.
    :param int out_features: 1 for regression, the number of classes for classification.
    :param str activation: one of :data:`ACTIVATIONS`.
    :param str task: ``"regression"`` (Gaussian likelihood by default) or ``"classification"``
        (categorical by default).
    :param dict prior: keyword arguments of :class:`~models.priors.WeightPrior`, e.g.
        ``{"kind": "scale-mixture", "mixture_weight": 0.5, "sigma1": 1.0, "sigma2": 0.0025}``.
    :param bayesian_layers: ``"all"``, ``"last"``, or indices of the Bayesian layers (0-based,
        negative allowed); the others are point-estimated parameters.
    :param float noise_std: (initial) observation noise for regression.
    :param bool learn_noise: learn the noise as a point estimate.
    :param int num_data: training-set size (see :class:`~models.base.ZooModel`).
    :param str likelihood: one of :data:`LIKELIHOODS` (:mod:`models.likelihoods`), overriding the
        task's default: ``"student-t"`` (robust regression), ``"heteroscedastic-gaussian"``
        (``out_features=2``: mean and noise scale), ``"bernoulli"`` (binary labels 0/1 as floats).
    :param float student_df: ν of the Student-t likelihood.
    """

    def __init__(self, in_features: int = 1, widths: Sequence[int] = (50,), out_features: int = 1,
                 activation: str = "relu", task: str = "regression", prior: dict | None = None,
                 bayesian_layers="all", noise_std: float = 0.1, learn_noise: bool = True,
                 num_data: int | None = None, likelihood: str | None = None,
                 student_df: float = 4.0):
        super().__init__(in_features, widths, out_features, activation, task, noise_std,
                         learn_noise, num_data, likelihood, student_df)
        self.prior = WeightPrior(**(prior or {}))
        num_layers = len(self.sizes) - 1
        if bayesian_layers == "all":
            chosen = set(range(num_layers))
        elif bayesian_layers == "last":
            chosen = {num_layers - 1}
        else:
            try:
                chosen = {int(i) % num_layers for i in bayesian_layers}
            except (TypeError, ValueError):
                raise ValueError(
                    f"bayesian_layers must be 'all', 'last' or a list of layer indices, got "
                    f"{bayesian_layers!r}"
                ) from None
            if any(not -num_layers <= int(i) < num_layers for i in bayesian_layers):
                raise ValueError(f"bayesian_layers {bayesian_layers!r} out of range for "
                                 f"{num_layers} layers")
        self.bayesian = tuple(i in chosen for i in range(num_layers))
        # point-estimated layers are plain parameters owned by the module
        self.point_layers = nn.ModuleDict({
            str(i): nn.Linear(self.sizes[i], self.sizes[i + 1])
            for i in range(num_layers) if not self.bayesian[i]
        })

    @property
    def latent_sites(self) -> list[str]:
        return [f"w{i}" for i, b in enumerate(self.bayesian) if b]

    def weight_shape(self, layer: int) -> torch.Size:
        return torch.Size((self.sizes[layer + 1], self.sizes[layer] + 1))

    def initial_values(self, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        device = self.prior.sigma.device
        return {f"w{i}": _kaiming_uniform(self.sizes[i + 1], self.sizes[i], generator).to(device)
                for i, b in enumerate(self.bayesian) if b}

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self._check(x, y)
        h = x  # (N, D), later (..., N, H) with particle dims on the left
        last = len(self.bayesian) - 1
        for i, is_bayesian in enumerate(self.bayesian):
            if is_bayesian:
                w = pyro.sample(f"w{i}", self.prior(self.weight_shape(i)))  # (..., out, in + 1)
                h = bayes_linear(h, w, name=f"w{i}")
            else:
                h = self.point_layers[str(i)](h)
            if i < last:
                h = self._act(h)
        return self._observe(x, h, y)


@register_model("mlp", family="bnn",
                test_config=dict(in_features=2, widths=(4,), out_features=1, dropout=0.1))
class MLP(_MLPBase):
    r"""Deterministic MLP as a Pyro model with no latent sites: the "plain net" baseline, and with
    ``dropout > 0`` the MC-dropout baseline (dropout stays on at prediction, each predictive
    sample / ELBO particle drawing its own masks).

    Trained by the same loop with the empty ``deterministic`` guide, the ELBO reduces to the
    log-likelihood. Gal's MC dropout adds an L2 term for a weight prior of length-scale l: his
    objective :math:`\frac1N\sum_n (y_n - \hat y_n)^2 + \lambda\lVert W\rVert^2` with
    :math:`\lambda = l^2(1-p)/(2N\tau)` is, times :math:`N\tau/2`, the summed negative
    log-likelihood ``fit`` minimises plus :math:`\tfrac{l^2(1-p)}{4}\lVert W\rVert^2`, i.e. the
    optimiser's ``weight_decay = l^2 (1 - p) / 2`` (``FitConfig.weight_decay``;
    :func:`experiments.uci_benchmark.dropout_weight_decay` computes it; l = 1e-2 there).

    :param int in_features: input dimension D.
    :param widths: hidden layer widths, e.g. ``(50,)``; ``()`` is a linear model.
    :param int out_features: 1 for regression, the number of classes for classification
        (2 for ``likelihood="heteroscedastic-gaussian"``).
    :param str activation: one of :data:`ACTIVATIONS`.
    :param str task: ``"regression"`` (Gaussian likelihood by default) or ``"classification"``
        (categorical by default).
    :param float dropout: p in [0, 1): dropout before every layer but the first, kept on at
        prediction (MC dropout); 0 is the plain net.
    :param float noise_std: (initial) observation noise for regression.
    :param bool learn_noise: learn the noise as a point estimate.
    :param int num_data: training-set size (see :class:`~models.base.ZooModel`).
    :param str likelihood: one of :data:`LIKELIHOODS`, overriding the task's default.
    :param float student_df: ν of the Student-t likelihood.
    """

    def __init__(self, in_features: int = 1, widths: Sequence[int] = (50,), out_features: int = 1,
                 activation: str = "relu", task: str = "regression", dropout: float = 0.0,
                 noise_std: float = 0.1, learn_noise: bool = True, num_data: int | None = None,
                 likelihood: str | None = None, student_df: float = 4.0):
        super().__init__(in_features, widths, out_features, activation, task, noise_std,
                         learn_noise, num_data, likelihood, student_df)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(self.sizes[:-1], self.sizes[1:]))

    latent_sites: list[str] = []

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self._check(x, y)
        h = expand_to_plates(x) if self.dropout > 0 else x
        for i, layer in enumerate(self.layers):
            if i > 0 and self.dropout > 0:
                # MC dropout: masks are sampled at prediction time too (Gal & Ghahramani 2016)
                h = F.dropout(h, self.dropout, training=True)
            h = layer(h)
            if i < len(self.layers) - 1:
                h = self._act(h)
        return self._observe(x, h, y)

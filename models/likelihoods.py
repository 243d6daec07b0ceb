r"""Observation models of the zoo, one table for every family: :data:`LIKELIHOODS`.

A likelihood is a :class:`~pyro.nn.PyroModule` called inside the model's data plate with the
model's output ``f`` of shape ``(..., N, num_outputs)`` (the network's last layer, the GP's
latent functions, the decoder's per-pixel parameters) and records the observation site ``obs``:

============================  ==================  ===============================================
name                          ``num_outputs``     :math:`p(y_n \mid f_n)`
============================  ==================  ===============================================
``gaussian``                  1                   :math:`\mathcal N(f_n, \sigma^2)`, σ fixed or
                                                  learned (a point estimate)
``heteroscedastic-gaussian``  2                   :math:`\mathcal N(f_{n1}, (s_{\min} +
                                                  \mathrm{softplus}(f_{n2}))^2)`
``student-t``                 1                   :math:`\mathrm{StudentT}_\nu(f_n, \sigma)`,
                                                  ν fixed, σ fixed or learned
``bernoulli``                 1                   :math:`\mathrm{Bernoulli}(\sigma(f_n))`,
                                                  labels 0/1 as floats
``categorical``               C                   :math:`\mathrm{Categorical}(\mathrm{softmax}
                                                  (f_n))`, integer labels (alias ``softmax``)
``image-bernoulli``           D                   :math:`\prod_d \mathrm{Bernoulli}(\sigma(f_{nd}))`
``image-continuous-bernoulli`` D                  :math:`\prod_d \mathcal{CB}(\sigma(f_{nd}))`
``image-gaussian``            D or 2D             :math:`\prod_d \mathcal N(m(a_{nd}), s_{nd}^2)`
============================  ==================  ===============================================

The image likelihoods take an event of D pixels per row (the VAE's); their ``mean(f)`` is the
decoder mean parameter the VAE reports as ``f``. ``make_likelihood(name, **kwargs)`` builds one;
models take the name as their ``likelihood=`` argument, so every model gains every likelihood
that fits its output (a BNN regression with ``likelihood="student-t"``, a Bernoulli BNN
classifier, a heteroscedastic BNN with ``out_features=2``).

Code outside this module never branches on a likelihood's class: it reads what the likelihood
declares (:class:`Likelihood`: ``kind``, ``integer_targets``, ``conjugate``) and calls its
methods (the data term :meth:`Likelihood.expected_log_prob`, the predictive moments, the target
checks), so that a new likelihood is one class here. The contract is
:mod:`models.likelihood_base`, the image likelihoods :mod:`models.image_likelihoods` (all
importable from here).
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import constraints
from pyro.nn import PyroParam

from .base import record
from .image_likelihoods import (
    ImageBernoulliLikelihood,
    ImageContinuousBernoulliLikelihood,
    ImageGaussianLikelihood,
    ImageLikelihood,
)
from .likelihood_base import PREDICTIVE_KINDS, Likelihood


def _rows(mask: torch.Tensor) -> str:
    rows = mask.reshape(len(mask), -1).any(-1).nonzero()[:5, 0].tolist()
    return f"{rows}{'...' if int(mask.sum()) > len(rows) else ''}"


def _scale_param(module, name: str, value: float, learn: bool, what: str) -> None:
    if not value > 0:
        raise ValueError(f"{what} must be > 0, got {value!r}")
    if learn:
        setattr(module, name, PyroParam(torch.tensor(float(value)), constraints.positive))
    else:
        module.register_buffer(name, torch.tensor(float(value)))


class GaussianLikelihood(Likelihood):
    r"""Homoscedastic Gaussian :math:`y_n \sim \mathcal N(f_n, \sigma^2)`.

    :param float noise_std: initial (or fixed) :math:`\sigma`.
    :param bool learn_noise: learn :math:`\sigma` as a point estimate (maximum likelihood / type-II)
        rather than keep it fixed.
    """

    conjugate = True

    def __init__(self, noise_std: float = 0.1, learn_noise: bool = True):
        super().__init__()
        self.learn_noise = bool(learn_noise)
        _scale_param(self, "noise_std", noise_std, learn_noise, "noise_std")

    def distribution(self, f):
        # f: (..., N, 1) -> loc (..., N), aligned with the data plate at dim -1
        return dist.Normal(f.squeeze(-1), self.noise_std)

    def max_log_density(self) -> float:
        r""":math:`-\log\sigma - \tfrac12\log 2\pi`, the density of a residual of 0."""
        return -math.log(float(self.noise_std.detach())) - 0.5 * math.log(2 * math.pi)

    def expected_log_prob(self, loc, var, y):
        r""":math:`\mathbb E_{\mathcal N(f; \mu, s^2)}\log\mathcal N(y \mid f, \sigma^2)
        = \log\mathcal N(y \mid \mu, \sigma^2) - s^2 / (2\sigma^2)`, in closed form (the SVGP's
        data term): the ``obs`` site carries the first term (so it is the observation, also for
        predictive checks) and a factor the second; ``f`` is recorded as the mean :math:`\mu`.
        Without ``y`` (prediction): the Monte Carlo default."""
        if y is None:
            return super().expected_log_prob(loc, var, y)
        record("f", loc, event_dim=1)
        obs = pyro.sample("obs", dist.Normal(loc.squeeze(-1), self.noise_std), obs=y)
        pyro.factor("obs_var", -0.5 * var.squeeze(-1) / self.noise_std ** 2)
        return obs

    def noise_scale(self, f):
        r""":math:`\sigma` for every draw."""
        return self.noise_std.detach().cpu().expand_as(f[..., 0])

    def noise_variance(self, f):
        r""":math:`\sigma^2`."""
        return (self.noise_std.detach().cpu() ** 2).expand(f.shape[1:-1])

    def predictive_moments(self, f_mean, f_var):
        r""":math:`(\mu_n, s_n^2 + \sigma^2)`."""
        return f_mean[:, 0], f_var[:, 0] + self.noise_std.detach().cpu() ** 2


class HeteroscedasticGaussianLikelihood(Likelihood):
    r""":math:`y_n \sim \mathcal N(f_{n1}, s_n^2)`, :math:`s_n = s_{\min} + \mathrm{softplus}(f_{n2})`:
    the model's second output is the noise scale (input-dependent noise).

    :param float min_scale: :math:`s_{\min} \ge 0`, a floor that keeps the density bounded.
    """

    num_outputs = 2

    def __init__(self, min_scale: float = 1e-3):
        super().__init__()
        if not min_scale >= 0:
            raise ValueError(f"min_scale must be >= 0, got {min_scale!r}")
        self.min_scale = float(min_scale)

    def distribution(self, f):
        return dist.Normal(f[..., 0], F.softplus(f[..., 1]) + self.min_scale)

    def noise_scale(self, f):
        """:math:`s_n` per draw."""
        return F.softplus(f[..., 1]) + self.min_scale

    def noise_variance(self, f):
        r""":math:`\frac1S\sum_s (s^{(s)}_n)^2`."""
        return (self.noise_scale(f) ** 2).mean(0)


class StudentTLikelihood(Likelihood):
    r"""Robust regression :math:`y_n \sim \mathrm{StudentT}_\nu(f_n, \sigma)`.

    :param float df: ν > 0, fixed.
    :param float noise_std: initial (or fixed) scale σ.
    :param bool learn_noise: learn σ as a point estimate.
    """

    def __init__(self, df: float = 4.0, noise_std: float = 0.1, learn_noise: bool = True):
        super().__init__()
        if not df > 0:
            raise ValueError(f"student-t needs df > 0, got df={df!r}")
        self.df = float(df)
        self.learn_noise = bool(learn_noise)
        _scale_param(self, "noise_std", noise_std, learn_noise, "student-t noise_std")

    def distribution(self, f):
        return dist.StudentT(self.df, f.squeeze(-1), self.noise_std)

    def max_log_density(self) -> float:
        r"""The Student-t density at its mode: :math:`\log\Gamma(\frac{\nu+1}2) -
        \log\Gamma(\frac\nu2) - \frac12\log\nu\pi - \log\sigma`."""
        nu = float(self.df)
        return (math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi)
                - math.log(float(self.noise_std.detach())))

    def noise_variance(self, f):
        r""":math:`\sigma^2 \nu / (\nu - 2)` (infinite for :math:`\nu \le 2`)."""
        sigma2 = float(self.noise_std.detach()) ** 2
        var = sigma2 * self.df / (self.df - 2) if self.df > 2 else math.inf
        return torch.full(f.shape[1:-1], var, dtype=f.dtype)

    def capture_blockers(self) -> list[str]:
        return ["its student-t likelihood cannot be captured (torch's StudentT copies a number "
                "from the host each time it is built, in its Chi2): use another likelihood"]


class BernoulliLikelihood(Likelihood):
    r"""Binary classification :math:`y_n \sim \mathrm{Bernoulli}(\sigma(f_n))`, labels 0/1 as floats."""

    kind = "binary"

    def max_log_density(self) -> float:
        """0: a probability is at most 1."""
        return 0.0

    def distribution(self, f):
        return dist.Bernoulli(logits=f.squeeze(-1))

    def check_targets(self, y):
        super().check_targets(y)
        bad = (y != 0) & (y != 1)
        if bad.any():
            values = sorted({float(v) for v in y[bad].unique()[:5]})
            raise ValueError(f"Bernoulli labels must be 0 or 1 (as floats); found {values} in rows "
                             f"{_rows(bad)}; map your two classes to 0 and 1 (e.g. (y + 1) / 2 "
                             "for -1/+1 labels)")

    def class_probabilities(self, f):
        r""":math:`(1 - \sigma(f), \sigma(f))`."""
        p1 = torch.sigmoid(f[..., 0])
        return torch.stack([1 - p1, p1], dim=-1)

    def example_targets(self, signal, generator=None, score=None):
        return ((signal if score is None else score) > 0).to(signal.dtype)

    def score_targets(self, y):
        y = y.double()
        if not ((y == 0) | (y == 1)).all():
            raise ValueError("y must hold binary labels 0/1 for the Bernoulli likelihood, got "
                             f"values {sorted(set(y.unique()[:5].tolist()))}...")
        return y.float()


class CategoricalLikelihood(Likelihood):
    """Softmax classification :math:`y_n \\sim \\mathrm{Categorical}(\\mathrm{softmax}(f_n))`.

    :param int num_classes: C >= 2 (the number of outputs).
    """

    kind = "classification"
    integer_targets = True

    def __init__(self, num_classes: int):
        super().__init__()
        if num_classes is None or num_classes < 2:
            raise ValueError(f"the categorical (softmax) likelihood needs num_classes >= 2, got "
                             f"{num_classes!r}")
        self.num_outputs = int(num_classes)

    def max_log_density(self) -> float:
        """0: a probability is at most 1."""
        return 0.0

    def distribution(self, f):
        return dist.Categorical(logits=f)

    def check_targets(self, y):
        if y.is_floating_point() or y.dtype == torch.bool:
            raise ValueError(f"class labels must be integers 0..{self.num_outputs - 1}, got dtype "
                             f"{y.dtype}; convert them with y.long()")
        bad = (y < 0) | (y >= self.num_outputs)
        if bad.any():
            raise ValueError(f"class labels must lie in 0..{self.num_outputs - 1} (num_classes = "
                             f"{self.num_outputs}); found {sorted(set(y[bad].tolist()))[:5]} in "
                             f"rows {_rows(bad)}")

    def class_probabilities(self, f):
        r""":math:`\mathrm{softmax}(f)`."""
        return torch.softmax(f, dim=-1)

    def example_targets(self, signal, generator=None, score=None):
        return torch.randint(self.num_outputs, (len(signal),), generator=generator)

    def score_targets(self, y):
        c = self.num_outputs
        if y.is_floating_point() and not torch.equal(y, y.round()):
            raise ValueError(f"y must hold integer class labels in [0, {c}), got non-integral "
                             "values")
        y = y.long()
        if int(y.min()) < 0 or int(y.max()) >= c:
            raise ValueError(f"y must hold class labels in [0, {c}), got values in "
                             f"[{int(y.min())}, {int(y.max())}]")
        return y


#: name -> likelihood class (``softmax`` is an alias of ``categorical``)
LIKELIHOODS: dict[str, type[Likelihood]] = {
    "gaussian": GaussianLikelihood,
    "heteroscedastic-gaussian": HeteroscedasticGaussianLikelihood,
    "student-t": StudentTLikelihood,
    "bernoulli": BernoulliLikelihood,
    "categorical": CategoricalLikelihood,
    "softmax": CategoricalLikelihood,
    "image-bernoulli": ImageBernoulliLikelihood,
    "image-continuous-bernoulli": ImageContinuousBernoulliLikelihood,
    "image-gaussian": ImageGaussianLikelihood,
}


def likelihood_for(name: str, choices, *, noise_std: float = 0.1, learn_noise: bool = True,
                   num_classes: int | None = None, student_df: float = 4.0) -> Likelihood:
    """The likelihood ``name`` (one of the model's ``choices``) built from a model's common
    options, each likelihood taking the ones it uses (noise for the Gaussian and Student-t,
    classes for the categorical)."""
    if name not in choices:
        raise ValueError(f"likelihood must be one of {tuple(choices)}, got {name!r}")
    kwargs = {"gaussian": dict(noise_std=noise_std, learn_noise=learn_noise),
              "student-t": dict(df=student_df, noise_std=noise_std, learn_noise=learn_noise),
              "categorical": dict(num_classes=num_classes),
              "softmax": dict(num_classes=num_classes)}.get(name, {})
    return make_likelihood(name, **kwargs)


def image_likelihood_for(name: str, num_pixels: int, *, mean: str = "sigmoid",
                         scale: str = "network", min_scale: float = 1e-2) -> ImageLikelihood:
    """The image likelihood ``image-<name>`` on ``num_pixels`` pixels built from the VAE's options,
    each taking the ones it uses (``mean``, ``scale``, ``min_scale``: the Gaussian's)."""
    kwargs = {"gaussian": dict(mean=mean, scale=scale, min_scale=min_scale)}.get(name, {})
    return make_likelihood(f"image-{name}", num_pixels=num_pixels, **kwargs)


def make_likelihood(name: str, **kwargs) -> Likelihood:
    """The likelihood registered as ``name`` in :data:`LIKELIHOODS`, built with ``kwargs``."""
    try:
        cls = LIKELIHOODS[name]
    except KeyError:
        raise ValueError(f"likelihood must be one of {sorted(LIKELIHOODS)}, got {name!r}") from None
    return cls(**kwargs)


__all__ = ["PREDICTIVE_KINDS", "BernoulliLikelihood", "CategoricalLikelihood", "GaussianLikelihood",
           "HeteroscedasticGaussianLikelihood", "ImageBernoulliLikelihood",
           "ImageContinuousBernoulliLikelihood", "ImageGaussianLikelihood", "ImageLikelihood",
           "LIKELIHOODS", "Likelihood", "StudentTLikelihood", "image_likelihood_for",
           "likelihood_for", "make_likelihood"]

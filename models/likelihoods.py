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
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import constraints
from pyro.nn import PyroModule, PyroParam


class Likelihood(PyroModule):
    """Base class: ``forward(f, y=None)`` records ``obs`` and returns its value.

    :ivar num_outputs: the size of the last dim of ``f`` this likelihood reads.
    """

    num_outputs: int = 1

    def distribution(self, f: torch.Tensor) -> dist.Distribution:
        raise NotImplementedError

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
        predictive checks) and a factor the second."""
        obs = pyro.sample("obs", dist.Normal(loc.squeeze(-1), self.noise_std), obs=y)
        pyro.factor("obs_var", -0.5 * var.squeeze(-1) / self.noise_std ** 2)
        return obs


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


class BernoulliLikelihood(Likelihood):
    r"""Binary classification :math:`y_n \sim \mathrm{Bernoulli}(\sigma(f_n))`, labels 0/1 as floats."""

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


class CategoricalLikelihood(Likelihood):
    """Softmax classification :math:`y_n \\sim \\mathrm{Categorical}(\\mathrm{softmax}(f_n))`.

    :param int num_classes: C >= 2 (the number of outputs).
    """

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


class ImageLikelihood(Likelihood):
    """Base of the per-pixel likelihoods of D-pixel images: ``mean(f)`` is the decoder mean
    parameter, ``distribution(f)`` has event shape ``(D,)``."""

    def __init__(self, num_pixels: int):
        super().__init__()
        if int(num_pixels) < 1:
            raise ValueError(f"num_pixels must be >= 1, got {num_pixels!r}")
        self.num_pixels = int(num_pixels)
        self.num_outputs = self.num_pixels

    def mean(self, f: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(f)


class ImageBernoulliLikelihood(ImageLikelihood):
    """Binary pixels, :math:`x_d \\sim \\mathrm{Bernoulli}(\\sigma(f_d))`."""

    def distribution(self, f):
        return dist.Bernoulli(logits=f).to_event(1)


class ImageContinuousBernoulliLikelihood(ImageLikelihood):
    """Grey pixels in [0, 1], :math:`x_d \\sim \\mathcal{CB}(\\sigma(f_d))` (normalised)."""

    def distribution(self, f):
        return dist.ContinuousBernoulli(logits=f).to_event(1)


class ImageGaussianLikelihood(ImageLikelihood):
    r"""Gaussian pixels :math:`x_d \sim \mathcal N(m(a_d), s_d^2)`, :math:`s = s_{\min} +
    \mathrm{softplus}(b)`.

    :param str mean: ``"sigmoid"`` (:math:`m = \sigma`, the mean in [0, 1]) or ``"identity"``.
    :param str scale: ``"network"`` (b is the second half of f: ``num_outputs = 2D``), ``"pixel"``
        (one learned b per pixel) or ``"shared"`` (one learned b).
    :param float min_scale: :math:`s_{\min} \ge 0` (the density is unbounded as s goes to 0).
    """

    MEANS = ("sigmoid", "identity")
    SCALES = ("network", "pixel", "shared")

    def __init__(self, num_pixels: int, mean: str = "sigmoid", scale: str = "network",
                 min_scale: float = 1e-2):
        super().__init__(num_pixels)
        for value, choices, what in ((mean, self.MEANS, "gaussian_mean"),
                                     (scale, self.SCALES, "gaussian_scale")):
            if value not in choices:
                raise ValueError(f"{what} must be one of {choices}, got {value!r}")
        if not min_scale >= 0:
            raise ValueError(f"min_scale must be >= 0, got {min_scale!r}")
        self.mean_link, self.scale_kind, self.min_scale = mean, scale, float(min_scale)
        if scale == "network":
            self.num_outputs = 2 * self.num_pixels
        else:
            n = self.num_pixels if scale == "pixel" else 1
            # softplus^-1(0.1): start every pixel's noise near 0.1 (+ min_scale)
            self.scale_raw = torch.nn.Parameter(torch.full((n,), math.log(math.expm1(0.1))))

    def _split(self, f):
        if self.scale_kind == "network":
            return f[..., : self.num_pixels], f[..., self.num_pixels:]
        return f, self.scale_raw

    def mean(self, f):
        a, _ = self._split(f)
        return torch.sigmoid(a) if self.mean_link == "sigmoid" else a

    def distribution(self, f):
        _, b = self._split(f)
        return dist.Normal(self.mean(f), F.softplus(b) + self.min_scale).to_event(1)


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


def make_likelihood(name: str, **kwargs) -> Likelihood:
    """The likelihood registered as ``name`` in :data:`LIKELIHOODS`, built with ``kwargs``."""
    try:
        cls = LIKELIHOODS[name]
    except KeyError:
        raise ValueError(f"likelihood must be one of {sorted(LIKELIHOODS)}, got {name!r}") from None
    return cls(**kwargs)


__all__ = ["BernoulliLikelihood", "CategoricalLikelihood", "GaussianLikelihood",
           "HeteroscedasticGaussianLikelihood", "ImageBernoulliLikelihood",
           "ImageContinuousBernoulliLikelihood", "ImageGaussianLikelihood", "ImageLikelihood",
           "LIKELIHOODS", "Likelihood", "StudentTLikelihood", "likelihood_for", "make_likelihood"]

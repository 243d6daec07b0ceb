"""Weight priors for Bayesian neural networks.

Both are fixed (not learned), as in Blundell et al. (2015), and live on the model as buffers so that
``model.to("cuda")`` moves them.

References

[1] Blundell, Cornebise, Kavukcuoglu, Wierstra. *Weight Uncertainty in Neural Networks*. ICML 2015.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.distributions.torch_distribution import TorchDistribution
from torch import nn
from torch.distributions.utils import broadcast_all


def _centred_normal_log_prob(value: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """log N(value | 0, scale²), torch's ``Normal(0, scale).log_prob`` term for term (the same
    floating-point result) without building a ``Normal``, whose ``loc=0.0`` torch copies from the
    host in every step (a copy CUDA-graph capture refuses)."""
    return -(value**2) / (2 * scale**2) - scale.log() - math.log(math.sqrt(2 * math.pi))


class ScaleMixtureGaussian(TorchDistribution):
    r"""Blundell's scale-mixture prior, a two-component zero-mean Gaussian mixture per weight:

    .. math:: p(w) = \pi\,\mathcal N(w \mid 0, \sigma_1^2) + (1-\pi)\,\mathcal N(w \mid 0, \sigma_2^2),

    with :math:`\sigma_1 > \sigma_2` so that many weights concentrate near zero (a heavy-tailed,
    spike-and-slab-like prior). There is no closed-form KL to a Gaussian, so
    :class:`~pyro.infer.TraceMeanField_ELBO` falls back to the Monte Carlo estimate for it.

    :param float mixture_weight: :math:`\pi \in (0, 1)`.
    :param float sigma1: scale of the wide component.
    :param float sigma2: scale of the narrow component.
    """

    arg_constraints = {
        "mixture_weight": constraints.unit_interval,
        "sigma1": constraints.positive,
        "sigma2": constraints.positive,
    }
    support = constraints.real
    has_rsample = False

    def __init__(self, mixture_weight, sigma1, sigma2, validate_args=None):
        # tensors keep their device and dtype (the prior's buffers); numbers follow them
        self.mixture_weight, self.sigma1, self.sigma2 = broadcast_all(mixture_weight, sigma1,
                                                                      sigma2)
        super().__init__(self.mixture_weight.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(ScaleMixtureGaussian, _instance)
        batch_shape = torch.Size(batch_shape)
        new.mixture_weight = self.mixture_weight.expand(batch_shape)
        new.sigma1 = self.sigma1.expand(batch_shape)
        new.sigma2 = self.sigma2.expand(batch_shape)
        super(ScaleMixtureGaussian, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self):
        return torch.zeros_like(self.sigma1)

    @property
    def variance(self):
        return self.mixture_weight * self.sigma1**2 + (1 - self.mixture_weight) * self.sigma2**2

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        lp1 = torch.log(self.mixture_weight) + _centred_normal_log_prob(value, self.sigma1)
        lp2 = torch.log1p(-self.mixture_weight) + _centred_normal_log_prob(value, self.sigma2)
        return torch.logaddexp(lp1, lp2)

    def sample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            u = torch.rand(shape, dtype=self.sigma1.dtype, device=self.sigma1.device)
            wide = u < self.mixture_weight.expand(shape)
            scale = torch.where(wide, self.sigma1.expand(shape), self.sigma2.expand(shape))
            return scale * torch.randn(shape, device=scale.device, dtype=scale.dtype)


class WeightPrior(nn.Module):
    """A fixed prior over weight tensors, kept as buffers; ``prior(shape)`` returns the distribution
    with ``event_shape == shape``.

    :param str kind: ``"gaussian"`` (isotropic :math:`\\mathcal N(0, \\sigma^2)`) or
        ``"scale-mixture"`` (:class:`ScaleMixtureGaussian`).
    :param float sigma: scale of the Gaussian prior.
    :param float mixture_weight, sigma1, sigma2: parameters of the scale mixture. Blundell's grid is
        :math:`\\pi \\in \\{1/4, 1/2, 3/4\\}`, :math:`-\\log\\sigma_1 \\in \\{0,1,2\\}`,
        :math:`-\\log\\sigma_2 \\in \\{6,7,8\\}`.
    """

    KINDS = ("gaussian", "scale-mixture")

    def __init__(
        self,
        kind: str = "gaussian",
        sigma: float = 1.0,
        mixture_weight: float = 0.5,
        sigma1: float = math.exp(0.0),
        sigma2: float = math.exp(-6.0),
    ):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"prior kind must be one of {self.KINDS}, got {kind!r}")
        for label, value in (("sigma", sigma), ("sigma1", sigma1), ("sigma2", sigma2)):
            if not value > 0:
                raise ValueError(f"prior {label} must be > 0, got {value!r}")
        if not 0 < mixture_weight < 1:
            raise ValueError(f"prior mixture_weight must be in (0, 1), got {mixture_weight!r}")
        self.kind = kind
        self.register_buffer("sigma", torch.tensor(float(sigma)))
        self.register_buffer("mixture_weight", torch.tensor(float(mixture_weight)))
        self.register_buffer("sigma1", torch.tensor(float(sigma1)))
        self.register_buffer("sigma2", torch.tensor(float(sigma2)))

    def forward(self, shape) -> TorchDistribution:
        shape = torch.Size(shape)
        if self.kind == "gaussian":
            base = dist.Normal(torch.zeros_like(self.sigma), self.sigma)
        else:
            base = ScaleMixtureGaussian(self.mixture_weight, self.sigma1, self.sigma2)
        return base.expand(shape).to_event(len(shape))

    def extra_repr(self) -> str:
        if self.kind == "gaussian":
            return f"gaussian, sigma={self.sigma.item():.3g}"
        return (
            f"scale-mixture, pi={self.mixture_weight.item():.3g}, "
            f"sigma1={self.sigma1.item():.3g}, sigma2={self.sigma2.item():.3g}"
        )

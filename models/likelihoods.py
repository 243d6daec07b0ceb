"""Observation models shared by the zoo's models. Each is called inside the model's data plate
with the network/GP output ``f`` and records the site ``obs``."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.nn import PyroModule, PyroParam


class GaussianLikelihood(PyroModule):
    r"""Homoscedastic Gaussian :math:`y_n \sim \mathcal N(f_n, \sigma^2)`.

    :param float noise_std: initial (or fixed) :math:`\sigma`.
    :param bool learn_noise: learn :math:`\sigma` as a point estimate (maximum likelihood / type-II)
        rather than keep it fixed.
    """

    def __init__(self, noise_std: float = 0.1, learn_noise: bool = True):
        super().__init__()
        if not noise_std > 0:
            raise ValueError(f"noise_std must be > 0, got {noise_std!r}")
        self.learn_noise = learn_noise
        if learn_noise:
            self.noise_std = PyroParam(torch.tensor(float(noise_std)), constraints.positive)
        else:
            self.register_buffer("noise_std", torch.tensor(float(noise_std)))

    num_outputs = 1

    def forward(self, f: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # f: (..., N, 1) -> loc (..., N), aligned with the data plate at dim -1
        return pyro.sample("obs", dist.Normal(f.squeeze(-1), self.noise_std), obs=y)


class CategoricalLikelihood(PyroModule):
    """Softmax classification :math:`y_n \\sim \\mathrm{Categorical}(\\mathrm{softmax}(f_n))`."""

    def __init__(self, num_classes: int):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes!r}")
        self.num_outputs = num_classes

    def forward(self, f: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # f: (..., N, C) logits
        return pyro.sample("obs", dist.Categorical(logits=f), obs=y)

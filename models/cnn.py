r"""A small convolutional classifier for 28×28-style images, with a point or a Bayesian last layer.

.. math::
    h(x) = \mathrm{ReLU}(W_h\,\mathrm{vec}(\mathrm{pool}(\mathrm{ReLU}(\mathrm{conv}_2(
    \mathrm{pool}(\mathrm{ReLU}(\mathrm{conv}_1(x)))))))), \qquad
    f(x) = W [h(x); 1], \qquad y_n \sim \mathrm{Categorical}(\mathrm{softmax}(f(x_n))).

The feature extractor :class:`ConvFeatures` (two 5×5 convolutions with 2×2 max-pooling and a
dense ReLU layer) is shared with the deep-kernel model :mod:`models.dkl`, so the three MNIST arms
of ``dkl-mnist`` sit on the same trunk: the deterministic net (``bayesian_head=False``, guide
``deterministic``), Bayes by Backprop on the last layer (``bayesian_head=True``: the site ``w`` of
shape (C, H + 1) with the zoo's weight prior, read through :func:`models.base.bayes_linear` so the
``mean-field`` guide's local reparameterisation applies; guide ``mean-field``) and the SVGP head.
The convolutions are point estimates in every arm.

Inputs are flat rows (N, H·W), as every zoo model takes them; they are reshaped to images here.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import torch
from torch import nn

from .base import ZooModel, bayes_linear, record
from .bnn import _kaiming_uniform
from .likelihoods import likelihood_for
from .priors import WeightPrior
from .registry import register_model


class ConvFeatures(nn.Module):
    """``(N, H·W) -> (N, hidden)``: conv(1→c1, 5×5, pad 2), ReLU, 2×2 max-pool, conv(c1→c2), ReLU,
    max-pool, flatten, dense(hidden), ReLU. H and W must be divisible by 4.

    :param image_shape: (H, W).
    :param channels: (c1, c2).
    :param int hidden: width of the dense layer (the feature dimension).
    """

    def __init__(self, image_shape: Sequence[int] = (28, 28), channels: Sequence[int] = (16, 32),
                 hidden: int = 128):
        super().__init__()
        h, w = (int(s) for s in image_shape)
        if h % 4 or w % 4 or h < 4 or w < 4:
            raise ValueError(f"image_shape must have sides divisible by 4 (e.g. (28, 28)), got "
                             f"{tuple(image_shape)}")
        c1, c2 = (int(c) for c in channels)
        if min(c1, c2, int(hidden)) < 1:
            raise ValueError(f"channels and hidden must be >= 1, got {tuple(channels)}, {hidden}")
        self.image_shape = (h, w)
        self.out_features = int(hidden)
        self.net = nn.Sequential(
            nn.Conv2d(1, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(c2 * (h // 4) * (w // 4), self.out_features), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(-1, 1, *self.image_shape))  # (N, hidden)


@register_model("cnn", family="bnn",
                test_config=dict(image_shape=(8, 8), channels=(2, 3), hidden=5, num_classes=3))
class ConvNet(ZooModel):
    """Convolutional classifier (module docstring): :class:`ConvFeatures` then a last layer.

    :param image_shape: (H, W); inputs are (N, H·W) rows.
    :param channels: the two convolutions' channels.
    :param int hidden: the dense layer's width.
    :param int num_classes: C.
    :param bool bayesian_head: the last layer is the latent ``w`` (Bayes by Backprop) rather than
        a point estimate.
    :param dict prior: :class:`~models.priors.WeightPrior` arguments of ``w``.
    :param int num_data: training-set size (see :class:`~models.base.ZooModel`).
    """

    def __init__(self, image_shape: Sequence[int] = (28, 28), channels: Sequence[int] = (16, 32),
                 hidden: int = 128, num_classes: int = 10, bayesian_head: bool = False,
                 prior: dict | None = None, num_data: int | None = None):
        super().__init__(num_data=num_data)
        self.features = ConvFeatures(image_shape, channels, hidden)
        self.in_features = self.features.image_shape[0] * self.features.image_shape[1]
        self.num_classes = int(num_classes)
        self.likelihood = likelihood_for("categorical", ("categorical",),
                                         num_classes=self.num_classes)
        self.bayesian_head = bool(bayesian_head)
        if self.bayesian_head:
            self.prior = WeightPrior(**(prior or {}))
        else:
            self.head = nn.Linear(self.features.out_features, self.num_classes)

    @property
    def latent_sites(self) -> list[str]:
        return ["w"] if self.bayesian_head else []

    def initial_values(self) -> dict[str, torch.Tensor]:
        if not self.bayesian_head:
            return {}
        w = _kaiming_uniform(self.num_classes, self.features.out_features)
        return {"w": w.to(self.prior.sigma.device)}

    def example_data(self, num_data: int, generator: torch.Generator | None = None):
        x = torch.rand(num_data, self.in_features, generator=generator)
        return x, torch.randint(self.num_classes, (num_data,), generator=generator)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 2 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (N, {self.in_features}) (flattened "
                             f"{self.features.image_shape} images), got {tuple(x.shape)}")
        h = self.features(x)  # (N, hidden)
        if self.bayesian_head:
            shape = torch.Size((self.num_classes, self.features.out_features + 1))
            w = pyro.sample("w", self.prior(shape))
            f = bayes_linear(h, w, name="w")  # (..., N, C)
        else:
            f = self.head(h)
        with self.data_plate(x):
            record("f", f, event_dim=1)
            return self.likelihood(f, y)

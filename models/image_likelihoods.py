r"""The per-pixel likelihoods of D-pixel images (the VAE's), listed in
:data:`models.likelihoods.LIKELIHOODS` as ``image-bernoulli``, ``image-continuous-bernoulli`` and
``image-gaussian`` (importable from :mod:`models.likelihoods` too).
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
import torch.nn.functional as F

from .likelihood_base import Likelihood


def _is_binary(x: torch.Tensor) -> bool:
    """All values of ``x`` (known to lie in [0, 1]) are 0 or 1: then and only then
    sum(x^2) = sum(x) (every term of sum(x (1 - x)) is >= 0). Both sums are exact
    integers in float32 below 2^24 elements; larger tensors take the exact element-wise test."""
    flat = x.reshape(-1)
    if flat.numel() >= 1 << 23:
        return bool(((flat == 0) | (flat == 1)).all())
    return bool(torch.dot(flat, flat) == flat.sum())


class ImageLikelihood(Likelihood):
    """Base of the per-pixel likelihoods of D-pixel images: ``mean(f)`` is the decoder mean
    parameter, ``distribution(f)`` has event shape ``(D,)``; :meth:`check_pixels` checks images
    against the support."""

    kind = "image"
    #: the VAE's name of this likelihood (its ``likelihood=`` argument), for messages
    vae_name = ""

    def __init__(self, num_pixels: int):
        super().__init__()
        if int(num_pixels) < 1:
            raise ValueError(f"num_pixels must be >= 1, got {num_pixels!r}")
        self.num_pixels = int(num_pixels)
        self.num_outputs = self.num_pixels

    def mean(self, f: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(f)

    def needs_unit_range(self) -> bool:
        """Whether pixel values must lie in [0, 1] (the mean is a probability or a sigmoid)."""
        return True

    def check_pixels(self, x: torch.Tensor, lo: float, hi: float) -> None:
        """Refuse flattened images ``x`` (finite, with range ``[lo, hi]``) outside the support."""
        if self.needs_unit_range() and (lo < 0 or hi > 1):
            raise ValueError(f"the {self.vae_name} likelihood (mean in [0, 1]) needs pixel values in "
                             f"[0, 1], got [{lo:.3g}, {hi:.3g}]; divide 8-bit images by 255")

    def example_images(self, u: torch.Tensor) -> torch.Tensor:
        """Synthetic images from uniform draws ``u`` in [0, 1) (tests, smoke runs): ``u``."""
        return u


class ImageBernoulliLikelihood(ImageLikelihood):
    """Binary pixels, :math:`x_d \\sim \\mathrm{Bernoulli}(\\sigma(f_d))`."""

    vae_name = "bernoulli"

    def check_pixels(self, x, lo, hi):
        if lo < 0 or hi > 1 or not _is_binary(x.detach()):
            raise ValueError(
                "the Bernoulli likelihood needs binary images (values exactly 0 or 1), got values "
                f"in [{lo:.3g}, {hi:.3g}] that are not all 0/1; binarise them (dynamic "
                "binarisation: experiments.harness.vae.DynamicBinarization) or use "
                "likelihood='continuous-bernoulli' for grey levels")

    def example_images(self, u):
        return (u > 0.5).float()

    def distribution(self, f):
        return dist.Bernoulli(logits=f).to_event(1)


class ImageContinuousBernoulliLikelihood(ImageLikelihood):
    """Grey pixels in [0, 1], :math:`x_d \\sim \\mathcal{CB}(\\sigma(f_d))` (normalised)."""

    vae_name = "continuous-bernoulli"

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

    vae_name = "gaussian"
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

    def needs_unit_range(self) -> bool:
        return self.mean_link == "sigmoid"

    def mean(self, f):
        a, _ = self._split(f)
        return torch.sigmoid(a) if self.mean_link == "sigmoid" else a

    def distribution(self, f):
        _, b = self._split(f)
        return dist.Normal(self.mean(f), F.softplus(b) + self.min_scale).to_event(1)


__all__ = ["ImageBernoulliLikelihood", "ImageContinuousBernoulliLikelihood",
           "ImageGaussianLikelihood", "ImageLikelihood"]

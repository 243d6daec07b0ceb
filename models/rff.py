r"""The weight-space view of a GP: Bayesian linear regression on random Fourier features.

By Bochner's theorem a stationary kernel is the Fourier transform of a spectral density; for
GPyTorch's RBF kernel :math:`s^2 \exp(-|x - x'|^2 / (2\ell^2))` that density is
:math:`\mathcal N(0, \ell^{-2} I)`. Rahimi & Recht (2007) sample it: with R fixed frequencies
:math:`W_r \sim \mathcal N(0, \ell^{-2} I_D)` and phases :math:`b_r \sim \mathcal U(0, 2\pi)`,

.. math::
    \phi(x) = \sqrt{2 s^2 / R}\, \cos(W x + b) \in \mathbb R^R, \qquad
    \mathbb E_{W, b}[\phi(x)^\top \phi(x')] = s^2\,\mathbb E_W[\cos(W_r^\top (x - x'))]
        = s^2 e^{-|x - x'|^2 / (2\ell^2)},

so :math:`\phi(x)^\top\phi(x') \to k(x, x')` as R grows (error :math:`O(R^{-1/2})`). The Pyro model
is the weight-space view of the GP (Rasmussen & Williams 2006, §2.1):

.. math::
    w \sim \mathcal N(0, I_R), \qquad f(x) = \phi(x)^\top w, \qquad
    y_n \mid x_n, w \sim \mathcal N(f(x_n), \sigma^2),

so f is a GP with the approximate kernel :math:`\phi(x)^\top\phi(x')`. ``w`` is one sample site,
so any guide over it (mean-field, low-rank, full covariance) applies; the exact posterior is
Gaussian and available in closed form (:meth:`RFFGP.exact_posterior`), which makes this model an
analytic oracle for the guides. The frequencies and phases are drawn once from ``feature_seed``
and kept as buffers (they are part of the model, not latents); ℓ and s² are fixed
hyperparameters.

References

[1] Rahimi, Recht. *Random Features for Large-Scale Kernel Machines*. NIPS 2007.
[2] Rasmussen, Williams. *Gaussian Processes for Machine Learning*. MIT Press 2006 (§2.1).
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch

from .base import ZooModel, record
from .likelihoods import GaussianLikelihood
from .registry import register_model


@register_model("rff-gp", family="gp", test_config=dict(in_features=2, num_features=8))
class RFFGP(ZooModel):
    """Random-Fourier-feature approximation of a GP with an RBF kernel, in weight space.

    :param int in_features: input dimension D.
    :param int num_features: R, the number of random features (the size of the latent ``w``).
    :param float lengthscale: ℓ of the RBF kernel approximated (GPyTorch's convention,
        exp(-r²/(2ℓ²))).
    :param float outputscale: s², the kernel's variance k(x, x).
    :param int feature_seed: seed of the frequencies W and phases b (fixed per seed).
    :param float noise_std: (initial) observation noise σ.
    :param bool learn_noise: learn σ as a point estimate; ``False`` keeps it fixed.
    :param int num_data: training-set size (see :class:`~models.base.ZooModel`).
    """

    def __init__(self, in_features: int = 1, num_features: int = 100, lengthscale: float = 1.0,
                 outputscale: float = 1.0, feature_seed: int = 0, noise_std: float = 0.1,
                 learn_noise: bool = True, num_data: int | None = None):
        super().__init__(num_data=num_data)
        checks = (("in_features", in_features, in_features >= 1, "an integer >= 1"),
                  ("num_features", num_features, num_features >= 1, "an integer >= 1"),
                  ("lengthscale", lengthscale, lengthscale > 0, "> 0"),
                  ("outputscale", outputscale, outputscale > 0, "> 0"))
        for name, value, ok, expected in checks:
            if not ok:
                raise ValueError(f"rff-gp {name} must be {expected}, got {value!r}")
        self.in_features = int(in_features)
        self.num_features = int(num_features)
        self.lengthscale = float(lengthscale)
        self.outputscale = float(outputscale)
        gen = torch.Generator().manual_seed(int(feature_seed))
        # standard-normal frequencies, scaled by 1/ℓ in features(): W = Ω / ℓ ~ N(0, ℓ^-2 I)
        self.register_buffer("omega", torch.randn(self.num_features, self.in_features,
                                                  generator=gen))
        self.register_buffer("phase", 2 * math.pi * torch.rand(self.num_features, generator=gen))
        self.likelihood = GaussianLikelihood(noise_std=noise_std, learn_noise=learn_noise)

    latent_sites = ["w"]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """φ(x) = sqrt(2 s²/R) cos(W x + b): (N, D) -> (N, R)."""
        proj = x @ self.omega.to(x.dtype).T / self.lengthscale + self.phase.to(x.dtype)
        return math.sqrt(2 * self.outputscale / self.num_features) * torch.cos(proj)

    def kernel(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """The approximate kernel φ(x1) φ(x2)ᵀ, (N, M)."""
        return self.features(x1) @ self.features(x2).T

    def _check(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        if x.dim() != 2 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (N, {self.in_features}), got {tuple(x.shape)}")
        if y is not None and y.shape != x.shape[:1]:
            raise ValueError(f"y must have shape ({x.shape[0]},) to match x, got {tuple(y.shape)}")

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self._check(x, y)
        phi = self.features(x)  # (N, R)
        # (new_zeros/new_ones: device fills; a plain 1.0 would be a host-to-device copy per step)
        prior = dist.Normal(phi.new_zeros(()), phi.new_ones(())).expand([self.num_features]
                                                                      ).to_event(1)
        w = pyro.sample("w", prior)  # (R,), or (P, 1, R) under a particle/sample plate
        if w.dim() >= 3 and w.shape[-2] == 1:
            w = w.squeeze(-2)  # drop the data plate's dim: (P, R)
        f = (w @ phi.T).unsqueeze(-1)  # (..., N, 1)
        with self.data_plate(x):
            record("f", f, event_dim=1)
            return self.likelihood(f, y)

    def initial_values(self) -> dict[str, torch.Tensor]:
        return {"w": torch.zeros(self.num_features, device=self.omega.device)}

    def example_data(self, num_data: int, generator: torch.Generator | None = None):
        x = torch.randn(num_data, self.in_features, generator=generator)
        return x, x.sum(-1).sin() + 0.1 * torch.randn(num_data, generator=generator)

    @torch.no_grad()
    def exact_posterior(self, x: torch.Tensor, y: torch.Tensor,
                        noise_std: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The exact Gaussian posterior of ``w`` (conjugate Bayesian linear regression):

        .. math:: \Sigma = (I + \Phi^\top\Phi / \sigma^2)^{-1}, \qquad
                  \mu = \Sigma\,\Phi^\top y / \sigma^2,

        computed in float64 by a Cholesky factorisation of the precision.

        :param x, y: the data, on any device (moved to the model's).
        :param float noise_std: σ; default the likelihood's current value.
        :returns: ``(mean (R,), covariance (R, R))`` in float64, on the model's device.
        """
        self._check(x, y)
        sigma = float(self.likelihood.noise_std) if noise_std is None else float(noise_std)
        phi = self.features(x.to(self.omega.device, torch.float64))
        precision = torch.eye(self.num_features, dtype=torch.float64, device=phi.device) \
            + phi.T @ phi / sigma**2
        chol = torch.linalg.cholesky(precision)
        cov = torch.cholesky_inverse(chol)
        rhs = phi.T @ y.to(phi.device, torch.float64) / sigma**2
        mean = torch.cholesky_solve(rhs.unsqueeze(-1), chol)[:, 0]
        return mean, cov

    @torch.no_grad()
    def predict_f(self, x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor):
        """Mean and variance of f(x) = φ(x)ᵀw for w ~ N(mean, cov): ``(N,), (N,)`` on the device
        of ``mean`` (x and the model may be anywhere)."""
        phi = self.features(x.to(self.omega.device, mean.dtype)).to(mean.device)
        cov = cov.to(mean.device)
        return phi @ mean, ((phi @ cov) * phi).sum(-1)

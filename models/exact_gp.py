r"""Exact GP regression with GPyTorch (``ExactGP``): the reference the sparse GP is checked against.

.. math::
    \log p(y \mid X) = -\tfrac12 (y - m)^\top (K + \sigma^2 I)^{-1} (y - m)
      - \tfrac12 \log|K + \sigma^2 I| - \tfrac N2 \log 2\pi,

    \mu_* = m_* + K_{*X}(K + \sigma^2 I)^{-1}(y - m),\qquad
    \sigma_*^2 = k_{**} - K_{*X}(K + \sigma^2 I)^{-1}K_{X*}.

Not a Pyro pair (nothing is variational): it is trained by maximising the log marginal likelihood
with a torch optimiser. Every solve is a Cholesky (``gpytorch.settings.max_cholesky_size`` is
raised above N), not GPyTorch's default conjugate gradients for N > 800, so the numbers are exact
up to floating point; meant for N up to a few thousand.
"""

from __future__ import annotations

import gpytorch
import torch
from tqdm.auto import tqdm

from .kernels import build_kernel, build_mean, hyperparameters

_EXACT = dict(max_cholesky_size=10**9)


class ExactGPRegression(gpytorch.models.ExactGP):
    """:param x: (N, D) training inputs. :param y: (N,) targets.
    :param kernel: a GPyTorch kernel or a kernel spec (:func:`models.kernels.build_kernel`).
    :param float noise_std: initial noise standard deviation. :param bool learn_noise: fit it.
    :param str mean: ``"zero"`` or ``"constant"``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, kernel, noise_std: float = 0.1,
                 learn_noise: bool = True, mean: str = "zero"):
        if x.dim() != 2 or y.shape != x.shape[:1]:
            raise ValueError(f"need x (N, D) and y (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
        if not noise_std > 0:
            raise ValueError(f"noise_std must be > 0, got {noise_std!r}")
        likelihood = gpytorch.likelihoods.GaussianLikelihood(
            noise_constraint=gpytorch.constraints.GreaterThan(1e-8))
        super().__init__(x, y, likelihood)
        likelihood.noise = float(noise_std) ** 2
        likelihood.raw_noise.requires_grad_(bool(learn_noise))
        self.covar_module = kernel if isinstance(kernel, gpytorch.kernels.Kernel) else \
            build_kernel(kernel, x.shape[-1])
        self.mean_module = build_mean(mean)
        self.to(x)

    def forward(self, x):
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))

    def log_marginal_likelihood(self) -> torch.Tensor:
        """log p(y | X, θ) summed over the N training points (GPyTorch's MLL object divides by N)."""
        self.train()
        self.likelihood.train()
        x, y = self.train_inputs[0], self.train_targets
        with gpytorch.settings.max_cholesky_size(_EXACT["max_cholesky_size"]):
            mll = gpytorch.mlls.ExactMarginalLogLikelihood(self.likelihood, self)
            return mll(self(x), y) * y.shape[0]

    def fit(self, steps: int = 200, lr: float = 0.05, progress: bool = False) -> list[float]:
        """Maximise the log marginal likelihood with Adam; returns its trajectory."""
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=lr)
        trace = []
        for _ in tqdm(range(steps), desc="exact GP", disable=not progress):
            opt.zero_grad()
            loss = -self.log_marginal_likelihood()
            loss.backward()
            opt.step()
            trace.append(-loss.item())
        return trace

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Posterior ``f_mean``, ``f_var`` (latent) and ``y_var`` (noise added) at ``x``."""
        self.eval()
        self.likelihood.eval()
        with gpytorch.settings.max_cholesky_size(_EXACT["max_cholesky_size"]), \
                gpytorch.settings.fast_pred_var(False), gpytorch.settings.skip_posterior_variances(False):
            post = self(x.to(self.train_targets))
            mean, var = post.mean, post.variance
        return {"f_mean": mean, "f_var": var, "y_var": var + self.likelihood.noise}

    def hyperparameters(self) -> dict:
        out = hyperparameters(self.covar_module)
        out["noise_std"] = float(self.likelihood.noise.detach().sqrt())
        return out

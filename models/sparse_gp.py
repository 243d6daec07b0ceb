r"""The algebra of inducing-point Gaussian processes that :mod:`models.svgp` (and through it
:mod:`models.dkl`) and the q(u) guides of :mod:`guides.svgp` share:

* :func:`stable_cholesky`: :math:`L L^\top = K_{ZZ} + \epsilon I`, with retries at larger jitter;
* :class:`WhitenedPrior`: :math:`p(v) = \mathcal N(0, I_M)` with its :math:`O(M^2)` density and KL;
* :class:`Conditional` and the effect :func:`svgp_conditional`: :math:`f(x_n) \mid u \sim
  \mathcal N(m(x_n) + a_n^\top v,\ k_{nn} - a_n^\top a_n)`, :math:`a_n = L^{-1} k_Z(x_n)`;
* :func:`marginal_moments`: the moments of :math:`q(f_n) = \int p(f_n \mid u)\, q(u)\, du`,
  :math:`\mu_n = m(x_n) + a_n^\top \mu_u`, :math:`s_n^2 = k_{nn} - a_n^\top a_n + a_n^\top S a_n`;
* :func:`minibatch_kmeans`: inducing inputs at the k-means centres of many rows.

The names are importable from :mod:`models.svgp` too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyro.distributions as dist
import torch
from pyro.poutine.runtime import effectful

from .base import is_sync_free


class CholeskyError(RuntimeError):
    """The kernel matrix is not numerically positive definite even with the largest jitter tried."""


def stable_cholesky(K: torch.Tensor, jitter: float, max_tries: int = 4,
                    what: str = "K_ZZ") -> torch.Tensor:
    """Lower Cholesky factor of ``K + jitter·I``, retrying with 10× the jitter up to ``max_tries``
    times (jitter relative to the mean diagonal after the first try).

    Under :func:`models.base.sync_free` (``fit`` on CUDA) there is no retry, which would need
    a host read: a factor that failed is NaN, and ``fit`` stops with a non-finite-loss error.

    :raises CholeskyError: naming the matrix, its size and dtype, and the largest jitter tried.
    """
    eye = torch.eye(K.shape[-1], dtype=K.dtype, device=K.device)
    L, info = torch.linalg.cholesky_ex(K + jitter * eye)
    if is_sync_free():  # no host read: a failed factor becomes NaN, which fit's gate reports
        return torch.where((info > 0)[..., None, None], torch.nan, L)
    if not bool(info.any()):
        return L
    scale = K.diagonal(dim1=-2, dim2=-1).mean().abs().clamp_min(1e-12).item()
    tried = jitter
    for i in range(max_tries):
        tried = max(jitter, 1e-6 * scale) * 10.0 ** (i + 1)
        L, info = torch.linalg.cholesky_ex(K + tried * eye)
        if not bool(info.any()):
            return L
    raise CholeskyError(
        f"Cholesky of {what} ({K.shape[-1]}x{K.shape[-1]}, {K.dtype}) failed even with jitter "
        f"{tried:.1e} added to the diagonal (mean diagonal {scale:.3g}). Use float64 "
        "(model dtype='float64'), fewer or better-spread inducing points, or a larger lengthscale")


class WhitenedPrior(dist.MultivariateNormal):
    r"""The whitened prior :math:`p(v) = \mathcal N(0, I_M)` (batch ``(L,)``, event ``(M,)``), a
    ``MultivariateNormal`` whose identity ``scale_tril`` is exploited: its log-density and its KL
    from a Gaussian :math:`q = \mathcal N(\mu, RR^\top)` cost :math:`O(M^2)` instead of the
    :math:`O(M^3)` triangular solves of the generic MVN formulas,

    .. math:: \mathrm{KL}[q\,\|\,p] = \tfrac12\big(\lVert R\rVert_F^2 + \lVert\mu\rVert^2 - M\big)
              - \textstyle\sum_i \log\lvert R_{ii}\rvert.

    Build it with :meth:`standard`."""

    @classmethod
    def standard(cls, shape: tuple[int, int], dtype: torch.dtype, device) -> WhitenedPrior:
        """``N(0, I)`` of batch ``shape[:-1]`` and event ``shape[-1:]`` (no (L, M, M) copies: the
        identity factor is an expanded view)."""
        m = shape[-1]
        eye = torch.eye(m, dtype=dtype, device=device)
        return cls(torch.zeros(shape, dtype=dtype, device=device),
                   scale_tril=eye.expand(tuple(shape) + (m,)), validate_args=False)

    def log_prob(self, value):
        m = self.event_shape[-1]
        return -0.5 * value.pow(2).sum(-1) - 0.5 * m * math.log(2 * math.pi) + \
            self.loc.new_zeros(self.batch_shape)

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(torch.Size(sample_shape))
        return torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)

    def entropy(self):
        m = self.event_shape[-1]
        return self.loc.new_full(self.batch_shape, 0.5 * m * (1.0 + math.log(2 * math.pi)))


@torch.distributions.kl.register_kl(torch.distributions.MultivariateNormal, WhitenedPrior)
def _kl_mvn_whitened(q, p):
    R = q._unbroadcasted_scale_tril
    m = q.event_shape[-1]
    kl = 0.5 * (R.pow(2).sum((-2, -1)) + q.loc.pow(2).sum(-1) - m) - \
        R.diagonal(dim1=-2, dim2=-1).abs().log().sum(-1)
    return kl.expand(torch.broadcast_shapes(q.batch_shape, p.batch_shape))


def default_jitter(dtype: torch.dtype) -> float:
    """GPyTorch's defaults: 1e-6 in float32, 1e-8 in float64."""
    return 1e-8 if dtype == torch.float64 else 1e-6


@dataclass
class Conditional:
    """What ``f(x) | u`` needs, computed once per model call: ``proj`` is (M, N) with
    ``E[f | u] = mean_x + (u - mean_z) @ proj`` (whitened: ``proj = A = L⁻¹K_ZX``, ``u`` the
    whitened ``v``; unwhitened: ``proj = K_ZZ⁻¹K_ZX``), ``var`` the (N,) conditional variance,
    ``A`` the (M, N) whitened projection used for ``a_nᵀ S a_n``."""

    proj: torch.Tensor
    A: torch.Tensor
    var: torch.Tensor
    mean_x: torch.Tensor
    mean_z: torch.Tensor
    L: torch.Tensor
    whiten: bool


def _drop_data_dim(u: torch.Tensor) -> torch.Tensor:
    """``u`` of event shape (L, M) drawn under a particle plate has batch (P, 1), the 1 being the
    data plate's dim; drop it so that ``u @ proj`` lines up as (P, L, N)."""
    if u.dim() > 3 and u.shape[-3] == 1:
        u = u.squeeze(-3)
    return u


@effectful(type="svgp_conditional")
def svgp_conditional(cond: Conditional, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of ``f(x) | u``, each ``(..., N, L)``. Call with ``name="u"``.

    A Pyro effect: :class:`guides.svgp.MarginalizeInducing` replaces it by the moments of
    ``q(f) = ∫ p(f | u) q(u) du`` when it knows the Gaussian ``q(u)`` that produced ``u``.
    """
    u = _drop_data_dim(u)
    loc = (u - cond.mean_z) @ cond.proj  # (..., L, N)
    loc = loc.transpose(-1, -2) + cond.mean_x.unsqueeze(-1)
    return loc, cond.var.unsqueeze(-1).expand_as(loc)


def marginal_moments(cond: Conditional, q_loc: torch.Tensor, q_scale_tril: torch.Tensor | None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Moments of :math:`q(f_n)` for :math:`q(u) = \mathcal N(\mu_u, RR^\top)` (in the model's
    parameterisation: whitened ``v`` or ``u``); ``q_scale_tril=None`` is a point mass. Returns
    ``(..., N, L)`` mean and variance."""
    loc = (_drop_data_dim(q_loc) - cond.mean_z) @ cond.proj
    loc = loc.transpose(-1, -2) + cond.mean_x.unsqueeze(-1)
    var = cond.var.unsqueeze(-1).expand_as(loc)
    if q_scale_tril is not None:
        # a_nᵀ S a_n = |Rᵀ a_n|², with a = proj in the model's own parameterisation
        if q_scale_tril.dim() == 3:
            # one (N, M) @ (M, L·M) product: a batched (L, M, M) @ (M, N) would first copy proj
            # into an (L, M, N) batch
            L, M = q_scale_tril.shape[0], q_scale_tril.shape[-1]
            AtR = cond.proj.mT @ q_scale_tril.transpose(0, 1).reshape(M, L * M)  # (N, L·M)
            var = var + AtR.view(*AtR.shape[:-1], L, M).pow(2).sum(-1)
        else:
            RtA = q_scale_tril.transpose(-1, -2) @ cond.proj  # (..., L, M, N)
            var = var + RtA.pow(2).sum(-2).transpose(-1, -2)
    return loc, var


def minibatch_kmeans(x, k: int, seed: int = 0, batch_size: int = 2048, passes: int = 3,
                     seed_rows: int = 10_000, progress: bool = True):
    """k centres of the rows of ``x`` (an (N, D) array): k-means++ seeding on a random subsample of
    ``max(seed_rows, 3k)`` rows, then mini-batch k-means over ``passes`` shuffled passes through
    all rows in batches of ``batch_size`` (scikit-learn's ``kmeans_plusplus`` and
    ``MiniBatchKMeans.partial_fit``), with a tqdm bar. Returns a (k, D) array."""
    import numpy as np
    from sklearn.cluster import MiniBatchKMeans, kmeans_plusplus
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    n = len(x)
    sub = x[rng.permutation(n)[: min(n, max(seed_rows, 3 * k))]]
    centres, _ = kmeans_plusplus(sub, n_clusters=k, random_state=seed)
    km = MiniBatchKMeans(n_clusters=k, init=centres, n_init=1, batch_size=batch_size,
                         random_state=seed)
    steps = passes * -(-n // batch_size)
    with tqdm(total=steps, desc="k-means (inducing inputs)", unit="batch", disable=None if
              progress else True, leave=False) as bar:
        for _ in range(passes):
            order = rng.permutation(n)
            for start in range(0, n, batch_size):
                km.partial_fit(x[order[start:start + batch_size]])
                bar.update()
    return km.cluster_centers_


__all__ = ["CholeskyError", "Conditional", "WhitenedPrior", "default_jitter", "marginal_moments",
           "minibatch_kmeans", "stable_cholesky", "svgp_conditional"]

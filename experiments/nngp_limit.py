r"""Neal (1996), the infinite-width limit (survey Fig. 4): a one-hidden-layer net's prior is a GP.

The network and its prior (one input dimension D, H hidden ``erf`` units):

.. math::
    f(x) = b + \sum_{j=1}^H v_j\, h(u_j^\top x + a_j),\qquad h = \mathrm{erf},\\
    u_j \sim \mathcal N(0, \sigma_u^2 I_D),\; a_j \sim \mathcal N(0, \sigma_a^2),\;
    v_j \sim \mathcal N(0, \omega^2 / H),\; b \sim \mathcal N(0, \sigma_b^2).

Because the H terms are i.i.d. with finite variance and the output weights' variance shrinks as
1/H, the central limit theorem makes ``f(x)`` Gaussian as H → ∞, jointly over any finite set of
inputs: a Gaussian process (Neal 1996, ch. 2). Its covariance is *the same for every H*,

.. math::
    \mathrm{Cov}[f(x), f(x')] = \sigma_b^2 + H \frac{\omega^2}{H}\,
        \mathbb E_{u, a}[h(u^\top x + a)\, h(u^\top x' + a)]
      = \sigma_b^2 + \omega^2\, k_{\mathrm{erf}}(x, x'),

and for ``erf`` units Williams (1997) gives the expectation in closed form (the arc-sine kernel):
with the augmented input :math:`\tilde x = (1, x)` and
:math:`\Sigma = \mathrm{diag}(\sigma_a^2, \sigma_u^2 I_D)`,

.. math::
    k_{\mathrm{erf}}(x, x') = \frac{2}{\pi}\arcsin\frac{2\tilde x^\top\Sigma\tilde x'}
        {\sqrt{(1 + 2\tilde x^\top\Sigma\tilde x)(1 + 2\tilde x'^\top\Sigma\tilde x')}}.

What changes with H is the *shape*: the excess kurtosis of ``f(x)`` is
:math:`3\omega^4(m_4 - m_2^2) / (H\,\mathrm{Var}[f(x)]^2)` with :math:`m_k = \mathbb E[h(z)^k]`,
:math:`z \sim \mathcal N(0, \tilde x^\top\Sigma\tilde x)`, so it falls as 1/H.

Measured here:

* histograms of ``f(x0)`` at a fixed input for each H, against the limit's density
  :math:`\mathcal N(0, \sigma_b^2 + \omega^2 k_{\mathrm{erf}}(x_0, x_0))` (closed form, not fitted);
* ``ks_distance_H<H>``: the Kolmogorov–Smirnov statistic of those samples against that Gaussian
  (:func:`scipy.stats.kstest`). It falls with H until it reaches the Monte Carlo floor of S samples
  from the Gaussian itself, ``ks_null_mean`` ≈ 0.8687/√S (Kolmogorov distribution mean);
* ``excess_kurtosis_H<H>`` (empirical) and ``excess_kurtosis_theory_H<H>`` (the formula above,
  m_4 by Gauss–Hermite quadrature);
* ``cov_max_abs_err_H<H>``: max over a grid of inputs of |empirical prior covariance − closed-form
  kernel|, and ``cov_max_abs_z_H<H>`` the same error in units of each entry's Monte Carlo
  standard error. Since the covariance does not depend on H, this is a check of the kernel's factor
  conventions (error ≈ Monte Carlo noise for every H), not a convergence in H.

Prior functions are drawn with a seeded :class:`torch.Generator`, vectorised over samples and
hidden units, in chunks of at most ``chunk_elements`` pre-activations (memory bounded).

Expected: KS distance falls roughly as 1/H (like the excess kurtosis) from ≈0.05 at H = 1 to the
Monte Carlo floor (≈1e-3 with 10⁶ samples) by H ≈ 100; covariance errors within a few Monte Carlo
standard errors for every H. Hardware/time: under a minute on 2 CPU cores (``--smoke``: a
couple of seconds). Numbers in CHANGELOG.md.

Run: ``python -m experiments run nngp-limit [--smoke]``

References

[1] Neal. *Bayesian Learning for Neural Networks*. Springer 1996 (ch. 2, priors for infinite
    networks).
[2] Williams. *Computing with Infinite Networks*. NIPS 1997.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import stats

from experiments.harness.plotting import new_figure, save_figure
from experiments.harness.spec import ConfigError, RunContext

from .registry import register_experiment

log = logging.getLogger(__name__)

#: Mean of the Kolmogorov distribution: E[√n D_n] → sqrt(π/2) ln 2 under the null.
KS_NULL_CONSTANT = math.sqrt(math.pi / 2) * math.log(2)


def _check_prior(sigma_u: float, sigma_a: float, omega: float, sigma_b: float) -> None:
    for name, value in (("sigma_u", sigma_u), ("sigma_a", sigma_a), ("omega", omega)):
        if not value > 0:
            raise ValueError(f"prior {name} must be > 0, got {value!r}")
    if not sigma_b >= 0:
        raise ValueError(f"prior sigma_b must be >= 0, got {sigma_b!r}")


def _augmented_cov(x1: torch.Tensor, x2: torch.Tensor, sigma_u: float, sigma_a: float):
    """:math:`\\tilde x_1^\\top \\Sigma \\tilde x_2` for rows of ``x1`` (N, D) and ``x2`` (M, D)."""
    return sigma_a**2 + sigma_u**2 * x1 @ x2.T


def erf_kernel(x1: torch.Tensor, x2: torch.Tensor, sigma_u: float, sigma_a: float) -> torch.Tensor:
    r"""Williams' (1997) arc-sine kernel :math:`\mathbb E[\mathrm{erf}(u^\top x + a)\,
    \mathrm{erf}(u^\top x' + a)]` for :math:`u \sim \mathcal N(0, \sigma_u^2 I)`,
    :math:`a \sim \mathcal N(0, \sigma_a^2)`.

    :param torch.Tensor x1: (N, D) inputs.
    :param torch.Tensor x2: (M, D) inputs.
    :returns: (N, M) kernel matrix.
    """
    c12 = _augmented_cov(x1, x2, sigma_u, sigma_a)
    c11 = sigma_a**2 + sigma_u**2 * (x1 * x1).sum(-1)  # (N,)
    c22 = sigma_a**2 + sigma_u**2 * (x2 * x2).sum(-1)  # (M,)
    denom = torch.sqrt((1 + 2 * c11).unsqueeze(-1) * (1 + 2 * c22).unsqueeze(-2))
    return (2 / math.pi) * torch.asin((2 * c12 / denom).clamp(-1.0, 1.0))


def nngp_covariance(x1, x2, sigma_u: float, sigma_a: float, omega: float, sigma_b: float):
    """Closed-form prior covariance of the network output: :math:`\\sigma_b^2 + \\omega^2
    k_{\\mathrm{erf}}(x, x')` (the same for every width H, and the limit GP's kernel)."""
    _check_prior(sigma_u, sigma_a, omega, sigma_b)
    return sigma_b**2 + omega**2 * erf_kernel(x1, x2, sigma_u, sigma_a)


def sample_prior_outputs(x: torch.Tensor, width: int, num_samples: int, *, sigma_u: float,
                         sigma_a: float, omega: float, sigma_b: float,
                         generator: torch.Generator, chunk_elements: int = 2**24):
    """Draw ``num_samples`` networks of width H from the prior and evaluate them on ``x``.

    Vectorised over samples and hidden units; at most ``chunk_elements`` pre-activations
    (samples × H × N) are held at once.

    :param torch.Tensor x: (N, D) inputs.
    :param int width: H, the number of hidden units.
    :param torch.Generator generator: the only source of randomness (reproducible draws).
    :returns: (S, N) tensor of prior function values f(x).
    """
    _check_prior(sigma_u, sigma_a, omega, sigma_b)
    if width < 1 or num_samples < 1:
        raise ValueError(f"width and num_samples must be >= 1, got width={width}, "
                         f"num_samples={num_samples}")
    n, d = x.shape
    chunk = max(1, chunk_elements // (width * n))
    v_std = omega / math.sqrt(width)
    out = []
    for start in range(0, num_samples, chunk):
        s = min(chunk, num_samples - start)
        u = sigma_u * torch.randn(s, width, d, generator=generator, dtype=x.dtype)
        a = sigma_a * torch.randn(s, width, 1, generator=generator, dtype=x.dtype)
        v = v_std * torch.randn(s, 1, width, generator=generator, dtype=x.dtype)
        b = sigma_b * torch.randn(s, 1, generator=generator, dtype=x.dtype)
        h = torch.erf(u @ x.T + a)  # (s, H, N)
        f = b + (v @ h).squeeze(-2)  # (s, N)
        assert f.shape == (s, n)
        out.append(f)
    return torch.cat(out)


def theory_excess_kurtosis(x0: float, width: int, sigma_u: float, sigma_a: float, omega: float,
                           sigma_b: float, order: int = 80) -> float:
    """Excess kurtosis of f(x0) at width H: 3ω⁴(m4 − m2²)/(H Var²), m_k by Gauss–Hermite."""
    c = sigma_a**2 + sigma_u**2 * x0**2
    nodes, weights = np.polynomial.hermite_e.hermegauss(order)  # weight exp(-z²/2)
    weights = weights / weights.sum()
    from scipy.special import erf

    h = erf(math.sqrt(c) * nodes)
    m2, m4 = float((weights * h**2).sum()), float((weights * h**4).sum())
    var = sigma_b**2 + omega**2 * m2
    return 3 * omega**4 * (m4 - m2**2) / (width * var**2)


def _moment_sums(f: torch.Tensor):
    f = f.double()
    return f.sum(0), f.T @ f, (f.unsqueeze(-1) * f.unsqueeze(-2)).pow(2).sum(0)


def empirical_covariance(x, width, num_samples, prior: dict, generator, chunk_elements=2**24,
                         sample_chunk: int = 4096):
    """Unbiased empirical covariance of f over ``x`` and the Monte Carlo standard error of each
    entry (treating the mean as zero, which it is, for the error), accumulated in float64 over
    chunks of ``sample_chunk`` prior draws."""
    n = x.shape[0]
    s1 = torch.zeros(n, dtype=torch.float64)
    s2 = torch.zeros(n, n, dtype=torch.float64)
    s4 = torch.zeros(n, n, dtype=torch.float64)
    done = 0
    while done < num_samples:
        s = min(sample_chunk, num_samples - done)
        f = sample_prior_outputs(x, width, s, generator=generator, chunk_elements=chunk_elements,
                                 **prior)
        a, b, c = _moment_sums(f)
        s1, s2, s4 = s1 + a, s2 + b, s4 + c
        done += s
    mean = s1 / num_samples
    cov = (s2 - num_samples * torch.outer(mean, mean)) / (num_samples - 1)
    second = s2 / num_samples
    se = ((s4 / num_samples - second**2).clamp_min(0) / num_samples).sqrt()
    return cov, se


@dataclass
class Prior:
    """u ~ N(0, sigma_u²), a ~ N(0, sigma_a²), v ~ N(0, omega²/H), b ~ N(0, sigma_b²)."""

    sigma_u: float = 1.0
    sigma_a: float = 1.0
    omega: float = 1.0
    sigma_b: float = 0.1


@dataclass
class KSCheck:
    """Prior draws of f(x0) per width for the KS distance, the kurtosis and the histograms."""

    num_samples: int = 1_000_000


@dataclass
class CovCheck:
    """Prior draws per width for the empirical covariance on ``num_grid`` inputs in ``grid``."""

    num_samples: int = 40_000
    grid: tuple[float, float] = (-3.0, 3.0)
    num_grid: int = 25


@dataclass
class Config:
    prior: Prior = field(default_factory=Prior)
    widths: list[int] = field(default_factory=lambda: [1, 3, 10, 100, 1000])
    x0: float = 1.0
    ks: KSCheck = field(default_factory=KSCheck)
    cov: CovCheck = field(default_factory=CovCheck)
    chunk_elements: int = 2**24
    hist_bins: int = 100

    def validate(self):
        for name in ("sigma_u", "sigma_a", "omega"):
            value = getattr(self.prior, name)
            if not value > 0:
                raise ConfigError(f"prior.{name}={value!r}: must be > 0")
        if not self.prior.sigma_b >= 0:
            raise ConfigError(f"prior.sigma_b={self.prior.sigma_b!r}: must be >= 0")
        if not self.widths or any(h < 1 for h in self.widths):
            raise ConfigError(f"widths={self.widths!r}: must be a non-empty list of integers "
                              ">= 1")
        for key, value, low in (("ks.num_samples", self.ks.num_samples, 1),
                                ("cov.num_samples", self.cov.num_samples, 2),
                                ("cov.num_grid", self.cov.num_grid, 1),
                                ("chunk_elements", self.chunk_elements, 1),
                                ("hist_bins", self.hist_bins, 1)):
            if value < low:
                raise ConfigError(f"{key}={value!r}: must be an integer >= {low}")


def get_config(smoke: bool = False) -> Config:
    cfg = Config()
    if smoke:
        cfg.widths = [1, 10, 100]
        cfg.ks.num_samples = 20_000
        cfg.cov.num_samples, cfg.cov.num_grid = 2_000, 9
    return cfg


@register_experiment(
    "nngp-limit", paper="Neal 1996 (Bayesian Learning for NNs); Williams 1997 (erf kernel)",
    figure="survey Fig. 4", data=("synthetic",), get_config=get_config,
    not_distributed="it trains nothing with fit (prior draws and closed-form kernels only)",
    paper_numbers={"ks_distance": "falls with H (qualitative: the output becomes Gaussian)",
                   "cov_max_abs_err": "0 up to Monte Carlo error (closed-form kernel)"})
def run(config: Config, ctx: RunContext) -> dict:
    prior = dataclasses.asdict(config.prior)
    widths = list(config.widths)
    chunk = config.chunk_elements
    x0 = torch.tensor([[float(config.x0)]])
    var0 = float(nngp_covariance(x0, x0, **prior))
    sd0 = math.sqrt(var0)
    n_ks = config.ks.num_samples
    ccfg = config.cov
    grid = torch.linspace(*ccfg.grid, ccfg.num_grid).unsqueeze(-1)  # (G, 1)
    k_exact = nngp_covariance(grid.double(), grid.double(), **prior)  # (G, G)

    metrics: dict = {"limit_variance_x0": var0, "num_samples_ks": n_ks,
                     "num_samples_cov": ccfg.num_samples,
                     "ks_null_mean": KS_NULL_CONSTANT / math.sqrt(n_ks)}
    hists = {}
    cov_last = None
    for i, h in enumerate(widths):
        gen = torch.Generator().manual_seed(ctx.seed * 1000 + i)
        f0 = sample_prior_outputs(x0, h, n_ks, generator=gen, chunk_elements=chunk, **prior)[:, 0]
        f0 = f0.double().numpy()
        ks = stats.kstest(f0, stats.norm(0.0, sd0).cdf)  # a callable CDF: newer scipy refuses args=
        metrics[f"ks_distance_H{h}"] = float(ks.statistic)
        metrics[f"ks_pvalue_H{h}"] = float(ks.pvalue)
        metrics[f"variance_x0_H{h}"] = float(f0.var())
        metrics[f"excess_kurtosis_H{h}"] = float(stats.kurtosis(f0))
        metrics[f"excess_kurtosis_theory_H{h}"] = theory_excess_kurtosis(
            float(config.x0), h, **prior)
        hists[h] = f0
        cov, se = empirical_covariance(grid, h, ccfg.num_samples, prior, gen,
                                       chunk_elements=chunk)
        err = (cov - k_exact).abs()
        metrics[f"cov_max_abs_err_H{h}"] = float(err.max())
        metrics[f"cov_max_abs_z_H{h}"] = float((err / se.clamp_min(1e-12)).max())
        cov_last = cov
        log.info("H=%d: KS %.4g, excess kurtosis %.3g, cov max abs err %.3g", h, ks.statistic,
                 metrics[f"excess_kurtosis_H{h}"], metrics[f"cov_max_abs_err_H{h}"])
    h_max = widths[-1]
    metrics["cov_max_abs_err"] = metrics[f"cov_max_abs_err_H{h_max}"]
    metrics["cov_max_rel_err"] = float(((cov_last - k_exact).abs() / k_exact.abs().max()).max())
    ks_values = [metrics[f"ks_distance_H{h}"] for h in widths]
    metrics["ks_falls_with_width"] = bool(ks_values[-1] < ks_values[0])

    metrics["figure"] = [str(p) for p in _figure(ctx, widths, hists, sd0, metrics, grid,
                                                  cov_last, k_exact, config)]
    return metrics


def _figure(ctx: RunContext, widths, hists, sd0, metrics, grid, cov, k_exact, config):
    ncols = max(len(widths), 5)
    fig, axes = new_figure(ncols=ncols, nrows=2, width=3.0, height=2.6, squeeze=False)
    z = np.linspace(-4 * sd0, 4 * sd0, 400)
    density = stats.norm.pdf(z, 0.0, sd0)
    for ax, h in zip(axes[0], widths):
        ax.hist(hists[h], bins=config.hist_bins, range=(z[0], z[-1]), density=True,
                color="C0", alpha=0.6)
        ax.plot(z, density, "k-", lw=1.2, label="limit GP")
        ax.set_title(f"H = {h}: KS {metrics[f'ks_distance_H{h}']:.3g}")
        ax.set_xlabel(f"f(x0 = {config.x0:g})")
    axes[0][0].legend(fontsize=7)
    for ax in axes[0][len(widths):]:
        ax.set_visible(False)
    ax = axes[1][0]
    ks = [metrics[f"ks_distance_H{h}"] for h in widths]
    kurt = [metrics[f"excess_kurtosis_theory_H{h}"] for h in widths]
    ax.loglog(widths, ks, "o-", label="KS distance")
    ax.loglog(widths, kurt, "s--", ms=3, label="excess kurtosis (theory)")
    ax.axhline(metrics["ks_null_mean"], color="0.5", ls=":", label="MC floor (KS)")
    ax.set_xlabel("hidden units H")
    ax.set_title("distance to the limit Gaussian")
    ax.legend(fontsize=7)
    ax = axes[1][1]
    ax.semilogx(widths, [metrics[f"cov_max_abs_err_H{h}"] for h in widths], "o-")
    ax.set_xlabel("hidden units H")
    ax.set_title("max |cov_emp − k| over the grid")
    ax.set_ylim(bottom=0)
    lo, hi = float(grid[0, 0]), float(grid[-1, 0])
    vmin, vmax = float(k_exact.min()), float(k_exact.max())
    for ax, mat, title in ((axes[1][2], cov, f"empirical cov, H = {widths[-1]}"),
                           (axes[1][3], k_exact, "closed form σ_b² + ω² k_erf")):
        im = ax.imshow(mat.numpy(), extent=(lo, hi, hi, lo), vmin=vmin, vmax=vmax, cmap="viridis")
        ax.set_title(title)
        ax.set_xlabel("x'")
        ax.set_ylabel("x")
    fig.colorbar(im, ax=axes[1][3], shrink=0.8)
    ax = axes[1][4]
    diff = (cov - k_exact).numpy()
    m = float(np.abs(diff).max())
    im = ax.imshow(diff, extent=(lo, hi, hi, lo), vmin=-m, vmax=m, cmap="RdBu_r")
    ax.set_title("difference")
    fig.colorbar(im, ax=ax, shrink=0.8)
    for ax in axes[1][5:]:
        ax.set_visible(False)
    return save_figure(fig, ctx.path("nngp_limit"))


if __name__ == "__main__":
    from .__main__ import main

    raise SystemExit(main(["run", "nngp-limit"]))

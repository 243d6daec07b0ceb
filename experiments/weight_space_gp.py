r"""The weight-space view of a GP (survey §4): random Fourier features vs the exact RBF GP.

The survey's weight-space view writes a GP as :math:`f(x) = \sum_j w_j \phi_j(x)` with a Gaussian
prior on w and :math:`k(x, x') = \sum_j \phi_j(x)\phi_j(x')`. With R random Fourier features
(Rahimi & Recht 2007; model ``rff-gp``, :mod:`models.rff`) the sum is a Monte Carlo estimate of
the RBF kernel :math:`s^2 \exp(-|x-x'|^2/(2\ell^2))`, and variational inference over the R
coefficients is trained by the zoo's ``fit`` loop like any other pair.

Three posteriors of the latent f on a grid are compared, for R ∈ ``num_features`` (the
variational ones for R ∈ ``vi_features``):

* the **exact GP** with GPyTorch's ``ScaleKernel(RBFKernel())`` (ℓ, s² and the noise σ fixed to
  the values the features approximate): :math:`m = K_{*n}(K + \sigma^2 I)^{-1} y`,
  :math:`v = k_{**} - K_{*n}(K + \sigma^2 I)^{-1} K_{n*}`, by a float64 Cholesky solve;
* the **closed-form posterior of the Bayesian linear model** on the features
  (:meth:`models.rff.RFFGP.exact_posterior`): its distance to the exact GP is the *RFF
  approximation error*, which shrinks like :math:`O(R^{-1/2})` (averaged over
  ``num_feature_seeds`` feature draws);
* the **variational posteriors** trained by ``fit`` (arm ``mvn``, guide ``auto-mvn``: full
  covariance, which contains the exact posterior; arm ``mean_field``, guide ``mean-field``:
  diagonal, which cannot represent the correlations between coefficients): their distance to the
  closed form is the *variational error*.

Predictive means and variances of the VI guides are computed from the guide's Gaussian
:math:`q(w) = \mathcal N(\mu_q, \Sigma_q)` in closed form, :math:`\phi^\top\mu_q` and
:math:`\phi^\top\Sigma_q\phi`, so no Monte Carlo noise enters the errors; the figure's bands are
drawn from the shared :func:`~experiments.engine.predictive.posterior_predictive`.

Metrics (RMS and max abs over the grid; ``<R>`` each feature count):
``blr_mean_rms_R<R>``, ``blr_var_rms_R<R>`` (+ ``_maxabs``): closed form vs exact GP, mean over
feature seeds; ``<guide>_mean_rms_R<R>``, ``<guide>_var_rms_R<R>`` (+ ``_maxabs``): VI vs exact
GP; ``<guide>_vs_blr_mean_rms_R<R>``, ``<guide>_vs_blr_var_rms_R<R>``: VI vs the closed form
of the same features.

Expected (seed 0, CHANGELOG.md): closed-form errors fall roughly as R^-1/2 (variance RMS 0.38, 0.12,
0.058, 0.020 and mean RMS 1.0, 0.48, 0.27, 0.14 for R = 10, 50, 200, 1000). The variational fits
do *not* reach the closed form within the default 1500 full-batch steps: their mean is close
(RMS 0.04-0.13 from the closed form) but their predictive variance stays too small away from the
data (RMS 0.07-0.35 from the closed form, growing with R), for mean-field by construction
(the factorised optimum's variances are 1/Λ_ii) and for auto-mvn by slow, noisy convergence of the
covariance under the Monte Carlo ELBO (``mvn.guide_cfg.init_scale=1``, i.e. starting at the prior,
helps little).
Hardware/time: about 5 minutes on 2 shared CPU cores (``--smoke``: seconds).

Run: ``python -m experiments run weight-space-gp [--smoke] [--set mvn.fit.epochs=3000]``

References

[1] Rahimi, Recht. *Random Features for Large-Scale Kernel Machines*. NIPS 2007.
[2] Rasmussen, Williams. *Gaussian Processes for Machine Learning*. MIT Press 2006 (§2.1, §2.2).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import gpytorch
import numpy as np
import torch
from pyro.infer.autoguide import AutoContinuous, AutoNormal

import models
from experiments.engine.predictive import posterior_predictive
from experiments.engine.settings import FitConfig
from experiments.harness.plotting import log_ticks, plot_predictive_band, save_figure
from experiments.harness.spec import ConfigError, PairSpec, RunContext, train_pair
from guides.mean_field import MeanFieldGuide

from .registry import register_experiment

log = logging.getLogger(__name__)


@dataclass
class GapData:
    """``num_train`` inputs uniform on ``x_range`` minus ``gap``; the posteriors on ``grid``."""

    num_train: int = 100
    x_range: tuple[float, float] = (-3.0, 3.0)
    gap: tuple[float, float] = (-0.8, 0.8)
    grid: tuple[float, float] = (-5.0, 5.0)
    num_grid: int = 201


@dataclass
class RBF:
    """The RBF kernel s² exp(-|x-x'|²/(2ℓ²)) the features approximate, and the fixed noise σ."""

    lengthscale: float = 0.7
    outputscale: float = 1.0
    noise_std: float = 0.2


def _vi_arm(guide: str) -> PairSpec:
    # the model's arguments (features, kernel, fixed noise) are the experiment's: see ``run``
    return PairSpec("rff-gp", guide, guide_cfg={"init_scale": 0.1},
                    fit=FitConfig(epochs=1500, batch_size=100, lr=0.05, num_particles=4,
                                  lr_schedule="cosine", checkpoint=False, tensorboard=False))


#: model arguments ``run`` supplies to every rff-gp (the closed form needs the noise fixed)
MODEL_ARGS = ("in_features", "num_features", "feature_seed", "lengthscale", "outputscale",
              "noise_std", "learn_noise")


@dataclass
class Config:
    data: GapData = field(default_factory=GapData)
    kernel: RBF = field(default_factory=RBF)
    num_features: list[int] = field(default_factory=lambda: [10, 50, 200, 1000])  # closed form
    # variational fits (the full-covariance guide is O(R²)); a subset of num_features
    vi_features: list[int] = field(default_factory=lambda: [10, 50, 200])
    num_feature_seeds: int = 10
    # the variational arms; the first one's predictive bands are drawn for R in band_features
    mvn: PairSpec = field(default_factory=lambda: _vi_arm("auto-mvn"))
    mean_field: PairSpec = field(default_factory=lambda: _vi_arm("mean-field"))
    band_features: list[int] = field(default_factory=lambda: [10, 50, 200])
    num_samples: int = 500  # predictive draws for the bands

    def arms(self) -> tuple[PairSpec, ...]:
        return (self.mvn, self.mean_field)

    def validate(self):
        for key, arm in (("mvn", self.mvn), ("mean_field", self.mean_field)):
            arm.validate(key, provided=MODEL_ARGS)
        if self.mvn.guide == self.mean_field.guide:
            raise ConfigError(f"mean_field.guide={self.mean_field.guide!r}: the two arms need "
                              f"different guides (metrics are named by guide), mvn.guide is "
                              f"{self.mvn.guide!r}")
        if not self.num_features or any(r < 1 for r in self.num_features):
            raise ConfigError(f"num_features={self.num_features}: must be a non-empty list of "
                              "integers >= 1")
        for key in ("vi_features", "band_features"):
            extra = sorted(set(getattr(self, key)) - set(self.num_features))
            if extra:
                raise ConfigError(f"{key}={getattr(self, key)}: {extra} not in num_features "
                                  f"{self.num_features}; use a subset of num_features")
        if not set(self.band_features) <= set(self.vi_features):
            raise ConfigError(f"band_features={self.band_features}: use a subset of vi_features "
                              f"{self.vi_features} (bands come from the variational fits)")
        if self.num_feature_seeds < 1:
            raise ConfigError(f"num_feature_seeds={self.num_feature_seeds}: must be >= 1")
        if self.num_samples < 1:
            raise ConfigError(f"num_samples={self.num_samples}: must be >= 1")


def get_config(smoke: bool = False) -> Config:
    cfg = Config()
    if smoke:
        cfg.data.num_train, cfg.data.num_grid = 30, 41
        cfg.num_features = [10, 50]
        cfg.vi_features = [10, 50]
        cfg.num_feature_seeds = 2
        for arm in cfg.arms():
            arm.fit.epochs = 20
        cfg.band_features = [10, 50]
        cfg.num_samples = 20
    return cfg


def make_data(num_train: int, x_range, gap, noise_std: float, seed: int):
    """1-D regression data: ``y = sin(1.5x) + 0.3 cos(4x) + ε``, x uniform on the range with a
    gap (where the predictive variance should grow)."""
    gen = torch.Generator().manual_seed(seed)
    lo, hi = x_range
    g_lo, g_hi = gap
    width = (g_lo - lo) + (hi - g_hi)
    t = torch.rand(num_train, generator=gen) * width
    x = torch.where(t < g_lo - lo, lo + t, g_hi + t - (g_lo - lo))
    x, _ = x.sort()
    f = torch.sin(1.5 * x) + 0.3 * torch.cos(4 * x)
    y = f + noise_std * torch.randn(num_train, generator=gen)
    return x.unsqueeze(-1), y


def rbf_kernel(lengthscale: float, outputscale: float):
    """GPyTorch's ``ScaleKernel(RBFKernel())`` with fixed hyperparameters:
    s² exp(-|x - x'|²/(2ℓ²))."""
    kernel = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel()).double()
    kernel.base_kernel.lengthscale = lengthscale
    kernel.outputscale = outputscale
    return kernel


@torch.no_grad()
def exact_gp_predict(kernel, x, y, x_star, noise_std: float):
    """Posterior mean and variance of the latent f at ``x_star`` (float64 Cholesky solve)."""
    x, y, x_star = x.double(), y.double(), x_star.double()
    k_nn = kernel(x, x).to_dense() + noise_std**2 * torch.eye(len(x), dtype=torch.float64)
    k_sn = kernel(x_star, x).to_dense()
    k_ss = kernel(x_star, diag=True)
    chol = torch.linalg.cholesky(k_nn)
    alpha = torch.cholesky_solve(y.unsqueeze(-1), chol)[:, 0]
    v = torch.linalg.solve_triangular(chol, k_sn.T, upper=False)
    return k_sn @ alpha, k_ss - (v * v).sum(0)


def gaussian_q(guide) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of ``w`` under a Gaussian guide (mean-field, AutoNormal, or any
    AutoContinuous such as AutoMultivariateNormal / AutoLowRankMultivariateNormal)."""
    with torch.no_grad():
        if isinstance(guide, MeanFieldGuide):
            return guide.w_loc.double(), torch.diag(guide.w_scale.double() ** 2)
        if isinstance(guide, AutoNormal):
            loc, scale = guide._get_loc_and_scale("w")
            return loc.double(), torch.diag(scale.double() ** 2)
        if isinstance(guide, AutoContinuous):
            post = guide.get_posterior()
            return post.loc.double(), post.covariance_matrix.double()
    raise TypeError(f"no closed-form Gaussian for guide {type(guide).__name__}")


def _errors(mean, var, ref_mean, ref_var, prefix: str) -> dict[str, float]:
    dm, dv = (mean - ref_mean).abs(), (var - ref_var).abs()
    return {f"{prefix}_mean_rms": float(dm.pow(2).mean().sqrt()),
            f"{prefix}_mean_maxabs": float(dm.max()),
            f"{prefix}_var_rms": float(dv.pow(2).mean().sqrt()),
            f"{prefix}_var_maxabs": float(dv.max())}


@register_experiment(
    "weight-space-gp", paper="Rahimi & Recht 2007 (random features); survey §4 (weight-space view)",
    figure="survey §4 (weight-space view of a GP)", data=("synthetic",), get_config=get_config,
    paper_numbers={"blr_var_rms": "O(R^-1/2) approximation error (Rahimi & Recht 2007)"})
def run(config: Config, ctx: RunContext) -> dict:
    dcfg, kcfg = config.data, config.kernel
    ell, s2, sigma = kcfg.lengthscale, kcfg.outputscale, kcfg.noise_std
    feature_counts = list(config.num_features)
    vi_counts = list(config.vi_features)
    x, y = make_data(dcfg.num_train, dcfg.x_range, dcfg.gap, sigma, ctx.seed)
    grid = torch.linspace(*dcfg.grid, dcfg.num_grid).unsqueeze(-1)
    gp_mean, gp_var = exact_gp_predict(rbf_kernel(ell, s2), x, y, grid, sigma)
    model_args = dict(in_features=1, lengthscale=ell, outputscale=s2, noise_std=sigma,
                      learn_noise=False)

    metrics: dict = {"exact_gp_var_mean": float(gp_var.mean())}
    bands: dict = {}
    for r in feature_counts:
        # RFF approximation error: the closed-form posterior over several feature draws
        errs = []
        for k in range(config.num_feature_seeds):
            m = models.create_model("rff-gp", num_features=r, feature_seed=ctx.seed * 1000 + k,
                                    **model_args)
            mean_w, cov_w = m.exact_posterior(x, y)
            errs.append(_errors(*m.predict_f(grid, mean_w, cov_w), gp_mean, gp_var, "blr"))
        for key in errs[0]:
            metrics[f"{key}_R{r}"] = float(np.mean([e[key] for e in errs]))
        # variational fits on the first feature draw, by the shared SVI loop
        for i, arm in enumerate(config.arms() if r in vi_counts else ()):
            gname = arm.guide
            blr: dict = {}

            def closed_form(model, guide, blr=blr):  # on these features, before fit
                blr["mean"], blr["var"] = model.predict_f(grid, *model.exact_posterior(x, y))

            model, guide, state = train_pair(
                arm, (x, y), ctx, f"{gname}_R{r}", prepare=closed_form,
                model_args={**model_args, "num_features": r, "feature_seed": ctx.seed * 1000})
            model.cpu()
            guide.cpu()
            q_mean, q_var = model.predict_f(grid, *gaussian_q(guide))
            metrics.update({f"{k}_R{r}": v for k, v in
                            _errors(q_mean, q_var, gp_mean, gp_var, gname).items()})
            metrics.update({f"{k}_R{r}": v for k, v in _errors(
                q_mean, q_var, blr["mean"], blr["var"], f"{gname}_vs_blr").items()})
            metrics[f"{gname}_final_elbo_R{r}"] = state.history[-1]["elbo"]
            log.info("R=%d %s: var RMS vs GP %.3g (closed form %.3g), vs closed form %.3g", r,
                     gname, metrics[f"{gname}_var_rms_R{r}"], metrics[f"blr_var_rms_R{r}"],
                     metrics[f"{gname}_vs_blr_var_rms_R{r}"])
            if r in config.band_features and i == 0:
                pred = posterior_predictive(model, guide, grid, num_samples=config.num_samples,
                                            return_sites=("f",), seed=ctx.seed)
                bands[r] = pred["f"][..., 0]
    metrics["figure"] = [str(p) for p in _figure(ctx, config, x, y, grid, gp_mean, gp_var,
                                                  bands, metrics, feature_counts, vi_counts)]
    return metrics


def _figure(ctx: RunContext, config: Config, x, y, grid, gp_mean, gp_var, bands, metrics,
            feature_counts, vi_counts):
    """Two rows: the first arm's predictive bands against the exact GP, one panel per R; below,
    the RMS errors of the predictive mean and variance against R (log-log). One legend per row,
    outside the data."""
    import matplotlib.pyplot as plt

    gnames = [arm.guide for arm in config.arms()]
    ncols = max(len(bands), 2)
    fig = plt.figure(figsize=(3.6 * ncols + 2.4, 6.4), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=(1.0, 1.05))
    band_axes = top.subplots(1, max(len(bands), 1), sharey=True, squeeze=False)[0]
    g = grid[:, 0]
    sd = gp_var.clamp_min(0).sqrt()
    for ax, (r, samples) in zip(band_axes, sorted(bands.items())):
        plot_predictive_band(ax, g, samples, quantiles=(0.025, 0.5, 0.975),
                             label=f"{gnames[0]}: median", x_train=x[:, 0], y_train=y)
        ax.plot(g, gp_mean, "k-", lw=1.0, label="exact GP: mean")
        ax.plot(g, gp_mean + 1.96 * sd, "k--", lw=0.8, label="exact GP: mean ± 1.96 sd")
        ax.plot(g, gp_mean - 1.96 * sd, "k--", lw=0.8)
        ax.set_title(f"R = {r} random features")
        ax.set_ylim(-3.5, 3.5)
        ax.set_xlabel("x")
    band_axes[0].set_ylabel("latent f")
    handles, labels = band_axes[0].get_legend_handles_labels()
    labels = [t.replace("median band (0.025-0.975)", "95 % band") for t in labels]
    top.legend(handles, labels, loc="outside right center", fontsize=8)

    err_axes = bottom.subplots(1, 2, squeeze=False)[0]
    rs = np.array(feature_counts, dtype=float)
    for ax, what in zip(err_axes, ("mean", "var")):
        ax.loglog(rs, [metrics[f"blr_{what}_rms_R{r}"] for r in feature_counts], "ko-",
                  label="closed form vs GP (RFF error)")
        for i, gname in enumerate(gnames):
            ax.loglog(vi_counts, [metrics[f"{gname}_{what}_rms_R{r}"] for r in vi_counts], "o-",
                      color=f"C{i}", label=f"{gname} vs GP")
            ax.loglog(vi_counts, [metrics[f"{gname}_vs_blr_{what}_rms_R{r}"] for r in vi_counts],
                      "s:", color=f"C{i}", label=f"{gname} vs closed form (VI error)")
        ref = metrics[f"blr_{what}_rms_R{feature_counts[0]}"]
        ax.loglog(rs, ref * (rs / rs[0]) ** -0.5, color="0.6", lw=0.8, label="∝ R$^{-1/2}$")
        ax.set_xlabel("random features R")
        ax.set_ylabel("RMS error over the grid")
        ax.set_title(f"predictive {'mean' if what == 'mean' else 'variance'}")
        ax.grid(alpha=0.3, which="major")
        log_ticks(ax, "x")
        log_ticks(ax, "y")
    bottom.legend(*err_axes[0].get_legend_handles_labels(), loc="outside right center",
                  fontsize=8)
    return save_figure(fig, ctx.path("weight_space_gp"))


if __name__ == "__main__":
    from .__main__ import main

    raise SystemExit(main(["run", "weight-space-gp"]))

r"""Deep kernel learning on a 1-D toy with a gap: structure against parameter uncertainty off the data.

Data: :math:`y = \sin(3x) + \tfrac12 x + \varepsilon`, :math:`\varepsilon \sim \mathcal N(0, 0.1^2)`,
training inputs uniform on :math:`[-1, 1]` *without* the gap :math:`(-0.4, 0.4)`; test points
uniform on the training region ("in") and on the gap ("gap"); the band is drawn on
:math:`[-1.6, 1.6]`. Four arms, each a (model, guide) pair of the zoo trained by the same loop:

* ``svgp``: the sparse GP on x (RBF-ARD kernel, ``cholesky`` q(u)): *structure* uncertainty; its
  band reverts to the prior between and beyond the data;
* ``dkl``: an MLP trunk (point estimate) to 2 features, then the same SVGP (``dkl-cholesky``,
  Wilson et al. 2016): the kernel is learned, and the features may place the gap close to the
  data, where the GP is then confident;
* ``dkl_bayes``: the trunk's weights latent with Bayes by Backprop (``dkl-mean-field``, local
  reparameterisation): each weight draw gives its own features, so parameter uncertainty in the
  trunk comes on top of the GP's;
* ``bbb``: the Bayesian MLP (``bnn`` + ``mean-field``, Blundell et al. 2015): *parameter*
  uncertainty only.

Survey §§2-4: the two kinds of epistemic uncertainty need not agree off the data; the figure shows
where each widens. Metrics per arm: test RMSE and mean log predictive density in the training
region and in the gap (``rmse_in_<arm>``, ``ll_in_<arm>``, ``rmse_gap_<arm>``, ``ll_gap_<arm>``),
and ``std_ratio_<arm>``: the mean predictive standard deviation of y (noise included) on gap grid
points over that on training-region grid points (1 = no widening in the gap);
``std_ratio_out_<arm>`` the same beyond the data (grid points farther than half-way from
``extent`` to ``grid_extent``). Predictions by
:func:`experiments.engine.predict.predict` (closed form for the SVGP, ``num_samples`` Monte Carlo
draws for the others).

Measured (seed 0, CHANGELOG.md): gap sd ratio SVGP 2.50, DKL 1.01 (and the worst gap LL, −1.16: the
learned features put the gap next to the data), Bayesian-trunk DKL 1.17 (best gap LL, 0.53),
BNN 1.03. Hardware/time: about 2 min on a shared 2-core CPU (``--smoke``: a few seconds).

Run: ``python -m experiments run dkl-regression [--smoke] [--set dkl.fit.epochs=1000]``
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import torch

from experiments.engine import metrics as M
from experiments.engine.predict import predict
from experiments.engine.settings import FitConfig
from experiments.harness.plotting import new_figure, save_figure
from experiments.harness.spec import ConfigError, PairSpec, RunContext, train_pair

from .registry import register_experiment

log = logging.getLogger(__name__)


@dataclass
class GapData:
    """``num_train`` training points on ``[-extent, extent]`` minus ``(-gap, gap)``; ``num_test``
    test points on each of the training region and the gap; the band on ``num_grid`` points of
    ``[-grid_extent, grid_extent]``."""

    num_train: int = 200
    num_test: int = 200
    extent: float = 1.0
    gap: float = 0.4
    noise_std: float = 0.1
    grid_extent: float = 1.6
    num_grid: int = 321


def truth(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(3 * x) + 0.5 * x


def gap_data(n: int, extent: float, gap: float, noise_std: float, seed: int, where: str = "in"
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points uniform on ``[-extent, -gap] ∪ [gap, extent]`` (``where="in"``) or on
    ``(-gap, gap)`` (``"gap"``), with Gaussian noise; ``x`` is (n, 1), ``y`` (n,)."""
    g = torch.Generator().manual_seed(seed)
    if where == "gap":
        x = (2 * torch.rand(n, generator=g) - 1) * gap
    else:
        side = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
        x = side * (gap + torch.rand(n, generator=g) * (extent - gap))
    y = truth(x) + noise_std * torch.randn(n, generator=g)
    return x.unsqueeze(-1), y


def _fit(epochs: int, lr: float) -> FitConfig:
    return FitConfig(epochs=epochs, batch_size=50, lr=lr, elbo="meanfield", lr_schedule="cosine")


@dataclass
class Config:
    data: GapData = field(default_factory=GapData)
    svgp: PairSpec = field(default_factory=lambda: PairSpec(
        "svgp", "cholesky", model_cfg={"num_inducing": 20, "noise_std": 0.1},
        fit=_fit(600, 0.02)))
    dkl: PairSpec = field(default_factory=lambda: PairSpec(
        "dkl", "dkl-cholesky",
        model_cfg={"trunk": "mlp", "widths": [50, 50], "feature_dim": 2, "num_inducing": 20,
                   "noise_std": 0.1},
        fit=_fit(600, 0.01)))
    dkl_bayes: PairSpec = field(default_factory=lambda: PairSpec(
        "dkl", "dkl-mean-field",
        model_cfg={"trunk": "bayes-mlp", "widths": [50], "feature_dim": 2, "num_inducing": 20,
                   "noise_std": 0.1, "prior": {"kind": "gaussian", "sigma": 1.0}},
        guide_cfg={"init_scale": 1e-2, "local_reparam": True},
        fit=_fit(600, 0.01)))
    bbb: PairSpec = field(default_factory=lambda: PairSpec(
        "bnn", "mean-field",
        model_cfg={"widths": [50, 50], "prior": {"kind": "gaussian", "sigma": 1.0},
                   "noise_std": 0.1},
        guide_cfg={"init_scale": 1e-2, "local_reparam": True},
        fit=_fit(600, 0.01)))
    num_samples: int = 300  # Monte Carlo draws of the predictive (not the SVGP's: closed form)

    def validate(self):
        self.svgp.validate("svgp", provided=("input_dim",))
        for key in ("dkl", "dkl_bayes"):
            getattr(self, key).validate(key, provided=("in_features",))
        self.bbb.validate("bbb", provided=("in_features",))
        d = self.data
        if not 0 < d.gap < d.extent < d.grid_extent:
            raise ConfigError(f"data: need 0 < gap < extent < grid_extent, got {d.gap}, "
                              f"{d.extent}, {d.grid_extent}")
        for key in ("num_train", "num_test", "num_grid"):
            if getattr(d, key) < 2:
                raise ConfigError(f"data.{key}={getattr(d, key)}: must be >= 2")
        if self.num_samples < 2:
            raise ConfigError(f"num_samples={self.num_samples}: must be >= 2")


ARMS = {"svgp": "sparse GP (RBF)", "dkl": "DKL, MLP trunk", "dkl_bayes": "DKL, Bayesian trunk",
        "bbb": "BNN (Bayes by Backprop)"}


def get_config(smoke: bool = False) -> Config:
    cfg = Config()
    if smoke:
        cfg.data.num_train, cfg.data.num_test, cfg.data.num_grid = 40, 20, 41
        for key in ARMS:
            spec = getattr(cfg, key)
            spec.fit.epochs = 3
            if "widths" in spec.model_cfg:
                spec.model_cfg["widths"] = [8]
            if "num_inducing" in spec.model_cfg:
                spec.model_cfg["num_inducing"] = 5
        cfg.num_samples = 20
    return cfg


def _model_args(key: str) -> dict:
    return {"input_dim": 1} if key == "svgp" else {"in_features": 1}


@register_experiment(
    "dkl-regression", paper="Wilson et al. 2016 (SV-DKL) vs SVGP vs Blundell et al. 2015",
    figure="1-D gap: predictive bands", data=("synthetic",), get_config=get_config,
    paper_numbers={"std_ratio_svgp": "band widens in the gap (qualitative)"})
def run(config: Config, ctx: RunContext) -> dict:
    d = config.data
    x, y = gap_data(d.num_train, d.extent, d.gap, d.noise_std, ctx.seed)
    x_in, y_in = gap_data(d.num_test, d.extent, d.gap, d.noise_std, ctx.seed + 10_000)
    x_gap, y_gap = gap_data(d.num_test, d.extent, d.gap, d.noise_std, ctx.seed + 20_000, "gap")
    grid = torch.linspace(-d.grid_extent, d.grid_extent, d.num_grid).unsqueeze(-1)
    g = grid[:, 0]
    on = (g.abs() >= d.gap) & (g.abs() <= d.extent)
    in_gap = g.abs() < d.gap
    beyond = g.abs() > d.extent + 0.5 * (d.grid_extent - d.extent)

    def prepare(model, guide):
        if model.has_inducing:
            model.initialize_inducing(x, method="kmeans", seed=ctx.seed)

    metrics: dict = {}
    fig, axes = new_figure(ncols=len(ARMS), width=3.6, height=3.0, sharey=True)
    for ax, (key, label) in zip(axes, ARMS.items()):
        log.info("fitting %s", label)
        model, guide, state = train_pair(getattr(config, key), (x, y), ctx, key,
                                         model_args=_model_args(key), prepare=prepare)
        kw = dict(num_samples=config.num_samples, seed=ctx.seed)
        for part, (xt, yt) in (("in", (x_in, y_in)), ("gap", (x_gap, y_gap))):
            test = predict(model, guide, xt, y=yt, **kw)
            metrics[f"rmse_{part}_{key}"] = M.rmse(test.mean, yt)
            metrics[f"ll_{part}_{key}"] = test.log_likelihood
        band = predict(model, guide, grid, **kw)
        sd = band.sd
        metrics[f"std_ratio_{key}"] = float(sd[in_gap].mean() / sd[on].mean())
        metrics[f"std_ratio_out_{key}"] = float(sd[beyond].mean() / sd[on].mean())
        metrics[f"final_elbo_{key}"] = state.history[-1]["elbo"]
        mean = band.mean.numpy()
        ax.axvspan(-d.gap, d.gap, color="0.93", zorder=0, label="gap (no data)")
        ax.fill_between(g.numpy(), mean - 2 * sd.numpy(), mean + 2 * sd.numpy(), alpha=0.3,
                        lw=0, label="mean ± 2 sd (y)")
        ax.plot(g.numpy(), mean, lw=1.5, label="predictive mean")
        ax.plot(g.numpy(), truth(g).numpy(), "k--", lw=1.0, label="truth")
        ax.scatter(x[:, 0].numpy(), y.numpy(), s=4, c="k", label="training data", zorder=3)
        ax.set_title(f"{label}\ngap/data sd ratio {metrics[f'std_ratio_{key}']:.2f}, "
                     f"gap LL {metrics[f'll_gap_{key}']:.2f}", fontsize=8)
        ax.set_xlabel("x")
        ax.set_ylim(-3.0, 3.0)
    axes[0].set_ylabel("y")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False,
               fontsize=8)
    metrics["figure"] = [str(p) for p in save_figure(fig, ctx.path("dkl_regression_bands"))]
    if not all(math.isfinite(v) for k, v in metrics.items() if isinstance(v, float)):
        log.warning("a metric is not finite: %s", metrics)
    return metrics


if __name__ == "__main__":
    from .__main__ import main

    raise SystemExit(main(["run", "dkl-regression"]))

"""SVGP regression on the large UCI sets (elevators, kin40k, protein, pol, bike): minibatch SVI.

Two parts:

* ``elevators-gpytorch``: GPyTorch's SVGP example protocol (REFERENCES.md): first 80 % of the rows
  train, last 20 % test, X min-max scaled to [−1, 1], ScaleKernel(RBF) (one lengthscale),
  constant mean, Gaussian likelihood, batch 1024, 500 inducing points, Adam lr 0.01. GPyTorch
  reports test MAE 0.1115 after 4 epochs (0.0751 with natural gradients). Two arms: ``svgp``
  (Adam on everything) and ``svgp_ngd`` (natural-gradient steps of size 0.1 on q(u), Adam lr 0.01
  on the rest: ``cholesky`` with ``natural_gradient=True``, as GPyTorch's NGD example); the
  ``arms`` list picks them (metrics ``elevators_gpytorch_*`` and ``elevators_gpytorch_ngd_*``).
  MAE is in the units of
  the data file's target (our loader standardises y on the training rows; predictions are mapped
  back). Differences to GPyTorch's run: X is scaled with the *training* rows' min/max, the row
  order is that of the staged file, and the inducing inputs start at k-means centroids rather
  than the first 500 training inputs.
* the 10-fold protocol on every set: fold ``k`` of the fixed split (90 / 10), x and y standardised
  on the training rows, RBF-ARD with an output scale, M ∈ ``num_inducing``; RMSE, MAE and mean
  test log predictive density in original units, and wall time (training + prediction).

In the 10-fold runs q(u) starts at Titsias' optimum for the initial hyperparameters
(``svgp_init.q_u=optimal``); the GPyTorch-protocol run starts at the prior, as GPyTorch does.
All fits use the ``svgp`` model with the ``cholesky`` guide (whitened, closed-form Gaussian data
term and KL: ``elbo="meanfield"``) and the shared ``fit`` loop.

Expected time: about 15 minutes on 2 CPU cores for the default (one fold, M = 100 and 500);
``--smoke`` takes seconds; a GPU runs the M = 500 fits several times faster.

Run: ``python -m experiments run svgp-uci [--smoke] [--set folds=[0,1,2]]
[--set datasets=["elevators"]] [--set svgp.fit.epochs=50] [--set svgp_init.q_u=prior]
[--set 'optimizers=["adam","ngd"]'] [--set svgp_ngd.guide_cfg.ngd_lr=0.05]``
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Literal

from experiments import data as zoo_data
from experiments.engine import metrics as M
from experiments.engine.settings import FitConfig
from experiments.harness.plotting import new_figure, save_figure
from experiments.harness.spec import ConfigError, PairSpec, RunContext, train_pair

from .registry import register_experiment

log = logging.getLogger(__name__)


@dataclass
class SVGPInit:
    """Where an SVGP starts: inducing inputs (``kmeans``, ``random`` training rows) and q(u)
    (``optimal``: Titsias' optimum for the initial hyperparameters, O(N M²) chunked; ``prior``)."""

    inducing: Literal["kmeans", "random"] = "kmeans"
    q_u: Literal["optimal", "prior"] = "optimal"


def _svgp(kernel: dict, epochs: int, ngd: bool = False, **model_cfg) -> PairSpec:
    """The SVGP arm: Adam lr 0.01 on everything, or (``ngd``) natural-gradient steps of size 0.1
    on q(u) (:class:`guides.svgp.NaturalCholeskyGuide`) and Adam lr 0.01 on the rest."""
    return PairSpec("svgp", "cholesky",
                    model_cfg={"kernel": kernel, "mean": "constant", "noise_std": 0.3, **model_cfg},
                    guide_cfg={"natural_gradient": True, "ngd_lr": 0.1} if ngd else {},
                    fit=FitConfig(epochs=epochs, batch_size=1024, lr=0.01, elbo="meanfield"))


Optimizer = Literal["adam", "ngd"]


@dataclass
class GPyTorchProtocol:
    """Elevators under GPyTorch's SVGP example protocol (80/20 split, one lengthscale, M = 500,
    q(u) from the prior as GPyTorch does), one fit per arm of ``arms`` (``adam``: the ``svgp``
    spec, ``ngd``: ``svgp_ngd``); ``run=false`` skips it."""

    run: bool = True
    arms: list[Optimizer] = field(default_factory=lambda: ["adam", "ngd"])
    svgp: PairSpec = field(default_factory=lambda: _svgp(
        {"type": "rbf", "lengthscale": 1.0, "outputscale": 1.0}, 4, num_inducing=500))
    svgp_ngd: PairSpec = field(default_factory=lambda: _svgp(
        {"type": "rbf", "lengthscale": 1.0, "outputscale": 1.0}, 4, ngd=True, num_inducing=500))
    svgp_init: SVGPInit = field(default_factory=lambda: SVGPInit(q_u="prior"))


#: the 10-fold protocol: fold indices of the fixed split
NUM_FOLDS = 10


@dataclass
class Config:
    datasets: list[str] = field(
        default_factory=lambda: ["elevators", "kin40k", "protein", "pol", "bike"])
    folds: list[int] = field(default_factory=lambda: [0])
    num_inducing: list[int] = field(default_factory=lambda: [100, 500])  # M, one fit each
    # the 10-fold fits (num_inducing comes from the list above)
    svgp: PairSpec = field(default_factory=lambda: _svgp(
        {"type": "rbf", "ard": True, "lengthscale": 1.0, "outputscale": 1.0}, 20))
    svgp_ngd: PairSpec = field(default_factory=lambda: _svgp(
        {"type": "rbf", "ard": True, "lengthscale": 1.0, "outputscale": 1.0}, 20, ngd=True))
    optimizers: list[Optimizer] = field(default_factory=lambda: ["adam"])  # arms per (set, M)
    svgp_init: SVGPInit = field(default_factory=SVGPInit)
    elevators_gpytorch: GPyTorchProtocol = field(default_factory=GPyTorchProtocol)
    max_train: int | None = None  # use only the first max_train training rows (smoke runs)

    def validate(self):
        self.svgp.validate("svgp", provided=("input_dim", "num_inducing"))
        self.svgp_ngd.validate("svgp_ngd", provided=("input_dim", "num_inducing"))
        self.elevators_gpytorch.svgp.validate("elevators_gpytorch.svgp", provided=("input_dim",))
        self.elevators_gpytorch.svgp_ngd.validate("elevators_gpytorch.svgp_ngd",
                                                  provided=("input_dim",))
        for where, spec in (("svgp_ngd", self.svgp_ngd),
                            ("elevators_gpytorch.svgp_ngd", self.elevators_gpytorch.svgp_ngd)):
            if not spec.guide_cfg.get("natural_gradient"):
                raise ConfigError(f"{where}.guide_cfg.natural_gradient must be true (it is the "
                                  "natural-gradient arm; list 'adam' to run without)")
        if not self.optimizers:
            raise ConfigError("optimizers=[]: list at least one of 'adam', 'ngd'")
        unknown = [d for d in self.datasets if d not in zoo_data.UCI_LARGE_DATASETS]
        if unknown:
            raise ConfigError(f"datasets={self.datasets}: unknown {unknown}; choose from "
                              f"{list(zoo_data.UCI_LARGE_DATASETS)}")
        if any(not 0 <= k < NUM_FOLDS for k in self.folds):
            raise ConfigError(f"folds={self.folds}: fold indices are 0..{NUM_FOLDS - 1}")
        if not self.num_inducing or any(m < 1 for m in self.num_inducing):
            raise ConfigError(f"num_inducing={self.num_inducing}: must be a non-empty list of "
                              "integers >= 1")
        if self.max_train is not None and self.max_train < 1:
            raise ConfigError(f"max_train={self.max_train}: must be null or an integer >= 1")


def get_config(smoke: bool = False) -> Config:
    cfg = Config()
    if smoke:
        cfg.datasets = ["elevators"]
        cfg.num_inducing = [8]
        cfg.svgp.fit.epochs = 1
        cfg.svgp_ngd.fit.epochs = 1
        cfg.optimizers = ["adam", "ngd"]
        cfg.max_train = 600
        for spec in (cfg.elevators_gpytorch.svgp, cfg.elevators_gpytorch.svgp_ngd):
            spec.model_cfg["num_inducing"] = 8
            spec.fit.epochs = 1
    return cfg


def test_scores(model, guide, data: zoo_data.RegressionData, device=None) -> dict:
    """RMSE, MAE, mean test log predictive density and 95 % interval coverage of the SVGP's
    closed-form predictive on ``data``'s test rows, in the data file's units (also what
    ``reproduce --pretrained`` recomputes for an exported arm)."""
    pred = model.predict(data.x_test.to(device or next(model.parameters()).device), guide)
    mean = data.unstandardize_y(pred["y_mean"])
    sd = pred["y_var"].sqrt() * (data.y_std if data.standardized else 1.0)
    y_test = data.unstandardize_y(data.y_test)
    return {"rmse": M.rmse(mean, y_test), "mae": M.mae(mean, y_test),
            "test_ll": M.gaussian_log_likelihood(mean, sd, y_test),
            "coverage95": M.gaussian_interval_coverage(mean, sd, y_test)}


def _fit_and_test(spec: PairSpec, init: SVGPInit, data: zoo_data.RegressionData,
                  ctx: RunContext, name: str, max_train: int | None,
                  num_inducing: int | None = None) -> dict:
    """Train ``spec`` on ``data``'s training rows (the first ``max_train``) and score its test
    rows in the data file's units; seconds = model set-up, training and prediction."""
    x, y = data.x_train, data.y_train
    if max_train is not None:
        x, y = x[:max_train], y[:max_train]

    def prepare(model, guide):
        model.initialize_inducing(x, method=init.inducing, seed=ctx.seed)
        if init.q_u == "optimal":  # Titsias' q(u) for the initial hyperparameters
            guide.initialize("titsias", (x, y))

    model_args = {"input_dim": x.shape[1]}
    if num_inducing is not None:
        model_args["num_inducing"] = num_inducing
    t0 = time.perf_counter()
    model, guide, state = train_pair(spec, (x, y), ctx, name, prepare=prepare,
                                     model_args=model_args)
    scores = test_scores(model, guide, data, ctx.torch_device)
    seconds = time.perf_counter() - t0
    return {**scores, "seconds": seconds, "epochs": state.epoch,
            "final_elbo": state.history[-1]["elbo"],
            "num_train": int(x.shape[0]), "noise_std": model.likelihood.noise_std.item()}


@register_experiment(
    "svgp-uci", paper="Hensman et al. 2013; GPyTorch SVGP example", figure="table",
    data=("uci-large",), get_config=get_config,
    paper_numbers={"elevators_gpytorch_mae": "GPyTorch SVGP example: 0.1115 (Adam)",
                   "elevators_gpytorch_ngd_mae": "GPyTorch SVGP example with NGD: 0.0751"})
def run(config: Config, ctx: RunContext) -> dict:
    metrics: dict = {}
    rows = []
    ecfg = config.elevators_gpytorch
    if ecfg.run:
        data = zoo_data.load_uci_large("elevators", protocol="80/20", data_dir=ctx.data_dir)
        for arm in ecfg.arms:
            spec, prefix = (ecfg.svgp_ngd, "elevators_gpytorch_ngd") if arm == "ngd" else \
                (ecfg.svgp, "elevators_gpytorch")
            res = _fit_and_test(spec, ecfg.svgp_init, data, ctx, prefix.replace("_", "-"),
                                config.max_train)
            metrics.update({f"{prefix}_{k}": v for k, v in res.items()})
            log.info("elevators (GPyTorch protocol, %s): MAE %.4f", arm, res["mae"])
    arms = [(opt, config.svgp_ngd if opt == "ngd" else config.svgp) for opt in config.optimizers]
    for name in config.datasets:
        for fold in config.folds:
            data = zoo_data.load_uci_large(name, fold=fold, data_dir=ctx.data_dir)
            for m in config.num_inducing:
                for opt, spec in arms:
                    arm = f"{name}-fold{fold}-M{m}" + ("-ngd" if opt == "ngd" else "")
                    res = _fit_and_test(spec, config.svgp_init, data, ctx, arm, config.max_train,
                                        num_inducing=m)
                    rows.append({"dataset": name, "fold": fold, "num_inducing": m,
                                 "optimizer": opt, **res})
                    log.info("%s fold %d M=%d %s: RMSE %.4f LL %.3f (%.0f s)", name, fold, m,
                             opt, res["rmse"], res["test_ll"], res["seconds"])
    metrics["table"] = rows
    # mean over folds per (dataset, M, optimizer), flattened for the report
    for name in config.datasets:
        for m in config.num_inducing:
            for opt in config.optimizers:
                sel = [r for r in rows if r["dataset"] == name and r["num_inducing"] == m
                       and r["optimizer"] == opt]
                tag = f"{name}_M{m}" + ("_ngd" if opt == "ngd" else "")
                for key in ("rmse", "mae", "test_ll", "seconds"):
                    metrics[f"{tag}_{key}"] = sum(r[key] for r in sel) / len(sel)

    fig, axes = new_figure(ncols=2, width=4.5, height=3.2)
    names = config.datasets
    bars = [(m, opt) for m in config.num_inducing for opt in config.optimizers]
    width = 0.8 / len(bars)
    for j, (m, opt) in enumerate(bars):
        pos = [i + j * width for i in range(len(names))]
        tag = "_ngd" if opt == "ngd" else ""
        label = f"M={m}" + (" NGD" if opt == "ngd" else "")
        axes[0].bar(pos, [metrics[f"{n}_M{m}{tag}_test_ll"] for n in names], width, label=label)
        axes[1].bar(pos, [metrics[f"{n}_M{m}{tag}_seconds"] for n in names], width, label=label)
    for ax, title in zip(axes, ("test log-likelihood (nats / point)", "wall time (s)")):
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, rotation=30)
        ax.set_title(title)
        ax.legend(fontsize=7)
    metrics["figure"] = [str(p) for p in save_figure(fig, ctx.path("svgp_uci"))]
    return metrics


if __name__ == "__main__":
    from .__main__ import main

    raise SystemExit(main(["run", "svgp-uci"]))

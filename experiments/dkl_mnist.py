r"""SV-DKL on MNIST (Wilson et al. 2016): a conv feature extractor under a softmax SVGP, against the
deterministic net and Bayes by Backprop on the same trunk; calibration and OOD detection.

Arms (``arms`` selects which run; each is a (model, guide) pair trained by the shared loop on
the 60k training images, pixels standardised with the training mean and standard deviation):

* ``dkl``: ``dkl`` with ``trunk="conv"`` (:class:`models.cnn.ConvFeatures`: two 5×5
  convolutions of 16 and 32 channels with max-pooling, a dense layer of 128, then a linear map
  to ``feature_dim`` = 16) under the SVGP (RBF-ARD, M = 64 inducing points in feature space,
  10 latent GPs sharing the kernel, softmax likelihood), guide ``dkl-cholesky``;
* ``net``: ``cnn``, the same trunk with a linear softmax head (guide ``deterministic``);
* ``bbb``: ``cnn`` with a Bayesian last layer (``bayesian_head=True``, ``mean-field`` with local
  reparameterisation, N(0, 1) prior): Bayes by Backprop on the same trunk, whose convolutions
  and dense layer stay point estimates (a fully Bayesian conv net is not in the zoo);
* ``dkl_bayes``: ``dkl`` with the *Bayesian* ``bayes-mlp`` trunk on the raw pixels (784-400-400
  to 16 features, every weight latent, ``dkl-mean-field`` with local reparameterisation) under
  the same SVGP head: the zoo's Bayesian feature extractor under a GP;
* ``bbb_mlp``: the zoo's BbB net (``bnn``, 784-400-400-10, ``mean-field``), the Bayesian-trunk
  DKL's counterpart on the same MLP trunk.

Metrics per arm on the 10k test images (predictive :math:`\bar p = \frac1S\sum_s p_s`,
``num_samples`` = S draws; one for the deterministic net): ``acc_<arm>``, ``nll_<arm>`` and
``ece_<arm>`` (15 bins, :mod:`experiments.engine.metrics`), ``auroc_rot90_<arm>`` and
``auroc_noise_<arm>``: the area under the ROC curve separating MNIST test images from
out-of-distribution images by the predictive entropy :math:`\mathbb H[\bar p]` (higher = OOD).
FashionMNIST is not staged (``shared/data``), so the OOD sets are the test images rotated by 90°
(``rot90``) and the test images with Gaussian pixel noise of standard deviation 0.5 added (in
[0, 1] pixel units, clipped; ``noise``). Figure: reliability diagrams (accuracy against
confidence per bin, bin counts as bar widths) and the entropy histograms in and out of
distribution.

Budget and target (SV-DKL reports 99.2 % with a LeNet trunk; Pyro's ``sv-dkl.py`` about 98.4 %):
accuracy ≥ 99.0 % for ``dkl`` with ECE below the deterministic net's. The default is the CPU
configuration of the comparison (5 epochs for every arm, batch 128, Adam 2e-3 with cosine decay,
M = 64; 627 s on a shared 2-core CPU): DKL 98.79 % there. The accuracy target took
``--set 'arms=["dkl"]' --set dkl.fit.epochs=10 --set dkl.model_cfg.num_inducing=256``
(99.14 %, 461 s); the ECE target was not met (CHANGELOG.md). The GPU configuration adds epochs:
``--device cuda --set dkl.fit.epochs=20 --set dkl.model_cfg.num_inducing=256 --set
net.fit.epochs=20 --set bbb.fit.epochs=20 --set dkl_bayes.fit.epochs=50 --set
bbb_mlp.fit.epochs=50`` (not run: no GPU in this session). Measured numbers, commands and
machine load are in CHANGELOG.md.

Run: ``python -m experiments run dkl-mnist [--smoke] [--set 'arms=["dkl","net"]']``
"""

from __future__ import annotations

import logging
import time
import typing
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from experiments import data as zoo_data
from experiments.engine import metrics as M
from experiments.engine.predict import predict
from experiments.engine.settings import FitConfig
from experiments.harness.plotting import new_figure, save_figure
from experiments.harness.spec import ConfigError, PairSpec, RunContext, train_pair

from .registry import register_experiment

log = logging.getLogger(__name__)

Arm = Literal["dkl", "net", "bbb", "dkl_bayes", "bbb_mlp"]
ARMS: tuple[str, ...] = typing.get_args(Arm)
LABELS = {"dkl": "DKL (conv trunk)", "net": "conv net", "bbb": "conv net, BbB last layer",
          "dkl_bayes": "DKL (Bayesian MLP trunk)", "bbb_mlp": "BbB MLP"}
#: model arguments the experiment supplies per model
MODEL_ARGS = {"dkl": {"in_features": 784, "likelihood": "softmax", "num_classes": 10},
              "cnn": {"image_shape": [28, 28], "num_classes": 10},
              "bnn": {"in_features": 784, "out_features": 10, "task": "classification"}}
CONV = {"channels": [16, 32]}
#: an output scale (variance) of 10 and q(u) started at 0.1 x the prior's factor: with Adam's
#: bounded per-parameter steps, the default scale 1 left the latent functions too small after a
#: few epochs (1 epoch: ECE 0.12-0.15, underconfident) and a wide start of q(u) too noisy
KERNEL = {"type": "rbf", "ard": True, "lengthscale": 3.0, "outputscale": 10.0}
EPOCHS = 5


def _fit(epochs: int, elbo: str = "meanfield") -> FitConfig:
    return FitConfig(epochs=epochs, batch_size=128, lr=2e-3, elbo=elbo, lr_schedule="cosine",
                     tensorboard=False)


@dataclass
class Data:
    """``num_train`` / ``num_test`` images (a fixed random subset when below 60k / 10k)."""

    num_train: int = 60000
    num_test: int = 10000
    noise_std: float = 0.5


@dataclass
class Config:
    data: Data = field(default_factory=Data)
    arms: list[Arm] = field(default_factory=lambda: list(ARMS))
    dkl: PairSpec = field(default_factory=lambda: PairSpec(
        "dkl", "dkl-cholesky",
        model_cfg={"trunk": "conv", **CONV, "conv_hidden": 128, "feature_dim": 16, "num_inducing": 64,
                   "kernel": dict(KERNEL)},
        guide_cfg={"init_scale": 0.1}, fit=_fit(EPOCHS)))
    net: PairSpec = field(default_factory=lambda: PairSpec(
        "cnn", "deterministic", model_cfg={**CONV, "hidden": 128}, fit=_fit(EPOCHS, "trace")))
    bbb: PairSpec = field(default_factory=lambda: PairSpec(
        "cnn", "mean-field",
        model_cfg={**CONV, "hidden": 128, "bayesian_head": True,
                   "prior": {"kind": "gaussian", "sigma": 1.0}},
        guide_cfg={"init_scale": 1e-3, "local_reparam": True}, fit=_fit(EPOCHS)))
    dkl_bayes: PairSpec = field(default_factory=lambda: PairSpec(
        "dkl", "dkl-mean-field",
        model_cfg={"trunk": "bayes-mlp", "widths": [400, 400], "feature_dim": 16,
                   "num_inducing": 64, "prior": {"kind": "gaussian", "sigma": 1.0},
                   "kernel": dict(KERNEL)},
        guide_cfg={"init_scale": 1e-3, "local_reparam": True, "u_init_scale": 0.1},
        fit=_fit(EPOCHS)))
    bbb_mlp: PairSpec = field(default_factory=lambda: PairSpec(
        "bnn", "mean-field",
        model_cfg={"widths": [400, 400], "prior": {"kind": "gaussian", "sigma": 1.0}},
        guide_cfg={"init_scale": 1e-3, "local_reparam": True}, fit=_fit(EPOCHS)))
    num_samples: int = 32  # predictive draws (latent arms)
    n_bins: int = 15
    inducing_rows: int = 5000  # rows whose trunk features seed the inducing inputs (k-means)

    def validate(self):
        for arm in ARMS:
            spec = getattr(self, arm)
            spec.validate(arm, provided=tuple(MODEL_ARGS.get(spec.model, {})))
        if not self.arms:
            raise ConfigError("arms: choose at least one of " + ", ".join(ARMS))
        d = self.data
        if not 2 <= d.num_train <= 60000 or not 2 <= d.num_test <= 10000:
            raise ConfigError(f"data: num_train in [2, 60000] and num_test in [2, 10000], got "
                              f"{d.num_train}, {d.num_test}")
        for key, value in (("num_samples", self.num_samples), ("n_bins", self.n_bins),
                           ("inducing_rows", self.inducing_rows)):
            if value < 1:
                raise ConfigError(f"{key}={value}: must be >= 1")


def get_config(smoke: bool = False) -> Config:
    cfg = Config()
    if smoke:
        cfg.data.num_train, cfg.data.num_test = 512, 200
        for arm in ARMS:
            spec = getattr(cfg, arm)
            spec.fit.epochs = 1
            m = spec.model_cfg
            if "channels" in m:
                m["channels"] = [2, 4]
                m["conv_hidden" if spec.model == "dkl" else "hidden"] = 16
            if "widths" in m:
                m["widths"] = [16]
            if "num_inducing" in m:
                m["num_inducing"] = 8
        cfg.num_samples, cfg.inducing_rows = 4, 256
    return cfg


def _subset(x, y, n: int, seed: int):
    if n >= len(x):
        return x, y
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx], y[idx]


def load(cfg: Data, seed: int, data_dir) -> dict[str, torch.Tensor]:
    """Flattened, standardised train/test images and the two OOD sets (module docstring)."""
    x_tr, y_tr = zoo_data.load_mnist("train", data_dir=data_dir)
    x_te, y_te = zoo_data.load_mnist("test", data_dir=data_dir)
    x_tr, y_tr = _subset(x_tr, y_tr, cfg.num_train, seed)
    x_te, y_te = _subset(x_te, y_te, cfg.num_test, seed + 1)
    g = torch.Generator().manual_seed(seed + 2)
    rot = torch.rot90(x_te, 1, dims=(1, 2))
    noisy = (x_te + cfg.noise_std * torch.randn(x_te.shape, generator=g)).clamp(0, 1)
    mean, std = float(x_tr.mean()), float(x_tr.std())

    def flat(t):
        return ((t - mean) / std).reshape(len(t), -1)

    return {"x": flat(x_tr), "y": y_tr, "x_test": flat(x_te), "y_test": y_te,
            "rot90": flat(rot), "noise": flat(noisy)}


def auroc(score_in: torch.Tensor, score_out: torch.Tensor) -> float:
    """Area under the ROC curve of ``score`` separating out (positive) from in (negative): the
    probability that an OOD point scores higher than an in-distribution one (ties count half)."""
    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.zeros(len(score_in)), np.ones(len(score_out))]
    return float(roc_auc_score(labels, torch.cat([score_in, score_out]).double().numpy()))


def reliability(probs: torch.Tensor, y: torch.Tensor, n_bins: int):
    """Per equal-width confidence bin (the bins of :func:`~experiments.engine.metrics.
    expected_calibration_error`): mean confidence, accuracy and count (empty bins: NaN, 0)."""
    idx, conf, correct = M.confidence_bins(probs, y, n_bins)
    correct = correct.double()
    count = torch.bincount(idx, minlength=n_bins).double()
    s_conf = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx, conf.double())
    s_acc = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx, correct)
    nan = torch.full_like(count, float("nan"))
    return (torch.where(count > 0, s_conf / count.clamp_min(1), nan),
            torch.where(count > 0, s_acc / count.clamp_min(1), nan), count)


def _probs(model, guide, x, num_samples: int, seed: int) -> torch.Tensor:
    # the deterministic net's draws are all the same: one is enough
    s = 1 if not list(model.latent_sites) and not model.has_inducing else num_samples
    return predict(model, guide, x, num_samples=s, seed=seed, sample_chunk=s,
                   data_chunk=1000).probs


def evaluate(model, guide, data: dict, cfg: Config, seed: int) -> tuple[dict, dict]:
    probs = _probs(model, guide, data["x_test"], cfg.num_samples, seed)
    y = data["y_test"]
    out = {"acc": M.accuracy(probs, y), "nll": M.nll(probs, y),
           "ece": M.expected_calibration_error(probs, y, n_bins=cfg.n_bins)}
    ent_in = M.predictive_entropy(probs.unsqueeze(0))
    ents = {"MNIST test": ent_in}
    for key in ("rot90", "noise"):
        ent = M.predictive_entropy(_probs(model, guide, data[key], cfg.num_samples,
                                          seed).unsqueeze(0))
        out[f"auroc_{key}"] = auroc(ent_in, ent)
        ents[key] = ent
    return out, {"probs": probs, "entropy": ents}


def _prepare(ctx: RunContext, x: torch.Tensor, rows: int):
    def prepare(model, guide):
        if model.has_inducing:
            model.initialize_inducing(x[:rows], method="kmeans", seed=ctx.seed,
                                      progress=ctx.progress)
    return prepare


def _figure(results: dict, y: torch.Tensor, n_bins: int, path):
    fig, axes = new_figure(ncols=len(results), nrows=2, width=2.9, height=2.7, squeeze=False)
    for j, (arm, (metrics, extra)) in enumerate(results.items()):
        conf, acc, count = reliability(extra["probs"], y, n_bins)
        ax = axes[0, j]
        edges = np.linspace(0, 1, n_bins + 1)
        ax.bar(edges[:-1], np.nan_to_num(acc.numpy()), width=1 / n_bins, align="edge",
               edgecolor="k", lw=0.4, alpha=0.7, label="accuracy")
        ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="calibrated")
        ax.plot(conf.numpy(), acc.numpy(), "o", ms=3, c="tab:red", label="(confidence, accuracy)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_title(f"{LABELS[arm]}\nacc {metrics['acc']:.4f}, ECE {metrics['ece']:.4f}",
                     fontsize=8)
        ax = axes[1, j]
        bins = np.linspace(0, np.log(10), 31)
        for name, ent in extra["entropy"].items():
            ax.hist(ent.numpy(), bins=bins, density=True, histtype="step", label=name)
        ax.set_yscale("log")
        ax.set_xlabel("predictive entropy (nats)")
        ax.set_title(f"AUROC rot90 {metrics['auroc_rot90']:.3f}, noise "
                     f"{metrics['auroc_noise']:.3f}", fontsize=8)
    axes[0, 0].set_ylabel("accuracy")
    axes[1, 0].set_ylabel("density")
    axes[0, 0].legend(fontsize=6, loc="upper left")
    axes[1, 0].legend(fontsize=6)
    return save_figure(fig, path)


@register_experiment(
    "dkl-mnist", paper="Wilson et al. 2016 (Stochastic variational deep kernel learning)",
    figure="MNIST: accuracy, NLL, ECE, OOD AUROC; reliability diagrams", data=("mnist",),
    get_config=get_config,
    paper_numbers={"acc_dkl": "SV-DKL: 99.2 % (LeNet trunk); Pyro sv-dkl.py: about 98.4 %"})
def run(config: Config, ctx: RunContext) -> dict:
    data = load(config.data, ctx.seed, ctx.data_dir)
    metrics: dict = {}
    results: dict = {}
    for arm in [a for a in ARMS if a in config.arms]:
        spec = getattr(config, arm)
        log.info("fitting %s", LABELS[arm])
        t0 = time.perf_counter()
        model, guide, state = train_pair(spec, (data["x"], data["y"]), ctx, arm,
                                         model_args=MODEL_ARGS[spec.model],
                                         prepare=_prepare(ctx, data["x"], config.inducing_rows))
        metrics[f"train_seconds_{arm}"] = time.perf_counter() - t0
        with torch.no_grad():
            m, extra = evaluate(model, guide, data, config, ctx.seed)
        metrics.update({f"{k}_{arm}": v for k, v in m.items()})
        metrics[f"final_elbo_{arm}"] = state.history[-1]["elbo"]
        results[arm] = (m, extra)
        log.info("%s: %s", arm, {k: round(v, 4) for k, v in m.items()})
    figure = _figure(results, data["y_test"], config.n_bins, ctx.path("dkl_mnist_reliability"))
    metrics["figure"] = [str(p) for p in figure]
    return metrics


if __name__ == "__main__":
    from .__main__ import main

    raise SystemExit(main(["run", "dkl-mnist"]))

r"""Blundell et al. (2015), Table 1 and Figures 2 and 3: MNIST with Bayes by Backprop (BbB).

Protocol (paper, §5.1): MNIST, the 60k training images split into 50k train / 10k validation (we
take the *last* 10k as validation), pixels divided by 126, no augmentation; two hidden ReLU layers of
400 / 800 / 1200 units; minibatch 128; model selection on the validation error (the epoch with
the lowest validation error is kept) and its test error reported. Arms:

* ``bbb-mixture``: ``bnn`` + ``mean-field``, scale-mixture prior
  :math:`p(w) = \pi\mathcal N(0, \sigma_1^2) + (1-\pi)\mathcal N(0, \sigma_2^2)`;
* ``bbb-mixture-blundell``: the same with the KL of minibatch *i* (of M) weighted by
  :math:`\pi_i = 2^{M-i}/(2^M-1)` instead of :math:`1/M` (paper §3.4); run at
  ``blundell_schedule_widths`` only (400 units by default);
* ``bbb-gaussian``: BbB with a Gaussian prior :math:`\mathcal N(0, \sigma^2)`;
* ``dropout``: the ``mlp`` with dropout on the hidden units, predicting with the weight-scaled net
  (dropout off, Srivastava et al. 2014);
* ``sgd``: the same ``mlp`` without dropout or any regulariser (the paper's "SGD" row).

Grid point used (from the paper's grid): scale mixture :math:`\pi = 1/2`,
:math:`-\log\sigma_1 = 0`, :math:`-\log\sigma_2 = 6`; Gaussian prior :math:`\sigma = e^{-1}`
(the paper does not state its Gaussian :math:`\sigma`; this is our choice from the
:math:`\sigma_1` grid); 1 sample per step with local reparameterisation (Kingma et al. 2015: the
same ELBO, lower-variance gradients; the paper sampled weights); learning rate :math:`10^{-3}`.
**Deviation:** all arms use Adam with a cosine learning-rate decay, not plain SGD: :func:`fit`
minimises the full-data estimate (the minibatch log-likelihood is scaled by N/B), so an SGD step
size would have to be rescaled by B/N, and Adam is invariant to that scale; with a few dozen epochs
on a CPU, Adam is the difference between a result and none. The KL of the Gaussian prior is in
closed form (``elbo="meanfield"``); the scale mixture's is a one-sample Monte Carlo estimate.

Prediction: BbB test error is reported both with the posterior-mean weights (``test_error_*``,
also what the validation selection and the per-epoch curves use) and with the Monte Carlo
predictive :math:`\frac1S\sum_s p(y\mid x, w_s)`, :math:`w_s \sim q` (``test_error_mc_*``).

Paper (Table 1, test error, 400 / 800 / 1200 units): SGD 1.83 / 1.84 / 1.88 %; dropout
1.51 / 1.33 / 1.36 %; BbB Gaussian 1.82 / 1.99 / 2.04 %; BbB scale mixture 1.36 / 1.34 / 1.32 %
(after about 600 epochs). Figure 2: test error against epochs (BbB, dropout, SGD). Figure 3:
histograms of the trained weights (BbB's are wider, its many small weights prunable, Table 2).

Configurations and cost (one thread of a shared 2-core CPU, torch 2.13; one epoch of 50k images,
784-400-400-10: BbB scale mixture about 18 s, BbB Gaussian about 6 s (11 s before the mean-field
ELBO and skipped-draw speed-ups), plain / dropout net about 2.5 s; 784-1200-1200-10 BbB scale
mixture 85 s, measured with ``--set 'widths=[1200]' --set bbb_mixture.fit.epochs=1
--set 'arms=["bbb-mixture"]'``):

* quick (default): widths 2x400 only, 30 epochs for every arm, all five arms: about 27 min of one
  core. Results, with the number of epochs, are in CHANGELOG.md.
* full (GPU): ``--set widths=[400,800,1200]`` and ``--set ARM.fit.epochs=600`` for each of the five
  arms (``bbb_mixture``, ``bbb_mixture_blundell``, ``bbb_gaussian``, ``dropout``, ``sgd``) — every
  arm at every width, 600 epochs, as in the paper; not run here. On a current GPU an epoch of the
  1200-unit BbB net is a few seconds (391 steps, each dominated by Pyro's per-step Python overhead
  of a few ms, not by the matrix products), so the full grid is roughly 13 runs x 600 epochs x
  ~3-5 s = 7-11 h. On one CPU core: about 260 s per epoch summed over the 13 runs (the measured
  epochs above, the 800-unit and other untimed ones scaled by their weight count), x 600 epochs =
  about 44 core-hours.
* smoke: 500 training images, one epoch, 16 units.

Configuration: each arm is a (model, guide) pair with its fit settings, the config field named
after the arm with ``_`` for ``-`` (``--set bbb_mixture.fit.lr=3e-4``,
``--set bbb_gaussian.model_cfg.prior.sigma=0.1``, ``--set dropout.model_cfg.dropout=0.3``,
``--set sgd.fit.epochs=10``); the hidden layers (``depth`` x each of ``widths``) and the input and
output sizes are the experiment's. ``arms`` selects the arms that run, ``num_samples`` the draws of
the Monte Carlo predictive.

Run: ``python -m experiments run blundell-mnist [--smoke] [--set 'arms=["bbb-mixture"]']
[--set bbb_mixture.fit.epochs=60]``; each arm's best-validation state is written to
``<run>/<arm>-<width>/best.pt`` (the input of ``blundell-pruning``'s ``checkpoint``).
"""

from __future__ import annotations

import copy
import logging
import math
import time
import typing
from dataclasses import dataclass, field
from typing import Literal

import torch

import guides
import models
from experiments import data as zoo_data
from experiments.engine.checkpoint import save_zoo_file
from experiments.engine.settings import FitConfig
from experiments.harness.spec import ConfigError, PairSpec, RunContext, config_dict, train_pair
from models.base import module_device

from .mnist_bnn.figures import figures
from .mnist_bnn.prediction import (  # noqa: F401  (re-exported: blundell_pruning uses them as bm.*)
    bnn_weights,
    error_rate,
    linear_weights,
    mc_error,
    mlp_logits,
)
from .registry import register_experiment

log = logging.getLogger(__name__)

Arm = Literal["bbb-mixture", "bbb-mixture-blundell", "bbb-gaussian", "dropout", "sgd"]
ARMS: tuple[str, ...] = typing.get_args(Arm)
PAPER_TABLE1 = {  # test error in %, widths 400 / 800 / 1200
    "sgd": (1.83, 1.84, 1.88), "dropout": (1.51, 1.33, 1.36),
    "bbb-gaussian": (1.82, 1.99, 2.04), "bbb-mixture": (1.36, 1.34, 1.32),
}
#: the model arguments the experiment supplies (:func:`arch_args`): not part of an arm's model_cfg
ARCH_KEYS = ("in_features", "widths", "out_features", "task")
GAUSSIAN_PRIOR = {"kind": "gaussian", "sigma": math.exp(-1.0)}
MIXTURE_PRIOR = {"kind": "scale-mixture", "mixture_weight": 0.5, "sigma1": math.exp(0.0),
                 "sigma2": math.exp(-6.0)}


def default_arm(arm: str, epochs: int = 30) -> PairSpec:
    """A fresh copy of one arm's pair at the paper's grid point (module docstring): BbB arms are
    ``bnn`` + ``mean-field``, the others the ``mlp`` (dropout 0.5, or none for ``sgd``). Every arm
    is evaluated after each epoch (``eval_every=1``: the best-validation epoch is kept)."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; choose from {ARMS}")
    per_epoch = {"eval_every": 1, "checkpoint": False, "tensorboard": False}
    if arm.startswith("bbb"):
        prior = GAUSSIAN_PRIOR if arm == "bbb-gaussian" else MIXTURE_PRIOR
        return PairSpec(
            "bnn", "mean-field", model_cfg={"prior": dict(prior)},
            guide_cfg={"init_scale": 1e-3, "local_reparam": True},
            fit=FitConfig(epochs=epochs, batch_size=128, lr=1e-3, optimizer="adam",
                          elbo="meanfield", num_particles=1, lr_schedule="cosine",
                          kl_schedule="blundell" if arm == "bbb-mixture-blundell" else "uniform",
                          **per_epoch))
    return PairSpec("mlp", "deterministic", model_cfg={"dropout": 0.5 if arm == "dropout" else 0.0},
                    fit=FitConfig(epochs=epochs, batch_size=128, lr=1e-3, optimizer="adam",
                                  lr_schedule="cosine", **per_epoch))


def arm_field(arm: str) -> str:
    """The config field of an arm: ``"bbb-mixture"`` -> ``"bbb_mixture"``."""
    return arm.replace("-", "_")


def check_arm(arm: str, spec: PairSpec, where: str) -> None:
    """What the prediction code needs of an arm's pair (ConfigError otherwise): BbB arms read the
    ``mean-field`` guide's means and scales of a ``bnn``, the others the ``mlp``'s layers; the
    best-validation selection and Fig. 2 need an evaluation after every epoch."""
    spec.validate(where, provided=ARCH_KEYS)
    want = ("bnn", "mean-field") if arm.startswith("bbb") else ("mlp", None)
    if spec.model != want[0]:
        raise ConfigError(f"{where}.model={spec.model!r} is invalid: the {arm} arm is a "
                          f"{want[0]!r}")
    if want[1] is not None and spec.guide != want[1]:
        raise ConfigError(f"{where}.guide={spec.guide!r} is invalid: the {arm} arm predicts with "
                          f"the {want[1]!r} guide's weights")
    if spec.fit.eval_every != 1:
        raise ConfigError(f"{where}.fit.eval_every={spec.fit.eval_every!r} is invalid: expected 1 "
                          "(the best-validation epoch is kept)")


@dataclass
class MnistData:
    """The paper's split: ``num_train`` training images, then the last ``num_val`` of the 60k as
    validation; the first ``num_test`` test images (``None``: all 10k); pixels divided by
    ``pixel_divisor``."""

    num_train: int = 50000
    num_val: int = 10000
    num_test: int | None = None
    pixel_divisor: float = 126.0

    def validate(self):
        if self.num_train < 1 or self.num_val < 1 or self.num_train + self.num_val > 60000:
            raise ConfigError(f"data.num_train={self.num_train}, data.num_val={self.num_val} are "
                              "invalid: expected 1 <= num_train, num_val and num_train + num_val "
                              "<= 60000")
        if self.num_test is not None and self.num_test < 1:
            raise ConfigError(f"data.num_test={self.num_test!r} is invalid: expected an integer "
                              ">= 1 or null (all 10000)")
        if not self.pixel_divisor > 0:
            raise ConfigError(f"data.pixel_divisor={self.pixel_divisor!r} is invalid: expected a "
                              "number > 0")


@dataclass
class Config:
    data: MnistData = field(default_factory=MnistData)
    widths: list[int] = field(default_factory=lambda: [400])
    depth: int = 2
    arms: list[Arm] = field(default_factory=lambda: list(ARMS))
    #: the widths at which the bbb-mixture-blundell arm runs
    blundell_schedule_widths: list[int] = field(default_factory=lambda: [400])
    bbb_mixture: PairSpec = field(default_factory=lambda: default_arm("bbb-mixture"))
    bbb_mixture_blundell: PairSpec = field(
        default_factory=lambda: default_arm("bbb-mixture-blundell"))
    bbb_gaussian: PairSpec = field(default_factory=lambda: default_arm("bbb-gaussian"))
    dropout: PairSpec = field(default_factory=lambda: default_arm("dropout"))
    sgd: PairSpec = field(default_factory=lambda: default_arm("sgd"))
    num_samples: int = 10  # draws of the Monte Carlo predictive (test_error_mc_*)

    def spec(self, arm: str) -> PairSpec:
        return getattr(self, arm_field(arm))

    def runs(self) -> list[tuple[str, int]]:
        """``(arm, width)`` in the order they run."""
        return [(arm, int(width)) for width in self.widths for arm in self.arms
                if arm != "bbb-mixture-blundell" or width in self.blundell_schedule_widths]

    def validate(self):
        for arm in ARMS:
            check_arm(arm, self.spec(arm), arm_field(arm))
        if self.depth < 1:
            raise ConfigError(f"depth={self.depth!r} is invalid: expected an integer >= 1")
        if not self.widths or min(self.widths) < 1:
            raise ConfigError(f"widths={self.widths!r} is invalid: expected a non-empty list of "
                              "integers >= 1")
        if self.num_samples < 1:
            raise ConfigError(f"num_samples={self.num_samples!r} is invalid: expected an integer "
                              ">= 1")
        if not self.runs():
            raise ConfigError(f"arms={self.arms!r} with widths={self.widths!r} and "
                              f"blundell_schedule_widths={self.blundell_schedule_widths!r}: "
                              "nothing to run")


def get_config(smoke: bool = False) -> Config:
    cfg = Config()
    if smoke:
        cfg.data.num_train, cfg.data.num_val, cfg.data.num_test = 500, 200, 200
        cfg.widths = [16]
        cfg.blundell_schedule_widths = [16]
        for arm in ARMS:
            cfg.spec(arm).fit.epochs = 1
        cfg.num_samples = 2
    return cfg


def load_split(dcfg: MnistData, data_dir=None):
    """``(x_train, y_train), (x_val, y_val), (x_test, y_test)``: flat (N, 784) pixels / divisor.

    Validation is the last ``num_val`` of the 60k training images, train the ``num_train`` before.
    """
    n_tr, n_val = int(dcfg.num_train), int(dcfg.num_val)
    if n_tr < 1 or n_val < 1 or n_tr + n_val > 60000:
        raise ValueError(f"need 1 <= num_train, num_val and num_train + num_val <= 60000, got "
                         f"{n_tr} + {n_val}")
    if not dcfg.pixel_divisor > 0:
        raise ValueError(f"pixel_divisor must be > 0, got {dcfg.pixel_divisor!r}")
    scale = 255.0 / float(dcfg.pixel_divisor)  # load_mnist gives pixel / 255
    x, y = zoo_data.load_mnist("train", data_dir=data_dir)
    x = x.reshape(len(x), -1) * scale  # (60000, 784)
    x_te, y_te = zoo_data.load_mnist("test", data_dir=data_dir)
    x_te = x_te.reshape(len(x_te), -1) * scale
    if dcfg.num_test:
        x_te, y_te = x_te[: int(dcfg.num_test)], y_te[: int(dcfg.num_test)]
    train = (x[60000 - n_val - n_tr: 60000 - n_val], y[60000 - n_val - n_tr: 60000 - n_val])
    val = (x[60000 - n_val:], y[60000 - n_val:])
    return train, val, (x_te, y_te)


# -------------------------------------------------------------------------------------------------
# One arm
# -------------------------------------------------------------------------------------------------


def arch_args(width: int, depth: int) -> dict:
    """The model arguments the experiment supplies: 784 inputs, ``depth`` x ``width`` hidden
    units, 10 classes."""
    return {"in_features": 784, "widths": [int(width)] * int(depth), "out_features": 10,
            "task": "classification"}


def build_pair(spec: PairSpec, width: int, depth: int):
    """``(model, guide)`` of one arm's pair at one width (untrained; e.g. to load a ``best.pt``)."""
    model = models.create_model(spec.model, **{**spec.model_cfg, **arch_args(width, depth)})
    return model, guides.create_guide(spec.guide, model, **spec.guide_cfg)


def _logits(arm, model, guide, x):
    weights = bnn_weights(guide) if arm.startswith("bbb") else linear_weights(model)
    return mlp_logits(weights, x.to(weights[0].device))


def train_arm(arm: str, spec: PairSpec, width: int, depth: int, splits, ctx: RunContext, *,
              data: MnistData, num_samples: int):
    """Fit one arm, keep its best-validation state; returns ``(metrics, model, guide, history)``.

    :param splits: ``(train, val, test)`` of :func:`load_split` (val and test on the device).
    :param data: the data options, recorded in ``best.pt`` (``blundell-pruning`` reloads the test
        split from them).
    """
    train, val, test = splits
    best = {"error": math.inf, "epoch": 0, "calls": 0, "model": None, "guide": None}

    def eval_fn(m, g):  # every epoch (eval_every=1): keep the best-validation state
        best["calls"] += 1
        val_err = error_rate(_logits(arm, m, g, val[0]), val[1])
        test_err = error_rate(_logits(arm, m, g, test[0]), test[1])  # Fig. 2 only, not selection
        if val_err < best["error"]:
            best.update(error=val_err, epoch=best["calls"], model=copy.deepcopy(m.state_dict()),
                        guide=copy.deepcopy(g.state_dict()))
        return {"error": val_err, "test_error": test_err}

    name = f"{arm}-{width}"
    t0 = time.perf_counter()
    model, guide, state = train_pair(spec, train, ctx, name, eval_fn=eval_fn,
                                     model_args=arch_args(width, depth))
    seconds = time.perf_counter() - t0
    model.load_state_dict(best["model"])
    guide.load_state_dict(best["guide"])
    key = f"{arm}_{width}"
    metrics = {f"best_epoch_{key}": best["epoch"], f"val_error_{key}": best["error"],
               f"train_seconds_{key}": seconds,
               f"seconds_per_epoch_{key}": sum(r["seconds"] for r in state.history) / len(
                   state.history)}
    with torch.no_grad():
        metrics[f"test_error_{key}"] = error_rate(_logits(arm, model, guide, test[0]), test[1])
        if arm.startswith("bbb"):
            x_test = test[0].to(module_device(guide))
            metrics[f"test_error_mc_{key}"] = mc_error(guide, x_test, test[1], num_samples,
                                                       ctx.seed)
    save_zoo_file(ctx.path(name) / "best.pt", "best",
                  {"arm": arm, "width": width, "depth": depth, "spec": config_dict(spec),
                   "data": config_dict(data), "model": model.state_dict(),
                   "guide": guide.state_dict(), "best_epoch": best["epoch"]},
                  {"experiment": "blundell-mnist", "arm": arm, "width": width})
    return metrics, model, guide, state.history


def _grid_point(config: Config) -> str:
    p, g = (config.spec(a).model_cfg.get("prior") or {} for a in ("bbb-mixture", "bbb-gaussian"))
    f = config.bbb_mixture.fit
    try:
        mixture = (f"pi={p['mixture_weight']:.3g}, -log sigma1={-math.log(p['sigma1']) + 0.0:.3g}, "
                   f"-log sigma2={-math.log(p['sigma2']):.3g}")
    except (KeyError, TypeError, ValueError):
        mixture = f"mixture prior {p}"
    sigma = f"{g['sigma']:.3g}" if isinstance(g.get("sigma"), (int, float)) else repr(g)
    return (f"{mixture}, gaussian sigma={sigma}, lr={f.lr}, samples={f.num_particles}, "
            f"epochs={f.epochs}")


@register_experiment(
    "blundell-mnist", paper="Blundell et al. 2015 (Weight Uncertainty in NNs)",
    figure="Table 1, Fig. 2, Fig. 3", data=("mnist",), get_config=get_config,
    paper_numbers={f"test_error_{arm}_{w}": PAPER_TABLE1[arm][i] / 100
                   for arm in PAPER_TABLE1 for i, w in enumerate((400, 800, 1200))})
def run(config: Config, ctx: RunContext) -> dict:
    dev = ctx.torch_device
    train, val, test = load_split(config.data, ctx.data_dir)
    val, test = tuple(t.to(dev) for t in val), tuple(t.to(dev) for t in test)
    metrics: dict = {"grid_point": _grid_point(config)}
    histories, weights = {}, {}
    for arm, width in config.runs():
        log.info("fitting %s, %d x %d units", arm, config.depth, width)
        m, model, guide, hist = train_arm(arm, config.spec(arm), width, config.depth,
                                          (train, val, test), ctx, data=config.data,
                                          num_samples=config.num_samples)
        metrics.update(m)
        histories[(arm, width)] = hist
        with torch.no_grad():
            ws = bnn_weights(guide, "sample") if arm.startswith("bbb") else linear_weights(model)
            weights[(arm, width)] = torch.cat([w[:, :-1].reshape(-1) for w in ws]).cpu()
        log.info("%s %d: test error %.4f (best epoch %d)", arm, width,
                 metrics[f"test_error_{arm}_{width}"], metrics[f"best_epoch_{arm}_{width}"])
    metrics["figure"] = figures(config, histories, weights, ctx.out_dir)
    return metrics


if __name__ == "__main__":
    from .__main__ import main

    raise SystemExit(main(["run", "blundell-mnist"]))

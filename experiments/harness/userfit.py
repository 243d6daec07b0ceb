r"""Your own data: ``python -m experiments fit`` trains a registered pair on a table and
``python -m experiments predict`` reloads the run to predict at new inputs.

``fit`` reads a CSV / ``.npz`` / ``.pt`` table (:func:`~experiments.data.load_table`),
holds out a test set (``--test FILE``, the file's own ``x_test``/``y_test``, or a random
``--test-fraction``, default 0.1), standardises the features (and a regression target) with the
statistics of the *training rows only*,

.. math:: \tilde x_{nd} = (x_{nd} - m_d) / s_d, \qquad \tilde y_n = (y_n - m_y) / s_y

(population std; a column constant on the training rows gets :math:`s = 1`), builds a
:class:`FitJob` (a :class:`~experiments.harness.spec.PairSpec` whose data-dependent model
arguments come from :data:`DATA_SUPPLIES`), trains it with
:func:`~experiments.harness.spec.train_pair` and scores the test rows with
:func:`~experiments.engine.predict.predict` in original units: a regression mean
:math:`m_y + s_y \tilde\mu`, standard deviation :math:`s_y \tilde\sigma`, log density
:math:`\log \tilde p - \log s_y`. Class labels (any numbers) are mapped to indices 0..C-1 in
sorted order.

The run folder (``<out>/fit/<time>-seed<S>/``) holds ``config.json`` (the command and the pair),
``metrics.json`` (regression: ``rmse``, ``mae``, ``test_ll``, ``coverage95``; classification:
``accuracy``, ``nll``, ``ece``), ``run.log``, ``train/`` (fit's history and checkpoint),
``model.pt`` (model and guide state; the training rows too for a guide that predicts from them,
the ``laplace``), ``standardization.json``, ``test_predictions.csv`` and one figure (predicted
against true with 95% intervals, or a reliability diagram).

``--ensemble K`` (or ``--set ensemble=K``) trains a deep ensemble of K members of the pair
(:func:`~experiments.engine.ensemble.train_ensemble`: ``train/member0`` ..
``train/member<K-1>``, each with its own seeded initialisation and minibatch order) and predicts
with their mixture :math:`\frac1K\sum_k p_k(y \mid x)`
(:func:`~experiments.engine.ensemble.predict_ensemble`); ``model.pt`` then holds the list of
the members' states and ``metrics.json`` records ``ensemble_size``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import guides
import models
from experiments.data.tabular import Table, load_table
from experiments.data.uci import _mean_std
from experiments.engine import metrics as M
from experiments.engine.checkpoint import load_zoo_file, save_zoo_file
from experiments.engine.ensemble import Ensemble, train_ensemble
from experiments.engine.predict import Prediction, needs_train_data, predict
from experiments.engine.settings import FitConfig
from models.likelihoods import BernoulliLikelihood

from .spec import ConfigError, PairSpec, RunContext, apply_overrides, config_dict, train_pair

log = logging.getLogger("experiments")

TASKS = ("regression", "classification")
#: likelihoods of :mod:`models.likelihoods` a task may use (``--set model_cfg.likelihood=...``);
#: the first is the default
TASK_LIKELIHOODS = {"regression": ("gaussian", "student-t", "heteroscedastic-gaussian"),
                    "classification": ("categorical", "softmax", "bernoulli")}
MIN_TRAIN_ROWS = 8
DEFAULT_TEST_FRACTION = 0.1


@dataclass(frozen=True)
class Supplied:
    """What a table supplies to one model: the tasks it fits and the model arguments set from
    the data (``overridable`` ones only where ``--set`` leaves them out)."""

    tasks: tuple[str, ...]
    keys: tuple[str, ...]
    overridable: tuple[str, ...] = ("likelihood",)


#: model name -> what the data supplies; models not listed (the ``vae``) do not fit a table
DATA_SUPPLIES: dict[str, Supplied] = {
    # in_features = D; out_features from the likelihood (1, 2 for heteroscedastic, C classes)
    "bnn": Supplied(TASKS, ("in_features", "out_features", "task", "likelihood")),
    "mlp": Supplied(TASKS, ("in_features", "out_features", "task", "likelihood")),
    # Gaussian regression only
    "rff-gp": Supplied(("regression",), ("in_features",), overridable=()),
    # input_dim = D; num_classes for the categorical; num_inducing = min(DEFAULT_INDUCING, N_train) by default
    "svgp": Supplied(TASKS, ("input_dim", "likelihood", "num_classes", "num_inducing"),
                     overridable=("likelihood", "num_inducing")),
}


@dataclass
class FitJob(PairSpec):
    """The pair ``fit`` trains (``--set model_cfg.widths=[32]``, ``--set fit.epochs=50``,
    ``--set guide_cfg.init_scale=1e-3``), ``num_samples``, the draws of its predictive (per
    member), and ``ensemble``, the number K of members of a deep ensemble (``--ensemble K`` or
    ``--set ensemble=K``; 1: a single fit)."""

    fit: FitConfig = field(default_factory=lambda: FitConfig(epochs=100, lr=1e-2))
    num_samples: int = 100
    ensemble: int = 1
    #: fraction of the training rows held out to choose the epoch by their log-likelihood
    #: (:class:`EpochChooser`; 0: none, train on every row for all epochs)
    validation: float = 0.0

    def validate(self, where: str = "", provided: Sequence[str] = ()) -> None:
        super().validate(where, provided)
        if isinstance(self.ensemble, bool) or not isinstance(self.ensemble, int) \
                or self.ensemble < 1:
            raise ConfigError(f"ensemble={self.ensemble!r} is invalid: expected an integer >= 1 "
                              "(the number of ensemble members; 1 is a single fit)")
        if isinstance(self.num_samples, bool) or not isinstance(self.num_samples, int) \
                or self.num_samples < 1:
            raise ConfigError(f"num_samples={self.num_samples!r} is invalid: expected an "
                              "integer >= 1")
        if isinstance(self.validation, bool) or not isinstance(self.validation, (int, float)) \
                or not 0 <= self.validation < 0.5:
            raise ConfigError(f"validation={self.validation!r} is invalid: expected a fraction in "
                              "[0, 0.5) of the training rows to choose the epoch on (0: none)")


def pairs_for(task: str) -> list[str]:
    """``model/guide`` of every registered pair that fits a table of ``task``."""
    return [f"{m}/{g}" for m, g in guides.list_pairs()
            if m in DATA_SUPPLIES and task in DATA_SUPPLIES[m].tasks]


# ------------------------------------------------------------------------------------------------
# standardisation and labels


@dataclass
class Standardization:
    """The map between the user's units and the model's, fitted on the training rows.

    :ivar classes: classification: the label value of each class index (sorted).
    """

    task: str
    columns: list[str]
    target: str | None
    x_mean: list[float]
    x_std: list[float]
    y_mean: float = 0.0
    y_std: float = 1.0
    classes: list[float] | None = None

    @classmethod
    def from_training(cls, task: str, table: Table, x: np.ndarray, y: np.ndarray):
        x_mean, x_std = _mean_std(x)
        kwargs = {}
        if task == "regression":
            y_mean, y_std = _mean_std(y[:, None])
            kwargs = {"y_mean": float(y_mean[0]), "y_std": float(y_std[0])}
        else:
            kwargs = {"classes": sorted(float(v) for v in np.unique(y))}
        return cls(task=task, columns=list(table.columns), target=table.target,
                   x_mean=x_mean.tolist(), x_std=x_std.tolist(), **kwargs)

    def x(self, x: np.ndarray) -> torch.Tensor:
        """Standardised features, float32."""
        return torch.as_tensor((x - np.asarray(self.x_mean)) / np.asarray(self.x_std),
                               dtype=torch.float32)

    def y(self, y: np.ndarray, likelihood: str | None = None) -> torch.Tensor:
        """Regression: standardised float32 targets. Classification: class indices (long; float
        0/1 for the Bernoulli); a label unseen in training is an error."""
        if self.task == "regression":
            return torch.as_tensor((y - self.y_mean) / self.y_std, dtype=torch.float32)
        idx = self.labels(y)
        return torch.as_tensor(idx, dtype=torch.float32 if likelihood == "bernoulli"
                               else torch.long)

    def labels(self, y: np.ndarray) -> np.ndarray:
        classes = np.asarray(self.classes)
        idx = np.searchsorted(classes, y)
        idx = np.clip(idx, 0, len(classes) - 1)
        unseen = classes[idx] != y
        if unseen.any():
            raise ValueError(f"label(s) {sorted(set(y[unseen].tolist()))[:5]} of the test rows do "
                             f"not occur in the training rows (classes: "
                             f"{', '.join(map(label_name, classes))})")
        return idx

    def prediction(self, pred: Prediction) -> Prediction:
        """A prediction in the model's units, in the user's."""
        return pred.to_original_units(self.y_mean, self.y_std) if self.task == "regression" \
            else pred


def label_name(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


# ------------------------------------------------------------------------------------------------
# the job


def check_pair(model: str, guide: str, task: str, overrides: Sequence[str] = ()) -> FitJob:
    """The default :class:`FitJob` of a pair that fits a ``task`` table; otherwise a one-line
    error (an unknown name, a guide of another model, or the pairs that do fit)."""
    if task not in TASKS:
        raise ConfigError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    for item in overrides:
        head = item.split("=", 1)[0].split(".")[0].strip()
        if head in ("model", "guide"):
            raise ConfigError(f"--set {item}: choose the pair with --model / --guide")
    job = FitJob(model, guide)
    job.validate("pair")  # names first: an unknown model or guide is named before anything else
    if model not in DATA_SUPPLIES or task not in DATA_SUPPLIES[model].tasks:
        raise ConfigError(f"--model {model} --guide {guide} does not fit a {task} table; pairs "
                          f"that do: {', '.join(pairs_for(task))}")
    return job


#: SVI steps the default number of epochs aims at: ``epochs = ceil(steps / batches per epoch)``
#: within :data:`DEFAULT_EPOCH_RANGE` (a fixed number of epochs is 2 steps on 200 rows and 3 900
#: on 500 000); the SVGP's natural-gradient q(u) needs fewer
DEFAULT_STEPS = {"svgp": 3000, "bnn": 6000, "mlp": 6000, "rff-gp": 6000}
DEFAULT_EPOCH_RANGE = (2, 1000)
#: inducing points of the SVGP by default (at most the training rows)
DEFAULT_INDUCING = 128


def default_job(job: FitJob, n_train: int, task: str = "regression") -> FitJob:
    r"""The defaults of ``fit`` for ``job``'s family on a table of ``n_train`` rows, before
    ``--set`` (which may change any of them; ``python -m experiments fit --help`` lists them).

    Every family: Adam at lr :math:`10^{-2}`, epochs for about :data:`DEFAULT_STEPS` steps
    (:func:`default_epochs`, unless ``--set fit.epochs``). Then per family:

    * **SVGP** (``svgp``): the closed-form KL (``elbo=meanfield``, GPyTorch's
      ``VariationalELBO``), natural-gradient steps on q(u) for ``cholesky`` (``ngd_lr`` 0.1,
      GPyTorch's; a convex step in the natural parameters keeps q(u)'s factor well conditioned,
      where Adam's lr-sized step on every entry of R took it beyond float32 precision after a
      Titsias start; Gaussian likelihood only: on two moons with the categorical likelihood the
      natural precision left the positive definite cone within 10 s, so there Adam steps q(u)
      from the prior), min(:data:`DEFAULT_INDUCING`, N) inducing inputs at k-means centres, q(u)
      at Titsias' optimum (Gaussian likelihood), a constant mean, the noise starting at 0.5 of
      the target's sd (started at 0.1, the noise stayed near the Titsias q(u) fitted to it and
      the test LL was 0.3 nats worse than GPyTorch's), batches of 256.
    * **BNN** (``bnn``): a cosine lr schedule to 0 (the Monte Carlo gradient's noise shrinks with
      the step), local reparameterisation for the ``mean-field`` guide (one draw of the
      pre-activations per row: lower-variance gradients), batches of 128.
    * **plain net** (``mlp``): the cosine schedule, batches of 128, and 10 % of the training
      rows held out to choose the epoch (``validation``, :class:`EpochChooser`): trained for a
      fixed 1000 epochs on boston, it reached a test LL of -6.1 against BbB's -2.4.
    """
    fit, model, guide = job.fit, job.model_cfg, job.guide_cfg
    changes: dict = {"lr": 1e-2}
    if job.model == "svgp":
        changes.update(elbo="meanfield", batch_size=256)
        model.setdefault("mean", "constant")
        model.setdefault("noise_std", 0.5)
        if job.guide == "cholesky" and task == "regression":  # (a Gaussian likelihood: see
            guide.setdefault("natural_gradient", True)        # without_conjugate_ngd)
            guide.setdefault("ngd_lr", 0.1)
    elif job.model in ("bnn", "mlp"):
        changes.update(lr_schedule="cosine", batch_size=128)
        if job.guide == "mean-field":
            guide.setdefault("local_reparam", True)
        if job.model == "mlp":  # a point estimate overfits small tables: choose its epoch
            job.validation = 0.1
    job.fit = dataclasses.replace(fit, **changes)
    return job


def default_epochs(model: str, n_train: int, batch_size: int) -> int:
    """Epochs for about ``DEFAULT_STEPS[model]`` steps of ``batch_size`` rows out of ``n_train``."""
    steps_per_epoch = math.ceil(n_train / batch_size)
    lo, hi = DEFAULT_EPOCH_RANGE
    return int(min(hi, max(lo, math.ceil(DEFAULT_STEPS.get(model, 6000) / steps_per_epoch))))


def describe_defaults(n_train: int = 10000) -> str:
    """The defaults of :func:`default_job` per family, as ``--set`` settings (``fit --help``)."""
    lines = ["defaults (each one a --set KEY=VALUE away from another value):"]
    for model, guide in (("svgp", "cholesky"), ("bnn", "mean-field"), ("mlp", "deterministic")):
        job = default_job(FitJob(model, guide), n_train)
        base = FitJob(model, guide).fit
        fit = {k: v for k, v in dataclasses.asdict(job.fit).items()
               if k in ("lr", "lr_schedule", "batch_size", "elbo", "optimizer")
               and (v != getattr(base, k) or k in ("lr", "batch_size"))}
        parts = [f"fit.{k}={v}" for k, v in fit.items()]
        parts += [f"model_cfg.{k}={v}" for k, v in job.model_cfg.items()]
        parts += [f"guide_cfg.{k}={v}" for k, v in job.guide_cfg.items()]
        if model == "svgp":
            parts.append(f"model_cfg.num_inducing=min({DEFAULT_INDUCING}, N)")
        if job.validation:
            parts.append(f"validation={job.validation} (the epoch chosen on held-out rows)")
        lines.append(f"  {model}/{guide}: " + ", ".join(parts))
    lo, hi = DEFAULT_EPOCH_RANGE
    lines.append(f"  fit.epochs: about {DEFAULT_STEPS['svgp']} steps (svgp) or "
                 f"{DEFAULT_STEPS['bnn']} steps (nets) of batch_size rows, {lo} to {hi} epochs")
    lines.append("  svgp: inducing inputs at k-means centres, q(u) at Titsias' optimum "
                 "(gaussian likelihood)")
    return "\n".join(lines)


def without_conjugate_ngd(job: FitJob, overrides: Sequence[str]) -> FitJob:
    """Drop the default natural gradients of :func:`default_job` when ``--set`` chose a
    likelihood other than the Gaussian (its step is one-step optimal only there)."""
    keys = _set_keys(overrides)
    if job.model_cfg.get("likelihood", "gaussian") != "gaussian" \
            and "guide_cfg.natural_gradient" not in keys:
        job.guide_cfg.pop("natural_gradient", None)
        if "guide_cfg.ngd_lr" not in keys:
            job.guide_cfg.pop("ngd_lr", None)
    return job


def _set_keys(overrides: Sequence[str]) -> set[str]:
    return {item.split("=", 1)[0].strip() for item in overrides}


def build_job(model: str, guide: str, overrides: Sequence[str], task: str, *, num_features: int,
              num_classes: int | None, n_train: int) -> tuple[FitJob, dict]:
    """The :class:`FitJob` with the family's defaults (:func:`default_job`), the ``--set``
    overrides applied, checked, and the model arguments the data supplies
    (:data:`DATA_SUPPLIES`)."""
    job = default_job(check_pair(model, guide, task, overrides), n_train, task)
    job = without_conjugate_ngd(apply_overrides(job, overrides), overrides)
    if "fit.epochs" not in _set_keys(overrides):
        job.fit = dataclasses.replace(job.fit, epochs=default_epochs(
            job.model, n_train, min(job.fit.batch_size, n_train)))
    supplied = data_model_args(job, task, num_features, num_classes, n_train)
    job.validate("pair", provided=[k for k in supplied
                                   if k not in DATA_SUPPLIES[model].overridable])
    return job, supplied


def data_model_args(job: FitJob, task: str, num_features: int, num_classes: int | None,
                    n_train: int) -> dict:
    """The model arguments a table supplies (:data:`DATA_SUPPLIES`), checked against what
    ``--set`` chose (``likelihood`` within the task's, ``num_inducing`` <= the training rows)."""
    info, cfg = DATA_SUPPLIES[job.model], job.model_cfg
    for key in info.keys:
        if key in cfg and key not in info.overridable:
            raise ConfigError(f"--set model_cfg.{key}: {key} comes from the data; leave it out")
    out: dict = {}
    if "likelihood" in info.keys:
        lik = cfg.get("likelihood") or TASK_LIKELIHOODS[task][0]
        if lik not in TASK_LIKELIHOODS[task]:
            raise ConfigError(f"--set model_cfg.likelihood={lik}: a {task} table takes one of "
                              f"{', '.join(TASK_LIKELIHOODS[task])}")
        if lik == "bernoulli" and num_classes != 2:
            raise ConfigError(f"the bernoulli likelihood needs 2 classes, the target has "
                              f"{num_classes}; use categorical")
        out["likelihood"] = lik
        if "out_features" in info.keys:
            out["out_features"] = {"heteroscedastic-gaussian": 2, "categorical": num_classes,
                                   "softmax": num_classes}.get(lik, 1)
        if "num_classes" in info.keys and lik in ("categorical", "softmax"):
            out["num_classes"] = num_classes
    for key in ("in_features", "input_dim"):
        if key in info.keys:
            out[key] = num_features
    if "task" in info.keys:
        out["task"] = task
    if "num_inducing" in info.keys:
        m = cfg.get("num_inducing", min(DEFAULT_INDUCING, n_train))
        if m > n_train:
            raise ConfigError(f"--set model_cfg.num_inducing={m}: at most the {n_train} training "
                              "rows")
        out["num_inducing"] = m
    return out


def prepare_svgp(x: torch.Tensor, y: torch.Tensor, seed: int):
    """SVGP start: k-means inducing inputs; for the Gaussian, Titsias' optimal q(u) too."""

    def prepare(model, guide):
        model.to(x.device)
        model.start(x, y, guide, seed=seed)

    return prepare


class EpochChooser:
    r"""``fit``'s ``eval_fn`` that chooses the epoch by held-out data (``FitJob.validation``).

    At each evaluation it scores the validation rows, :math:`\frac1{N_v}\sum_n \log
    p(y_n \mid x_n, \mathcal D)` (:func:`~experiments.engine.predict.predict`), and keeps a copy
    of the model's and guide's state when that is the best so far; :meth:`restore` loads the
    best. Early stopping without the stopping: the whole schedule runs, the best epoch is kept.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, num_samples: int, eval_every: int,
                 epochs: int):
        self.x, self.y, self.num_samples = x, y, num_samples
        self.eval_every, self.epochs = eval_every, epochs
        self.calls = 0
        self.best_ll = -math.inf
        self.best_epoch: int | None = None
        self.best: tuple[dict, dict] | None = None

    def __call__(self, model, guide) -> dict[str, float]:
        self.calls += 1
        ll = predict(model, guide, self.x, self.num_samples, y=self.y).log_likelihood
        if ll is not None and math.isfinite(ll) and ll > self.best_ll:
            self.best_ll = ll
            self.best_epoch = min(self.calls * self.eval_every, self.epochs)
            self.best = tuple({k: v.detach().clone() for k, v in m.state_dict().items()}
                              for m in (model, guide))
        return {"ll": ll}

    def restore(self, model, guide) -> None:
        """Load the best state seen (nothing when no evaluation was finite)."""
        if self.best is not None:
            model.load_state_dict(self.best[0])
            guide.load_state_dict(self.best[1])


#: fewest validation rows worth choosing an epoch on
MIN_VALIDATION_ROWS = 10


def split_validation(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(train, validation)`` row indices, a seeded random ``fraction`` of ``n`` held out; None
    when that is fewer than :data:`MIN_VALIDATION_ROWS` rows or leaves fewer than
    :data:`MIN_TRAIN_ROWS` to train on."""
    n_val = int(round(fraction * n))
    if fraction <= 0 or n_val < MIN_VALIDATION_ROWS or n - n_val < MIN_TRAIN_ROWS:
        return None
    perm = np.random.default_rng(seed + 7919).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def train_chosen_epoch(job: FitJob, xs: torch.Tensor, ys: torch.Tensor, ctx: RunContext,
                       supplied: dict, prepare, seed: int, name: str = "train",
                       members: int | None = None):
    """Train ``job`` as ``fit`` does: one pair (:func:`~experiments.harness.spec.train_pair`) or,
    with ``members`` (default ``job.ensemble``) K > 1, a deep ensemble
    (:func:`~experiments.engine.ensemble.train_ensemble`, members in ``name/member<i>``). With
    ``job.validation`` that fraction of the rows is held out and each fit keeps its best epoch on
    them (:class:`EpochChooser`). Returns ``(model, guide, info)``: an ensemble's ``model`` is the
    :class:`~experiments.engine.ensemble.Ensemble` and its ``guide`` ``None``; ``info`` holds the
    chosen epoch(s) and the validation rows (``{}`` without a validation split)."""
    k = job.ensemble if members is None else members
    split = split_validation(len(xs), job.validation, seed)
    every = max(1, job.fit.epochs // 50)
    if split is not None:
        tr, va = (torch.as_tensor(i) for i in split)
        xs, ys, x_val, y_val = xs[tr], ys[tr], xs[va], ys[va]
        job = dataclasses.replace(job, fit=dataclasses.replace(job.fit, eval_every=every))
    choosers: dict[int, EpochChooser] = {}

    def chooser(model, guide):  # one per member (keyed by the model object)
        if id(model) not in choosers:
            choosers[id(model)] = EpochChooser(x_val, y_val, min(job.num_samples, 20), every,
                                               job.fit.epochs)
        return choosers[id(model)](model, guide)

    eval_fn = chooser if split is not None else None
    if k > 1:
        model, _ = train_ensemble(job, (xs, ys), ctx, name, k, model_args=supplied,
                                  prepare=prepare, eval_fn=eval_fn)
        pairs, guide = list(model), None
    else:
        model, guide, _ = train_pair(job, (xs, ys), ctx, name, model_args=supplied,
                                     prepare=prepare, eval_fn=eval_fn)
        pairs = [(model, guide)]
    if split is None:
        return model, guide, {}
    chosen = []
    for m, g in pairs:
        best = choosers.get(id(m))
        if best is not None:
            best.restore(m, g)
            chosen.append(best.best_epoch)
    log.info("validation: epoch(s) %s of %d chosen on %d held-out rows", chosen,
             job.fit.epochs, len(split[1]))
    return model, guide, {"chosen_epoch": chosen[0] if len(chosen) == 1 else chosen,
                          "validation_rows": len(split[1])}


# ------------------------------------------------------------------------------------------------
# fit


@dataclass
class FitArgs:
    """The ``fit`` command's arguments."""

    model: str
    guide: str
    data: str
    target: str | None = None
    test: str | None = None
    test_fraction: float | None = None
    task: str | None = None
    overrides: list[str] = field(default_factory=list)
    device: str = "auto"
    seed: int = 0
    out: str = "results"
    progress: bool = True
    #: ``--ensemble K``: train K members and predict with their mixture (1: a single fit)
    ensemble: int = 1

    def command(self) -> str:
        parts = ["python -m experiments fit", f"--model {self.model}", f"--guide {self.guide}",
                 f"--data {shlex.quote(self.data)}"]
        parts += [f"--target {shlex.quote(self.target)}"] if self.target else []
        parts += [f"--test {shlex.quote(self.test)}"] if self.test else []
        parts += [f"--test-fraction {self.test_fraction}"] if self.test_fraction is not None else []
        parts += [f"--task {self.task}"] if self.task else []
        parts += [f"--ensemble {self.ensemble}"] if self.ensemble != 1 else []
        parts += [f"--device {self.device}", f"--seed {self.seed}"]
        parts += [] if self.progress else ["--no-progress"]
        return " ".join(parts + [f"--set {shlex.quote(o)}" for o in self.overrides])


def split_rows(table: Table, args: FitArgs, *, with_rows: bool = False) -> tuple:
    """``(x_train, y_train, x_test, y_test, how)``: the test rows from ``--test``, the file's
    ``x_test``/``y_test``, or a seeded random ``--test-fraction`` of the rows. ``with_rows``
    appends the test rows' 0-based indices in the file (or array) they came from."""
    if args.test is not None and args.test_fraction is not None:
        raise ValueError("give --test FILE or --test-fraction, not both")
    te = None  # the test rows' indices in their file: 0, 1, ... unless a random split's
    if args.test is not None:
        test = load_table(args.test, table.target, columns=table.columns)
        if test.y is None:
            raise ValueError(f"{args.test}: no target column {table.target!r}")
        x_tr, y_tr, x_te, y_te, how = table.x, table.y, test.x, test.y, f"--test {args.test}"
    elif table.x_test is not None and args.test_fraction is None:
        x_tr, y_tr, x_te, y_te, how = table.x, table.y, table.x_test, table.y_test, \
            f"x_test/y_test of {table.source}"
    else:
        frac = DEFAULT_TEST_FRACTION if args.test_fraction is None else args.test_fraction
        if not 0 < frac < 1:
            raise ValueError(f"--test-fraction must be in (0, 1), got {frac}")
        n = table.num_rows
        n_test = max(1, int(round(frac * n)))
        perm = np.random.default_rng(args.seed).permutation(n)
        te, tr = np.sort(perm[:n_test]), np.sort(perm[n_test:])
        x_tr, y_tr, x_te, y_te = table.x[tr], table.y[tr], table.x[te], table.y[te]
        how = f"random {frac:g} of {n} rows (seed {args.seed})"
    if len(x_tr) < MIN_TRAIN_ROWS or len(x_te) < 1:
        raise ValueError(f"{table.source}: {len(x_tr)} training and {len(x_te)} test row(s) are "
                         f"too few; fit needs at least {MIN_TRAIN_ROWS} training rows and 1 test "
                         "row")
    if with_rows:
        return x_tr, y_tr, x_te, y_te, how, np.arange(len(x_te)) if te is None else te
    return x_tr, y_tr, x_te, y_te, how


def read_split(args, task: str, doing: str = "fitting"):
    """The table of ``args.data`` (target ``args.target``) read, split (:func:`split_rows`) and
    standardised on its training rows, with the label checks of a classification task:
    ``(table, (x_tr, y_tr, x_te, y_te, how, test_rows), standardization)``. ``doing`` names the
    command in the warning for integer targets of a regression ("fitting", "comparing")."""
    table = load_table(args.data, args.target)
    x_tr, y_tr, x_te, y_te, how, test_rows = split_rows(table, args, with_rows=True)
    if args.task is None and _looks_like_labels(y_tr):
        log.warning("the target %r holds %d distinct integers: for class labels pass --task "
                    "classification (%s a regression)", table.target, len(np.unique(y_tr)), doing)
    if task == "classification":
        labels = np.concatenate([y_tr, y_te]) if y_te is not None else y_tr
        bad = np.unique(labels[labels != np.round(labels)])
        if bad.size:
            raise ValueError(f"{table.source}: the classification target {table.target!r} holds "
                             f"non-integer values ({', '.join(f'{v:g}' for v in bad[:3])}"
                             f"{', ...' if bad.size > 3 else ''}); class labels must be integers: "
                             "encode the classes as 0, 1, ... or use --task regression")
    std = Standardization.from_training(task, table, x_tr, y_tr)
    if std.classes is not None and len(std.classes) < 2:
        raise ValueError(f"{table.source}: the target {table.target!r} has a single class in the "
                         "training rows; classification needs at least 2")
    return table, (x_tr, y_tr, x_te, y_te, how, test_rows), std


def run_fit(args: FitArgs) -> tuple[Path, dict]:
    """The ``fit`` command: everything is checked before the run folder is made; a failure in
    training is recorded there (``run.log``, ``metrics.json`` with ``status: failed``)."""
    from .runner import RunLog, code_version, hardware, make_run_dir, write_json

    task = args.task or "regression"
    check_pair(args.model, args.guide, task, args.overrides)  # before reading the data
    _check_members(args.ensemble, "--ensemble")
    table, (x_tr, y_tr, x_te, y_te, how, test_rows), std = read_split(args, task, "fitting")
    num_classes = len(std.classes) if std.classes is not None else None
    job, supplied = build_job(args.model, args.guide, args.overrides, task,
                              num_features=x_tr.shape[1], num_classes=num_classes,
                              n_train=len(x_tr))
    job = with_ensemble(job, args)
    likelihood = supplied.get("likelihood", job.model_cfg.get("likelihood"))
    xs_tr, ys_tr = std.x(x_tr), std.y(y_tr, likelihood)
    xs_te, ys_te = std.x(x_te), std.y(y_te, likelihood)

    run_dir = make_run_dir(args.out, "fit", args.seed)
    ctx = RunContext(seed=args.seed, device=args.device, out_dir=run_dir, progress=args.progress,
                     logger=log)
    write_json(run_dir / "config.json", {
        "command": args.command(), "commit": code_version(), "model": job.model,
        "guide": job.guide, "task": task,
        "data": str(Path(args.data).resolve()), "target": table.target, "test": how,
        "n_train": len(x_tr), "n_test": len(x_te), "seed": args.seed, "device": args.device,
        "overrides": list(args.overrides), "model_args": supplied, "pair": config_dict(job)})
    write_json(run_dir / "standardization.json", dataclasses.asdict(std))
    t0 = time.perf_counter()
    with RunLog(run_dir) as run_log:
        log.info("fit %s/%s on %s (%s, %d train / %d test rows) into %s", job.model, job.guide,
                 args.data, task, len(x_tr), len(x_te), run_dir)
        try:
            ctx.seed_everything()
            prepare = prepare_svgp(xs_tr.to(ctx.torch_device), ys_tr.to(ctx.torch_device),
                                    args.seed) if job.model == "svgp" else None
            # K > 1: members in train/member0 .. train/member<K-1>, predicted as their mixture
            # (predict(ensemble, None, ...)); with job.validation, epochs chosen on held-out rows
            model, guide, chosen = train_chosen_epoch(job, xs_tr, ys_tr, ctx, supplied,
                                                      prepare, args.seed)
            first_guide = model[0][1] if job.ensemble > 1 else guide
            train_data = (xs_tr, ys_tr) if needs_train_data(first_guide) else None
            pred = std.prediction(predict(model, guide, xs_te, job.num_samples, y=ys_te,
                                          train_data=train_data, seed=args.seed))
            metrics = score(pred, y_te, std)
            metrics.update(chosen)
            _save_state(run_dir / "model.pt", model, guide, train_data)
            write_predictions(run_dir / "test_predictions.csv", pred, std, x_te, y_te,
                              rows=test_rows)
            metrics["figure"] = [str(p) for p in plot_test(
                pred, y_te, std, metrics, run_dir / "test_predictions", job=job,
                data=args.data, seed=args.seed)]
        except BaseException as exc:
            if isinstance(exc, ArithmeticError):  # a non-finite or implausible fit: its message
                run_log.traceback(log, f"fit failed after {time.perf_counter() - t0:.1f} s",
                                  exc)  # says what to try
            else:
                log.exception("fit failed after %.1f s", time.perf_counter() - t0)
            write_json(run_dir / "metrics.json", {
                "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "ensemble_size": job.ensemble,
                "wall_time_s": round(time.perf_counter() - t0, 2), "hardware": hardware()})
            raise
    metrics = {"status": "ok", "task": task, "n_train": len(x_tr), "n_test": len(x_te),
               "ensemble_size": job.ensemble, **metrics,
               "wall_time_s": round(time.perf_counter() - t0, 2), "hardware": hardware()}
    write_json(run_dir / "metrics.json", metrics)
    return run_dir, metrics


def _looks_like_labels(y: np.ndarray) -> bool:
    return bool(np.all(y == np.round(y))) and len(np.unique(y)) <= 10


def _check_members(k, where: str) -> int:
    """``k`` as a number of ensemble members, else a one-line error naming ``where``."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{where} {k!r} is invalid: expected an integer >= 1 (the number of "
                         "ensemble members; 1 is a single fit)")
    return k


def with_ensemble(job: FitJob, args: FitArgs) -> FitJob:
    """The job with its number of members from ``--ensemble K`` or ``--set ensemble=K``; both
    given with different values is an error (give it once)."""
    k = _check_members(args.ensemble, "--ensemble")
    by_set = any(o.split("=", 1)[0].strip() == "ensemble" for o in args.overrides)
    if k != 1 and by_set and job.ensemble != k:
        raise ConfigError(f"--ensemble {k} and --set ensemble={job.ensemble} disagree; give the "
                          "number of members once (either one)")
    return dataclasses.replace(job, ensemble=k) if k != 1 else job


def _save_state(path: Path, model, guide, train_data) -> None:
    """model.pt: ``{"model", "guide"}`` state dicts of a single fit, or for an
    :class:`~experiments.engine.ensemble.Ensemble` (``guide`` None) ``{"members": [{"model",
    "guide"}, ...]}``; the training rows too (``train_x``, ``train_y``) for a guide that predicts
    from them."""
    if isinstance(model, Ensemble):
        state = {"members": [{"model": m.state_dict(), "guide": g.state_dict()}
                             for m, g in model]}
        meta = {"command": "fit", "ensemble": len(model)}
    else:
        state = {"model": model.state_dict(), "guide": guide.state_dict()}
        meta = {"command": "fit"}
    if train_data is not None:
        state["train_x"], state["train_y"] = train_data
    save_zoo_file(path, "fit-model", state, meta)


def score(pred: Prediction, y: np.ndarray, std: Standardization) -> dict:
    """Test metrics in original units (:mod:`experiments.engine.metrics`)."""
    if std.task == "regression":
        yt = torch.as_tensor(y, dtype=pred.mean.dtype)
        return {"rmse": M.rmse(pred.mean, yt), "mae": M.mae(pred.mean, yt),
                "test_ll": pred.log_likelihood,
                "coverage95": M.gaussian_interval_coverage(pred.mean, pred.sd, yt, 0.95)}
    idx = torch.as_tensor(std.labels(y))
    return {"accuracy": M.accuracy(pred.probs, idx), "nll": M.nll(pred.probs, idx),
            "ece": M.expected_calibration_error(pred.probs, idx)}


def write_predictions(path: Path, pred: Prediction, std: Standardization,
                      x: np.ndarray | None = None, y: np.ndarray | None = None,
                      rows: np.ndarray | None = None) -> Path:
    """One row per input: regression ``mean, sd, epistemic_sd, aleatoric_sd`` (original units);
    classification the ``predicted`` label and ``p_<label>`` per class. Before them, in this
    order: with ``rows`` a ``row`` column (each input's 0-based row index in its file), with
    ``x`` the feature columns, with ``y`` the true target (named as in training)."""
    given = [a for a in (x, None if y is None else y[:, None]) if a is not None]
    given = np.concatenate(given, axis=1) if given else None
    cols = ([] if x is None else list(std.columns)) + ([] if y is None else [std.target or "y"])
    ids = None if rows is None else [str(int(r)) for r in rows]
    cols = ([] if ids is None else ["row"]) + cols
    if std.task == "regression":
        head = ["mean", "sd", "epistemic_sd", "aleatoric_sd"]
        body = torch.stack([pred.mean, pred.sd, pred.epistemic.sqrt(), pred.aleatoric.sqrt()], 1)
        body_rows = [[_num(v) for v in r] for r in body.tolist()]
    else:
        names = [label_name(c) for c in std.classes]
        head = ["predicted"] + [f"p_{n}" for n in names]
        top = pred.probs.argmax(-1).tolist()
        body_rows = [[names[k]] + [_num(v) for v in p]
                     for k, p in zip(top, pred.probs.tolist())]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols + head)
        for i, r in enumerate(body_rows):
            w.writerow(([ids[i]] if ids is not None else [])
                       + ([_num(v) for v in given[i]] if given is not None else []) + r)
    return path


def _num(v: float) -> str:
    return format(float(v), ".8g")


def plot_test(pred: Prediction, y: np.ndarray, std: Standardization, metrics: dict,
              path: Path, *, job: FitJob | None = None, data: str | None = None,
              seed: int = 0, max_intervals: int = 500) -> list[Path]:
    """Regression: predicted mean with 95% intervals against the true value. Classification:
    a reliability diagram (accuracy against confidence in 10 bins). The title names the pair of
    ``job`` (``ensemble of K x model/guide`` for an ensemble) and the ``data`` file's name. Of
    more than ``max_intervals`` test rows, a random (``seed``) ``max_intervals`` get intervals,
    over a light dot of every row, and the figure says how many are shown."""
    import textwrap

    from .plotting import new_figure, save_figure

    fig, ax = new_figure(width=4.2, height=3.6)
    if job is not None or data is not None:
        what = "" if job is None else f"{job.model}/{job.guide}"
        if job is not None and job.ensemble > 1:
            what = f"ensemble of {job.ensemble} × {what}"
        where = "" if data is None else Path(data).name
        fig.suptitle(textwrap.fill(" on ".join(w for w in (what, where) if w), 60), fontsize=9)
    if std.task == "regression":
        mean, sd = pred.mean.numpy(), pred.sd.numpy()
        n = len(y)
        shown = np.arange(n)
        if n > max_intervals:  # thousands of error bars are a smear: a sample of them
            shown = np.sort(np.random.default_rng(seed).choice(n, max_intervals, replace=False))
            ax.scatter(y, mean, s=3, c="0.65", alpha=0.35, linewidths=0, rasterized=True,
                       zorder=1)
            ax.text(0.02, 0.98, f"{max_intervals} of {n} rows shown with intervals (random)\n"
                    f"grey dots: all {n} rows", transform=ax.transAxes, va="top", fontsize=7)
        ax.errorbar(y[shown], mean[shown], yerr=1.96 * sd[shown], fmt="o", ms=3, alpha=0.6,
                    elinewidth=0.8, zorder=2)
        lo, hi = float(min(y.min(), mean.min())), float(max(y.max(), mean.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"true {std.target}")
        ax.set_ylabel("predicted mean ± 1.96 sd")
        ax.set_title(f"test RMSE {metrics['rmse']:.3g}, 95% coverage "
                     f"{metrics['coverage95']:.2f}", fontsize=9)
    else:
        conf, top = pred.probs.max(-1)
        correct = (top.numpy() == std.labels(y)).astype(float)
        edges = np.linspace(0, 1, 11)
        b = np.clip(np.digitize(conf.numpy(), edges[1:-1], right=True), 0, 9)
        acc = [correct[b == i].mean() if (b == i).any() else np.nan for i in range(10)]
        ax.bar(edges[:-1], acc, width=0.1, align="edge", edgecolor="k", alpha=0.7,
               label="accuracy")
        ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="calibrated")
        ax.set_xlabel("confidence (max class probability)")
        ax.set_ylabel("accuracy")
        ax.legend(fontsize=8)
        ax.set_title(f"test accuracy {metrics['accuracy']:.3f}, ECE {metrics['ece']:.3f}",
                     fontsize=9)
    return save_figure(fig, path)


# ------------------------------------------------------------------------------------------------
# predict


def load_run(run_dir) -> tuple[object, object, FitJob, Standardization, tuple | None]:
    """Rebuild a ``fit`` run's pair from its folder: ``(model, guide, job, standardization,
    train_data)``, the state loaded on the CPU (``weights_only=True``). A run of ``--ensemble K``
    (K > 1) gives the :class:`~experiments.engine.ensemble.Ensemble` of its K members as
    ``model`` and ``None`` as ``guide`` (``predict(model, None, x)`` is the mixture)."""
    run_dir = Path(run_dir)
    for name in ("config.json", "standardization.json", "model.pt"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir} is not a finished fit run: no {name} (run "
                                    "python -m experiments fit first)")
    config = json.loads((run_dir / "config.json").read_text())
    std = Standardization(**json.loads((run_dir / "standardization.json").read_text()))
    pair = dict(config["pair"])
    job = FitJob(**{**pair, "fit": FitConfig.from_dict(pair["fit"])})
    state, _ = load_zoo_file(run_dir / "model.pt", "fit-model")

    def rebuild(member: dict):
        model = models.create_model(job.model, **{**job.model_cfg, **config["model_args"]})
        guide = guides.create_guide(job.guide, model, **job.guide_cfg)
        model.load_state_dict(member["model"])
        with torch.no_grad():  # lazily built guide parameters come into being at the first call
            guide(*model.example_data(2, torch.Generator().manual_seed(0)))
        guide.load_state_dict(member["guide"])
        model.num_data = int(config["n_train"])
        return model, guide

    train = (state["train_x"], state["train_y"]) if "train_x" in state else None
    if "members" in state:  # an ensemble (K > 1)
        return Ensemble([rebuild(m) for m in state["members"]]), None, job, std, train
    model, guide = rebuild(state)
    return model, guide, job, std, train


def _check_out(path: Path, data: str) -> None:
    """Refuse, before any work, an output that is the input file or cannot be written."""
    import os

    if path.exists() and path.resolve() == Path(data).resolve():
        raise ValueError(f"--out {path} is the input file --data {data}: writing the predictions "
                         "would overwrite it; choose another --out")
    folder = path.resolve().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise ValueError(f"--out {path}: the folder {folder} does not exist or is not writable; "
                         "choose another --out")


def run_predict(run_dir, data: str, out: str | None = None, device: str = "cpu",
                seed: int = 0) -> tuple[Path, dict]:
    """The ``predict`` command: predictions at the rows of ``data`` in original units, written
    to ``out`` (default ``<run_dir>/predictions.csv``) after a ``row`` column (the 0-based row
    index in ``data``) and, when ``data`` has the target column, that column (named as in
    training); with the target column present, also its metrics."""
    from experiments.engine.loader import resolve_device

    _check_out(Path(out) if out else Path(run_dir) / "predictions.csv", data)
    model, guide, job, std, train = load_run(run_dir)
    table = load_table(data, std.target, need_target=False, columns=std.columns)
    model.to(resolve_device(device))
    if guide is not None:  # (an Ensemble moves its members' guides itself)
        guide.to(resolve_device(device))
    first = model[0][0] if isinstance(model, Ensemble) else model
    bernoulli = isinstance(getattr(first, "likelihood", None), BernoulliLikelihood)
    y = None if table.y is None else std.y(table.y, "bernoulli" if bernoulli else None)
    pred = std.prediction(predict(model, guide, std.x(table.x), job.num_samples, y=y,
                                  train_data=train, seed=seed))
    path = Path(out) if out else Path(run_dir) / "predictions.csv"
    write_predictions(path, pred, std, y=table.y, rows=np.arange(table.num_rows))
    summary = {"rows": table.num_rows, "out": str(path)}
    if table.y is not None:
        summary.update(score(pred, table.y, std))
    return path, summary


__all__ = ["DATA_SUPPLIES", "FitArgs", "FitJob", "Standardization", "TASK_LIKELIHOODS",
           "build_job", "check_pair", "load_run", "pairs_for", "run_fit", "run_predict",
           "with_ensemble"]

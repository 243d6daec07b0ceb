r"""The pair ``python -m experiments fit`` trains on a table: :class:`FitJob`, what a table
supplies to each model (:data:`DATA_SUPPLIES`) and the per-family defaults (:func:`default_job`,
:func:`build_job`); the commands are :mod:`experiments.harness.userfit` (``fit``) and
:mod:`experiments.harness.userpredict` (``predict``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

import guides
from experiments.engine.training import FitConfig
from models.likelihoods import LIKELIHOODS

from .spec import ConfigError, PairSpec, apply_overrides

TASKS = ("regression", "classification")
#: likelihoods of :mod:`models.likelihoods` a task may use (``--set model_cfg.likelihood=...``);
#: the first is the default
TASK_LIKELIHOODS = {"regression": ("gaussian", "student-t", "heteroscedastic-gaussian"),
                    "classification": ("categorical", "softmax", "bernoulli")}


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
    chosen = LIKELIHOODS.get(job.model_cfg.get("likelihood", "gaussian"))
    if not (chosen is not None and chosen.conjugate) and "guide_cfg.natural_gradient" not in keys:
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
        kind = LIKELIHOODS[lik].kind
        if kind == "binary" and num_classes != 2:
            raise ConfigError(f"the bernoulli likelihood needs 2 classes, the target has "
                              f"{num_classes}; use categorical")
        out["likelihood"] = lik
        if "out_features" in info.keys:
            out["out_features"] = num_classes if kind == "classification" else \
                LIKELIHOODS[lik].num_outputs
        if "num_classes" in info.keys and kind == "classification":
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


__all__ = ["DATA_SUPPLIES", "DEFAULT_INDUCING", "FitJob", "Supplied", "TASKS", "TASK_LIKELIHOODS",
           "build_job", "check_pair", "data_model_args", "default_epochs", "default_job",
           "describe_defaults", "pairs_for", "prepare_svgp", "without_conjugate_ngd"]

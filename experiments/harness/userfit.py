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

The parts live in their own modules: the pair and its defaults in
:mod:`experiments.harness.fitjob`, reading, splitting and standardising the table in
:mod:`experiments.harness.tables`, the ``predict`` command and the outputs both commands write in
:mod:`experiments.harness.userpredict`; this module is the ``fit`` command.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from experiments.engine.checkpoint import save_zoo_file
from experiments.engine.ensemble import Ensemble, train_ensemble
from experiments.engine.predict import needs_train_data, predict

# the job (fitjob), the table (tables) and the outputs (userpredict) have their own modules;
# their names stay importable from here (experiments.harness.compare imports them so)
from .fitjob import (  # noqa: F401
    DATA_SUPPLIES,
    DEFAULT_INDUCING,
    TASK_LIKELIHOODS,
    TASKS,
    FitJob,
    build_job,
    check_pair,
    default_epochs,
    default_job,
    describe_defaults,
    pairs_for,
    prepare_svgp,
)
from .spec import ConfigError, RunContext, config_dict, train_pair
from .tables import Standardization, read_split, split_rows, split_validation  # noqa: F401
from .userpredict import load_run, plot_test, run_predict, score, write_predictions  # noqa: F401

log = logging.getLogger("experiments")


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


def run_fit(args: FitArgs) -> tuple[Path, dict]:
    """The ``fit`` command: everything is checked before the run folder is made; a failure in
    training is recorded there (``run.log``, ``metrics.json`` with ``status: failed``)."""
    from experiments.engine.signals import StopSignals

    from .lock import RunLock
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
    # the folder's one writer; SIGTERM / SIGHUP stop the command like Ctrl-C (see run)
    with RunLock(run_dir, args.command()), StopSignals(deferred=False, what="fit"):
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


# (the names before this split, kept: the job's, the table's and predict's are re-exported)
__all__ = ["DATA_SUPPLIES", "EpochChooser", "FitArgs", "FitJob", "Standardization",
           "TASK_LIKELIHOODS", "build_job", "check_pair", "load_run", "pairs_for", "run_fit",
           "run_predict", "train_chosen_epoch", "with_ensemble"]

r"""``python -m experiments compare``: a panel of methods on one table, the same split and the same
standardisation, and a leaderboard.

The table is read, split and standardised once, exactly as ``fit`` does
(:mod:`experiments.harness.userfit`: :func:`~experiments.harness.userfit.split_rows`,
:class:`~experiments.harness.userfit.Standardization` fitted on the training rows); every method
then trains its pair's default :class:`~experiments.harness.userfit.FitJob`
(:func:`~experiments.harness.userfit.build_job`, with the ``--set`` overrides) on those rows and is
scored on the same test rows in the user's units (:func:`~experiments.harness.userfit.score`).

**Panel.** By default (:data:`DEFAULT_PANEL`), for regression and classification alike:

* ``plain``: the plain net, ``mlp/deterministic`` (a point estimate; its predictive spread is the
  likelihood's noise alone);
* ``mc-dropout``: MC dropout, ``mlp/deterministic`` with ``model_cfg.dropout=``
  :data:`MC_DROPOUT_RATE`, the masks kept on at prediction (Gal & Ghahramani 2016);
* ``bbb``: Bayes by Backprop, ``bnn/mean-field`` (Blundell et al. 2015);
* ``ensemble``: a deep ensemble of K (``--ensemble-size``, default 5) ``mlp/deterministic`` nets
  from independent initialisations, predicting with the equal-weight mixture
  :math:`p(y \mid x) = \frac1K \sum_k p(y \mid x, \theta_k)` (Lakshminarayanan et al. 2017;
  :mod:`experiments.engine.ensemble`);
* ``svgp``: the sparse variational GP, ``svgp/cholesky`` (k-means inducing inputs; for the
  Gaussian likelihood a Titsias start of q(u), as in ``fit``).

Deep kernel learning is not in the panel: ``dkl`` does not fit a table through the user-fit path
(it has no entry in :data:`~experiments.harness.userfit.DATA_SUPPLIES`, so ``fit`` refuses it too).
``--pairs`` chooses another panel: comma-separated entries, each a panel name above, a
``model/guide`` pair that fits a table (``python -m experiments pairs``), or
``ensemble:model/guide`` for a deep ensemble of that pair.

**Budget.** ``--budget B`` seconds per method. Each method first trains a one-epoch pilot of its
job and takes that epoch's time :math:`t` (seconds of the epoch itself, without setup), then trains

.. math:: E = \mathrm{clamp}\big(\lfloor B / (K t) \rfloor,\ 1,\ E_{\max}\big)

epochs, where :math:`E_{\max}` is the job's own ``fit.epochs`` (its default, or ``--set``) and
K the ensemble's size (1 for a single fit: the ensemble's budget covers all its members). The
pilot's time comes on top of the budget; when :math:`E = 1` the pilot *is* the fit (same seed,
same job) and is not trained again. The leaderboard records :math:`E`, :math:`t` and the
method's wall time (pilot, training and prediction).

**Overrides.** ``--set KEY=VALUE`` (``model_cfg.*``, ``guide_cfg.*``, ``fit.*``, ``num_samples``)
applies to every method; ``--set METHOD.KEY=VALUE`` to one (``--set svgp.model_cfg.num_inducing=32``,
``--set mc-dropout.model_cfg.dropout=0.2``, ``--set ensemble:bnn/mean-field.fit.lr=3e-3``). A
method whose overrides do not fit its pair, or whose training fails, is a ``failed`` row with its
error; the other methods still run.

**Metrics** (original units): regression RMSE, MAE, test LL (mean log predictive density per test
row, nats), the coverage of the central 95 % interval and the calibration error
:func:`~experiments.engine.metrics.coverage_calibration_error`
:math:`\frac1L \sum_l |\hat c(\ell_l) - \ell_l|` over the levels 0.05, ..., 0.95 of the
moment-matched Gaussian predictive; classification accuracy, NLL and ECE. Rows are sorted by test
LL (descending) or NLL (ascending); failed rows last.

**Run folder** ``<out>/compare/<time>-seed<S>/``: ``leaderboard.md`` (command, data, split, row
counts, hardware, date, then the table), ``leaderboard.csv``, ``metrics.json`` (every row with its
chosen epochs, seconds per epoch and error), ``config.json`` (the exact command), ``run.log``,
``calibration.png/.pdf`` (regression: observed against nominal coverage of the central intervals,
one line per method, the diagonal for reference; classification: a reliability diagram, one line
per method), regression ``intervals.png/.pdf`` (mean ± 1.96 sd against the truth on a random
sample of at most :data:`INTERVAL_ROWS` test rows, one panel per method, shared axes), and
``methods/<method>/`` (the pilot's and the fit's history and checkpoint,
``test_predictions.csv``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from experiments.engine import metrics as M
from experiments.engine.predict import Prediction, needs_train_data, predict

from .compare_panel import (
    DEFAULT_BUDGET_S,
    DEFAULT_ENSEMBLE_SIZE,
    DEFAULT_PANEL,
    ENSEMBLE_PREFIX,
    MC_DROPOUT_RATE,
    Method,
    budget_epochs,
    default_panel,
    parse_pairs,
    split_overrides,
)
from .leaderboard import plot_comparison, sort_rows, write_leaderboard
from .spec import ConfigError, RunContext, config_dict, train_pair
from .userfit import (
    TASKS,
    Standardization,
    build_job,
    prepare_svgp,
    read_split,
    score,
    train_chosen_epoch,
    write_predictions,
)

log = logging.getLogger("experiments")


# ------------------------------------------------------------------------------------------------
# the command


@dataclass
class CompareArgs:
    """The ``compare`` command's arguments."""

    data: str
    target: str | None = None
    test: str | None = None
    test_fraction: float | None = None
    task: str | None = None
    budget: float = DEFAULT_BUDGET_S
    pairs: str | None = None
    ensemble_size: int = DEFAULT_ENSEMBLE_SIZE
    overrides: list[str] = field(default_factory=list)
    device: str = "auto"
    seed: int = 0
    out: str = "results"
    progress: bool = True

    def command(self) -> str:
        parts = ["python -m experiments compare", f"--data {shlex.quote(self.data)}"]
        parts += [f"--target {shlex.quote(self.target)}"] if self.target else []
        parts += [f"--test {shlex.quote(self.test)}"] if self.test else []
        parts += [f"--test-fraction {self.test_fraction}"] if self.test_fraction is not None else []
        parts += [f"--task {self.task}"] if self.task else []
        parts += [f"--budget {self.budget:g}"]
        parts += [f"--pairs {shlex.quote(self.pairs)}"] if self.pairs else []
        parts += [f"--ensemble-size {self.ensemble_size}", f"--device {self.device}",
                  f"--seed {self.seed}"]
        parts += [] if self.progress else ["--no-progress"]
        return " ".join(parts + [f"--set {shlex.quote(o)}" for o in self.overrides])


def check_args(args: CompareArgs) -> tuple[str, list[Method], dict[str, list[str]]]:
    """``(task, methods, overrides per method)``, or a one-line error; nothing is read yet."""
    task = args.task or "regression"
    if task not in TASKS:
        raise ConfigError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    if not (isinstance(args.budget, (int, float)) and math.isfinite(args.budget)
            and args.budget > 0):
        raise ConfigError(f"--budget {args.budget}: expected a positive number of seconds per "
                          "method")
    if isinstance(args.ensemble_size, bool) or not isinstance(args.ensemble_size, int) \
            or args.ensemble_size < 2:
        raise ConfigError(f"--ensemble-size {args.ensemble_size}: a deep ensemble needs at least "
                          "2 members")
    methods = parse_pairs(args.pairs, task, args.ensemble_size)
    return task, methods, split_overrides(args.overrides, methods)


@dataclass
class _Data:
    """The split and standardised table every method sees."""

    task: str
    std: Standardization
    x_tr: np.ndarray
    y_tr: np.ndarray
    x_te: np.ndarray
    y_te: np.ndarray
    how: str
    num_classes: int | None


def _load(args: CompareArgs, task: str) -> _Data:
    """Read, split and standardise the table as ``fit`` does (same checks of the labels)."""
    _, (x_tr, y_tr, x_te, y_te, how, _), std = read_split(args, task, "comparing")
    num_classes = len(std.classes) if std.classes is not None else None
    if task == "classification":
        std.labels(y_te)  # a test label unseen in training: an error before anything trains
    return _Data(task, std, x_tr, y_tr, x_te, y_te, how, num_classes)


def run_compare(args: CompareArgs) -> tuple[Path, list[dict]]:
    """The ``compare`` command (module docstring): ``(run folder, leaderboard rows)``. The
    arguments, the pairs and the table are checked before the run folder is made; from then on a
    method that fails is a ``failed`` row and the others still run. The leaderboard is written
    even when the run is interrupted (the method then running is an ``interrupted`` row, those
    not reached ``not run`` rows)."""
    from .runner import RunLog, code_version, hardware, make_run_dir, write_json

    task, methods, overrides = check_args(args)
    data = _load(args, task)
    run_dir = make_run_dir(args.out, "compare", args.seed)
    ctx = RunContext(seed=args.seed, device=args.device, out_dir=run_dir, progress=args.progress,
                     logger=log)
    info = {"command": args.command(), "task": task, "data": str(Path(args.data).resolve()),
            "target": data.std.target, "test": data.how, "n_train": len(data.x_tr),
            "n_test": len(data.x_te), "seed": args.seed, "device": args.device,
            "budget_s": args.budget, "ensemble_size": args.ensemble_size,
            "overrides": list(args.overrides), "hardware": hardware(),
            "commit": code_version(),
            "date": time.strftime("%Y-%m-%d %H:%M")}
    write_json(run_dir / "config.json", {
        **info, "methods": [{"name": m.name, "pair": m.pair, "label": m.label,
                             "ensemble": m.ensemble, "overrides": overrides[m.name]}
                            for m in methods]})
    rows = [_row(m, "not run") for m in methods]
    preds: dict[str, Prediction] = {}
    t_all = time.perf_counter()
    with RunLog(run_dir):
        log.info("compare %d methods on %s (%s, %d train / %d test rows, %s), budget %g s per "
                 "method, into %s", len(methods), args.data, task, len(data.x_tr), len(data.x_te),
                 data.how, args.budget, run_dir)
        try:
            for i, method in enumerate(methods):
                what = method.pair if method.label == method.pair else \
                    f"{method.label}, {method.pair}"
                tag = f"[{i + 1}/{len(methods)}] {method.name} ({what})"
                log.info("compare %s: start at %s", tag, time.strftime("%H:%M:%S"))
                t0 = time.perf_counter()
                try:
                    row, pred = _run_method(method, overrides[method.name], data, ctx, args)
                except (KeyboardInterrupt, SystemExit) as exc:  # stop: the leaderboard so far
                    rows[i] = _row(method, "interrupted", error=type(exc).__name__,
                                   seconds=time.perf_counter() - t0)
                    log.error("compare %s: interrupted after %.1f s; writing the leaderboard of "
                              "the methods so far", tag, time.perf_counter() - t0)
                    raise
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                    log.exception("compare %s: failed after %.1f s", tag,
                                  time.perf_counter() - t0)
                    rows[i] = _row(method, "failed", error=error,
                                   seconds=time.perf_counter() - t0)
                    log.info("compare %s: end at %s, failed after %.1f s: %s", tag,
                             time.strftime("%H:%M:%S"), time.perf_counter() - t0, error)
                    continue
                row["seconds"] = time.perf_counter() - t0
                rows[i], preds[method.name] = row, pred
                main_metric = ("test LL", row["test_ll"]) if task == "regression" \
                    else ("NLL", row["nll"])
                log.info("compare %s: end at %s, done in %.1f s (%d epoch(s), %.3g s per epoch), "
                         "%s %.4g", tag, time.strftime("%H:%M:%S"), row["seconds"],
                         row["epochs"], row["epoch_seconds"], *main_metric)
        finally:
            rows = sort_rows(rows, task)
            write_leaderboard(run_dir, rows, info)
            write_json(run_dir / "metrics.json", {
                "status": "ok" if all(r["status"] == "ok" for r in rows) else "failed",
                "failed_methods": [r["method"] for r in rows if r["status"] != "ok"],
                **{k: info[k] for k in ("task", "n_train", "n_test", "budget_s", "hardware")},
                "wall_time_s": round(time.perf_counter() - t_all, 2), "rows": rows})
            if preds:
                try:
                    for p in plot_comparison(preds, data, rows, run_dir, args.seed):
                        log.info("wrote %s", p)
                except Exception:  # a figure must not cost the leaderboard
                    log.exception("compare: the figures failed")
        log.info("compare finished in %.1f s: %d of %d methods ok; leaderboard.md written",
                 time.perf_counter() - t_all, sum(r["status"] == "ok" for r in rows), len(rows))
    return run_dir, rows


def _row(method: Method, status: str, **values) -> dict:
    return {"method": method.name, "pair": (ENSEMBLE_PREFIX if method.ensemble else "")
            + method.pair, "label": method.label, "status": status, "epochs": None,
            "max_epochs": None, "epoch_seconds": None, "train_seconds": None, "seconds": None,
            "error": "", **values}


def _run_method(method: Method, overrides: list[str], data: _Data, ctx: RunContext,
                args: CompareArgs) -> tuple[dict, Prediction]:
    """Pilot, budgeted training and scoring of one method: ``(row, prediction in user units)``."""
    job, supplied = build_job(method.model, method.guide, list(method.overrides) + overrides,
                              data.task, num_features=data.x_tr.shape[1],
                              num_classes=data.num_classes, n_train=len(data.x_tr))
    likelihood = supplied.get("likelihood", job.model_cfg.get("likelihood"))
    xs_tr, ys_tr = data.std.x(data.x_tr), data.std.y(data.y_tr, likelihood)
    xs_te, ys_te = data.std.x(data.x_te), data.std.y(data.y_te, likelihood)
    prepare = prepare_svgp(xs_tr.to(ctx.torch_device), ys_tr.to(ctx.torch_device),
                            args.seed) if job.model == "svgp" else None
    folder = f"methods/{method.slug}"
    max_epochs = job.fit.epochs
    pilot_job = dataclasses.replace(job, fit=dataclasses.replace(job.fit, epochs=1))
    t0 = time.perf_counter()
    model, guide, state = train_pair(pilot_job, (xs_tr, ys_tr), ctx, f"{folder}/pilot",
                                     model_args=supplied, prepare=prepare)
    epoch_s = float(state.history[-1]["seconds"])
    # K members: the panel's ensemble size, or a method's own --set METHOD.ensemble=K
    members = getattr(job, "ensemble", 1) if getattr(job, "ensemble", 1) > 1 else \
        max(method.ensemble, 1)
    epochs = budget_epochs(args.budget, epoch_s, max_epochs, members)
    train_job = dataclasses.replace(job, fit=dataclasses.replace(job.fit, epochs=epochs))
    log.info("compare %s: %.3g s per epoch in the pilot: %d epoch(s)%s (budget %g s, at most %d)",
             method.name, epoch_s, epochs, f" x {members} members" if members > 1 else "",
             args.budget, max_epochs)
    info: dict = {}
    if members > 1 or epochs > 1:  # else the one-epoch pilot is this very fit
        t0 = time.perf_counter()
        model, guide, info = train_chosen_epoch(train_job, xs_tr, ys_tr, ctx, supplied, prepare,
                                                args.seed, name=f"{folder}/train",
                                                members=members)
    train_s = time.perf_counter() - t0
    first_guide = model[0][1] if members > 1 else guide
    train_data = (xs_tr, ys_tr) if needs_train_data(first_guide) else None
    raw = predict(model, None if members > 1 else guide, xs_te, job.num_samples, y=ys_te,
                  train_data=train_data, seed=args.seed)
    pred = data.std.prediction(raw)
    metrics = score(pred, data.y_te, data.std)
    if data.task == "regression":
        yt = torch.as_tensor(data.y_te, dtype=pred.mean.dtype)
        metrics["calibration_error"] = M.coverage_calibration_error(pred.mean, pred.sd, yt)
    write_predictions(ctx.path(folder) / "test_predictions.csv", pred, data.std, data.x_te,
                      data.y_te)
    row = _row(method, "ok", epochs=epochs, max_epochs=max_epochs, epoch_seconds=epoch_s,
               train_seconds=train_s, members=members, **info, **metrics)
    row["config"] = config_dict(train_job)
    row["model_args"] = supplied
    return row, pred


__all__ = ["CompareArgs", "DEFAULT_PANEL", "MC_DROPOUT_RATE", "Method", "budget_epochs",
           "default_panel", "parse_pairs", "run_compare",
           "split_overrides"]

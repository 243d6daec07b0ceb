r"""``python -m experiments predict``: a ``fit`` run reloaded (:func:`load_run`) predicts at
the rows of a new table in the user's units (:func:`run_predict`); and the outputs ``fit`` and
``predict`` share: the metrics in original units (:func:`score`), the predictions file
(:func:`write_predictions`) and the test figure (:func:`plot_test`).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

import guides
import models
from experiments.data.tabular import load_table
from experiments.engine import manifest
from experiments.engine import metrics as M
from experiments.engine.checkpoint import load_zoo_file
from experiments.engine.ensemble import Ensemble
from experiments.engine.predict import Prediction, predict
from experiments.engine.training import FitConfig

from .fitjob import FitJob
from .tables import Standardization, label_name


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
    # verified against the folder's checksums: an edited standardisation would shift every
    # prediction silently
    config = manifest.read_json(run_dir / "config.json")
    std = Standardization(**manifest.read_json(run_dir / "standardization.json"))
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
    from experiments.engine.training import resolve_device

    _check_out(Path(out) if out else Path(run_dir) / "predictions.csv", data)
    model, guide, job, std, train = load_run(run_dir)
    table = load_table(data, std.target, need_target=False, columns=std.columns)
    model.to(resolve_device(device))
    if guide is not None:  # (an Ensemble moves its members' guides itself)
        guide.to(resolve_device(device))
    first = model[0][0] if isinstance(model, Ensemble) else model
    bernoulli = getattr(getattr(first, "likelihood", None), "kind", None) == "binary"
    y = None if table.y is None else std.y(table.y, "bernoulli" if bernoulli else None)
    pred = std.prediction(predict(model, guide, std.x(table.x), job.num_samples, y=y,
                                  train_data=train, seed=seed))
    path = Path(out) if out else Path(run_dir) / "predictions.csv"
    write_predictions(path, pred, std, y=table.y, rows=np.arange(table.num_rows))
    summary = {"rows": table.num_rows, "out": str(path)}
    if table.y is not None:
        summary.update(score(pred, table.y, std))
    return path, summary


__all__ = ["load_run", "plot_test", "run_predict", "score", "write_predictions"]

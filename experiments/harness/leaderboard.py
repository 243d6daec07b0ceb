r"""What :mod:`experiments.harness.compare` writes after the fits: the leaderboard (Markdown and
CSV, rows sorted by test log-likelihood or NLL, failed rows last with their error) and the
figures (calibration curves or reliability diagrams per method, and predicted intervals against
the truth on a sample of test rows). A figure's ``data`` is compare's split and standardisation
(``task``, ``std``, ``y_te``)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch

from experiments.engine import metrics as M
from experiments.engine.predict import Prediction

#: test rows of the intervals figure
INTERVAL_ROWS = 200


# ------------------------------------------------------------------------------------------------
# leaderboard

#: (key, markdown header, csv header, format) per task
COLUMNS = {
    "regression": [("rmse", "RMSE", "rmse", ".4g"), ("mae", "MAE", "mae", ".4g"),
                   ("test_ll", "test LL", "test_ll", ".4g"),
                   ("coverage95", "95 % coverage", "coverage95", ".3f"),
                   ("calibration_error", "calibration error", "calibration_error", ".3f")],
    "classification": [("accuracy", "accuracy", "accuracy", ".4f"), ("nll", "NLL", "nll", ".4g"),
                       ("ece", "ECE", "ece", ".3f")],
}


def sort_rows(rows: list[dict], task: str) -> list[dict]:
    """Finished rows by test LL (descending, regression) or NLL (ascending, classification);
    a non-finite value after the finite ones; failed and not-run rows last, in panel order."""
    key, sign = ("test_ll", -1.0) if task == "regression" else ("nll", 1.0)

    def order(r):
        v = r.get(key)
        ok = r["status"] == "ok"
        finite = ok and v is not None and math.isfinite(v)
        return (not ok, not finite, sign * v if finite else 0.0)

    return sorted(rows, key=order)  # stable: ties and failures keep the panel's order


def _fmt(v, spec: str) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return format(v, spec)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_leaderboard(run_dir: Path, rows: list[dict], info: dict) -> tuple[Path, Path]:
    """``leaderboard.md`` (the run's facts, then the table) and ``leaderboard.csv``."""
    cols = COLUMNS[info["task"]]
    better = "higher test LL is better" if info["task"] == "regression" else "lower NLL is better"
    lines = [f"# Method comparison: {Path(info['data']).name}", "",
             f"Command: `{info['command']}`  ",
             f"Data: {info['data']} (target `{info['target']}`, {info['task']})  ",
             f"Split: {info['test']}: {info['n_train']} train / {info['n_test']} test rows  ",
             f"Budget: {info['budget_s']:g} s of training per method (a deep ensemble's covers "
             f"all {info['ensemble_size']} members), after a one-epoch pilot that times an "
             "epoch  ",
             f"Hardware: {info['hardware']}  ", f"Commit: {info.get('commit', 'unknown')}  ",
             f"Date: {info['date']}", "",
             f"Sorted by {'test LL' if info['task'] == 'regression' else 'NLL'} ({better}); "
             "metrics on the test rows in the target's units. seconds: the method's wall time "
             "(pilot, training, prediction); epochs: trained / the job's maximum.", "",
             "| method | pair | " + " | ".join(c[1] for c in cols) + " | seconds | epochs |",
             "|---|---|" + "---:|" * (len(cols) + 2)]
    for r in rows:
        if r["status"] == "ok":
            cells = [_fmt(r.get(c[0]), c[3]) for c in cols]
            epochs = f"{r['epochs']} / {r['max_epochs']}"
        else:
            cells = [r["status"].upper()] + [""] * (len(cols) - 1)
            epochs = ""
        lines.append(f"| {_md_cell(r['method'])} | {_md_cell(r['pair'])} | " + " | ".join(cells)
                     + f" | {_fmt(r['seconds'], '.1f')} | {epochs} |")
    bad = [r for r in rows if r["status"] != "ok"]
    if bad:
        lines += ["", "Methods that did not finish (see run.log):", ""]
        lines += [f"- {r['method']}: {r['status']}" + (f": {_md_cell(r['error'])}"
                                                       if r["error"] else "") for r in bad]
    if info["task"] == "regression":
        lines += ["", "test LL: mean log predictive density per test row (nats, the target's "
                  "units). 95 % coverage: fraction of test rows inside mean ± 1.96 sd. "
                  "calibration error: mean |observed - nominal| coverage of the central "
                  "Gaussian intervals at the levels 0.05, 0.10, ..., 0.95."]
    else:
        lines += ["", "NLL: mean negative log predictive probability of the true class (nats). "
                  "ECE: expected calibration error over 15 equal-width confidence bins."]
    md = run_dir / "leaderboard.md"
    md.write_text("\n".join(lines) + "\n")
    path = run_dir / "leaderboard.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["method", "pair", "status"] + [c[2] for c in cols]
                   + ["seconds", "epochs", "max_epochs", "epoch_seconds", "train_seconds",
                      "error"])
        for r in rows:
            w.writerow([r["method"], r["pair"], r["status"]]
                       + [_fmt(r.get(c[0]), ".8g") for c in cols]
                       + [_fmt(r["seconds"], ".3f"), r["epochs"] if r["epochs"] is not None
                          else "", r["max_epochs"] if r["max_epochs"] is not None else "",
                          _fmt(r["epoch_seconds"], ".4g"), _fmt(r["train_seconds"], ".3f"),
                          r["error"]])
    return md, path


# ------------------------------------------------------------------------------------------------
# figures


def plot_comparison(preds: dict[str, Prediction], data, rows: list[dict], run_dir: Path,
                    seed: int) -> list[Path]:
    """The calibration figure (every task) and, for regression, the intervals figure; methods in
    leaderboard order."""
    order = [r["method"] for r in rows if r["method"] in preds]
    preds = {name: preds[name] for name in order}
    paths = plot_calibration(preds, data, run_dir / "calibration")
    if data.task == "regression":
        paths += plot_intervals(preds, data, run_dir / "intervals", seed)
    return paths


def plot_calibration(preds: dict[str, Prediction], data, path: Path) -> list[Path]:
    """Regression: observed coverage of the central Gaussian intervals against the nominal level
    (0..1, :func:`~experiments.engine.metrics.coverage_curve`). Classification: accuracy
    against mean confidence in 10 equal-width confidence bins (empty bins left out). One line
    per method; the diagonal is perfect calibration."""
    from .plotting import new_figure, save_figure

    fig, ax = new_figure(width=4.6, height=4.0)
    if data.task == "regression":
        levels = np.linspace(0.01, 0.99, 50)
        y = torch.as_tensor(data.y_te, dtype=torch.float64)
        for name, p in preds.items():
            cov = M.coverage_curve(p.mean.double(), p.sd.double(), y, levels).numpy()
            ax.plot(np.r_[0.0, levels, 1.0], np.r_[0.0, cov, 1.0], lw=1.4, label=name)
        ax.set_xlabel("nominal level of the central interval")
        ax.set_ylabel("observed coverage on the test rows")
        ax.set_title("interval calibration (above the diagonal: too wide)", fontsize=9)
    else:
        labels = torch.as_tensor(data.std.labels(data.y_te))
        for name, p in preds.items():
            probs = p.probs.double()
            idx, conf, correct = M.confidence_bins(probs, labels, 10)
            xs, ys = [], []
            for b in range(10):
                sel = idx == b
                if sel.any():
                    xs.append(float(conf[sel].mean()))
                    ys.append(float(correct[sel].mean()))
            ax.plot(xs, ys, "o-", ms=3, lw=1.4, label=name)
        ax.set_xlabel("confidence (max class probability)")
        ax.set_ylabel("accuracy")
        ax.set_title("reliability diagram (below the diagonal: overconfident)", fontsize=9)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="calibrated")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_intervals(preds: dict[str, Prediction], data, path: Path,
                   seed: int) -> list[Path]:
    """Predicted mean ± 1.96 sd against the true target, on the same random
    :data:`INTERVAL_ROWS` (or fewer) test rows for every method; one panel per method, shared
    axes, the diagonal for reference."""
    from .plotting import new_figure, save_figure

    n = len(data.y_te)
    rows = np.sort(np.random.default_rng(seed).permutation(n)[:min(INTERVAL_ROWS, n)])
    y = data.y_te[rows]
    ncols = min(3, len(preds))
    nrows = math.ceil(len(preds) / ncols)
    fig, axes = new_figure(ncols, nrows, width=3.2, height=3.0, squeeze=False, sharex=True,
                           sharey=True)
    lo, hi = float(y.min()), float(y.max())
    for ax, (name, p) in zip(axes.flat, preds.items()):
        mean, sd = p.mean.numpy()[rows], p.sd.numpy()[rows]
        inside = np.abs(y - mean) <= 1.96 * sd
        ax.errorbar(y, mean, yerr=1.96 * sd, fmt="o", ms=2.5, alpha=0.6, elinewidth=0.7)
        lo, hi = min(lo, float(mean.min())), max(hi, float(mean.max()))
        ax.set_title(f"{name}: {inside.mean():.0%} inside", fontsize=9)
    for ax in axes.flat[:len(preds)]:
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    for ax in axes.flat[len(preds):]:
        ax.set_visible(False)
    for c in range(ncols):  # the lowest panel of each column carries its x axis
        ax = axes[(len(preds) - 1 - c) // ncols, c]
        ax.xaxis.set_tick_params(labelbottom=True)
        ax.set_xlabel(f"true {data.std.target}")
    for ax in axes[:, 0]:
        ax.set_ylabel("mean ± 1.96 sd")
    fig.suptitle(f"{len(rows)} random test rows", fontsize=9)
    return save_figure(fig, path)


__all__ = ["COLUMNS", "INTERVAL_ROWS", "plot_calibration", "plot_comparison", "plot_intervals",
           "sort_rows", "write_leaderboard"]

"""The UCI benchmark's results (:mod:`experiments.uci_benchmark`): the published numbers it is
compared with, per-fit rows of earlier runs (``reuse_rows``), the mean and standard error over
splits, the dropout grid's selection counts, the markdown tables, the quality targets and the
test log-likelihood figure."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from experiments.harness.plotting import new_figure, save_figure

METHOD_LABELS = {"bbb": "BbB (ours)", "dropout": "MC dropout (ours)", "svgp": "SVGP (ours)",
                 "ensemble": "Deep ens. (ours)"}
_TICKS = {"bbb": "BbB", "dropout": "MC drop.", "svgp": "SVGP", "vi": "VI", "pbp": "PBP",
          "ensemble": "Ens."}

# REFERENCES.md, UCI regression. (mean, se) for VI / PBP / dropout; deep ensembles: (RMSE, LL = -NLL);
# SVGP (bayesian_benchmarks, M = 100): (RMSE, LL), its ± (a std over splits) is not in REFERENCES.md.
PUBLISHED: dict[str, dict[str, tuple[float, float | None]]] = {
    "boston": {"vi_rmse": (4.32, 0.29), "pbp_rmse": (3.01, 0.18), "dropout_rmse": (2.97, 0.19),
               "vi_ll": (-2.90, 0.07), "pbp_ll": (-2.57, 0.09), "dropout_ll": (-2.46, 0.06),
               "ensemble_rmse": (3.28, None), "ensemble_ll": (-2.41, None),
               "svgp_rmse": (2.63, None), "svgp_ll": (-2.408, None)},
    "concrete": {"vi_rmse": (7.19, 0.12), "pbp_rmse": (5.67, 0.09), "dropout_rmse": (5.23, 0.12),
                 "vi_ll": (-3.39, 0.02), "pbp_ll": (-3.16, 0.02), "dropout_ll": (-3.04, 0.02),
                 "ensemble_rmse": (6.03, None), "ensemble_ll": (-3.06, None),
                 "svgp_rmse": (5.99, None), "svgp_ll": (-3.174, None)},
    "energy": {"vi_rmse": (2.65, 0.08), "pbp_rmse": (1.80, 0.05), "dropout_rmse": (1.66, 0.04),
               "vi_ll": (-2.39, 0.03), "pbp_ll": (-2.04, 0.02), "dropout_ll": (-1.99, 0.02),
               "ensemble_rmse": (2.09, None), "ensemble_ll": (-1.38, None),
               "svgp_rmse": (0.82, None), "svgp_ll": (-1.317, None)},
    "kin8nm": {"vi_rmse": (0.10, 0.00), "pbp_rmse": (0.10, 0.00), "dropout_rmse": (0.10, 0.00),
               "vi_ll": (0.90, 0.01), "pbp_ll": (0.90, 0.01), "dropout_ll": (0.95, 0.01),
               "ensemble_rmse": (0.09, None), "ensemble_ll": (1.20, None)},
    "naval": {"vi_rmse": (0.01, 0.00), "pbp_rmse": (0.01, 0.00), "dropout_rmse": (0.01, 0.00),
              "vi_ll": (3.73, 0.12), "pbp_ll": (3.73, 0.01), "dropout_ll": (3.80, 0.01),
              "ensemble_rmse": (0.00, None), "ensemble_ll": (5.63, None)},
    "power": {"vi_rmse": (4.33, 0.04), "pbp_rmse": (4.12, 0.03), "dropout_rmse": (4.02, 0.04),
              "vi_ll": (-2.89, 0.01), "pbp_ll": (-2.84, 0.01), "dropout_ll": (-2.80, 0.01),
              "ensemble_rmse": (4.11, None), "ensemble_ll": (-2.79, None),
              "svgp_rmse": (4.00, None), "svgp_ll": (-2.807, None)},
    "protein": {"vi_rmse": (4.84, 0.03), "pbp_rmse": (4.73, 0.01), "dropout_rmse": (4.36, 0.01),
                "vi_ll": (-2.99, 0.01), "pbp_ll": (-2.97, 0.00), "dropout_ll": (-2.89, 0.00),
                "ensemble_rmse": (4.71, None), "ensemble_ll": (-2.83, None),
                "svgp_rmse": (4.50, None), "svgp_ll": (-2.923, None)},
    "wine": {"vi_rmse": (0.65, 0.01), "pbp_rmse": (0.64, 0.01), "dropout_rmse": (0.62, 0.01),
             "vi_ll": (-0.98, 0.01), "pbp_ll": (-0.97, 0.01), "dropout_ll": (-0.93, 0.01),
             "ensemble_rmse": (0.64, None), "ensemble_ll": (-0.94, None),
             "svgp_rmse": (0.63, None), "svgp_ll": (-0.955, None)},
    "yacht": {"vi_rmse": (6.89, 0.67), "pbp_rmse": (1.02, 0.05), "dropout_rmse": (1.11, 0.09),
              "vi_ll": (-3.43, 0.16), "pbp_ll": (-1.63, 0.02), "dropout_ll": (-1.55, 0.03),
              "ensemble_rmse": (1.58, None), "ensemble_ll": (-1.18, None),
              "svgp_rmse": (0.88, None), "svgp_ll": (-1.061, None)},
}
PUBLISHED_COLUMNS = (("vi", "VI"), ("pbp", "PBP"), ("dropout", "Dropout"),
                     ("ensemble", "Deep ens."), ("svgp", "SVGP (bb)"))


def load_rows(paths) -> dict[tuple[str, str, int], dict]:
    """Per-fit rows of earlier runs (their ``rows.jsonl``), keyed by ``(dataset, method, split)``,
    so that a protocol can be completed over several runs: ``--set 'reuse_rows=["results/
    uci-benchmark/<run>/rows.jsonl"]'``. Failed fits are not reused (they are fitted again). The
    caller is responsible for the earlier runs having used the same configuration; each reused
    row records the file it came from."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: dict[tuple[str, str, int], dict] = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"reuse_rows: {path} is not a file (expected a run's rows.jsonl)")
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            if "error" not in row:
                out[(row["dataset"], row["method"], int(row["split"]))] = {**row,
                                                                             "from": str(path)}
    return out


def summarize(rows: list[dict]) -> dict[str, float]:
    r"""Mean and standard error over splits per (dataset, method) and metric.

    :param rows: one dict per fit with ``dataset``, ``method``, ``split``, ``rmse``, ``ll`` and
        ``seconds`` (failed fits carry ``error`` and are left out).
    :returns: ``{f"{dataset}_{method}_{metric}_{mean|se}": value}`` for metric ``rmse`` and
        ``ll`` with :math:`\mathrm{se} = s/\sqrt K`, :math:`s^2 = \frac{1}{K-1}\sum_k (v_k - \bar
        v)^2` (NaN for K = 1), plus ``_seconds_per_split`` (mean) and ``_num_splits`` (K).
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        if "error" in row:
            continue
        groups.setdefault((row["dataset"], row["method"]), []).append(row)
    out: dict[str, float] = {}
    for (ds, method), sel in groups.items():
        k = len(sel)
        for metric in ("rmse", "ll"):
            v = np.array([r[metric] for r in sel], dtype=np.float64)
            out[f"{ds}_{method}_{metric}_mean"] = float(v.mean())
            out[f"{ds}_{method}_{metric}_se"] = float(v.std(ddof=1) / math.sqrt(k)) if k > 1 \
                else float("nan")
        out[f"{ds}_{method}_seconds_per_split"] = float(np.mean([r["seconds"] for r in sel]))
        out[f"{ds}_{method}_num_splits"] = k
    return out


def selection_counts(rows: list[dict]) -> dict[str, dict[str, int]]:
    """How often each dropout grid point was chosen, per set: ``{dataset: {"dropout=0.01,
    steps=3000": count}}`` (rows without a ``selected`` point are left out)."""
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        if row.get("method") != "dropout" or "selected" not in row:
            continue
        key = ",".join(f"{k}={v}" for k, v in row["selected"].items())
        counts = out.setdefault(row["dataset"], {})
        counts[key] = counts.get(key, 0) + 1
    return {ds: dict(sorted(c.items())) for ds, c in out.items()}


def _fmt(mean: float | None, se: float | None, digits: int) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    if se is None or (isinstance(se, float) and math.isnan(se)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f}±{se:.{digits}f}"


def results_table(summary: dict, datasets, methods, metric: str = "ll") -> str:
    """A markdown table, one row per set: ours (mean ± se over splits, K) then the published
    columns. ``metric`` is ``"ll"`` or ``"rmse"``."""
    if metric not in ("ll", "rmse"):
        raise ValueError(f"metric must be 'll' or 'rmse', got {metric!r}")
    head = ["dataset", "K"] + [METHOD_LABELS[m] for m in methods] + \
        [label for _, label in PUBLISHED_COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for ds in datasets:
        digits = 3 if ds in ("kin8nm", "naval") or metric == "ll" else 2
        if metric == "rmse" and ds == "naval":
            digits = 4
        ks = {summary.get(f"{ds}_{m}_num_splits") for m in methods} - {None}
        cells = [ds, "/".join(str(k) for k in sorted(ks)) or "0"]
        for m in methods:
            cells.append(_fmt(summary.get(f"{ds}_{m}_{metric}_mean"),
                              summary.get(f"{ds}_{m}_{metric}_se"), digits))
        pub = PUBLISHED.get(ds, {})
        for key, _ in PUBLISHED_COLUMNS:
            mean, se = pub.get(f"{key}_{metric}", (None, None))
            cells.append(_fmt(mean, se, 2 if key != "svgp" else 3))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(summary: dict, datasets) -> dict:
    """The issue's quality targets, evaluated on the sets that ran."""
    out: dict = {}
    beats_vi, beats_pbp, dropout_ok = [], [], []
    for ds in datasets:
        ours = summary.get(f"{ds}_bbb_ll_mean")
        if ours is not None:
            beats_vi.append(ours > PUBLISHED[ds]["vi_ll"][0])
            beats_pbp.append(ours > PUBLISHED[ds]["pbp_ll"][0])
        d = summary.get(f"{ds}_dropout_ll_mean")
        if d is not None:
            mean, se = PUBLISHED[ds]["dropout_ll"]
            dropout_ok.append(d >= mean - se)
    out["bbb_beats_vi_ll"] = f"{sum(beats_vi)}/{len(beats_vi)}"
    out["bbb_beats_pbp_ll"] = f"{sum(beats_pbp)}/{len(beats_pbp)}"
    out["dropout_ll_within_published_se_or_better"] = f"{sum(dropout_ok)}/{len(dropout_ok)}"
    return out


def plot_ll(summary: dict, datasets, methods, path: Path) -> list[Path]:
    """Test LL per set: ours (mean ± se) beside the published columns (± where given)."""
    ncols = min(3, len(datasets))
    nrows = math.ceil(len(datasets) / ncols)
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=3.6, height=2.6, squeeze=False)
    colors = {"bbb": "C0", "dropout": "C1", "svgp": "C2", "ensemble": "C3"}
    for ax, ds in zip(axes.flat, datasets):
        labels, means, errs, cols = [], [], [], []
        for m in methods:
            mean = summary.get(f"{ds}_{m}_ll_mean")
            if mean is None:
                continue
            se = summary.get(f"{ds}_{m}_ll_se")
            labels.append(_TICKS[m])
            means.append(mean)
            errs.append(0.0 if se is None or math.isnan(se) else se)
            cols.append(colors[m])
        for key, label in PUBLISHED_COLUMNS:
            mean, se = PUBLISHED[ds].get(f"{key}_ll", (None, None))
            if mean is None:
                continue
            labels.append(_TICKS.get(key, label.split(" ")[0]) + "*")
            means.append(mean)
            errs.append(se or 0.0)
            cols.append("0.6")
        pos = np.arange(len(means))
        n_ours = sum(c != "0.6" for c in cols)
        ax.axvline(n_ours - 0.5, color="0.8", ls="--", lw=0.8)
        ax.errorbar(pos, means, yerr=errs, fmt="none", ecolor="k", capsize=3, zorder=3)
        ax.scatter(pos, means, c=cols, zorder=4)
        ax.set_xticks(pos, labels, rotation=45, fontsize=7)
        ax.set_title(ds, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(datasets):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("test LL (nats)", fontsize=8)
    fig.suptitle("UCI test log-likelihood, mean ± se over splits: ours (colour) | published "
                 "(grey, *; no ± given for Ens.*, SVGP*)", fontsize=9)
    return save_figure(fig, path)

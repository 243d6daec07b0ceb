"""Headless plotting helpers for the experiments.

The Agg backend is selected on import, before :mod:`matplotlib.pyplot` is loaded, so the
experiments run on machines without a display; nothing here opens a window. Every
figure is written as both PNG (150 dpi) and PDF by :func:`save_figure`, atomically, and
closed afterwards so that long runs do not accumulate open figures.
"""

import matplotlib

matplotlib.use("Agg")

import math  # noqa: E402
import numbers  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Iterable, Mapping, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = ["log_ticks", "new_figure", "plot_curve", "plot_history", "plot_predictive_band",
           "save_figure"]

PNG_DPI = 150
#: curves of at most this many points get markers (a one-epoch curve is a single point, which a
#: line alone does not draw)
MARKER_MAX_POINTS = 30


def _to_numpy(x: Any) -> np.ndarray:
    """Tensor / array-like -> float numpy array (detached, on the CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=float)


def _atomic_savefig(fig: Figure, target: Path, fmt: str, **kwargs: Any) -> None:
    """Write ``fig`` to ``target`` via a temporary file in the same folder + ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format=fmt, **kwargs)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def save_figure(fig: Figure, path: str | os.PathLike) -> list[Path]:
    """Write ``fig`` as PNG (150 dpi) and PDF next to each other, then close it.

    The file names are ``path`` with its suffix replaced by ``.png`` and ``.pdf``
    (``Path.with_suffix``), so ``"out/fit"``, ``"out/fit.png"`` and ``"out/fit.pdf"`` all give
    ``out/fit.png`` and ``out/fit.pdf``. Parent folders are created. Each file is written to a
    temporary file in the same folder and moved into place with :func:`os.replace`, so a reader
    never sees a half-written figure. The figure is closed even if writing fails.

    :param matplotlib.figure.Figure fig: the figure to save.
    :param path: target path; its suffix is ignored.
    :returns: ``[png_path, pdf_path]``.
    :rtype: list[pathlib.Path]
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        png, pdf = path.with_suffix(".png"), path.with_suffix(".pdf")
        _atomic_savefig(fig, png, "png", dpi=PNG_DPI)
        # no creation date in the PDF: identical figures give identical files
        _atomic_savefig(fig, pdf, "pdf", metadata={"CreationDate": None})
    finally:
        plt.close(fig)
    return [png, pdf]


def new_figure(
    ncols: int = 1,
    nrows: int = 1,
    width: float = 4.0,
    height: float = 3.0,
    *,
    squeeze: bool = True,
    **subplots_kw: Any,
) -> tuple[Figure, Any]:
    """A figure with a grid of subplots and constrained layout.

    :param int ncols: number of subplot columns.
    :param int nrows: number of subplot rows.
    :param float width: width of one subplot in inches (the figure is ``width * ncols`` wide).
    :param float height: height of one subplot in inches (the figure is ``height * nrows``).
    :param bool squeeze: as in :func:`matplotlib.pyplot.subplots`: a single ``Axes`` for a
        1x1 grid, a 1-D array for one row/column, else a 2-D array; ``False`` always gives a
        2-D array.
    :param subplots_kw: passed to :func:`matplotlib.pyplot.subplots` (e.g. ``sharex=True``).
    :returns: ``(fig, axes)``.
    """
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(width * ncols, height * nrows),
        layout="constrained",
        squeeze=squeeze,
        **subplots_kw,
    )
    return fig, axes


def plot_predictive_band(
    ax: Axes,
    x: Any,
    samples: Any,
    *,
    quantiles: Sequence[float] = (0.25, 0.5, 0.75),
    label: str | None = None,
    color: Any = None,
    x_train: Any = None,
    y_train: Any = None,
    truth: tuple[Any, Any] | None = None,
) -> Axes:
    """Draw a 1-D predictive distribution from samples: median line and quantile band(s).

    The median (0.5 quantile) over samples is drawn as a line and the region between the
    outermost pair of ``quantiles`` as a shaded band; with more than one symmetric pair (e.g.
    ``(0.025, 0.25, 0.5, 0.75, 0.975)``) each inner pair adds a darker nested band. Training
    points are drawn as small black dots and ``truth`` as a dashed black curve.

    :param matplotlib.axes.Axes ax: axes to draw on.
    :param x: (N,) input grid (sorted; it is sorted here if it is not).
    :param samples: (S, N) predictive samples at ``x`` (tensor or array).
    :param quantiles: quantile levels in (0, 1); the outermost two bound the band.
    :param str label: legend label of the median line (the band gets ``label + " band"``).
    :param color: colour of line and band; the axes' next cycle colour if None.
    :param x_train: optional (M,) training inputs (needs ``y_train``).
    :param y_train: optional (M,) training targets.
    :param truth: optional ``(x, y)`` of the true function.
    :returns: ``ax``.
    """
    x = _to_numpy(x)
    s = _to_numpy(samples)
    if x.ndim != 1:
        raise ValueError(f"x must have shape (N,), got shape {x.shape}")
    if s.ndim != 2 or s.shape[1] != x.shape[0] or s.shape[0] == 0:
        raise ValueError(
            f"samples must have shape (S, N) with S >= 1 and N = len(x) = {x.shape[0]}, "
            f"got shape {s.shape}"
        )
    qs = sorted(float(q) for q in quantiles)
    if len(qs) < 2 or not all(0.0 < q < 1.0 for q in qs):
        raise ValueError(
            f"quantiles must hold at least two levels in (0, 1), got {tuple(quantiles)}"
        )
    if (x_train is None) != (y_train is None):
        raise ValueError("x_train and y_train must be given together")

    order = np.argsort(x, kind="stable")
    x, s = x[order], s[:, order]

    (line,) = ax.plot(x, np.quantile(s, 0.5, axis=0), color=color, lw=1.5, label=label, zorder=2)
    color = line.get_color()
    n_pairs = len(qs) // 2
    for i in range(n_pairs):
        lo, hi = qs[i], qs[-1 - i]
        if lo >= hi:
            continue
        band_label = f"{label} band ({lo:g}-{hi:g})" if (label is not None and i == 0) else None
        ax.fill_between(
            x,
            np.quantile(s, lo, axis=0),
            np.quantile(s, hi, axis=0),
            color=color,
            alpha=0.2 + 0.1 * i,
            lw=0,
            label=band_label,
            zorder=1,
        )
    if truth is not None:
        tx, ty = (_to_numpy(v) for v in truth)
        ax.plot(tx, ty, color="k", ls="--", lw=1.0, label="truth", zorder=3)
    if x_train is not None:
        ax.scatter(
            _to_numpy(x_train).ravel(),
            _to_numpy(y_train).ravel(),
            s=6,
            c="k",
            label="data",
            zorder=4,
        )
    return ax


def plot_curve(ax: Axes, x: Any, y: Any, *args: Any, **kwargs: Any) -> list:
    """``ax.plot(x, y, *args, **kwargs)``, with small round markers when the curve has at most
    :data:`MARKER_MAX_POINTS` points and neither ``marker=`` nor a format string (``"s:"``) gave
    it one, so that a one-epoch curve (a single point) is visible."""
    lines = ax.plot(x, y, *args, **kwargs)
    if "marker" not in kwargs and len(x) <= MARKER_MAX_POINTS:
        for line in lines:
            if line.get_marker() in (None, "", " ", "None"):
                line.set_marker("o")
                line.set_markersize(kwargs.get("ms", kwargs.get("markersize", 3)))
    return lines


def _compact(value: float, _pos: Any = None) -> str:
    """Tick label: ``0.02``, ``0.5``, ``20``, ``500``, ``2k``, ``50k``, ``1M``."""
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    if value >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def log_ticks(ax: Axes, axis: str = "x") -> None:
    """Readable ticks on a log axis (call after plotting): labels at 1, 2, 5 x 10^k (only at
    10^k when the axis spans more than three decades) written compactly (``0.05``, ``200``,
    ``20k``), unlabelled minor ticks, so that short ranges get labels and labels do not collide.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    lo, hi = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    decades = math.log10(hi / lo) if lo > 0 else math.inf
    target.set_major_locator(LogLocator(subs=(1.0,) if decades > 3 else (1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(_compact))
    target.set_minor_locator(LogLocator(subs="auto"))
    target.set_minor_formatter(NullFormatter())


def _as_number(v: Any) -> float | None:
    """A float for real numbers and one-element tensors/arrays; None for None and the rest."""
    if v is None or isinstance(v, (bool, np.bool_)):
        return None
    if isinstance(v, numbers.Real):
        return float(v)
    if hasattr(v, "detach") and hasattr(v, "numel"):  # torch.Tensor
        return float(v.detach().cpu().item()) if v.numel() == 1 else None
    if isinstance(v, np.ndarray) and v.size == 1 and np.issubdtype(v.dtype, np.number):
        return float(v.item())
    return None


def plot_history(
    history: Iterable[Mapping[str, Any]],
    path: str | os.PathLike,
    keys: Sequence[str] | None = None,
) -> list[Path]:
    """Plot training curves, one subplot per metric, and save them with :func:`save_figure`.

    :param history: per-epoch records, e.g.
        ``[{"epoch": 1, "loss": ..., "elbo": ..., "kl": ..., "val_rmse": ...}, ...]``. The x
        axis is ``record["epoch"]`` (the 1-based record index where missing); missing or None
        values are gaps.
    :param path: output path for :func:`save_figure` (suffix ignored).
    :param keys: metrics to plot, in order; default: every key other than ``"epoch"`` with a
        numeric value in some record, in order of first appearance. Keys whose values are all
        None (or missing) are skipped.
    :returns: ``[png_path, pdf_path]``.
    :rtype: list[pathlib.Path]
    :raises ValueError: if ``history`` is empty, a requested key occurs in no record, or
        nothing is left to plot.
    """
    records = list(history)
    if not records:
        raise ValueError("history is empty; need at least one per-epoch record")
    if keys is None:
        keys = []
        for rec in records:
            for k, v in rec.items():
                if k != "epoch" and k not in keys and _as_number(v) is not None:
                    keys.append(k)
    else:
        keys = list(keys)
        missing = [k for k in keys if not any(k in rec for rec in records)]
        if missing:
            raise ValueError(f"keys {missing} occur in no history record")

    epochs = np.array(
        [
            e if (e := _as_number(rec.get("epoch"))) is not None else i + 1
            for i, rec in enumerate(records)
        ],
        dtype=float,
    )
    series: dict[str, np.ndarray] = {}
    for k in keys:
        vals = [_as_number(rec.get(k)) for rec in records]
        if all(v is None for v in vals):
            continue
        series[k] = np.array([math.nan if v is None else v for v in vals], dtype=float)
    if not series:
        raise ValueError(f"nothing to plot: every requested key {keys} is None in all records")

    n = len(series)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=3.5, height=2.6, squeeze=False)
    flat = axes.ravel()
    for ax, (k, vals) in zip(flat, series.items()):
        plot_curve(ax, epochs, vals, lw=1.2)
        ax.set_title(k)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in flat[n:]:
        ax.set_visible(False)
    return save_figure(fig, path)

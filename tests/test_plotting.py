"""Smoke tests of experiments.harness.plotting (headless, writes only under tmp_path)."""

import matplotlib
import numpy as np
import pytest
import torch

from experiments.harness import plotting as P

plt = P.plt


def _assert_written(paths, stem):
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert all(p.stem == stem for p in paths)
    for p in paths:
        assert p.is_file() and p.stat().st_size > 0
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    # no temporary files left behind
    assert not [q for q in paths[0].parent.iterdir() if q.name.endswith(".tmp")]


def test_backend_is_agg():
    assert matplotlib.get_backend().lower() == "agg"


def test_save_figure_writes_png_pdf_and_closes(tmp_path):
    before = plt.get_fignums()
    fig, ax = P.new_figure()
    ax.plot([0, 1], [0, 1])
    paths = P.save_figure(fig, tmp_path / "nested" / "dir" / "line.png")
    _assert_written(paths, "line")
    assert paths[0].parent == tmp_path / "nested" / "dir"
    assert plt.get_fignums() == before


def test_new_figure_grid():
    fig, axes = P.new_figure(ncols=3, nrows=2, width=2.0, height=1.5)
    try:
        assert axes.shape == (2, 3)
        assert tuple(fig.get_size_inches()) == pytest.approx((6.0, 3.0))
    finally:
        plt.close(fig)


def test_plot_predictive_band(tmp_path):
    before = plt.get_fignums()
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(-2, 2, 30)
    samples = torch.sin(x) + 0.2 * torch.randn(50, 30, generator=g)
    x_train = torch.rand(10, generator=g) * 4 - 2
    y_train = torch.sin(x_train)
    fig, ax = P.new_figure()
    out = P.plot_predictive_band(
        ax,
        x,
        samples,
        label="bnn",
        x_train=x_train,
        y_train=y_train,
        truth=(x, torch.sin(x)),
    )
    assert out is ax
    assert len(ax.lines) == 2  # median + truth
    assert len(ax.collections) == 2  # band + training points
    # numpy input, nested quantile bands, explicit colour
    P.plot_predictive_band(
        ax, x.numpy(), samples.numpy(), quantiles=(0.05, 0.25, 0.5, 0.75, 0.95), color="C3"
    )
    assert len(ax.collections) == 4
    ax.legend()
    _assert_written(P.save_figure(fig, tmp_path / "band"), "band")
    assert plt.get_fignums() == before


def test_plot_predictive_band_shape_errors():
    fig, ax = P.new_figure()
    try:
        with pytest.raises(ValueError, match=r"\(S, N\)"):
            P.plot_predictive_band(ax, np.zeros(5), np.zeros((3, 4)))
        with pytest.raises(ValueError, match="quantiles"):
            P.plot_predictive_band(ax, np.zeros(4), np.zeros((3, 4)), quantiles=(0.5,))
    finally:
        plt.close(fig)


def test_plot_history(tmp_path):
    before = plt.get_fignums()
    history = [
        {
            "epoch": e,
            "loss": 10.0 / e,
            "elbo": -10.0 / e,
            "kl": torch.tensor(1.0 / e),
            "val_rmse": None if e % 2 else 0.5 / e,
            "unused": None,
            "tag": "run",
        }
        for e in range(1, 6)
    ]
    paths = P.plot_history(history, tmp_path / "history")
    _assert_written(paths, "history")
    assert plt.get_fignums() == before
    paths = P.plot_history(history, tmp_path / "sub.pdf", keys=["loss", "unused"])
    _assert_written(paths, "sub")
    with pytest.raises(ValueError, match="empty"):
        P.plot_history([], tmp_path / "none")
    with pytest.raises(ValueError, match="nothing to plot"):
        P.plot_history(history, tmp_path / "none", keys=["unused"])
    with pytest.raises(ValueError, match="no history record"):
        P.plot_history(history, tmp_path / "none", keys=["typo"])
    assert plt.get_fignums() == before

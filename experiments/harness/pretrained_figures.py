"""The figures of ``reproduce --pretrained`` (without ``--smoke``): for each shipped posterior
whose experiment draws its predictions or its weights, the same kind of figure drawn from the
loaded posterior, with no training: co2's SVGP band over the years, blundell-regression's
predictive median and interquartile band, two moons' decision probabilities, dkl-regression's
mean and 2-sd band over the gap, and blundell-mnist's Figure 3 (the density of the weights).
Training and test data are rebuilt from the card's ``source`` (the run's config and seed) as
the experiment draws them. :func:`draw_figure` writes ``<folder>/<name>.png`` (and ``.pdf``,
:func:`~.plotting.save_figure`); ``None`` where the experiment has no such figure.
"""

from __future__ import annotations

from pathlib import Path


def _co2(model, guide, card: dict, ax) -> str:
    import torch

    from experiments import data as zoo_data

    d, u = card["source"]["config"]["data"], card["units"]
    co2 = zoo_data.load_co2()
    keep = co2.t >= d["start"]
    t, ppm = co2.t[keep], co2.ppm[keep]
    train = t < d["train_until"]
    origin, offset = float(u["x_mean"][0]), float(u["y_mean"])
    grid = torch.linspace(float(t.min()), float(t.max()) + 5.0, 800, dtype=torch.float64)
    pred = model.predict((grid - origin).unsqueeze(-1), guide)
    mean = pred["f_mean"][:, 0] if pred["f_mean"].dim() == 2 else pred["f_mean"]
    mean, sd, yr = (mean + offset).numpy(), pred["y_var"].sqrt().numpy(), grid.numpy()
    ax.plot(t[train], ppm[train], ".", ms=2, color="k", label=f"train (< {d['train_until']})")
    ax.plot(t[~train], ppm[~train], ".", ms=2, color="0.6", label="held out")
    ax.axvline(d["train_until"], color="0.8", lw=0.8)
    ax.plot(yr, mean, color="C0", lw=1, label="SVGP predictive mean")
    ax.fill_between(yr, mean - 2 * sd, mean + 2 * sd, color="C0", alpha=0.2, lw=0, label="± 2 sd (y)")
    ax.set_xlabel("year")
    ax.set_ylabel("CO2 (ppm)")
    ax.legend(fontsize=7, loc="upper left")
    return f"test RMSE {card['metrics'].get('svgp_test_rmse', float('nan')):.2f} ppm"


def _blundell(model, guide, card: dict, ax) -> str:
    import torch

    from experiments import data as zoo_data
    from experiments.engine.predictive import posterior_predictive

    from .plotting import plot_predictive_band

    d, seed = card["source"]["config"]["data"], int(card["source"]["seed"])
    x, y = zoo_data.blundell_toy(n=d["num_train"], x_range=tuple(d["x_range"]),
                                 noise_std=d["noise_std"], seed=seed)
    grid = torch.linspace(*d["grid"], d["num_grid"]).unsqueeze(-1)
    ys = posterior_predictive(model, guide, grid, num_samples=int(card["predict"]["num_samples"]),
                              seed=seed)["obs"]
    plot_predictive_band(ax, grid[:, 0], ys, x_train=x.reshape(len(y), -1)[:, 0], y_train=y,
                         label="predictive median")
    ax.axvspan(*d["x_range"], color="0.92", zorder=0, label="training region")
    ax.set_ylim(-1.0, 2.0)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(fontsize=7, loc="upper left")
    ratio = card["metrics"].get(f"std_ratio_{card['arm']}", float("nan"))
    return f"off/on std ratio {ratio:.1f}"


def _moons(model, guide, card: dict, ax) -> str:
    import numpy as np
    import torch

    from .export_recipes import _experiment_module

    mod = _experiment_module("svgp-classification")
    m, seed = card["source"]["config"]["moons"], int(card["source"]["seed"])
    x, y = mod.two_moons(m["num_train"], m["noise"], seed)
    lo, hi = x.min(0).values - 0.5, x.max(0).values + 0.5
    n = int(m.get("grid", 120))
    g0, g1 = torch.meshgrid(torch.linspace(lo[0], hi[0], n), torch.linspace(lo[1], hi[1], n),
                            indexing="xy")
    gp = model.predict(torch.stack([g0.reshape(-1), g1.reshape(-1)], -1), guide)
    pg = mod.bernoulli_predictive(gp["f_mean"][:, 0], gp["f_var"][:, 0]).reshape(g0.shape)
    cs = ax.contourf(g0.numpy(), g1.numpy(), pg.numpy(), levels=np.linspace(0, 1, 11),
                     cmap="RdBu_r", alpha=0.6)
    ax.figure.colorbar(cs, ax=ax, label="p(y = 1 | x)  (Gauss–Hermite)")
    ax.contour(g0.numpy(), g1.numpy(), pg.numpy(), levels=[0.5], colors="k", linewidths=2)
    for c, colour in ((0, "tab:blue"), (1, "tab:red")):
        sel = y == c
        ax.scatter(x[sel, 0], x[sel, 1], s=10, c=colour, edgecolors="w", linewidths=0.3,
                   label=f"class {c}")
    z = model.inducing_points.detach().cpu()
    ax.scatter(z[:, 0], z[:, 1], marker="x", s=60, c="k", linewidths=2,
               label=f"inducing inputs (M = {len(z)})")
    ax.set_xlim(float(lo[0]), float(hi[0]))
    ax.set_ylim(float(lo[1]), float(hi[1]))
    ax.legend(loc="lower left", fontsize=7)
    return f"test acc {card['metrics'].get('moons_accuracy', float('nan')):.3f}"


def _dkl(model, guide, card: dict, ax) -> str:
    import torch

    from experiments.engine.predict import predict

    from .export_recipes import _experiment_module

    mod = _experiment_module("dkl-regression")
    d, seed = card["source"]["config"]["data"], int(card["source"]["seed"])
    x, y = mod.gap_data(d["num_train"], d["extent"], d["gap"], d["noise_std"], seed)
    g = torch.linspace(-d["grid_extent"], d["grid_extent"], d["num_grid"])
    band = predict(model, guide, g.unsqueeze(-1), num_samples=int(card["predict"]["num_samples"]),
                   seed=seed)
    mean, sd = band.mean.numpy(), band.sd.numpy()
    ax.axvspan(-d["gap"], d["gap"], color="0.93", zorder=0, label="gap (no data)")
    ax.fill_between(g.numpy(), mean - 2 * sd, mean + 2 * sd, alpha=0.3, lw=0, label="mean ± 2 sd (y)")
    ax.plot(g.numpy(), mean, lw=1.5, label="predictive mean")
    ax.plot(g.numpy(), mod.truth(g).numpy(), "k--", lw=1.0, label="truth")
    ax.scatter(x.reshape(len(y), -1)[:, 0].numpy(), y.numpy(), s=4, c="k", label="training data",
               zorder=3)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(fontsize=7, loc="lower right")
    ll = card["metrics"].get(f"ll_gap_{card['arm']}", float("nan"))
    return f"gap LL {ll:.2f}"


def _mnist_weights(model, guide, card: dict, ax) -> str:
    """Blundell et al.'s Figure 3 for the shipped net: the density of one posterior draw of its
    weights (biases left out), as :mod:`experiments.blundell_mnist` draws it. (Figure 2, the test
    error per epoch, is a training curve: a posterior does not hold it.)"""
    import torch

    from experiments.mnist_bnn.prediction import bnn_weights

    with torch.random.fork_rng():
        torch.manual_seed(int(card["source"]["seed"]))
        ws = bnn_weights(guide, "sample")
    w = torch.cat([m[:, :-1].reshape(-1) for m in ws]).cpu().numpy()
    ax.hist(w, bins=200, range=(-0.3, 0.3), density=True, histtype="step",
            label="Bayes by Backprop (one posterior draw)")
    ax.set_xlabel("weight")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    errors = [v for k, v in card["metrics"].items() if k.startswith("test_error_")]
    return f"Fig. 3 (test error {100 * errors[0]:.2f} %)" if errors else "Fig. 3"


#: experiment -> (arms drawn, or None for every arm; draw(model, guide, card, ax) -> title note)
FIGURES = {"co2": (("svgp",), _co2), "blundell-regression": (None, _blundell),
           "svgp-classification": (("moons",), _moons), "dkl-regression": (None, _dkl),
           "blundell-mnist": (None, _mnist_weights)}


def has_figure(card: dict) -> bool:
    got = FIGURES.get(card.get("experiment"))
    return got is not None and "source" in card and (got[0] is None or card.get("arm") in got[0])


def draw_figure(name: str, model, guide, card: dict, folder) -> Path | None:
    """Draw the posterior ``name``'s figure into ``folder``; the PNG's path, or ``None``."""
    import torch

    from .plotting import new_figure, save_figure

    if not has_figure(card):
        return None
    fig, ax = new_figure(width=6.0, height=3.8)
    try:
        with torch.no_grad():
            note = FIGURES[card["experiment"]][1](model, guide, card, ax)
        ax.set_title(f"{card['experiment']} ({card['arm']}), from pretrained {name}: {note}",
                     fontsize=8)
    except BaseException:
        import matplotlib.pyplot as plt

        plt.close(fig)
        raise
    return save_figure(fig, Path(folder) / name)[0]


__all__ = ["FIGURES", "draw_figure", "has_figure"]

"""The figures of :mod:`experiments.blundell_mnist`: Blundell et al.'s Figure 2 (test error per
epoch) and Figure 3 (histograms of the trained weights)."""

from __future__ import annotations

from pathlib import Path

from experiments.harness.plotting import log_ticks, new_figure, plot_curve, save_figure

_LABELS = {"bbb-mixture": "Bayes by Backprop", "bbb-mixture-blundell": "BbB (π_i KL schedule)",
           "bbb-gaussian": "BbB (Gaussian prior)", "dropout": "dropout", "sgd": "SGD (plain)"}


def figures(config, histories, weights, out_dir: Path) -> list[str]:
    """Figures 2 (test error per epoch, one panel per width of ``config.widths``) and 3 (the
    weights' histograms) from each arm's history and flattened weights; their paths."""
    widths = [int(w) for w in config.widths]
    paths = []
    fig, axes = new_figure(ncols=len(widths), width=4.2, height=3.2, squeeze=False)
    for ax, width in zip(axes[0], widths):
        for (arm, w), hist in histories.items():
            if w != width:
                continue
            ep = [r["epoch"] for r in hist]
            plot_curve(ax, ep, [100 * r["val_test_error"] for r in hist], label=_LABELS[arm])
        ax.set_xlabel("epoch")
        ax.set_title(f"2 x {width} units")
        ax.set_yscale("log")
        log_ticks(ax, "y")
    axes[0][0].set_ylabel("test error (%)")
    axes[0][0].legend(fontsize=8)
    paths += save_figure(fig, out_dir / "blundell_fig2")

    fig, axes = new_figure(ncols=len(widths), width=4.2, height=3.2, squeeze=False)
    for ax, width in zip(axes[0], widths):
        for arm in ("bbb-mixture", "dropout", "sgd"):
            if (arm, width) in weights:
                ax.hist(weights[(arm, width)].numpy(), bins=200, range=(-0.3, 0.3), density=True,
                        histtype="step", label=_LABELS[arm])
        ax.set_xlabel("weight")
        ax.set_title(f"2 x {width} units")
    axes[0][0].set_ylabel("density")
    axes[0][0].legend(fontsize=8)
    paths += save_figure(fig, out_dir / "blundell_fig3")
    return [str(p) for p in paths]

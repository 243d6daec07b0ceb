"""Kingma & Welling (2014), Figure 4: learned 2-D latent manifolds of Frey Face and MNIST.

A ``vae`` + ``encoder`` pair with a two-dimensional latent space is trained on each data set (the
paper's networks: one hidden tanh layer, 500 units with a Bernoulli decoder on dynamically binarised
MNIST, 200 units with the sigmoid-mean Gaussian decoder on Frey Face). Linearly spaced points of the
unit square, u = (i + 1/2) / n, are mapped through the inverse Gaussian CDF to codes z, and the
decoder's mean f(z) (Bernoulli probabilities / Gaussian means) is drawn for each: neighbouring codes
decode to similar images, and for Frey Face the two axes pick out pose and expression.

Metrics: the final train/test ELBO of each model (nats per image) and the figure paths.

Configurations: default, MNIST 20 epochs and Frey Face 500 epochs with Adam (lr 1e-3), batch 100:
about 4-6 minutes on one CPU core of the development machine. Longer training sharpens the
manifolds (``--set mnist.vae.fit.epochs=100``). ``--smoke``: a few hundred images, 1 epoch
(seconds; the figures show an untrained decoder).

Config: ``datasets`` (the panels, in order) and one section per data set, ``frey`` and ``mnist``,
with ``data`` (binarization, num_train, num_test), ``vae`` (the pair: ``model_cfg`` with
``z_dim=2``, ``guide_cfg``, ``fit``) and ``grid`` (codes per side), e.g.
``--set mnist.grid=30 --set 'datasets=["mnist"]'``.

Run: ``OMP_NUM_THREADS=1 python -m experiments run kingma-fig4 [--smoke]``
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from experiments.harness.plotting import new_figure, save_figure
from experiments.harness.spec import ConfigError, RunContext
from experiments.harness.vae import (
    KingmaDataset,
    KingmaSet,
    image_grid,
    kingma_data,
    kingma_images,
    kingma_pair,
    latent_grid,
    train_vae,
)

from .registry import register_experiment

log = logging.getLogger(__name__)

TITLES = {"mnist": "MNIST", "frey": "Frey Face"}


@dataclass
class Manifold(KingmaSet):
    """One panel: the data set, its VAE (``vae.model_cfg.z_dim`` must be 2) and the decoded
    ``grid`` x ``grid`` codes."""

    grid: int = 20


@dataclass
class Config:
    datasets: list[KingmaDataset] = field(default_factory=lambda: ["frey", "mnist"])
    frey: Manifold = field(default_factory=lambda: Manifold(
        kingma_images("frey"), kingma_pair("frey", epochs=500, eval_every=50, z_dim=2)))
    mnist: Manifold = field(default_factory=lambda: Manifold(
        kingma_images("mnist"), kingma_pair("mnist", epochs=20, eval_every=5, z_dim=2)))

    def validate(self):
        if not self.datasets or len(set(self.datasets)) != len(self.datasets):
            raise ConfigError(f"datasets={self.datasets!r} is invalid: expected distinct names "
                              "from 'frey', 'mnist'")
        for ds in self.datasets:
            panel: Manifold = getattr(self, ds)
            panel.check(ds, ds)
            z_dim = panel.vae.model_cfg.get("z_dim")
            if z_dim != 2:
                raise ConfigError(f"{ds}.vae.model_cfg.z_dim={z_dim!r} is invalid: kingma-fig4 "
                                  "draws a 2-D latent manifold; use 2")
            if panel.grid < 1:
                raise ConfigError(f"{ds}.grid={panel.grid!r} is invalid: expected an integer >= 1")


def get_config(smoke: bool = False) -> Config:
    cfg = Config()
    if smoke:
        cfg.mnist.data.num_train, cfg.mnist.data.num_test = 300, 100
        cfg.frey.data.num_train, cfg.frey.data.num_test = 300, 50
        for panel in (cfg.mnist, cfg.frey):
            panel.grid = 6
            panel.vae.model_cfg["hidden"] = [32]
            panel.vae.fit.epochs, panel.vae.fit.eval_every = 1, 1
    return cfg


@register_experiment(
    "kingma-fig4", paper="Kingma & Welling 2014 (Auto-Encoding Variational Bayes)", figure="Fig. 4",
    data=("mnist", "frey_face"), get_config=get_config,
    paper_numbers={"figure": "2-D latent manifolds (qualitative)"})
def run(config: Config, ctx: RunContext) -> dict:
    metrics: dict = {}
    datasets = list(config.datasets)
    fig, axes = new_figure(ncols=len(datasets), width=5.0, height=5.0, squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        panel: Manifold = getattr(config, ds)
        data = kingma_data(ds, panel.data, data_dir=ctx.data_dir, seed=ctx.seed)
        model, guide, state = train_vae(panel.vae, data, ctx, ds, num_test_eval=None)
        n = panel.grid
        z = latent_grid(n).to(model.z_loc.device)
        images = model.decode(z).cpu()  # (n*n, H, W)
        ax.imshow(image_grid(images, n).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_axis_off()
        last = state.history[-1]
        ax.set_title(f"{TITLES[ds]}: test ELBO {last['val_test_elbo']:.1f}")
        metrics[f"final_train_elbo_{ds}"] = last["val_train_elbo"]
        metrics[f"final_test_elbo_{ds}"] = last["val_test_elbo"]
        metrics[f"epochs_{ds}"] = state.epoch
    metrics["figure"] = [str(p) for p in save_figure(fig, ctx.path("kingma_fig4"))]
    return metrics


if __name__ == "__main__":
    from .__main__ import main

    raise SystemExit(main(["run", "kingma-fig4"]))

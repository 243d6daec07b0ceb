"""Kingma & Welling (2014), Figure 5: random samples from learned generative models with 2-, 5-, 10-
and 20-dimensional latent spaces (the paper shows MNIST; we add Frey Face as a second row).

For each latent size a ``vae`` + ``encoder`` pair with the paper's networks is trained (as in
``kingma-fig2``), then codes are drawn from the prior, z ~ N(0, I), and the decoder mean f(z) is
shown (Bernoulli probabilities for MNIST, Gaussian means for Frey Face), as in the paper. With
more latent dimensions the samples get sharper and more varied.

Metrics: final train/test ELBO per data set and latent size.

Configurations: default, MNIST 10 epochs and Frey Face 300 epochs per latent size, Adam lr 1e-3,
batch 100: about 8-12 minutes on one CPU core of the development machine. ``--smoke``: two latent
sizes on a few hundred images, 1 epoch (seconds).

Config: ``latent_sizes``, ``datasets``, ``num_samples``, and one section per data set, ``mnist``
and ``frey``, with ``data`` (binarization, num_train, num_test) and ``vae`` (the pair; ``z_dim``
comes from ``latent_sizes``), e.g. ``--set frey.vae.fit.epochs=1000 --set 'datasets=["mnist"]'``.

Run: ``OMP_NUM_THREADS=1 python -m experiments run kingma-fig5 [--smoke]``
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from experiments.harness.plotting import new_figure, save_figure
from experiments.harness.spec import ConfigError, RunContext
from experiments.harness.vae import (
    KingmaDataset,
    KingmaSet,
    image_grid,
    kingma_data,
    kingma_images,
    kingma_pair,
    train_vae,
)

from .registry import register_experiment

log = logging.getLogger(__name__)

TITLES = {"mnist": "MNIST", "frey": "Frey Face"}


@dataclass
class Config:
    latent_sizes: list[int] = field(default_factory=lambda: [2, 5, 10, 20])
    datasets: list[KingmaDataset] = field(default_factory=lambda: ["mnist", "frey"])
    num_samples: int = 100
    #: each data set's images and VAE (``z_dim`` comes from ``latent_sizes``)
    mnist: KingmaSet = field(default_factory=lambda: KingmaSet(
        kingma_images("mnist"), kingma_pair("mnist", epochs=10, eval_every=5)))
    frey: KingmaSet = field(default_factory=lambda: KingmaSet(
        kingma_images("frey"), kingma_pair("frey", epochs=300, eval_every=50)))

    def validate(self):
        sizes = self.latent_sizes
        if not sizes or min(sizes) < 1 or len(set(sizes)) != len(sizes):
            raise ConfigError(f"latent_sizes={sizes!r} is invalid: expected a non-empty list of "
                              "distinct integers >= 1")
        if not self.datasets or len(set(self.datasets)) != len(self.datasets):
            raise ConfigError(f"datasets={self.datasets!r} is invalid: expected distinct names "
                              "from 'mnist', 'frey'")
        if self.num_samples < 1:
            raise ConfigError(f"num_samples={self.num_samples!r} is invalid: expected an integer "
                              ">= 1")
        for ds in self.datasets:
            getattr(self, ds).check(ds, ds, provided=("image_shape", "z_dim"))


def get_config(smoke: bool = False) -> Config:
    cfg = Config()
    if smoke:
        cfg.latent_sizes = [2, 5]
        cfg.num_samples = 16
        cfg.mnist.data.num_train, cfg.mnist.data.num_test = 300, 100
        cfg.frey.data.num_train, cfg.frey.data.num_test = 300, 50
        for section in (cfg.mnist, cfg.frey):
            section.vae.model_cfg["hidden"] = [32]
            section.vae.fit.epochs, section.vae.fit.eval_every = 1, 1
    return cfg


@register_experiment(
    "kingma-fig5", paper="Kingma & Welling 2014 (Auto-Encoding Variational Bayes)", figure="Fig. 5",
    data=("mnist", "frey_face"), get_config=get_config,
    paper_numbers={"figure": "samples sharpen with the latent size (qualitative)"})
def run(config: Config, ctx: RunContext) -> dict:
    sizes = list(config.latent_sizes)
    datasets = list(config.datasets)
    num = config.num_samples
    nrow = max(1, int(round(num ** 0.5)))
    metrics: dict = {}
    fig, axes = new_figure(ncols=len(sizes), nrows=len(datasets), width=3.2, height=3.4,
                           squeeze=False)
    for row, ds in zip(axes, datasets):
        section: KingmaSet = getattr(config, ds)
        data = kingma_data(ds, section.data, data_dir=ctx.data_dir, seed=ctx.seed)
        for ax, z_dim in zip(row, sizes):
            log.info("%s, z_dim=%d", ds, z_dim)
            model, guide, state = train_vae(section.vae, data, ctx, f"{ds}_z{z_dim}",
                                            num_test_eval=None, model_args={"z_dim": z_dim})
            images = model.sample(num, generator=torch.Generator().manual_seed(ctx.seed)).cpu()
            ax.imshow(image_grid(images, nrow).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_axis_off()
            ax.set_title(f"{TITLES[ds]}, {z_dim}-D latent space", fontsize=9)
            last = state.history[-1]
            metrics[f"final_train_elbo_{ds}_z{z_dim}"] = last["val_train_elbo"]
            metrics[f"final_test_elbo_{ds}_z{z_dim}"] = last["val_test_elbo"]
    metrics["figure"] = [str(p) for p in save_figure(fig, ctx.path("kingma_fig5"))]
    return metrics


if __name__ == "__main__":
    from .__main__ import main

    raise SystemExit(main(["run", "kingma-fig5"]))

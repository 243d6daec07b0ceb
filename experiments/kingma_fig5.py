"""Kingma & Welling (2014), Figure 5: random samples from learned generative models with 2-, 5-, 10-
and 20-dimensional latent spaces (the paper shows MNIST; we add Frey Face as a second row).

For each latent size a ``vae`` + ``encoder`` pair with the paper's networks is trained (as in
``kingma-fig2``), then codes are drawn from the prior, z ~ N(0, I), and the decoder mean f(z) is
shown (Bernoulli probabilities for MNIST, Gaussian means for Frey Face), as in the paper. With
more latent dimensions the samples get sharper and more varied.

Metrics: final train/test ELBO per data set and latent size.

Configurations: default, MNIST 10 epochs and Frey Face 300 epochs per latent size, Adam lr 1e-3,
batch 100: about 8-12 minutes on one CPU core of the development machine. ``--smoke``: two latent
sizes on a few hundred images, 2 epochs (seconds).

Run: ``OMP_NUM_THREADS=1 python -m experiments run kingma-fig5 [--smoke]``
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from .common.plotting import new_figure, save_figure
from .common.vae import KINGMA_DATA, KINGMA_MODELS, image_grid, kingma_data, train_vae
from .registry import register_experiment

log = logging.getLogger(__name__)

TITLES = {"mnist": "MNIST", "frey": "Frey Face"}


def get_config(smoke: bool = False) -> dict:
    cfg = {
        "seed": 0,
        "latent_sizes": [2, 5, 10, 20],
        "datasets": ["mnist", "frey"],
        "num_samples": 100,
        "data_mnist": dict(KINGMA_DATA["mnist"]),
        "data_frey": dict(KINGMA_DATA["frey"]),
        "model_mnist": dict(KINGMA_MODELS["mnist"]),
        "model_frey": dict(KINGMA_MODELS["frey"]),
        "guide": "encoder",
        "fit_mnist": {"epochs": 10, "batch_size": 100, "lr": 1e-3, "elbo": "meanfield",
                      "eval_every": 5},
        "fit_frey": {"epochs": 300, "batch_size": 100, "lr": 1e-3, "elbo": "meanfield",
                     "eval_every": 50},
    }
    if smoke:
        cfg["latent_sizes"] = [2, 5]
        cfg["num_samples"] = 16
        cfg["data_mnist"].update(num_train=300, num_test=100)
        cfg["data_frey"].update(num_train=300, num_test=50)
        for ds in ("mnist", "frey"):
            cfg[f"model_{ds}"]["hidden"] = [32]
            cfg[f"fit_{ds}"].update(epochs=1, eval_every=1)
    return cfg


@register_experiment(
    "kingma-fig5", paper="Kingma & Welling 2014 (Auto-Encoding Variational Bayes)", figure="Fig. 5",
    data=("mnist", "frey_face"), get_config=get_config,
    paper_numbers={"figure": "samples sharpen with the latent size (qualitative)"})
def run(config: dict, out_dir: Path, device: str = "auto", data_dir=None) -> dict:
    seed = int(config["seed"])
    sizes = list(config["latent_sizes"])
    datasets = list(config["datasets"])
    num = int(config["num_samples"])
    nrow = max(1, int(round(num ** 0.5)))
    metrics: dict = {}
    fig, axes = new_figure(ncols=len(sizes), nrows=len(datasets), width=3.2, height=3.4, squeeze=False)
    for row, ds in zip(axes, datasets):
        data = kingma_data(ds, config[f"data_{ds}"], data_dir=data_dir, seed=seed)
        for ax, z_dim in zip(row, sizes):
            log.info("%s, z_dim=%d", ds, z_dim)
            model, guide, state = train_vae(
                data, {**config[f"model_{ds}"], "z_dim": z_dim}, config["guide"], {},
                config[f"fit_{ds}"], out_dir=out_dir / f"{ds}_z{z_dim}", device=device, seed=seed,
                num_test_eval=None)
            images = model.sample(num, generator=torch.Generator().manual_seed(seed)).cpu()
            ax.imshow(image_grid(images, nrow).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_axis_off()
            ax.set_title(f"{TITLES[ds]}, {z_dim}-D latent space", fontsize=9)
            last = state.history[-1]
            metrics[f"final_train_elbo_{ds}_z{z_dim}"] = last["val_train_elbo"]
            metrics[f"final_test_elbo_{ds}_z{z_dim}"] = last["val_test_elbo"]
    metrics["figure"] = [str(p) for p in save_figure(fig, out_dir / "kingma_fig5")]
    return metrics


if __name__ == "__main__":
    from .__main__ import main

    raise SystemExit(main(["run", "kingma-fig5"]))

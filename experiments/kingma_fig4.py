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
manifolds (``--set fit_mnist.epochs=100``). ``--smoke``: a few hundred images, 1 epoch (seconds;
the figures show an untrained decoder).

Run: ``OMP_NUM_THREADS=1 python -m experiments run kingma-fig4 [--smoke]``
"""

from __future__ import annotations

import logging
from pathlib import Path

from .common.plotting import new_figure, save_figure
from .common.vae import KINGMA_DATA, KINGMA_MODELS, image_grid, kingma_data, latent_grid, train_vae
from .registry import register_experiment

log = logging.getLogger(__name__)

TITLES = {"mnist": "MNIST", "frey": "Frey Face"}


def get_config(smoke: bool = False) -> dict:
    cfg = {
        "seed": 0,
        "datasets": ["frey", "mnist"],
        "grid": {"frey": 20, "mnist": 20},
        "data_mnist": dict(KINGMA_DATA["mnist"]),
        "data_frey": dict(KINGMA_DATA["frey"]),
        "model_mnist": {**KINGMA_MODELS["mnist"], "z_dim": 2},
        "model_frey": {**KINGMA_MODELS["frey"], "z_dim": 2},
        "guide": "encoder",
        "fit_mnist": {"epochs": 20, "batch_size": 100, "lr": 1e-3, "elbo": "meanfield",
                      "eval_every": 5},
        "fit_frey": {"epochs": 500, "batch_size": 100, "lr": 1e-3, "elbo": "meanfield",
                     "eval_every": 50},
    }
    if smoke:
        cfg["grid"] = {"frey": 6, "mnist": 6}
        cfg["data_mnist"].update(num_train=300, num_test=100)
        cfg["data_frey"].update(num_train=300, num_test=50)
        for ds in ("mnist", "frey"):
            cfg[f"model_{ds}"]["hidden"] = [32]
            cfg[f"fit_{ds}"].update(epochs=1, eval_every=1)
    return cfg


@register_experiment(
    "kingma-fig4", paper="Kingma & Welling 2014 (Auto-Encoding Variational Bayes)", figure="Fig. 4",
    data=("mnist", "frey_face"), get_config=get_config,
    paper_numbers={"figure": "2-D latent manifolds (qualitative)"})
def run(config: dict, out_dir: Path, device: str = "auto", data_dir=None) -> dict:
    seed = int(config["seed"])
    metrics: dict = {}
    datasets = list(config["datasets"])
    fig, axes = new_figure(ncols=len(datasets), width=5.0, height=5.0, squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        data = kingma_data(ds, config[f"data_{ds}"], data_dir=data_dir, seed=seed)
        model_cfg = config[f"model_{ds}"]
        if model_cfg["z_dim"] != 2:
            raise ValueError(f"kingma-fig4 draws a 2-D latent manifold: model_{ds}.z_dim must be 2")
        model, guide, state = train_vae(data, model_cfg, config["guide"], {}, config[f"fit_{ds}"],
                                        out_dir=out_dir / ds, device=device, seed=seed,
                                        num_test_eval=None)
        n = int(config["grid"][ds])
        z = latent_grid(n).to(model.z_loc.device)
        images = model.decode(z).cpu()  # (n*n, H, W)
        ax.imshow(image_grid(images, n).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_axis_off()
        last = state.history[-1]
        ax.set_title(f"{TITLES[ds]}: test ELBO {last['val_test_elbo']:.1f}")
        metrics[f"final_train_elbo_{ds}"] = last["val_train_elbo"]
        metrics[f"final_test_elbo_{ds}"] = last["val_test_elbo"]
        metrics[f"epochs_{ds}"] = state.epoch
    metrics["figure"] = [str(p) for p in save_figure(fig, out_dir / "kingma_fig4")]
    return metrics


if __name__ == "__main__":
    from .__main__ import main

    raise SystemExit(main(["run", "kingma-fig4"]))

"""Kingma & Welling (2014), Figure 2: the lower bound per datapoint against the number of training
samples evaluated, train and test, for several latent sizes (MNIST {3, 5, 10, 20, 200}, Frey Face
{2, 5, 10, 20}).

Pair: ``vae`` + ``encoder`` with the paper's networks (one hidden tanh layer of 500 units for MNIST
with a Bernoulli decoder on dynamically binarised digits, 200 for Frey Face with a Gaussian decoder
whose mean is a sigmoid and whose variance comes from the network), one sample per datapoint,
minibatch 100, closed-form KL. The paper used Adagrad (step size from {0.01, 0.02, 0.1}) and a
small weight decay; we use Adam (lr 1e-3), which gets there in fewer samples
(``--set fit_mnist.optimizer=adagrad --set fit_mnist.lr=0.02`` for the paper's optimiser). The bound
is evaluated each ``eval_every`` epochs on 1000 fixed training images and the test images
(MNIST: the first 1000 of the test set; Frey: a held-out random 200 of the 1965 images).

Expected: bounds rise with the number of samples and, for MNIST, end around -100 to -110 (paper,
10^8 samples); larger latent spaces do not overfit (the KL term prunes unused dimensions); Frey's
test bound falls behind its training bound (1765 training images).

Configurations (times: the 2-core CPU development machine, one torch thread, shared)
- default ("quick"): every latent size, MNIST 10 epochs (6 x 10^5 samples) and Frey 300 epochs
  (5.3 x 10^5 samples): about 10-15 minutes on CPU.
- full (the paper's 10^8 samples for MNIST, 10^7 for Frey):
  ``--set fit_mnist.epochs=1667 --set fit_frey.epochs=5700 --set fit_mnist.eval_every=50
  --set fit_frey.eval_every=100``: about 3-4 h per MNIST latent size on one CPU core (~18 h in all);
  on a GPU, where the 784-500-z step is launch-bound (~1.5 ms), about 1-2 h in all (estimated, not
  run here: no GPU on the development machine).
- ``--smoke``: MNIST z=3 and Frey z=2 on a few hundred images, 2 epochs (seconds).

Run: ``OMP_NUM_THREADS=1 python -m experiments run kingma-fig2 [--smoke]``
"""

from __future__ import annotations

import logging
from pathlib import Path

from matplotlib.ticker import NullFormatter

from .common.plotting import new_figure, save_figure
from .common.vae import KINGMA_DATA, KINGMA_MODELS, kingma_data, train_vae
from .registry import register_experiment

log = logging.getLogger(__name__)


def get_config(smoke: bool = False) -> dict:
    cfg = {
        "seed": 0,
        "latent_sizes": {"mnist": [3, 5, 10, 20, 200], "frey": [2, 5, 10, 20]},
        "data_mnist": dict(KINGMA_DATA["mnist"]),
        "data_frey": dict(KINGMA_DATA["frey"]),
        "model_mnist": dict(KINGMA_MODELS["mnist"]),
        "model_frey": dict(KINGMA_MODELS["frey"]),
        "guide": "encoder",
        "fit_mnist": {"epochs": 10, "batch_size": 100, "lr": 1e-3, "elbo": "meanfield",
                      "eval_every": 1},
        "fit_frey": {"epochs": 300, "batch_size": 100, "lr": 1e-3, "elbo": "meanfield",
                     "eval_every": 10},
    }
    if smoke:
        cfg["latent_sizes"] = {"mnist": [3], "frey": [2]}
        cfg["data_mnist"].update(num_train=300, num_test=100)
        cfg["data_frey"].update(num_train=300, num_test=50)
        cfg["model_mnist"]["hidden"] = [32]
        cfg["model_frey"]["hidden"] = [32]
        cfg["fit_mnist"]["epochs"] = 2
        cfg["fit_frey"].update(epochs=2, eval_every=1)
    return cfg


@register_experiment(
    "kingma-fig2", paper="Kingma & Welling 2014 (Auto-Encoding Variational Bayes)", figure="Fig. 2",
    data=("mnist", "frey_face"), get_config=get_config,
    paper_numbers={"final_test_elbo_mnist_z20": "about -100 to -110 after 10^8 samples"})
def run(config: dict, out_dir: Path, device: str = "auto", data_dir=None) -> dict:
    seed = int(config["seed"])
    metrics: dict = {}
    datasets = [d for d in ("mnist", "frey") if config["latent_sizes"].get(d)]
    fig, axes = new_figure(ncols=len(datasets), width=5.0, height=3.8, squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        data = kingma_data(ds, config[f"data_{ds}"], data_dir=data_dir, seed=seed)
        sizes = config["latent_sizes"][ds]
        for i, z_dim in enumerate(sizes):
            log.info("%s, z_dim=%d", ds, z_dim)
            model, guide, state = train_vae(
                data, {**config[f"model_{ds}"], "z_dim": z_dim}, config["guide"], {},
                config[f"fit_{ds}"], out_dir=out_dir / f"{ds}_z{z_dim}", device=device, seed=seed,
                num_test_eval=None)
            rows = [r for r in state.history if "val_test_elbo" in r]
            seen = [r["epoch"] * data.num_train for r in rows]
            color = f"C{i}"
            ax.plot(seen, [r["val_train_elbo"] for r in rows], color=color, label=f"$N_z$={z_dim} train")
            ax.plot(seen, [r["val_test_elbo"] for r in rows], color=color, ls="--",
                    label=f"$N_z$={z_dim} test")
            metrics[f"final_train_elbo_{ds}_z{z_dim}"] = rows[-1]["val_train_elbo"]
            metrics[f"final_test_elbo_{ds}_z{z_dim}"] = rows[-1]["val_test_elbo"]
            metrics[f"samples_seen_{ds}_z{z_dim}"] = seen[-1]
            metrics[f"train_seconds_{ds}_z{z_dim}"] = sum(r["seconds"] for r in state.history)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap on short ranges
        ax.set_xlabel("# training samples evaluated")
        ax.set_ylabel("lower bound per datapoint (nats)")
        ax.set_title({"mnist": "MNIST", "frey": "Frey Face"}[ds])
        ax.legend(fontsize=6, ncol=2)
    metrics["figure"] = [str(p) for p in save_figure(fig, out_dir / "kingma_fig2")]
    return metrics


if __name__ == "__main__":
    from .__main__ import main

    raise SystemExit(main(["run", "kingma-fig2"]))

"""Kingma & Welling (2014), Figure 2: the lower bound per datapoint against the number of training
samples evaluated, train and test, for several latent sizes (MNIST {3, 5, 10, 20, 200}, Frey Face
{2, 5, 10, 20}).

Pair: ``vae`` + ``encoder`` with the paper's networks (one hidden tanh layer of 500 units for MNIST
with a Bernoulli decoder on dynamically binarised digits, 200 for Frey Face with a Gaussian decoder
whose mean is a sigmoid and whose variance comes from the network), one sample per datapoint,
minibatch 100, closed-form KL. The paper used Adagrad (step size from {0.01, 0.02, 0.1}) and a
small weight decay; we use Adam (lr 1e-3), which gets there in fewer samples
(``--set mnist.vae.fit.optimizer=adagrad --set mnist.vae.fit.lr=0.02`` for the paper's
optimiser). The bound is evaluated each ``eval_every`` epochs on 1000 fixed training images and
the test images (MNIST: the first 1000 of the test set; Frey: a held-out random 200 of the 1965
images).

Config: one section per data set, ``mnist`` and ``frey``, each with ``data`` (binarization,
num_train, num_test), ``vae`` (the pair: ``model_cfg``, ``guide_cfg``, ``fit``; ``z_dim`` comes
from ``latent_sizes``) and ``latent_sizes`` (``--set frey.latent_sizes=[]`` leaves Frey out).

Expected: bounds rise with the number of samples and, for MNIST, end around -100 to -110 (paper,
10^8 samples); larger latent spaces do not overfit (the KL term prunes unused dimensions); Frey's
test bound falls behind its training bound (1765 training images).

Configurations (times: the 2-core CPU development machine, one torch thread, shared)
- default ("quick"): every latent size, MNIST 10 epochs (6 x 10^5 samples) and Frey 300 epochs
  (5.3 x 10^5 samples): about 10-15 minutes on CPU.
- full (the paper's 10^8 samples for MNIST, 10^7 for Frey):
  ``--set mnist.vae.fit.epochs=1667 --set frey.vae.fit.epochs=5700
  --set mnist.vae.fit.eval_every=50 --set frey.vae.fit.eval_every=100``: about 3-4 h per MNIST
  latent size on one CPU core (~18 h in all); on a GPU, where the 784-500-z step is launch-bound
  (~1.5 ms), about 1-2 h in all (estimated, not run here: no GPU on the development machine).
- ``--smoke``: MNIST z=3 and Frey z=2 on a few hundred images, 2 epochs (seconds).

Run: ``OMP_NUM_THREADS=1 python -m experiments run kingma-fig2 [--smoke]``
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from experiments.harness import vae as V
from experiments.harness.plotting import log_ticks, new_figure, plot_curve, save_figure
from experiments.harness.spec import ConfigError, RunContext

from .registry import register_experiment

log = logging.getLogger(__name__)


@dataclass
class Panel(V.KingmaSet):
    """One panel: the data set, its VAE (``z_dim`` comes from ``latent_sizes``) and the latent
    sizes swept, one VAE each (an empty list leaves the panel out)."""

    latent_sizes: list[int] = field(default_factory=list)


@dataclass
class Config:
    mnist: Panel = field(default_factory=lambda: Panel(
        V.kingma_images("mnist"), V.kingma_pair("mnist", epochs=10, eval_every=1),
        latent_sizes=[3, 5, 10, 20, 200]))
    frey: Panel = field(default_factory=lambda: Panel(
        V.kingma_images("frey"), V.kingma_pair("frey", epochs=300, eval_every=10),
        latent_sizes=[2, 5, 10, 20]))

    def validate(self):
        for ds in V.KINGMA_DATASETS:
            panel: Panel = getattr(self, ds)
            panel.check(ds, ds, provided=("image_shape", "z_dim"))
            sizes = panel.latent_sizes
            if any(z < 1 for z in sizes) or len(set(sizes)) != len(sizes):
                raise ConfigError(f"{ds}.latent_sizes={sizes!r} is invalid: expected distinct "
                                  "integers >= 1 (an empty list leaves the panel out)")
        if not any(getattr(self, ds).latent_sizes for ds in V.KINGMA_DATASETS):
            raise ConfigError("mnist.latent_sizes and frey.latent_sizes are both empty: nothing "
                              "to train")


def get_config(smoke: bool = False) -> Config:
    cfg = Config()
    if smoke:
        cfg.mnist.latent_sizes, cfg.frey.latent_sizes = [3], [2]
        cfg.mnist.data.num_train, cfg.mnist.data.num_test = 300, 100
        cfg.frey.data.num_train, cfg.frey.data.num_test = 300, 50
        for panel in (cfg.mnist, cfg.frey):
            panel.vae.model_cfg["hidden"] = [32]
            panel.vae.fit.epochs = 2
        cfg.frey.vae.fit.eval_every = 1
    return cfg


@register_experiment(
    "kingma-fig2", paper="Kingma & Welling 2014 (Auto-Encoding Variational Bayes)", figure="Fig. 2",
    data=("mnist", "frey_face"), get_config=get_config,
    paper_numbers={"final_test_elbo_mnist_z20": "about -100 to -110 after 10^8 samples"})
def run(config: Config, ctx: RunContext) -> dict:
    metrics: dict = {}
    datasets = [ds for ds in V.KINGMA_DATASETS if getattr(config, ds).latent_sizes]
    fig, axes = new_figure(ncols=len(datasets), width=5.0, height=3.8, squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        panel: Panel = getattr(config, ds)
        data = V.kingma_data(ds, panel.data, data_dir=ctx.data_dir, seed=ctx.seed)
        for i, z_dim in enumerate(panel.latent_sizes):
            log.info("%s, z_dim=%d", ds, z_dim)
            model, guide, state = V.train_vae(panel.vae, data, ctx, f"{ds}_z{z_dim}",
                                            num_test_eval=None, model_args={"z_dim": z_dim})
            rows = [r for r in state.history if "val_test_elbo" in r]
            seen = [r["epoch"] * data.num_train for r in rows]
            color = f"C{i}"
            plot_curve(ax, seen, [r["val_train_elbo"] for r in rows], color=color,
                       label=f"$N_z$={z_dim} train")
            plot_curve(ax, seen, [r["val_test_elbo"] for r in rows], color=color, ls="--",
                       label=f"$N_z$={z_dim} test")
            metrics[f"final_train_elbo_{ds}_z{z_dim}"] = rows[-1]["val_train_elbo"]
            metrics[f"final_test_elbo_{ds}_z{z_dim}"] = rows[-1]["val_test_elbo"]
            metrics[f"samples_seen_{ds}_z{z_dim}"] = seen[-1]
            metrics[f"train_seconds_{ds}_z{z_dim}"] = sum(r["seconds"] for r in state.history)
        ax.set_xscale("log")
        log_ticks(ax, "x")  # labels on short ranges too, without overlapping minor labels
        ax.set_xlabel("# training samples evaluated")
        ax.set_ylabel("lower bound per datapoint (nats)")
        ax.set_title({"mnist": "MNIST", "frey": "Frey Face"}[ds])
        ax.legend(fontsize=6, ncol=2)
    metrics["figure"] = [str(p) for p in save_figure(fig, ctx.path("kingma_fig2"))]
    return metrics


if __name__ == "__main__":
    from .__main__ import main

    raise SystemExit(main(["run", "kingma-fig2"]))

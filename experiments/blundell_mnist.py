r"""Blundell et al. (2015), Table 1 and Figures 2 and 3: MNIST with Bayes by Backprop (BbB).

Protocol (paper, §5.1): MNIST, the 60k training images split into 50k train / 10k validation (we
take the *last* 10k as validation), pixels divided by 126, no augmentation; two hidden ReLU layers of
400 / 800 / 1200 units; minibatch 128; model selection on the validation error (the epoch with
the lowest validation error is kept) and its test error reported. Arms:

* ``bbb-mixture``: ``bnn`` + ``mean-field``, scale-mixture prior
  :math:`p(w) = \pi\mathcal N(0, \sigma_1^2) + (1-\pi)\mathcal N(0, \sigma_2^2)`;
* ``bbb-mixture-blundell``: the same with the KL of minibatch *i* (of M) weighted by
  :math:`\pi_i = 2^{M-i}/(2^M-1)` instead of :math:`1/M` (paper §3.4); run at
  ``blundell_schedule_widths`` only (400 units by default);
* ``bbb-gaussian``: BbB with a Gaussian prior :math:`\mathcal N(0, \sigma^2)`;
* ``dropout``: the ``mlp`` with dropout on the hidden units, predicting with the weight-scaled net
  (dropout off, Srivastava et al. 2014);
* ``sgd``: the same ``mlp`` without dropout or any regulariser (the paper's "SGD" row).

Grid point used (from the paper's grid): scale mixture :math:`\pi = 1/2`,
:math:`-\log\sigma_1 = 0`, :math:`-\log\sigma_2 = 6`; Gaussian prior :math:`\sigma = e^{-1}`
(the paper does not state its Gaussian :math:`\sigma`; this is our choice from the
:math:`\sigma_1` grid); 1 sample per step with local reparameterisation (Kingma et al. 2015: the
same ELBO, lower-variance gradients; the paper sampled weights); learning rate :math:`10^{-3}`.
**Deviation:** all arms use Adam with a cosine learning-rate decay, not plain SGD: :func:`fit`
minimises the full-data estimate (the minibatch log-likelihood is scaled by N/B), so an SGD step
size would have to be rescaled by B/N, and Adam is invariant to that scale; with a few dozen epochs
on a CPU, Adam is the difference between a result and none. The KL of the Gaussian prior is in
closed form (``elbo="meanfield"``); the scale mixture's is a one-sample Monte Carlo estimate.

Prediction: BbB test error is reported both with the posterior-mean weights (``test_error_*``,
also what the validation selection and the per-epoch curves use) and with the Monte Carlo
predictive :math:`\frac1S\sum_s p(y\mid x, w_s)`, :math:`w_s \sim q` (``test_error_mc_*``).

Paper (Table 1, test error, 400 / 800 / 1200 units): SGD 1.83 / 1.84 / 1.88 %; dropout
1.51 / 1.33 / 1.36 %; BbB Gaussian 1.82 / 1.99 / 2.04 %; BbB scale mixture 1.36 / 1.34 / 1.32 %
(after about 600 epochs). Figure 2: test error against epochs (BbB, dropout, SGD). Figure 3:
histograms of the trained weights (BbB's are wider, its many small weights prunable, Table 2).

Configurations and cost (one thread of a shared 2-core CPU, torch 2.13; one epoch of 50k images,
784-400-400-10: BbB scale mixture about 18 s, BbB Gaussian about 6 s (11 s before the mean-field
ELBO and skipped-draw speed-ups), plain / dropout net about 2.5 s; 784-1200-1200-10 BbB scale
mixture 85 s, measured with ``--set 'widths=[1200]' --set epochs=1 --set 'arms=["bbb-mixture"]'``):

* quick (default): widths 2x400 only, 30 epochs for every arm, all five arms: about 27 min of one
  core. Results, with the number of epochs, are in the README.
* full (GPU): ``--set widths=[400,800,1200] --set epochs=600`` — every arm at every width, 600
  epochs, as in the paper; not run here. On a current GPU an epoch of the 1200-unit BbB net is a few
  seconds (391 steps, each dominated by Pyro's per-step Python overhead of a few ms, not by the
  matrix products), so the full grid is roughly 13 runs x 600 epochs x ~3-5 s = 7-11 h. On one
  CPU core: about 260 s per epoch summed over the 13 runs (the measured epochs above, the 800-unit
  and other untimed ones scaled by their weight count), x 600 epochs = about 44 core-hours.
* smoke: 500 training images, one epoch, 16 units.

Run: ``python -m experiments run blundell-mnist [--smoke] [--set arms=["bbb-mixture"]]``; each
arm's best-validation state is written to ``<run>/<arm>-<width>/best.pt`` (the input of
``blundell-pruning``'s ``checkpoint``).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from pathlib import Path

import torch

import guides
import models
from models.base import module_device

from .common import data as zoo_data
from .common.plotting import new_figure, save_figure
from .common.training import fit, resolve_device
from .registry import register_experiment

log = logging.getLogger(__name__)

ARMS = ("bbb-mixture", "bbb-mixture-blundell", "bbb-gaussian", "dropout", "sgd")
PAPER_TABLE1 = {  # test error in %, widths 400 / 800 / 1200
    "sgd": (1.83, 1.84, 1.88), "dropout": (1.51, 1.33, 1.36),
    "bbb-gaussian": (1.82, 1.99, 2.04), "bbb-mixture": (1.36, 1.34, 1.32),
}


def get_config(smoke: bool = False) -> dict:
    cfg = {
        "seed": 0,
        "data": {"num_train": 50000, "num_val": 10000, "num_test": None, "pixel_divisor": 126.0},
        "widths": [400],
        "depth": 2,
        "epochs": 30,
        "arms": list(ARMS),
        "blundell_schedule_widths": [400],
        "priors": {
            "gaussian": {"kind": "gaussian", "sigma": math.exp(-1.0)},
            "mixture": {"kind": "scale-mixture", "mixture_weight": 0.5, "sigma1": math.exp(0.0),
                        "sigma2": math.exp(-6.0)},
        },
        "guide": {"init_scale": 1e-3, "local_reparam": True},
        "fit_bbb": {"batch_size": 128, "lr": 1e-3, "optimizer": "adam", "elbo": "meanfield",
                    "num_particles": 1, "lr_schedule": "cosine"},
        "dropout": 0.5,
        "fit_mlp": {"batch_size": 128, "lr": 1e-3, "optimizer": "adam", "lr_schedule": "cosine"},
        "predict": {"num_samples": 10},
    }
    if smoke:
        cfg["data"].update(num_train=500, num_val=200, num_test=200)
        cfg["widths"] = [16]
        cfg["blundell_schedule_widths"] = [16]
        cfg["epochs"] = 1
        cfg["predict"]["num_samples"] = 2
    return cfg


def load_split(dcfg: dict, data_dir=None):
    """``(x_train, y_train), (x_val, y_val), (x_test, y_test)``: flat (N, 784) pixels / divisor.

    Validation is the last ``num_val`` of the 60k training images, train the ``num_train`` before.
    """
    n_tr, n_val = int(dcfg["num_train"]), int(dcfg["num_val"])
    if n_tr < 1 or n_val < 1 or n_tr + n_val > 60000:
        raise ValueError(f"need 1 <= num_train, num_val and num_train + num_val <= 60000, got "
                         f"{n_tr} + {n_val}")
    if not dcfg["pixel_divisor"] > 0:
        raise ValueError(f"pixel_divisor must be > 0, got {dcfg['pixel_divisor']!r}")
    scale = 255.0 / float(dcfg["pixel_divisor"])  # load_mnist gives pixel / 255
    x, y = zoo_data.load_mnist("train", data_dir=data_dir)
    x = x.reshape(len(x), -1) * scale  # (60000, 784)
    x_te, y_te = zoo_data.load_mnist("test", data_dir=data_dir)
    x_te = x_te.reshape(len(x_te), -1) * scale
    if dcfg.get("num_test"):
        x_te, y_te = x_te[: int(dcfg["num_test"])], y_te[: int(dcfg["num_test"])]
    train = (x[60000 - n_val - n_tr: 60000 - n_val], y[60000 - n_val - n_tr: 60000 - n_val])
    val = (x[60000 - n_val:], y[60000 - n_val:])
    return train, val, (x_te, y_te)


# -------------------------------------------------------------------------------------------------
# Plain-torch prediction (no Pyro trace: cheap enough to run every epoch)
# -------------------------------------------------------------------------------------------------


def bnn_weights(guide, kind: str = "mean") -> list[torch.Tensor]:
    """The guide's weight matrices ``[W | b]`` (out, in + 1), layer by layer: the means
    (``kind="mean"``) or one draw :math:`w = \\mu + \\sigma\\epsilon` (``kind="sample"``)."""
    names = sorted(guide._sites, key=lambda s: int(s[1:]))
    out = []
    for n in names:
        loc = getattr(guide, f"{n}_loc")
        if kind == "mean":
            out.append(loc)
        elif kind == "sample":
            out.append(loc + getattr(guide, f"{n}_scale") * torch.randn_like(loc))
        else:
            raise ValueError(f"kind must be 'mean' or 'sample', got {kind!r}")
    return out


def mlp_logits(weights: list[torch.Tensor], x: torch.Tensor, chunk: int = 10000) -> torch.Tensor:
    """Logits of a ReLU MLP with layers ``[W | b]`` (out, in + 1): (N, D) -> (N, C)."""
    outs = []
    for start in range(0, len(x), chunk):
        h = x[start:start + chunk]
        for i, w in enumerate(weights):
            h = h @ w[:, :-1].T + w[:, -1]  # (n, out)
            if i < len(weights) - 1:
                h = torch.relu(h)
        outs.append(h)
    return torch.cat(outs)


def linear_weights(model) -> list[torch.Tensor]:
    """The ``mlp``'s layers as ``[W | b]`` matrices (dropout nets predict with these, unmasked)."""
    return [torch.cat([lin.weight, lin.bias.unsqueeze(-1)], -1) for lin in model.layers]


@torch.no_grad()
def error_rate(logits_or_probs: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits_or_probs.argmax(-1) != y.to(logits_or_probs.device)).float().mean())


@torch.no_grad()
def mc_error(guide, x: torch.Tensor, y: torch.Tensor, num_samples: int, seed: int) -> float:
    """Error of the Monte Carlo predictive :math:`\\frac1S\\sum_s \\mathrm{softmax}(f(x; w_s))`."""
    torch.manual_seed(seed)
    probs = 0.0
    for _ in range(num_samples):
        probs = probs + torch.softmax(mlp_logits(bnn_weights(guide, "sample"), x), -1)
    return error_rate(probs, y)


# -------------------------------------------------------------------------------------------------
# One arm
# -------------------------------------------------------------------------------------------------


def build_arm(arm: str, width: int, config: dict, num_data: int | None = None):
    """``(model, guide, fit_config)`` of one arm at one width (hidden layers: ``depth`` x width)."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; choose from {ARMS}")
    widths = [int(width)] * int(config["depth"])
    if arm.startswith("bbb"):
        prior = config["priors"]["gaussian" if arm == "bbb-gaussian" else "mixture"]
        model = models.create_model("bnn", in_features=784, widths=widths, out_features=10,
                                    task="classification", prior=dict(prior), num_data=num_data)
        guide = guides.create_guide("mean-field", model, **config["guide"])
        fcfg = {**config["fit_bbb"],
                "kl_schedule": "blundell" if arm == "bbb-mixture-blundell" else "uniform"}
    else:
        model = models.create_model("mlp", in_features=784, widths=widths, out_features=10,
                                    task="classification", num_data=num_data,
                                    dropout=float(config["dropout"]) if arm == "dropout" else 0.0)
        guide = guides.create_guide("deterministic", model)
        fcfg = dict(config["fit_mlp"])
    return model, guide, {**fcfg, "epochs": int(config["epochs"])}


def _logits(arm, model, guide, x):
    weights = bnn_weights(guide) if arm.startswith("bbb") else linear_weights(model)
    return mlp_logits(weights, x.to(weights[0].device))


def train_arm(arm: str, width: int, config: dict, train, val, test, device: str, out: Path):
    """Fit one arm, keep its best-validation state; returns ``(metrics, model, guide, history)``."""
    seed = int(config["seed"])
    model, guide, fcfg = build_arm(arm, width, config)
    best = {"error": math.inf, "epoch": 0, "calls": 0, "model": None, "guide": None}

    def eval_fn(m, g):  # every epoch (eval_every=1): keep the best-validation state
        best["calls"] += 1
        val_err = error_rate(_logits(arm, m, g, val[0]), val[1])
        test_err = error_rate(_logits(arm, m, g, test[0]), test[1])  # Fig. 2 only, not selection
        if val_err < best["error"]:
            best.update(error=val_err, epoch=best["calls"], model=copy.deepcopy(m.state_dict()),
                        guide=copy.deepcopy(g.state_dict()))
        return {"error": val_err, "test_error": test_err}

    t0 = time.perf_counter()
    state = fit(model, guide, train, {**fcfg, "seed": seed, "device": device, "out_dir": str(out),
                                      "checkpoint": False, "tensorboard": False, "eval_every": 1},
                eval_fn=eval_fn)
    seconds = time.perf_counter() - t0
    model.load_state_dict(best["model"])
    guide.load_state_dict(best["guide"])
    key = f"{arm}_{width}"
    metrics = {f"best_epoch_{key}": best["epoch"], f"val_error_{key}": best["error"],
               f"train_seconds_{key}": seconds,
               f"seconds_per_epoch_{key}": sum(r["seconds"] for r in state.history) / len(
                   state.history)}
    with torch.no_grad():
        metrics[f"test_error_{key}"] = error_rate(_logits(arm, model, guide, test[0]), test[1])
        if arm.startswith("bbb"):
            x_test = test[0].to(module_device(guide))
            metrics[f"test_error_mc_{key}"] = mc_error(guide, x_test, test[1],
                                                       int(config["predict"]["num_samples"]), seed)
    torch.save({"arm": arm, "width": width, "config": config, "model": model.state_dict(),
                "guide": guide.state_dict(), "best_epoch": best["epoch"]}, out / "best.pt")
    return metrics, model, guide, state.history


def _runs(config: dict) -> list[tuple[str, int]]:
    arms = list(config["arms"])
    bad = [a for a in arms if a not in ARMS]
    if bad:
        raise ValueError(f"unknown arms {bad}; choose from {ARMS}")
    if int(config["epochs"]) < 1 or int(config["depth"]) < 1:
        raise ValueError(f"epochs and depth must be >= 1, got {config['epochs']}, {config['depth']}")
    runs = []
    for width in config["widths"]:
        for arm in arms:
            if arm == "bbb-mixture-blundell" and width not in config["blundell_schedule_widths"]:
                continue
            runs.append((arm, int(width)))
    if not runs:
        raise ValueError("nothing to run: check arms, widths and blundell_schedule_widths")
    return runs


@register_experiment(
    "blundell-mnist", paper="Blundell et al. 2015 (Weight Uncertainty in NNs)",
    figure="Table 1, Fig. 2, Fig. 3", data=("mnist",), get_config=get_config,
    paper_numbers={f"test_error_{arm}_{w}": PAPER_TABLE1[arm][i] / 100
                   for arm in PAPER_TABLE1 for i, w in enumerate((400, 800, 1200))})
def run(config: dict, out_dir: Path, device: str = "auto", data_dir=None) -> dict:
    dev = str(resolve_device(device))
    train, val, test = load_split(config["data"], data_dir)
    val, test = tuple(t.to(dev) for t in val), tuple(t.to(dev) for t in test)
    p = config["priors"]["mixture"]
    metrics: dict = {
        "grid_point": (f"pi={p['mixture_weight']:.3g}, -log sigma1={-math.log(p['sigma1']) + 0.0:.3g}, "
                       f"-log sigma2={-math.log(p['sigma2']):.3g}, gaussian sigma="
                       f"{config['priors']['gaussian']['sigma']:.3g}, lr={config['fit_bbb']['lr']}, "
                       f"samples={config['fit_bbb']['num_particles']}, epochs={config['epochs']}"),
    }
    histories, weights = {}, {}
    for arm, width in _runs(config):
        log.info("fitting %s, 2 x %d units", arm, width)
        m, model, guide, hist = train_arm(arm, width, config, train, val, test, dev,
                                          out_dir / f"{arm}-{width}")
        metrics.update(m)
        histories[(arm, width)] = hist
        with torch.no_grad():
            ws = bnn_weights(guide, "sample") if arm.startswith("bbb") else linear_weights(model)
            weights[(arm, width)] = torch.cat([w[:, :-1].reshape(-1) for w in ws]).cpu()
        log.info("%s %d: test error %.4f (best epoch %d)", arm, width,
                 metrics[f"test_error_{arm}_{width}"], metrics[f"best_epoch_{arm}_{width}"])
    metrics["figure"] = _figures(config, histories, weights, out_dir)
    return metrics


_LABELS = {"bbb-mixture": "Bayes by Backprop", "bbb-mixture-blundell": "BbB (π_i KL schedule)",
           "bbb-gaussian": "BbB (Gaussian prior)", "dropout": "dropout", "sgd": "SGD (plain)"}


def _figures(config, histories, weights, out_dir: Path) -> list[str]:
    widths = [int(w) for w in config["widths"]]
    paths = []
    fig, axes = new_figure(ncols=len(widths), width=4.2, height=3.2, squeeze=False)
    for ax, width in zip(axes[0], widths):
        for (arm, w), hist in histories.items():
            if w != width:
                continue
            ep = [r["epoch"] for r in hist]
            ax.plot(ep, [100 * r["val_test_error"] for r in hist], label=_LABELS[arm])
        ax.set_xlabel("epoch")
        ax.set_title(f"2 x {width} units")
        ax.set_yscale("log")
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


if __name__ == "__main__":
    from .__main__ import main

    raise SystemExit(main(["run", "blundell-mnist"]))

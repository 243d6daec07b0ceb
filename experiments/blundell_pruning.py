r"""Blundell et al. (2015), Table 2 and Figure 4: pruning a Bayes-by-Backprop net by signal-to-noise.

Each weight of the mean-field posterior :math:`q(w_i) = \mathcal N(\mu_i, \sigma_i^2)` has the
signal-to-noise ratio :math:`\mathrm{SNR}_i = |\mu_i| / \sigma_i`
(:meth:`guides.mean_field.MeanFieldGuide.signal_to_noise`). Ordering all weights of the network by
SNR (one global order over every layer; biases, the last column of each ``[W | b]``, included) and
setting the lowest fraction :math:`f` of them to zero, the net predicts with the posterior means of
the rest (as the paper does), :math:`\hat y = \arg\max f(x; \mu \circ m_f)`. Exactly
:math:`\mathrm{round}(f \cdot n)` of the n weights are zeroed; ties in SNR are broken by position
(a stable sort), so the count is exact whatever the ties.

Paper (Table 2, 2 x 1200 units, test error): 0 % removed 1.24 %, 50 % 1.24 %, 75 % 1.24 %, 95 %
1.29 %, 98 % 1.39 %. Figure 4: density and CDF of the SNR in decibels, :math:`10\log_{10}\mathrm{SNR}`
(bimodal: a mass of prunable low-SNR weights).

The net is either loaded from a ``blundell-mnist`` arm (``checkpoint``: the ``best.pt`` written for
a BbB arm, e.g. ``results/blundell-mnist/<run>/bbb-mixture-400/best.pt``) or trained here with the
configuration of :mod:`experiments.blundell_mnist` (``train``: width, epochs; the prior, guide and
fit settings are that module's). Default: train 2 x 400 units for 10 epochs (about 3 min on one CPU
core); the paper's 2 x 1200 net is ``--set train.width=1200 --set train.epochs=600`` (GPU hours) or
the checkpoint of a full ``blundell-mnist`` run. Smoke: 16 units, one epoch, 500 images.

Run: ``python -m experiments run blundell-pruning [--smoke] [--set checkpoint=PATH]``
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch

from . import blundell_mnist as bm
from .common.plotting import new_figure, save_figure
from .common.training import resolve_device
from .registry import register_experiment

log = logging.getLogger(__name__)

PAPER_TABLE2 = {0.0: 1.24, 0.5: 1.24, 0.75: 1.24, 0.95: 1.29, 0.98: 1.39}  # test error, %


def get_config(smoke: bool = False) -> dict:
    base = bm.get_config(smoke)
    cfg = {
        "seed": 0,
        "checkpoint": None,
        "fractions": [0.0, 0.5, 0.75, 0.95, 0.98],
        "train": {"arm": "bbb-mixture", "width": 400, "epochs": 10},
        "mnist": {k: base[k] for k in ("data", "depth", "priors", "guide", "fit_bbb", "predict")},
    }
    if smoke:
        cfg["train"].update(width=16, epochs=1)
    return cfg


def prune_masks(snr: dict[str, torch.Tensor], fraction: float) -> dict[str, torch.Tensor]:
    """Boolean keep-masks zeroing exactly ``round(fraction * n)`` of the n weights with the lowest
    SNR, in one global order over every site (stable sort: ties go by site order, then position).

    :param dict snr: site -> SNR tensor (any shapes).
    :param float fraction: in [0, 1].
    :returns: site -> bool tensor of the same shape, ``True`` where the weight is kept.
    """
    if not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"prune fraction must be in [0, 1], got {fraction!r}")
    if not snr:
        raise ValueError("no weights to prune (empty signal-to-noise dict)")
    names = list(snr)
    flat = torch.cat([snr[n].reshape(-1) for n in names])
    if torch.isnan(flat).any():
        raise ValueError("signal-to-noise holds NaN; is the guide trained and finite?")
    n = flat.numel()
    k = int(math.floor(float(fraction) * n + 0.5))
    keep = torch.ones(n, dtype=torch.bool, device=flat.device)
    keep[torch.sort(flat, stable=True).indices[:k]] = False
    out, start = {}, 0
    for name in names:
        size = snr[name].numel()
        out[name] = keep[start:start + size].reshape(snr[name].shape)
        start += size
    return out


@torch.no_grad()
def pruned_means(guide, fraction: float) -> dict[str, torch.Tensor]:
    """The guide's means :math:`\\mu \\circ m_f` with the lowest-SNR fraction set to zero."""
    masks = prune_masks(guide.signal_to_noise(), fraction)
    return {n: getattr(guide, f"{n}_loc") * m for n, m in masks.items()}


def load_guide(path, data_dir=None):
    """Rebuild a BbB arm's model and guide from a ``blundell-mnist`` ``best.pt``."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not str(ckpt.get("arm", "")).startswith("bbb"):
        raise ValueError(f"{path} holds arm {ckpt.get('arm')!r}; pruning needs a BbB arm "
                         "(bbb-mixture, bbb-mixture-blundell or bbb-gaussian)")
    model, guide, _ = bm.build_arm(ckpt["arm"], ckpt["width"], ckpt["config"])
    x = torch.zeros(2, 784)
    guide(x, torch.zeros(2, dtype=torch.long))  # creates the guide's parameters
    model.load_state_dict(ckpt["model"])
    guide.load_state_dict(ckpt["guide"])
    return model, guide, ckpt


def _train_config(config: dict) -> dict:
    t = config["train"]
    return {**config["mnist"], "seed": config["seed"], "epochs": int(t["epochs"]),
            "widths": [int(t["width"])], "arms": [t["arm"]], "dropout": 0.0, "fit_mlp": {},
            "blundell_schedule_widths": [int(t["width"])]}


@register_experiment(
    "blundell-pruning", paper="Blundell et al. 2015 (Weight Uncertainty in NNs)",
    figure="Table 2, Fig. 4", data=("mnist",), get_config=get_config,
    paper_numbers={f"test_error_pruned_{int(100 * f)}": v / 100 for f, v in PAPER_TABLE2.items()})
def run(config: dict, out_dir: Path, device: str = "auto", data_dir=None) -> dict:
    dev = str(resolve_device(device))
    fractions = [float(f) for f in config["fractions"]]
    for f in fractions:
        if not 0.0 <= f <= 1.0:
            raise ValueError(f"fractions must be in [0, 1], got {f!r}")
    metrics: dict = {}
    if config["checkpoint"]:
        model, guide, ckpt = load_guide(config["checkpoint"], data_dir)
        _, _, test = bm.load_split(ckpt["config"]["data"], data_dir)
        metrics["source"] = f"{config['checkpoint']} ({ckpt['arm']}, 2 x {ckpt['width']}, best epoch " \
                            f"{ckpt['best_epoch']})"
    else:
        tcfg = _train_config(config)
        train, val, test = bm.load_split(tcfg["data"], data_dir)
        val, test = tuple(t.to(dev) for t in val), tuple(t.to(dev) for t in test)
        arm, width = config["train"]["arm"], int(config["train"]["width"])
        m, model, guide, _ = bm.train_arm(arm, width, tcfg, train, val, test, dev,
                                          out_dir / f"{arm}-{width}")
        metrics.update(m)
        metrics["source"] = f"trained here: {arm}, 2 x {width}, {config['train']['epochs']} epochs"
    guide.to(dev)
    x_te, y_te = test[0].to(dev), test[1].to(dev)
    names = sorted(guide.signal_to_noise(), key=lambda s: int(s[1:]))
    for f in fractions:
        means = pruned_means(guide, f)
        err = bm.error_rate(bm.mlp_logits([means[n] for n in names], x_te), y_te)
        zeros = sum(int((means[n] == 0).sum()) for n in names)
        total = sum(means[n].numel() for n in names)
        metrics[f"test_error_pruned_{int(round(100 * f))}"] = err
        metrics[f"zeroed_fraction_{int(round(100 * f))}"] = zeros / total
        log.info("pruned %.0f %%: test error %.4f", 100 * f, err)
    snr = torch.cat([v.reshape(-1) for v in guide.signal_to_noise().values()]).cpu()
    metrics["snr_db_median"] = float((10 * torch.log10(snr)).median())
    metrics["figure"] = _figure(snr, out_dir)
    return metrics


def _figure(snr: torch.Tensor, out_dir: Path) -> list[str]:
    db = (10 * torch.log10(snr.clamp_min(1e-12))).numpy()
    fig, (ax1, ax2) = new_figure(ncols=2, width=4.0, height=3.0)
    ax1.hist(db, bins=100, density=True, histtype="stepfilled", alpha=0.7)
    ax1.set_xlabel("signal-to-noise ratio (dB)")
    ax1.set_ylabel("density")
    srt = np.sort(db)
    ax2.plot(srt, np.arange(1, len(srt) + 1) / len(srt))
    ax2.set_xlabel("signal-to-noise ratio (dB)")
    ax2.set_ylabel("CDF")
    return [str(p) for p in save_figure(fig, out_dir / "blundell_fig4")]


if __name__ == "__main__":
    from .__main__ import main

    raise SystemExit(main(["run", "blundell-pruning"]))

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
a BbB arm, e.g. ``results/blundell-mnist/<run>/bbb-mixture-400/best.pt``) or trained here: the arm
``train.arm`` (``bbb-mixture``, ``bbb-mixture-blundell`` or ``bbb-gaussian``) with ``train.depth``
x ``train.width`` hidden units and that arm's pair, whose defaults are those of
:mod:`experiments.blundell_mnist` except 10 epochs (config fields ``bbb_mixture``,
``bbb_mixture_blundell``, ``bbb_gaussian``: ``--set bbb_mixture.fit.epochs=20``,
``--set bbb_gaussian.model_cfg.prior.sigma=0.1``). Default: train 2 x 400 units for 10 epochs (about
3 min on one CPU core); the paper's 2 x 1200 net is ``--set train.width=1200
--set bbb_mixture.fit.epochs=600`` (GPU hours) or the checkpoint of a full ``blundell-mnist`` run.
Smoke: 16 units, one epoch, 500 images.

Run: ``python -m experiments run blundell-pruning [--smoke] [--set checkpoint=PATH]
[--set 'fractions=[0.5,0.9]']``
"""

from __future__ import annotations

import logging
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from experiments.engine.checkpoint import load_zoo_file, save_zoo_file
from experiments.harness.plotting import new_figure, save_figure
from experiments.harness.spec import ConfigError, PairSpec, RunContext

from . import blundell_mnist as bm
from .registry import register_experiment

log = logging.getLogger(__name__)

PAPER_TABLE2 = {0.0: 1.24, 0.5: 1.24, 0.75: 1.24, 0.95: 1.29, 0.98: 1.39}  # test error, %
BbbArm = Literal["bbb-mixture", "bbb-mixture-blundell", "bbb-gaussian"]
BBB_ARMS: tuple[str, ...] = typing.get_args(BbbArm)


@dataclass
class Train:
    """The net trained here when there is no ``checkpoint``: which BbB arm, its hidden layers."""

    arm: BbbArm = "bbb-mixture"
    width: int = 400
    depth: int = 2


@dataclass
class Config:
    #: a blundell-mnist ``best.pt`` of a BbB arm to prune (``None``: train the net here)
    checkpoint: str | None = None
    fractions: list[float] = field(default_factory=lambda: list(PAPER_TABLE2))
    train: Train = field(default_factory=Train)
    data: bm.MnistData = field(default_factory=bm.MnistData)
    bbb_mixture: PairSpec = field(default_factory=lambda: bm.default_arm("bbb-mixture", 10))
    bbb_mixture_blundell: PairSpec = field(
        default_factory=lambda: bm.default_arm("bbb-mixture-blundell", 10))
    bbb_gaussian: PairSpec = field(default_factory=lambda: bm.default_arm("bbb-gaussian", 10))
    num_samples: int = 10  # draws of the Monte Carlo predictive of the trained net
    #: write ``pruned-<100 f>.pt``: the net pruned at this fraction, its kept means in float16 as
    #: sparse (index, value) lists (:func:`export_pruned`; ``None``: no file)
    export: float | None = 0.95

    def spec(self, arm: str) -> PairSpec:
        return getattr(self, bm.arm_field(arm))

    def validate(self):
        for arm in BBB_ARMS:
            bm.check_arm(arm, self.spec(arm), bm.arm_field(arm))
        bad = [f for f in self.fractions if not 0.0 <= f <= 1.0]
        if bad or not self.fractions:
            raise ConfigError(f"fractions={self.fractions!r} is invalid: expected a non-empty list "
                              "of numbers in [0, 1]")
        for key in ("width", "depth"):
            if getattr(self.train, key) < 1:
                raise ConfigError(f"train.{key}={getattr(self.train, key)!r} is invalid: expected "
                                  "an integer >= 1")
        if self.num_samples < 1:
            raise ConfigError(f"num_samples={self.num_samples!r} is invalid: expected an integer "
                              ">= 1")
        if self.export is not None and not 0.0 <= self.export <= 1.0:
            raise ConfigError(f"export={self.export!r} is invalid: expected a fraction in [0, 1] "
                              "or null (no pruned file)")
        if self.checkpoint is not None and not Path(self.checkpoint).is_file():
            raise ConfigError(f"checkpoint={self.checkpoint!r}: no such file; pass the best.pt of "
                              "a blundell-mnist BbB arm (results/blundell-mnist/<run>/"
                              "bbb-mixture-400/best.pt) or null to train here")


def get_config(smoke: bool = False) -> Config:
    cfg = Config()
    if smoke:
        base = bm.get_config(smoke=True)
        cfg.data, cfg.num_samples = base.data, base.num_samples
        cfg.train.width = 16
        for arm in BBB_ARMS:
            cfg.spec(arm).fit.epochs = 1
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


def export_pruned(guide, fraction: float, path, meta: dict | None = None) -> Path:
    """Write the net pruned at ``fraction`` as a zoo file of kind ``"pruned"``: for each layer
    ``[W | b]`` its shape, the flat indices of the kept weights (int32) and their means (float16).
    For the paper's 2 x 1200 net at 95 % that is under 1 MB instead of a 19 MB float32 guide
    (means and scales), small enough to bring back from a GPU machine. :func:`load_pruned`
    reads it back."""
    means = pruned_means(guide, fraction)
    layers = {}
    for name, w in means.items():
        flat = w.detach().reshape(-1).cpu()
        keep = flat.nonzero().reshape(-1)
        layers[name] = {"shape": list(w.shape), "index": keep.to(torch.int32),
                        "value": flat[keep].to(torch.float16)}
    return save_zoo_file(path, "pruned", {"layers": layers, "fraction": float(fraction)},
                         {"fraction": float(fraction), **(meta or {})})


def load_pruned(path) -> dict[str, torch.Tensor]:
    """The dense float32 ``[W | b]`` of each layer of a :func:`export_pruned` file (pruned weights
    are zero; kept ones are their means rounded to float16)."""
    payload, _ = load_zoo_file(path, "pruned")
    out = {}
    for name, layer in payload["layers"].items():
        w = torch.zeros(math.prod(layer["shape"]), dtype=torch.float32)
        w[layer["index"].long()] = layer["value"].float()
        out[name] = w.reshape(layer["shape"])
    return out


def _checkpoint_pair(ckpt: dict) -> tuple[PairSpec, int, bm.MnistData]:
    """The arm's pair, its depth and data options recorded in a ``best.pt``."""
    if "spec" in ckpt:
        return PairSpec(**ckpt["spec"]), int(ckpt["depth"]), bm.MnistData(**ckpt["data"])
    # a best.pt written before the typed configs: the whole blundell-mnist config dict
    cfg, arm = ckpt["config"], ckpt["arm"]
    spec = bm.default_arm(arm)
    prior = cfg["priors"]["gaussian" if arm == "bbb-gaussian" else "mixture"]
    spec.model_cfg["prior"] = dict(prior)
    spec.guide_cfg = dict(cfg["guide"])
    return spec, int(cfg["depth"]), bm.MnistData(**cfg["data"])


def load_guide(path):
    """Rebuild a BbB arm's model and guide from a ``blundell-mnist`` ``best.pt``: ``(model, guide,
    checkpoint dict, data options)``."""
    ckpt, _ = load_zoo_file(path, "best")
    if not str(ckpt.get("arm", "")).startswith("bbb"):
        raise ValueError(f"{path} holds arm {ckpt.get('arm')!r}; pruning needs a BbB arm "
                         "(bbb-mixture, bbb-mixture-blundell or bbb-gaussian)")
    spec, depth, data = _checkpoint_pair(ckpt)
    model, guide = bm.build_pair(spec, ckpt["width"], depth)
    x = torch.zeros(2, 784)
    guide(x, torch.zeros(2, dtype=torch.long))  # creates the guide's parameters
    model.load_state_dict(ckpt["model"])
    guide.load_state_dict(ckpt["guide"])
    return model, guide, ckpt, data


@register_experiment(
    "blundell-pruning", paper="Blundell et al. 2015 (Weight Uncertainty in NNs)",
    figure="Table 2, Fig. 4", data=("mnist",), get_config=get_config,
    paper_numbers={f"test_error_pruned_{int(100 * f)}": v / 100 for f, v in PAPER_TABLE2.items()})
def run(config: Config, ctx: RunContext) -> dict:
    dev = ctx.torch_device
    metrics: dict = {}
    if config.checkpoint:
        model, guide, ckpt, data = load_guide(config.checkpoint)
        _, _, test = bm.load_split(data, ctx.data_dir)
        metrics["source"] = (f"{config.checkpoint} ({ckpt['arm']}, 2 x {ckpt['width']}, best "
                             f"epoch {ckpt['best_epoch']})")
    else:
        arm, width, depth = config.train.arm, config.train.width, config.train.depth
        spec = config.spec(arm)
        train, val, test = bm.load_split(config.data, ctx.data_dir)
        val, test = tuple(t.to(dev) for t in val), tuple(t.to(dev) for t in test)
        m, model, guide, _ = bm.train_arm(arm, spec, width, depth, (train, val, test), ctx,
                                          data=config.data, num_samples=config.num_samples)
        metrics.update(m)
        metrics["source"] = f"trained here: {arm}, {depth} x {width}, {spec.fit.epochs} epochs"
    guide.to(dev)
    x_te, y_te = test[0].to(dev), test[1].to(dev)
    names = sorted(guide.signal_to_noise(), key=lambda s: int(s[1:]))
    for f in config.fractions:
        means = pruned_means(guide, f)
        err = bm.error_rate(bm.mlp_logits([means[n] for n in names], x_te), y_te)
        zeros = sum(int((means[n] == 0).sum()) for n in names)
        total = sum(means[n].numel() for n in names)
        metrics[f"test_error_pruned_{int(round(100 * f))}"] = err
        metrics[f"zeroed_fraction_{int(round(100 * f))}"] = zeros / total
        log.info("pruned %.0f %%: test error %.4f", 100 * f, err)
    if config.export is not None:
        f = config.export
        path = export_pruned(guide, f, ctx.out_dir / f"pruned-{int(round(100 * f))}.pt",
                             {"experiment": "blundell-pruning", "source": metrics["source"]})
        weights = load_pruned(path)
        metrics["export_file_mb"] = path.stat().st_size / 2**20
        # the file's float16 means, read back: what a user of the file gets
        metrics["test_error_export"] = bm.error_rate(
            bm.mlp_logits([weights[n].to(dev) for n in names], x_te), y_te)
        log.info("wrote %s (%.2f MB): test error %.4f", path.name, metrics["export_file_mb"],
                 metrics["test_error_export"])
    snr = torch.cat([v.reshape(-1) for v in guide.signal_to_noise().values()]).cpu()
    metrics["snr_db_median"] = float((10 * torch.log10(snr)).median())
    metrics["figure"] = _figure(snr, ctx.out_dir)
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

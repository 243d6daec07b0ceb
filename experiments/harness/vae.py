"""What the VAE experiments share: image data sets in the VAE's form and their typed options
(:class:`ImageOptions`), dynamic binarisation, the per-epoch train/test ELBO hook for
:func:`~experiments.engine.training.fit`, :func:`train_vae` (a VAE arm through
:func:`~experiments.harness.spec.train_pair`), and Kingma & Welling's networks and data.

Binarisation of MNIST (``binarization=``):

- ``"dynamic"`` (default; Burda et al. 2016): every time a training batch is drawn, each pixel is
  resampled as :math:`x \\sim \\mathrm{Bernoulli}(\\text{intensity})` (:class:`DynamicBinarization`,
  using torch's global RNG, which ``fit`` seeds). The test set is binarised once with a fixed seed,
  so every evaluation sees the same binary test images.
- ``"static"``: the fixed binarisation of ``shared/data/binarized_mnist`` (50000 train; the
  10000 validation images are not used; 10000 test).
- ``"none"``: grey levels in [0, 1] (for the continuous Bernoulli or a Gaussian decoder).

Frey Face (1965 images, 28 x 20, grey in [0, 1]) is split at random (fixed seed) into
``num_test`` test images and the rest for training.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch.utils.data import Dataset

from experiments import data as zoo_data
from experiments.engine.iwae import iwae_bound
from experiments.engine.settings import FitConfig

from .spec import ConfigError, PairSpec, RunContext, train_pair

log = logging.getLogger(__name__)

BINARIZATIONS = ("dynamic", "static", "none")
Binarization = Literal["dynamic", "static", "none"]


class DynamicBinarization(Dataset):
    """Grey images in [0, 1], served as fresh Bernoulli draws: ``ds[idx] = (bernoulli(x[idx]),)``.

    :param torch.Tensor x: (N, ...) intensities in [0, 1].
    """

    def __init__(self, x: torch.Tensor):
        if x.min() < 0 or x.max() > 1:
            raise ValueError("dynamic binarisation needs intensities in [0, 1]")
        self.x = x

    def validate_for(self, model) -> bool:
        """Every image it serves is binary by construction: the model need not check batches."""
        return True

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, idx):
        return (torch.bernoulli(self.x[idx]),)


@dataclass
class ImageData:
    """A training set (tensor tuple or Dataset, as fit takes it), fixed test images, and fixed
    binary/grey training images for evaluation (``train_eval``)."""

    name: str
    train: object
    test: torch.Tensor
    train_eval: torch.Tensor
    image_shape: tuple[int, ...]

    @property
    def num_train(self) -> int:
        return len(self.train[0]) if isinstance(self.train, tuple) else len(self.train)


def load_images(dataset: str, binarization: str = "dynamic", data_dir=None, num_train: int | None = None,
                num_test: int | None = None, num_train_eval: int = 1000, seed: int = 0) -> ImageData:
    """``dataset`` = ``"mnist"`` or ``"frey"``; ``num_train``/``num_test`` truncate (smoke runs)."""
    if binarization not in BINARIZATIONS:
        raise ValueError(f"binarization must be one of {BINARIZATIONS}, got {binarization!r}")
    g = torch.Generator().manual_seed(seed + 12345)
    if dataset == "mnist":
        if binarization == "static":
            x_train = zoo_data.load_binarized_mnist("train", data_dir=data_dir).reshape(-1, 28, 28)
            x_test = zoo_data.load_binarized_mnist("test", data_dir=data_dir).reshape(-1, 28, 28)
        else:
            x_train, _ = zoo_data.load_mnist("train", data_dir=data_dir)
            x_test, _ = zoo_data.load_mnist("test", data_dir=data_dir)
        # the staged static test set is sorted by class: shuffle before truncating
        x_test = x_test[torch.randperm(len(x_test), generator=g)]
    elif dataset == "frey":
        if binarization != "none":
            raise ValueError("Frey Face is grey-level data: use binarization='none'")
        x = zoo_data.load_frey_face(data_dir=data_dir)
        perm = torch.randperm(len(x), generator=g)
        n_test = num_test or 200
        x_test, x_train = x[perm[:n_test]], x[perm[n_test:]]
    else:
        raise ValueError(f"dataset must be 'mnist' or 'frey', got {dataset!r}")
    if num_train:
        x_train = x_train[:num_train]
    if num_test:
        x_test = x_test[:num_test]
    idx = torch.randperm(len(x_train), generator=g)[:num_train_eval]
    if binarization == "dynamic":
        train = DynamicBinarization(x_train)
        x_test = torch.bernoulli(x_test, generator=g)
        train_eval = torch.bernoulli(x_train[idx], generator=g)
    else:
        train, train_eval = (x_train,), x_train[idx]
    return ImageData(dataset, train, x_test, train_eval, tuple(x_train.shape[1:]))


def elbo_eval_fn(data: ImageData, num_test_eval: int | None = 2000, k: int = 1):
    """``eval_fn`` for fit: per-datapoint bound :math:`\\mathcal L_k` (k=1: the ELBO, one sample per
    datapoint) on the fixed training subset and on (the first ``num_test_eval``) test images."""
    test = data.test[:num_test_eval] if num_test_eval else data.test

    def eval_fn(model, guide):
        dev = model.z_loc.device
        return {"train_elbo": iwae_bound(model, guide, data.train_eval.to(dev), k=k, k_chunk=k,
                                         data_chunk=1000),
                "test_elbo": iwae_bound(model, guide, test.to(dev), k=k, k_chunk=k, data_chunk=1000)}

    return eval_fn


def train_vae(spec: PairSpec, data: ImageData, ctx: RunContext, name: str, *,
              num_test_eval: int | None = 2000, model_args: dict | None = None):
    """:func:`~experiments.harness.spec.train_pair` for a VAE arm: the image shape comes from
    ``data``, the per-epoch train/test ELBO is evaluated (:func:`elbo_eval_fn`); returns
    ``(model, guide, state)``.

    :param dict model_args: further model arguments the experiment supplies (``z_dim`` of a sweep).
    """
    return train_pair(spec, data.train, ctx, name, eval_fn=elbo_eval_fn(data, num_test_eval),
                      model_args={"image_shape": data.image_shape, **(model_args or {})})


@dataclass
class ImageOptions:
    """Which images a VAE experiment trains on (:func:`load_images`' options): how MNIST is
    binarised, and how many training/test images to keep (``None``: all)."""

    binarization: Binarization = "dynamic"
    num_train: int | None = None
    num_test: int | None = None

    def check(self, where: str, dataset: str) -> None:
        """One-line :class:`ConfigError` for a value :func:`load_images` would refuse."""
        for key in ("num_train", "num_test"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"{where}.{key}={value!r} is invalid: expected an integer >= 1 "
                                  "or null (all images)")
        if dataset == "frey" and self.binarization != "none":
            raise ConfigError(f"{where}.binarization={self.binarization!r} is invalid for Frey "
                              "Face (grey-level data): use 'none'")


# --------------------------------------------------------------------------------------------
# Kingma & Welling (2014) settings, shared by the kingma-fig* experiments
# --------------------------------------------------------------------------------------------

#: the paper's networks: one hidden tanh layer, 500 units (MNIST, Bernoulli decoder) or 200 (Frey
#: Face, Gaussian decoder with sigmoid mean and per-pixel variance from the network)
KINGMA_MODELS = {
    "mnist": {"hidden": [500], "activation": "tanh", "likelihood": "bernoulli"},
    "frey": {"hidden": [200], "activation": "tanh", "likelihood": "gaussian",
             "gaussian_scale": "network", "min_scale": 0.01},
}
#: the paper's data: dynamically binarised MNIST (the first 1000 test images for the bound), Frey
#: Face in grey levels (a random 200 held out)
KINGMA_DATA = {"mnist": ImageOptions(binarization="dynamic", num_train=None, num_test=1000),
               "frey": ImageOptions(binarization="none", num_train=None, num_test=200)}
KINGMA_DATASETS = ("mnist", "frey")
KingmaDataset = Literal["mnist", "frey"]


def kingma_images(dataset: str) -> ImageOptions:
    """A fresh copy of the paper's data options for ``dataset``."""
    return dataclasses.replace(KINGMA_DATA[dataset])


def kingma_pair(dataset: str, *, epochs: int, eval_every: int, **model_cfg) -> PairSpec:
    """The paper's ``vae`` + ``encoder`` arm for ``dataset``: its network (``model_cfg`` adds to
    or replaces entries, e.g. ``z_dim=2``), one sample per datapoint, closed-form KL, Adam lr 1e-3,
    minibatch 100."""
    model_cfg = {**copy.deepcopy(KINGMA_MODELS[dataset]), **model_cfg}
    return PairSpec("vae", "encoder", model_cfg=model_cfg,
                    fit=FitConfig(epochs=epochs, batch_size=100, lr=1e-3, elbo="meanfield",
                                  eval_every=eval_every))


@dataclass
class KingmaSet:
    """One data set of a kingma-fig* experiment: its images and the VAE trained on them."""

    data: ImageOptions = field(default_factory=ImageOptions)
    vae: PairSpec = field(default_factory=lambda: PairSpec("vae", "encoder"))

    def check(self, where: str, dataset: str, provided: tuple[str, ...] = ("image_shape",)) -> None:
        """One-line :class:`ConfigError` for a bad section (``where``: its key, e.g. ``mnist``);
        ``provided``: the model arguments the experiment sets itself."""
        self.data.check(f"{where}.data", dataset)
        self.vae.validate(f"{where}.vae", provided=provided)
        if self.vae.model != "vae":
            raise ConfigError(f"{where}.vae.model={self.vae.model!r} is invalid: the kingma-fig* "
                              "experiments train the 'vae' model")


def kingma_data(dataset: str, cfg: ImageOptions, data_dir=None, seed: int = 0) -> ImageData:
    return load_images(dataset, cfg.binarization, data_dir=data_dir, num_train=cfg.num_train,
                       num_test=cfg.num_test, seed=seed)


def image_grid(images: torch.Tensor, nrow: int) -> torch.Tensor:
    """(B, H, W) images -> one (rows*H, nrow*W) mosaic (missing tiles blank)."""
    b, h, w = images.shape
    rows = -(-b // nrow)
    canvas = torch.ones(rows * h, nrow * w)
    for i in range(b):
        r, c = divmod(i, nrow)
        canvas[r * h:(r + 1) * h, c * w:(c + 1) * w] = images[i]
    return canvas


def latent_grid(n: int, eps: float = 0.5) -> torch.Tensor:
    """An n x n grid of 2-D codes: the unit square at (i + eps) / n mapped through the inverse
    Gaussian CDF (Kingma & Welling, Fig. 4), as (n * n, 2), row-major from the top-left."""
    u = (torch.arange(n, dtype=torch.float64) + eps) / n
    z = torch.distributions.Normal(0.0, 1.0).icdf(u).float()
    zy, zx = torch.meshgrid(z.flip(0), z, indexing="ij")
    return torch.stack([zx.reshape(-1), zy.reshape(-1)], dim=-1)


__all__ = ["BINARIZATIONS", "Binarization", "DynamicBinarization", "ImageData", "ImageOptions",
           "KINGMA_DATA", "KINGMA_DATASETS", "KINGMA_MODELS", "KingmaDataset", "KingmaSet",
           "elbo_eval_fn", "image_grid", "kingma_data", "kingma_images", "kingma_pair",
           "latent_grid", "load_images", "train_vae"]

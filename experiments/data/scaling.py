r"""Standardisation statistics that are checked before anything trains.

:func:`mean_std` gives each column's mean and population standard deviation (ddof = 0, as in the
PBP / MC-dropout code), with standard deviation 1 for an exactly constant column so that it
standardises to exactly 0. The statistics are computed in float64, and a column whose mean or
standard deviation is not finite is refused: a feature scaled by 1e300 has a variance that
overflows, and dividing by an infinite standard deviation would silently turn the feature into 0.
A column that varies while its standard deviation is 0 (values so close together that their
spread underflows) is refused as well.

:func:`check_float32` runs on standardised values, :math:`z = (x - \mu) / \sigma`, before they
become the model's float32 inputs. The training rows cannot overflow here (:math:`|z| \le
\sqrt{N}`), but test or prediction rows can: a value beyond float32's range would become
:math:`\pm\infty`. Such a value is refused, naming its column and row.

Each refusal is a :class:`NumericRangeError` (a :class:`~experiments.data.errors.DataError`) that
names the column and says what to do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from experiments.data.errors import DataError

_F32_MAX = float(np.finfo(np.float32).max)


class NumericRangeError(DataError):
    """A column whose values cannot be standardised or represented in float32."""


def _name(names: Sequence[str] | None, j: int) -> str:
    return repr(names[j]) if names is not None and j < len(names) else f"#{j}"


def mean_std(a: np.ndarray, names: Sequence[str] | None = None, what: str = "column"
             ) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and population std of the 2-d array ``a``; std 1 for columns that are exactly
    constant. ``names`` name the columns in errors (``what``: e.g. "feature", "target")."""
    with np.errstate(over="ignore", invalid="ignore"):
        mean = a.mean(axis=0)
        std = a.std(axis=0)
    const = np.ptp(a, axis=0) == 0
    # exact value as the mean (a float64 mean of equal numbers can be off by an ulp), so the
    # standardised column is exactly 0
    mean[const] = a[0, const]
    std[const] = 1.0
    for j in np.flatnonzero(~(np.isfinite(mean) & np.isfinite(std))):
        col = a[:, j]
        big = float(np.nanmax(np.abs(col))) if np.isfinite(col).any() else float("nan")
        raise NumericRangeError(
            f"{what} {_name(names, j)} cannot be standardised: its values reach {big:.3g}, and its "
            f"{'mean' if not np.isfinite(mean[j]) else 'standard deviation'} overflows float64; "
            "rescale the column (divide it by a power of ten, or take its logarithm) or drop it")
    for j in np.flatnonzero(std == 0):
        raise NumericRangeError(
            f"{what} {_name(names, j)} cannot be standardised: its values differ, but by so little "
            f"(largest magnitude {float(np.abs(a[:, j]).max()):.3g}) that their standard deviation "
            "is 0 in float64; rescale the column or drop it")
    return mean, std


def check_float32(z: np.ndarray, names: Sequence[str] | None = None, what: str = "column",
                  rows: str = "row") -> None:
    """Refuse standardised values ``z`` (2-d: rows x columns) beyond float32's range."""
    bad = np.abs(z) > _F32_MAX
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        raise NumericRangeError(
            f"{what} {_name(names, j)} of {rows} {i} is {float(z[i, j]):.3g} standard deviations "
            "from the training rows' mean, beyond float32's range (3.4e38); these rows are on "
            "another scale than the training rows: check the file's units")

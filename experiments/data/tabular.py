"""A user's own table of numbers: :func:`load_table` reads CSV, ``.npz`` and ``.pt`` files.

* **CSV**: a header row of column names, then one row per example of numeric cells (comma
  separated, quotes allowed). One column is the target (``target=``), every other column a
  feature.
* **.npz** (:func:`numpy.savez`): arrays ``x`` (N, D) or (N,), ``y`` (N,), and optionally
  ``x_test`` / ``y_test`` (a fixed test set).
* **.pt** (:func:`torch.save`): a dict with the same keys, of tensors or arrays (read with
  ``weights_only=True``: no code is run).

Every problem is a one-line :class:`ValueError` (a missing file: :class:`FileNotFoundError`)
naming the file and, where there is one, the line, row or column: a missing target column, a
non-numeric cell, NaN / inf / empty cells (naming the rows), ragged rows, too few rows.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: suffixes :func:`load_table` reads
SUFFIXES = (".csv", ".npz", ".pt")


@dataclass
class Table:
    """Features and targets of one file, as float64 numpy arrays.

    :ivar x: (N, D) features. :ivar y: (N,) targets (``None`` when the file has none).
    :ivar columns: the D feature names (``x0, x1, ...`` for arrays).
    :ivar target: the target's name (``"y"`` for arrays).
    :ivar x_test: (M, D) test features of an ``.npz`` / ``.pt`` file, else ``None``.
    :ivar y_test: (M,) their targets.
    :ivar source: the file.
    """

    x: np.ndarray
    y: np.ndarray | None
    columns: list[str]
    target: str | None
    source: str
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    @property
    def num_rows(self) -> int:
        return int(self.x.shape[0])


def load_table(path, target: str | None = None, *, need_target: bool = True,
               columns: list[str] | None = None) -> Table:
    """Read ``path`` (CSV, ``.npz`` or ``.pt``; see the module docstring).

    :param str target: the target column of a CSV (arrays: always ``y``).
    :param bool need_target: a missing target is an error (``False``: the table may lack it,
        as new inputs to predict at may).
    :param columns: the feature columns to read (by name, in this order; other columns are
        ignored); default: every column but the target.
    """
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{path}: unsupported file type {path.suffix or '(none)'!r}; use a "
                         f"{', '.join(SUFFIXES)} file")
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    if path.suffix.lower() == ".csv":
        return _read_csv(path, target, need_target, columns)
    return _read_arrays(path, need_target, columns)


# ------------------------------------------------------------------------------------------------
# CSV


def _read_text(path: Path) -> str:
    """The file's text: UTF-8 (a byte-order mark, as spreadsheet programs write, is dropped, not
    read into the first column's name), else latin-1 with a logged note naming the first byte
    UTF-8 could not decode (every byte is a latin-1 character, so that never fails)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        logging.getLogger("experiments").warning(
            "%s is not UTF-8 (byte %d is 0x%02x): read as latin-1; save it as UTF-8 if names "
            "or cells look wrong", path, exc.start, raw[exc.start])
        return raw.decode("latin-1")


def _read_csv(path: Path, target, need_target: bool, wanted) -> Table:
    rows = list(csv.reader(io.StringIO(_read_text(path), newline="")))
    while rows and not any(c.strip() for c in rows[-1]):
        rows.pop()  # trailing blank lines
    if not rows:
        raise ValueError(f"{path} is empty; expected a header row of column names, then rows "
                         "of numbers")
    header = [c.strip() for c in rows[0]]
    if len(set(header)) != len(header) or any(not c for c in header):
        raise ValueError(f"{path}: the header row must name every column once, got {header}")
    if need_target and target is None:
        raise ValueError(f"{path}: name the target column with --target (columns: "
                         f"{', '.join(header)})")
    if target is not None and target not in header and (need_target or wanted is None):
        raise ValueError(f"{path}: no column {target!r} (the target); columns: "
                         f"{', '.join(header)}")
    has_target = target is not None and target in header
    feature_names = list(wanted) if wanted is not None else [c for c in header if c != target]
    missing = [c for c in feature_names if c not in header]
    if missing:
        raise ValueError(f"{path}: missing feature column(s) {', '.join(missing)} (the model was "
                         f"trained on {', '.join(feature_names)}); columns: {', '.join(header)}")
    if not feature_names:
        raise ValueError(f"{path}: no feature columns besides the target {target!r}")
    values = np.empty((len(rows) - 1, len(header)))
    for i, row in enumerate(rows[1:]):
        line = i + 2
        if len(row) != len(header):
            raise ValueError(f"{path}, line {line}: {len(row)} cells, but the header has "
                             f"{len(header)} columns")
        for j, cell in enumerate(row):
            text = cell.strip()
            if not text:
                values[i, j] = math.nan  # an empty cell is a missing value: reported below
                continue
            try:
                values[i, j] = float(text)
            except ValueError:
                raise ValueError(f"{path}, line {line}, column {header[j]!r}: {cell!r} is not a "
                                 "number (every cell must be numeric; encode categories as "
                                 "numbers)") from None
    index = {c: j for j, c in enumerate(header)}
    x = values[:, [index[c] for c in feature_names]]
    y = values[:, index[target]] if has_target else None
    table = Table(x=x, y=y, columns=feature_names, target=target if has_target else None,
                  source=str(path))
    _check_finite(table, first_line=2)
    return table


# ------------------------------------------------------------------------------------------------
# arrays


def _read_arrays(path: Path, need_target: bool, wanted) -> Table:
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
        except Exception as exc:
            raise ValueError(f"{path} is not a readable .npz file ({type(exc).__name__}: "
                             f"{exc})") from None
    else:
        import torch

        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"{path} is not a .pt file of tensors that torch.load(weights_only"
                             f"=True) reads ({type(exc).__name__}: {exc})") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{path} must hold a dict with keys 'x', 'y' (optional 'x_test', "
                             f"'y_test'), got a {type(raw).__name__}")
    if "x" not in raw:
        raise ValueError(f"{path} has no array 'x' (keys: {', '.join(map(str, raw)) or 'none'}); "
                         "expected 'x', 'y' and optionally 'x_test', 'y_test'")
    if need_target and "y" not in raw:
        raise ValueError(f"{path} has no array 'y' (the targets); keys: {', '.join(map(str, raw))}")
    x = _matrix(raw["x"], path, "x")
    y = _vector(raw["y"], path, "y", x.shape[0]) if "y" in raw else None
    x_test = y_test = None
    if "x_test" in raw or "y_test" in raw:
        if not ("x_test" in raw and "y_test" in raw):
            raise ValueError(f"{path}: give both 'x_test' and 'y_test', or neither")
        x_test = _matrix(raw["x_test"], path, "x_test")
        y_test = _vector(raw["y_test"], path, "y_test", x_test.shape[0])
        if x_test.shape[1] != x.shape[1]:
            raise ValueError(f"{path}: 'x_test' has {x_test.shape[1]} columns but 'x' has "
                             f"{x.shape[1]}")
    columns = [f"x{j}" for j in range(x.shape[1])]
    if wanted is not None and list(wanted) != columns:
        if len(wanted) != x.shape[1]:
            raise ValueError(f"{path}: 'x' has {x.shape[1]} columns but the model was trained "
                             f"on {len(wanted)} ({', '.join(wanted)})")
        columns = list(wanted)  # arrays carry no names: the training columns, in order
    table = Table(x=x, y=y, columns=columns, target="y" if y is not None else None,
                  source=str(path), x_test=x_test, y_test=y_test)
    _check_finite(table, first_line=None)
    return table


def _numeric(a, path, key) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{path}: '{key}' must hold numbers, got dtype {a.dtype}")
    return a.astype(np.float64)


def _matrix(a, path, key) -> np.ndarray:
    a = _numeric(a, path, key)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{path}: '{key}' must have shape (N, D) or (N,), got {a.shape}")
    return a


def _vector(a, path, key, n: int) -> np.ndarray:
    a = _numeric(a, path, key)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.shape != (n,):
        raise ValueError(f"{path}: '{key}' must have shape ({n},), one target per row of the "
                         f"features, got {a.shape}")
    return a


def _check_finite(table: Table, first_line: int | None) -> None:
    """NaN, inf or empty cells are an error naming the rows (CSV: their line numbers)."""
    for xs, ys, what in ((table.x, table.y, ""), (table.x_test, table.y_test, "test ")):
        if xs is None:
            continue
        bad = ~np.isfinite(xs).all(axis=1)
        if ys is not None:
            bad |= ~np.isfinite(ys)
        if bad.any():
            idx = np.flatnonzero(bad)
            where = (f"lines {_list(idx + first_line)}" if first_line is not None
                     else f"{what}rows {_list(idx)} (0-based)")
            raise ValueError(f"{table.source}: missing, NaN or inf values in {len(idx)} "
                             f"{what}row(s), at {where}; drop or impute them")


def _list(idx: np.ndarray, limit: int = 8) -> str:
    shown = ", ".join(str(int(i)) for i in idx[:limit])
    return shown + (f", ... ({len(idx) - limit} more)" if len(idx) > limit else "")


__all__ = ["SUFFIXES", "Table", "load_table"]

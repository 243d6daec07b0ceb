"""The :class:`DataError` family, and parse wrappers that turn a failure into :class:`DataCorrupt`.

All data-layer errors are subclasses of :class:`DataError` (a :class:`RuntimeError`):
:class:`DataFileMissing` (not found and not downloadable: names the folders searched, the
environment variable and the URL), :class:`ChecksumMismatch` (wrong bytes: names expected and
actual sha256) and :class:`DataCorrupt` (right name, unparsable content). Bad *arguments* (an
unknown dataset name, a split index out of range) raise :class:`ValueError`.

:func:`_corrupt` builds the :class:`DataCorrupt` message; :func:`_loadtxt` and :func:`_loadmat`
wrap :func:`numpy.loadtxt` and :func:`scipy.io.loadmat` so that any parse failure becomes a
:class:`DataCorrupt` naming the file.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class DataError(RuntimeError):
    """Base class of every data-layer failure (missing, wrong or unparsable files)."""


class DataFileMissing(DataError):
    """A data file is in none of the searched folders and could not be downloaded.

    :ivar relpath: the file's path relative to the data folder.
    :ivar searched: the candidate paths that were looked at.
    :ivar url: where the file can be downloaded from.
    """

    def __init__(self, message: str, *, relpath: str | None = None,
                 searched: Sequence[Path] = (), url: str | None = None):
        super().__init__(message)
        self.relpath = relpath
        self.searched = list(searched)
        self.url = url


class ChecksumMismatch(DataError):
    """A file's sha256 differs from the pinned value in :data:`FILES`.

    :ivar path: the offending file. :ivar expected: pinned sha256. :ivar actual: computed sha256.
    """

    def __init__(self, message: str, *, path: Path | None = None, expected: str | None = None,
                 actual: str | None = None):
        super().__init__(message)
        self.path = path
        self.expected = expected
        self.actual = actual


class DataCorrupt(DataError):
    """A file is truncated or cannot be parsed in its documented format.

    :ivar path: the offending file.
    """

    def __init__(self, message: str, *, path: Path | None = None):
        super().__init__(message)
        self.path = path


def _corrupt(path: Path, problem: str) -> DataCorrupt:
    return DataCorrupt(
        f"{path}: {problem}. The file is truncated or not in the expected format; delete it "
        "and download it again (or restore it from shared/data).",
        path=path,
    )


# --------------------------------------------------------------------------------------------
# Parse wrappers
# --------------------------------------------------------------------------------------------


def _loadtxt(path: Path, what: str, **kwargs) -> np.ndarray:
    """``np.loadtxt`` with parse errors turned into :class:`DataCorrupt` naming the file."""
    try:
        return np.loadtxt(path, **kwargs)
    except (ValueError, EOFError, OSError, zlib.error, UnicodeDecodeError) as exc:
        raise _corrupt(path, f"cannot parse {what} ({exc})") from exc


def _loadmat(path: Path, key: str) -> np.ndarray:
    import scipy.io  # local import: scipy.io is only needed by the MAT-file loaders

    try:
        mat = scipy.io.loadmat(path)
    except Exception as exc:  # scipy raises assorted ValueError/TypeError/OSError subclasses
        raise _corrupt(path, f"cannot read the MAT file ({type(exc).__name__}: {exc})") from exc
    if key not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise _corrupt(path, f"MAT file has no variable {key!r} (found {found})")
    return np.asarray(mat[key])

"""Checksums of the text files in a run folder, so that a file a later command reads (config,
standardisation, history, metrics, cards) is verified like the model files are.

Every JSON file the zoo writes through :func:`experiments.harness.runner.write_json` is recorded
in the folder's ``checksums.sha256``, in ``sha256sum``'s format, so ``sha256sum -c
checksums.sha256`` in the folder checks it by hand too. :func:`read_json` verifies a file against
that record before parsing it: a file edited or corrupted after it was written (say ``y_mean`` in
``standardization.json`` changed by hand, which would shift every prediction) is refused with
:class:`FileIntegrityError`, naming the file. A folder written before checksums existed has no
record and is read as it is.

One writer per folder (:class:`experiments.harness.lock.RunLock`) keeps the record consistent;
it is rewritten atomically at each change.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from experiments.engine.checkpoint import CheckpointError, atomic_write_text

MANIFEST_NAME = "checksums.sha256"


class FileIntegrityError(CheckpointError):
    """A recorded file whose bytes no longer match its checksum, or a file that is not JSON."""


def _entries(folder: Path) -> dict[str, str]:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        digest, sep, name = line.partition("  ")
        if sep and len(digest) == 64:
            out[name] = digest
    return out


def record(path: str | os.PathLike) -> None:
    """Record ``path``'s current sha256 in its folder's ``checksums.sha256``."""
    path = Path(path)
    entries = _entries(path.parent)
    entries[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    atomic_write_text(path.parent / MANIFEST_NAME,
                      "".join(f"{d}  {n}\n" for n, d in sorted(entries.items())))


def read_verified(path: str | os.PathLike) -> bytes:
    """``path``'s bytes, after checking them against the folder's record (when it has one)."""
    path = Path(path)
    data = path.read_bytes()
    expected = _entries(path.parent).get(path.name)
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise FileIntegrityError(
            f"{path} was changed after the zoo wrote it (its sha256 does not match "
            f"{path.parent / MANIFEST_NAME}); restore it from a copy, or re-run the command "
            "that wrote the folder")
    return data


def read_json(path: str | os.PathLike) -> Any:
    """The JSON value in ``path``, verified by :func:`read_verified`; a file that is not JSON is
    a :class:`FileIntegrityError` naming it."""
    data = read_verified(path)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FileIntegrityError(f"{path} is not valid JSON ({exc}); it may be truncated: "
                                 "re-run the command that wrote it") from None

"""Atomic checkpoints of the training state (parameters, optimiser, scheduler, config, history,
random streams, library versions).

Written to a temporary file in the target folder, flushed and fsynced, then ``os.replace``-d over
the destination, so a run killed mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1


def versions() -> dict[str, str]:
    """Library versions, read from package metadata (importing gpytorch just for its version
    would cost a second and a torch.jit deprecation warning)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "torch": torch.__version__}
    for dist in ("pyro-ppl", "gpytorch", "vbzoo"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


class CheckpointError(RuntimeError):
    pass


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`experiments.common.training.save_checkpoint`.

    :raises CheckpointError: naming the file, if it is missing, unreadable or of another format.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # truncated or corrupted file
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); "
                              "it may be truncated; use an earlier checkpoint") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} is not a vbzoo checkpoint of format {FORMAT_VERSION}")
    return ckpt

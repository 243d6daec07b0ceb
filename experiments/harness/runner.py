"""Run folders, logs and metadata for one experiment run:
``results/<name>/<timestamp>-seed<seed>/`` with config.json, metrics.json, run.log, figures."""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from experiments.engine import manifest
from experiments.engine.checkpoint import atomic_write_text


def hardware() -> str:
    """A one-line description of where a run happened."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    cores = os.cpu_count()
    return f"{platform.processor() or platform.machine()} CPU, {cores} cores, torch {torch.__version__}"


def code_version() -> str:
    """``git describe --always --dirty`` of the zoo's checkout (``-dirty``: with uncommitted
    changes), or ``"unknown"`` outside a git checkout."""
    import subprocess

    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                              text=True, check=True, timeout=10,
                              cwd=Path(__file__).resolve().parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def make_run_dir(root: str | os.PathLike, name: str, seed: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(root) / name / f"{stamp}-seed{seed}"
    suffix = 1
    while path.exists():
        path = Path(root) / name / f"{stamp}-seed{seed}-{suffix}"
        suffix += 1
    path.mkdir(parents=True)
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if torch.is_tensor(value):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, obj: Any, indent: int = 2) -> None:
    """Strict JSON (non-finite floats are written as the strings ``"nan"``, ``"inf"``,
    ``"-inf"``; tensors as lists), written atomically (temporary file, fsync, ``os.replace``) and
    recorded in the folder's checksums (:mod:`experiments.engine.manifest`), so that readers
    (:func:`~experiments.engine.manifest.read_json`) find a later edit."""
    atomic_write_text(path, json.dumps(_jsonable(obj), indent=indent, allow_nan=False))
    manifest.record(path)


class RunLog:
    """Attach a file handler writing the run's log to ``run.log`` (and detach on exit)."""

    def __init__(self, out_dir: Path):
        self.handler = logging.FileHandler(out_dir / "run.log")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def __enter__(self):
        root = logging.getLogger()
        root.addHandler(self.handler)
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        logging.getLogger().removeHandler(self.handler)
        self.handler.close()

    def traceback(self, logger: logging.Logger, message: str, exc: BaseException) -> None:
        """Log ``message`` everywhere and ``exc``'s traceback to ``run.log`` only: for a failure
        whose own message says what to do (the command line prints it as one line)."""
        logger.error("%s (the traceback is in %s)", message, self.handler.baseFilename)
        record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, "%s", (message,),
                                   (type(exc), exc, exc.__traceback__))
        self.handler.handle(record)

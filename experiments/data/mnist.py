"""MNIST (original IDX files) and statically binarised MNIST.

* :func:`load_mnist`: MNIST, original IDX files (LeCun, Cortes & Burges), parsed by
  :func:`read_idx`.
* :func:`load_binarized_mnist`: statically binarised MNIST 50k/10k/10k (Salakhutdinov & Murray
  2008; Larochelle & Murray 2011).
"""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .errors import _corrupt, _loadmat, _loadtxt
from .files import PathLike, resolve

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

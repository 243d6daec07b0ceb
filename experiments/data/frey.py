"""Frey Face: :func:`load_frey_face`, 1965 images of 28 x 20 (B. Frey, via S. Roweis)."""

from __future__ import annotations

import numpy as np
import torch

from .errors import _corrupt, _loadmat
from .files import PathLike, resolve


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

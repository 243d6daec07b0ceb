"""Mauna Loa CO2: :func:`load_co2`, monthly means, NOAA GML.

Used as in Rasmussen & Williams (2006), Sec. 5.4.3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .errors import _corrupt, _loadtxt
from .files import PathLike, resolve


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

"""The data layer: locate, verify and parse every dataset the experiments use.

No data file is read at import time (only the package's own checksum table, ``SHA256SUMS``).
Every loader takes ``data_dir=None, download=True`` keywords and returns torch tensors
(``float32`` unless said otherwise, no standardisation unless said otherwise).

Files are looked up in ``data_dir``, then ``$VBZOO_DATA_DIR``, then the download cache
``$VBZOO_CACHE_DIR`` (default ``~/.cache/vbzoo``), downloaded into the cache if absent, and always
checked against a pinned sha256; see :mod:`.files` for the details and :mod:`.errors` for the
:class:`DataError` family (:class:`DataFileMissing`, :class:`ChecksumMismatch`,
:class:`DataCorrupt`).

**Datasets** (see :data:`DATASETS` for the files each needs; licences and provenance are in
``shared/data/README.md``), one module per source:

* :mod:`.mnist`: :func:`load_mnist` (original IDX files, LeCun, Cortes & Burges) and
  :func:`load_binarized_mnist` (statically binarised MNIST 50k/10k/10k).
* :mod:`.frey`: :func:`load_frey_face`, Frey Face, 1965 images of 28 x 20.
* :mod:`.uci`: :func:`load_uci`, the 9 UCI regression sets with the splits of Hernandez-Lobato &
  Adams (2015) and Gal & Ghahramani (2016); :class:`RegressionData`.
* :mod:`.uci_large`: :func:`load_uci_large`, kin40k, elevators, pol, bike, protein (10 fixed
  folds or the GPyTorch 80/20 protocol).
* :mod:`.mushroom`: :func:`load_mushroom`, UCI Mushroom, one-hot, for the Blundell et al. bandit.
* :mod:`.co2`: :func:`load_co2`, Mauna Loa CO2 monthly means (NOAA GML).
* :mod:`.synthetic`: :func:`blundell_toy`, the synthetic curve of Blundell et al. (2015), Fig. 5.
* :mod:`.tabular`: :func:`load_table`, a user's own CSV / ``.npz`` / ``.pt`` table
  (``python -m experiments fit``).

:mod:`.catalogue` holds :data:`DATASETS` and :func:`fetch`. Import everything from this package
(``from experiments import data``); the submodules are an implementation detail.
"""

from .catalogue import DATASETS, DatasetInfo, fetch
from .co2 import CO2Data, load_co2
from .errors import ChecksumMismatch, DataCorrupt, DataError, DataFileMissing
from .files import CACHE_DIR_ENV, DATA_DIR_ENV, FILES, RemoteFile, cache_dir, resolve
from .frey import load_frey_face
from .mnist import _BINARIZED_COUNTS as _BINARIZED_COUNTS  # tests shrink a split through it
from .mnist import load_binarized_mnist, load_mnist, read_idx
from .mushroom import MUSHROOM_COLUMNS, load_mushroom
from .synthetic import blundell_toy
from .tabular import Table, load_table
from .uci import UCI_DATASETS, RegressionData, load_uci
from .uci import _make_regression as _make_regression  # used by experiments/uci/protocol.py
from .uci import _uci_folder as _uci_folder  # used by experiments/uci_benchmark.py
from .uci_large import UCI_LARGE_DATASETS, load_uci_large

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
    "Table",
    "blundell_toy",
    "cache_dir",
    "fetch",
    "load_binarized_mnist",
    "load_co2",
    "load_frey_face",
    "load_mnist",
    "load_mushroom",
    "load_table",
    "load_uci",
    "load_uci_large",
    "read_idx",
    "resolve",
]

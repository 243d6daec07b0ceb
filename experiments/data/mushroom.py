"""UCI Mushroom: :func:`load_mushroom`, one-hot (Schlimmer 1987), for the Blundell et al. bandit."""

from __future__ import annotations

import numpy as np
import torch

from .errors import _corrupt
from .files import PathLike, resolve

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

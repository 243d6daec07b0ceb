"""Trained posteriors that ship with the zoo: load one by name, predict with it, check it.

A posterior is a folder ``<NAME>/`` (written by ``python -m experiments export``,
:mod:`experiments.harness.export`) holding

* ``posterior.pt``: the trained pair's ``{"model": state_dict, "guide": state_dict}`` in the
  zoo's verified file format (:mod:`experiments.engine.checkpoint`, kind ``"posterior"``:
  checksummed, read with ``torch.load(weights_only=True)``);
* ``card.json`` (and its rendering ``card.md``): what it is and how to rebuild it (the pair's
  registered names, configs and data-derived constructor arguments), the map between the user's
  units and the model's (``units``), the data and split it was trained on, its metrics, the
  paper's numbers, what training cost, and the sha256 of ``posterior.pt``;
* ``check.csv``: a few held-out rows, on which the card records one metric (``check``) that
  :func:`check_posterior` recomputes.

:func:`load_pretrained` looks for ``<NAME>/`` in the zoo's shipped folder
(``experiments/pretrained/``, :data:`SHIPPED`), then in ``$VBZOO_CACHE_DIR/pretrained/``; a name
in neither but in the index of remote posteriors is downloaded into the latter, every file
sha256-checked, and so is a cached card's state file that is missing where the card gives its
``url`` (:mod:`experiments.harness.pretrained_download`). Every
failure is a :class:`PretrainedError` (a :class:`~experiments.engine.checkpoint.CheckpointError`,
so the command line prints it as one line): an unknown name, a ``posterior.pt`` whose sha256 is
not the card's, a card of a newer card format, a state that does not fit the pair, a crafted
pickle (refused by :func:`~experiments.engine.checkpoint.load_zoo_file`), a failed download.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from pathlib import Path

from .pretrained_download import PretrainedError, cache_root, fetch_remote, fetch_state, remote_index

#: version of the card format this zoo writes and reads (a card of a later one is refused)
CARD_VERSION = 1
#: the zoo's shipped posteriors
SHIPPED = Path(__file__).resolve().parent.parent / "pretrained"
#: the file kind of ``posterior.pt``
KIND = "posterior"
PREFIX = "pretrained:"
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def search_path() -> list[Path]:
    """Where posteriors are looked for, in order: the shipped folder, then
    ``$VBZOO_CACHE_DIR/pretrained`` (default ``~/.cache/vbzoo/pretrained``)."""
    return [SHIPPED, cache_root()]


def known_names() -> list[str]:
    """Every posterior on the search path (a folder with a ``card.json``), sorted."""
    names = set()
    for root in search_path():
        if root.is_dir():
            names.update(p.parent.name for p in root.glob("*/card.json"))
    return sorted(names)


def find(name: str) -> Path:
    """The folder of the posterior ``name`` (``pretrained:`` prefix allowed), downloaded into
    the cache first if it is on disk nowhere but in the index of remote posteriors."""
    name = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if _NAME.fullmatch(name):
        for root in search_path():
            if (root / name / "card.json").is_file():
                return root / name
        remote = remote_index()
        if name in remote:
            return fetch_remote(name, remote[name])
    known = sorted(set(known_names()) | set(remote_index()))
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    where = " then ".join(str(p) for p in search_path()) + " and the index of remote posteriors"
    raise PretrainedError(f"unknown pretrained posterior {name!r}{hint} (known: "
                          f"{', '.join(known) or 'none'}; looked in {where})")


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_card(folder: Path) -> dict:
    """The card of the posterior in ``folder``, its format version checked."""
    path = Path(folder) / "card.json"
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
        version = int(card["card_format_version"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PretrainedError(f"{path} is not a readable card ({type(exc).__name__}: {exc}); "
                              "export the posterior again") from None
    if version > CARD_VERSION:
        raise PretrainedError(f"{path} has card format version {version}, newer than the "
                              f"{CARD_VERSION} this vbzoo reads; upgrade vbzoo to load it")
    return card


def _inside(folder: Path, name) -> Path:
    """``folder / name`` for a plain file name (a card cannot point outside its folder)."""
    if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
        raise PretrainedError(f"{Path(folder) / 'card.json'} names the file {name!r}; a card "
                              "names files of its own folder only")
    return Path(folder) / name


def load_state(folder: Path, card: dict) -> dict:
    """``posterior.pt``'s payload, after checking its sha256 against the card's."""
    path = _inside(folder, card["state"]["file"])
    if not path.is_file() and card["state"].get("url"):
        fetch_state(Path(folder), card, path)
    if not path.is_file():
        raise PretrainedError(f"{path} does not exist (the card {Path(folder) / 'card.json'} "
                              "names it); restore the posterior's folder")
    if sha256_file(path) != card["state"]["sha256"]:
        raise PretrainedError(f"{path} is corrupted: its sha256 does not match the one in "
                              f"{Path(folder) / 'card.json'}; restore it or export it again")
    from experiments.engine.checkpoint import load_zoo_file

    return load_zoo_file(path, KIND)[0]


def build_pair(card: dict, state: dict | None = None):
    """``(model, guide)`` of the card's pair, with ``state`` loaded (``None``: as built)."""
    import torch

    import guides
    import models

    pair = card["pair"]
    try:
        model = models.create_model(pair["model"], **{**pair["model_cfg"], **pair["model_args"]})
        guide = guides.create_guide(pair["guide"], model, **pair["guide_cfg"])
        if pair.get("num_data") is not None:
            model.num_data = int(pair["num_data"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PretrainedError(f"the card's pair {pair.get('model')}/{pair.get('guide')} cannot be "
                              f"built by this vbzoo ({type(exc).__name__}: {exc})") from None
    if state is None:
        return model, guide
    what = "model"
    try:
        model.load_state_dict(state["model"])
        with torch.no_grad():  # lazily built guide parameters come into being at the first call
            guide(*model.example_data(2, torch.Generator().manual_seed(0)))
        what = "guide"
        guide.load_state_dict(state["guide"])
    except (KeyError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])[:300]
        raise PretrainedError(f"the state in posterior {card.get('name')!r} does not fit its pair "
                              f"{pair['model']}/{pair['guide']} ({what}: {detail})") from None
    model.eval()
    return model, guide


def load_pretrained(name: str, device="cpu"):
    """A shipped (or cached) trained posterior by name: ``(model, guide)``, ready for
    :func:`experiments.predict`, on ``device``.

    The model works in the units of its training (see the card's ``units``: inputs and a
    regression target standardised as ``(v - mean) / std``); ``python -m experiments predict
    pretrained:NAME --data FILE`` predicts in the user's units. The card is
    :func:`pretrained_card`.

    :raises PretrainedError: an unknown name, a corrupted or crafted ``posterior.pt``, a card
        of a newer format, a state that does not fit the pair, or a failed download (no network,
        a checksum mismatch), one line each.
    """
    return load_folder(find(name), device)[:2]


def load_folder(folder, device="cpu"):
    """``(model, guide, card)`` of the posterior in ``folder`` (checked as by
    :func:`load_pretrained`)."""
    from experiments.engine.loader import resolve_device

    card = read_card(Path(folder))
    model, guide = build_pair(card, load_state(Path(folder), card))
    dev = resolve_device(device)
    return model.to(dev), guide.to(dev), card


def pretrained_card(name: str) -> dict:
    """The card (``card.json``) of the posterior ``name``."""
    return read_card(find(name))


# ------------------------------------------------------------------------------------------------
# prediction in the user's units, and the card's check


def units(card: dict):
    """The card's map between the user's units and the model's, as the ``fit`` command's
    :class:`~experiments.harness.tables.Standardization`."""
    from .tables import Standardization

    return Standardization(**card["units"])


def predict_table(model, guide, card: dict, path, *, seed: int = 0, need_target: bool = False):
    """``(prediction in the user's units, table, standardization)`` at the rows of ``path``."""
    import numpy as np
    import torch

    from experiments.data.tabular import load_table
    from experiments.engine.predict import predict
    from models.base import first_tensor

    std = units(card)
    table = load_table(path, std.target, need_target=need_target, columns=std.columns)
    dtype = first_tensor(model).dtype  # (an all-Bayesian bnn has buffers but no parameters)
    x = torch.as_tensor((table.x - np.asarray(std.x_mean)) / np.asarray(std.x_std), dtype=dtype)
    y = None
    if table.y is not None:
        if std.task == "regression":
            y = torch.as_tensor((table.y - std.y_mean) / std.y_std, dtype=dtype)
        else:
            y = std.y(table.y, card["pair"]["model_args"].get("likelihood"))
    num_samples = int(card.get("predict", {}).get("num_samples", 100))
    pred = predict(model, guide, x, num_samples, y=y, seed=seed)
    return std.prediction(pred), table, std


def run_predict(name: str, data: str, out: str | None = None, device: str = "cpu",
                seed: int = 0):
    """The ``predict pretrained:NAME`` command: like ``predict RUN_DIR`` (the same CSV and
    summary), the default ``--out`` being ``./<NAME>-predictions.csv``."""
    import numpy as np

    from .userpredict import score, write_predictions

    name = name[len(PREFIX):] if name.startswith(PREFIX) else name
    path = Path(out) if out else Path(f"{name}-predictions.csv")
    if path.exists() and path.resolve() == Path(data).resolve():
        raise ValueError(f"--out {path} is the input file --data {data}; choose another --out")
    model, guide, card = load_folder(find(name), device)
    if card["units"]["task"] == "images":
        raise PretrainedError(f"{name!r} is a VAE (images): predict works for regression and "
                              "classification posteriors; load it with load_pretrained")
    pred, table, std = predict_table(model, guide, card, data, seed=seed)
    write_predictions(path, pred, std, y=table.y, rows=np.arange(table.num_rows))
    summary = {"rows": table.num_rows, "out": str(path)}
    if table.y is not None:
        summary.update(score(pred, table.y, std))
    return path, summary


def check_metric(pred, y, metric: str, std=None) -> float:
    """``metric`` (``rmse``, ``test_ll`` or ``accuracy``) of a prediction in the user's units
    (``std``: the card's :func:`units`, which map a label to its class index)."""
    import torch

    from experiments.engine import metrics as M

    if metric == "rmse":
        return M.rmse(pred.mean, torch.as_tensor(y, dtype=pred.mean.dtype))
    if metric == "test_ll":
        return float(pred.log_likelihood)
    if metric == "accuracy":
        return float((pred.probs.argmax(-1).numpy() == std.labels(y)).mean())
    raise PretrainedError(f"unknown check metric {metric!r}")


def image_nll(model, guide, card: dict, path, metric: str, seed: int) -> float:
    """``nll_K`` (``metric``): minus the importance-weighted bound with K samples, nats per image,
    of the images in the CSV ``path`` (one pixel a column), the draws seeded by ``seed``."""
    import numpy as np
    import torch

    from experiments.engine.iwae import iwae_bound
    from models.base import first_tensor

    if not re.fullmatch(r"nll_[1-9][0-9]*", metric):
        raise PretrainedError(f"unknown check metric {metric!r} for images (use nll_K)")
    rows = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    x = torch.as_tensor(rows, dtype=first_tensor(model).dtype)
    x = x.reshape(len(rows), *card["units"]["image_shape"])
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        return -float(iwae_bound(model, guide, x, k=int(metric[4:])))


def check_posterior(name, seed: int | None = None, double: bool = False) -> dict:
    """Recompute the card's ``check`` metric on ``check.csv``: ``{"metric", "value",
    "expected", "tolerance", "ok"}`` (``ok``: within the card's relative tolerance).

    :param name: a posterior's name, or the path of its folder.
    :param seed: the seed of the predictive draws (default: the card's).
    :param double: predict in float64 (the export measures a float32 check's rounding with it).
    """
    folder = Path(name) if Path(name).is_dir() else find(str(name))
    model, guide, card = load_folder(folder)
    if double:
        model, guide = model.double(), guide.double()
    check = card["check"]
    seed = int(check.get("seed", 0) if seed is None else seed)
    if card["units"]["task"] == "images":  # a VAE: the importance-weighted bound, nll_K
        value = image_nll(model, guide, card, _inside(folder, check["file"]), check["metric"], seed)
    else:
        pred, table, std = predict_table(model, guide, card, _inside(folder, check["file"]),
                                         seed=seed, need_target=True)
        value = check_metric(pred, table.y, check["metric"], std)
    if check.get("value") is None:  # (the export computing it)
        return {"metric": check["metric"], "value": value, "ok": None}
    expected, tol = float(check["value"]), float(check["tolerance"])
    ok = math.isfinite(value) and abs(value - expected) <= tol * max(1.0, abs(expected))
    return {"metric": check["metric"], "value": value, "expected": expected, "tolerance": tol,
            "ok": ok}


__all__ = ["CARD_VERSION", "PretrainedError", "SHIPPED", "check_posterior", "find",
           "known_names", "load_folder", "load_pretrained", "pretrained_card", "remote_index",
           "run_predict", "search_path"]

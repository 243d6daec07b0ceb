"""Posteriors that are downloaded on first use, sha256-checked as the data layer's files are.

**The index of remote posteriors** maps a name to where its folder's files are and the sha256 of
each::

    {"NAME": {"url": "https://host/path/NAME/card.json",
              "sha256": {"card.json": "<hex>", "posterior.pt": "<hex>", "check.csv": "<hex>"}}}

Each file is fetched from ``url``'s folder (``card.json`` must be listed; the others are the
files of the folder that ``python -m experiments export`` writes). The index is :data:`REMOTE`
(the zoo's own, in this module) merged with ``$VBZOO_CACHE_DIR/pretrained/index.json`` where
that file exists (a user's or a mirror's entries; they win over the zoo's).

:func:`fetch_remote` downloads every file of an entry into a hidden staging folder of
``$VBZOO_CACHE_DIR/pretrained/`` (each file with :func:`experiments.data.files.download`:
a temporary file checked against its sha256, then renamed) and only then moves the staging
folder to ``NAME/``, so the cache never holds a partial or unverified posterior.
:func:`fetch_state` does the same for a cached card whose ``state`` gives a ``"url"``, where
its state file is missing. Every failure is a one-line :class:`PretrainedError`: no network
(naming the URL, and the folder to download the files into by hand), a checksum mismatch
(naming the expected and the actual sha256), an unreadable index.
"""

from __future__ import annotations

import http.client
import json
import shutil
import tempfile
import urllib.parse
from pathlib import Path

from experiments.engine.checkpoint import CheckpointError

#: the zoo's remote posteriors (name -> {"url": URL of its card.json, "sha256": {file: hex}})
REMOTE: dict[str, dict] = {}
INDEX_FILE = "index.json"


class PretrainedError(CheckpointError):
    """A posterior that cannot be found or loaded; the message is one line saying what is wrong."""


def cache_root() -> Path:
    """``$VBZOO_CACHE_DIR/pretrained`` (default ``~/.cache/vbzoo/pretrained``)."""
    from experiments.data.files import cache_dir

    return cache_dir() / "pretrained"


def remote_index() -> dict[str, dict]:
    """:data:`REMOTE` updated with the entries of ``$VBZOO_CACHE_DIR/pretrained/index.json``."""
    index = dict(REMOTE)
    path = cache_root() / INDEX_FILE
    if path.is_file():
        try:
            extra = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(extra, dict):
                raise ValueError("not a JSON object of name -> entry")
        except (OSError, ValueError) as exc:
            raise PretrainedError(f"{path} is not a readable index of remote posteriors "
                                  f"({type(exc).__name__}: {exc}); fix or delete it") from None
        index.update(extra)
    return index


def _plain(name, where: str) -> str:
    if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
        raise PretrainedError(f"{where} names the file {name!r}; a posterior's files are plain "
                              "names of its own folder")
    return name


def _one_line(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return " ".join(str(reason).split()) or type(exc).__name__


def _get(url: str, dest: Path, sha256: str, what: str, by_hand: Path) -> None:
    """Download ``url`` to ``dest`` with its sha256 checked; failures as one line."""
    from experiments.data.errors import ChecksumMismatch
    from experiments.data.files import download

    try:
        download(url, dest, sha256, desc=what, label=what)
    except ChecksumMismatch as exc:
        raise PretrainedError(f"checksum mismatch for {what} downloaded from {url}: expected "
                              f"sha256 {exc.expected}, got {exc.actual}; the download was "
                              "discarded (the remote file changed or is damaged; nothing was "
                              "written to the cache)") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise PretrainedError(f"cannot download {what} from {url} ({_one_line(exc)}); with no "
                              f"network, download it by hand into {by_hand} (its sha256 must be "
                              f"{sha256}) and load it again") from None


def fetch_remote(name: str, entry: dict) -> Path:
    """Download the remote posterior ``name`` (its :func:`remote_index` ``entry``) into
    ``$VBZOO_CACHE_DIR/pretrained/NAME/``, every file checked; returns the folder."""
    root = cache_root()
    dest = root / name
    try:
        url = str(entry["url"])
        sums = {_plain(f, f"the index entry of {name!r}"): str(h) for f, h in entry["sha256"].items()}
        if "card.json" not in sums:
            raise KeyError("card.json")
    except (KeyError, TypeError, AttributeError) as exc:
        raise PretrainedError(f"the index entry of remote posterior {name!r} is not "
                              '{"url": URL of its card.json, "sha256": {"card.json": HEX, ...}} '
                              f"({type(exc).__name__}: {exc})") from None
    root.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".part", dir=root))
    try:
        for file in sorted(sums, key=lambda f: f == "card.json"):  # the card last
            _get(urllib.parse.urljoin(url, file), stage / file, sums[file],
                 f"{file} of pretrained posterior {name!r}", dest)
        if dest.exists():  # a folder without a card (a download by hand begun): fill it
            for path in stage.iterdir():
                path.replace(dest / path.name)
        else:
            stage.replace(dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return dest


def fetch_state(folder: Path, card: dict, path: Path) -> None:
    """Download the state file ``path`` of the card in ``folder`` from the card's
    ``state.url``, checked against the card's ``state.sha256``."""
    state = card["state"]
    _get(str(state["url"]), path, str(state["sha256"]),
         f"{path.name} of pretrained posterior {card.get('name', folder.name)!r}", folder)


__all__ = ["INDEX_FILE", "REMOTE", "PretrainedError", "cache_root", "fetch_remote", "fetch_state",
           "remote_index"]

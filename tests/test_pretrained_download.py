"""Remote posteriors (issue 26): a name in the index of remote posteriors, or a cached card whose
state gives a ``url``, is downloaded into ``$VBZOO_CACHE_DIR/pretrained/`` with every file
sha256-checked, from a local HTTP server (no network needed); the failures are one line."""

from __future__ import annotations

import csv
import functools
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from experiments.harness import pretrained as P
from experiments.harness import pretrained_download as D

ROOT = Path(__file__).resolve().parent.parent
NAME = "remote-co2"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *args):  # no noise on stderr
        pass

    def do_GET(self):
        _Quiet.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty ``$VBZOO_CACHE_DIR`` (its ``pretrained/`` folder returned)."""
    monkeypatch.setenv("VBZOO_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache" / "pretrained").mkdir(parents=True)
    return tmp_path / "cache" / "pretrained"


@pytest.fixture
def served(tmp_path):
    """A copy of the shipped co2-svgp as ``remote-co2``, served over HTTP on 127.0.0.1: yields
    ``(URL of the served folder, its path)``."""
    www = tmp_path / "www"
    folder = www / "posteriors" / NAME
    shutil.copytree(P.SHIPPED / "co2-svgp", folder)
    card = json.loads((folder / "card.json").read_text())
    card["name"] = NAME
    (folder / "card.json").write_text(json.dumps(card))
    _Quiet.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_Quiet, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/posteriors/{NAME}/", folder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _index(cache: Path, url: str, folder: Path, name: str = NAME) -> dict:
    """Write ``cache/index.json`` listing ``folder``'s files (as they are now) at ``url``."""
    entry = {"url": url + "card.json", "sha256": {p.name: _sha(p) for p in folder.iterdir()}}
    (cache / "index.json").write_text(json.dumps({name: entry}))
    return entry


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(cache: Path, *args):
    env = {**os.environ, "VBZOO_CACHE_DIR": str(cache.parent)}
    return subprocess.run([sys.executable, "-m", "experiments", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)


def _one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    return msg


def test_remote_name_is_downloaded_checked_loaded_and_predicts(cache, served):
    url, folder = served
    _index(cache, url, folder)
    model, guide = P.load_pretrained(NAME)
    got = cache / NAME
    assert sorted(p.name for p in got.iterdir()) == sorted(p.name for p in folder.iterdir())
    assert all(_sha(got / p.name) == _sha(p) for p in folder.iterdir())
    assert sorted(p.name for p in cache.iterdir()) == ["index.json", NAME]  # no staging left
    assert P.check_posterior(NAME)["ok"]
    assert NAME in P.known_names()
    # once cached, it is loaded from the cache: no further request
    n = len(_Quiet.requests)
    P.load_pretrained(NAME)
    assert len(_Quiet.requests) == n


def test_the_zoos_own_index(cache, served, monkeypatch):
    url, folder = served
    entry = _index(cache, url, folder)
    (cache / "index.json").unlink()
    monkeypatch.setitem(D.REMOTE, NAME, entry)
    assert P.PretrainedError is D.PretrainedError and NAME in P.remote_index()
    P.load_pretrained(NAME)
    assert sorted(p.name for p in cache.iterdir()) == [NAME]


def test_tampered_byte_is_a_checksum_error_and_nothing_is_cached(cache, served):
    url, folder = served
    entry = _index(cache, url, folder)
    data = bytearray((folder / "posterior.pt").read_bytes())
    data[-100] ^= 0x01
    (folder / "posterior.pt").write_bytes(bytes(data))
    with pytest.raises(P.PretrainedError, match="checksum mismatch") as info:
        P.load_pretrained(NAME)
    msg = _one_line(info)
    assert entry["sha256"]["posterior.pt"] in msg and hashlib.sha256(data).hexdigest() in msg
    assert url + "posterior.pt" in msg
    assert [p.name for p in cache.iterdir()] == ["index.json"]  # nothing half-written


def test_unreachable_url_is_a_one_line_error(cache, served):
    _, folder = served
    url = f"http://127.0.0.1:{_free_port()}/posteriors/{NAME}/"
    _index(cache, url, folder)
    with pytest.raises(P.PretrainedError, match="cannot download") as info:
        P.load_pretrained(NAME)
    msg = _one_line(info)
    assert url in msg and "by hand into" in msg and str(cache / NAME) in msg
    assert [p.name for p in cache.iterdir()] == ["index.json"]


def test_unknown_name_lists_the_remote_ones_too(cache, served):
    url, folder = served
    _index(cache, url, folder)
    with pytest.raises(P.PretrainedError, match=f"did you mean '{NAME}'") as info:
        P.load_pretrained("remote-co3")
    msg = _one_line(info)
    assert NAME in msg.split("known: ")[1] and "co2-svgp" in msg
    assert _Quiet.requests == []


def test_bad_index_entry_and_unreadable_index(cache):
    (cache / "index.json").write_text(json.dumps({NAME: {"url": "http://127.0.0.1:9/x/card.json"}}))
    with pytest.raises(P.PretrainedError, match="is not"):
        P.load_pretrained(NAME)
    (cache / "index.json").write_text(json.dumps({NAME: {"url": "http://127.0.0.1:9/card.json",
                                                         "sha256": {"../card.json": "0" * 64}}}))
    with pytest.raises(P.PretrainedError, match="plain"):
        P.load_pretrained(NAME)
    (cache / "index.json").write_text("{")
    with pytest.raises(P.PretrainedError, match="not a readable index"):
        P.load_pretrained(NAME)


def test_cached_card_with_a_state_url(cache, served):
    url, served_folder = served
    folder = cache / "url-co2"
    shutil.copytree(served_folder, folder)
    (folder / "posterior.pt").unlink()
    card = json.loads((folder / "card.json").read_text())
    card["state"]["url"] = url + "posterior.pt"
    (folder / "card.json").write_text(json.dumps(card))
    # a tampered served file: refused, nothing written
    good = (served_folder / "posterior.pt").read_bytes()
    (served_folder / "posterior.pt").write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(P.PretrainedError, match="checksum mismatch") as info:
        P.load_pretrained("url-co2")
    assert card["state"]["sha256"] in _one_line(info)
    assert sorted(p.name for p in folder.iterdir()) == ["card.json", "card.md", "check.csv"]
    # the right bytes: downloaded and loaded
    (served_folder / "posterior.pt").write_bytes(good)
    assert P.check_posterior("url-co2")["ok"]
    assert _sha(folder / "posterior.pt") == card["state"]["sha256"]


def test_cli_predict_downloads_a_remote_posterior(cache, served, tmp_path):
    url, folder = served
    _index(cache, url, folder)
    out = tmp_path / "pred.csv"
    proc = _cli(cache, "predict", f"pretrained:{NAME}", "--data", str(folder / "check.csv"),
                "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"rmse"' in proc.stdout
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert rows and all(300 < float(r["mean"]) < 500 for r in rows)
    assert (cache / NAME / "posterior.pt").is_file()
    # an unreachable index entry: one line on stderr
    _index(cache, f"http://127.0.0.1:{_free_port()}/x/", folder, name="gone-co2")
    proc = _cli(cache, "predict", "pretrained:gone-co2", "--data", str(folder / "check.csv"),
                "--out", str(tmp_path / "p2.csv"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot download" in errors[0], proc.stderr

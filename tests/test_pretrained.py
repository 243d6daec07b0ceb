"""Shipped posteriors (experiments/pretrained/): their cards, checksums and check metrics, the
one-line errors of load_pretrained and `predict pretrained:NAME`, the size budget, the export
command and the docs page rendered from the cards."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from experiments.engine import checkpoint as C
from experiments.harness import pretrained as P
from experiments.harness.pretrained_docs import PAGE, render_card, render_page
from tests.helpers import require_data

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p.parent.name for p in P.SHIPPED.glob("*/card.json"))
MB = 1_000_000


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty ``$VBZOO_CACHE_DIR`` (its ``pretrained/`` folder returned)."""
    monkeypatch.setenv("VBZOO_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache" / "pretrained").mkdir(parents=True)
    return tmp_path / "cache" / "pretrained"


def _copy(cache: Path, name: str, new: str) -> Path:
    """A copy of the shipped ``name`` in the cache, as ``new``."""
    folder = cache / new
    shutil.copytree(P.SHIPPED / name, folder)
    card = json.loads((folder / "card.json").read_text())
    card["name"] = new
    (folder / "card.json").write_text(json.dumps(card))
    return folder


def _set_card(folder: Path, **changes) -> None:
    card = json.loads((folder / "card.json").read_text())
    for key, value in changes.items():
        node = card
        *path, last = key.split(".")
        for k in path:
            node = node[k]
        node[last] = value
    (folder / "card.json").write_text(json.dumps(card))


def _cli(*args, env_cache: Path | None = None):
    env = dict(os.environ)
    if env_cache is not None:
        env["VBZOO_CACHE_DIR"] = str(env_cache.parent)
    return subprocess.run([sys.executable, "-m", "experiments", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)


def _one_line_error(proc, *words):
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for w in words:
        assert w in errors[0], errors[0]
    return errors[0]


# ------------------------------------------------------------------------------------------------
# what ships


def test_something_ships():
    assert "co2-svgp" in SHIPPED and any(P.read_card(P.SHIPPED / n)["experiment"] == "fit"
                                         for n in SHIPPED), SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_posterior_loads_and_holds_its_card(name):
    folder = P.SHIPPED / name
    card = P.read_card(folder)
    assert card["name"] == name and card["card_format_version"] <= P.CARD_VERSION
    data = (folder / "posterior.pt").read_bytes()
    assert hashlib.sha256(data).hexdigest() == card["state"]["sha256"]
    assert len(data) == card["state"]["bytes"]
    model, guide = P.load_pretrained(name)
    assert not model.training
    got = P.check_posterior(name)
    assert got["ok"], got
    if card["check"]["tolerance"] > 1e-6:  # Monte Carlo: the seed matters, within its spread
        assert "mc_sd_over_5_seeds" in card["check"]
    # the card's check rows are part of the arm's held-out test set: the recomputed metric is of
    # the same size as the run's
    if card["check"]["metric"] == "rmse":
        run_rmse = next(v for k, v in card["metrics"].items() if "rmse" in k)
        assert 0.2 * run_rmse < got["value"] < 5 * run_rmse
    assert (folder / "card.md").read_text() == render_card(card)


def test_size_budget():
    sizes = {p: p.stat().st_size for p in P.SHIPPED.rglob("*") if p.is_file()}
    assert all(s <= 10 * MB for s in sizes.values()), sizes
    assert sum(sizes.values()) <= 25 * MB, sum(sizes.values())


def test_docs_page_is_rendered_from_the_cards():
    assert PAGE.read_text(encoding="utf-8") == render_page(), \
        "docs/pretrained.md is stale: run python -m experiments.harness.pretrained_docs"
    assert "pretrained" in (ROOT / "docs" / "index.rst").read_text()


def test_public_api():
    import experiments

    assert experiments.load_pretrained is P.load_pretrained
    assert "load_pretrained" in experiments.__all__


# ------------------------------------------------------------------------------------------------
# errors, each one line


def test_unknown_name_lists_the_known_and_a_close_one(cache):
    with pytest.raises(P.PretrainedError, match=r"did you mean 'co2-svgp'.*known: .*co2-svgp"):
        P.load_pretrained("co2-svgpp")
    with pytest.raises(P.PretrainedError, match="unknown"):
        P.load_pretrained("../co2-svgp")
    proc = _cli("predict", "pretrained:co2-svgpp", "--data", str(P.SHIPPED / "co2-svgp" /
                                                                  "check.csv"))
    _one_line_error(proc, "unknown pretrained posterior", "did you mean 'co2-svgp'")


def test_cache_folder_is_searched_after_the_shipped_one(cache):
    _copy(cache, "co2-svgp", "my-co2")
    assert "my-co2" in P.known_names()
    assert P.check_posterior("my-co2")["ok"]


def test_flipped_byte_is_a_checksum_error(cache, tmp_path):
    folder = _copy(cache, "co2-svgp", "flipped")
    data = bytearray((folder / "posterior.pt").read_bytes())
    data[-100] ^= 0x01
    (folder / "posterior.pt").write_bytes(bytes(data))
    with pytest.raises(P.PretrainedError, match="corrupted: its sha256"):
        P.load_pretrained("flipped")
    # the same with the card's sha256 made to match: the file's own checksum refuses it
    _set_card(folder, **{"state.sha256": hashlib.sha256(bytes(data)).hexdigest()})
    with pytest.raises(C.CheckpointError, match="checksum"):
        P.load_pretrained("flipped")
    proc = _cli("predict", "pretrained:flipped", "--data", str(folder / "check.csv"),
                "--out", str(tmp_path / "p.csv"), env_cache=cache)
    _one_line_error(proc, "flipped", "corrupted")


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


def _zoo_file_with(body: bytes) -> bytes:
    """A zoo file around ``body`` whose header's length and sha256 are right."""
    header = {"format": C.FORMAT, "format_version": C.FORMAT_VERSION, "kind": P.KIND, "meta": {},
              "versions": {}, "payload_bytes": len(body),
              "sha256": hashlib.sha256(body).hexdigest()}
    head = json.dumps(header).encode()
    return C.MAGIC + C._LEN.pack(len(head)) + head + body


@pytest.mark.parametrize("how", ["zoo-header", "plain-pickle"])
def test_crafted_pickle_is_refused(cache, tmp_path, how):
    folder = _copy(cache, "co2-svgp", f"crafted-{how}")
    buf = io.BytesIO()
    torch.save({"model": _Evil(), "guide": {}}, buf)
    data = _zoo_file_with(buf.getvalue()) if how == "zoo-header" else buf.getvalue()
    (folder / "posterior.pt").write_bytes(data)
    _set_card(folder, **{"state.sha256": hashlib.sha256(data).hexdigest()})
    match = "cannot be loaded" if how == "zoo-header" else "plain torch.save file"
    with pytest.raises(C.CheckpointError, match=match):
        P.load_pretrained(f"crafted-{how}")
    proc = _cli("predict", f"pretrained:crafted-{how}", "--data", str(folder / "check.csv"),
                "--out", str(tmp_path / "p.csv"), env_cache=cache)
    _one_line_error(proc, f"crafted-{how}")


def test_newer_card_format_is_refused(cache):
    folder = _copy(cache, "co2-svgp", "newer")
    _set_card(folder, card_format_version=P.CARD_VERSION + 1)
    with pytest.raises(P.PretrainedError, match="newer than"):
        P.load_pretrained("newer")


def test_state_that_does_not_fit_the_pair(cache):
    folder = _copy(cache, "co2-svgp", "misfit")
    card = json.loads((folder / "card.json").read_text())
    m = card["pair"]["model_cfg"]["num_inducing"]
    _set_card(folder, **{"pair.model_cfg.num_inducing": m + 1})
    with pytest.raises(P.PretrainedError, match=r"does not fit its pair svgp/cholesky \(model: "):
        P.load_pretrained("misfit")


# ------------------------------------------------------------------------------------------------
# predict pretrained:NAME, export


def test_predict_pretrained_writes_predictions(tmp_path):
    rows = list(csv.DictReader((P.SHIPPED / "co2-svgp" / "check.csv").read_text().splitlines()))
    new = tmp_path / "years.csv"
    new.write_text("year\n" + "".join(f"{r['year']}\n" for r in rows[:5]) + "2030.5\n")
    out = tmp_path / "pred.csv"
    proc = _cli("predict", "pretrained:co2-svgp", "--data", str(new), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = list(csv.DictReader(Path(out).read_text().splitlines()))
    assert len(got) == 6 and list(got[0])[:3] == ["row", "mean", "sd"]
    # in ppm: the Mauna Loa record is between 300 and 500 ppm
    assert all(300 < float(r["mean"]) < 500 and float(r["sd"]) > 0 for r in got)
    # with the target column, the metrics are printed too
    proc = _cli("predict", "pretrained:co2-svgp", "--data",
                str(P.SHIPPED / "co2-svgp" / "check.csv"), "--out", str(out))
    assert proc.returncode == 0 and '"rmse"' in proc.stdout, proc.stderr[-2000:]


@pytest.mark.experiments
def test_export_of_a_smoke_run(tmp_path):
    require_data("co2")
    proc = _cli("run", "co2", "--smoke", "--out", str(tmp_path / "runs"), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = next((tmp_path / "runs" / "co2").iterdir())
    for half in (False, True):
        args = ["export", str(run / "svgp"), "--name", "smoke-co2", "--to",
                str(tmp_path / ("half" if half else "full"))] + (["--half"] if half else [])
        proc = _cli(*args)
        assert proc.returncode == 0, proc.stderr[-2000:]
        folder = tmp_path / ("half" if half else "full") / "smoke-co2"
        card = P.read_card(folder)
        assert card["smoke"] is True and card["arm"] == "svgp"
        assert card["pair"]["model_args"]["dtype"] == "float64"
        assert P.check_posterior(folder)["ok"]
        payload, _ = C.load_zoo_file(folder / "posterior.pt", P.KIND)
        dtypes = {t.dtype for t in payload["guide"].values()}
        assert dtypes == ({torch.float16} if half else {torch.float64})
        assert ("value_full_precision" in card["check"]) == half
    proc = _cli("export", str(run / "mlp"), "--name", "x", "--to", str(tmp_path))
    _one_line_error(proc, "no export recipe")


def test_card_cannot_point_outside_its_folder(cache):
    folder = _copy(cache, "co2-svgp", "escape")
    _set_card(folder, **{"state.file": "../co2-svgp/posterior.pt"})
    with pytest.raises(P.PretrainedError, match="names files of its own folder only"):
        P.load_pretrained("escape")


def test_export_of_a_fit_run(tmp_path):
    """A short ``fit`` on a synthetic table, exported and predicted with by name."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(80, 2))
    y = np.sin(x[:, 0]) + 0.5 * x[:, 1] + 0.1 * rng.standard_normal(80)
    table = tmp_path / "t.csv"
    table.write_text("a,b,y\n" + "".join(f"{u},{v},{w}\n" for (u, v), w in zip(x.tolist(), y.tolist())))
    proc = _cli("fit", "--model", "svgp", "--guide", "cholesky", "--data", str(table), "--target",
                "y", "--out", str(tmp_path / "runs"), "--no-progress", "--set", "fit.epochs=3",
                "--set", "model_cfg.num_inducing=8")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = next((tmp_path / "runs" / "fit").iterdir())
    cache = tmp_path / "cache" / "pretrained"
    proc = _cli("export", str(run), "--name", "tiny", "--to", str(cache), "--check-rows", "5")
    assert proc.returncode == 0, proc.stderr[-2000:]
    card = P.read_card(cache / "tiny")
    assert card["experiment"] == "fit" and card["units"]["columns"] == ["a", "b"]
    assert card["pair"]["model_args"]["input_dim"] == 2 and card["check"]["rows"] == 5
    assert P.check_posterior(cache / "tiny")["ok"]
    out = tmp_path / "p.csv"
    proc = _cli("predict", "pretrained:tiny", "--data", str(table), "--out", str(out),
                env_cache=cache)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(out.read_text().splitlines()) == 81


def test_export_of_a_classification_fit(tmp_path):
    """Labels 3 and 7 (not 0/1): the check's accuracy maps them to class indices."""
    import numpy as np

    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 2))
    label = np.where(x[:, 0] + x[:, 1] > 0, 7, 3)
    table = tmp_path / "c.csv"
    table.write_text("a,b,label\n" + "".join(f"{u},{v},{w}\n" for (u, v), w in
                                             zip(x.tolist(), label.tolist())))
    proc = _cli("fit", "--model", "svgp", "--guide", "cholesky", "--data", str(table), "--target",
                "label", "--task", "classification", "--out", str(tmp_path / "runs"),
                "--no-progress", "--set", "fit.epochs=20", "--set", "model_cfg.num_inducing=8")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = next((tmp_path / "runs" / "fit").iterdir())
    proc = _cli("export", str(run), "--name", "tiny-cls", "--to", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    card = P.read_card(tmp_path / "out" / "tiny-cls")
    assert card["check"]["metric"] == "accuracy" and card["units"]["classes"] == [3.0, 7.0]
    got = P.check_posterior(tmp_path / "out" / "tiny-cls")
    assert got["ok"] and got["value"] >= 0.7, got

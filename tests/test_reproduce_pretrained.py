"""``python -m experiments reproduce --pretrained``: the shipped posteriors scored against their
cards with no training (experiments/harness/reproduce_pretrained.py); a tampered card is a FAILED
row and exit 1; the export recipes of svgp-classification, dkl-regression, iwae-nll,
kingma-fig2, uci-benchmark and svgp-uci, end to end on smoke runs; blundell-mnist's BbB recipe
and scorer on a smoke run; the figures of a full run (co2, blundell-regression)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.harness import pretrained as P
from experiments.harness.reproduce_pretrained import HEADLINES, posterior_rows
from tests.helpers import require_data

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p.parent.name for p in P.SHIPPED.glob("*/card.json"))


def _cli(*args, cache: Path):
    env = {**os.environ, "VBZOO_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "experiments", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)


def _rows(report: Path) -> list[list[str]]:
    lines = [ln for ln in report.read_text().splitlines() if ln.startswith("| ")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[1:]]


def _tampered(cache: Path, name: str, new: str, **changes) -> Path:
    folder = cache / "pretrained" / new
    shutil.copytree(P.SHIPPED / name, folder)
    card = json.loads((folder / "card.json").read_text())
    card["name"] = new
    for key, value in changes.items():
        node = card
        *path, last = key.split(".")
        for k in path:
            node = node[k]
        node[last] = value
    (folder / "card.json").write_text(json.dumps(card))
    return folder


def test_reproduce_pretrained_smoke_passes_for_every_shipped_posterior(tmp_path):
    proc = _cli("reproduce", "--pretrained", "--smoke", "--out", str(tmp_path / "out"),
                cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = tmp_path / "out" / "REPORT-pretrained-smoke.md"
    assert f"wrote {report}" in proc.stdout
    rows = _rows(report)
    assert sorted({r[0] for r in rows}) == SHIPPED
    for r in rows:
        assert r[6] == "PASS" and r[7] == f"from pretrained {r[0]}", r
        tol = float(r[5].split()[1])  # the card's: rel 1e-4 (Monte Carlo) or a float32 spread
        assert r[2].startswith("check ") and float(r[3]) == pytest.approx(
            float(r[4]), rel=max(tol, 1e-4), abs=tol)
    assert "| FAILED |" not in report.read_text()


def test_tampered_card_metric_is_a_failed_row_and_exit_1(tmp_path):
    cache = tmp_path / "cache"
    card = P.read_card(P.SHIPPED / "co2-svgp")
    _tampered(cache, "co2-svgp", "co2-svgp-tampered", **{"check.value": card["check"]["value"] * 1.01})
    proc = _cli("reproduce", "--pretrained", "--smoke", "--out", str(tmp_path / "out"), cache=cache)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "1 FAILED" in proc.stdout
    rows = _rows(tmp_path / "out" / "REPORT-pretrained-smoke.md")
    failed = [r for r in rows if r[6] == "FAILED"]
    assert [r[0] for r in failed] == ["co2-svgp-tampered"], failed
    assert failed[0][7] == "from pretrained co2-svgp-tampered"
    assert all(r[6] == "PASS" for r in rows if r[0] != "co2-svgp-tampered")


def test_headline_metrics_are_recomputed_and_a_tampered_one_fails(tmp_path):
    name = "blundell-regression-bbb"
    lines, failed = posterior_rows(P.SHIPPED / name, smoke=False)
    assert failed == 0, lines
    assert any("| test_rmse_bbb |" in ln for ln in lines) and len(lines) >= 3
    card = P.read_card(P.SHIPPED / name)
    folder = _tampered(tmp_path, name, "bbb-tampered",
                       **{"metrics.test_ll_bbb": card["metrics"]["test_ll_bbb"] + 0.01})
    lines, failed = posterior_rows(folder, smoke=False)
    assert failed == 1 and any("| test_ll_bbb |" in ln and "FAILED" in ln for ln in lines), lines


def test_a_broken_posterior_is_a_failed_row(tmp_path):
    folder = _tampered(tmp_path, "concrete-bbb", "broken", **{"state.sha256": "0" * 64})
    lines, failed = posterior_rows(folder, smoke=True)
    assert failed == 1 and "corrupted" in lines[0] and "FAILED" in lines[0], lines


@pytest.mark.parametrize("experiment, sets, arms", [
    ("svgp-classification", ["--set", "mnist.run=false"], ["moons"]),
    ("dkl-regression", [], ["dkl", "dkl_bayes"]),
    ("iwae-nll", [], ["fit"]),
    ("kingma-fig2", ["--set", "frey.latent_sizes=[]"], ["mnist_z3"]),
    ("uci-benchmark", ["--set", 'datasets=["yacht"]', "--set", 'methods=["bbb","svgp"]',
                       "--set", "bbb.fit.checkpoint=true", "--set", "svgp.fit.checkpoint=true"],
     ["yacht/bbb-split0", "yacht/svgp-split0"]),
    ("svgp-uci", ["--set", "elevators_gpytorch.run=false", "--set", 'optimizers=["ngd"]'],
     ["elevators-fold0-M8-ngd"]),
])
def test_export_recipes_rebuild_the_test_metrics(tmp_path, experiment, sets, arms):
    assert experiment in HEADLINES
    if experiment in ("iwae-nll", "kingma-fig2"):
        require_data("mnist")
    if experiment in ("uci-benchmark", "svgp-uci"):
        require_data("uci/yacht" if experiment == "uci-benchmark" else "uci-large/elevators")
    proc = _cli("run", experiment, "--smoke", "--out", str(tmp_path / "runs"), "--no-progress",
                "--threads", "1", *sets, cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = next((tmp_path / "runs" / experiment).iterdir())
    from experiments.harness.export import export

    for arm in arms:
        folder = export(run / arm, f"smoke-{arm.replace('_', '-').replace('/', '-').lower()}",
                        to=tmp_path / "out")
        card = P.read_card(folder)
        assert card["source"]["seed"] == 0 and card["smoke"] is True
        lines, failed = posterior_rows(folder, smoke=False)
        assert failed == 0, lines
        assert len(lines) >= 2, lines  # the check row and the experiment's test metrics


def test_a_vae_posterior_is_checked_by_its_bound_and_refuses_predict(tmp_path):
    vae = [n for n in SHIPPED if P.read_card(P.SHIPPED / n)["units"]["task"] == "images"]
    assert vae, SHIPPED
    card = P.read_card(P.SHIPPED / vae[0])
    assert card["check"]["metric"].startswith("nll_") and P.check_posterior(vae[0])["ok"]
    with pytest.raises(P.PretrainedError, match="is a VAE"):
        P.run_predict(vae[0], str(P.SHIPPED / vae[0] / "check.csv"), out=str(tmp_path / "p.csv"))


def test_uci_arms_are_matched_by_pattern_and_an_unknown_one_is_named(tmp_path):
    from experiments.harness.export import _from_arm
    from experiments.harness.export_recipes import RECIPES

    uci, large = RECIPES["uci-benchmark"], RECIPES["svgp-uci"]
    assert "protein/svgp-split4" in uci and "boston/bbb-split19" in uci
    assert "boston/dropout-split0" not in uci and "boston/bbb" not in uci
    assert "kin40k-fold0-M500-ngd" in large and "pol-fold9-M100" in large
    assert "elevators-gpytorch-ngd" not in large
    (tmp_path / "config.json").write_text(json.dumps({"experiment": "uci-benchmark"}))
    with pytest.raises(P.PretrainedError, match=r"uci-benchmark/<set>/<bbb\|svgp>-split<k>"):
        _from_arm(tmp_path, "boston/dropout-split0", None)


def test_blundell_mnist_recipe_rebuilds_the_test_error(tmp_path):
    """blundell-mnist's BbB arm: the recipe exports best.pt (the best-validation state its
    metrics are of; the fits write no checkpoint.pt), in raw-pixel units, and the scorer
    recomputes the run's test, validation and Monte Carlo test errors from the card's source."""
    import numpy as np

    from experiments.harness.export import _from_arm
    from experiments.harness.export_recipes import RECIPES

    arms = RECIPES["blundell-mnist"]
    assert "bbb-mixture-400" in arms and "bbb-gaussian-1200" in arms
    assert "bbb-mixture-blundell-16" in arms and "dropout-400" not in arms and "sgd-400" not in arms
    require_data("mnist")
    proc = _cli("run", "blundell-mnist", "--smoke", "--out", str(tmp_path / "runs"),
                "--no-progress", "--threads", "1", "--set", 'arms=["bbb-mixture"]',
                cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = next((tmp_path / "runs" / "blundell-mnist").iterdir())
    assert not (run / "bbb-mixture-16" / "checkpoint.pt").exists()
    state, fields, facts = _from_arm(run, "bbb-mixture-16", None)
    assert fields["pair"]["model_args"]["widths"] == [16, 16] and fields["pair"]["num_data"] == 500
    assert facts["check_metric"] == "test_ll" and fields["units"]["x_std"][0] == 126.0
    x, y = facts["test_rows"]
    assert x.shape == (200, 784) and np.abs(x - x.round()).max() < 1e-3 and x.max() <= 255.0 + 1e-3
    metrics = json.loads((run / "metrics.json").read_text())
    assert facts["paper"]["test_error_bbb-mixture_1200"] == 0.0132
    card = {**fields, "name": "smoke-bbb-mixture-16"}
    model, guide = P.build_pair(card, state)
    import torch

    with torch.no_grad():
        got = HEADLINES["blundell-mnist"](model, guide, card)
    assert sorted(got) == ["test_error_bbb-mixture_16", "test_error_mc_bbb-mixture_16",
                           "val_error_bbb-mixture_16"]
    for key, value in got.items():
        assert value == pytest.approx(metrics[key], abs=1e-4), key


def test_full_run_draws_the_figures_and_the_report_embeds_them(tmp_path, monkeypatch):
    """co2-svgp's and blundell-regression-bbb's figures from the shipped posteriors (no
    training), as PNG under ``<out>/pretrained-figures/``, each embedded below its rows."""
    from experiments.harness import reproduce_pretrained as R

    require_data("co2")
    names = ("co2-svgp", "blundell-regression-bbb")
    monkeypatch.setattr(R, "posterior_folders", lambda: [P.SHIPPED / n for n in names])
    report, failed = R.reproduce_pretrained(tmp_path / "out", smoke=False)
    text = report.read_text()
    assert failed == 0, text
    for name in names:
        png = tmp_path / "out" / "pretrained-figures" / f"{name}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"Figure (from pretrained {name})" in text
        assert f"![{name}](pretrained-figures/{name}.png)" in text


def test_the_blundell_mnist_posterior_draws_figure_3_without_data(tmp_path):
    """Blundell et al.'s Figure 3 (the density of the weights) comes from the shipped net alone."""
    from experiments.harness.pretrained_figures import draw_figure

    name = "blundell-mnist-bbb-mixture-2x400-18ep"
    model, guide = P.load_pretrained(name)
    card = json.loads((P.SHIPPED / name / "card.json").read_text())
    png = draw_figure(name, model, guide, card, tmp_path)
    assert png is not None and Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

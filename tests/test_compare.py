"""``python -m experiments compare``: a panel of methods on one split of a user's table, the
leaderboard (.md, .csv), the figures, the budget's epochs, and failures that stay in their row."""

from __future__ import annotations

import gzip
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from experiments.__main__ import main
from experiments.harness import compare as C
from tests.helpers import csv_rows, write_csv

SMOKE = ["--device", "cpu", "--no-progress", "--ensemble-size", "2", "--set", "num_samples=8"]
REGRESSION_COLUMNS = ("rmse", "mae", "test_ll", "coverage95", "calibration_error")
CLASSIFICATION_COLUMNS = ("accuracy", "nll", "ece")


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """A regression table y = sin(2a) + b/2 + noise and two moons (labels 3 and 7), 120 rows."""
    d = tmp_path_factory.mktemp("compare-data")
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (120, 2))
    y = np.sin(2 * x[:, 0]) + 0.5 * x[:, 1] + rng.normal(0, 0.2, 120)
    reg = write_csv(d / "reg.csv", ["a", "b", "y"], np.column_stack([x, y]).tolist())
    lab = rng.integers(0, 2, 120)
    t = rng.uniform(0, np.pi, 120)
    moons = np.where(lab[:, None] == 0, np.c_[np.cos(t), np.sin(t)],
                     np.c_[1 - np.cos(t), 0.5 - np.sin(t)]) + rng.normal(0, 0.15, (120, 2))
    cls = write_csv(d / "moons.csv", ["u", "v", "label"],
                     np.column_stack([moons, np.where(lab == 0, 3, 7)]).tolist())
    return reg, cls


def _run_dir(out: Path) -> Path:
    (run,) = (out / "compare").iterdir()
    return run


def _check_run(run: Path, methods: set[str], columns, *, regression: bool,
               failed: set[str] = frozenset()) -> list[dict]:
    """Every file is there, one row per method, finite metrics in the ok rows, the failed ones
    marked with their error; returns the CSV rows."""
    for name in ("leaderboard.md", "leaderboard.csv", "config.json", "metrics.json", "run.log",
                 "calibration.png", "calibration.pdf"):
        assert (run / name).is_file(), name
    assert (run / "intervals.png").is_file() == regression
    rows = csv_rows(run / "leaderboard.csv")
    assert {r["method"] for r in rows} == methods and len(rows) == len(methods)
    for r in rows:
        if r["method"] in failed:
            assert r["status"] == "failed" and r["error"], r
            continue
        assert r["status"] == "ok", r
        for c in columns:
            assert math.isfinite(float(r[c])), (r["method"], c, r[c])
        assert int(r["epochs"]) >= 1 and float(r["seconds"]) > 0
        assert float(r["epoch_seconds"]) > 0
        assert (run / "methods" / C.Method(r["method"], "", "", "").slug
                / "test_predictions.csv").is_file()
    assert {r["method"] for r in rows[len(rows) - len(failed):]} == set(failed)  # failed last
    md = (run / "leaderboard.md").read_text()
    for head in ("Command: `python -m experiments compare", "Data: ", "Split: ", "Hardware: ",
                 "Date: "):
        assert head in md, head
    assert sum(line.startswith("| ") for line in md.splitlines()) == len(methods) + 1
    log = (run / "run.log").read_text()
    for m in methods:
        assert f"] {m} (" in log and ": start at " in log and ": end at " in log, m
    config = json.loads((run / "config.json").read_text())
    assert config["command"].startswith("python -m experiments compare --data")
    assert [m["name"] for m in config["methods"]] and config["n_test"] == 12
    return rows


def test_regression_default_panel_and_a_failing_method(tables, tmp_path):
    """The default panel plus a pair whose --set is impossible: the leaderboard has six rows, the
    impossible one failed with its error, and the five others trained the budget's epochs (the
    budget allows more than the job's maximum, 2)."""
    reg, _ = tables
    rc = main(["compare", "--data", str(reg), "--target", "y", "--budget", "60",
               "--pairs", ",".join(C.DEFAULT_PANEL) + ",bnn/map", "--set", "fit.epochs=2",
               "--set", "bnn/map.fit.lr=-1", "--out", str(tmp_path), *SMOKE])
    assert rc == 1  # a method did not finish
    run = _run_dir(tmp_path)
    rows = _check_run(run, set(C.DEFAULT_PANEL) | {"bnn/map"}, REGRESSION_COLUMNS,
                      regression=True, failed={"bnn/map"})
    bad = next(r for r in rows if r["method"] == "bnn/map")
    assert "fit.lr" in bad["error"] and "-1" in bad["error"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["epochs"] == "2" and r["max_epochs"] == "2" for r in ok)
    lls = [float(r["test_ll"]) for r in ok]
    assert lls == sorted(lls, reverse=True)  # best test LL first
    assert next(r for r in ok if r["method"] == "ensemble")["pair"] == \
        "ensemble:mlp/deterministic"
    # the ensemble trained its 2 members; every method has its pilot and its own fit
    assert sorted(p.name for p in (run / "methods/ensemble/train").iterdir()) == \
        ["member0", "member1"]
    assert (run / "methods/svgp/pilot/history.json").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "failed" and metrics["failed_methods"] == ["bnn/map"]
    dropout = next(r for r in metrics["rows"] if r["method"] == "mc-dropout")
    assert dropout["config"]["model_cfg"]["dropout"] == C.MC_DROPOUT_RATE


def test_classification_tiny_budget_trains_one_epoch(tables, tmp_path):
    """A budget shorter than an epoch: every method trains 1 epoch, which is its pilot (not
    trained twice); classes 3 and 7 are indices 0 and 1."""
    _, cls = tables
    rc = main(["compare", "--data", str(cls), "--target", "label", "--task", "classification",
               "--budget", "1e-6", "--set", "fit.epochs=5", "--out", str(tmp_path), *SMOKE])
    assert rc == 0
    run = _run_dir(tmp_path)
    rows = _check_run(run, set(C.DEFAULT_PANEL), CLASSIFICATION_COLUMNS, regression=False)
    assert all(r["epochs"] == "1" and r["max_epochs"] == "5" for r in rows)
    nlls = [float(r["nll"]) for r in rows]
    assert nlls == sorted(nlls)  # lowest NLL first
    assert all(0 <= float(r["accuracy"]) <= 1 for r in rows)
    assert not (run / "methods/plain/train").exists()  # the pilot was the fit
    assert (run / "methods/ensemble/train/member1").is_dir()  # members are trained anew
    md = (run / "leaderboard.md").read_text()
    assert "| method | pair | accuracy | NLL | ECE | seconds | epochs |" in md


def test_a_method_failing_in_training_keeps_the_others(tables, tmp_path, monkeypatch):
    """An error inside one method's training is its row's error; the next method still runs."""
    reg, _ = tables
    real = C.train_pair

    def train_pair(spec, *args, **kwargs):
        if spec.model == "bnn":
            raise RuntimeError("simulated crash in training")
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(C, "train_pair", train_pair)
    run, rows = C.run_compare(C.CompareArgs(
        data=str(reg), target="y", budget=1e-6, pairs="bbb,plain", device="cpu", progress=False,
        out=str(tmp_path), overrides=["num_samples=8"]))
    assert [(r["method"], r["status"]) for r in rows] == [("plain", "ok"), ("bbb", "failed")]
    assert rows[1]["error"] == "RuntimeError: simulated crash in training"
    assert "bbb: failed: RuntimeError: simulated crash" in (run / "leaderboard.md").read_text()
    assert (run / "calibration.png").is_file()


def test_an_interrupted_compare_still_writes_its_leaderboard(tables, tmp_path, monkeypatch):
    """Ctrl-C during the second method: the first keeps its row, the second is ``interrupted``,
    the third ``not run``, and the leaderboard and figures are written before the interrupt
    propagates."""
    reg, _ = tables
    real = C.train_pair

    def train_pair(spec, *args, **kwargs):
        if spec.model == "bnn":
            raise KeyboardInterrupt
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(C, "train_pair", train_pair)
    with pytest.raises(KeyboardInterrupt):
        C.run_compare(C.CompareArgs(data=str(reg), target="y", budget=1e-6,
                                    pairs="plain,bbb,mc-dropout", device="cpu", progress=False,
                                    out=str(tmp_path), overrides=["num_samples=8"]))
    run = _run_dir(tmp_path)
    rows = csv_rows(run / "leaderboard.csv")
    assert [(r["method"], r["status"]) for r in rows] == [
        ("plain", "ok"), ("bbb", "interrupted"), ("mc-dropout", "not run")]
    assert (run / "intervals.png").is_file()
    assert json.loads((run / "metrics.json").read_text())["failed_methods"] == ["bbb",
                                                                               "mc-dropout"]


@pytest.mark.parametrize("argv, match", [
    (["--pairs", "dkl/dkl-cholesky"], "does not fit a regression table; pairs that do"),
    (["--pairs", "plain,plain"], "plain more than once"),
    (["--pairs", "mlp"], "expected model/guide"),
    (["--budget", "0"], "--budget 0.0: expected a positive number"),
    (["--ensemble-size", "1"], "--ensemble-size 1: a deep ensemble needs at least 2"),
    (["--set", "bogus.fit.lr=1"], "'bogus' is neither a key of every method"),
    (["--set", "ensemble=3"], "--ensemble-size K"),
    (["--test-fraction", "1.5"], "--test-fraction must be in"),
])
def test_bad_arguments_are_one_line_errors_before_a_run_folder(tables, tmp_path, capsys, argv,
                                                               match):
    reg, _ = tables
    rc = main(["compare", "--data", str(reg), "--target", "y", "--out", str(tmp_path),
               "--device", "cpu", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and match in err and err.startswith("error: "), err
    assert not (tmp_path / "compare").exists()


def test_budget_epochs_and_overrides():
    assert C.budget_epochs(10.0, 0.5, 100) == 20
    assert C.budget_epochs(10.0, 0.5, 100, members=5) == 4
    assert C.budget_epochs(10.0, 0.5, 8) == 8  # at most the job's epochs
    assert C.budget_epochs(0.1, 0.5, 8) == 1  # at least one
    assert C.budget_epochs(1.0, 0.0, 8) == 8  # an epoch too short to time
    panel = C.parse_pairs("plain,ensemble:bnn/mean-field,svgp", "regression", 3)
    assert [(m.name, m.ensemble) for m in panel] == [("plain", 0), ("ensemble:bnn/mean-field", 3),
                                                    ("svgp", 0)]
    per = C.split_overrides(["svgp.model_cfg.num_inducing=8", "fit.epochs=3",
                             "ensemble:bnn/mean-field.fit.lr=0.003"], panel)
    assert per == {"plain": ["fit.epochs=3"],
                   "ensemble:bnn/mean-field": ["fit.epochs=3", "fit.lr=0.003"],
                   "svgp": ["fit.epochs=3", "model_cfg.num_inducing=8"]}


def test_staged_elevators(data_dir, tmp_path):
    """A staged UCI set (elevators, 16599 rows x 18 features, gzip CSV without a header) through
    the default panel at a one-epoch budget."""
    src = data_dir / "uci-large" / "elevators" / "data.csv.gz"
    if not src.is_file():
        pytest.skip(f"staged data missing: {src}")
    with gzip.open(src, "rt") as fh:
        values = np.loadtxt(fh, delimiter=",")
    data = write_csv(tmp_path / "elevators.csv",
                      [f"x{i}" for i in range(values.shape[1] - 1)] + ["y"], values.tolist())
    t0 = time.perf_counter()
    rc = main(["compare", "--data", str(data), "--target", "y", "--budget", "1e-6",
               "--set", "fit.batch_size=1024", "--out", str(tmp_path / "out"), *SMOKE])
    assert rc == 0
    run = _run_dir(tmp_path / "out")
    rows = csv_rows(run / "leaderboard.csv")
    assert {r["method"] for r in rows} == set(C.DEFAULT_PANEL)
    assert all(r["status"] == "ok" and math.isfinite(float(r["test_ll"])) for r in rows)
    config = json.loads((run / "config.json").read_text())
    assert config["n_train"] + config["n_test"] == len(values) == 16599
    # standardised targets: a method that learned anything beats predicting the mean
    y_sd = float(values[:, -1].std())
    assert min(float(r["rmse"]) for r in rows) < y_sd
    assert time.perf_counter() - t0 < 120

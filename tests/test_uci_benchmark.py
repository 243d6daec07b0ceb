"""Tests of the uci-benchmark experiment: the PBP splits as the loader serves them, and the table
assembly (mean ± standard error over splits) against hand-computed values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments import data as D
from experiments import uci_benchmark as U
from experiments.harness.spec import ConfigError, RunContext, apply_overrides, validate_config
from experiments.uci import fitters as uci_fitters
from tests.helpers import require_data

NO_NET = {"download": False}

# folder -> (rows, features, splits) of the staged files (shared/data/README.md)
UCI_SHAPES = {
    "bostonHousing": (506, 13, 20), "concrete": (1030, 8, 20), "energy": (768, 8, 20),
    "kin8nm": (8192, 8, 20), "naval-propulsion-plant": (11934, 16, 20),
    "power-plant": (9568, 4, 20), "protein-tertiary-structure": (45730, 9, 5),
    "wine-quality-red": (1599, 11, 20), "yacht": (308, 6, 20),
}


def _lines(path: Path) -> int:
    return len(np.loadtxt(path, dtype=np.int64, ndmin=1))


@pytest.mark.parametrize("short", U.DATASETS)
def test_loader_reproduces_the_split_sizes(short, data_dir):
    folder = D._uci_folder(short)
    rows, dim, n_splits = UCI_SHAPES[folder]
    assert D.UCI_DATASETS[folder] == n_splits
    base = data_dir / "uci" / folder / "data"
    assert int(np.loadtxt(base / "n_splits.txt")) == n_splits
    # the experiment's full protocol runs every split: 20, protein 5
    assert U.splits_to_run(short, U.get_config()) == list(range(n_splits))
    sizes = [(_lines(base / f"index_train_{i}.txt"), _lines(base / f"index_test_{i}.txt"))
             for i in range(n_splits)]
    assert all(tr + te == rows for tr, te in sizes)
    assert all(te == pytest.approx(rows / 10, abs=1) for _, te in sizes)  # 90 / 10 splits
    for split in (0, n_splits - 1):
        d = D.load_uci(short, split, data_dir=data_dir, **NO_NET)
        assert (d.n_train, d.n_test) == sizes[split]
        assert d.input_dim == dim and d.standardized


def test_splits_to_run_caps_and_overrides():
    cfg = U.Config(splits=3, splits_per_dataset={"protein": 10, "naval": [4, 7]})
    assert U.splits_to_run("boston", cfg) == [0, 1, 2]
    assert U.splits_to_run("protein", cfg) == [0, 1, 2, 3, 4]  # protein has 5
    assert U.splits_to_run("naval", cfg) == [4, 7]
    with pytest.raises(ValueError, match="out of range"):
        U.splits_to_run("yacht", U.Config(splits=1, splits_per_dataset={"yacht": [20]}))
    with pytest.raises(ValueError, match="positive integer"):
        U.splits_to_run("yacht", U.Config(splits=0))
    # the same checks, as one-line config errors before anything runs
    with pytest.raises(ConfigError, match="out of range for yacht"):
        validate_config(apply_overrides(U.get_config(smoke=True),
                                        ['splits_per_dataset={"yacht": [20]}']))


def test_epochs_for_steps():
    assert U.epochs_for_steps(455, 1024, 2000) == (455, 2000)  # full batch: one step per epoch
    assert U.epochs_for_steps(41157, 1024, 2000) == (1024, 49)  # 41 batches per epoch
    with pytest.raises(ValueError, match="steps"):
        U.epochs_for_steps(10, 10, 0)


def test_dropout_weight_decay_is_gals_l2_term():
    # l^2 (1 - p) / 2 with l = 1e-2, p = 0.1
    assert U.dropout_weight_decay(1e-2, 0.1) == pytest.approx(1e-4 * 0.9 / 2)
    with pytest.raises(ValueError, match="lengthscale"):
        U.dropout_weight_decay(0.0, 0.1)


def _rows():
    rows = [{"dataset": "boston", "method": "bbb", "split": i, "ll": ll, "rmse": r, "seconds": s}
            for i, (ll, r, s) in enumerate([(-2.0, 3.0, 1.0), (-2.5, 4.0, 2.0), (-3.0, 5.0, 3.0)])]
    rows.append({"dataset": "boston", "method": "bbb", "split": 3, "error": "Cholesky failed",
                 "seconds": 9.0})  # failed fits are left out of the summary
    rows.append({"dataset": "yacht", "method": "svgp", "split": 0, "ll": -1.0, "rmse": 0.5,
                 "seconds": 4.0})
    return rows


def test_summarize_mean_and_standard_error():
    s = U.summarize(_rows())
    # ll: mean -2.5, sample sd sqrt(((0.5)^2 + 0 + (0.5)^2) / 2) = 0.5, se = 0.5 / sqrt(3)
    assert s["boston_bbb_ll_mean"] == pytest.approx(-2.5)
    assert s["boston_bbb_ll_se"] == pytest.approx(0.5 / math.sqrt(3))
    # rmse: mean 4, sd 1, se 1 / sqrt(3)
    assert s["boston_bbb_rmse_mean"] == pytest.approx(4.0)
    assert s["boston_bbb_rmse_se"] == pytest.approx(1 / math.sqrt(3))
    assert s["boston_bbb_seconds_per_split"] == pytest.approx(2.0)
    assert s["boston_bbb_num_splits"] == 3
    assert s["yacht_svgp_ll_mean"] == -1.0 and math.isnan(s["yacht_svgp_ll_se"])


def test_results_table_puts_ours_beside_the_published_numbers():
    s = U.summarize(_rows())
    table = U.results_table(s, ["boston", "yacht"], ["bbb", "svgp"], "ll")
    lines = table.splitlines()
    assert lines[0].startswith("| dataset | K | BbB (ours) | SVGP (ours) | VI | PBP | Dropout")
    boston = next(line for line in lines if line.startswith("| boston"))
    cells = [c.strip() for c in boston.strip("|").split("|")]
    assert cells[:4] == ["boston", "3", "-2.500±0.289", "—"]
    assert cells[4:] == ["-2.90±0.07", "-2.57±0.09", "-2.46±0.06", "-2.41", "-2.408"]
    yacht = next(line for line in lines if line.startswith("| yacht"))
    assert "| -1.000 |" in yacht  # one split: no ±
    rmse = U.results_table(s, ["boston"], ["bbb"], "rmse")
    assert "4.00±0.58" in rmse and "4.32±0.29" in rmse
    with pytest.raises(ValueError, match="metric"):
        U.results_table(s, ["boston"], ["bbb"], "nll")


def test_targets_and_deep_ensemble_sign():
    # deep ensembles report NLL; the table holds LL = -NLL (kin8nm NLL -1.20 -> LL 1.20)
    assert U.PUBLISHED["kin8nm"]["ensemble_ll"][0] == 1.20
    assert U.PUBLISHED["naval"]["ensemble_ll"][0] == 5.63
    s = {"boston_bbb_ll_mean": -2.5, "yacht_bbb_ll_mean": -2.0,
         "boston_dropout_ll_mean": -2.51, "yacht_dropout_ll_mean": -1.6}
    t = U.targets(s, ["boston", "yacht"])
    # boston: beats VI (-2.90) and PBP (-2.57); yacht: beats VI (-3.43), not PBP (-1.63)
    assert t["bbb_beats_vi_ll"] == "2/2" and t["bbb_beats_pbp_ll"] == "1/2"
    # dropout: boston -2.51 >= -2.46 - 0.06; yacht -1.6 < -1.55 - 0.03
    assert t["dropout_ll_within_published_se_or_better"] == "1/2"


def _ctx(out: Path) -> RunContext:
    return RunContext(seed=0, device="cpu", out_dir=out, progress=False)


def test_unknown_dataset_or_method_is_a_clear_error():
    cfg = U.get_config(smoke=True)
    cfg.datasets = ["iris"]
    with pytest.raises(ConfigError, match="datasets: .*'boston'.*got \\['iris'\\]"):
        validate_config(cfg)
    # PBP is a published column only (deep ensembles became a method of ours: "ensemble")
    with pytest.raises(ConfigError, match="pbp"):
        apply_overrides(U.get_config(smoke=True), ['methods=["pbp"]'])
    with pytest.raises(ConfigError, match="splits_per_dataset: unknown dataset.*iris"):
        validate_config(apply_overrides(U.get_config(smoke=True),
                                        ['splits_per_dataset={"iris": 2}']))
    with pytest.raises(ConfigError, match="dropout.grid=.*tau"):
        validate_config(apply_overrides(U.get_config(smoke=True), ['dropout.grid={"tau": [1]}']))


def test_config_keys_and_docstring_overrides():
    cfg = apply_overrides(U.get_config(), [
        "splits=3", 'splits_per_dataset={"protein": 1}', 'datasets=["boston","yacht"]',
        "dropout.grid={}", "bbb.steps=500", "bbb.fit.lr=3e-3", "svgp.num_inducing=50",
        "svgp.model_cfg.kernel.lengthscale=0.5", 'reuse_methods=["bbb","svgp"]'])
    validate_config(cfg)
    assert cfg.splits == 3 and cfg.splits_per_dataset == {"protein": 1}
    assert cfg.dropout.grid == {} and U.grid_points(cfg.dropout.grid) == []
    assert cfg.bbb.steps == 500 and cfg.bbb.fit.lr == 3e-3 and cfg.svgp.num_inducing == 50
    assert cfg.svgp.model_cfg["kernel"]["lengthscale"] == 0.5
    # fit.epochs follows from steps: full batch on a small set, one step per epoch
    sized = U.sized(cfg.bbb, 455)
    assert (sized.fit.batch_size, sized.fit.epochs, sized.steps) == (455, 500, 500)
    assert cfg.bbb.fit.batch_size == 1024  # the config itself is not changed


def test_reuse_rows_completes_a_protocol_without_refitting(tmp_path):
    """Fits found in an earlier run's rows.jsonl are reused, failed ones are not."""
    require_data("uci")
    cfg = U.get_config(smoke=True)
    earlier = tmp_path / "rows.jsonl"
    lines = []
    for ds in cfg.datasets:
        for method in cfg.methods:
            row = {"dataset": ds, "method": method, "split": 0, "n_train": 1, "ll": -1.25,
                   "rmse": 0.5, "seconds": 1.0}
            if (ds, method) == ("yacht", "svgp"):
                row = {**row, "error": "Cholesky failed"}
            lines.append(json.dumps(row))
    earlier.write_text("\n".join(lines) + "\n")
    cfg.reuse_rows = [str(earlier)]
    validate_config(cfg)
    out = tmp_path / "run"
    out.mkdir()
    metrics = U.run(cfg, _ctx(out))
    assert metrics["boston_bbb_ll_mean"] == -1.25 and metrics["yacht_dropout_rmse_mean"] == 0.5
    assert metrics["yacht_svgp_ll_mean"] != -1.25  # the failed fit was fitted again
    fitted = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert [(r["dataset"], r["method"]) for r in fitted] == [("yacht", "svgp")]
    with pytest.raises(ValueError, match="rows.jsonl"):
        U.load_rows([str(tmp_path / "missing.jsonl")])


# ------------------------------------------------------------- MC dropout's validation grid


def _id_data(n: int = 50, n_test: int = 10) -> D.RegressionData:
    """A synthetic split whose first input column is the row id (recoverable after
    standardisation), rows ``n_test .. n-1`` training and ``0 .. n_test-1`` test."""
    rng = np.random.default_rng(0)
    ids = np.arange(n, dtype=np.float64)
    x = np.stack([ids, rng.normal(size=n)], axis=1)
    y = 3.0 * x[:, 1] + 10.0
    return D._make_regression("toy", 0, x, y, np.arange(n_test, n), np.arange(n_test), True)


def _ids(x: torch.Tensor, d: D.RegressionData) -> set[int]:
    raw = x.double() * d.x_std.double() + d.x_mean.double()
    return {int(round(v)) for v in raw[:, 0].tolist()}


def test_validation_split_is_drawn_from_the_training_split_only():
    data = _id_data()
    train_ids, test_ids = _ids(data.x_train, data), _ids(data.x_test, data)
    val = U.validation_split(data, 0.2, seed=3)
    sub_ids, val_ids = _ids(val.x_train, val), _ids(val.x_test, val)
    assert len(val_ids) == val.n_test == 8 and val.n_train == 32  # round(0.2 * 40)
    assert sub_ids | val_ids == train_ids  # every held-out row comes from the training split
    assert not sub_ids & val_ids
    assert not val_ids & test_ids and not sub_ids & test_ids  # the test split is never used
    # re-standardised on the remaining training rows, targets in the same original units
    assert float(val.x_train[:, 1].mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(val.y_train.std(unbiased=False)) == pytest.approx(1.0, abs=1e-5)
    sub_y = val.unstandardize_y(val.y_train).numpy()
    sub_x1 = (val.x_train[:, 1].double() * val.x_std[1] + val.x_mean[1]).numpy()
    np.testing.assert_allclose(sub_y, 3.0 * sub_x1 + 10.0, rtol=1e-5)
    # seeded: the same seed holds out the same rows, another seed (almost surely) others
    assert _ids(U.validation_split(data, 0.2, seed=3).x_test, val) == val_ids
    assert _ids(U.validation_split(data, 0.2, seed=4).x_test, val) != val_ids
    with pytest.raises(ValueError, match="val_fraction"):
        U.validation_split(data, 1.0, seed=0)


def test_grid_points_product_and_list():
    pts = U.grid_points({"dropout": [0.01, 0.1], "steps": [500, 2000]})
    assert pts == [{"dropout": 0.01, "steps": 500}, {"dropout": 0.01, "steps": 2000},
                   {"dropout": 0.1, "steps": 500}, {"dropout": 0.1, "steps": 2000}]
    assert U.grid_points([{"lengthscale": 0.1}]) == [{"lengthscale": 0.1}]
    assert U.grid_points({}) == [] and U.grid_points(None) == []
    with pytest.raises(ValueError, match="keys"):
        U.grid_points({"tau": [1.0]})


def test_select_grid_point_is_the_argmax_of_validation_ll():
    assert U.select_grid_point([-3.0, -2.5, -2.7]) == 1
    assert U.select_grid_point([float("nan"), -4.0, None, -5.0]) == 1  # failed points never win
    assert U.select_grid_point([-1.0, -1.0]) == 0  # ties: the first
    with pytest.raises(ValueError, match="every dropout grid point failed"):
        U.select_grid_point([None, float("nan")])


def test_fit_dropout_selects_on_validation_and_refits_on_the_whole_training_split(
        monkeypatch, tmp_path):
    data = _id_data()
    test_ids = _ids(data.x_test, data)
    # validation LL of each (p, steps): the best is (0.1, 500), neither first nor last
    val_ll = {(0.01, 500): -3.0, (0.01, 2000): -2.9, (0.1, 500): -2.1, (0.1, 2000): -2.4,
              (0.1, 1000): -2.2}  # the last: the configured values, used without a grid
    calls = []

    def fake_fit(d, spec, ctx, *, hidden, split, name, num_samples):
        key = (spec.model_cfg["dropout"], spec.steps)
        calls.append((d, key))
        return {"ll": val_ll[key], "rmse": -val_ll[key], "noise_std": 1.0}

    monkeypatch.setattr(uci_fitters, "_fit_dropout_once", fake_fit)  # fit_dropout's module
    spec = U.get_config().dropout
    spec.grid = {"dropout": [0.01, 0.1], "steps": [500, 2000]}
    once = {"hidden": 8, "split": 0, "name": "dropout", "num_samples": 4}
    res = U.fit_dropout(data, spec, _ctx(tmp_path), **once)
    assert res["selected"] == {"dropout": 0.1, "steps": 500}
    assert [g["val_ll"] for g in res["grid"]] == [-3.0, -2.9, -2.1, -2.4]
    assert len(calls) == 5
    for d, _ in calls[:4]:  # grid fits: 80 % of the training rows, scored on the other 20 %
        assert d.n_train == 32 and d.n_test == 8
        assert not (_ids(d.x_train, d) | _ids(d.x_test, d)) & test_ids
    refit, key = calls[4]
    assert refit is data and key == (0.1, 500)  # the chosen point, on the whole training split
    assert res["ll"] == -2.1
    # without a grid: one fit with the configured values
    calls.clear()
    spec.grid = {}
    res = U.fit_dropout(data, spec, _ctx(tmp_path), **once)
    assert len(calls) == 1 and calls[0][0] is data and "selected" not in res


def test_reuse_methods_refits_the_other_methods(tmp_path):
    require_data("uci")
    cfg = U.get_config(smoke=True)
    cfg.datasets = ["yacht"]
    earlier = tmp_path / "rows.jsonl"
    earlier.write_text("".join(json.dumps({"dataset": "yacht", "method": m, "split": 0,
                                           "n_train": 1, "ll": -1.25, "rmse": 0.5,
                                           "seconds": 1.0}) + "\n" for m in U.METHODS))
    cfg.reuse_rows = [str(earlier)]
    cfg.reuse_methods = ["bbb", "svgp", "ensemble"]
    validate_config(cfg)
    out = tmp_path / "run"
    out.mkdir()
    metrics = U.run(cfg, _ctx(out))
    assert metrics["yacht_bbb_ll_mean"] == -1.25 and metrics["yacht_svgp_ll_mean"] == -1.25
    fitted = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert [r["method"] for r in fitted] == ["dropout"]  # refitted, with the smoke grid
    assert fitted[0]["selected"] in U.grid_points(cfg.dropout.grid)
    assert len(fitted[0]["grid"]) == 2
    assert sum(metrics["dropout_selected"]["yacht"].values()) == 1

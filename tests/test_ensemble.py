"""Deep ensembles (issue 23): the mixture predictive against hand computations, members that
differ, ``fit --ensemble K`` / ``predict`` on a user's table, per-member resume, and the UCI arm."""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import guides
import models
from experiments.__main__ import main
from experiments.engine import ensemble as E
from experiments.engine.checkpoint import load_zoo_file
from experiments.engine.predict import Prediction, predict
from experiments.engine.settings import FitConfig, RunOptions
from experiments.harness import spec as S
from experiments.harness import userfit, userpredict
from experiments.harness.spec import PairSpec, RunContext
from tests.helpers import write_csv

QUIET = {"tensorboard": False}


def _params(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _toy(n: int = 64, d: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return x, x[:, 0] - 0.5 * x[:, 1] + 0.1 * torch.randn(n, generator=g)


def _mlp_pair(d: int = 2, widths=(8,)):
    model = models.create_model("mlp", in_features=d, widths=widths)
    return model, guides.create_guide("deterministic", model)


# ------------------------------------------------------------------------------------------------
# the mixture math


def _t(*v):
    return torch.tensor(v, dtype=torch.float64)


def test_regression_mixture_against_a_hand_computation():
    a = Prediction("regression", mean=_t(1.0, 0.0), variance=_t(1.0, 2.0), epistemic=_t(0.5, 1.0),
                   aleatoric=_t(0.5, 1.0), samples=torch.zeros(10, 2),
                   log_likelihood_per_point=_t(0.2, 0.5).log(), log_likelihood=0.0,
                   num_samples=10)
    b = Prediction("regression", mean=_t(3.0, 0.0), variance=_t(2.0, 2.0), epistemic=_t(1.0, 0.0),
                   aleatoric=_t(1.0, 2.0), samples=torch.ones(20, 2),
                   log_likelihood_per_point=_t(0.4, 0.1).log(), log_likelihood=0.0,
                   num_samples=20)
    m = E.mixture([a, b])
    assert m.kind == "regression"
    torch.testing.assert_close(m.mean, _t(2.0, 0.0))
    # avg_k(var_k + mean_k^2) - mean^2: ((1 + 1) + (2 + 9)) / 2 - 4 = 2.5; (2 + 2) / 2 - 0 = 2
    torch.testing.assert_close(m.variance, _t(2.5, 2.0))
    # avg epistemic_k + Var_k(mean_k): 0.75 + 1 = 1.75; 0.5 + 0 = 0.5
    torch.testing.assert_close(m.epistemic, _t(1.75, 0.5))
    torch.testing.assert_close(m.aleatoric, _t(0.75, 1.5))
    torch.testing.assert_close(m.epistemic + m.aleatoric, m.variance)
    # logsumexp_k(ll_k) - log 2: log((0.2 + 0.4) / 2), log((0.5 + 0.1) / 2)
    torch.testing.assert_close(m.log_likelihood_per_point, _t(0.3, 0.3).log())
    assert m.log_likelihood == pytest.approx(math.log(0.3))
    assert m.num_samples == 30 and m.samples.shape == (30, 2) and m.probs is None
    assert E.mixture([a]).variance is not None  # K = 1 is the member itself
    torch.testing.assert_close(E.mixture([a]).variance, a.variance)


def test_classification_mixture_averages_the_probabilities():
    pa, pb = _t(0.8, 0.2, 0.5, 0.5).reshape(2, 2), _t(0.4, 0.6, 0.1, 0.9).reshape(2, 2)
    y = torch.tensor([0, 1])

    def member(p):
        return Prediction("classification", mean=p, variance=p * (1 - p),
                          epistemic=torch.zeros_like(p), aleatoric=p * (1 - p), probs=p,
                          log_likelihood_per_point=p[torch.arange(2), y].log(), num_samples=1)

    m = E.mixture([member(pa), member(pb)])
    pbar = _t(0.6, 0.4, 0.3, 0.7).reshape(2, 2)
    torch.testing.assert_close(m.probs, pbar)
    torch.testing.assert_close(m.mean, pbar)
    # the one-hot y_c of the mixture: variance pbar (1 - pbar), its epistemic part Var_k(p_k)
    torch.testing.assert_close(m.variance, pbar * (1 - pbar))
    torch.testing.assert_close(m.epistemic, ((pa - pbar) ** 2 + (pb - pbar) ** 2) / 2)
    torch.testing.assert_close(m.log_likelihood_per_point, _t(0.6, 0.7).log())


def test_mixture_refuses_what_it_cannot_combine():
    reg = Prediction("regression", mean=torch.zeros(3))
    with pytest.raises(ValueError, match="at least one member"):
        E.mixture([])
    with pytest.raises(ValueError, match="different kinds"):
        E.mixture([reg, Prediction("classification", mean=torch.zeros(3))])
    with pytest.raises(ValueError, match="VAE"):
        E.mixture([Prediction("reconstruction", mean=torch.zeros(3))] * 2)
    with pytest.raises(ValueError, match="different shapes"):
        E.mixture([reg, Prediction("regression", mean=torch.zeros(4))])
    vae = models.create_model("vae", **models.MODELS.meta("vae")["test_config"])
    with pytest.raises(ValueError, match="member 0 is a VAE"):
        E.predict_ensemble(E.Ensemble([(vae, None)]), torch.zeros(2, 12))
    with pytest.raises(ValueError, match="at least one member"):
        E.Ensemble([])


# ------------------------------------------------------------------------------------------------
# the Python API


def test_ensemble_members_differ_and_predict_is_their_mixture(tmp_path):
    x, y = _toy()
    cfg = FitConfig(epochs=3, batch_size=32, lr=1e-2, **QUIET)
    ens = E.ensemble(_mlp_pair, (x, y), 3, cfg,
                     RunOptions(device="cpu", out_dir=str(tmp_path), progress=False))
    assert len(ens) == 3 and len(list(ens)) == 3
    params = [_params(m) for m, _ in ens]
    assert not torch.equal(params[0], params[1]) and not torch.equal(params[1], params[2])
    for i in range(3):  # out_dir/member<i>: each member's history and checkpoint
        assert (tmp_path / f"member{i}" / "history.json").is_file()
        assert (tmp_path / f"member{i}" / "checkpoint.pt").is_file()
    again = E.ensemble(_mlp_pair, (x, y), 3, cfg, RunOptions(device="cpu", progress=False))
    for (m, _), p in zip(again, params):  # seeded: run.seed + i
        torch.testing.assert_close(_params(m), p)

    xt, yt = _toy(10, seed=1)
    pred = predict(ens, None, xt, 4, y=yt, seed=3)
    members = [predict(m, g, xt, 4, y=yt, seed=3 + i) for i, (m, g) in enumerate(ens)]
    means = torch.stack([p.mean for p in members])
    torch.testing.assert_close(pred.mean, means.mean(0))
    torch.testing.assert_close(pred.variance, torch.stack([p.variance for p in members]).mean(0)
                               + means.var(0, unbiased=False))
    ll = torch.stack([p.log_likelihood_per_point for p in members])
    torch.testing.assert_close(pred.log_likelihood_per_point,
                               torch.logsumexp(ll, 0) - math.log(3))
    assert pred.num_samples == 12
    assert not torch.allclose(pred.epistemic, members[0].epistemic)  # members disagree
    with pytest.raises(ValueError, match="carries its members. guides"):
        predict(ens, ens[0][1], xt)
    with pytest.raises(ValueError, match="guide is None"):
        predict(ens[0][0], None, xt)


def test_ensemble_api_errors():
    x, y = _toy(16)
    with pytest.raises(ValueError, match="k=0 is invalid"):
        E.ensemble(_mlp_pair, (x, y), 0)
    pair = _mlp_pair()
    with pytest.raises(ValueError, match="new modules on every call"):
        E.ensemble(lambda: pair, (x, y), 2, FitConfig(epochs=1, **QUIET),
                   RunOptions(device="cpu", progress=False))


# ------------------------------------------------------------------------------------------------
# train_ensemble: seeds, folders, resume


SPEC = PairSpec("mlp", "deterministic", model_cfg={"widths": [4]},
                fit=FitConfig(epochs=3, batch_size=32, lr=1e-2, **QUIET))


def test_train_ensemble_resume_retrains_only_the_member_without_a_checkpoint(
        tmp_path, monkeypatch, caplog):
    data = _toy()
    ctx = RunContext(seed=0, device="cpu", out_dir=tmp_path, progress=False)
    ens, states = E.train_ensemble(SPEC, data, ctx, "arm", 2, model_args={"in_features": 2})
    first = [_params(m) for m, _ in ens]
    assert not torch.equal(first[0], first[1])
    assert [s.epoch for s in states] == [3, 3]
    hist0 = (tmp_path / "arm" / "member0" / "history.json").read_text()
    (tmp_path / "arm" / "member1" / "checkpoint.pt").unlink()

    calls = []
    real_fit = S.fit

    def spy(model, guide, data, cfg, run=None, eval_fn=None, state=None):
        calls.append((Path(run.out_dir).name, None if state is None else state.epoch))
        return real_fit(model, guide, data, cfg, run, eval_fn=eval_fn, state=state)

    monkeypatch.setattr(S, "fit", spy)
    resumed = RunContext(seed=0, device="cpu", out_dir=tmp_path, progress=False, resume=True)
    with caplog.at_level(logging.INFO, logger="experiments"):
        ens2, states2 = E.train_ensemble(SPEC, data, resumed, "arm", 2,
                                         model_args={"in_features": 2})
    # member0 restored at its last epoch (nothing left to run); member1 trained from scratch
    assert calls == [("member0", 3), ("member1", None)]
    assert "arm/member0: resumed from" in caplog.text
    assert "arm/member1: resumed" not in caplog.text
    assert "arm: member 2 of 2 done" in caplog.text
    assert (tmp_path / "arm" / "member0" / "history.json").read_text() == hist0
    assert (tmp_path / "arm" / "member1" / "checkpoint.pt").is_file()
    for (m, _), p in zip(ens2, first):  # the same members: restored, or retrained from its seed
        torch.testing.assert_close(_params(m), p)


# ------------------------------------------------------------------------------------------------
# fit --ensemble K / predict


@pytest.fixture
def table(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (60, 2))
    y = 10.0 + 3.0 * x[:, 0] - 2.0 * x[:, 1] + rng.normal(0, 0.3, 60)
    return write_csv(tmp_path / "data.csv", ["a", "b", "y"], np.column_stack([x, y]).tolist())


def _fit(table: Path, out: Path, *extra: str) -> int:
    return main(["fit", "--model", "mlp", "--guide", "deterministic", "--data", str(table),
                 "--target", "y", "--set", "model_cfg.widths=[8]", "--set", "fit.epochs=5",
                 "--device", "cpu", "--no-progress", "--out", str(out), *extra])


def test_fit_ensemble_writes_a_run_whose_predict_is_the_mixture(table, tmp_path):
    assert _fit(table, tmp_path / "runs", "--ensemble", "3") == 0
    (run,) = (tmp_path / "runs" / "fit").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["ensemble_size"] == 3
    config = json.loads((run / "config.json").read_text())
    assert "--ensemble 3" in config["command"] and config["pair"]["ensemble"] == 3
    for i in range(3):
        assert (run / "train" / f"member{i}" / "checkpoint.pt").is_file()
    assert not (run / "train" / "checkpoint.pt").exists()
    state, meta = load_zoo_file(run / "model.pt", "fit-model")
    assert len(state["members"]) == 3 and meta["ensemble"] == 3

    ens, guide, job, std, _ = userpredict.load_run(run)
    assert isinstance(ens, E.Ensemble) and len(ens) == 3 and guide is None
    assert not torch.equal(_params(ens[0][0]), _params(ens[1][0]))
    assert main(["predict", str(run), "--data", str(table)]) == 0
    with open(run / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    got_mean = np.array([float(r["mean"]) for r in rows])
    got_sd = np.array([float(r["sd"]) for r in rows])
    # by hand: the plain nets' means and noise, mixed, in original units
    xs = std.x(np.loadtxt(table, delimiter=",", skiprows=1)[:, :2])
    with torch.no_grad():
        f = torch.stack([predict(m, g, xs, 1).mean for m, g in ens]).double()
        noise2 = torch.stack([m.likelihood.noise_std.detach().double() ** 2 for m, _ in ens])
    mean = std.y_mean + std.y_std * f.mean(0)
    sd = std.y_std * (noise2.mean() + f.var(0, unbiased=False)).sqrt()
    np.testing.assert_allclose(got_mean, mean.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_sd, sd.numpy(), rtol=1e-5, atol=1e-5)


def test_single_fit_keeps_its_layout_and_set_ensemble_works(table, tmp_path):
    assert _fit(table, tmp_path / "one") == 0
    (run,) = (tmp_path / "one" / "fit").iterdir()
    state, _ = load_zoo_file(run / "model.pt", "fit-model")
    assert set(state) == {"model", "guide"}  # K = 1: the file layout of every earlier run
    assert (run / "train" / "checkpoint.pt").is_file() and not (run / "train" / "member0").exists()
    assert json.loads((run / "metrics.json").read_text())["ensemble_size"] == 1
    assert "--ensemble" not in json.loads((run / "config.json").read_text())["command"]
    model, guide, *_ = userpredict.load_run(run)
    assert guide is not None and not isinstance(model, E.Ensemble)

    assert _fit(table, tmp_path / "two", "--set", "ensemble=2") == 0
    (run,) = (tmp_path / "two" / "fit").iterdir()
    assert json.loads((run / "metrics.json").read_text())["ensemble_size"] == 2
    assert len(userpredict.load_run(run)[0]) == 2


@pytest.mark.parametrize("extra, message", [
    (["--ensemble", "0"], "--ensemble 0 is invalid: expected an integer >= 1"),
    (["--ensemble", "-2"], "--ensemble -2 is invalid: expected an integer >= 1"),
    (["--set", "ensemble=0"], "ensemble=0 is invalid: expected an integer >= 1"),
    (["--set", "ensemble=2.5"], "--set ensemble=2.5: expected an integer"),
    (["--ensemble", "2", "--set", "ensemble=3"],
     "--ensemble 2 and --set ensemble=3 disagree; give the number of members once"),
])
def test_bad_ensemble_sizes_are_one_line_errors(table, tmp_path, capsys, extra, message):
    out = tmp_path / "runs"
    assert _fit(table, out, *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
    assert not out.exists()  # checked before a run folder exists


def test_a_failing_member_fails_the_run_and_keeps_the_finished_members(table, tmp_path,
                                                                       monkeypatch):
    real = E.train_pair

    def flaky(spec, data, ctx, name, **kw):
        if name.endswith("member1"):
            raise FloatingPointError("non-finite loss at epoch 1 (injected)")
        return real(spec, data, ctx, name, **kw)

    monkeypatch.setattr(E, "train_pair", flaky)
    args = userfit.FitArgs(model="mlp", guide="deterministic", data=str(table), target="y",
                           overrides=["fit.epochs=2", "model_cfg.widths=[4]"], device="cpu",
                           out=str(tmp_path / "runs"), progress=False, ensemble=3)
    with pytest.raises(FloatingPointError, match="injected"):
        userfit.run_fit(args)
    (run,) = (tmp_path / "runs" / "fit").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "injected" in metrics["error"]
    assert metrics["ensemble_size"] == 3
    assert (run / "train" / "member0" / "checkpoint.pt").is_file()
    assert not (run / "train" / "member2").exists() and not (run / "model.pt").exists()
    assert "train: member 2 of 3 failed (finished members kept: train/member0)" in \
        (run / "run.log").read_text()


# ------------------------------------------------------------------------------------------------
# the UCI benchmark's deep-ensemble arm


def test_uci_ensemble_arm(tmp_path):
    from experiments import data as D
    from experiments import uci_benchmark as U
    from experiments.harness.spec import ConfigError, apply_overrides, validate_config

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 5.0 + 0.1 * rng.normal(size=40)
    data = D._make_regression("toy", 0, x, y, np.arange(8, 40), np.arange(8), True)
    spec = U.get_config(smoke=True).ensemble
    assert (spec.model, spec.guide, spec.model_cfg["dropout"]) == ("mlp", "deterministic", 0.0)
    assert U.get_config().ensemble.members == 5 and "ensemble" in U.get_config().methods
    ctx = RunContext(seed=0, device="cpu", out_dir=tmp_path, progress=False)
    row = U.fit_ensemble(data, spec, ctx, hidden=8, split=2, name="toy/ensemble-split2",
                         num_samples=10)
    assert row["members"] == spec.members == 3
    assert math.isfinite(row["rmse"]) and math.isfinite(row["ll"]) and row["noise_std"] > 0
    assert sorted(p.name for p in (tmp_path / "toy" / "ensemble-split2").iterdir()) == \
        ["member0", "member1", "member2"]
    table = U.results_table(U.summarize([{"dataset": "boston", "method": "ensemble", "split": 0,
                                          "ll": -2.5, "rmse": 3.0, "seconds": 1.0}]),
                            ["boston"], ["ensemble"], "ll")
    assert "| Deep ens. (ours) |" in table and "| -2.500 |" in table and "| -2.41 |" in table
    with pytest.raises(ConfigError, match="ensemble.members=0 is invalid"):
        validate_config(apply_overrides(U.get_config(smoke=True), ["ensemble.members=0"]))

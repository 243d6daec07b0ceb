"""The two-moons generator and the predictive integrals of the SVGP classification experiment."""

from __future__ import annotations

import pytest
import torch

from experiments.svgp_classification import bernoulli_predictive, softmax_predictive, two_moons


def test_two_moons_shapes_balance_and_determinism():
    x, y = two_moons(101, noise=0.1, seed=3)
    assert x.shape == (101, 2) and y.shape == (101,) and x.dtype == torch.float32
    assert set(y.unique().tolist()) == {0.0, 1.0} and int(y.sum()) == 51
    x2, y2 = two_moons(101, noise=0.1, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(two_moons(101, noise=0.1, seed=4)[0], x)


def test_two_moons_noise_free_points_lie_on_the_moons():
    x, y = two_moons(200, noise=0.0, seed=0)
    c0 = x[y == 0]
    c1 = x[y == 1] - torch.tensor([1.0, 0.5])
    assert torch.allclose(c0.norm(dim=-1), torch.ones(len(c0)), atol=1e-5) and (c0[:, 1] >= 0).all()
    assert torch.allclose(c1.norm(dim=-1), torch.ones(len(c1)), atol=1e-5) and (c1[:, 1] <= 0).all()


@pytest.mark.parametrize("n, noise", [(1, 0.1), (10, -1.0)])
def test_two_moons_bad_arguments(n, noise):
    with pytest.raises(ValueError, match="two_moons"):
        two_moons(n, noise)


def test_bernoulli_predictive_against_monte_carlo():
    mu = torch.tensor([-2.0, 0.0, 0.5, 3.0], dtype=torch.float64)
    var = torch.tensor([0.01, 4.0, 1.0, 9.0], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    f = mu + var.sqrt() * torch.randn(400_000, 4, generator=g, dtype=torch.float64)
    mc = torch.sigmoid(f).mean(0)
    assert torch.allclose(bernoulli_predictive(mu, var), mc, atol=3e-3)
    assert bernoulli_predictive(mu[1:2], var[1:2]).item() == pytest.approx(0.5, abs=1e-12)


def test_softmax_predictive_is_a_distribution():
    p = softmax_predictive(torch.randn(7, 4), torch.rand(7, 4), num_samples=32)
    assert p.shape == (7, 4) and torch.allclose(p.sum(-1), torch.ones(7))


# ---------------------------------------------------------------------------- config and run
def _config(*overrides):
    from experiments.harness.spec import apply_overrides, validate_config
    from experiments.svgp_classification import get_config

    config = apply_overrides(get_config(smoke=True), list(overrides))
    validate_config(config)
    return config


def test_config_is_typed():
    config = _config("moons.svgp.model_cfg.num_inducing=9", "mnist.run=false",
                     "mnist.mlp.fit.lr=0.01", "moons.svgp.model_cfg.kernel.lengthscale=2")
    assert config.moons.svgp.model_cfg["num_inducing"] == 9 and config.mnist.run is False
    assert config.mnist.mlp.fit.lr == 0.01
    assert config.moons.svgp.model_cfg["kernel"]["lengthscale"] == 2.0


@pytest.mark.parametrize("override, message", [
    ("moons.svgp.model_cfg.likelihood=gaussian", "moons.svgp.model_cfg.likelihood is set by the "
                                                 "experiment"),
    ("mnist.mlp.model_cfg.out_features=3", "mnist.mlp.model_cfg.out_features is set by the"),
    ("moons.num_train=1", "moons.num_train=1: must be an integer >= 2"),
    ("moons.noise=-0.1", "moons.noise=-0.1: must be >= 0"),
    ("mnist.dim=300", "mnist.dim=300: at most min(mnist.num_train, 784) = 200"),
    ("mnist.svgp.guide=deterministic", "'deterministic' is not a guide of 'svgp'"),
])
def test_bad_config_is_one_line(override, message):
    from experiments.harness.spec import ConfigError

    with pytest.raises(ConfigError) as info:
        _config(override)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_moons_run_with_a_run_context(tmp_path):
    from experiments.harness.spec import RunContext
    from experiments.svgp_classification import run

    config = _config("mnist.run=false", "moons.svgp.fit.epochs=2", "moons.grid=5")
    metrics = run(config, RunContext(seed=0, device="cpu", out_dir=tmp_path, progress=False))
    assert 0 <= metrics["moons_accuracy"] <= 1 and metrics["moons_train_seconds"] > 0
    assert not any(k.startswith("mnist") for k in metrics)
    assert (tmp_path / "moons" / "history.json").is_file()
    assert list(tmp_path.glob("svgp_two_moons.*"))

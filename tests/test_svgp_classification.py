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

"""The infinite-width experiment's maths: Williams' erf kernel against Monte Carlo (factor
conventions), H-independence of the prior covariance, the KS distance falling with H, and the
excess-kurtosis formula."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from experiments.nngp_limit import (
    erf_kernel,
    nngp_covariance,
    sample_prior_outputs,
    theory_excess_kurtosis,
)

PRIOR = {"sigma_u": 1.5, "sigma_a": 0.5, "omega": 1.3, "sigma_b": 0.2}


def test_erf_kernel_is_the_expectation_over_hidden_weights():
    """k_erf(x, x') = E[erf(u.x + a) erf(u.x' + a)] directly, in D = 2 (checks x~ = (1, x) and
    Σ = diag(σ_a², σ_u² I)): 10⁶ draws of (u, a), tolerance 5 standard errors (≈ 5e-3)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.tensor([[0.0, 0.0], [0.5, -1.0], [2.0, 1.0]], dtype=torch.float64)
    n = 1_000_000
    u = PRIOR["sigma_u"] * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    a = PRIOR["sigma_a"] * torch.randn(n, 1, generator=gen, dtype=torch.float64)
    h = torch.erf(u @ x.T + a)  # (n, 3)
    prod = h.unsqueeze(-1) * h.unsqueeze(-2)  # (n, 3, 3)
    mc, se = prod.mean(0), prod.std(0) / math.sqrt(n)
    exact = erf_kernel(x, x, PRIOR["sigma_u"], PRIOR["sigma_a"])
    assert ((mc - exact).abs() <= 5 * se).all(), (mc, exact)


def test_network_covariance_matches_closed_form_at_large_width():
    """Empirical covariance of f over 5 inputs from 20000 networks with H = 300 against
    σ_b² + ω² k_erf: within 5 Monte Carlo standard errors, and 0.05 absolute."""
    gen = torch.Generator().manual_seed(1)
    x = torch.linspace(-2, 2, 5, dtype=torch.float64).unsqueeze(-1)
    f = sample_prior_outputs(x, 300, 20_000, generator=gen, **PRIOR)  # (S, 5)
    assert f.shape == (20_000, 5)
    prod = f.unsqueeze(-1) * f.unsqueeze(-2)
    emp, se = prod.mean(0), prod.std(0) / math.sqrt(len(f))
    exact = nngp_covariance(x, x, **PRIOR)
    err = (emp - exact).abs()
    assert (err <= 5 * se).all() and err.max() < 0.05, (emp, exact)


def test_covariance_does_not_depend_on_width():
    """The variance at one input is σ_b² + ω² k_erf(x, x) for H = 1 already (only the shape
    changes with H)."""
    gen = torch.Generator().manual_seed(2)
    x = torch.tensor([[0.7]], dtype=torch.float64)
    f = sample_prior_outputs(x, 1, 200_000, generator=gen, **PRIOR)[:, 0]
    exact = float(nngp_covariance(x, x, **PRIOR))
    se = float((f**2).std()) / math.sqrt(len(f))
    assert abs(float((f**2).mean()) - exact) < 5 * se


def test_ks_distance_and_kurtosis_fall_with_width():
    """KS distance to the limit Gaussian falls with H (H = 1, 3, 30; 200000 samples, floor ≈ 2e-3)
    and the empirical excess kurtosis matches 3ω⁴(m4 − m2²)/(H Var²) within 15 %."""
    x0 = 1.0
    sd = math.sqrt(float(nngp_covariance(torch.tensor([[x0]]), torch.tensor([[x0]]), **PRIOR)))
    ks = []
    for i, h in enumerate((1, 3, 30)):
        gen = torch.Generator().manual_seed(10 + i)
        f = sample_prior_outputs(torch.tensor([[x0]]), h, 200_000, generator=gen, **PRIOR)[:, 0]
        f = f.double().numpy()
        ks.append(stats.kstest(f, stats.norm(0.0, sd).cdf).statistic)  # newer scipy: no args=
        if h <= 3:
            theory = theory_excess_kurtosis(x0, h, **PRIOR)
            assert abs(stats.kurtosis(f) - theory) < 0.15 * theory, (h, stats.kurtosis(f), theory)
    assert ks[0] > ks[1] > ks[2], ks
    assert ks[2] < 0.005


def test_sampling_is_reproducible_and_chunk_independent():
    x = torch.linspace(-1, 1, 4).unsqueeze(-1)
    a = sample_prior_outputs(x, 10, 50, generator=torch.Generator().manual_seed(3), **PRIOR)
    b = sample_prior_outputs(x, 10, 50, generator=torch.Generator().manual_seed(3), **PRIOR)
    assert torch.equal(a, b)
    c = sample_prior_outputs(x, 10, 50, generator=torch.Generator().manual_seed(3),
                             chunk_elements=40, **PRIOR)  # one sample per chunk
    assert c.shape == a.shape and torch.isfinite(c).all()


@pytest.mark.parametrize("key,value", [("sigma_u", 0.0), ("omega", -1.0), ("sigma_b", -0.5)])
def test_bad_prior_is_a_clear_error(key, value):
    prior = {**PRIOR, key: value}
    with pytest.raises(ValueError, match=f"{key} must be .*{value}"):
        sample_prior_outputs(torch.zeros(1, 1), 3, 4, generator=torch.Generator(), **prior)


def test_bad_width_is_a_clear_error():
    with pytest.raises(ValueError, match="width=0"):
        sample_prior_outputs(torch.zeros(1, 1), 0, 4, generator=torch.Generator(), **PRIOR)


# ---------------------------------------------------------------------------- config and run
def _config(*overrides):
    from experiments.harness.spec import apply_overrides, validate_config
    from experiments.nngp_limit import get_config

    config = apply_overrides(get_config(smoke=True), list(overrides))
    validate_config(config)
    return config


def test_overrides_are_typed():
    config = _config("prior.omega=2", "widths=[1, 5]", "cov.grid=[-1, 1]", "ks.num_samples=10")
    assert config.prior.omega == 2.0 and config.widths == [1, 5]
    assert config.cov.grid == (-1.0, 1.0) and config.ks.num_samples == 10


@pytest.mark.parametrize("override, message", [
    ("prior.sigma_u=0", "prior.sigma_u=0.0: must be > 0"),
    ("prior.sigma_b=-1", "prior.sigma_b=-1.0: must be >= 0"),
    ("widths=[]", "widths=[]: must be a non-empty list"),
    ("widths=[3, 0]", "widths=[3, 0]"),
    ("cov.num_samples=1", "cov.num_samples=1: must be an integer >= 2"),
    ("ks.num_samples=many", "expected an integer"),
    ("seed=3", "use --seed"),
])
def test_bad_config_is_one_line_naming_the_key(override, message):
    from experiments.harness.spec import ConfigError

    with pytest.raises(ConfigError) as info:
        _config(override)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_run_with_a_run_context(tmp_path):
    """``run(config, ctx)``: the seed is the context's (same seed, same numbers), the figure goes
    to the context's folder."""
    from experiments.harness.spec import RunContext
    from experiments.nngp_limit import run

    config = _config("widths=[1, 3]", "ks.num_samples=2000", "cov.num_samples=200",
                     "cov.num_grid=5")
    metrics = [run(config, RunContext(seed=seed, device="cpu", out_dir=tmp_path / str(i),
                                      progress=False))
               for i, seed in enumerate((1, 1, 2))]
    assert {"ks_distance_H1", "ks_distance_H3", "cov_max_abs_err_H3"} <= set(metrics[0])
    assert metrics[0]["ks_distance_H3"] == metrics[1]["ks_distance_H3"]
    assert metrics[0]["ks_distance_H3"] != metrics[2]["ks_distance_H3"]
    assert list((tmp_path / "0").glob("nngp_limit.*"))

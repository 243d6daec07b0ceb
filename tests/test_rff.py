"""The weight-space GP (``rff-gp``): the features' spectral density matches GPyTorch's RBF kernel,
the closed-form Bayesian linear posterior tends to the exact GP, the full-covariance guide trained
by ``fit`` reaches the closed form, and bad configurations are clear errors."""

from __future__ import annotations

import pytest
import torch

import guides
import models
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.training import fit
from experiments.weight_space_gp import exact_gp_predict, gaussian_q, make_data, rbf_kernel
from tests.pair_base import PairTestBase

ELL, S2, SIGMA = 0.7, 1.3, 0.2


class TestRFFFullCovariance(PairTestBase):
    model_name = "rff-gp"
    guide_name = "auto-mvn"
    guide_config = {"init_scale": 0.05}


def _rff(num_features, seed=0, **kw):
    return models.create_model("rff-gp", in_features=1, num_features=num_features,
                               lengthscale=ELL, outputscale=S2, noise_std=SIGMA,
                               learn_noise=False, feature_seed=seed, **kw)


def test_feature_kernel_converges_to_gpytorch_rbf():
    """φ(x)ᵀφ(x') → s² exp(-|x-x'|²/(2ℓ²)) (GPyTorch's RBF convention): the max error over a
    grid falls from R = 10 to R = 20000 and is below 0.05 there (≈ s² sqrt(2/R) = 0.013 per entry)."""
    x = torch.linspace(-2, 2, 21, dtype=torch.float64).unsqueeze(-1)
    exact = rbf_kernel(ELL, S2)(x, x).to_dense().detach()
    errs = {r: float((_rff(r).kernel(x, x) - exact).abs().max()) for r in (10, 20000)}
    assert errs[20000] < errs[10] and errs[20000] < 0.05, errs
    # the diagonal's expectation is exactly s²: check the mean over features, not one draw
    diag = _rff(20000).kernel(x, x).diagonal()
    assert torch.allclose(diag.mean(), torch.tensor(S2, dtype=torch.float64), atol=0.03)


def test_closed_form_weight_posterior_tends_to_exact_gp():
    """Predictive mean and variance of f on a grid from the closed-form weight posterior approach
    the exact GP's as R grows: from R = 20 to 1500 both max abs errors fall at least 3-fold, to
    < 0.3 on the mean and < 0.15 on the variance (the kernel error, ≈ s² sqrt(2/R) per entry, is
    amplified in the mean by (K + σ²I)⁻¹ with σ² = 0.04)."""
    x, y = make_data(40, [-3, 3], [-0.8, 0.8], SIGMA, seed=0)
    grid = torch.linspace(-4, 4, 41).unsqueeze(-1)
    gp_mean, gp_var = exact_gp_predict(rbf_kernel(ELL, S2), x, y, grid, SIGMA)
    errs = {}
    for r in (20, 1500):
        model = _rff(r)
        mean, var = model.predict_f(grid, *model.exact_posterior(x, y))
        errs[r] = (float((mean - gp_mean).abs().max()), float((var - gp_var).abs().max()))
    assert errs[1500][0] < errs[20][0] / 3 and errs[1500][1] < errs[20][1] / 3, errs
    assert errs[1500][0] < 0.3 and errs[1500][1] < 0.15, errs


@pytest.mark.slow
def test_full_covariance_guide_reaches_the_closed_form_posterior():
    """auto-mvn trained by the shared fit loop on R = 6 features: posterior mean and covariance of
    w against the conjugate closed form. The mean converges tightly; the covariance slowly (the
    Trace_ELBO's Monte Carlo entropy term keeps its gradient noisy), hence the loose tolerance."""
    x, y = make_data(40, [-3, 3], [-0.8, 0.8], SIGMA, seed=1)
    model = _rff(6, seed=3)
    mean, cov = model.exact_posterior(x, y)
    guide = guides.create_guide("auto-mvn", model, init_scale=0.1)
    fit(model, guide, (x, y), FitConfig.from_dict({"epochs": 2000, "batch_size": 40, "lr": 0.05,
                                                   "num_particles": 4, "lr_schedule": "cosine"}),
                              RunOptions(progress=False, seed=0))
    q_mean, q_cov = gaussian_q(guide)
    assert (q_mean - mean).abs().max() < 0.03, (q_mean, mean)
    assert (q_cov - cov).abs().max() < 0.5 * cov.diagonal().max(), (q_cov, cov)


def test_f_site_shapes_under_particles():
    model = _rff(5)
    x, y = model.example_data(7, torch.Generator().manual_seed(0))
    from pyro.infer import Predictive

    pred = Predictive(model, num_samples=4, parallel=True, return_sites=("f", "w"))(x)
    assert pred["f"].shape == (4, 7, 1) and pred["w"].reshape(4, -1).shape == (4, 5)
    w = pred["w"].reshape(4, 5)[0]
    expected = model.features(x) @ w
    from pyro import poutine

    tr = poutine.trace(poutine.condition(model, data={"w": w})).get_trace(x)
    assert torch.allclose(tr.nodes["f"]["value"][:, 0], expected, atol=1e-6)


@pytest.mark.parametrize("key,value", [("lengthscale", 0.0), ("lengthscale", -1.5),
                                       ("num_features", 0), ("outputscale", -2.0),
                                       ("in_features", 0)])
def test_bad_config_is_a_clear_error(key, value):
    cfg = {"in_features": 1, "num_features": 4, key: value}
    with pytest.raises(ValueError, match=rf"{key} must be .*got {value}"):
        models.create_model("rff-gp", **cfg)


def test_wrong_input_shape_is_a_clear_error():
    model = _rff(4)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 1\)"):
        model(torch.zeros(3, 2))


# ---------------------------------------------------------------------------- experiment config
def _config(*overrides):
    from experiments.harness.spec import apply_overrides, validate_config
    from experiments.weight_space_gp import get_config

    config = apply_overrides(get_config(smoke=True), list(overrides))
    validate_config(config)
    return config


def test_weight_space_config_is_typed():
    config = _config("mvn.fit.epochs=7", "mean_field.guide_cfg.init_scale=1",
                     "num_features=[5, 20]", "vi_features=[5]", "band_features=[5]")
    assert config.mvn.fit.epochs == 7 and config.mean_field.guide_cfg["init_scale"] == 1.0
    assert config.num_features == [5, 20] and config.vi_features == [5]


@pytest.mark.parametrize("override, message", [
    ("vi_features=[10, 30]", "vi_features=[10, 30]: [30] not in num_features [10, 50]"),
    ("band_features=[30]", "band_features=[30]: [30] not in num_features"),
    ("num_features=[]", "num_features=[]: must be a non-empty list"),
    ("num_feature_seeds=0", "num_feature_seeds=0: must be >= 1"),
    ("mean_field.guide=auto-mvn", "the two arms need different guides"),
    ("mvn.guide=cholesky", "'cholesky' is not a guide of 'rff-gp'"),
    ("mvn.model_cfg.num_features=3", "mvn.model_cfg.num_features is set by the experiment"),
    ("mvn.guide_cfg.init_scal=1", "unknown key 'init_scal'"),
])
def test_weight_space_bad_config_is_one_line(override, message):
    from experiments.harness.spec import ConfigError

    with pytest.raises(ConfigError) as info:
        _config(override)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_weight_space_run_with_a_run_context(tmp_path):
    """A tiny run through ``train_pair``: both arms' metrics (named by guide) and their fit
    folders under the context's run folder."""
    from experiments.harness.spec import RunContext
    from experiments.weight_space_gp import run

    config = _config("num_features=[5]", "vi_features=[5]", "band_features=[5]",
                     "num_feature_seeds=1", "mvn.fit.epochs=2", "mean_field.fit.epochs=2",
                     "data.num_train=20", "data.num_grid=11", "num_samples=5")
    metrics = run(config, RunContext(seed=0, device="cpu", out_dir=tmp_path, progress=False))
    for gname in ("auto-mvn", "mean-field"):
        assert {f"{gname}_var_rms_R5", f"{gname}_vs_blr_mean_rms_R5"} <= set(metrics)
        assert (tmp_path / f"{gname}_R5" / "history.json").is_file()
    assert list(tmp_path.glob("weight_space_gp.*"))
